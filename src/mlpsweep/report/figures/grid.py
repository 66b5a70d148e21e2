"""The heatmap: the primary metric's mean over seeds on the first two dims that form a
full grid, small multiples over the others, on one colour scale."""

import numpy as np
import pandas as pd
import seaborn as sns

from mlpsweep.report.analysis import fmt, tick
from mlpsweep.report.figures.curves import MAX_PANELS
from mlpsweep.report.figures.figure_spec import FigureSpec
from mlpsweep.report.figures.labels import wrap_label
from mlpsweep.report.metrics import METRICS
from mlpsweep.report.plotting import png, subplots


def grid_dims(analysis):
    """The first two dims that form a full grid (every pair of values was run), or None:
    a zipped sweep pairs values and has no grid to draw."""
    done = analysis.finished
    for i, d1 in enumerate(analysis.dims):
        for d2 in analysis.dims[i + 1 :]:
            pairs = done[[d1, d2]].astype(str).drop_duplicates()
            if len(pairs) == done[d1].astype(str).nunique() * done[d2].astype(str).nunique():
                return d1, d2
    return None


def heatmaps(analysis, d1, d2, metric="test_accuracy"):
    """Mean final metric over seeds on d1 x d2; small multiples over the other dims, all on
    one colour scale with its bar (the same colour is the same value in every panel)."""
    rest = [d for d in analysis.dims if d not in (d1, d2)]
    done = analysis.comparable
    done = done.assign(**{metric: pd.to_numeric(done[metric], errors="coerce")})
    facets = list(done.groupby(rest)) if rest else [((), done)]
    facets = facets[:MAX_PANELS]
    cols = min(4, len(facets))
    rows = -(-len(facets) // cols)
    fig, axes = subplots(
        rows, cols, figsize=(4.6 * cols + 0.8, 3.6 * rows), squeeze=False, layout="constrained"
    )
    label, higher = METRICS[metric]
    tables = [g.pivot_table(index=d1, columns=d2, values=metric, aggfunc="mean") for _, g in facets]
    values = np.concatenate([t.to_numpy().ravel() for t in tables]) if tables else np.array([])
    values = values[np.isfinite(values)]
    vmin, vmax = (values.min(), values.max()) if len(values) else (0.0, 1.0)
    cmap = "viridis" if higher else "viridis_r"
    for ax, (key, _), table in zip(axes.flat, facets, tables):
        # 0.0316, not 0.0316227766016838; a sweep's <name>/<time> on two lines
        table.index = [tick(v).replace("/", "/\n") for v in table.index]
        table.columns = [tick(v) for v in table.columns]
        sns.heatmap(
            table, annot=True, fmt=".3g", cmap=cmap, vmin=vmin, vmax=vmax, ax=ax, cbar=False
        )
        key = key if isinstance(key, tuple) else (key,)
        title = ", ".join(f"{d}={fmt(v)}" for d, v in zip(rest, key))
        width = fig.get_figwidth() / cols  # inches a panel's title has, at 9 pt
        ax.set_title(wrap_label(title, int(width * 72 / (9 * 0.62))), fontsize=9)
        ax.set_ylabel(d1)
        ax.set_xlabel(d2)
    for ax in list(axes.flat)[len(facets) :]:
        ax.set_visible(False)
    if facets:
        mappable = axes.flat[0].collections[0]
        fig.colorbar(mappable, ax=list(axes.flat[: len(facets)]), label=label, shrink=0.9)
    fig.suptitle(f"{label} (mean over seeds)")
    return png(fig)


def heatmap_metric(ctx):
    """The study's primary metric, else test accuracy, else the final train loss: the
    first that the comparable runs have."""
    done = ctx.analysis.comparable
    primary = ctx.study.metrics[0] if ctx.study is not None else None
    for m in (primary, "test_accuracy", "final_train_loss"):
        if m in METRICS and m in done and pd.to_numeric(done[m], errors="coerce").notna().any():
            return m
    return None


def heatmap_grid(ctx):
    analysis = ctx.analysis
    return grid_dims(analysis) if len(analysis.dims) >= 2 and len(analysis.comparable) else None


def _heatmap_caption(ctx):
    d1, d2 = heatmap_grid(ctx)
    rest = [d for d in ctx.analysis.dims if d not in (d1, d2)]
    return (
        f"{METRICS[heatmap_metric(ctx)][0].capitalize()}, mean over seeds, on {d1} x {d2}"
        + (f", one panel per {', '.join(rest)}" if rest else "")
        + "; one colour scale for every panel (the bar); degenerate configs left out."
    )


FIGURES = (
    FigureSpec(
        "Heatmap",
        order=130,
        applies=lambda ctx: bool(heatmap_grid(ctx) and heatmap_metric(ctx)),
        # every config: one panel per value of the other dims
        draw=lambda ctx: heatmaps(ctx.analysis, *heatmap_grid(ctx), heatmap_metric(ctx)),
        caption=_heatmap_caption,
    ),
)
