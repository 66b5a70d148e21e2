"""Curves over training: the train loss per step and per example seen, the test metrics
over training. Means over seeds with a 95% t-band computed once (intervals.mean_band), thin
per-seed lines so single runs stay visible, diverged runs ending in an x; twins (two
spellings of one update) drawn once."""

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.collections import LineCollection

from mlpsweep.core.status import Status
from mlpsweep.report.analysis import fmt
from mlpsweep.report.figures.figure_spec import FigureSpec
from mlpsweep.report.figures.labels import hue_label, twin_of, wrap_label
from mlpsweep.report.intervals import mean_band
from mlpsweep.report.metrics import valid_range
from mlpsweep.report.plotting import (
    legend_columns,
    plain_log_axis,
    png,
    robust_limits,
    smooth,
    subplots,
)

MAX_SINGLE_PANEL = 8
MAX_PANELS = 12


def panels(analysis):
    """([(panel title, configs)], columns, facet dims): one panel when few configs;
    else one per value of the first dim, or with three dims or more, rows x columns
    over the first two (when that makes at most MAX_PANELS)."""
    if len(analysis.configs) <= MAX_SINGLE_PANEL or not analysis.dims:
        return [("", analysis.configs)], 1, []
    facet = analysis.dims[:1]
    if (
        len(analysis.dims) >= 3
        and analysis.runs[analysis.dims[:2]].astype(str).drop_duplicates().shape[0] <= MAX_PANELS
    ):
        facet = analysis.dims[:2]
    where = analysis.runs.drop_duplicates("config").set_index("config")[facet]
    groups = {}
    for cfg in analysis.configs:  # in display order, so the panels are too
        key = tuple(where.loc[cfg])
        groups.setdefault(key, []).append(cfg)
    out = [
        (", ".join(f"{d}={fmt(v)}" for d, v in zip(facet, key)), cfgs)
        for key, cfgs in groups.items()
    ][:MAX_PANELS]
    cols = analysis.runs[facet[1]].nunique() if len(facet) == 2 else min(3, len(out))
    return out, min(cols, len(out)), facet


def curves(analysis, x="step", y="train_loss", log=True, title="", ylabel=None):
    h = analysis.history.dropna(subset=[y])
    groups, cols, facet = panels(analysis)
    rows = -(-len(groups) // cols)
    fig, axes = subplots(
        rows,
        cols,
        figsize=(11, 4.8) if len(groups) == 1 else (5.2 * cols + 1.6, 3.3 * rows + 0.4),
        squeeze=False,
        sharex=x == "step",  # examples seen differ by the batch size a panel may hold
        sharey=True,
        layout="constrained",
    )
    # Colour by what is left of a config once its panel is named: the same hue means
    # the same setting in every panel, and one legend serves them all.
    hues = list(dict.fromkeys(hue_label(c, facet) for c in analysis.configs))
    palette_ = sns.color_palette("tab10" if len(hues) <= 10 else "husl", len(hues))
    colors = {c: palette_[hues.index(hue_label(c, facet))] for c in analysis.configs}
    log = log and bool((h[y] > 0).all())
    if log:  # bands of the geometric mean: symmetric on the log axis they are drawn on
        h = h.assign(**{y: np.log(h[y])})
    band = mean_band(h, ["config"], x, y)
    if log:
        band[["mean", "lo", "hi"]] = np.exp(band[["mean", "lo", "hi"]])
        h = h.assign(**{y: np.exp(h[y])})
    else:  # a band stays inside the metric's range (an accuracy in [0, 1])
        band[["lo", "hi"]] = band[["lo", "hi"]].clip(*valid_range(y))
    # Batch sizes 10x apart: on a linear axis of examples the small batch is a sliver.
    batches = pd.to_numeric(
        analysis.runs.get("batch_size", pd.Series(dtype=float)), errors="coerce"
    )
    log_x = x == "examples_seen" and batches.max() >= 10 * batches.min() > 0
    same = twin_of(analysis)
    diverged = set(analysis.runs.loc[analysis.runs["status"] == Status.DIVERGED, "run_id"])
    for ax, (panel, cfgs) in zip(axes.flat, groups):
        for cfg in cfgs:
            if cfg in same:
                continue  # identical to an earlier config: drawn once, labelled with both
            # The seeds' thin lines as one collection: one artist, however many seeds.
            runs = list(h[h["config"] == cfg].groupby("run_id"))
            seeds = [np.column_stack((g[x].to_numpy(), g[y].to_numpy())) for _, g in runs]
            ax.add_collection(LineCollection(seeds, colors=[colors[cfg]], lw=0.4, alpha=0.18))
            for rid, g in runs:
                if rid in diverged:
                    ax.plot(g[x].iloc[-1], g[y].iloc[-1], "x", color=colors[cfg], ms=9, mew=2)
            b = band[band["config"] == cfg]
            label = " ≡ ".join([cfg, *(t for t, first in same.items() if first == cfg)])
            label = wrap_label(label if len(groups) == 1 else hue_label(cfg, facet))
            marker = "o" if len(b) == 1 else None  # a one-step run: a point, not a line
            mean = smooth(b["mean"].to_numpy(), log)
            left_out = cfg in analysis.degenerate  # drawn dashed and labelled, not compared
            ax.plot(
                b[x], mean, color=colors[cfg], lw=1.8, marker=marker,
                ls="--" if left_out else "-", label=label + (" (not compared)" if left_out else ""),
            )  # fmt: skip
            ax.fill_between(b[x], b["lo"], b["hi"], color=colors[cfg], alpha=0.2, lw=0)
        if log:
            ax.set_yscale("log")
            plain_log_axis(ax.yaxis)
        if log_x:
            ax.set_xscale("log")
            plain_log_axis(ax.xaxis)
        ax.set_title(panel or title, fontsize=10)
        ax.set_xlabel(x.replace("_", " ") + (" (log axis)" if log_x else ""))
        ax.set_ylabel((ylabel or y.replace("_", " ")) + (" (log axis)" if log else ""))
        if len(groups) == 1:  # outside the data, beside the panel
            labels = ax.get_legend_handles_labels()[1]
            ax.legend(
                fontsize=9,
                loc="upper left",
                bbox_to_anchor=(1.01, 1.0),
                ncol=legend_columns(labels, fig.get_figheight()),
            )
    if len(groups) > 1:  # one legend for every panel, outside them
        handles = {}
        for ax in axes.flat:
            for handle, label in zip(*ax.get_legend_handles_labels()):
                handles.setdefault(label, handle)
        fig.legend(
            handles.values(),
            handles.keys(),
            loc="outside right upper",
            fontsize=9,
            ncol=legend_columns(handles, fig.get_figheight()),
        )
    lo, hi = robust_limits(h[y].to_numpy(), log)
    axes.flat[0].set_ylim(lo, hi)  # shared: one diverged seed does not flatten the rest
    for ax in list(axes.flat)[len(groups) :]:
        ax.set_visible(False)
    if len(groups) > 1:
        fig.suptitle(title)
    return png(fig)


def _has_history(ctx):
    return bool(len(ctx.analysis.history))


def _has_test_curves(ctx):
    h = ctx.analysis.history
    return bool(len(h)) and h["test_accuracy"].notna().sum() > len(ctx.analysis.runs)


def _per_example_is_more(ctx):
    """Loss per example seen is secondary unless the batch size is what the study
    compares first (then equal data is the comparison that matters)."""
    analysis = ctx.analysis
    compared = ctx.study.compared(analysis.dims) if ctx.study is not None else analysis.dims
    return not compared or compared[0] != "batch_size"


FIGURES = (
    FigureSpec(
        "Train loss per step",
        order=40,
        applies=_has_history,
        draw=lambda ctx: curves(ctx.coarse.analysis, "step", "train_loss", title="train loss"),
        caption="Bold: the geometric mean over seeds (smoothed over 2% of the steps) with "
        "a 95% band; faint: single seeds; x: where a run diverged; a ≡ b: twins, two "
        "spellings of the same update (equal losses over the first 50 steps; rounding may "
        "part them later), drawn once.",
        coarse=True,
    ),
    FigureSpec(
        "Train loss per example seen",
        order=50,
        applies=_has_history,
        draw=lambda ctx: curves(
            ctx.coarse.analysis, "examples_seen", "train_loss", title="train loss"
        ),
        caption="A larger batch sees more examples per step: the same runs against data consumed.",
        more=_per_example_is_more,
        coarse=True,
    ),
    *(
        FigureSpec(  # the test metrics over training, under "More figures"
            f"Test {name} over training",
            order=order,
            applies=_has_test_curves,
            draw=lambda ctx, y=f"test_{name}", log=log: curves(
                ctx.coarse.analysis, "step", y, log=log, title=y.replace("_", " ")
            ),
            caption="Mean over seeds with a 95% band.",
            more=True,
            coarse=True,
        )
        for name, order, log in (("accuracy", 80, False), ("loss", 90, True))
    ),
)
