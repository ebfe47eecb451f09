"""The figures (issue 17, point 7): `estimate --plot`, `verify --plot` and the demo's
digits.png, checked on the `Figure` before it is saved: the panels exist (by title), every
raster row holds the spikes of its layer, no legend covers an axes' data area, a small layer
keeps a visible band, and the energy bars add up to the report's total per device.

The models are test_fidelity's: the demo's digits network trained for one epoch (64 hidden
neurons) and its quantised form.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from test_fidelity import files  # noqa: F401  (the module-scoped fixture, reused)

import nmcompile
from nmcompile import datasets, demo
from nmcompile.analysis import estimate
from nmcompile.cli import main
from nmcompile.plots import DIFFERS, raster_heights, verify_figure

DEVICES = "loihi,truenorth,spinnaker2,cpu"


@pytest.fixture(scope="module")
def models(files) -> tuple[nmcompile.Graph, nmcompile.Graph]:  # noqa: F811
    return nmcompile.load(files["float"]), nmcompile.load(files["quant"])


@pytest.fixture(scope="module")
def digits(models) -> tuple[np.ndarray, np.ndarray]:
    return datasets.test_inputs(models[1].metadata, 8)


def titles(fig: Figure) -> dict[str, Axes]:
    return {ax.get_title(): ax for ax in fig.axes if ax.get_title()}


def rasters(fig: Figure) -> dict[tuple[str, str], Axes]:
    """(column, layer) -> its raster axes (`raster_grid` labels them raster/COLUMN/LAYER)."""
    out = {}
    for ax in fig.axes:
        if ax.get_label().startswith("raster/"):
            _, column, layer = ax.get_label().split("/", 2)
            out[column, layer] = ax
    return out


def points(ax: Axes, colour=None) -> int:
    """Scatter points on `ax`: the spikes (the first collection), or those in `colour`."""
    from matplotlib.colors import same_color

    if colour is None:
        return len(ax.collections[0].get_offsets())
    return sum(len(c.get_offsets()) for c in ax.collections
               if same_color(c.get_edgecolor()[0] if len(c.get_edgecolor()) else "none",
                             colour))


def assert_legends_outside(fig: Figure) -> None:
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    legends = [*fig.legends, *(ax.get_legend() for ax in fig.axes if ax.get_legend())]
    for legend in legends:
        box = legend.get_window_extent(renderer)
        for ax in fig.axes:
            assert not box.overlaps(ax.get_window_extent(renderer)), \
                (legend.get_texts()[0].get_text(), ax.get_title() or ax.get_label())


def assert_no_empty_axes(fig: Figure) -> None:
    for ax in fig.axes:
        assert ax.patches or ax.collections or ax.lines or ax.texts, ax.get_title()


def assert_rasters_hold_the_spikes(fig: Figure, expected: dict[str, dict[str, np.ndarray]]
                                   ) -> None:
    """Every layer of every column has its axes, with one point per spike."""
    found = rasters(fig)
    assert set(found) == {(c, k) for c, layers in expected.items() for k in layers}
    for (column, layer), ax in found.items():
        spikes = int(np.count_nonzero(expected[column][layer]))
        assert points(ax) == spikes, (column, layer)
    assert any(np.count_nonzero(v) for layers in expected.values() for v in layers.values())


def assert_small_layers_visible(fig: Figure, minimum: float = 0.15) -> None:
    """Each raster row takes at least `minimum` of its column's height."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    columns: dict[str, dict[str, float]] = {}
    for (column, layer), ax in rasters(fig).items():
        columns.setdefault(column, {})[layer] = ax.get_window_extent(renderer).height
    for column, heights in columns.items():
        total = sum(heights.values())
        assert min(heights.values()) >= minimum * total, (column, heights)


# ------------------------------------------------------------------------------------------
# shared raster layout
# ------------------------------------------------------------------------------------------


def test_raster_rows_follow_neurons_with_a_minimum() -> None:
    h = raster_heights([64, 128, 10])
    assert sum(h) == pytest.approx(1)
    assert h[1] > h[0] > h[2] >= 0.15
    assert raster_heights([50, 50]) == pytest.approx([0.5, 0.5])


# ------------------------------------------------------------------------------------------
# estimate --plot
# ------------------------------------------------------------------------------------------


def test_estimate_figure_energy_per_layer_and_device_and_rasters(models, digits) -> None:
    q = models[1]
    est = estimate(q, digits[0], DEVICES, raster=True)
    fig = est.figure()
    found = titles(fig)
    assert "synaptic operations" in found and "spikes, first sample" in found
    by_layer = est.energy_by_layer()
    for device, joules in est.energy_j.items():
        ax = next(a for t, a in found.items() if t.startswith(f"energy on {device}:"))
        assert sum(p.get_height() for p in ax.patches) == pytest.approx(joules, rel=1e-9)
        # stacked by term: one bar per layer and term, the layer's terms summing to its bar
        per = by_layer[device]
        assert len(ax.patches) == len(per) * len({t for terms in per.values() for t in terms})
        assert sum(sum(t.values()) for t in per.values()) == pytest.approx(joules, rel=1e-9)
        legend = {t.get_text() for t in ax.get_legend().get_texts()}
        assert legend == {t for terms in per.values() for t in terms}
    assert_rasters_hold_the_spikes(fig, {"spikes, first sample": est.raster})
    assert set(est.raster) == {"input", "lif1", "lif3"}
    assert_small_layers_visible(fig)
    assert_legends_outside(fig)
    assert_no_empty_axes(fig)


def test_energy_per_layer_is_in_the_json_and_the_table(models, digits) -> None:
    est = estimate(models[1], digits[0][:, :2], "loihi,cpu")
    report = est.to_json()
    assert report["energy_layers_j"] == est.energy_by_layer()
    for device, terms in report["energy_terms_j"].items():
        layers = report["energy_layers_j"][device]
        for term, joules in terms.items():
            assert sum(t.get(term, 0.0) for t in layers.values()) == pytest.approx(joules)
    table = est.table()
    assert "energy per layer, per inference:" in table
    assert all(f"  {name}" in table for name in report["energy_layers_j"]["loihi"])


def test_an_analytic_estimate_shows_its_rates_not_an_empty_raster(models) -> None:
    est = estimate(models[1], rates={"default": 0.05, "lif3": 0.2}, steps=25, device="loihi")
    fig = est.figure()
    found = titles(fig)
    assert not rasters(fig)
    ax = next(a for t, a in found.items() if t.startswith("firing rates assumed"))
    widths = sorted(p.get_width() for p in ax.patches)
    assert widths == pytest.approx(sorted(est.rates.values()))
    assert est.rates["lif3"] == 0.2 and est.rates["lif1"] == 0.05
    assert_legends_outside(fig)
    assert_no_empty_axes(fig)


# ------------------------------------------------------------------------------------------
# verify --plot
# ------------------------------------------------------------------------------------------


def test_verify_figure_float_beside_quantised_with_agreement(models, digits) -> None:
    f, q = models
    x, labels = digits
    report = nmcompile.verify(q, x, ["emulator"], reference=f, labels=labels)
    assert "figure_data" not in report.to_json()
    json.dumps(report.to_json(), default=float)  # the arrays stay out of the JSON
    fig = verify_figure(report, 0.95)
    found = titles(fig)
    assert {"float interpreter", "quantised (emulator)"} <= set(found)
    bars = found[next(t for t in found if t.startswith("per-layer agreement"))]
    layers = report.fidelity["layers"]
    assert sorted(p.get_width() for p in bars.patches) == pytest.approx(
        sorted(v["agreement"] for v in layers.values()))
    data = report.figure_data["rasters"]
    expected = {"float interpreter": data["float"], "quantised (emulator)": data["emulator"]}
    assert_rasters_hold_the_spikes(fig, expected)
    for layer, ax in ((k, a) for (c, k), a in rasters(fig).items()
                      if c == "quantised (emulator)"):
        differ = np.count_nonzero((data["float"][layer] != 0) != (data["emulator"][layer] != 0))
        assert points(ax, DIFFERS) == differ, layer
    assert_small_layers_visible(fig)
    assert_legends_outside(fig)
    assert_no_empty_axes(fig)


def test_verify_of_a_float_model_keeps_what_the_figure_needs(models, digits) -> None:
    report = nmcompile.verify(models[0], digits[0][:, :4], ["emulator"])
    data = report.figure_data
    assert set(data["rasters"]) == {"float", "emulator"} and data["samples"] == 4
    assert set(data["layers"]) == {"lif1", "lif3"}
    assert {"float interpreter", "quantised (emulator)"} <= set(titles(verify_figure(report)))


def test_cli_verify_plot_writes_a_png(files, tmp_path, capsys) -> None:  # noqa: F811
    png = tmp_path / "p.png"
    code = main(["verify", str(files["quant"]), "--reference", str(files["float"]),
                 "--samples", "8", "--plot", str(png)])
    out = capsys.readouterr().out
    assert code == 0 and f"wrote {png}" in out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    assert main(["verify", str(files["quant"]), "--reference", str(files["float"]),
                 "--samples", "8", "--plot", str(png), "--json"]) == 0  # ours: replaced
    json.loads(capsys.readouterr().out)  # stdout stays one JSON object
    photo = tmp_path / "photo.png"
    photo.write_bytes(b"\x89PNG\r\n\x1a\n a photo")
    assert main(["verify", str(files["float"]), "--samples", "4", "--plot", str(photo)]) == 1
    assert photo.read_bytes() == b"\x89PNG\r\n\x1a\n a photo"
    capsys.readouterr()
    assert main(["verify", str(files["quant"]), "--backends", "emulator,emulator",
                 "--plot", str(tmp_path / "none.png")]) == 2
    assert "--reference FLOAT.nmc" in capsys.readouterr().err
    assert not (tmp_path / "none.png").exists()


# ------------------------------------------------------------------------------------------
# the demo's digits.png
# ------------------------------------------------------------------------------------------


def test_demo_figure_float_beside_quantised(models, digits) -> None:
    d = demo.Demo(out_dir=Path("unused"))
    d.graph, d.qgraph = models
    d.test_spikes, d.test_labels = digits
    d.summary = {"train_accuracy": [0.4, 0.8], "test_accuracy": {"ir_float": 0.9,
                                                                  "emulator": 0.89}}
    fig = demo.digits_figure(d)
    found = titles(fig)
    assert {"training accuracy", "IR float interpreter", "quantised (emulator)"} <= set(found)
    x = digits[0][:, 0]
    f = nmcompile.run(d.graph, digits[0][:, :1], record=True)
    q = nmcompile.run(d.qgraph, digits[0][:, :1], backend="emulator", record=True)
    assert_rasters_hold_the_spikes(fig, {
        "IR float interpreter": {"input": x, **{k: v[:, 0] for k, v in f.spikes.items()}},
        "quantised (emulator)": {"input": x, **{k: v[:, 0] for k, v in q.spikes.items()}}})
    assert_small_layers_visible(fig)
    assert_legends_outside(fig)
    assert_no_empty_axes(fig)
    assert [stage for stage, _ in demo.STAGES].index("plot") > \
        [stage for stage, _ in demo.STAGES].index("quantize")
