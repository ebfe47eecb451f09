"""NIR in and out: every node against an independent forward-Euler reference, the round trip
nmcompile -> NIR -> nmcompile on random graphs, the errors, and the command line.

The reference (`euler` below) steps NIR's own equations in numpy, node by node, as the NIR
documentation states them; it shares no code with `nmcompile.frontends.nir`.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import nir
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import nmcompile
from nmcompile import cli
from nmcompile.ir import ALIF, IF, LIF, Dense, Graph, Input, Output

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_frontend_equivalence import KINDS, random_model

DT = 1e-3
FIXTURES = Path(__file__).resolve().parents[1] / ".." / "shared" / "fixtures" / "nir-paper"


# -- an independent reference: NIR's equations, forward Euler, in numpy ----------------------
def _step(node, x: np.ndarray, state: dict, dt: float) -> np.ndarray:
    """One step of one NIR node on input x (batch first)."""
    kind = type(node).__name__
    if kind == "Affine":
        return x @ node.weight.T + node.bias
    if kind == "Linear":
        return x @ node.weight.T
    if kind == "Scale":
        return x * node.scale
    if kind == "Flatten":
        return x.reshape(x.shape[0], -1)
    if kind == "Conv1d":
        return F.conv1d(torch.as_tensor(x), torch.as_tensor(node.weight),
                        torch.as_tensor(node.bias), int(node.stride), int(node.padding)).numpy()
    if kind == "Conv2d":
        return F.conv2d(torch.as_tensor(x), torch.as_tensor(node.weight),
                        torch.as_tensor(node.bias), tuple(node.stride),
                        tuple(node.padding)).numpy()
    if kind in ("SumPool2d", "AvgPool2d"):  # kernel == stride, no padding, in these tests
        k = int(node.kernel_size[0])
        b, c, h, w = x.shape
        s = x.reshape(b, c, h // k, k, w // k, k).sum(axis=(3, 5))
        return s if kind == "SumPool2d" else s / (k * k)
    if kind == "Threshold":
        return (x > node.threshold).astype(np.float64)
    v = state.setdefault("v", np.zeros_like(x))
    if kind in ("CubaLIF", "CubaLI"):
        i = state.setdefault("i", np.zeros_like(x))
        i = i + dt / node.tau_syn * (-i + node.w_in * x)
        state["i"] = i
        v = v + dt / node.tau_mem * (node.v_leak - v + node.r * i)
    elif kind in ("LIF", "LI"):
        v = v + dt / node.tau * (node.v_leak - v + node.r * x)
    elif kind in ("IF", "I"):
        v = v + dt * node.r * x
    else:
        raise AssertionError(kind)
    if kind in ("LI", "CubaLI", "I"):
        state["v"] = v
        return v
    z = v > node.v_threshold
    state["v"] = np.where(z, node.v_reset, v)
    return z.astype(np.float64)


def euler(graph: nir.NIRGraph, order: list[str], x: np.ndarray, dt: float
          ) -> dict[str, np.ndarray]:
    """Run a flat NIR graph; nodes computed in `order`. A `Delay` of k >= 1 steps emits the
    input it received k steps ago (zeros before), so it may come before its source."""
    T, B = x.shape[:2]
    outs: dict[str, list[np.ndarray]] = {name: [] for name in order}
    states: dict[str, dict] = {name: {} for name in order}
    delays = [n for n in order if isinstance(graph.nodes[n], nir.Delay)]
    for t in range(T):
        now: dict[str, np.ndarray] = {}
        for name in order:
            node = graph.nodes[name]
            if isinstance(node, nir.Input):
                now[name] = x[t]
                continue
            if isinstance(node, nir.Delay):
                k = round(float(node.delay.flat[0]) / dt)
                hist = states[name].setdefault("buffer", [])
                now[name] = hist[-k] if len(hist) >= k else np.zeros((B, *node.delay.shape))
                continue
            total = sum(now[src] for src, dst in graph.edges if dst == name)
            if isinstance(node, nir.Output):
                now[name] = total
            else:
                now[name] = _step(node, total, states[name], dt)
        for name in delays:
            states[name]["buffer"].append(sum(now[s] for s, d in graph.edges if d == name))
        for name in order:
            outs[name].append(now[name])
    return {name: np.stack(v) for name, v in outs.items()}


def _params(rng: np.random.Generator, shape: tuple[int, ...], lo: float, hi: float) -> np.ndarray:
    return rng.uniform(lo, hi, shape)


def _graph_1d(rng: np.random.Generator) -> tuple[nir.NIRGraph, list[str], tuple[int, ...]]:
    """Input (2, 12) -> Conv1d -> CubaLIF -> Delay -> Flatten -> Affine -> LIF -> out;
    LIF -> Scale -> Threshold -> out2."""
    shape = (3, 12)
    nodes = {
        "in": nir.Input(input_type=np.array([2, 12])),
        "conv": nir.Conv1d(input_shape=12, weight=rng.normal(0, 1.5, (3, 2, 3)), stride=1,
                           padding=1, dilation=1, groups=1, bias=rng.normal(0, 0.1, 3)),
        "cuba": nir.CubaLIF(tau_syn=_params(rng, shape, 2e-3, 5e-3),
                            tau_mem=_params(rng, shape, 4e-3, 2e-2), r=_params(rng, shape, 1, 3),
                            v_leak=_params(rng, shape, -0.1, 0.2),
                            v_threshold=_params(rng, shape, 0.2, 0.5),
                            w_in=_params(rng, shape, 1, 4)),
        "delay": nir.Delay(delay=np.full(shape, 2 * DT)),
        "flat": nir.Flatten(input_type={"input": np.array(shape)}, start_dim=0, end_dim=-1),
        "fc": nir.Affine(weight=rng.normal(0, 2, (10, 36)), bias=rng.normal(0, 0.2, 10)),
        "lif": nir.LIF(tau=_params(rng, (10,), 2e-3, 1e-2), r=_params(rng, (10,), 5, 20),
                       v_leak=np.zeros(10), v_threshold=np.full(10, 0.3)),
        "scale": nir.Scale(scale=_params(rng, (10,), 0.5, 2)),
        "thr": nir.Threshold(threshold=_params(rng, (10,), 0.6, 1.2)),
        "out": nir.Output(output_type=np.array([10])),
        "out2": nir.Output(output_type=np.array([10])),
    }
    edges = [("in", "conv"), ("conv", "cuba"), ("cuba", "delay"), ("delay", "flat"),
             ("flat", "fc"), ("fc", "lif"), ("lif", "out"), ("lif", "scale"),
             ("scale", "thr"), ("thr", "out2")]
    order = ["in", "conv", "cuba", "delay", "flat", "fc", "lif", "scale", "thr", "out", "out2"]
    return nir.NIRGraph(nodes=nodes, edges=edges, type_check=False), order, (2, 12)


def _graph_2d(rng: np.random.Generator) -> tuple[nir.NIRGraph, list[str], tuple[int, ...]]:
    """Input (2, 8, 8) -> Conv2d -> IF, then SumPool -> LI, AvgPool -> CubaLI, and -> I."""
    nodes = {
        "in": nir.Input(input_type=np.array([2, 8, 8])),
        "conv": nir.Conv2d(input_shape=(8, 8), weight=rng.normal(0, 1, (4, 2, 3, 3)), stride=1,
                           padding=1, dilation=1, groups=1, bias=rng.normal(0, 0.1, 4)),
        "if": nir.IF(r=np.full((4, 8, 8), 800.0), v_threshold=np.full((4, 8, 8), 1.0)),
        "sum": nir.SumPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]),
                             padding=np.array([0, 0])),
        "avg": nir.AvgPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]),
                             padding=np.array([0, 0])),
        "f1": nir.Flatten(input_type={"input": np.array([4, 4, 4])}, start_dim=0, end_dim=-1),
        "f2": nir.Flatten(input_type={"input": np.array([4, 4, 4])}, start_dim=0, end_dim=-1),
        "l1": nir.Linear(weight=rng.normal(0, 1, (6, 64))),
        "l2": nir.Linear(weight=rng.normal(0, 1, (5, 64))),
        "l3": nir.Linear(weight=rng.normal(0, 1, (3, 64))),
        "li": nir.LI(tau=_params(rng, (6,), 3e-3, 1e-2), r=np.ones(6), v_leak=np.full(6, 0.1)),
        "culi": nir.CubaLI(tau_syn=np.full(5, 2e-3), tau_mem=np.full(5, 5e-3), r=np.ones(5),
                           v_leak=np.zeros(5), w_in=np.full(5, 2.0)),
        "int": nir.I(r=np.full(3, 50.0)),
        "o1": nir.Output(output_type=np.array([6])),
        "o2": nir.Output(output_type=np.array([5])),
        "o3": nir.Output(output_type=np.array([3])),
    }
    edges = [("in", "conv"), ("conv", "if"), ("if", "sum"), ("if", "avg"), ("sum", "f1"),
             ("avg", "f2"), ("f1", "l1"), ("f2", "l2"), ("f2", "l3"), ("l1", "li"),
             ("l2", "culi"), ("l3", "int"), ("li", "o1"), ("culi", "o2"), ("int", "o3")]
    order = ["in", "conv", "if", "sum", "avg", "f1", "f2", "l1", "l2", "l3", "li", "culi", "int",
             "o1", "o2", "o3"]
    return nir.NIRGraph(nodes=nodes, edges=edges, type_check=False), order, (2, 8, 8)


@pytest.mark.parametrize("build", [_graph_1d, _graph_2d])
@pytest.mark.parametrize("seed", [0, 1])
def test_every_node_matches_forward_euler(build, seed: int, tmp_path: Path) -> None:
    rng = np.random.default_rng(seed)
    ngraph, order, in_shape = build(rng)
    nir.write(tmp_path / "g.nir", ngraph)  # through a real file
    graph = nmcompile.from_nir(tmp_path / "g.nir", dt=DT)
    x = (rng.random((40, 3, *in_shape)) < 0.4).astype(np.float64)
    want = euler(ngraph, order, x, DT)
    ir_input = graph.inputs[0]
    got = nmcompile.run(graph, x.reshape(40, 3, *graph[ir_input].shape), record=True)
    spikes = 0
    for name in graph.outputs:
        a, b = want[name].reshape(40, 3, -1), got.outputs[name]
        if b.dtype == np.uint8:
            assert np.array_equal(a.astype(np.uint8), b), name
            spikes += int(b.sum())
        else:
            assert np.allclose(a, b, rtol=1e-9, atol=1e-12), name
    for name, layer in got.spikes.items():  # every spiking layer, not only outputs
        flat = name.split(".")[0]
        if flat in want:
            assert np.array_equal(want[flat].reshape(40, 3, -1).astype(np.uint8), layer), name
    assert spikes > 0 or build is _graph_2d
    assert sum(got.counters["spikes"].values()) > 0
    print(f"{build.__name__} seed {seed}: margin {min(got.margins.values()):.3g}")


def test_mapping_is_exact_per_step_factors() -> None:
    """The IR parameters are NIR's, discretised: beta = 1 - dt/tau, gain = dt r / tau, ..."""
    node = nir.LIF(tau=np.array([0.02]), r=np.array([3.0]), v_leak=np.array([0.5]),
                   v_threshold=np.array([0.7]))
    g = nmcompile.from_nir(nir.NIRGraph.from_list(node), dt=DT)
    lif = next(n for n in g.nodes.values() if isinstance(n, LIF))
    gain = next(n for n in g.nodes.values() if type(n).__name__ == "Scale")
    assert lif.beta == 1 - DT / 0.02 and lif.bias == DT * 0.5 / 0.02 and lif.threshold == 0.7
    assert gain.scale == DT * 3.0 / 0.02
    cuba = nir.CubaLIF(tau_syn=np.full(4, 0.004), tau_mem=np.full(4, 0.01), r=np.full(4, 2.0),
                       v_leak=np.zeros(4), v_threshold=np.ones(4), w_in=np.full(4, 3.0))
    g = nmcompile.from_nir(nir.NIRGraph.from_list(cuba), dt=DT, reset="subtract")
    lif = next(n for n in g.nodes.values() if isinstance(n, LIF))
    assert (lif.alpha, lif.beta, lif.reset) == (1 - DT / 0.004, 1 - DT / 0.01, "subtract")
    assert isinstance(lif.alpha, float)  # uniform arrays become scalars
    thr = nmcompile.from_nir(nir.NIRGraph.from_list(nir.Threshold(threshold=np.ones(2))), dt=DT)
    lif = next(n for n in thr.nodes.values() if isinstance(n, LIF))
    assert lif.beta == 0.0  # keeps no voltage: v' = x, s = x > threshold (strict, as NIR)


def test_nested_graph_is_flattened_and_its_cycle_reads_the_previous_step() -> None:
    """snnTorch's RLeaky export: a subgraph input -> lif <-> w_rec -> output, no delay node."""
    rng = np.random.default_rng(3)
    lif = nir.LIF(tau=np.full(5, 5e-3), r=np.full(5, 5.0), v_leak=np.zeros(5),
                  v_threshold=np.full(5, 0.5))
    w_rec = nir.Linear(weight=rng.normal(0, 0.5, (5, 5)))
    sub = nir.NIRGraph(nodes={"input": nir.Input(input_type=np.array([5])), "lif": lif,
                              "w_rec": w_rec, "output": nir.Output(output_type=np.array([5]))},
                       edges=[("input", "lif"), ("lif", "w_rec"), ("w_rec", "lif"),
                              ("lif", "output")], type_check=False)
    fc = nir.Linear(weight=rng.normal(0, 1.5, (5, 4)))
    nested = nir.NIRGraph(nodes={"in": nir.Input(input_type=np.array([4])), "fc": fc,
                                 "rnn": sub, "out": nir.Output(output_type=np.array([5]))},
                          edges=[("in", "fc"), ("fc", "rnn"), ("rnn", "out")], type_check=False)
    flat = nir.NIRGraph(nodes={"in": nir.Input(input_type=np.array([4])), "fc": fc, "lif": lif,
                               "w_rec": w_rec, "d": nir.Delay(delay=np.full(5, DT)),
                               "out": nir.Output(output_type=np.array([5]))},
                        edges=[("in", "fc"), ("fc", "lif"), ("lif", "d"), ("d", "w_rec"),
                               ("w_rec", "lif"), ("lif", "out")], type_check=False)
    g = nmcompile.from_nir(nested, dt=DT)
    assert ("rnn.lif", "rnn.w_rec", 1) in g.edges()
    x = (rng.random((50, 2, 4)) < 0.5).astype(np.uint8)
    want = euler(flat, ["in", "d", "w_rec", "fc", "lif", "out"], x.astype(float), DT)["out"]
    got = nmcompile.run(g, x).outputs["out"]
    assert got.sum() > 0 and np.array_equal(want.astype(np.uint8), got)


# -- round trip ------------------------------------------------------------------------------
def _exportable(seed: int) -> Graph:
    model, x = random_model(seed)
    graph = nmcompile.from_torch(model, x, dt=1e-3)
    for name, node in graph.nodes.items():  # NIR 1.0 has no adaptive threshold
        if isinstance(node, ALIF):
            graph.nx.nodes[name]["node"] = LIF(node.beta, node.threshold, node.alpha,
                                               node.bias, node.reset)
    return graph


@pytest.mark.parametrize("seed", range(16))
def test_round_trip_is_exact(seed: int, tmp_path: Path) -> None:
    graph = _exportable(seed)
    nmcompile.to_nir(graph, tmp_path / "m.nir")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        back = nmcompile.from_nir(tmp_path / "m.nir")  # dt comes from the file
    assert back == graph, KINDS[seed % len(KINDS)]
    assert nmcompile.from_nir(tmp_path / "m.nir", dt=1e-3) == graph


@pytest.mark.parametrize("seed", [2, 3, 4, 7, 12])
def test_nir_parameters_alone_give_the_same_network(seed: int, tmp_path: Path) -> None:
    """A reader that ignores nmcompile's metadata gets the same spikes (what any NIR tool sees)."""
    graph = _exportable(seed)
    nmcompile.to_nir(graph, tmp_path / "m.nir")
    # nir 1.0.8's type check takes a Conv2d's input channels from weight.shape[1], wrong for
    # groups > 1 (seed 7 has one); the file itself is what NIR specifies
    bare = nir.read(tmp_path / "m.nir", type_check=seed != 7)
    bare.metadata = {}
    for node in bare.nodes.values():
        node.metadata = {}
    reset = ("zero", "subtract")[(seed // len(KINDS)) % 2]  # NIR alone cannot say it
    other = nmcompile.from_nir(bare, dt=1e-3, reset=reset)
    for name, node in graph.nodes.items():
        if isinstance(node, (LIF, IF)):
            mine = other[name]
            assert type(mine) is type(node) and mine.reset == node.reset
            for field in ("beta", "alpha", "threshold", "bias"):
                if hasattr(node, field):
                    assert np.allclose(getattr(mine, field), getattr(node, field), rtol=1e-12,
                                       atol=1e-15), (name, field)
    _, x = random_model(seed)
    x = x.numpy().astype(np.uint8)
    a, b = nmcompile.run(graph, x, record=True), nmcompile.run(other, x, record=True)
    for name in a.spikes:
        assert np.array_equal(a.spikes[name], b.spikes[name]), name


def test_export_names_what_nir_cannot_say(tmp_path: Path) -> None:
    model, x = random_model(5)  # an ALIF layer
    graph = nmcompile.from_torch(model, x, dt=1e-3)
    with pytest.raises(nmcompile.UnsupportedError, match=r"'alif1' .*adaptive"):
        nmcompile.to_nir(graph, tmp_path / "a.nir")
    assert not (tmp_path / "a.nir").exists()
    with pytest.raises(nmcompile.GraphError, match=r"no dt"):
        nmcompile.to_nir(nmcompile.from_torch(*random_model(0)), tmp_path / "b.nir")
    with pytest.raises(nmcompile.UnsupportedError, match=r"float graph"):
        nmcompile.to_nir(nmcompile.quantize(_exportable(0)), tmp_path / "c.nir")
    g = Graph(dt=1e-3)
    g.add_node("x", Input((3,)))
    g.add_node("fc", Dense(np.ones((3, 3))))
    g.add_node("n", IF(threshold=1.0, bias=0.5))
    g.add_node("out", Output())
    for e in [("x", "fc"), ("fc", "n"), ("n", "out")]:
        g.add_edge(*e)
    with pytest.raises(nmcompile.UnsupportedError, match=r"'n' .*bias"):
        nmcompile.to_nir(g)


def _one(node) -> nir.NIRGraph:
    return nir.NIRGraph.from_list(node, type_check=False)


def test_import_errors_name_the_node() -> None:
    lif = nir.LIF(tau=np.full(2, 1e-2), r=np.ones(2), v_leak=np.zeros(2),
                  v_threshold=np.ones(2), v_reset=np.array([0.0, -0.5]))
    with pytest.raises(nmcompile.UnsupportedError, match=r"'lif' .*v_reset"):
        nmcompile.from_nir(_one(lif), dt=DT)
    with pytest.raises(nmcompile.NmcompileError, match=r"no time step.*--dt"):
        nmcompile.from_nir(_one(lif))
    fast = nir.LIF(tau=np.full(2, 1e-4), r=np.ones(2), v_leak=np.zeros(2),
                   v_threshold=np.ones(2))
    with pytest.raises(nmcompile.UnsupportedError, match=r"'lif'.*dt=0.001.*larger than tau"):
        nmcompile.from_nir(_one(fast), dt=DT)
    for delay, what in [(np.array([1e-3, 2e-3]), "different delays"),
                        (np.full(2, 1.5e-3), "not a whole number")]:
        with pytest.raises(nmcompile.UnsupportedError, match=f"'delay' .*{what}"):
            nmcompile.from_nir(_one(nir.Delay(delay=delay)), dt=DT)


def test_fixture_round_trip_and_dt_conflict(tmp_path: Path) -> None:
    braille = FIXTURES / "03_rnn_braille_noDelay_bias_zero.nir"
    if not braille.exists():
        pytest.skip("the workplace's shared fixtures are absent")
    g = nmcompile.from_nir(braille, dt=1e-4)
    nmcompile.to_nir(g, tmp_path / "b.nir")
    assert nmcompile.from_nir(tmp_path / "b.nir") == g
    other = nmcompile.from_nir(tmp_path / "b.nir", dt=5e-5)  # another dt: NIR's parameters
    assert other.dt == 5e-5 and other["lif1.lif"].beta == pytest.approx(1 - 5e-5 / (1e-4 / 0.1))
    assert ("lif1.lif", "lif1.w_rec", 2) in other.edges()  # the 1e-4 s recurrent delay
    with pytest.raises(nmcompile.UnsupportedError, match=r"'delay:lif1.lif:lif1.w_rec'.*whole"):
        nmcompile.from_nir(tmp_path / "b.nir", dt=2e-4)


# -- command line ----------------------------------------------------------------------------

@pytest.mark.skipif(not FIXTURES.is_dir(), reason="the workplace's shared fixtures are absent")
def test_cli_reads_nir_with_dt(tmp_path: Path, capsys) -> None:
    braille = str(FIXTURES / "03_rnn_braille_noDelay_noBias_subtract.nir")
    assert cli.main(["inspect", braille]) == 1
    err = capsys.readouterr().err
    assert "--dt" in err and "no time step" in err
    assert cli.main(["inspect", braille, "--dt", "1e-4", "--reset", "subtract"]) == 0
    out = capsys.readouterr().out
    assert "dt=0.0001" in out and "lif1.lif (delay 1)" in out and "reset=subtract" in out
    q = str(tmp_path / "q.nmc")
    assert cli.main(["quantize", braille, "--dt", "1e-4", "-o", q]) == 0
    spikes = (np.random.default_rng(0).random((30, 2, 12)) < 0.3).astype(np.uint8)
    np.save(tmp_path / "x.npy", spikes)
    assert cli.main(["run", braille, "--dt", "1e-4", "--input", str(tmp_path / "x.npy")]) == 0
    assert cli.main(["verify", braille, "--dt", "1e-4", "--samples", "4"]) == 0
    assert cli.main(["compile", braille, "--dt", "1e-4", "--target", "lava", "-o",
                     str(tmp_path / "lava")]) == 0
    assert (tmp_path / "lava" / "network.py").is_file()
    capsys.readouterr()
    assert cli.main(["estimate", braille, "--samples", "2"]) == 1  # every MODEL verb
    assert "--dt" in capsys.readouterr().err


def test_round_trip_of_every_exportable_node(tmp_path: Path) -> None:
    """Delays of 2 and 3 steps, a skip path, a Dense reading an image, per-channel scales,
    IF, I, Threshold, CubaLIF, CubaLI, pooling, two inputs and two outputs."""
    from nmcompile.ir import LI, AvgPool2d, Conv2d, Flatten, Scale, SumPool2d

    rng = np.random.default_rng(0)
    g = Graph(dt=5e-4, metadata={"dataset": {"name": "none"}, "note": [1, 2.5]})
    nodes = {
        "img": Input((2, 6, 6)), "vec": Input((4,)),
        "conv": Conv2d(rng.normal(size=(3, 2, 3, 3)), None, padding=1),
        "chan": Scale(rng.uniform(0.5, 2, (3, 1, 1))),
        "if": IF(threshold=rng.uniform(0.5, 1, (3, 6, 6)), reset="subtract"),
        "sum": SumPool2d(2), "avg": AvgPool2d(3),
        "flat": Flatten(), "fc_img": Dense(rng.normal(size=(5, 12))),
        "fc_sum": Dense(rng.normal(size=(5, 27)), rng.normal(size=5)),
        "cuba": LIF(beta=0.8, threshold=1.0, alpha=rng.uniform(0.1, 0.9, 5), bias=0.1),
        "thr": LIF(beta=0.0, threshold=0.5),
        "fc_vec": Dense(rng.normal(size=(5, 4))),
        "int": LI(beta=1.0), "culi": LI(beta=0.9, alpha=0.5, bias=-0.2),
        "out": Output(), "out2": Output(),
    }
    for name, node in nodes.items():
        g.add_node(name, node)
    for src, dst, d in [("img", "conv", 0), ("conv", "chan", 0), ("chan", "if", 0),
                        ("if", "sum", 0), ("if", "avg", 2), ("sum", "flat", 0),
                        ("flat", "fc_sum", 0), ("avg", "fc_img", 0), ("fc_img", "cuba", 0),
                        ("fc_sum", "cuba", 3), ("vec", "fc_vec", 0), ("fc_vec", "cuba", 1),
                        ("cuba", "thr", 0), ("thr", "out", 0), ("cuba", "int", 0),
                        ("int", "culi", 2), ("culi", "out2", 0)]:
        g.add_edge(src, dst, d)
    g.validate()
    nmcompile.to_nir(g, tmp_path / "all.nir")
    back = nmcompile.from_nir(tmp_path / "all.nir")
    assert back == g
    written = nir.read(tmp_path / "all.nir")
    kinds = {type(n).__name__ for n in written.nodes.values()}
    assert {"IF", "I", "Threshold", "CubaLIF", "CubaLI", "Delay", "Scale", "SumPool2d",
            "AvgPool2d", "Conv2d", "Affine", "Linear", "Flatten"} <= kinds
    x = {"img": (rng.random((12, 2, 2, 6, 6)) < 0.5).astype(np.uint8),
         "vec": (rng.random((12, 2, 4)) < 0.5).astype(np.uint8)}
    a, b = nmcompile.run(g, x), nmcompile.run(back, x)
    assert all(np.array_equal(a.outputs[k], b.outputs[k]) for k in a.outputs)


def test_parallel_paths_and_shared_recurrent_projection() -> None:
    """Two NIR paths between the same two nodes (direct and through a Delay) both count; a
    cycle whose projection also feeds forward is delayed on the edge back into the neuron."""
    lif = nir.LIF(tau=np.full(3, 4e-3), r=np.full(3, 2.0), v_leak=np.zeros(3),
                  v_threshold=np.full(3, 0.4))
    w = nir.Linear(weight=np.eye(3) * 0.5)
    shared = nir.Linear(weight=np.full((3, 3), 0.3))
    g = nmcompile.from_nir(nir.NIRGraph(
        nodes={"in": nir.Input(input_type=np.array([3])), "w": w,
               "d": nir.Delay(delay=np.full(3, 2 * DT)), "lif": lif, "rec": shared,
               "out": nir.Output(output_type=np.array([3])),
               "out2": nir.Output(output_type=np.array([3]))},
        edges=[("in", "w"), ("w", "lif"), ("w", "d"), ("d", "lif"), ("lif", "rec"),
               ("rec", "lif"), ("rec", "out2"), ("lif", "out")], type_check=False), dt=DT)
    edges = g.edges()
    assert ("rec", "lif.gain", 1) in edges and ("lif", "rec", 0) in edges
    assert ("w", "lif.gain", 0) in edges or ("w", "lif.gain", 2) in edges
    via = [n for n in g.nodes if n.startswith("w.to.")]
    assert len(via) == 1 and {d for s, _, d in edges if s == "w"} == {0, 2}
    x = np.zeros((6, 1, 3), np.uint8)
    x[0] = 1
    v = nmcompile.run(g, x, record=True).states["lif"]["v"][:, 0, 0]
    beta, gain = 1 - DT / 4e-3, DT * 2.0 / 4e-3
    assert v[0] == pytest.approx(gain * 0.5) and v[2] == pytest.approx(
        beta * beta * gain * 0.5 + gain * 0.5)  # the delayed copy arrives two steps later


def test_files_that_are_not_nir_or_too_large(tmp_path: Path) -> None:
    bad = tmp_path / "bad.nir"
    bad.write_bytes(b"not hdf5")
    with pytest.raises(nmcompile.FormatError, match=r"bad\.nir"):
        nmcompile.from_nir(bad, dt=DT)
    good = tmp_path / "g.nir"
    nir.write(good, nir.NIRGraph.from_list(nir.Linear(weight=np.ones((50, 40)))))
    with pytest.raises(nmcompile.LimitError, match=r"g\.nir would take .*\(16,\d{3} bytes\)"):
        nmcompile.from_nir(good, dt=DT, max_bytes=10_000)
    assert nmcompile.from_nir(good, dt=DT).validate()["linear"] == (50,)
