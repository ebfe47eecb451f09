"""Quantisation-aware fine-tuning: `finetune(model, data, profile)`.

Training runs the model on the values nmcompile's quantiser will store and passes gradients
straight through the rounding (the straight-through estimator of lava-dl SLAYER's and
Rockpool's Xylo flows). Every fake-quantised tensor is

    x_fq = q(x) + x - sg(x)          (sg: stop gradient; the value is q(x), dx_fq/dx = 1)

and q mirrors `quantizer.py` (docs/fixed_point.md). For a projection into a neuron layer of
scale S (a power of two), with the sign mode's mantissa range [lo, hi], largest usable
mantissa `top` and exponent offset (`_mantissa_range`):

    e    = clip(ceil(log2(max|W| * S / 64 / top)), e_lo + offset, e_hi + offset)
    q(W) = clip(round(W * S / 64 / 2**e), lo, hi) * 2**e * 64 / S

and for the layer's own parameters

    threshold, adapt_step:  q(th) = clip(rint(th * S / 64), 0, VTH_MAX) * 64 / S
    beta, rho:              q(b)  = 1 - clip(rint(4096 (1 - b)), 0, 4095) / 4096
    alpha:                  q(a)  = 1 - (clip(rint(4096 (1 - a)) - 1, 0, 4095) + 1) / 4096
    bias:                   q(c)  = rint(c S / 2**be) * 2**be / S,  be from max|c S|

S depends on the layer's peak state on calibration data (a float run), so it is read from
the real quantiser: every `sync_every` steps (default: at the start of each epoch, and once
after the last) the model is traced (`from_torch`) and quantised with the calibration data,
and each layer's S is taken from the quantised graph. The exponent, the sign mode and
everything else are recomputed from the live tensors on every step, with the quantiser's own
functions: right after a sync the fake-quantised tensors are exactly what `quantize` stores
(`FakeQuantizer.sync` checks each exponent against the quantised graph); between syncs they
are what it would store if no S moved.

What stays float in training is the integer state: the emulator decays v as
`v * (4096 - dv) >> 12` (toward zero) and floors `(W @ x) << e` for e < 0, a few units of
S**-1 per step, so the fake-quantised model and the emulator agree nearly, not bit for bit
(`FinetuneHistory.agreement` measures it).
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor, nn

from .. import nn as snn
from ..errors import NmcompileError, UnsupportedError
from ..frontends import snntorch as snntorch_layers
from ..ir import Flatten, Graph
from ..ir.neurons import Neuron
from ..ir.quantized import VTH_MAX, QConv2d, QDense, QSparse
from .profiles import Profile, get_profile
from .quantizer import UNIT, _mantissa_range, _weight_exp

__all__ = ["FakeQuantizer", "FinetuneHistory", "finetune"]

#: Neuron parameters a layer kind holds, by the quantiser's rule that maps each to integers.
_NEURON_PARAMS: tuple[tuple[type, tuple[str, ...]], ...] = (
    (snn.ALIF, ("threshold", "beta", "alpha", "bias", "rho", "adapt_step")),
    (snn.LIF, ("threshold", "beta", "alpha", "bias")),  # CubaLIF is a LIF
    (snn.LI, ("beta", "alpha", "bias")),
)
_SNNTORCH_PARAMS = {"Leaky": ("threshold", "beta"), "Synaptic": ("threshold", "beta", "alpha"),
                    "RLeaky": ("threshold", "beta"), "RSynaptic": ("threshold", "beta", "alpha")}
_SUPPORTED = ("nmcompile.nn LIF, CubaLIF, ALIF, LI and Recurrent; snnTorch Leaky, Synaptic, "
              "RLeaky, RSynaptic; nn.Linear and nn.Conv2d feeding one of them directly")


def _ste(value: Tensor, x: Tensor) -> Tensor:
    """`value` forward, identity backward: value + (x - sg(x)) is value exactly, since
    x - sg(x) is exactly zero (unlike x + sg(value - x), which may round)."""
    return value.detach() + (x - x.detach())


# -- the quantiser's rules, on tensors -------------------------------------------------------

class Grid(NamedTuple):
    """A projection's weight grid: exponent e, mantissa range [lo, hi], the largest
    magnitude `top` that max|W| may reach (`quantizer._quantize_weights`), the sign mode."""

    e: int
    lo: int
    hi: int
    top: int
    mode: str

    def bounds(self, scale: float) -> tuple[float, float]:
        """The float range the grid holds without moving e: [-top, top] * 2**e * 64 / S,
        within [lo, hi] and on the sign mode's side of zero."""
        step = 2.0 ** self.e * UNIT / scale
        low = 0.0 if self.mode == "excitatory" else max(self.lo, -self.top) * step
        high = 0.0 if self.mode == "inhibitory" else min(self.hi, self.top) * step
        return low, high


def weight_grid(w: Tensor, scale: float, profile: Profile) -> Grid:
    """The grid `quantizer._quantize_weights` picks for `w` into a layer of scale S: the sign
    mode from min and max, its mantissa range (`_mantissa_range`), and

        e = clip(ceil(log2(max|W| * S / 64 / top)), e_lo + offset, e_hi + offset)."""
    wmin, wmax = (float(v) for v in torch.aminmax(w.detach())) if w.numel() else (0.0, 0.0)
    mode = "excitatory" if wmin >= 0 else "inhibitory" if wmax <= 0 else "mixed"
    lo, hi, offset = _mantissa_range(profile, mode)
    top = min(hi, -lo) if mode == "mixed" else max(hi, -lo)
    e = _weight_exp(max(-wmin, wmax) * scale / UNIT, top, profile, offset)
    return Grid(e, lo, hi, top, mode)


def quantize_weight(w: Tensor, scale: float, profile: Profile) -> Tensor:
    """q(W) = clip(round(W * S / 64 / 2**e), lo, hi) * 2**e * 64 / S (no gradient). Every
    factor is a power of two, so in float32 it is the quantiser's float64 value exactly;
    `torch.round` rounds half to even like `np.round`."""
    g = weight_grid(w, scale, profile)
    step = 2.0 ** g.e * UNIT / scale
    return torch.clamp(torch.round(w.detach() / step), g.lo, g.hi) * step


def grid_clip(w: Tensor, profile: Profile) -> float:
    """The clip bound t = top * 2**k of `w` whose quantisation error is least,

        k = argmin_k || round(clip(W, -t, t) / 2**k) * 2**k - W ||^2,   k <= k0,

    with k0 = ceil(log2(max|W| / top)) the grid the quantiser picks unclipped. Once max|W| = t
    the quantiser's step 2**e * 64 / S is 2**k exactly whatever the power of two S is (when e
    would leave the profile's range it lowers S instead), so the choice holds after
    calibration. Eight candidates below k0: a narrow width trades its outliers for a finer
    step (at 2 bits, ternary, most weights round to zero on the unclipped grid)."""
    wd = w.detach().double()
    top = weight_grid(w, 1.0, profile).top
    amax = float(wd.abs().max()) if wd.numel() else 0.0
    if amax == 0:
        return 0.0
    k0 = math.ceil(math.log2(amax / top))
    best = (math.inf, amax)
    for k in range(k0, k0 - 9, -1):
        step = 2.0 ** k
        t = min(top * step, amax)
        err = float(((torch.round(wd.clamp(-t, t) / step) * step - wd) ** 2).sum())
        if err < best[0]:
            best = (err, t)
    return best[1]


def quantize_threshold(th: Tensor, scale: float) -> Tensor:
    """q(th) = clip(rint(th * S / 64), 0, VTH_MAX) * 64 / S (vth, and an ALIF's vth_step,
    which the quantiser does not clip: it is bounded by the same 17 bits in the IR)."""
    return torch.clamp(torch.round(th.detach() * (scale / UNIT)), 0, VTH_MAX) * (UNIT / scale)


def quantize_decay(factor: Tensor, offset: int) -> Tensor:
    """The factor the emulator applies: 1 - (d + offset) / 4096 with
    d = clip(rint(4096 (1 - clamp(f, 0, 1))) - offset, 0, 4095) (`quantizer._decay`; offset 1
    for the current's alpha, whose decay the emulator applies as du + 1, else 0)."""
    f = factor.detach().clamp(0.0, 1.0)
    d = torch.clamp(torch.round(4096 * (1 - f)) - offset, 0, 4095)
    return 1 - (d + offset) / 4096


def quantize_bias(bias: Tensor, scale: float, profile: Profile) -> Tensor:
    """q(c) = rint(c * S / 2**be) * 2**be / S, be = clip(ceil(log2(max|c S| / m)), e_lo, e_hi)
    when max|c S| exceeds the largest mantissa m = 2**(bias_mant_bits - 1) - 1, else 0."""
    b = bias.detach() * scale
    bmax = float(b.abs().max()) if b.numel() else 0.0
    mant_max = 2 ** (profile.bias_mant_bits - 1) - 1
    be = int(np.clip(math.ceil(math.log2(max(bmax, 1) / mant_max)), *profile.bias_exp_range)) \
        if bmax > mant_max else 0
    return torch.round(b / 2.0 ** be) * (2.0 ** be / scale)


# -- which tensor of the model is which quantity of the quantised graph ---------------------

@dataclass
class _Projection:
    name: str            # the folded graph's projection ("lif1.from_input")
    layer: str           # the neuron layer it feeds
    weight: str          # the model's tensor name (functional_call key), "step.0.weight"
    module: str          # the torch module, for messages
    conv: bool


@dataclass
class _Layer:
    name: str
    module: str
    params: dict[str, str]                  # IR parameter -> the model's tensor name
    bias: str | None = None                 # the tensor that carries the layer's whole bias
    bias_rest: list[str] = field(default_factory=list)  # the others it sums with (sg)
    bias_conv: bool = False


def _ir_name(path: str, module: nn.Module) -> str:
    """The frontend's node name for a module called at `path` (its `_Builder.module`)."""
    return path if not path[0].isdigit() else f"{type(module).__name__.lower()}{path}"


def _neuron_params(module: nn.Module, layer: str) -> tuple[nn.Module, tuple[str, ...]]:
    """The module holding a neuron layer's parameters, and their names."""
    if isinstance(module, snn.Recurrent):
        module = module.neuron
    for kind, names in _NEURON_PARAMS:
        if isinstance(module, kind):
            return module, names
    if snntorch_layers.is_neuron(module) and type(module).__name__ in _SNNTORCH_PARAMS:
        return module, _SNNTORCH_PARAMS[type(module).__name__]
    raise UnsupportedError(f"layer {layer!r} ({type(module).__name__}): finetune cannot "
                           f"fake-quantise this neuron kind; use one of {_SUPPORTED}")


def _tensor_names(model: nn.Module) -> dict[int, str]:
    """id(tensor) -> its name in `model` (parameters and buffers), for functional_call."""
    named = list(model.named_parameters(remove_duplicate=False)) + \
        list(model.named_buffers(remove_duplicate=False))
    return {id(t): name for name, t in reversed(named)}


def _projection_modules(step: nn.Module) -> dict[str, tuple[str, nn.Module]]:
    """IR name -> (module path, module) of every Linear and Conv2d (a Recurrent's or an
    snnTorch RLeaky's recurrent map is the frontend's `NAME_rec`)."""
    out = {}
    for path, m in step.named_modules():
        if not path:
            continue
        if isinstance(m, (nn.Linear, nn.Conv2d)):
            out[_ir_name(path, m)] = (path, m)
        attr = "rec" if isinstance(m, snn.Recurrent) else \
            "recurrent" if snntorch_layers.is_neuron(m) else None
        rec = getattr(m, attr, None) if attr else None
        if isinstance(rec, (nn.Linear, nn.Conv2d)):
            out[f"{_ir_name(path, m)}_rec"] = (f"{path}.{attr}", rec)
    return out


def _same(a: Any, b: Tensor) -> bool:
    a = np.asarray(a)
    return a.shape == tuple(b.shape) and np.array_equal(a, b.detach().cpu().double().numpy())


def _plan(model: nn.Module, graph: Graph, folded: Graph
          ) -> tuple[list[_Projection], list[_Layer], list[str]]:
    """Match the folded graph's projections and neuron layers to the model's tensors. A torch
    projection whose weights reach a layer changed (folded with BatchNorm, a pooling, a scale
    or a parallel path) is refused by name; projections that are no torch layer's (a reset
    loop, a bias source) stay the quantiser's, listed in the returned notes."""
    from ..passes.fold import _paths

    step = model.step if isinstance(model, snn.TimeLoop) else model
    names = _tensor_names(model)
    torch_proj = _projection_modules(step)
    modules = {_ir_name(p, m): (p, m) for p, m in step.named_modules() if p}
    from_bias_source = set(graph.metadata.get("bias_sources", ()))
    projections, layers, notes = [], [], []
    for lname in folded.schedule():
        if not isinstance(folded[lname], Neuron):
            continue
        if lname not in modules:
            notes.append(f"layer {lname!r} is no module of the model: not fake-quantised")
            continue
        path, module = modules[lname]
        holder, params = _neuron_params(module, lname)
        layer = _Layer(lname, path, {p: names[id(getattr(holder, p))] for p in params
                                     if isinstance(getattr(holder, p, None), Tensor)})
        groups: dict[tuple[str, int], list] = {}
        for p in _paths(graph, lname):
            groups.setdefault((p.source, p.delay), []).append(p)
        biases = []
        for (source, delay), paths in sorted(groups.items()):
            pname = f"{lname}.from_{source}" + (f".d{delay}" if delay else "")
            mine = [n for p in paths for n in p.chain if n in torch_proj]
            if not mine:
                notes.append(f"projection {pname!r} is no Linear/Conv2d of the model: "
                             f"quantised, not fake-quantised")
                continue
            mpath, m = torch_proj[mine[0]]
            # one path, one torch layer on it, nothing but flattening around it: the folded
            # projection is that layer's weights (checked below)
            lone = len(paths) == 1 and len(mine) == 1 and all(
                n == mine[0] or isinstance(graph[n], Flatten) for n in paths[0].chain)
            if not lone or not _same(graph[mine[0]].weight, m.weight) \
                    or not _same(folded[pname].weight, m.weight):
                chain = " + ".join(" -> ".join(p.chain) for p in paths)
                raise UnsupportedError(
                    f"layer {mpath!r} ({type(m).__name__}): its weights reach layer {lname!r} "
                    f"changed (folded as {chain}: a BatchNorm, pooling, scaling or a parallel "
                    f"path), so finetune cannot fake-quantise them; feed the neuron layer "
                    f"from the Linear/Conv2d directly (fold a BatchNorm into its weights "
                    f"first, pool with a strided convolution, merge parallel layers)")
            projections.append(_Projection(pname, lname, names[id(m.weight)], mpath,
                                           isinstance(m, nn.Conv2d)))
            if m.bias is not None and mine[0] not in from_bias_source:
                biases.append((names[id(m.bias)], isinstance(m, nn.Conv2d)))
        if "bias" in layer.params:
            biases.append((layer.params.pop("bias"), False))
        if biases:
            (layer.bias, layer.bias_conv), rest = biases[0], biases[1:]
            layer.bias_rest = [name for name, _ in rest]
            if layer.bias_conv and any(conv for _, conv in rest):
                notes.append(f"layer {lname!r}: several convolution biases; its bias is "
                             f"fake-quantised through the first only")
        layers.append(layer)
    return projections, layers, notes


# -- the fake quantiser ----------------------------------------------------------------------

class FakeQuantizer:
    """Straight-through fake quantisation of `model`'s weights and neuron parameters for
    `profile`, matched to `quantize(from_torch(model), profile, calibration)`.

        fq = FakeQuantizer(model, "loihi2", calibration)   # traces and quantises once
        out = fq(model, spikes)      # the model on fake-quantised tensors (gradients pass)
        fq.sync(model)               # re-read each layer's scale after the weights moved

    `calibration` is spikes (T, batch, *input_shape) for the quantiser's peaks; `layer_bits`
    is passed to `quantize` (per-layer weight widths)."""

    def __init__(self, model: nn.Module, profile: str | Profile = "loihi2",
                 calibration: Any = None, *, layer_bits: Mapping[str, int] | None = None) -> None:
        if calibration is None:
            raise NmcompileError("FakeQuantizer needs calibration spikes (T, batch, "
                                 "*input_shape): the quantiser's scales come from them")
        self.profile = get_profile(profile)
        self.calibration = _numpy(calibration, "calibration")
        self.layer_bits = dict(layer_bits) if layer_bits else None
        self.scales: dict[str, float] = {}
        self.bits: dict[str, int] = {}
        self.qgraph: Graph | None = None
        self.syncs = 0
        graph = self._trace(model)
        from ..passes import fold_linear

        self.projections, self.layers, self.notes = _plan(model, graph, fold_linear(graph))
        self.sync(model, graph)

    def _trace(self, model: nn.Module) -> Graph:
        from ..frontends.pytorch import from_torch

        example = torch.zeros((1, 1, *self.calibration.shape[2:]))
        return from_torch(model, example)

    def sync(self, model: nn.Module, graph: Graph | None = None) -> Graph:
        """Quantise the model as it is now (traced, calibrated) and take each layer's scale S
        and each projection's width from the quantised graph; check that the exponents this
        class computes are the graph's. Returns the quantised graph."""
        from .quantizer import quantize

        was = model.training
        model.eval()
        try:
            graph = graph if graph is not None else self._trace(model)
        finally:
            model.train(was)
        kwargs = {"layer_bits": self.layer_bits} if self.layer_bits else {}
        qgraph = quantize(graph, self.profile, self.calibration, **kwargs)
        meta = qgraph.metadata["quantization"]
        self.scales = dict(meta["scales"])
        narrowed = meta.get("weight_bits", {})
        self.bits = {p.name: narrowed.get(p.name, self.profile.weight_bits)
                     for p in self.projections}
        self.qgraph, self.syncs = qgraph, self.syncs + 1
        tensors = _tensors(model)
        for p in self.projections:
            e = weight_grid(tensors[p.weight], self.scales[p.layer], self._profile(p)).e
            stored = qgraph[p.name]
            if not isinstance(stored, (QDense, QSparse, QConv2d)) or stored.weight_exp != e:
                raise NmcompileError(
                    f"projection {p.name!r} (module {p.module!r}): the fake quantiser's weight "
                    f"exponent {e} is not the quantiser's {getattr(stored, 'weight_exp', '-')}; "
                    f"nmcompile.quantization.qat no longer mirrors quantizer.py (a bug: report "
                    f"it)")
        return qgraph

    def _profile(self, p: _Projection) -> Profile:
        bits = self.bits.get(p.name, self.profile.weight_bits)
        return self.profile if bits == self.profile.weight_bits else \
            replace(self.profile, weight_bits=bits)

    def tensors(self, model: nn.Module) -> dict[str, Tensor]:
        """The fake-quantised tensors by name (straight-through: gradients reach the model's
        own), for `torch.func.functional_call(model, fq.tensors(model), inputs)`."""
        own = _tensors(model)
        out = {}
        for p in self.projections:
            w = own[p.weight]
            out[p.weight] = _ste(quantize_weight(w, self.scales[p.layer], self._profile(p)), w)
        for layer in self.layers:
            s = self.scales[layer.name]
            for param, name in layer.params.items():
                x = own[name]
                if param in ("threshold", "adapt_step"):
                    value = quantize_threshold(x, s)
                else:  # a decay: the current's alpha is applied as du + 1
                    value = quantize_decay(x, 1 if param == "alpha" else 0)
                out[name] = _ste(value.to(x.dtype), x)
            if layer.bias is not None:
                out[layer.bias] = self._bias(layer, own, s)
        return out

    def clip_(self, model: nn.Module) -> None:
        """Clip each projection's float weights, in place, to the range its grid holds,
        |W| <= top * 2**e * 64 / S on its sign mode's side (`Grid.bounds`), as
        BinaryConnect clips its latent weights: a weight pushed beyond would raise max|W|
        and so e (or lower S), coarsening the grid of every other weight of the projection;
        the quantiser would clip it to that value anyway."""
        own = _tensors(model)
        with torch.no_grad():
            for p in self.projections:
                w = own[p.weight]
                s = self.scales[p.layer]
                w.clamp_(*weight_grid(w, s, self._profile(p)).bounds(s))

    def init_clip_(self, model: nn.Module) -> dict[str, float]:
        """Clip each projection's float weights, in place, at its `grid_clip` bound: the
        quantiser's grid spans max|W|, so at a narrow width a few outliers would leave most
        weights on zero. Returns each projection's bound; call `sync` after."""
        own = _tensors(model)
        bounds = {}
        with torch.no_grad():
            for p in self.projections:
                w = own[p.weight]
                t = grid_clip(w, self._profile(p))
                w.clamp_(-t, t)
                bounds[p.name] = t
        return bounds

    def _bias(self, layer: _Layer, own: dict[str, Tensor], scale: float) -> Tensor:
        """The carrier's value such that it and the rest sum to q(total bias): exactly
        q(carrier) when the rest is zero (one Linear's bias into a neuron without its own)."""
        b = own[layer.bias]
        rest = sum((own[n].detach() for n in layer.bias_rest), torch.zeros((), dtype=b.dtype))
        if layer.bias_conv:  # one bias per channel: the rest must be one value per channel
            if rest.numel() not in (1, b.numel()):
                return b
            total = b.view(-1) + rest.reshape(-1)
            return _ste((quantize_bias(total, scale, self.profile) - rest.reshape(-1))
                        .reshape(b.shape), b)
        total = b + rest
        value = quantize_bias(total, scale, self.profile) - rest
        if value.shape != b.shape:  # the rest is per neuron, the carrier one value
            return b
        return _ste(value, b)

    def __call__(self, model: nn.Module, *inputs: Tensor) -> Any:
        """`model(*inputs)` on the fake-quantised tensors, from a reset state."""
        _reset_snntorch(model)
        return torch.func.functional_call(model, self.tensors(model), inputs)


def _reset_snntorch(model: nn.Module) -> None:
    """Zero (and detach) the hidden state snnTorch layers keep with init_hidden=True, which
    `TimeLoop` does not reset (`snntorch.utils.reset` does the same)."""
    for m in model.modules():
        if snntorch_layers.is_neuron(m) and getattr(m, "init_hidden", False) \
                and hasattr(m, "reset_mem"):
            m.reset_mem()


def _copy(model: nn.Module) -> nn.Module:
    """A deep copy of `model`. The state a stateful layer keeps from its last call may hold
    tensors of an autograd graph, which `copy.deepcopy` refuses: those are copied detached
    (the next call resets them anyway), and the caller's model is left as it is."""
    memo: dict[int, Any] = {}
    for m in model.modules():
        for value in vars(m).values():
            inner = value.values() if isinstance(value, dict) else \
                value if isinstance(value, (list, tuple)) else (value,)
            for t in inner:
                if isinstance(t, Tensor) and t.grad_fn is not None:
                    memo[id(t)] = t.detach().clone()
    return copy.deepcopy(model, memo)


def _tensors(model: nn.Module) -> dict[str, Tensor]:
    return dict(model.named_parameters()) | dict(model.named_buffers())


def _numpy(x: Any, what: str) -> np.ndarray:
    arr = x.detach().cpu().numpy() if isinstance(x, Tensor) else np.asarray(x)
    if arr.ndim < 3:
        raise NmcompileError(f"{what} must be spikes (T, batch, *input_shape), got shape "
                             f"{arr.shape}")
    return arr


# -- training --------------------------------------------------------------------------------

@dataclass
class FinetuneHistory:
    """What `finetune` did: per epoch the mean training loss and (spike-count readouts) the
    fake-quantised model's training accuracy; each layer's scale S at every sync; and the
    agreement of the fake-quantised model with the quantised graph on the emulator, on the
    calibration data, after fine-tuning: equal output spike bins, equal per-neuron spike
    counts, equal predicted classes (None for a non-spiking readout)."""

    profile: str
    loss: list[float] = field(default_factory=list)
    train_accuracy: list[float | None] = field(default_factory=list)
    scales: list[dict[str, float]] = field(default_factory=list)
    agreement: dict[str, float] | None = None
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)


Batches = Iterable[tuple[Any, Any]]


def _batches(data: Any, batch_size: int, generator: torch.Generator
             ) -> tuple[Callable[[], Iterator[tuple[Any, Any]]], Any]:
    """An epoch's batches, and the first batch's spikes (the default calibration).

    `data` is (spikes (T, N, ...), labels (N,)), shuffled into batches each epoch, or a
    re-iterable of (spikes, labels) batches (a list, a DataLoader; an object whose __iter__
    encodes afresh gives new spikes each epoch)."""
    if isinstance(data, tuple) and len(data) == 2 and hasattr(data[0], "ndim") \
            and data[0].ndim >= 3:
        x, y = torch.as_tensor(np.asarray(data[0]) if not isinstance(data[0], Tensor)
                               else data[0]), torch.as_tensor(data[1])
        if y.ndim != 1 or len(y) != x.shape[1]:
            raise NmcompileError(f"finetune: labels must have shape (N,) = ({x.shape[1]},) "
                                 f"for spikes of shape {tuple(x.shape)}; got {tuple(y.shape)}")

        def epoch() -> Iterator[tuple[Any, Any]]:
            perm = torch.randperm(x.shape[1], generator=generator)
            for k in range(0, len(perm), batch_size):
                idx = perm[k:k + batch_size]
                yield x[:, idx], y[idx]

        return epoch, x[:, :128]
    if iter(data) is data:
        raise NmcompileError("finetune: data is an iterator, which one epoch would exhaust; "
                             "pass (spikes, labels) arrays, a list of batches or a DataLoader")
    first = next(iter(data), None)
    if first is None:
        raise NmcompileError("finetune: data holds no batches")
    return lambda: iter(data), first[0]


def finetune(model: nn.Module, data: tuple[Any, Any] | Batches,
             profile: str | Profile = "loihi2", *, epochs: int = 5, lr: float = 1e-3,
             loss: Callable[[Any, Tensor], Tensor] | None = None, calibration: Any = None,
             batch_size: int = 32, sync_every: int | None = None, seed: int = 0,
             layer_bits: Mapping[str, int] | None = None, init_clip: bool = True,
             clip_weights: bool = True,
             progress: Callable[[Iterable[int]], Iterable[int]] | None = None
             ) -> tuple[nn.Module, FinetuneHistory]:
    """Fine-tune a copy of `model` for `profile` (a name or a `Profile`, e.g.
    `dataclasses.replace(PROFILES["loihi2"], weight_bits=3)`) with straight-through fake
    quantisation (`FakeQuantizer`, the module docstring's equations); return the copy, with
    float weights that `quantize` maps onto the grid it was trained on, and its history.

    `data`: (spikes (T, N, *input_shape), labels (N,)) arrays or tensors, shuffled into
    batches of `batch_size` each epoch (seeded by `seed`), or a re-iterable of (spikes,
    labels) batches. `loss(outputs, labels)` defaults to the spike-count cross-entropy
    `nmcompile.nn.loss.ce_count`; Adam with learning rate `lr`. `calibration`: the spikes
    `quantize` will be calibrated with (default: the first 128 training samples, or the first
    batch); use the same when quantising the result. Each layer's scale is re-read from the
    quantiser at the start of each epoch, or every `sync_every` steps, and after the last.
    `layer_bits` is passed to `quantize`. `progress` wraps the epochs (e.g. `tqdm`).

    The model is a `nmcompile.nn.TimeLoop` that `from_torch` traces, with one input, or its
    per-step module (an `nn.Sequential` with snnTorch layers; the copy returned is one too);
    each Linear/Conv2d must feed a neuron layer directly (flattening between is fine)."""
    if not isinstance(epochs, int) or epochs < 0:
        raise NmcompileError(f"finetune: epochs must be an integer >= 0, got {epochs!r}")
    start = time.perf_counter()
    prof = get_profile(profile)
    loss_fn = loss or snn.loss.ce_count
    net = _copy(model)  # the caller's model is never touched
    per_step = not isinstance(net, snn.TimeLoop)
    if per_step:  # snnTorch's style: the step module, run over time by a TimeLoop here
        net = snn.TimeLoop(net)
    generator = torch.Generator().manual_seed(seed)
    epoch_batches, first = _batches(data, batch_size, generator)
    cal = _numpy(first if calibration is None else calibration, "calibration")
    fq = FakeQuantizer(net, prof, cal, layer_bits=layer_bits)
    if init_clip:
        fq.init_clip_(net)
        fq.sync(net)
    history = FinetuneHistory(prof.name, notes=list(fq.notes))
    history.scales.append(dict(fq.scales))
    device = next((p.device for p in net.parameters()), torch.device("cpu"))
    opt = torch.optim.Adam([p for p in net.parameters() if p.requires_grad], lr=lr)
    steps = 0
    for epoch in (progress or (lambda r: r))(range(epochs)):
        if epoch and sync_every is None:
            fq.sync(net)
            history.scales.append(dict(fq.scales))
        net.train()
        total, correct, seen = 0.0, 0, 0
        for x, y in epoch_batches():
            x = torch.as_tensor(x).to(device, torch.get_default_dtype())
            y = torch.as_tensor(y).to(device)
            out = fq(net, x)
            value = loss_fn(out, y)
            opt.zero_grad()
            value.backward()
            opt.step()
            if clip_weights:
                fq.clip_(net)
            steps += 1
            total += value.detach().item() * len(y)
            seen += len(y)
            if isinstance(out, Tensor) and out.ndim == 3:
                correct += int((snn.loss.predict_count(out) == y).sum())
            if sync_every and steps % sync_every == 0:
                fq.sync(net)
                history.scales.append(dict(fq.scales))
        history.loss.append(total / max(seen, 1))
        history.train_accuracy.append(correct / seen if seen and isinstance(out, Tensor)
                                      and out.ndim == 3 else None)
    net.eval()
    qgraph = fq.sync(net)
    history.scales.append(dict(fq.scales))
    history.agreement = agreement(fq, net, qgraph, cal)
    history.seconds = round(time.perf_counter() - start, 3)
    return (net.step if per_step else net), history


def agreement(fq: FakeQuantizer, model: nn.Module, qgraph: Graph, spikes: np.ndarray
              ) -> dict[str, float] | None:
    """The fake-quantised `model` against `qgraph` on the emulator, on `spikes`: fractions of
    equal output spike bins, of equal (sample, neuron) spike counts and of equal predicted
    classes. None unless the model has one spiking output."""
    from ..runtime import run

    emulated = run(qgraph, spikes, backend="emulator")
    if len(emulated.outputs) != 1:
        return None
    q = np.asarray(emulated.output())
    if q.dtype != np.uint8:  # values of an LI readout, not spikes
        return None
    with torch.no_grad():
        x = torch.as_tensor(spikes).to(next(model.parameters()).device,
                                       torch.get_default_dtype())
        f = fq(model, x)
    if not isinstance(f, Tensor) or tuple(f.shape) != q.shape:
        return None
    f = f.cpu().numpy()
    counts_f, counts_q = f.sum(0), q.sum(0)
    pred = [snn.loss.predict_count(torch.as_tensor(c[None].astype(np.float32))).numpy()
            for c in (counts_f, counts_q)]
    return {"bins": float((f == q).mean()), "counts": float((counts_f == counts_q).mean()),
            "predictions": float((pred[0] == pred[1]).mean())}
