"""Chip descriptions (nmcompile/mapping/chips): the built-in files hold the published figures
they cite, every number has a source, and bad files are refused by name."""

from pathlib import Path

import pytest

from nmcompile.errors import FormatError, NmcompileError
from nmcompile.mapping import available, load_chip
from nmcompile.mapping.chips import HOPS, read_chip


def test_builtin_chips_load():
    assert {"loihi1", "loihi2", "fpga-mesh"} <= set(available())


def test_loihi1_is_davies_2018():
    # Davies et al., IEEE Micro 2018 (and nengo-loihi's block.py constants)
    c = load_chip("loihi1")
    assert (c.neurons, c.synapse_memory_bits, c.input_axons, c.output_axons) == \
        (1024, 128 * 1024 * 8, 4096, 4096)
    assert (c.tiles, c.cores_per_tile, c.cores) == ((8, 4), 4, 128)
    assert c.links["hop_east_west"].joules == pytest.approx(3.0e-12)
    assert c.links["hop_north_south"].joules == pytest.approx(4.0e-12)
    assert c.links["within_tile"].joules == pytest.approx(1.7e-12)
    assert "pre-silicon" in c.sources["energy.hop_east_west"]


def test_loihi2_derived_figures_are_marked():
    c = load_chip("loihi2")
    assert c.cores == 128 and c.neurons * c.cores == 1 << 20
    # 120M synapses per chip, within a few per cent, at 8-bit dense synapses
    assert c.synapses_per_core("dense") * c.cores == pytest.approx(120e6, rel=0.06)
    assert {"core.neurons", "core.synapse_memory_bits"} <= c.derived
    assert "core.neurons" in c.derived and "mesh.chips_per_board" not in c.derived


def test_every_number_has_a_source():
    for name, path in available().items():
        c = read_chip(path)
        keys = {f"core.{k}" for k in ("neurons", "synapse_memory_bits", "input_axons",
                                      "output_axons", "conv_stored")}
        keys |= {f"core.synapse_bits.{k}" for k in c.synapse_bits}
        keys |= {f"mesh.{k}" for k in ("tiles", "cores_per_tile", "chips_per_board", "host")}
        keys |= {f"energy.{k}" for k in c.links}
        assert keys <= set(c.sources), name
        assert all(s.strip() for s in c.sources.values())
        assert set(c.links) in (set(), set(HOPS))


def test_user_chip_without_code(tmp_path, monkeypatch):
    text = (Path(__file__).parents[1] / "nmcompile/mapping/chips/fpga-mesh.toml").read_text()
    (tmp_path / "big.toml").write_text(text.replace('name = "fpga-mesh"', 'name = "big"')
                                       .replace("value = [2, 2]", "value = [4, 3]"))
    assert load_chip("big", paths=[tmp_path]).cores == 12
    monkeypatch.setenv("NMCOMPILE_CHIPS", str(tmp_path))
    assert load_chip("big").tiles == (4, 3)
    assert load_chip(tmp_path / "big.toml").name == "big"


@pytest.mark.parametrize("edit, message", [
    (("value = 65536, source", "value = 0, source"), "positive integer"),
    (('source = "backends/hdl/limits.py: the fpga16', 'sourc = "x'), "source"),
    (("value = [2, 2]", "value = [2]"), "two non-negative integers"),
    (('side = "west"', 'side = "up"'), "host side"),
    (('value = "unrolled"', 'value = "rolled"'), "conv_stored"),
    (('name = "fpga-mesh"', 'name = "../x"'), "chip name"),
])
def test_bad_files_are_refused_by_name(tmp_path, edit, message):
    text = (Path(__file__).parents[1] / "nmcompile/mapping/chips/fpga-mesh.toml").read_text()
    assert edit[0] in text
    path = tmp_path / "bad.toml"
    path.write_text(text.replace(edit[0], edit[1], 1))
    with pytest.raises(FormatError, match=message):
        read_chip(path)


def test_bad_energy_and_unknown_chip(tmp_path):
    text = (Path(__file__).parents[1] / "nmcompile/mapping/chips/loihi1.toml").read_text()
    path = tmp_path / "e.toml"
    path.write_text(text.replace("joules = 3.0e-12", "joules = nan", 1))
    with pytest.raises(FormatError, match=">= 0"):
        read_chip(path)
    path.write_text(text.replace("within_tile = {", "within = {", 1))
    with pytest.raises(FormatError, match="unknown entry"):
        read_chip(path)
    with pytest.raises(NmcompileError, match=r"unknown chip 'nochip'.*loihi1"):
        load_chip("nochip")


# --------------------------------------------------------------------------------------------
# the verilog backend's core sized by a chip (chip=, --chip)
# --------------------------------------------------------------------------------------------


def _tiny_chip(folder: Path, neurons: int = 16) -> Path:
    """A user chip file, no code: the fpga-mesh chip with `neurons` neurons per core."""
    text = (Path(__file__).parents[1] / "nmcompile/mapping/chips/fpga-mesh.toml").read_text()
    text = text.replace('name = "fpga-mesh"', 'name = "tiny"')
    (folder / "tiny.toml").write_text(text.replace("value = 65536, source",
                                                   f"value = {neurons}, source", 1))
    return folder / "tiny.toml"


def _twenty_neurons():
    """x (4) -> fc -> a 20-neuron LIF layer 'wide' -> out, quantised for loihi2; and spikes
    that make it fire."""
    import numpy as np

    from nmcompile.ir import Graph, Input, Output
    from nmcompile.ir.quantized import QLIF, QDense

    rng = np.random.default_rng(3)
    g = Graph(metadata={"quantization": {"profile": "loihi2"}})
    g.add_node("x", Input((4,)))
    g.add_node("fc", QDense(rng.integers(-40, 120, (20, 4))))
    g.add_node("wide", QLIF(vth=100, du=1000, dv=400))
    g.add_node("out", Output())
    for a, b in (("x", "fc"), ("fc", "wide"), ("wide", "out")):
        g.add_edge(a, b)
    return g, (rng.random((12, 2, 4)) < 0.5).astype(np.uint8)


def test_verilog_refuses_a_layer_over_a_user_chips_core(tmp_path):
    import nmcompile
    from nmcompile.errors import LimitError

    g, x = _twenty_neurons()
    with pytest.raises(LimitError, match=r"layer 'wide' brings the core to 20 neurons, over "
                       r"the 16 per core of chip 'tiny'.*chip=.*--chip"):
        nmcompile.run(g, x, backend="verilog", chip=_tiny_chip(tmp_path))
    with pytest.raises(LimitError, match=r"layer 'wide'.*chip 'tiny'"):
        nmcompile.compile(g, tmp_path / "out", "verilog", chip=load_chip(tmp_path / "tiny.toml"))


def test_verilog_on_the_default_chip_equals_the_emulator():
    import numpy as np

    import nmcompile

    g, x = _twenty_neurons()
    ref = nmcompile.run(g, x, record=True)
    got = nmcompile.run(g, x, backend="verilog", record=True)
    assert got.backend == "verilog" and got.counters["cycles"]["total"] > 0
    assert ref.spikes["wide"].sum() > 0
    assert np.array_equal(ref.spikes["wide"], got.spikes["wide"])
    assert np.array_equal(ref.output(), got.output())


def test_verilog_refuses_core_naming_chip(tmp_path):
    import nmcompile
    from nmcompile.cli import _backend_options

    g, x = _twenty_neurons()
    with pytest.raises(NmcompileError, match=r"core='fpga16' was replaced by chip=.*--chip"):
        nmcompile.run(g, x, backend="verilog", core="fpga16")
    with pytest.raises(NmcompileError, match=r"core='fpga16' was replaced by chip="):
        nmcompile.compile(g, tmp_path / "out", "verilog", core="fpga16")
    with pytest.raises(NmcompileError, match=r"core='fpga16' was replaced by chip="):
        _backend_options(["core=fpga16"], ["verilog"], "run")


def test_verilog_refuses_a_chip_the_rtl_or_the_profile_cannot_be(tmp_path):
    import nmcompile
    from nmcompile.errors import LimitError

    g, x = _twenty_neurons()
    # Loihi's 8-bit synapse words hold no 9-bit signed loihi2 mantissa in this core
    with pytest.raises(LimitError, match=r"chip 'loihi1'.*8-bit synapse words.*profile "
                       r"'loihi2'.*9-bit"):
        nmcompile.run(g, x, backend="verilog", chip="loihi1")
    with pytest.raises(LimitError, match=r"chip 'tiny'.*2,097,152 neurons.*RTL holds at most "
                       r"1,048,576"):
        nmcompile.run(g, x, backend="verilog", chip=_tiny_chip(tmp_path, 1 << 21))


def test_cli_chip_reaches_the_verilog_backend(tmp_path, capsys):
    import re

    import numpy as np

    import nmcompile
    from nmcompile.cli import build_parser, main

    g, x = _twenty_neurons()
    nmcompile.save(g, tmp_path / "g.nmc")
    np.save(tmp_path / "x.npy", x)
    chip = str(_tiny_chip(tmp_path))
    model = [str(tmp_path / "g.nmc")]
    for argv in (["run", *model, "--input", str(tmp_path / "x.npy"), "--backend", "verilog",
                  "--chip", chip],
                 ["verify", *model, "--input", str(tmp_path / "x.npy"), "--backends",
                  "emulator,verilog", "--chip", chip],
                 ["compile", *model, "--target", "verilog", "-o", str(tmp_path / "o"),
                  "--chip", chip]):
        assert main(argv) == 1, argv
        assert "layer 'wide' brings the core to 20 neurons" in capsys.readouterr().err, argv
    assert main(["run", *model, "--input", str(tmp_path / "x.npy"), "--backend", "verilog",
                 "--option", "core=fpga16"]) == 1
    assert "replaced by chip=" in capsys.readouterr().err
    verbs = build_parser()._subparsers._group_actions[0].choices
    for verb in ("run", "verify", "compile"):  # --chip's help lists the chips (wrapped text)
        text = re.sub(r"-\s+", "-", " ".join(verbs[verb].format_help().split()))
        assert "--chip NAME|FILE with backend verilog" in text and "fpga-mesh, loihi1" in text
