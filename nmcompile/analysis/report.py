"""An estimate for people and programs: a per-layer table, one JSON object, a PNG."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .counts import Counts
from .energy import Device

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure
    from matplotlib.gridspec import SubplotSpec

ASSUMPTIONS = [
    "A synaptic op is one (delivered non-zero input, stored synapse) pair: a dense matrix "
    "stores its zeros, a sparse one only its entries, a convolution every kernel tap inside "
    "the input (padding holds no synapse).",
    "A neuron update is active when an event (or a non-zero direct input) reaches the neuron "
    "on that step, or it spikes; otherwise idle.",
    "Energies are per inference: the run's counts divided by its samples; 'macs' (ANN "
    "baselines) is the synapse count, one forward pass per inference.",
    "Conventional devices (cpu, gpu, arm) evaluate every synapse on every step "
    "(synapses x steps), as KerasSpiking assumes for non-spiking devices.",
    "A float graph's linear chains are folded into single projections first, as the "
    "quantiser does; its weights and states are counted at 32 bits.",
]


def si(joules: float) -> str:
    """Joules with an SI prefix: 1.23 uJ."""
    for scale, unit in ((1.0, "J"), (1e-3, "mJ"), (1e-6, "uJ"), (1e-9, "nJ"), (1e-12, "pJ")):
        if abs(joules) >= scale:
            return f"{joules / scale:.3g} {unit}"
    return f"{joules / 1e-15:.3g} fJ"


def _num(value: float) -> str:
    if value == 0:
        return "-"
    return f"{value:,.0f}" if abs(value) >= 100 or float(value).is_integer() else f"{value:,.1f}"


@dataclass
class Estimate:
    """Counts of a run (or their expectation, `counts.measured` False) on a model, and the
    energy per inference they imply on each device and on the ANN baselines."""

    model: str
    counts: Counts
    devices: list[Device]
    baselines: list[Device] = field(default_factory=list)
    #: layer -> (T, n) spikes of the first sample (inputs included), for the plot
    raster: dict[str, np.ndarray] = field(default_factory=dict)
    #: projection -> synapses of the float model that the quantised one does not store
    #: (stored sparse without its zeros), from the quantiser's record in the graph
    dropped: dict[str, int] = field(default_factory=dict)
    #: layer -> firing rate an analytic estimate assumed (empty for a measured one)
    rates: dict[str, float] = field(default_factory=dict)

    def energy(self) -> dict[str, dict[str, Any]]:
        per = self.counts.per_inference()
        return {d.name: d.energy(per) for d in [*self.devices, *self.baselines]}

    def energy_by_layer(self) -> dict[str, dict[str, dict[str, float]]]:
        """Device -> layer -> term -> joules per inference, for the requested devices: each
        layer's part of the counts (`Counts.per_layer`) priced by the same `Device.energy` as
        the total, so the layers add up to it. Layers that cost nothing are left out; the
        table, the JSON and the plot all read this."""
        shares = self.counts.per_layer()
        out: dict[str, dict[str, dict[str, float]]] = {}
        for d in self.devices:
            priced = {layer: d.energy(share)["terms"] for layer, share in shares.items()}
            out[d.name] = {k: t for k, t in priced.items() if any(t.values())}
        return out

    @property
    def energy_j(self) -> dict[str, float]:
        """Device name -> joules per inference, for the requested devices."""
        per = self.counts.per_inference()
        return {d.name: d.energy(per)["joules"] for d in self.devices}

    def to_json(self) -> dict[str, Any]:
        c, per = self.counts, self.counts.per_inference()
        energy = self.energy()
        layers = []
        for layer in c.layers:
            row = layer.to_json()
            row["synaptic_ops_per_inference"] = layer.synaptic_ops / c.samples
            layers.append(row)
        return {
            "model": self.model,
            "backend": c.backend,
            "measured": c.measured,
            "steps": c.steps,
            "samples": c.samples,
            "layers": layers,
            "total": c.total(),
            "per_inference": per,
            "energy_j": {d.name: energy[d.name]["joules"] for d in self.devices},
            "energy_terms_j": {d.name: energy[d.name]["terms"] for d in self.devices},
            "energy_layers_j": self.energy_by_layer(),
            "baseline_j": {d.name: energy[d.name]["joules"] for d in self.baselines},
            "omitted": {name: e["omitted"] for name, e in energy.items()},
            "devices": {d.name: {"title": d.title, "kind": d.kind, "file": d.path,
                                 "notes": d.notes} for d in [*self.devices, *self.baselines]},
            "sources": {d.name: d.sources() for d in [*self.devices, *self.baselines]},
            "assumptions": ASSUMPTIONS + c.notes,
            "dropped_synapses": dict(self.dropped),
        }

    def table(self) -> str:
        c = self.counts
        how = (f"measured on {c.backend}" if c.measured else "analytic (expected from rates)")
        lines = [f"{self.model}: {how}, {c.samples} sample(s) x {c.steps} steps; counts per "
                 f"inference"]
        head = ("layer", "type", "synapses", "non-zero", "syn. ops", "on non-zero", "updates",
                "active", "spikes", "weight bits", "state bits")
        rows = [head]
        n = c.samples
        for layer in c.layers:
            rows.append((layer.name, layer.type, _num(layer.synapses),
                         _num(layer.nonzero_synapses), _num(layer.synaptic_ops / n),
                         _num(layer.synaptic_ops_nonzero / n), _num(layer.neuron_updates / n),
                         _num(layer.active_updates / n), _num(layer.spikes / n),
                         _num(layer.weight_bits + layer.index_bits), _num(layer.state_bits)))
        t = c.total()
        rows.append(("total", "", _num(t["synapses"]), _num(t["nonzero_synapses"]),
                     _num(t["synaptic_ops"] / n), _num(t["synaptic_ops_nonzero"] / n),
                     _num(t["neuron_updates"] / n), _num(t["active_updates"] / n),
                     _num(t["spikes"] / n), _num(t["weight_bits"] + t["index_bits"]),
                     _num(t["state_bits"])))
        widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
        for k, r in enumerate(rows):
            if k == len(rows) - 1:
                lines.append("  ".join("-" * w for w in widths))
            lines.append("  ".join(v.ljust(w) if i < 2 else v.rjust(w)
                                   for i, (v, w) in enumerate(zip(r, widths, strict=True))))
            if k == 0:
                lines.append("  ".join("-" * w for w in widths))
        if self.dropped:
            lines.append("synapses of the float model that quantisation dropped (weights that "
                         "round to zero, stored sparse): " + ", ".join(
                             f"{k}: {v:,}" for k, v in self.dropped.items()))
        energy = self.energy()
        for title, group in (("energy per inference", self.devices),
                             ("ANN baseline, same topology, one pass per inference",
                              self.baselines)):
            if not group:
                continue
            lines.append(f"{title}:")
            width = max(len(d.name) for d in group)
            for d in group:
                e = energy[d.name]
                parts = ", ".join(f"{k} {si(v)}" for k, v in e["terms"].items())
                lines.append(f"  {d.name.ljust(width)}  {si(e['joules']).rjust(9)}  ({parts})")
                if e["omitted"]:
                    left = ", ".join(o["name"] for o in e["omitted"])
                    lines.append(f"  {''.ljust(width)}  {''.rjust(9)}  leaves out: {left}")
        lines += self._layer_energy_lines()
        if not self.counts.routing:
            lines.append("Routing between cores (messages, tile hops) is priced only for a "
                         "mapped graph: estimate the output of `nmcompile map`.")
        lines.append("Every term's source and every omission's reason: --json.")
        return "\n".join(lines)

    def _layer_energy_lines(self) -> list[str]:
        """Energy per inference of each layer (rows) on each requested device (columns)."""
        by_layer = self.energy_by_layer()
        layers = [r.name for r in self.counts.layers
                  if any(r.name in per for per in by_layer.values())]
        if not layers:
            return []
        rows = [("layer", *by_layer)]
        rows += [(k, *(si(sum(per[k].values())) if k in per else "-"
                       for per in by_layer.values())) for k in layers]
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        return ["energy per layer, per inference:"] + [
            "  " + "  ".join(v.ljust(w) if i == 0 else v.rjust(w)
                             for i, (v, w) in enumerate(zip(r, widths, strict=True)))
            for r in rows]

    def figure(self) -> Figure:
        """The estimate as a figure: synaptic ops per projection, the energy per layer on
        each requested device stacked by term, and the first sample's spike raster (one row
        per layer) or, for an analytic estimate, the firing rates it assumed."""
        from ..plots import new_figure

        side = bool(self.raster) or not self.counts.measured
        n_dev = len(self.devices)
        rows = (n_dev + 1) // 2
        fig = new_figure(15 if side else 10, 3.2 + 2.7 * rows)
        outer = fig.add_gridspec(1, 2 if side else 1, width_ratios=[2, 1] if side else [1])
        left = outer[0].subgridspec(1 + rows, 2, height_ratios=[1.1] + [1] * rows)
        self._ops_axes(fig.add_subplot(left[0, :]))
        colours = _term_colours(self.devices)
        by_layer, energy = self.energy_by_layer(), self.energy()
        for k, d in enumerate(self.devices):
            span = left[1 + k // 2, :] if n_dev % 2 and k == n_dev - 1 else \
                left[1 + k // 2, k % 2]
            _energy_axes(fig.add_subplot(span), d.name, by_layer[d.name],
                         energy[d.name]["joules"], colours)
        if self.raster:
            from ..plots import raster_grid

            raster_grid(fig, {"spikes, first sample": self.raster}, cell=outer[1])
        elif not self.counts.measured:
            self._rates_axes(fig, outer[1])
        how = f"measured on {self.counts.backend}" if self.counts.measured else "analytic"
        fig.suptitle(f"{self.model}: {how}, per inference ({self.counts.steps} steps)",
                     fontsize=10)
        return fig

    def _ops_axes(self, ax: Axes) -> None:
        """Synaptic ops per inference of each projection: on stored and on non-zero synapses."""
        from ..plots import legend_outside

        c = self.counts
        projections = [layer for layer in c.layers if layer.kind == "projection"]
        pos = np.arange(len(projections))
        ax.bar(pos - 0.2, [p.synaptic_ops / c.samples for p in projections], 0.4,
               label="stored synapses")
        ax.bar(pos + 0.2, [p.synaptic_ops_nonzero / c.samples for p in projections], 0.4,
               label="non-zero weights")
        ax.set_xticks(pos, [p.name for p in projections], rotation=20, ha="right", fontsize=8)
        ax.set_ylabel("synaptic ops per inference", fontsize=8)
        ax.set_title("synaptic operations" + ("" if c.measured else " (analytic)"), fontsize=9)
        ax.tick_params(labelsize=7)
        legend_outside(ax)

    def _rates_axes(self, fig: Figure, cell: SubplotSpec) -> None:
        """An analytic estimate simulates nothing, so there is no raster: the rates it
        assumed instead, one bar per layer."""
        from ..plots import layer_colours

        ax = fig.add_subplot(cell)
        rates = self.rates or {r.name: r.spikes / (r.neurons * self.counts.steps
                                                   * self.counts.samples)
                               for r in self.counts.layers if r.kind != "projection"
                               and r.neurons}
        names = list(rates)
        colours = layer_colours(names)
        pos = np.arange(len(names))[::-1]
        ax.barh(pos, [rates[k] for k in names], color=[colours[k] for k in names], height=0.6)
        for y, k in zip(pos, names, strict=True):
            ax.text(rates[k], y, f" {rates[k]:.3g}", va="center", fontsize=8)
        ax.set_yticks(pos, names, fontsize=8)
        ax.set_xlim(0, max([*rates.values(), 1e-9]) * 1.25)
        ax.set_xlabel("spikes per neuron per step", fontsize=8)
        ax.set_title("firing rates assumed (analytic: no simulation, no raster)", fontsize=9)
        ax.tick_params(labelsize=7)

    def plot(self, path: str | Path, force: bool = False) -> Path:
        """A PNG of `figure()`. An existing file at `path` is replaced only when it is a
        figure nmcompile wrote, or with `force`."""
        from ..plots import save

        return save(self.figure(), path, force=force)


def _term_colours(devices: list[Device]) -> dict[str, Any]:
    """One colour per energy term name over all devices, so that a term looks the same on
    every device's axes."""
    from matplotlib import colormaps

    names = list(dict.fromkeys(t.name for d in devices for t in d.terms))
    palette = colormaps["Set2"].colors + colormaps["Dark2"].colors
    return {name: palette[k % len(palette)] for k, name in enumerate(names)}


def _energy_axes(ax: Axes, device: str, by_layer: dict[str, dict[str, float]], total: float,
                 colours: dict[str, Any]) -> None:
    """One device's energy per inference: a bar per layer, stacked by term."""
    from matplotlib.ticker import EngFormatter

    from ..plots import legend_outside

    layers = list(by_layer)
    pos = np.arange(len(layers))
    bottom = np.zeros(len(layers))
    terms = list(dict.fromkeys(t for per in by_layer.values() for t in per))
    for term in terms:
        height = np.array([by_layer[k].get(term, 0.0) for k in layers])
        ax.bar(pos, height, 0.6, bottom=bottom, label=term, color=colours.get(term, "0.5"))
        bottom += height
    ax.set_xticks(pos, layers, rotation=20, ha="right", fontsize=7)
    ax.yaxis.set_major_formatter(EngFormatter(unit="J"))
    ax.set_title(f"energy on {device}: {si(total)} per inference", fontsize=9)
    ax.tick_params(labelsize=7)
    if terms:
        legend_outside(ax, title="term", title_fontsize=7)
    else:
        ax.text(0.5, 0.5, "no energy counted", transform=ax.transAxes, ha="center",
                fontsize=8, color="0.4")
