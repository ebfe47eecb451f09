"""The backend contract (`nmcompile/contract.py`) on every registered backend, the example
target of docs/backends.md against the emulator, and the CLI's `--option` (issue 13)."""

from __future__ import annotations

import inspect
import itertools
import re
from pathlib import Path
from types import SimpleNamespace

import example_target
import numpy as np
import pytest
from random_graphs import fam_dense, fam_graded

import nmcompile
from nmcompile.cli import _backend_options, build_parser
from nmcompile.contract import BASE_COUNTERS, Backend, Capabilities, Option, conformance
from nmcompile.errors import NmcompileError, UnsupportedError
from nmcompile.ir import LIF, QLIF, Graph, Input, Output, QConv2d
from nmcompile.registry import BUILTIN, available, get_backend, register_backend, registered

BACKENDS = [*BUILTIN, example_target.name]


@pytest.fixture(scope="module", autouse=True)
def example():
    with registered(example_target.name, example_target):
        yield


def _with_bad_node(backend: str) -> tuple[Graph, str, str]:
    """x -> bad -> out, `bad` a neuron the backend does not take (a QLIF for the float
    interpreter, a float LIF for the others); and the kind of graph the backend runs."""
    g = Graph()
    g.add_node("x", Input((2,)))
    g.add_node("bad", QLIF(vth=10) if backend == "float" else LIF(beta=0.5))
    g.add_node("out", Output())
    g.add_edge("x", "bad")
    g.add_edge("bad", "out")
    return g, ("float" if backend == "float" else "quantised"), type(g["bad"]).__name__


@pytest.mark.parametrize("name", BACKENDS)
def test_every_backend_follows_the_protocol(name: str) -> None:
    backend = get_backend(name)
    assert isinstance(backend, Backend) and conformance(backend, name) == []
    assert isinstance(backend.capabilities, Capabilities)
    assert set(BASE_COUNTERS) <= set(backend.capabilities.counters)
    assert name in available()


@pytest.mark.parametrize("name", BACKENDS)
def test_an_unsupported_node_fails_the_same_way_everywhere(name: str, tmp_path) -> None:
    g, kind, node_type = _with_bad_node(name)
    problems = get_backend(name).check(g)
    form = rf"^the {re.escape(name)} backend runs {kind} graphs only; node 'bad' is a {node_type}\."
    assert [p.node for p in problems] == ["bad"] and problems[0].error is UnsupportedError
    assert re.match(form, problems[0].message)
    with pytest.raises(UnsupportedError, match=form):
        nmcompile.run(g, np.ones((3, 1, 2)), backend=name)
    with pytest.raises(UnsupportedError, match=form):
        nmcompile.compile(g, tmp_path / "out", name)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", BACKENDS)
def test_run_and_compile_take_exactly_the_declared_options(name: str) -> None:
    """Positional (graph, spikes|out_dir), then keyword-only: `record` for run, and each
    declared option with its declared default; no **kwargs that would swallow a typo."""
    backend = get_backend(name)
    for verb, second, extra in (("run", "spikes", {"record": False}), ("compile", "out_dir", {})):
        params = list(inspect.signature(getattr(backend, verb)).parameters.values())
        assert [(p.name, p.kind) for p in params[:2]] == [
            ("graph", inspect.Parameter.POSITIONAL_OR_KEYWORD),
            (second, inspect.Parameter.POSITIONAL_OR_KEYWORD)], (verb, params)
        assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in params[2:]), (verb, params)
        declared = {o.name: o.default for o in backend.capabilities.options_of(verb).values()}
        assert {p.name: p.default for p in params[2:]} == extra | declared, verb
        names = [o.name for o in backend.capabilities.options if verb in o.verbs]
        assert len(names) == len(set(names)), verb


def test_an_option_a_backend_does_not_take_fails_before_any_work() -> None:
    g, _, _ = _with_bad_node("emulator")  # the option is named before the graph's problem
    with pytest.raises(NmcompileError, match=r"the emulator backend's run has no option "
                       r"'simulator'; its options: none"):
        nmcompile.run(g, np.ones((3, 1, 2)), backend="emulator", simulator="icarus")
    with pytest.raises(NmcompileError, match=r"verilog backend's compile has no option "
                       r"'nosuch'; its options: simulator, synth, pnr, input_max, timeout_s, "
                       r"lanes, chip"):
        nmcompile.compile(g, "unused", "verilog", nosuch=1)


def test_the_registry_takes_only_what_follows_the_contract() -> None:
    with pytest.raises(NmcompileError, match=r"'half' does not follow .*: it has no name, "
                       r"capabilities, check, run"):
        register_backend("half", SimpleNamespace(compile=lambda graph, out_dir: out_dir))
    with pytest.raises(NmcompileError, match=r"its name is 'numpy-dense'; its capabilities"):
        register_backend("other", SimpleNamespace(**{**vars(example_target),
                                                     "capabilities": {"nodes": ()}}))
    assert "half" not in available() and "other" not in available()


def test_options_parse_from_text() -> None:
    assert Option("n", int, 1, "").parse("7") == 7
    assert Option("f", bool, True, "").parse("False") is False
    assert Option("s", str, "a", "", choices=("a", "b")).parse("b") == "b"
    for option, text, message in ((Option("n", int, 1, ""), "1.5", "'1.5' is not a int"),
                                  (Option("f", bool, True, ""), "maybe", "not true or false"),
                                  (Option("s", str, "a", "", choices=("a", "b")), "c",
                                   "not one of a, b"),
                                  (Option("d", dict, None, ""), "{}", "set it from Python")):
        with pytest.raises(NmcompileError, match=f"option {option.name!r}.*{message}"):
            option.parse(text)


def test_cli_options_go_to_the_backends_that_take_them() -> None:
    got = _backend_options(["simulator=verilator", "lava.timeout_s=5", "max_processes=64"],
                           ["emulator", "lava", "verilog"], "run")
    assert got == {"emulator": {}, "lava": {"timeout_s": 5.0, "max_processes": 64},
                   "verilog": {"simulator": "verilator"}}
    for pair, message in (("nosuch=1", r"no backend here takes 'nosuch' \(run options: "
                                       r"emulator: none; lava: timeout_s"),
                          ("verilog.timeout_s=1", "'verilog' is not one of emulator, lava"),
                          ("timeout_s", "give KEY=VALUE"),
                          ("max_batch=two", "'two' is not a int")):
        with pytest.raises(NmcompileError, match=message):
            _backend_options([pair], ["emulator", "lava"], "run")


def test_cli_help_lists_every_backends_options() -> None:
    verbs = build_parser()._subparsers._group_actions[0].choices
    for verb, sub in (("run", "run"), ("run", "verify"), ("compile", "compile")):
        text = " ".join(verbs[sub].format_help().split())
        for name in BUILTIN:
            for option in get_backend(name).capabilities.options_of(verb).values():
                assert (f"{name}: {option.name}=" in text) is option.on_cli, (sub, option)


@pytest.mark.parametrize("seed", range(6))
def test_the_example_target_equals_the_emulator(seed: int) -> None:
    """Random dense chains (both resets, per-neuron thresholds and decays, biases, graded
    inputs): spikes and counters equal to the emulator's, exactly."""
    rng = np.random.default_rng(seed)
    kinds = itertools.cycle(["lif", "lif_vec", "lif_sub", "if", "lif_bias"][seed % 5:] * 2)
    for _ in range(20):  # a network whose layers stay silent is redrawn
        g, x, _ = (fam_graded if seed % 2 else fam_dense)(rng, kinds, 40, 3)
        reference = nmcompile.run(g, x, backend="emulator", record=True)
        if min(reference.counters["spikes"].values()) > 10:
            break
    assert min(reference.counters["spikes"].values()) > 10
    ours = nmcompile.run(g, x, backend=example_target.name, record=True)
    assert np.array_equal(ours.output(), reference.output())
    assert ours.spikes.keys() == reference.spikes.keys()
    for layer, spikes in reference.spikes.items():
        assert np.array_equal(ours.spikes[layer], spikes), layer
    for counter in BASE_COUNTERS:
        assert ours.counters[counter] == reference.counters[counter], counter
    assert nmcompile.verify(g, x, ["emulator", example_target.name]).equal


def test_the_example_target_is_as_small_as_the_docs_say() -> None:
    assert len(Path(example_target.__file__).read_text().splitlines()) < 60


def test_the_example_target_refuses_what_it_cannot_run_and_compiles(tmp_path) -> None:
    g, _, _ = fam_dense(np.random.default_rng(0), itertools.cycle(["lif"]), 10, 1)
    out = nmcompile.compile(g, tmp_path / "prog", example_target.name, compressed=True)
    with np.load(out / "program.npz") as program:  # no pickles: plain arrays
        assert np.array_equal(program["fc1/weight"], g["fc1"].weight)
    assert (out / "README.md").exists()
    g.add_node("conv", QConv2d(np.ones((1, 1, 1, 1), int)))
    problems = example_target.check(g)
    assert [p.node for p in problems] == ["conv"]
    g.remove_node("conv")
    g.add_edge("x", "fc2", 1)  # a second, delayed input
    assert {p.node for p in example_target.check(g)} == {"fc2"}
    assert any("delay 1" in p.message for p in example_target.check(g))
