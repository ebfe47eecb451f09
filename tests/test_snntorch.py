"""snnTorch models through `from_torch`: the float interpreter's spikes equal snnTorch's own
forward, layer by layer, on seeded inputs.

snnTorch runs as its users run it: `utils.reset(net)`, then the `nn.Sequential` called once per
step. In float64 (with a dtype-preserving Heaviside as `spike_grad`: snnTorch's surrogates
return float32) and in snnTorch's default float32.
"""

from __future__ import annotations

import numpy as np
import pytest
import snntorch as snn
import torch
from snntorch import utils
from torch import nn

import nmcompile


def heaviside(x: torch.Tensor) -> torch.Tensor:
    """snnTorch's spike (every surrogate's forward is x > 0), keeping the dtype."""
    return (x > 0).to(x.dtype)


def snntorch_forward(net: nn.Module, x: torch.Tensor) -> dict[str, np.ndarray]:
    """Each snnTorch layer's spikes per step, keyed by the IR name from_torch gives it."""
    record: dict[str, list[torch.Tensor]] = {}
    hooks = []
    for path, m in net.named_modules():
        if isinstance(m, snn.SpikingNeuron):
            name = path if not path[0].isdigit() else f"{type(m).__name__.lower()}{path}"
            record[name] = []
            hooks.append(m.register_forward_hook(
                lambda _m, _i, out, k=name: record[k].append(
                    (out[0] if isinstance(out, tuple) else out).detach().clone())))
    utils.reset(net)
    with torch.no_grad():
        for t in range(x.shape[0]):
            net(x[t])
    for h in hooks:
        h.remove()
    T, B = x.shape[:2]
    return {k: torch.stack(v).reshape(T, B, -1).numpy() for k, v in record.items()}


def _stronger(net: nn.Module, factor: float = 3.0) -> nn.Module:
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, (nn.Linear, nn.Conv2d)):  # recurrent weights too
                m.weight.mul_(factor)
    return net


def _model(kind: str, reset: str, delay: bool, seed: int) -> tuple[nn.Module, torch.Tensor]:
    torch.manual_seed(seed)
    common = {"init_hidden": True, "spike_grad": heaviside, "reset_mechanism": reset,
              "reset_delay": delay}
    T, B = 30, 3
    if kind == "dense":  # per-neuron learnable beta, scalar and per-neuron thresholds
        net = nn.Sequential(
            nn.Linear(10, 20),
            snn.Leaky(beta=torch.rand(20) * 0.5 + 0.5, threshold=0.7, learn_beta=True, **common),
            nn.Linear(20, 5),
            snn.Leaky(beta=0.9, threshold=torch.rand(5) + 0.5, output=True, **common))
        x = torch.rand(T, B, 10) < 0.3
    elif kind == "synaptic":
        net = nn.Sequential(
            nn.Linear(10, 20),
            snn.Synaptic(alpha=torch.rand(20) * 0.8, beta=0.8, threshold=torch.rand(20) + 0.5,
                         learn_alpha=True, learn_beta=True, **common),
            nn.Linear(20, 5),
            snn.Synaptic(alpha=0.5, beta=0.9, output=True, **common))
        x = torch.rand(T, B, 10) < 0.3
    elif kind == "conv":
        net = nn.Sequential(
            nn.Conv2d(2, 4, 3, padding=1), snn.Leaky(beta=0.8, **common), nn.AvgPool2d(2),
            nn.Flatten(), nn.Linear(64, 6), snn.Leaky(beta=0.9, **common))
        x = torch.rand(T, B, 2, 8, 8) < 0.3
    elif kind in ("recurrent", "one_to_one"):
        rec = ({"linear_features": 20} if kind == "recurrent"
               else {"all_to_all": False, "V": torch.randn(20)})
        net = nn.Sequential(
            nn.Linear(10, 20), snn.RLeaky(beta=0.85, **rec, **common), nn.Linear(20, 5),
            snn.RSynaptic(alpha=0.6, beta=0.9, linear_features=5, output=True, init_hidden=True,
                          spike_grad=heaviside))
        x = torch.rand(T, B, 10) < 0.3
    elif kind == "conv_recurrent":
        net = nn.Sequential(
            nn.Conv2d(2, 4, 3, padding=1),
            snn.RLeaky(beta=0.8, conv2d_channels=4, kernel_size=3, **common), nn.Flatten(),
            nn.Linear(256, 6), snn.Leaky(beta=0.9, **common))
        x = torch.rand(T, B, 2, 8, 8) < 0.3
    else:
        raise AssertionError(kind)
    return _stronger(net).double(), x.double()


# (kind, reset, reset_delay): every combination snnTorch computes and the IR can express
CASES = [(k, "subtract", True) for k in ("dense", "synaptic", "conv", "recurrent", "one_to_one",
                                         "conv_recurrent")]
CASES += [("dense", "zero", True), ("conv", "zero", True), ("dense", "zero", False),
          ("synaptic", "zero", False), ("recurrent", "zero", False),
          ("one_to_one", "zero", False), ("conv_recurrent", "zero", False),
          ("dense", "none", True), ("synaptic", "none", True)]


@pytest.mark.parametrize(("kind", "reset", "delay"), CASES)
@pytest.mark.parametrize("seed", [0, 1])
def test_float_spikes_equal_snntorch(kind: str, reset: str, delay: bool, seed: int) -> None:
    net, x = _model(kind, reset, delay, seed)
    want = snntorch_forward(net, x)
    graph = nmcompile.from_torch(net, x, dt=1e-4)
    got = nmcompile.run(graph, x.numpy().astype(np.uint8), record=True)
    # a Linear's bias into a Synaptic's current is a constant spiking source (bias_sources)
    assert set(want) == set(got.spikes) - {"bias_source"}
    assert ("bias_source" in graph) == bool(graph.metadata.get("bias_sources"))
    for name, spikes in want.items():
        assert np.array_equal(spikes.astype(np.uint8), got.spikes[name]), name
        assert spikes.sum() > 0, f"{name} should spike"
    print(f"{kind} {reset} delay={delay} seed {seed}: "
          f"{ {k: int(v.sum()) for k, v in want.items()} }, smallest |v - threshold| "
          f"{min(got.margins.values()):.3g}")


def test_zero_reset_is_bit_exact_in_voltage() -> None:
    """Leaky's delayed reset to zero is the IR's reset to zero: the same float operations, so
    snnTorch's membrane (before its deferred reset) equals the IR's pre-reset voltage."""
    net, x = _model("dense", "zero", True, 0)
    utils.reset(net)
    mems = []
    with torch.no_grad():
        for t in range(x.shape[0]):
            net(x[t])
            mems.append(net[1].mem.clone())
    graph = nmcompile.from_torch(net, x)
    got = nmcompile.run(graph, x.numpy(), record=True)
    v_post = got.states["leaky1"]["v"]
    s = got.spikes["leaky1"].astype(bool)
    mem = torch.stack(mems).numpy()
    assert np.array_equal(mem[~s], v_post[~s])  # bit for bit where no spike reset it


def test_float32_snntorch_defaults() -> None:
    """snnTorch as shipped: float32, ATan surrogate, subtract with the delayed reset."""
    torch.manual_seed(5)
    net = _stronger(nn.Sequential(nn.Linear(10, 20), snn.Leaky(beta=0.9, init_hidden=True),
                                  nn.Linear(20, 5),
                                  snn.Leaky(beta=0.9, init_hidden=True, output=True)))
    x = (torch.rand(40, 4, 10) < 0.3).float()
    want = snntorch_forward(net, x)
    got = nmcompile.run(nmcompile.from_torch(net, x), x.numpy().astype(np.uint8), record=True)
    for name, spikes in want.items():
        assert spikes.sum() > 0 and np.array_equal(spikes.astype(np.uint8), got.spikes[name])
    assert min(got.margins.values()) > 1e-5  # float32 rounding cannot flip a spike here


@pytest.mark.parametrize(("layer", "message"), [
    (lambda: snn.Synaptic(alpha=0.5, beta=0.9, init_hidden=True, reset_mechanism="zero"),
     "reset_delay=False"),
    (lambda: snn.RLeaky(beta=0.9, linear_features=5, init_hidden=True, reset_mechanism="zero"),
     "reset_delay=False"),
    (lambda: snn.Leaky(beta=0.9, init_hidden=True, reset_delay=False), "reset_delay=True"),
    (lambda: snn.Leaky(beta=0.9), "init_hidden=True"),
    (lambda: snn.Alpha(alpha=0.6, beta=0.5, init_hidden=True), "Alpha is not supported"),
    (lambda: snn.Leaky(beta=0.9, init_hidden=True, graded_spikes_factor=2.0), "graded"),
])
def test_what_the_ir_cannot_express_raises(layer, message: str) -> None:
    net = nn.Sequential(nn.Linear(10, 5), layer(), nn.Linear(5, 3))
    with pytest.raises(nmcompile.UnsupportedError, match=message):
        nmcompile.from_torch(net, torch.zeros(4, 1, 10))


class _TimeLoopInForward(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(10, 5)
        self.lif = snn.Leaky(beta=0.9, init_hidden=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([self.lif(self.fc(x[t])) for t in range(x.shape[0])])


def test_a_loop_over_time_says_which_style_works() -> None:
    x = torch.zeros(4, 1, 10)
    with pytest.raises(nmcompile.UnsupportedError,
                       match="Sequential of layers and snnTorch neurons with init_hidden=True"):
        nmcompile.from_torch(_TimeLoopInForward(), x)


@pytest.mark.parametrize("reset", ["zero", "subtract"])
def test_bias_into_synaptic_quantises_and_runs_equal_on_every_target(reset: str) -> None:
    """A `Linear` with its default bias before a `Synaptic` (a bias a current filters) traces
    to a constant spiking source, so the model quantises; the quantised graph runs with the
    same spikes on the emulator, Lava and Verilog, and its float graph is snnTorch's."""
    net, x = _model("synaptic", reset, reset == "subtract", 0)
    assert all(m.bias is not None and m.bias.abs().sum() > 0
               for m in net.modules() if isinstance(m, nn.Linear))
    graph = nmcompile.from_torch(net, x, dt=1e-4)
    assert graph.metadata["bias_sources"] == ["linear0", "linear2"]
    assert graph["linear0"].bias is None and "bias_source" in graph
    spikes = x.numpy().astype(np.uint8)
    want = snntorch_forward(net, x)
    got = nmcompile.run(graph, spikes, record=True)
    for name, s in want.items():
        assert np.array_equal(s.astype(np.uint8), got.spikes[name]), name
    report = nmcompile.verify(nmcompile.quantize(graph), spikes, ["emulator", "lava", "verilog"])
    assert report.equal, report.mismatches
    assert report.backends["emulator"]["spikes"] > 0
    print(f"{reset}: spikes {({b: i['spikes'] for b, i in report.backends.items()})}")
