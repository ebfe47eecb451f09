"""An estimate for people and programs: a per-layer table, one JSON object, a PNG."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .counts import Counts
from .energy import Device

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

    def energy(self) -> dict[str, dict[str, Any]]:
        per = self.counts.per_inference()
        return {d.name: d.energy(per) for d in [*self.devices, *self.baselines]}

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
        lines.append("Routing between cores (tile hops) is left out everywhere: it needs a "
                     "placement onto cores, which nmcompile does not make yet. Every term's "
                     "source and every omission's reason: --json.")
        return "\n".join(lines)

    def plot(self, path: str | Path, force: bool = False) -> Path:
        """A PNG: synaptic ops per inference of each projection (stored and non-zero
        synapses), and the spike raster of the first sample. An existing file at `path` is
        replaced only when it is a figure nmcompile wrote, or with `force`."""
        import matplotlib

        from ..outputs import save_figure

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        c = self.counts
        projections = [layer for layer in c.layers if layer.kind == "projection"]
        fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 4),
                                     gridspec_kw={"width_ratios": [1, 1.4]})
        pos = np.arange(len(projections))
        ax.bar(pos - 0.2, [p.synaptic_ops / c.samples for p in projections], 0.4,
               label="stored synapses")
        ax.bar(pos + 0.2, [p.synaptic_ops_nonzero / c.samples for p in projections], 0.4,
               label="non-zero weights")
        ax.set_xticks(pos, [p.name for p in projections], rotation=20, ha="right", fontsize=8)
        ax.set(ylabel="synaptic ops per inference",
               title="synaptic operations" + ("" if c.measured else " (analytic)"))
        ax.legend(fontsize=8)
        offset = 0
        for name, spikes in self.raster.items():
            t, i = np.nonzero(spikes)
            bx.scatter(t, i + offset, s=9, marker="|", label=name)
            offset += spikes.shape[1]
        if self.raster:
            bx.legend(fontsize=8, loc="upper right", markerscale=3)
        bx.set(title="spikes, first sample", xlabel="step", ylabel="neuron (layers stacked)",
               xlim=(-0.5, c.steps - 0.5))
        fig.tight_layout()
        try:
            return save_figure(fig, path, force=force)
        finally:
            plt.close(fig)
