"""Figures, drawn one way for `estimate --plot`, `verify --plot` and the demo's digits.png.

Spike rasters are drawn one axis per layer: a row's height follows the layer's neuron count,
with a minimum share (`MIN_SHARE`), so that a 10-neuron output layer under a 128-neuron
hidden layer is still seen; every layer has its own colour and its name on its row. Several
runs of the same network (float and quantised) are columns of the same rows, so one layer
sits at one height across them, and the bins where a run differs from the reference column
are marked. Legends sit outside the data area, never on the spikes.

Every figure is a `matplotlib.figure.Figure` on the Agg canvas, made without pyplot (no global
figure list to leak into), so that a caller can look at it before `save` writes it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure, SubFigure
    from matplotlib.gridspec import SubplotSpec

    from .verification import VerifyReport

#: The least share of a raster column's height one layer's row gets (before renormalising).
MIN_SHARE = 0.2
DIFFERS = "#d62728"  # the marker of bins where a run differs from the reference column


def new_figure(width: float, height: float) -> Figure:
    """An empty figure on the Agg canvas with constrained layout (which keeps the legends
    placed outside the axes inside the figure)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def save(fig: Figure, path: str | Path, *, force: bool = False) -> Path:
    """Write `fig` as a PNG through `nmcompile.outputs.save_figure` (which replaces only a
    figure nmcompile wrote, unless `force`)."""
    from .outputs import save_figure

    return save_figure(fig, path, force=force)


def layer_colours(names: Iterable[str]) -> dict[str, Any]:
    """One colour per layer, in order, from the tab10 cycle (red left out: it marks
    differences)."""
    from matplotlib import colormaps

    palette = [c for k, c in enumerate(colormaps["tab10"].colors) if k != 3]
    return {name: palette[k % len(palette)] for k, name in enumerate(names)}


def raster_heights(sizes: Sequence[int], minimum: float = MIN_SHARE) -> list[float]:
    """Height ratios of raster rows: proportional to the neuron counts `sizes`, each at least
    `minimum` of the column, so that no layer shrinks to a line."""
    total = sum(sizes) or 1
    share = [max(n / total, minimum) for n in sizes]
    return [s / sum(share) for s in share]


def as_raster(spikes: np.ndarray) -> np.ndarray:
    """(T, *shape) spikes or values -> (T, n) bool: which neuron emitted on which step."""
    a = np.asarray(spikes)
    return a.reshape(a.shape[0], -1) != 0


def _grid_cell(fig: Figure | SubFigure, cell: SubplotSpec | None) -> SubplotSpec:
    return fig.add_gridspec(1, 1)[0] if cell is None else cell


def draw_raster(ax: Axes, spikes: np.ndarray, colour: Any,
                reference: np.ndarray | None = None) -> None:
    """One layer's raster on `ax` (step on x, neuron on y), in `colour`; with `reference`
    (the same layer in the reference run), the bins where the two differ get a red cross.
    A layer that did not spike says so, rather than leaving an empty box."""
    r = as_raster(spikes)
    t, i = np.nonzero(r)
    n = r.shape[1]
    size = float(np.clip(600 / max(n, 1), 2, 12))  # finer marks for bigger layers
    ax.scatter(t, i, s=size, marker="s", color=colour, linewidths=0)
    if reference is not None and reference.shape == r.shape:
        dt, di = np.nonzero(r != as_raster(reference))
        if dt.size:
            ax.scatter(dt, di, s=max(size, 8), marker="x", color=DIFFERS, linewidths=0.8)
    if not t.size:
        ax.text(0.5, 0.5, "no spikes", transform=ax.transAxes, ha="center", va="center",
                fontsize=8, color="0.4")
    ax.set_xlim(-0.5, r.shape[0] - 0.5)
    ax.set_ylim(-0.5, n - 0.5)
    ax.set_yticks([0, n - 1] if n > 1 else [0])
    ax.tick_params(labelsize=7)


def raster_grid(fig: Figure | SubFigure, columns: Mapping[str, Mapping[str, np.ndarray]], *,
                cell: SubplotSpec | None = None, against: str | None = None
                ) -> dict[str, dict[str, Axes]]:
    """Rasters of several runs: one column per entry of `columns` (title -> layer -> (T, n)
    spikes of one sample), one row per layer that every column has, in the first column's
    order. With `against` (a column title), the other columns mark where they differ from
    it, and a legend outside the top-right axis says so. Returns title -> layer -> axes."""
    first = next(iter(columns.values()))
    layers = [k for k in first if all(k in c for c in columns.values())]
    if not layers:
        raise ValueError("no layer to draw: the runs share no recorded layer")
    sizes = [as_raster(first[k]).shape[1] for k in layers]
    grid = _grid_cell(fig, cell).subgridspec(len(layers), len(columns),
                                             height_ratios=raster_heights(sizes))
    colours = layer_colours(layers)
    axes: dict[str, dict[str, Axes]] = {}
    share = None
    for j, (title, run) in enumerate(columns.items()):
        axes[title] = {}
        for i, layer in enumerate(layers):
            ax = fig.add_subplot(grid[i, j], sharex=share)
            share = share or ax
            ref = None if against in (None, title) else columns[against][layer]
            draw_raster(ax, run[layer], colours[layer], ref)
            ax.set_label(f"raster/{title}/{layer}")  # found again by tests and callers
            if j == 0:
                ax.set_ylabel(f"{layer}\n({sizes[i]})", rotation=0, ha="right", va="center",
                              fontsize=8)
            if i == 0:
                ax.set_title(title, fontsize=9)
            if i < len(layers) - 1:
                ax.tick_params(labelbottom=False)
            else:
                ax.set_xlabel("step", fontsize=8)
            axes[title][layer] = ax
    if against is not None and len(columns) > 1:
        _differs_legend(axes[list(columns)[-1]][layers[0]], against)
    return axes


def _differs_legend(ax: Axes, against: str) -> None:
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], ls="", marker="s", color="0.3", markersize=4, label="spike"),
               Line2D([], [], ls="", marker="x", color=DIFFERS, markersize=5,
                      label=f"differs from {against}")]
    legend_outside(ax, handles=handles)


def legend_outside(ax: Axes, **kwargs: Any) -> Any:
    """A legend to the right of `ax`, outside its data area (constrained layout makes room)."""
    return ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0,
                     fontsize=7, frameon=False, **kwargs)


# ------------------------------------------------------------------------------------------
# verify --plot
# ------------------------------------------------------------------------------------------


def agreement_bars(ax: Axes, layers: Mapping[str, Mapping[str, Any]], samples: int | None,
                   min_agreement: float | None = None) -> None:
    """Per-layer agreement of float and quantised spike bins (`fidelity`'s "layers"), one
    horizontal bar per layer, with the bound verify checks (`min_agreement`) as a line."""
    from matplotlib.ticker import MaxNLocator, PercentFormatter

    names = list(layers)
    values = [float(layers[k]["agreement"]) for k in names]
    colours = layer_colours(names)
    pos = np.arange(len(names))[::-1]  # the first layer on top, as in the rasters
    ax.barh(pos, values, color=[colours[k] for k in names], height=0.5)
    for y, v in zip(pos, values, strict=True):  # inside the bar's end: the axis stops at 1
        ax.text(v, y, f"{v:.1%} ", va="center", ha="right", fontsize=8, color="white",
                fontweight="bold")
    low = min([*values, min_agreement or 1.0])
    # zoomed on the range that matters (agreements sit near 1), never past 1
    ax.set_xlim(max(0.0, low - 0.25 * (1 - low) - 0.02), 1.0)
    ax.xaxis.set_major_locator(MaxNLocator(5))
    ax.xaxis.set_major_formatter(PercentFormatter(1.0, decimals=1))
    ax.set_yticks(pos, names, fontsize=8)
    if min_agreement is not None:
        ax.axvline(min_agreement, color=DIFFERS, ls="--", lw=1,
                   label=f"--min-agreement {min_agreement:g}")
        legend_outside(ax)
    over = f"{samples} samples" if samples else "all samples"
    ax.set_title(f"per-layer agreement ({over})", fontsize=9)
    ax.set_xlabel("equal (step, sample, neuron) bins", fontsize=8)
    ax.tick_params(labelsize=7)


def verify_figure(report: VerifyReport, min_agreement: float | None = None) -> Figure:
    """Float vs quantised: the first sample's rasters side by side, per layer (the quantised
    column marks the bins that differ), and each layer's agreement over every sample. Needs
    a report that compared a float graph with a quantised one (`report.figure_data`)."""
    data = report.figure_data
    if not data:
        raise ValueError("this verify report compared no float model with a quantised one: "
                         "nothing to draw")
    rasters = data["rasters"]
    n_layers = len(next(iter(rasters.values())))
    fig = new_figure(13, max(4.5, 1.5 + 1.0 * n_layers))
    outer = fig.add_gridspec(1, 2, width_ratios=[2.3, 1])
    titles = {name: ("float interpreter" if name == "float" else f"quantised ({name})")
              for name in rasters}
    raster_grid(fig, {titles[k]: v for k, v in rasters.items()}, cell=outer[0],
                against=titles["float"])
    agreement_bars(fig.add_subplot(outer[1]), data["layers"], data.get("samples"),
                   min_agreement)
    fig.suptitle(f"float vs quantised, first sample (verdict: {_verdict(report)})",
                 fontsize=10)
    return fig


def _verdict(report: VerifyReport) -> str:
    return "pass" if report.exit_code == 0 else f"exit {report.exit_code}"
