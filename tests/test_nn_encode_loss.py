"""Surrogate spike functions, encoders and losses of nmcompile.nn."""

from __future__ import annotations

import math
import pickle

import pytest
import torch
import torch.nn.functional as F

from nmcompile.errors import NmcompileError
from nmcompile.ir.dynamics import heaviside
from nmcompile.nn import encode, loss, surrogate

# --- surrogates -----------------------------------------------------------------------------

SURROGATES = [
    (surrogate.fast_sigmoid(25.0), lambda x: 1.0 / (25.0 * abs(x) + 1.0) ** 2),
    (surrogate.fast_sigmoid(3.0), lambda x: 1.0 / (3.0 * abs(x) + 1.0) ** 2),
    (
        surrogate.sigmoid(5.0),
        lambda x: 5.0 / (1 + math.exp(-5.0 * x)) * (1 - 1 / (1 + math.exp(-5.0 * x))),
    ),
    (surrogate.arctan(2.0), lambda x: 1.0 / (1.0 + (math.pi * x) ** 2)),
    (surrogate.arctan(0.5), lambda x: 0.25 / (1.0 + (math.pi / 4 * x) ** 2)),
]
SURROGATE_IDS = [f"{s.name}-{s.parameter:g}" for s, _ in SURROGATES]


@pytest.mark.parametrize("fn", [s for s, _ in SURROGATES], ids=SURROGATE_IDS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_surrogate_forward_is_heaviside_bit_for_bit(fn, dtype):
    tiny = torch.finfo(dtype).tiny
    x = torch.tensor([-1.0, -tiny, -0.0, 0.0, tiny, 1e-30, 0.5, 3.0], dtype=dtype)
    x = torch.cat([x, torch.randn(1000, generator=torch.Generator().manual_seed(0), dtype=dtype)])
    out = fn(x)
    assert out.dtype == dtype
    assert torch.equal(out, heaviside(x))
    assert out[:8].tolist() == [0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0]


@pytest.mark.parametrize(("fn", "deriv"), SURROGATES, ids=SURROGATE_IDS)
def test_surrogate_backward_is_the_analytic_derivative(fn, deriv):
    points = [-1.0, -0.3, -0.05, 0.0, 0.02, 0.3, 2.0]
    x = torch.tensor(points, dtype=torch.float64, requires_grad=True)
    fn(x).backward(torch.full_like(x, 2.0))  # chain rule: the upstream gradient multiplies
    expected = torch.tensor([2.0 * deriv(p) for p in points], dtype=torch.float64)
    torch.testing.assert_close(x.grad, expected, rtol=1e-12, atol=0.0)


def test_surrogate_get_and_validation():
    assert surrogate.get("fast_sigmoid") == surrogate.fast_sigmoid(25.0)
    assert surrogate.get("sigmoid") == surrogate.sigmoid(5.0)
    assert surrogate.get("arctan") == surrogate.arctan(2.0)
    f = surrogate.arctan(1.5)
    assert surrogate.get(f) is f
    assert pickle.loads(pickle.dumps(f)) == f
    with pytest.raises(NmcompileError, match="fast_sigmoid, sigmoid, arctan"):
        surrogate.get("relu")
    with pytest.raises(NmcompileError, match="fast_sigmoid"):
        surrogate.get(3)
    with pytest.raises(NmcompileError, match="slope"):
        surrogate.fast_sigmoid(0.0)
    with pytest.raises(NmcompileError, match="alpha"):
        surrogate.arctan(float("nan"))


# --- poisson --------------------------------------------------------------------------------


def test_poisson_rate_matches_probability():
    x = torch.tensor([[0.0, 0.1, 0.25, 0.5, 0.9, 1.0]]).expand(500, 6)
    rate, T = 0.8, 200
    s = encode.poisson(x, T, rate=rate, seed=1234)
    assert s.shape == (T, 500, 6)
    assert s.dtype == torch.float32
    assert set(s.unique().tolist()) <= {0.0, 1.0}
    n = T * 500
    p = rate * x[0]
    est = s.sum((0, 1)) / n
    tol = 5.0 * torch.sqrt(p * (1 - p) / n) + 1e-12  # five standard errors
    assert torch.all((est - p).abs() <= tol), (est, p)
    assert est[0] == 0.0  # p = 0 never spikes


def test_poisson_probability_one_always_spikes():
    s = encode.poisson(torch.ones(3, 4), 50, seed=0)
    assert torch.equal(s, torch.ones(50, 3, 4))


def test_poisson_is_reproducible_and_time_major():
    x = torch.rand(4, 2, 3, generator=torch.Generator().manual_seed(0))
    a = encode.poisson(x, 7, seed=5)
    b = encode.poisson(x, 7, seed=5)
    c = encode.poisson(x, 7, generator=torch.Generator().manual_seed(5))
    d = encode.poisson(x, 7, seed=6)
    assert a.shape == (7, 4, 2, 3)
    assert torch.equal(a, b) and torch.equal(a, c)
    assert not torch.equal(a, d)
    assert encode.poisson(x.double(), 3, seed=0).dtype == torch.float64


@pytest.mark.parametrize(
    ("kwargs", "word"),
    [
        ({"x": torch.tensor([[1.5]]), "num_steps": 3}, "x must lie in"),
        ({"x": torch.tensor([[-0.1]]), "num_steps": 3}, "x must lie in"),
        ({"x": torch.tensor([[float("nan")]]), "num_steps": 3}, "x must lie in"),
        ({"x": torch.tensor([[0.8]]), "num_steps": 3, "rate": 1.5}, "rate"),
        ({"x": torch.tensor([[0.8]]), "num_steps": 3, "rate": -1.0}, "rate"),
        ({"x": torch.tensor([[0.8]]), "num_steps": 0}, "num_steps"),
        ({"x": torch.tensor([[0.8]]), "num_steps": 2.0}, "num_steps"),
        ({"x": torch.tensor(0.5), "num_steps": 2}, "x must have shape"),
        (
            {"x": torch.tensor([[0.5]]), "num_steps": 2, "seed": 1, "generator": torch.Generator()},
            "seed",
        ),
    ],
)
def test_poisson_bad_arguments(kwargs, word):
    with pytest.raises(NmcompileError, match=word):
        encode.poisson(**kwargs)


# --- latency --------------------------------------------------------------------------------


def _times(s):
    """{feature index: [spike steps]} of a (T, 1, n) spike train."""
    return {i: torch.nonzero(s[:, 0, i]).flatten().tolist() for i in range(s.shape[2])}


def test_latency_linear_hand_computed():
    x = torch.tensor([[1.0, 0.8, 0.5, 0.26, 0.0, 0.005]])
    s = encode.latency(x, 11, mode="linear")
    assert s.shape == (11, 1, 6)
    # t = round((1 - x) * 10): 0, 2, 5, 7.4 -> 7; 0 and 0.005 are at or below the threshold
    assert _times(s) == {0: [0], 1: [2], 2: [5], 3: [7], 4: [], 5: []}
    s0 = encode.latency(x, 11, mode="linear", threshold=0.0)
    assert _times(s0)[5] == [10]  # round(9.95) = 10
    assert _times(s0)[4] == []  # x = 0 never spikes


def test_latency_log_hand_computed():
    x = torch.tensor([[1.0, 0.5, 0.3, 0.25, 0.2, 0.21, 0.1]], dtype=torch.float64)
    s = encode.latency(x, 8, mode="log", tau=5.0, threshold=0.2)
    # t = 5 ln(x / (x - 0.2)): 1.116 -> 1, 2.554 -> 3, 5.493 -> 5, 8.047 -> clipped to 7,
    # 0.2 at the threshold: none, 0.21: 15.2 -> clipped to 7, 0.1: none
    expected = [5 * math.log(v / (v - 0.2)) for v in (1.0, 0.5, 0.3, 0.25)]
    assert [round(t) for t in expected] == [1, 3, 5, 8]
    assert _times(s) == {0: [1], 1: [3], 2: [5], 3: [7], 4: [], 5: [7], 6: []}
    assert s.dtype == torch.float64


@pytest.mark.parametrize("mode", ["linear", "log"])
def test_latency_one_spike_per_firing_feature(mode):
    x = torch.rand(16, 3, 5, generator=torch.Generator().manual_seed(3))
    s = encode.latency(x, 20, mode=mode, tau=4.0, threshold=0.05)
    assert s.shape == (20, 16, 3, 5)
    counts = s.sum(0)
    assert torch.equal(counts, (x > 0.05).float())
    # larger intensity never spikes later
    t = torch.where(counts > 0, s.argmax(0).float(), torch.tensor(float("inf")))
    order = x.flatten().argsort(descending=True)
    tf = t.flatten()[order]
    tf = tf[torch.isfinite(tf)]
    assert torch.all(tf[1:] >= tf[:-1])


@pytest.mark.parametrize(
    ("kwargs", "word"),
    [
        ({"mode": "exp"}, "mode"),
        ({"mode": "log", "threshold": 0.0}, "threshold"),
        ({"threshold": 1.0}, "threshold"),
        ({"mode": "log", "tau": 0.0}, "tau"),
        ({"num_steps": -1}, "num_steps"),
    ],
)
def test_latency_bad_arguments(kwargs, word):
    args = {"x": torch.tensor([[0.5]]), "num_steps": 4, **kwargs}
    with pytest.raises(NmcompileError, match=word):
        encode.latency(**args)


# --- delta ----------------------------------------------------------------------------------


def test_delta_hand_made_signal():
    # one feature; events with threshold 0.5, the reference moving to the value at each event
    signal = [0.0, 0.3, 0.6, 0.7, 1.0, 1.2, 0.5, 0.4, -0.2, -0.2, 0.2, 0.35]
    #  ref:    0    0    0.6  0.6  0.6  1.2  0.5  0.5  -0.2 -0.2  -0.2 0.35
    on_at, off_at = [2, 5, 11], [6, 8]
    x = torch.tensor(signal).reshape(-1, 1, 1)
    s = encode.delta(x, threshold=0.5)
    assert s.shape == (12, 1, 2, 1)
    assert torch.nonzero(s[:, 0, 0, 0]).flatten().tolist() == on_at
    assert torch.nonzero(s[:, 0, 1, 0]).flatten().tolist() == off_at
    only_on = encode.delta(x, threshold=0.5, off_spikes=False)
    assert only_on.shape == (12, 1, 1)
    assert torch.equal(only_on, s[:, :, 0])


def test_delta_exact_threshold_is_not_an_event_and_features_are_independent():
    x = torch.tensor([[0.0, 0.0], [0.25, 0.0], [0.5, -1.0]]).reshape(3, 1, 2)
    s = encode.delta(x, threshold=0.25)
    assert s[:, 0, 0, 0].tolist() == [0.0, 0.0, 1.0]  # +0.25 is not more than 0.25
    assert s[:, 0, 1, 1].tolist() == [0.0, 0.0, 1.0]
    assert s[:, 0, 1, 0].sum() == 0 and s[:, 0, 0, 1].sum() == 0


def test_delta_bad_arguments():
    with pytest.raises(NmcompileError, match="threshold"):
        encode.delta(torch.zeros(3, 1, 1), threshold=-0.1)
    with pytest.raises(NmcompileError, match=r"\(T, batch"):
        encode.delta(torch.zeros(3))
    with pytest.raises(NmcompileError, match="NaN"):
        encode.delta(torch.tensor([[0.0], [float("nan")]]))


# --- losses ---------------------------------------------------------------------------------


def test_ce_count_equals_cross_entropy_of_counts():
    g = torch.Generator().manual_seed(0)
    s = (torch.rand(9, 4, 5, generator=g) < 0.3).float()
    y = torch.tensor([0, 4, 2, 2])
    torch.testing.assert_close(loss.ce_count(s, y), F.cross_entropy(s.sum(0), y))


def test_ce_membrane_reductions():
    g = torch.Generator().manual_seed(1)
    v = torch.randn(6, 3, 4, generator=g)
    y = torch.tensor([1, 0, 3])
    torch.testing.assert_close(loss.ce_membrane(v, y), F.cross_entropy(v.max(0).values, y))
    torch.testing.assert_close(loss.ce_membrane(v, y, "mean"), F.cross_entropy(v.mean(0), y))
    torch.testing.assert_close(loss.ce_membrane(v, y, "last"), F.cross_entropy(v[-1], y))
    with pytest.raises(NmcompileError, match="reduce"):
        loss.ce_membrane(v, y, "sum")


def _train(first_spikes, T=6):
    """(T, 1, n) spikes, neuron j firing first at first_spikes[j] (None: never) and after."""
    s = torch.zeros(T, 1, len(first_spikes))
    for j, t in enumerate(first_spikes):
        if t is not None:
            s[t:, 0, j] = 1.0
    return s


def test_first_spike_time_exact():
    s = _train([0, 3, None, 5])
    assert loss.first_spike_time(s).tolist() == [[0.0, 3.0, 6.0, 5.0]]


def test_ttfs_prefers_the_target_firing_first():
    y = torch.tensor([0])
    first = loss.ttfs(_train([1, 4, None]), y)
    second = loss.ttfs(_train([4, 1, None]), y)
    silent = loss.ttfs(_train([None, 1, 4]), y)
    assert first < second < silent
    # formula: CE on -t_first / temperature
    expected = F.cross_entropy(-torch.tensor([[1.0, 4.0, 6.0]]) / 2.0, y)
    torch.testing.assert_close(loss.ttfs(_train([1, 4, None]), y, temperature=2.0), expected)


def test_ttfs_gradients_flow_through_a_surrogate():
    g = torch.Generator().manual_seed(2)
    u = torch.randn(8, 3, 4, generator=g, dtype=torch.float64, requires_grad=True)
    s = surrogate.fast_sigmoid(5.0)(u)
    y = torch.tensor([0, 1, 3])
    loss.ttfs(s, y).backward()
    assert u.grad is not None and torch.isfinite(u.grad).all()
    assert u.grad.abs().sum() > 0
    # every target neuron is pushed to fire earlier: negative gradient on its early inputs
    for b, c in enumerate(y.tolist()):
        assert u.grad[0, b, c] < 0


def test_ttfs_gradient_matches_finite_differences_of_the_relaxation():
    g = torch.Generator().manual_seed(3)
    s = torch.rand(5, 2, 3, generator=g, dtype=torch.float64, requires_grad=True)
    s.data[2, 0, 1] = 1.0  # a hard spike: cumprod through a zero
    y = torch.tensor([1, 2])
    assert torch.autograd.gradcheck(lambda z: loss.ttfs(z, y), (s,))


def test_predict_and_accuracy_count():
    s = torch.zeros(4, 3, 3)
    s[:, 0, 2] = 1.0  # sample 0: class 2
    s[:2, 1, 0] = 1.0
    s[:2, 1, 1] = 1.0  # sample 1: tie between 0 and 1 -> 0
    # sample 2: all silent -> 0
    assert loss.predict_count(s).tolist() == [2, 0, 0]
    assert loss.predict_count(s).dtype == torch.int64
    assert loss.accuracy_count(s, torch.tensor([2, 1, 0])) == pytest.approx(2 / 3)


@pytest.mark.parametrize(
    ("fn", "args", "word"),
    [
        (loss.ce_count, (torch.zeros(3, 2), torch.tensor([0, 1])), "spikes must have shape"),
        (loss.ce_count, (torch.zeros(3, 2, 4), torch.tensor([0, 4])), "targets must lie"),
        (loss.ce_count, (torch.zeros(3, 2, 4), torch.tensor([0])), "targets must have shape"),
        (loss.ce_count, (torch.zeros(3, 2, 4), torch.tensor([0.0, 1.0])), "targets must be"),
        (loss.ce_membrane, (torch.zeros(3, 2), torch.tensor([0, 1])), "v must have shape"),
        (loss.ttfs, (torch.zeros(3, 2, 4), torch.tensor([0, -1])), "targets must lie"),
        (loss.accuracy_count, (torch.zeros(3, 0, 4), torch.zeros(0, dtype=torch.long)), "batch"),
    ],
)
def test_losses_bad_arguments(fn, args, word):
    with pytest.raises(NmcompileError, match=word):
        fn(*args)


def test_ttfs_bad_temperature():
    with pytest.raises(NmcompileError, match="temperature"):
        loss.ttfs(torch.zeros(3, 1, 2), torch.tensor([0]), temperature=0.0)
