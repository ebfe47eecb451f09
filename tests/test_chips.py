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
