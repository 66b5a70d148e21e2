"""Every figure of a report, checked as a reader would look at it: no clipped titles or
labels, no tick labels running into each other, one tick-label size per axis, bands and
whiskers inside the metric's range, one colour scale (with its bar) per heatmap."""

import numpy as np
import pandas as pd
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from test_referee import ZIPPED, write_curves

from mlpsweep.report.analysis import analyse
from mlpsweep.report.collect import collect
from mlpsweep.report.figures import FigureContext, drawn
from mlpsweep.report.study import Study


def _figures(analysis, study):
    """(title, caption, figure) of every figure the registry draws for `analysis`."""
    ctx = FigureContext(analysis, study)
    return [(spec.title, spec.caption_for(ctx), fig) for spec, fig in drawn(ctx)]


def texts_inside(fig, renderer):
    """(text, its box) of every title, axis label, tick label and legend that shows."""
    out = []
    for t in [fig._suptitle] if fig._suptitle is not None else []:
        out.append((t.get_text(), t.get_window_extent(renderer)))
    for ax in fig.axes:
        if not ax.get_visible():
            continue
        for t in (ax.title, ax.xaxis.label, ax.yaxis.label):
            if t.get_text():
                out.append((t.get_text(), t.get_window_extent(renderer)))
        legend = ax.get_legend()
        if legend is not None:
            out.append(("legend", legend.get_window_extent(renderer)))
    for legend in fig.legends:
        out.append(("legend", legend.get_window_extent(renderer)))
    return out


def tick_labels(axis, renderer):
    """The tick labels an axis shows (major and minor), with their boxes."""
    ticks = axis.get_major_ticks() + axis.get_minor_ticks()
    lo, hi = sorted(axis.get_view_interval())
    out = []
    for tick in ticks:
        label = tick.label1
        if label.get_visible() and label.get_text() and lo <= tick.get_loc() <= hi:
            out.append((label, label.get_window_extent(renderer)))
    return out


def check(title, fig):
    renderer = FigureCanvasAgg(fig).get_renderer()
    fig.draw(renderer)
    width, height = fig.bbox.width, fig.bbox.height
    placed = texts_inside(fig, renderer)
    for text, box in placed:
        assert box.x0 >= -1 and box.y0 >= -1, (title, text, "clipped left/bottom")
        assert box.x1 <= width + 1 and box.y1 <= height + 1, (title, text, "clipped right/top")
    for i, (t1, b1) in enumerate(placed):  # titles, labels and legends never collide
        for t2, b2 in placed[i + 1 :]:
            overlap_x = min(b1.x1, b2.x1) - max(b1.x0, b2.x0)
            overlap_y = min(b1.y1, b2.y1) - max(b1.y0, b2.y0)
            assert not (overlap_x > 1 and overlap_y > 1), (title, t1, t2, "overlap")
    for ax in fig.axes:
        if not ax.get_visible() or not ax.axison:
            continue
        for axis in (ax.xaxis, ax.yaxis):
            labels = tick_labels(axis, renderer)
            sizes = {round(label.get_fontsize(), 1) for label, _ in labels}
            assert len(sizes) <= 1, (title, "tick labels of two sizes", sizes)
            for label, box in labels:
                assert "$" not in label.get_text(), (title, label.get_text(), "mathtext")
                assert box.x0 >= -1 and box.x1 <= width + 1, (title, label.get_text(), "clipped")
                assert box.y0 >= -1 and box.y1 <= height + 1, (title, label.get_text(), "clipped")
            labels.sort(key=lambda pair: (pair[1].x0, pair[1].y0))
            for (l1, b1), (l2, b2) in zip(labels, labels[1:]):
                if l1.get_rotation() % 90:  # slanted: parallel lines a text height apart
                    gap = abs(b2.x0 - b1.x0) * np.sin(np.radians(l1.get_rotation()))
                    line = renderer.points_to_pixels(l1.get_fontsize())
                    assert gap > line, (title, l1.get_text(), l2.get_text(), "slanted overlap")
                    continue
                overlap_x = min(b1.x1, b2.x1) - max(b1.x0, b2.x0)
                overlap_y = min(b1.y1, b2.y1) - max(b1.y0, b2.y0)
                assert not (overlap_x > 1 and overlap_y > 1), (title, "tick labels overlap")


@pytest.fixture(scope="module")
def zipped(tmp_path_factory):
    sweep = write_curves(tmp_path_factory.mktemp("zipped"), ZIPPED)
    return analyse(collect(sweep, write=False), first=["batch_size"])


@pytest.fixture(scope="module")
def grid(tmp_path_factory):
    configs = [
        ({"lr": lr, "batch_size": b, "depth": d}, level, 0.2)
        for lr, level in ((0.01, 0.6), (0.1, 0.3), (1.0, 0.2))
        for b in (10, 100, 1000)
        for d in (1, 2)
    ]
    sweep = write_curves(tmp_path_factory.mktemp("grid"), configs, seeds=2, steps=120)
    return analyse(collect(sweep, write=False))


@pytest.mark.slow  # over 1.4 s: kept out of the one-minute quick suite
def test_every_figure_of_a_zipped_study_reads_cleanly(zipped):
    figures = _figures(zipped, Study(compare=("batch_size",)))
    assert len(figures) >= 5
    for title, _, fig in figures:
        check(title, fig)


@pytest.mark.slow  # over 1.4 s: kept out of the one-minute quick suite
def test_every_figure_of_a_grid_reads_cleanly(grid):
    figures = _figures(grid, Study())
    assert "Heatmap" in [t for t, _, _ in figures]
    for title, _, fig in figures:
        check(title, fig)


@pytest.mark.slow  # over 1.4 s: kept out of the one-minute quick suite
def test_long_metric_names_fit_their_panels(zipped):
    study = Study(compare=("batch_size",), metrics=("spread_rel_ex", "sampling_share_ex"))
    for title, _, fig in _figures(zipped, study):
        check(title, fig)


@pytest.mark.slow  # over 1.4 s: kept out of the one-minute quick suite
def test_every_figure_of_a_comparison_reads_cleanly(tmp_path):
    from mlpsweep.report.build import side_by_side

    a = write_curves(tmp_path / "adhoc" / "2026-12-01_10-00-00", ZIPPED[:2], seeds=2)
    b = write_curves(tmp_path / "adhoc" / "2026-12-01_11-00-00", ZIPPED[:2], seeds=2)
    comparison = analyse(side_by_side([a, b]))
    assert comparison.dims == ["sweep", "batch_size"]
    for title, _, fig in _figures(comparison, Study()):
        check(title, fig)


@pytest.mark.slow  # over 1.4 s: kept out of the one-minute quick suite
def test_heatmap_panels_share_one_colour_scale_with_a_bar_and_show_the_primary(grid):
    figures = {t: (c, f) for t, c, f in _figures(grid, Study(metrics=("spread_rel",)))}
    caption, fig = figures["Heatmap"]
    assert caption.startswith("Relative loss spread, mean over seeds")
    meshes = [ax.collections[0] for ax in fig.axes if ax.collections and ax.get_visible()]
    panels = [m for m in meshes if m.get_array() is not None and m.get_array().size > 1]
    assert len(panels) == 2  # depth=1, depth=2
    assert len({m.get_clim() for m in panels}) == 1  # one scale
    assert any(ax.get_label() == "<colorbar>" for ax in fig.axes)


@pytest.mark.slow  # over 1.4 s: kept out of the one-minute quick suite
def test_bands_stay_in_range_and_examples_seen_spans_batches_on_a_log_axis(grid):
    figures = {t: f for t, _, f in _figures(grid, Study())}
    fig = figures["Train loss per example seen"]
    assert all(ax.get_xscale() == "log" for ax in fig.axes if ax.get_visible() and ax.lines)
    from mlpsweep.report.analysis import Analysis
    from mlpsweep.report.figures.curves import curves

    # two seeds at 0.99 and 0.90: the unclipped 95% band reaches far above 1
    steps = np.tile(np.arange(1, 11), 2)
    history = pd.DataFrame(
        {"run_id": np.repeat(["s0", "s1"], 10), "step": steps, "config": "c",
         "train_loss": 1.0, "test_accuracy": np.repeat([0.99, 0.90], 10)}
    )  # fmt: skip
    runs = pd.DataFrame({"run_id": ["s0", "s1"], "config": "c", "status": "ok", "seed": [0, 1]})
    accuracy = curves(Analysis(runs, history, [], ["c"]), "step", "test_accuracy", log=False)
    bands = [p.vertices[:, 1] for ax in accuracy.axes for c in ax.collections
             if hasattr(c, "get_paths") for p in c.get_paths() if len(p.vertices) > 4]  # fmt: skip
    assert bands and max(b.max() for b in bands) <= 1.0 + 1e-12


def test_collapse_points_are_dodged_so_none_hides_another():
    from mlpsweep.report.collapse import Collapse
    from mlpsweep.report.figures.answers import collapse_figure

    x = np.array([0.01, 0.01, 0.1, 0.1])
    fit = Collapse(
        x, np.array([0.5, 0.5, 0.7, 0.7]), np.array([10, 100, 10, 100]), 0.3, 0.0, 0.9, 4
    )
    fig = collapse_figure(fit)
    offsets = [c.get_offsets()[:, 0] for c in fig.axes[0].collections]
    assert len(offsets) == 2 and not np.allclose(offsets[0], offsets[1])
