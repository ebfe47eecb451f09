"""What a placement uses and what a run of it sent: a summary, its table, and a mesh plot.

`summary(graph, result)` gives cores and chips used, each core's use of every limit, and,
from a run of the placed graph on the emulator, the messages, hops and per-link packets it
counted plus a per-step latency estimate: the busiest core's synaptic events times the
chip's time per synaptic operation, plus the longest route any message took times the hop
latencies (cores work in parallel; Loihi advances all cores together at a barrier, so the
slowest core and the longest route set a step's time).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from ..ir import Graph
from . import mesh
from .loads import LIMITS, core_loads
from .traffic import chip_of


def summary(graph: Graph, result: Any = None, steps: int | None = None) -> dict[str, Any]:
    """A JSON-safe description of `graph`'s placement, and of `result` (a run of it over
    `steps` sample-steps: T x batch) when given."""
    placement = graph.placement
    if placement is None:
        raise ValueError("the graph has no placement: run nmcompile.map first")
    chip = chip_of(graph)
    n = placement.n_cores
    loads = core_loads(graph, chip, placement.cores, n)
    x, y = mesh.tiles_of(chip, np.arange(n))
    used = np.unique(np.concatenate([v for v in placement.cores.values()] or [[]])).astype(int)
    cores = []
    for c in used.tolist():
        row = {"core": c, "chip": c // chip.cores, "tile": [int(x[c]), int(y[c])],
               "layers": sorted(k for k, v in placement.cores.items() if (v == c).any())}
        for key in LIMITS:
            value = int(getattr(loads, key)[c])
            row[key] = value
            row[f"{key}_used"] = value / loads.limit(chip, key)
        cores.append(row)
    out: dict[str, Any] = {
        "chip": chip.name, "strategy": placement.strategy, "cores": int(used.size),
        "chips": int(np.unique(used // chip.cores).size), "cores_per_chip": chip.cores,
        "tiles": list(chip.tiles), "cores_per_tile": chip.cores_per_tile,
        "per_core": cores,
        "limits": {key: loads.limit(chip, key) for key in LIMITS},
    }
    if result is not None and result.traffic:
        out["traffic"] = _traffic(chip, result, steps)
    return out


def _traffic(chip, result, steps: int | None) -> dict[str, Any]:
    counters = result.counters
    total = {key: sum(counters.get(key, {}).values())
             for key in ("core_messages", "hops_east_west", "hops_north_south",
                         "messages_within_tile")}
    events = result.traffic.get("core_events", {})
    out = {**total, "link_packets": result.traffic["link_packets"],
           "core_messages_by_core": result.traffic["core_messages"],
           "core_events": events}
    if steps and chip.synaptic_op is not None and chip.links:
        busiest = max(events.values(), default=0) / steps
        ew, ns = result.traffic.get("longest_route", (0, 0))
        step = busiest * chip.synaptic_op.seconds + ew * chip.links["hop_east_west"].seconds \
            + ns * chip.links["hop_north_south"].seconds
        out["step_seconds"] = step
        out["steps_per_second"] = 1 / step if step else math.inf
    return out


def table(info: dict[str, Any]) -> str:
    """The summary as text: one line per core in use, then the traffic totals."""
    lines = [f"chip {info['chip']} ({info['strategy']}): {info['cores']} cores on "
             f"{info['chips']} chip(s) of {info['cores_per_chip']}"]
    head = ("core", "tile", "neurons", "synapse bits", "in axons", "out axons", "layers")
    rows = [head] + [(str(c["core"]), "{},{}".format(*c["tile"]),
                      *(f"{c[k]:,} ({100 * c[f'{k}_used']:.0f}%)" for k in LIMITS),
                      ", ".join(c["layers"])) for c in info["per_core"]]
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    for k, r in enumerate(rows):
        lines.append("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip())
        if k == 0:
            lines.append("  ".join("-" * w for w in widths))
    if (t := info.get("traffic")) is not None:
        lines.append(f"messages {t['core_messages']:,} ({t['messages_within_tile']:,} within a "
                     f"tile); hops {t['hops_east_west']:,} east-west, "
                     f"{t['hops_north_south']:,} north-south")
        if "step_seconds" in t:
            lines.append(f"per step: {t['step_seconds'] * 1e6:.3g} us (busiest core and "
                         f"longest route), {t['steps_per_second']:,.0f} steps/s")
    return "\n".join(lines)


def plot(info: dict[str, Any], path: str | Path, *, force: bool = False) -> Path:
    """A heat map of the mesh: each core coloured by its highest use of a limit, each
    used link drawn with a width and colour by its packets (needs a run's traffic)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib import cm, colors

    from ..outputs import save_figure

    per_tile: dict[tuple[int, int], list[dict]] = {}
    for c in info["per_core"]:
        per_tile.setdefault(tuple(c["tile"]), []).append(c)
    width = info["tiles"][0] * max(info["chips"], max(x for x, _ in per_tile) //
                                   info["tiles"][0] + 1)
    height = info["tiles"][1]
    fig, ax = plt.subplots(figsize=(min(18, 4 + 1.1 * width), min(12, 2.5 + 1.1 * height)))
    use = cm.viridis
    slots = info["cores_per_tile"]
    for x in range(width):  # every tile of the chips in use, the idle ones empty
        for y in range(height):
            ax.add_patch(plt.Rectangle((x - 0.45, y - 0.45), 0.9, 0.9, fill=False, lw=0.5,
                                       color="0.6"))
    for (x, y), cores in per_tile.items():
        for c in cores:
            k = c["core"] % slots
            fill = max(c[f"{key}_used"] for key in LIMITS)
            ax.add_patch(plt.Rectangle((x - 0.4 + 0.8 * k / slots, y - 0.4), 0.8 / slots, 0.8,
                                       color=use(min(fill, 1.0))))
    packets = (info.get("traffic") or {}).get("link_packets", {})
    if packets:
        most = max(packets.values())
        norm = colors.Normalize(0, most)
        for name, count in packets.items():
            a, b = name.split("->")
            if b == "host":  # out of the host port, drawn below the host tile
                x0, y0 = map(int, a.split(","))
                x1, y1 = x0 - 1, y0 + 0.3
            else:
                x1, y1 = map(int, b.split(","))
                x0, y0 = (x1 - 1, y1) if a == "host" else map(int, a.split(","))
            ax.annotate("", (x1, y1), (x0, y0), arrowprops={
                "arrowstyle": "->", "color": cm.inferno(norm(count)),
                "lw": 0.5 + 4 * count / most, "shrinkA": 12, "shrinkB": 12})
        fig.colorbar(cm.ScalarMappable(norm, cm.inferno), ax=ax, label="packets per link")
    fig.colorbar(cm.ScalarMappable(colors.Normalize(0, 1), use), ax=ax,
                 label="core: highest use of a limit")
    ax.set(xlim=(-1.5, width), ylim=(height, -1), aspect="equal", xlabel="tile x",
           ylabel="tile y")
    ax.set_title(f"{info['chip']}: {info['cores']} cores ({info['strategy']})", fontsize=10)
    fig.tight_layout()
    out = save_figure(fig, path, force=force)
    plt.close(fig)
    return out
