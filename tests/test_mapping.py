"""Mapping onto cores (issue 15): per-core limits checked by an independent count here, the
sizes by hand, the message and hop counters against a hand trace and a per-spike brute force,
and placements kept in the `.nmc` file."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest

import nmcompile
from nmcompile.errors import LimitError
from nmcompile.ir import LIF, Dense, Graph, Input, Output
from nmcompile.ir.quantized import QLIF, QConv2d, QDense, QSparse
from nmcompile.ir.synapses import conv_synapses
from nmcompile.mapping import load_chip, mesh

ROOT = Path(__file__).resolve().parents[1]


def chip_file(tmp_path: Path, name: str = "tiny", neurons: int = 4, bits: int = 1 << 20,
              axons: int = 4096, tiles: tuple[int, int] = (3, 1), per_tile: int = 1) -> Path:
    """A user chip: `neurons` per core, `per_tile` cores per tile, tiles (columns, rows)."""
    src = 'source = "test"'
    path = tmp_path / f"{name}.toml"
    path.write_text(f"""name = "{name}"
[core]
neurons = {{ value = {neurons}, {src} }}
synapse_memory_bits = {{ value = {bits}, {src} }}
input_axons = {{ value = {axons}, {src} }}
output_axons = {{ value = {axons}, {src} }}
conv_stored = {{ value = "kernel", {src} }}
[core.synapse_bits]
dense = {{ value = 8, {src} }}
sparse = {{ value = 20, {src} }}
conv = {{ value = 8, {src} }}
[mesh]
tiles = {{ value = [{tiles[0]}, {tiles[1]}], {src} }}
cores_per_tile = {{ value = {per_tile}, {src} }}
chips_per_board = {{ value = 1, {src} }}
host = {{ value = [0, 0], side = "west", {src} }}
""")
    return path


def chain(pairs, shape) -> Graph:
    g = Graph()
    g.add_node("x", Input(shape))
    prev = "x"
    for name, node in pairs:
        g.add_node(name, node)
        g.add_edge(prev, name)
        prev = name
    g.add_node("out", Output())
    g.add_edge(prev, "out")
    return g


def targets(graph: Graph, proj: str) -> list[np.ndarray]:
    """Per source neuron, its target neurons: read from the weights, independently of the
    mapper (a dense matrix stores every entry, a convolution every tap inside the input)."""
    node = graph[proj]
    if isinstance(node, QDense):
        n_out, n_in = node.weight.shape
        return [np.arange(n_out)] * n_in
    if isinstance(node, QConv2d):
        (src, _), = graph.predecessors(proj)
        shapes = graph.shapes()
        pre, post, _ = conv_synapses(node.weight, shapes[src], shapes[proj], node.stride,
                                     node.padding, node.dilation, node.groups)
        return [post[pre == i] for i in range(math.prod(shapes[src]))]
    assert isinstance(node, QSparse)
    return [node.rows[node.cols == i] for i in range(node.shape[1])]


def independent_loads(graph: Graph, chip) -> dict[str, np.ndarray]:
    """Per core: neurons, synapse bits, input and output axons, counted synapse by synapse."""
    cores = graph.placement.cores
    n = graph.placement.n_cores
    loads = {k: np.zeros(n, np.int64) for k in ("neurons", "bits", "in", "out")}
    for where in cores.values():
        loads["neurons"] += np.bincount(where, minlength=n)
    for proj, node in graph.nodes.items():
        if not isinstance(node, (QDense, QSparse, QConv2d)):
            continue
        (src, _), = graph.predecessors(proj)
        (dst, _), = graph.successors(proj)
        kind = {QDense: "dense", QSparse: "sparse", QConv2d: "conv"}[type(node)]
        width = chip.synapse_bits[kind]
        if kind == "conv" and chip.conv_stored == "kernel":  # a kernel slice per channel
            width = 0
            for channel in cores[dst].reshape(node.weight.shape[0], -1):
                loads["bits"][np.unique(channel)] += node.weight[0].size * \
                    chip.synapse_bits["conv"]
        for i, tg in enumerate(targets(graph, proj)):
            dest = np.unique(cores[dst][tg])
            np.add.at(loads["bits"], cores[dst][tg], width)
            loads["in"][dest] += 1
            if src in cores:
                loads["out"][cores[src][i]] += dest.size
    return loads


def obeys(graph: Graph, chip) -> None:
    loads = independent_loads(graph, chip)
    assert loads["neurons"].max() <= chip.neurons
    assert loads["bits"].max() <= chip.synapse_memory_bits
    assert loads["in"].max() <= chip.input_axons and loads["out"].max() <= chip.output_axons


def mlp(n_hidden: int = 2500, n_in: int = 100, seed: int = 0) -> Graph:
    rng = np.random.default_rng(seed)
    g = chain([("fc", Dense(rng.normal(0, 0.3, (n_hidden, n_in)))), ("n", LIF(beta=0.9)),
               ("fc2", Dense(rng.normal(0, 0.3, (10, n_hidden)))), ("o", LIF(beta=0.9))],
              (n_in,))
    return nmcompile.quantize(g)


@pytest.mark.parametrize("strategy", ["sequential", "traffic"])
def test_a_2500_neuron_layer_on_1024_neuron_cores_takes_3(strategy) -> None:
    q = mlp()
    x = (np.random.default_rng(1).random((10, 1, 100)) < 0.2).astype(np.uint8)
    m = nmcompile.map(q, "loihi1", strategy=strategy, inputs=x)
    chip = load_chip("loihi1")
    assert np.unique(m.placement.cores["n"]).size == 3  # ceil(2500 / 1024)
    obeys(m, chip)
    r, ref = nmcompile.run(m, x, record=True), nmcompile.run(q, x, record=True)
    for layer, s in ref.spikes.items():  # placing changes nothing the emulator computes
        assert np.array_equal(r.spikes[layer], s), layer
    assert "core_messages" in r.counters and "core_messages" not in ref.counters


def test_sequential_is_consecutive_pieces_in_mesh_order() -> None:
    m = nmcompile.map(mlp(), "loihi1", strategy="sequential")
    n = m.placement.cores["n"]
    assert np.array_equal(n, np.repeat([0, 1, 2], [1024, 1024, 452]))
    assert np.array_equal(m.placement.cores["o"], np.full(10, 3))


def axon_bound_graph() -> Graph:
    """A convolution over 3 channels, a grouped strided one, and a sparse layer, on cores
    whose 100 input axons decide every cut."""
    rng = np.random.default_rng(3)
    rows, cols = rng.integers(0, 30, 400), rng.integers(0, 4 * 6 * 6, 400)
    return chain([("c1", QConv2d(rng.integers(-3, 4, (8, 3, 3, 3)), padding=1)),
                  ("a", QLIF(vth=4)),
                  ("c2", QConv2d(rng.integers(-3, 4, (4, 4, 3, 3)), stride=2, padding=1,
                                 groups=2)),
                  ("b", QLIF(vth=4)),
                  ("s", QSparse(rows, cols, rng.integers(1, 4, 400), (30, 4 * 6 * 6))),
                  ("c", QLIF(vth=4))], (3, 12, 12))


def test_sequential_pieces_are_the_longest_that_fit(tmp_path) -> None:
    """Each piece keeps the limits and its next neuron would break one: counted here from
    the synapses (`targets`), not by the mapper."""
    m = nmcompile.map(axon_bound_graph(), chip_file(tmp_path, neurons=64, axons=100,
                                                    tiles=(40, 40)), strategy="sequential")
    chip = load_chip("tiny", paths=[tmp_path])
    obeys(m, chip)
    cores = m.placement.cores
    feeds = {"a": "c1", "b": "c2", "c": "s"}
    for layer, proj in feeds.items():
        where = cores[layer]
        assert (np.diff(where) >= 0).all() and np.unique(where).size >= 3, layer
        lists = targets(m, proj)
        for core in np.unique(where)[:-1]:
            run = np.flatnonzero(where == core)
            longer = np.zeros(where.size, bool)
            longer[run[0]:run[-1] + 2] = True  # the piece and the neuron after it
            axons = sum(bool(longer[t].any()) for t in lists)
            assert run.size == chip.neurons or axons > chip.input_axons, (layer, core)
    assert np.unique(cores["a"]).size > 8 * 144 // 64  # the axons, not the neurons, decide


def used(graph: Graph) -> int:
    """Distinct cores a placement uses."""
    return np.unique(np.concatenate(list(graph.placement.cores.values()))).size


@pytest.mark.parametrize("strategy", ["sequential", "traffic"])
def test_at_least_n_cores(strategy) -> None:
    for cores in (6, 16):
        m = nmcompile.map(mlp(), "loihi1", strategy=strategy, cores=cores)
        assert used(m) >= cores
        obeys(m, load_chip("loihi1"))


def test_a_fan_in_larger_than_a_core_is_refused_by_name(tmp_path) -> None:
    q = mlp(n_hidden=8, n_in=300)
    small = chip_file(tmp_path, bits=2000)  # 300 inputs x 8 bits = 2,400 bits per neuron
    with pytest.raises(LimitError, match=r"layer 'n' needs 2,400 bits .* chip 'tiny'"):
        nmcompile.map(q, small)
    few = chip_file(tmp_path, name="few", axons=200)
    with pytest.raises(LimitError, match=r"layer 'n' has a fan-in of 300 .* 'few'"):
        nmcompile.map(q, few)


def hand_graph() -> Graph:
    """2 inputs -> dense (all weights 1) -> 8 LIF that spike whenever an input does ->
    sparse (A_i -> B_{i % 4}) -> 4 LIF."""
    a = QLIF(vth=0, du=4095, dv=4095)
    b = QLIF(vth=1000, du=4095, dv=4095)
    rows = np.arange(8) % 4
    return chain([("w", QDense(np.ones((8, 2), int))), ("A", a),
                  ("s", QSparse(rows, np.arange(8), np.ones(8, int), (4, 8))), ("B", b)], (2,))


def test_messages_and_hops_on_a_hand_traced_3_core_example(tmp_path) -> None:
    chip = chip_file(tmp_path)  # 4 neurons per core, tiles 3 x 1 of one core each
    m = nmcompile.map(hand_graph(), chip, strategy="sequential")
    assert m.placement.cores["A"].tolist() == [0] * 4 + [1] * 4
    assert m.placement.cores["B"].tolist() == [2] * 4
    x = np.array([[1, 0], [1, 1], [0, 0]]).reshape(3, 1, 2)
    r = nmcompile.run(m, x, record=True)
    assert r.spikes["A"][:, 0].sum(axis=1).tolist() == [8, 8, 0]
    c = r.counters
    # 3 input spikes, each one message to core 0 and one to core 1; entering west of tile
    # (0, 0): 1 hop to core 0, 2 hops to core 1
    assert c["core_messages"]["x"] == 6 and c["hops_east_west"]["x"] == 3 * (1 + 2)
    # 16 spikes of A, one message each to core 2: 2 hops from core 0, 1 from core 1
    assert c["core_messages"]["A"] == 16 and c["hops_east_west"]["A"] == 8 * 2 + 8 * 1
    assert c["hops_north_south"] == {"x": 0, "A": 0}
    assert c["messages_within_tile"] == {"x": 0, "A": 0}
    assert r.traffic["core_messages"] == {"host": 6, "0": 8, "1": 8}
    assert r.traffic["link_packets"] == {"host->0,0": 6, "0,0->1,0": 3 + 8, "1,0->2,0": 16}


def brute_force(graph: Graph, result, x: np.ndarray, chip) -> dict[str, int]:
    """Messages and hops, spike by spike: each spike to each distinct destination core."""
    cores = graph.placement.cores
    steps = x.shape[0] * x.shape[1]
    sent = {"x": np.asarray(x).reshape(steps, -1) != 0,
            **{k: v.reshape(steps, -1) != 0 for k, v in result.spikes.items()}}
    msgs = hops = 0
    for proj, node in graph.nodes.items():
        if not isinstance(node, (QDense, QSparse, QConv2d)):
            continue
        (src, _), = graph.predecessors(proj)
        (dst, _), = graph.successors(proj)
        for i, tg in enumerate(targets(graph, proj)):
            spikes = int(sent[src][:, i].sum())
            for core in np.unique(cores[dst][tg]):
                origin = cores[src][i] if src in cores else mesh.HOST
                ew, ns = mesh.hops(chip, np.array([origin]), np.array([core]))
                msgs += spikes
                hops += spikes * int(ew[0] + ns[0])
    return {"messages": msgs, "hops": hops}


def reservoir(n: int = 400, k: int = 20) -> Graph:
    sys.path.insert(0, str(ROOT / "examples"))
    from reservoir import build_reservoir

    return nmcompile.quantize(build_reservoir(n=n, synapses=k, inputs=10, sigma=2.0))


@pytest.mark.parametrize("strategy", ["sequential", "traffic"])
def test_counters_equal_a_per_spike_count_on_a_recurrent_graph(tmp_path, strategy) -> None:
    q = reservoir()
    chip = chip_file(tmp_path, neurons=64, tiles=(2, 2), per_tile=2)
    x = (np.random.default_rng(0).random((20, 1, 10)) < 0.5).astype(np.uint8)
    m = nmcompile.map(q, chip, strategy=strategy, inputs=x)
    obeys(m, load_chip(chip))
    r = nmcompile.run(m, x, record=True)
    want = brute_force(m, r, x, load_chip(chip))
    assert want["messages"] > 0
    assert sum(r.counters["core_messages"].values()) == want["messages"]
    assert sum(r.counters["hops_east_west"].values()) + \
        sum(r.counters["hops_north_south"].values()) == want["hops"]
    assert sum(r.traffic["spike_hops"].values()) == want["hops"]


def test_traffic_cuts_messages_and_hops_against_sequential_on_a_local_network(tmp_path):
    q = reservoir(n=900, k=30)
    chip = chip_file(tmp_path, neurons=64, tiles=(4, 4), per_tile=1)
    x = (np.random.default_rng(0).random((20, 1, 10)) < 0.5).astype(np.uint8)
    got = {}
    for strategy in ("sequential", "traffic"):
        m = nmcompile.map(q, chip, strategy=strategy, inputs=x)
        r = nmcompile.run(m, x)
        got[strategy] = (sum(r.counters["core_messages"].values()), used(m),
                         sum(r.traffic["spike_hops"].values()))
    (seq_msgs, seq_cores, seq_hops), (tr_msgs, tr_cores, tr_hops) = got.values()
    assert tr_msgs < seq_msgs and tr_hops < 0.9 * seq_hops, got  # measured 0.93, 0.84
    assert tr_cores <= math.ceil(1.1 * seq_cores), got


def test_a_placement_is_kept_in_the_file(tmp_path) -> None:
    m = nmcompile.map(mlp(n_hidden=300), "loihi1")
    path = nmcompile.save(m, tmp_path / "m.nmc")
    back = nmcompile.load(path)
    assert back == m and back.placement.strategy == "traffic"
    assert back.placement.chip["name"] == "loihi1"
    unplaced = nmcompile.save(mlp(n_hidden=300), tmp_path / "q.nmc")
    assert nmcompile.load(unplaced).placement is None


def test_core_events_and_messages_of_a_strided_grouped_convolution(tmp_path) -> None:
    rng = np.random.default_rng(2)
    g = chain([("c", QConv2d(rng.integers(-3, 4, (4, 1, 3, 3)), stride=2, padding=1,
                             groups=2)),
               ("a", QLIF(vth=2, du=4095, dv=4095)),
               ("d", QDense(rng.integers(-3, 4, (5, 4 * 4 * 4)))), ("b", QLIF(vth=3))],
              (2, 8, 8))
    m = nmcompile.map(g, chip_file(tmp_path, neurons=16, tiles=(3, 3)), strategy="traffic")
    x = (rng.random((10, 2, 2, 8, 8)) < 0.4).astype(np.uint8)
    r = nmcompile.run(m, x)
    assert sum(r.traffic["core_events"].values()) == sum(r.counters["synaptic_events"].values())
    assert np.unique(m.placement.cores["a"]).size >= 4  # 64 neurons on 16-neuron cores
    chip = load_chip(m.placement.chip["name"], paths=[tmp_path])
    obeys(m, chip)
    r = nmcompile.run(m, x, record=True)
    want = brute_force(m, r, x, chip)
    assert sum(r.counters["core_messages"].values()) == want["messages"] > 0
    assert sum(r.traffic["spike_hops"].values()) == want["hops"]


def test_report_table_json_and_plot(tmp_path) -> None:
    from nmcompile.mapping import report

    m = nmcompile.map(hand_graph(), chip_file(tmp_path), strategy="sequential")
    x = np.array([[1, 0], [1, 1], [0, 0]]).reshape(3, 1, 2)
    info = report.summary(m, nmcompile.run(m, x), steps=3)
    assert info["cores"] == 3 and info["chips"] == 1
    assert [c["neurons"] for c in info["per_core"]] == [4, 4, 4]
    assert info["per_core"][0]["neurons_used"] == 1.0
    assert info["traffic"]["core_messages"] == 6 + 16
    text = report.table(info)
    assert "messages 22" in text and "hops 33 east-west" in text
    png = report.plot(info, tmp_path / "mesh.png")
    assert png.read_bytes().startswith(b"\x89PNG")


def test_a_bad_placement_in_a_file_is_refused(tmp_path) -> None:
    import json
    import zipfile

    from nmcompile.errors import FormatError

    path = nmcompile.save(nmcompile.map(mlp(n_hidden=300), "loihi1"), tmp_path / "m.nmc")
    with zipfile.ZipFile(path) as z:
        doc, arrays = json.loads(z.read("graph.json")), z.read("arrays.npz")
    for change, message in ((lambda d: d["placement"]["cores"].update(nope=d["placement"]
                                                                      ["cores"]["n"]),
                             "names layer 'nope'"),
                            (lambda d: d["placement"]["cores"].update(o=d["placement"]
                                                                      ["cores"]["n"]),
                             "one core per neuron")):
        bad = json.loads(json.dumps(doc))
        change(bad)
        out = tmp_path / "bad.nmc"
        with zipfile.ZipFile(out, "w") as z:
            z.writestr("graph.json", json.dumps(bad))
            z.writestr("arrays.npz", arrays)
        with pytest.raises(FormatError, match=message):
            nmcompile.load(out)


def test_a_readout_on_the_host(tmp_path) -> None:
    chip = chip_file(tmp_path)
    with pytest.raises(nmcompile.GraphError, match="host layer 'A' feeds layer 'B'"):
        nmcompile.map(hand_graph(), chip, host_layers=["A"])
    m = nmcompile.map(hand_graph(), chip, strategy="sequential", host_layers=["B"])
    assert set(m.placement.cores) == {"A"}
    x = np.array([[1, 0], [1, 1], [0, 0]]).reshape(3, 1, 2)
    r = nmcompile.run(m, x)
    # A's 16 spikes each go to the host once: core 0 is 1 hop from the port, core 1 two
    assert r.counters["core_messages"]["A"] == 16
    assert r.counters["hops_east_west"]["A"] == 8 * 1 + 8 * 2
    assert r.traffic["link_packets"]["0,0->host"] == 16
    assert r.traffic["link_packets"]["1,0->0,0"] == 8


def test_placement_ends_where_no_swap_or_move_cuts_the_weighted_hops(tmp_path) -> None:
    """Ten parts with random traffic on a 4 x 3 mesh of twelve cores, the host sending to
    some: from a random start, the swaps cut the traffic-weighted hops, and at the end no
    swap of two parts and no move to a free core cuts them further (every one tried here,
    with the cost computed from scratch)."""
    import scipy.sparse as sp

    from nmcompile.mapping import place

    chip = load_chip("tiny", paths=[chip_file(tmp_path, neurons=8, tiles=(4, 3)).parent])
    rng = np.random.default_rng(0)
    t = np.where(rng.random((10, 10)) < 0.3, rng.integers(1, 20, (10, 10)), 0).astype(float)
    np.fill_diagonal(t, 0)
    host = np.where(rng.random(10) < 0.3, 5.0, 0.0)
    cores = np.arange(12)
    cx, cy = mesh.tiles_of(chip, cores)
    ew, ns = mesh.hops(chip, np.full(12, mesh.HOST), cores)

    def cost(where: np.ndarray) -> float:
        d = np.abs(cx[where][:, None] - cx[where][None, :]) + \
            np.abs(cy[where][:, None] - cy[where][None, :])
        return float((t * d).sum() + host @ (ew + ns)[where])

    start = rng.permutation(12)[:10]
    sym = sp.csr_matrix(t)
    where = place.swaps(sym, host, start, cx, cy, (ew + ns).astype(float))
    assert np.unique(where).size == 10 and cost(where) < cost(start)
    for p in range(10):
        for c in range(12):
            other = where.copy()
            q = np.flatnonzero(where == c)
            other[p] = c
            if q.size:
                other[q[0]] = where[p]
            assert cost(other) >= cost(where) - 1e-9, (p, c)
    placed = place.place_by_traffic(chip, sp.csr_matrix(t), host)
    assert np.unique(placed).size == 10 and cost(placed) <= cost(start)


def test_link_packets_of_many_routes_equal_walking_each_route() -> None:
    """`mesh.link_packets` (every route at once) against `mesh.route` walked message by
    message, on two Loihi 1 chips side by side, from cores and the host, and back to it."""
    chip = load_chip("loihi1")
    rng = np.random.default_rng(4)
    src = rng.integers(-1, 256, 300)
    src[src < 0] = mesh.HOST
    dst, msgs = rng.integers(0, 256, 300), rng.integers(1, 5, 300)
    back, back_msgs = rng.integers(0, 256, 20), rng.integers(1, 5, 20)
    want: dict[str, int] = {}
    walks = [(s, d, k) for s, d, k in zip(src, dst, msgs, strict=True)] + \
        [(b, mesh.HOST, k) for b, k in zip(back, back_msgs, strict=True)]
    for s, d, k in walks:
        for x0, y0, x1, y1 in mesh.route(chip, int(s), int(d)):
            name = (f"host->{x1},{y1}" if x0 < 0 else f"{x0},{y0}->host" if x1 < 0
                    else f"{x0},{y0}->{x1},{y1}")
            want[name] = want.get(name, 0) + int(k)
    assert mesh.link_packets(chip, src, dst, msgs, back, back_msgs) == want
