"""Energy terms beyond the first models (issue 15, point 4): the SANA-FE-calibrated Loihi device,
synaptic ops split by synapse format, the routing terms a mapped run makes priceable, and the
ANN baselines' SRAM reads. Every expected value is counted here independently of
`nmcompile.analysis`: synapses from loops over the weights, events from the recorded spikes,
energies from the published figures written out in the test."""

from __future__ import annotations

import re

import numpy as np
import pytest

import nmcompile
from nmcompile.analysis import analytic, estimate, from_result, static_counts
from nmcompile.analysis.energy import MAPPING, NEEDS, load_device, read_device
from nmcompile.errors import FormatError, UnsupportedError
from nmcompile.ir import LIF, Conv2d, Dense, Graph, Input, Output, Sparse
from nmcompile.ir.quantized import QLIF, QConv2d, QDense, QSparse
from nmcompile.result import RunResult

PJ = 1e-12
#: SANA-FE arch/loihi.yaml at c55bfa87a0d9c027a4f68ead21bca5ac630c9886 (Boyle et al., TCAD 2025)
SANAFE = {"synaptic_ops_dense": 35.5 * PJ, "synaptic_ops_sparse": 33.6 * PJ,
          "synaptic_ops_conv": 24.0 * PJ, "neuron_updates": 51.2 * PJ,
          "active_updates": 21.6 * PJ, "spikes": 69.3 * PJ, "core_messages": 111 * PJ,
          "hops_east_west": 3.0 * PJ, "hops_north_south": 4.2 * PJ}
#: Davies et al., IEEE Micro 2018, Table 2 (pre-silicon)
DAVIES = {"synaptic_ops": 23.6 * PJ, "active_updates": 81 * PJ, "idle_updates": 52 * PJ,
          "within_tile_messages": 1.7 * PJ, "hops_east_west": 3.0 * PJ,
          "hops_north_south": 4.0 * PJ}
#: Horowitz, ISSCC 2014: 8 KB SRAM, 64-bit read about 10 pJ -> 1.25 pJ per byte
SRAM_PER_BYTE = 10 * PJ / 8
ROUTING_COUNTERS = ("core_messages", "hops_east_west", "hops_north_south",
                    "messages_within_tile")


def three_kinds() -> tuple[Graph, np.ndarray]:
    """Input (2, 5, 5) -> QConv2d (stride 2, padding 1) -> QLIF "lc" -> QSparse -> QLIF "h" ->
    QDense (with stored zeros) -> QLIF "o" -> Output, and 12 steps x 3 samples of input."""
    rng = np.random.default_rng(7)
    g = Graph()
    g.add_node("x", Input((2, 5, 5)))
    g.add_node("c", QConv2d(rng.integers(-40, 60, (3, 2, 3, 3)), stride=2, padding=1))
    g.add_node("lc", QLIF(vth=120, du=1024, dv=512))
    mask = rng.random((10, 27)) < 0.4  # the conv's output is 3 x 3 x 3 = 27
    rows, cols = np.nonzero(mask)
    g.add_node("s", QSparse(rows, cols, rng.integers(-10, 50, len(rows)), (10, 27)))
    g.add_node("h", QLIF(vth=60, du=2048, dv=1024))
    w = rng.integers(-20, 40, (4, 10))
    w[:, ::3] = 0
    g.add_node("d", QDense(w))
    g.add_node("o", QLIF(vth=60, du=2048, dv=1024))
    g.add_node("out", Output())
    for a, b in [("x", "c"), ("c", "lc"), ("lc", "s"), ("s", "h"), ("h", "d"), ("d", "o"),
                 ("o", "out")]:
        g.add_edge(a, b)
    x = (rng.random((12, 3, 2, 5, 5)) < 0.3).astype(np.int64)
    return g, x


def conv_fanout_by_loops(weight: np.ndarray, in_shape: tuple[int, int, int], stride: int,
                         pad: int, out_hw: tuple[int, int]) -> np.ndarray:
    """Outputs each input element reaches, by walking every output and kernel tap."""
    fan = np.zeros(in_shape, np.int64)
    c_out, c_in, kh, kw = weight.shape
    for _co in range(c_out):
        for oy in range(out_hw[0]):
            for ox in range(out_hw[1]):
                for ci in range(c_in):
                    for ky in range(kh):
                        for kx in range(kw):
                            iy, ix = oy * stride - pad + ky, ox * stride - pad + kx
                            if 0 <= iy < in_shape[1] and 0 <= ix < in_shape[2]:
                                fan[ci, iy, ix] += 1
    return fan.reshape(-1)


def spikes_per_element(values: np.ndarray) -> np.ndarray:
    """Events each element emits over the run: (T, B, ...) -> (n,)."""
    v = np.asarray(values)
    return np.count_nonzero(v.reshape(v.shape[0] * v.shape[1], -1), axis=0)


def mapped(result: RunResult, traffic: dict[str, dict[str, int]]) -> RunResult:
    """`result` with the routing counters a mapped run would add (hand-chosen here: the mapper
    that produces them lands separately)."""
    counters = {**result.counters, **traffic}
    return RunResult(result.outputs, result.backend, result.spikes, result.states, counters,
                     result.margins, result.traffic)


TRAFFIC = {  # {layer: total over the run and batch}, as a mapped run reports them
    "core_messages": {"x": 90, "lc": 41, "h": 17, "o": 5},
    "hops_east_west": {"x": 30, "lc": 12, "h": 0, "o": 2},
    "hops_north_south": {"x": 9, "lc": 6, "h": 4, "o": 0},
    "messages_within_tile": {"x": 0, "lc": 20, "h": 11, "o": 3},
}


# ------------------------------------------------------------------------------------------
# the SANA-FE device
# ------------------------------------------------------------------------------------------


def test_the_sanafe_loihi_device_holds_its_figures_with_sources() -> None:
    d = load_device("loihi-sanafe")
    assert d.kind == "neuromorphic"
    assert {t.count: t.joules for t in d.terms} == pytest.approx(SANAFE)
    assert len(d.terms) == len(SANAFE)  # one term per count
    for t in d.terms:
        assert "SANA-FE arch/loihi.yaml at c55bfa87" in t.source, t.name
        figure = re.search(r"(\d+(?:\.\d+)?) pJ", t.source)  # the figure, as published
        assert figure and float(figure.group(1)) * PJ == pytest.approx(t.joules), t.name
    assert all(t.fallback == "" for t in d.terms)  # no approximation: absent -> left out


def test_the_davies_loihi_device_prices_routing_on_mapped_counts() -> None:
    d = load_device("loihi")
    assert {t.count: t.joules for t in d.terms} == pytest.approx(DAVIES)
    assert {t.name: t.fallback for t in d.terms}["spike"] == "spikes"
    assert "tile_hop" not in {o["name"] for o in d.omitted}  # now real terms
    assert all("Table 2" in t.source for t in d.terms)


# ------------------------------------------------------------------------------------------
# synaptic ops by synapse format
# ------------------------------------------------------------------------------------------


def test_synaptic_ops_by_kind_equal_a_count_from_spikes_and_weights() -> None:
    g, x = three_kinds()
    T, B = x.shape[:2]
    r = nmcompile.run(g, x, record=True)
    counts = from_result(g, {"x": x}, r, T, B)
    conv, sparse, dense = g["c"], g["s"], g["d"]
    conv_fan = conv_fanout_by_loops(conv.weight, (2, 5, 5), 2, 1, (3, 3))
    sparse_fan = np.bincount(np.asarray(sparse.cols), minlength=27)  # listed entries per input
    dense_fan = np.full(10, dense.weight.shape[0])  # a dense matrix stores its zeros
    want = {"conv": spikes_per_element(x) @ conv_fan,
            "sparse": spikes_per_element(r.spikes["lc"]) @ sparse_fan,
            "dense": spikes_per_element(r.spikes["h"]) @ dense_fan}
    assert all(v > 0 for v in want.values())  # every projection carries events
    per = counts.per_inference()
    for kind, ops in want.items():
        assert per[f"synaptic_ops_{kind}"] == ops / B, kind
    assert per["synaptic_ops"] == sum(want.values()) / B
    assert [row.synapse_kind for row in counts.layers if row.kind == "projection"] == [
        "conv", "sparse", "dense"]
    # the SANA-FE synapse terms price each kind at its own figure
    terms = load_device("loihi-sanafe").energy(per)["terms"]
    for kind in want:
        assert terms[f"synapse_{kind}"] == pytest.approx(
            want[kind] / B * SANAFE[f"synaptic_ops_{kind}"])


def test_a_float_graph_maps_matrices_to_dense_sparse_to_sparse_conv_to_conv() -> None:
    g = Graph()
    g.add_node("x", Input((1, 4, 4)))
    g.add_node("c", Conv2d(np.ones((2, 1, 3, 3))))
    g.add_node("l1", LIF(beta=0.5))
    g.add_node("s", Sparse([0, 1, 2], [0, 3, 7], [1.0, 2.0, 3.0], (3, 8)))
    g.add_node("l2", LIF(beta=0.5))
    g.add_node("d", Dense(np.ones((2, 3))))
    g.add_node("l3", LIF(beta=0.5))
    g.add_node("o", Output())
    for a, b in [("x", "c"), ("c", "l1"), ("l1", "s"), ("s", "l2"), ("l2", "d"), ("d", "l3"),
                 ("l3", "o")]:
        g.add_edge(a, b)
    kinds = {n: row.synapse_kind for n, row in static_counts(g).items()}
    assert kinds == {"x": None, "c": "conv", "l1": None, "s": "sparse", "l2": None,
                     "d": "dense", "l3": None}


# ------------------------------------------------------------------------------------------
# routing terms
# ------------------------------------------------------------------------------------------


def test_routing_terms_are_left_out_with_the_mapping_message_without_a_mapping() -> None:
    g, x = three_kinds()
    r = nmcompile.run(g, x, record=True)
    per = from_result(g, {"x": x}, r, *x.shape[:2]).per_inference()
    assert not set(NEEDS) & set(per)  # absent, not zero
    for name, routed in (("loihi", {"hop_east_west", "hop_north_south"}),
                         ("loihi-sanafe", {"axon_out_message", "hop_east_west",
                                           "hop_north_south"})):
        e = load_device(name).energy(per)
        left = {o["name"]: o["why"] for o in e["omitted"]}
        assert all(left[t] == MAPPING for t in routed), name
        assert not routed & set(e["terms"]), name
    # Davies' within-tile spike falls back to one per emitted spike, and says so
    e = load_device("loihi").energy(per)
    assert e["terms"]["spike"] == pytest.approx(per["spikes"] * 1.7 * PJ)
    assert e["approximated"] == [{"name": "spike", "count": "spikes",
                                  "instead_of": "within_tile_messages", "why": MAPPING}]
    # and the estimate's report carries the note; an analytic estimate has no mapping either
    est = estimate(g, x, "loihi")
    assert any("within_tile_messages" in a for a in est.to_json()["assumptions"])
    assert "core_messages" not in analytic(g, 12, 0.2, 3).per_inference()


def test_routing_terms_are_priced_exactly_from_a_mapped_runs_counters() -> None:
    g, x = three_kinds()
    T, B = x.shape[:2]
    r = mapped(nmcompile.run(g, x), TRAFFIC)  # the emulator's exact counters + routing
    counts = from_result(g, {"x": x}, r, T, B)
    per = counts.per_inference()
    total = {k: sum(v.values()) for k, v in TRAFFIC.items()}  # 153, 44, 19, 34
    assert per["core_messages"] == total["core_messages"] / B
    assert per["hops_east_west"] == total["hops_east_west"] / B
    assert per["hops_north_south"] == total["hops_north_south"] / B
    assert per["within_tile_messages"] == total["messages_within_tile"] / B
    assert per["tile_hops"] == (total["hops_east_west"] + total["hops_north_south"]) / B
    assert counts.routing["core_messages"] == TRAFFIC["core_messages"]  # per layer, kept

    davies = load_device("loihi").energy(per)
    assert davies["approximated"] == []
    for term, count, joules in (("spike", "messages_within_tile", 1.7 * PJ),
                                ("hop_east_west", "hops_east_west", 3.0 * PJ),
                                ("hop_north_south", "hops_north_south", 4.0 * PJ)):
        assert davies["terms"][term] == pytest.approx(total[count] / B * joules), term
    assert MAPPING not in {o["why"] for o in davies["omitted"]}

    sanafe = load_device("loihi-sanafe").energy(per)
    for term, count, joules in (("axon_out_message", "core_messages", 111 * PJ),
                                ("hop_east_west", "hops_east_west", 3.0 * PJ),
                                ("hop_north_south", "hops_north_south", 4.2 * PJ)):
        assert sanafe["terms"][term] == pytest.approx(total[count] / B * joules), term
    spikes = sum(int(np.count_nonzero(s)) for s in nmcompile.run(g, x, record=True)
                 .spikes.values())
    by_hand = sum(per[c] * j for c, j in SANAFE.items() if c != "spikes") \
        + spikes / B * SANAFE["spikes"]
    assert sanafe["joules"] == pytest.approx(by_hand)


def test_routing_counters_must_name_nodes_of_the_graph() -> None:
    g, x = three_kinds()
    r = mapped(nmcompile.run(g, x), {"core_messages": {"core 3": 5}})
    with pytest.raises(UnsupportedError, match="core 3"):
        from_result(g, {"x": x}, r, *x.shape[:2])


def test_a_fallback_must_be_a_known_count(tmp_path) -> None:
    path = tmp_path / "chip.toml"
    path.write_text('name = "a"\n[[terms]]\nname = "s"\ncount = "within_tile_messages"\n'
                    'fallback = "flops"\njoules = 1.0\nsource = "x"\n')
    with pytest.raises(FormatError, match="unknown fallback 'flops'"):
        read_device(path)


# ------------------------------------------------------------------------------------------
# ANN baselines: SRAM reads
# ------------------------------------------------------------------------------------------


def test_ann_baselines_charge_each_weight_and_activation_read_once() -> None:
    g, x = three_kinds()
    T, B = x.shape[:2]
    per = from_result(g, {"x": x}, nmcompile.run(g, x), T, B).per_inference()
    weights = g["c"].weight.size + len(g["s"].values) + g["d"].weight.size  # 54 + n + 40
    activations = 2 * 5 * 5 + 27 + 10  # each projection reads its whole input once
    assert (per["weight_reads"], per["activation_reads"]) == (weights, activations)
    synapses = static_counts(g)
    macs = sum(row.synapses for row in synapses.values())
    for name, nbytes, add, mul in (("ann-int8-45nm", 1, 0.03 * PJ, 0.2 * PJ),
                                   ("ann-fp32-45nm", 4, 0.9 * PJ, 3.7 * PJ)):
        e = load_device(name).energy(per)
        assert e["terms"]["weight_read"] == pytest.approx(weights * nbytes * SRAM_PER_BYTE)
        assert e["terms"]["activation_read"] == pytest.approx(
            activations * nbytes * SRAM_PER_BYTE)
        assert e["joules"] == pytest.approx(macs * (add + mul)
                                            + (weights + activations) * nbytes * SRAM_PER_BYTE)
        assert "memory_access" not in {o["name"] for o in e["omitted"]}
