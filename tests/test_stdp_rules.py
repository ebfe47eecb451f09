"""STDP building blocks on hand-built spike trains, against values derived by hand: the event
rule (potentiation, depression, built-in decay, bounds, batching), pair-based traces, threshold
adaptation and homeostasis, the inhibition wiring and its delays, patches."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from nmcompile.errors import LimitError, NmcompileError, ShapeError
from nmcompile.stdp import (
    AdaptiveLIF,
    EventSTDP,
    Inhibition,
    PairSTDP,
    Patches,
    STDPNetwork,
    e_to_i,
    encode_data,
    expand,
    i_to_e,
    patch_indices,
)

D = torch.float64


def drive(rule, pre_steps: list[list[int]], post_steps: list[int], w0: list[float],
          T: int) -> np.ndarray:
    """One neuron, len(w0) inputs, batch 1: input j spikes at pre_steps[j], the neuron at
    post_steps; returns the weights after T steps, updating after every step."""
    w = torch.tensor([[w0]], dtype=D)
    state = rule.init(1, (1, len(w0)), (1, 1), D)
    for t in range(T):
        pre = torch.tensor([[[float(t in s) for s in pre_steps]]], dtype=D)
        post = torch.tensor([[[float(t in post_steps)]]], dtype=D)
        dw = rule.update(state, pre, post, w)
        if dw is not None:
            w = rule.apply(w, dw)
    return w[0, 0].numpy()


def test_event_rule_potentiates_inputs_in_the_window_and_depresses_the_rest() -> None:
    rule = EventSTDP(a_plus=0.1, a_minus=0.05, window=3)
    # input 0 spikes at 0 (3 steps before the post spike at 3: outside a window of 3),
    # input 1 at 1 (inside), input 2 at 3 (same step: inside), input 3 never
    w = drive(rule, [[0], [1], [3], []], [3], [0.5, 0.5, 0.5, 0.5], T=4)
    np.testing.assert_allclose(w, [0.5 - 0.05 * 0.5, 0.5 + 0.1 * 0.5, 0.5 + 0.1 * 0.5,
                                   0.5 - 0.05 * 0.5], rtol=0, atol=1e-15)
    # no postsynaptic spike, no change, whatever the inputs do
    assert rule.update(rule.init(1, (1, 2), (1, 1), D), torch.ones(1, 1, 2, dtype=D),
                       torch.zeros(1, 1, 1, dtype=D), torch.full((1, 1, 2), 0.5, dtype=D)) is None


def test_event_rule_decays_silent_inputs_at_every_postsynaptic_spike() -> None:
    """Built-in weight decay: w_k = w_min + (w_0 - w_min) * (1 - a_minus)^k."""
    rule = EventSTDP(a_plus=0.1, a_minus=0.05, window=2, w_min=0.1, w_max=1.0)
    posts = [2, 5, 6, 9, 13]
    w = drive(rule, [[], [0, 3, 4, 8, 12]], posts, [0.8, 0.8], T=14)
    assert w[0] == pytest.approx(0.1 + 0.7 * 0.95 ** 5, abs=1e-14)
    # input 1 spiked within 2 steps of posts 5 (at 4), 9 (at 8), 13 (at 12); not of 2 or 6
    expected = 0.8
    for recent in (False, True, False, True, True):
        expected += 0.1 * (1 - expected) if recent else -0.05 * (expected - 0.1)
    assert w[1] == pytest.approx(expected, abs=1e-14)


def test_bounds_soft_never_cross_and_hard_clip() -> None:
    soft = EventSTDP(a_plus=0.5, a_minus=0.5, window=1)
    w = drive(soft, [list(range(40)), []], list(range(40)), [0.5, 0.5], T=40)
    assert 0.0 < w[1] < w[0] < 1.0  # approach the bounds, 1 - 0.5 * 0.5^40 and 0.5^41
    hard = EventSTDP(a_plus=0.3, a_minus=0.3, window=1, soft=False, w_min=0.0, w_max=1.0)
    w = drive(hard, [[0, 1], []], [0, 1], [0.9, 0.2], T=2)
    assert w.tolist() == [1.0, 0.0]  # 0.9 + 0.3 clipped to 1; 0.2 - 0.3 clipped to 0
    with pytest.raises(NmcompileError, match="w_min < w_max"):
        EventSTDP(w_min=1.0, w_max=0.5)
    with pytest.raises(NmcompileError, match="window"):
        EventSTDP(window=0)


def test_a_batch_sums_the_changes_of_its_samples() -> None:
    rule = EventSTDP(a_plus=0.1, a_minus=0.05, window=2)
    gen = torch.Generator().manual_seed(3)
    pre = (torch.rand(6, 3, 2, 5, generator=gen) < 0.4).to(D)      # (T, batch, P, L)
    post = (torch.rand(6, 3, 2, 4, generator=gen) < 0.3).to(D)     # (T, batch, P, n)
    w = torch.rand(2, 4, 5, generator=gen, dtype=D)
    together = rule.init(3, (2, 5), (2, 4), D)
    alone = [rule.init(1, (2, 5), (2, 4), D) for _ in range(3)]
    for t in range(6):
        batch = rule.update(together, pre[t], post[t], w)
        parts = [rule.update(alone[b], pre[t, b:b + 1], post[t, b:b + 1], w) for b in range(3)]
        total = sum(p for p in parts if p is not None)
        if batch is None:
            assert all(p is None for p in parts)
        else:
            torch.testing.assert_close(batch, total, rtol=0, atol=1e-15)


def test_pair_rule_traces_against_hand_computed_values() -> None:
    tau = 2.0
    rule = PairSTDP(a_plus=0.1, a_minus=0.05, tau_plus=tau, tau_minus=tau, soft=False)
    # input 0: pre at 0 and 1, post at 3 -> all-to-all LTP 0.1 (e^-3/2 + e^-2/2)
    # input 1: pre at 5, after the post at 3 -> LTD 0.05 e^-2/2
    # input 2: pre at 3, with the post -> LTP 0.1 (simultaneous counts as causal)
    # input 3: pre at 4, after post at 3 -> LTD 0.05 e^-1/2; at 6 -> 0.05 e^-3/2
    w = drive(rule, [[0, 1], [5], [3], [4, 6]], [3], [0.5] * 4, T=7)
    e = math.exp
    expected = [0.5 + 0.1 * (e(-3 / tau) + e(-2 / tau)), 0.5 - 0.05 * e(-2 / tau),
                0.5 + 0.1, 0.5 - 0.05 * (e(-1 / tau) + e(-3 / tau))]
    np.testing.assert_allclose(w, expected, rtol=0, atol=1e-15)
    # soft bounds scale by the distance to the bound
    soft = PairSTDP(a_plus=0.1, a_minus=0.05, tau_plus=tau, tau_minus=tau)
    w = drive(soft, [[0], [4]], [2], [0.25, 0.25], T=5)
    np.testing.assert_allclose(w, [0.25 + 0.1 * e(-2 / tau) * 0.75,
                                   0.25 - 0.05 * e(-2 / tau) * 0.25], rtol=0, atol=1e-15)
    with pytest.raises(NmcompileError, match="tau"):
        PairSTDP(tau_plus=0.0)


def test_threshold_rises_per_spike_and_relaxes_back() -> None:
    """Constant drive 0.75, beta 1, threshold 1, rho 1/2, step 1 (all dyadic, so exact):
    v climbs 0.75 per step; theta = 1 + a, a halves each step and gains 1 per spike."""
    cell = AdaptiveLIF(beta=1.0, threshold=1.0, rho=0.5, adapt_step=1.0)
    state = cell.init(1, 1, D)
    x, thr = torch.full((1, 1), 0.75, dtype=D), torch.ones(1, dtype=D)
    spikes, adapt = [], []
    for _ in range(8):
        spikes.append(int(cell.step(x, state, thr, adapt=True)))
        adapt.append(float(state["a"]))
    # t0 v=.75 th=1 | t1 v=1.5>1 spike, a=1 | t2 v=.75 th=1.5 | t3 v=1.5>1.25 spike,
    # a=1.25 | t4 v=.75 th=1.625 | t5 v=1.5>1.3125 spike, a=1.3125 | t6 v=.75 | t7 1.5>1.328
    assert spikes == [0, 1, 0, 1, 0, 1, 0, 1]
    assert adapt[:6] == [0.0, 1.0, 0.5, 1.25, 0.625, 1.3125]
    frozen = cell.init(1, 1, D)
    assert [int(cell.step(x, frozen, thr, adapt=False)) for _ in range(4)] == [0, 1, 0, 1]
    with pytest.raises(NmcompileError, match="rho"):
        AdaptiveLIF(rho=1.5)


def test_training_carries_the_adaptation_over_as_theta() -> None:
    """theta <- rho^(B T) theta + sum over the batch of a[T],
    a[T] = step * sum_t s_t rho^(T-1-t)."""
    cell = AdaptiveLIF(beta=0.9, threshold=1.0, rho=0.9, adapt_step=0.25)
    net = STDPNetwork((3,), 2, neuron=cell, rule=EventSTDP(a_plus=0.0, a_minus=0.0),
                      inhibition=None)
    net.w = torch.tensor([[[0.9, 0.2, 0.4], [0.3, 0.8, 0.5]]], dtype=D)
    net.theta = torch.tensor([0.5, 0.125], dtype=D)
    spikes = (torch.rand(12, 3, 3, generator=torch.Generator().manual_seed(1)) < 0.7).to(D)
    theta0 = net.theta.clone()
    s = net.run(spikes, mode="train")["exc"]
    decay = 0.9 ** torch.arange(11, -1, -1, dtype=D)                    # rho^(T-1-t)
    expected = 0.9 ** 36 * theta0 + 0.25 * (s * decay[:, None, None]).sum((0, 1))
    torch.testing.assert_close(net.theta, expected, rtol=1e-12, atol=1e-12)
    assert s.sum() > 0


def test_inhibition_matrices() -> None:
    np.testing.assert_array_equal(e_to_i(3, 2.0), 2.0 * np.eye(3))
    hollow = i_to_e(2, 3, 1.5)
    block = -1.5 * (np.ones((3, 3)) - np.eye(3))
    np.testing.assert_array_equal(hollow, np.block([[block, np.zeros((3, 3))],
                                                    [np.zeros((3, 3)), block]]))
    assert not np.signbit(hollow[hollow == 0]).any()  # no -0.0
    with pytest.raises(NmcompileError, match="total delay"):
        Inhibition(delay_ei=0, delay_ie=0)
    with pytest.raises(NmcompileError, match="w_ei > threshold"):
        Inhibition(w_ei=0.5, threshold=0.5)


def wta_net(delays: tuple[int, int] | None) -> STDPNetwork:
    """Three IF-like neurons on one always-on input: neuron 0 fires every step (drive 2),
    neurons 1 and 2 alone would fire at step 2 (0.4 per step past threshold 1)."""
    inh = None if delays is None else Inhibition(w_ie=5.0, delay_ei=delays[0],
                                                 delay_ie=delays[1])
    net = STDPNetwork((1,), 3, neuron=AdaptiveLIF(beta=1.0, threshold=1.0, adapt_step=0.0),
                      inhibition=inh)
    net.w = torch.tensor([[[2.0], [0.4], [0.4]]], dtype=D)
    return net


@pytest.mark.parametrize("delays", [(1, 1), (0, 2), (2, 0), (1, 2)])
def test_inhibition_wiring_and_delays(delays: tuple[int, int]) -> None:
    x = torch.ones(8, 1, 1, dtype=D)
    free = wta_net(None).run(x)["exc"][:, 0]
    assert free[:, 0].tolist() == [1.0] * 8 and free[2, 1] == 1 and free[2, 2] == 1
    out = wta_net(delays).run(x)
    exc, inh = out["exc"][:, 0], out["inh"][:, 0]
    d_ei, d_ie = delays
    # each inhibitory neuron copies its excitatory partner, delay_ei steps later
    torch.testing.assert_close(inh[d_ei:], exc[:8 - d_ei])
    assert inh[:d_ei].sum() == 0
    # neuron 0's first spike (step 0) reaches the others at step d_ei + d_ie, not before
    arrival = d_ei + d_ie
    if arrival <= 2:
        assert exc[:, 1:].sum() == 0       # silenced before their step-2 spike
        assert exc[:, 0].tolist() == [1.0] * 8  # the winner is not inhibited by itself
    else:
        # they fire at step 2 and from then on every step brings them -5; their own spikes
        # reach every *other* neuron, the winner too, 3 steps later: -10 at step 5
        assert exc[2, 1] == 1 and exc[2, 2] == 1 and exc[3:, 1:].sum() == 0
        assert exc[:5, 0].tolist() == [1.0] * 5 and exc[5:, 0].sum() == 0


def test_patches_indices_and_expansion() -> None:
    idx = patch_indices((8, 8), (4, 4), (2, 2))
    assert idx.shape == (9, 16)
    assert idx[0].tolist() == [r * 8 + c for r in range(4) for c in range(4)]
    assert idx[4].tolist() == [r * 8 + c for r in range(2, 6) for c in range(2, 6)]
    disjoint = patch_indices((8, 8), (4, 4))
    assert disjoint.shape == (4, 16)
    assert sorted(disjoint.ravel().tolist()) == list(range(64))
    assert patch_indices((2, 4, 4), (2, 2)).shape == (4, 8)  # channels travel with a patch
    with pytest.raises(ShapeError, match="does not fit"):
        patch_indices((8, 8), (9, 2))
    w = torch.arange(2 * 3 * 16, dtype=D).reshape(2, 3, 16)[:1]   # shared (1, n, L)
    W = expand(w, disjoint, 64)
    assert W.shape == (12, 64)
    for p in range(4):
        for k in range(3):
            row = W[p * 3 + k]
            assert row[disjoint[p]].tolist() == w[0, k].tolist()
            assert row.sum() == w[0, k].sum()   # zero outside the patch


def test_a_shared_learner_sums_its_patches_changes() -> None:
    rule = EventSTDP(a_plus=0.1, a_minus=0.05, window=1, soft=False)
    shared = STDPNetwork((4, 4), 2, rule=rule, patches=Patches((2, 2), shared=True),
                         inhibition=None)
    separate = STDPNetwork((4, 4), 2, rule=rule, patches=Patches((2, 2)), inhibition=None)
    assert shared.w.shape == (1, 2, 4) and separate.w.shape == (4, 2, 4)
    shared.w = torch.full((1, 2, 4), 0.5, dtype=D)   # far enough from the bounds: no clip
    separate.w = torch.full((4, 2, 4), 0.5, dtype=D)
    w0 = shared.w.clone()
    gen = torch.Generator().manual_seed(0)
    pre = (torch.rand(1, 4, 4, generator=gen) < 0.5).to(D)
    post = torch.tensor([[[1.0, 0.0], [0.0, 0.0], [1.0, 1.0], [0.0, 1.0]]], dtype=D)
    for net in (shared, separate):
        net._learn(net.rule.init(1, (4, 4), (4, 2), D), pre, post)
    per_patch = separate.w - w0
    torch.testing.assert_close(shared.w - w0, per_patch.sum(0, keepdim=True))
    assert (per_patch != 0).any()
    assert (per_patch[1] == 0).all()  # patch 1 had no postsynaptic spike


def test_inputs_and_sizes_are_checked_before_anything_runs() -> None:
    net = STDPNetwork((8, 8), 4)
    with pytest.raises(ShapeError, match=r"expected \(T, batch, \*\(8, 8\)\)"):
        net.run(torch.zeros(5, 2, 63))
    with pytest.raises(ShapeError, match="64 values"):
        encode_data(net, np.zeros((3, 63)))
    huge = torch.zeros(1, 1, 64, dtype=D).expand(100_000, 10_000, 64)  # a view: no memory
    with pytest.raises(LimitError, match="fewer samples"):
        net.run(huge)
    with pytest.raises(NmcompileError, match="mode"):
        net.run(torch.zeros(2, 1, 64), mode="test")
