"""An adaptive search (Hydra's Optuna sweeper) as a tuner reads it: the objective
against each tuned parameter (log axis where the values span a decade or more, as a
log-uniform sampler's do), one colour per compared setting, the best of each marked;
then each trial's objective in the order the trials ran."""

import numpy as np
import pandas as pd

from mlpsweep.report.figures.figure_spec import FigureSpec
from mlpsweep.report.metrics import METRICS
from mlpsweep.report.plotting import plain_log_axis, png, subplots

MAX_TUNED_PANELS = 3


def _log_scaled(values):
    v = pd.to_numeric(values, errors="coerce")
    return bool(v.notna().all() and (v > 0).all() and v.max() >= 10 * v.min())


def search_figure(fit):
    """One panel per tuned parameter (objective against it) and the search's history."""
    tuned = [p for p in fit.tuned if p in fit.order][:MAX_TUNED_PANELS]
    n = len(tuned) + 1
    fig, axes = subplots(1, n, figsize=(3.9 * n + 2.0, 3.9), squeeze=False, layout="constrained")
    axes = axes[0]
    label = METRICS.get(fit.objective, (fit.objective,))[0]
    values = fit.order["value"]
    log_y = bool((values > 0).all() and values.max() > 10 * values.min())
    groups = list(fit.order.groupby("group", sort=True))
    for ax, param in zip(axes, tuned):
        for k, (group, g) in enumerate(groups):
            x = pd.to_numeric(g[param], errors="coerce")
            ax.scatter(x, g["value"], color=f"C{k}", s=24, alpha=0.8, label=group)
            best = g["value"].idxmax() if fit.maximise else g["value"].idxmin()
            ax.scatter(
                [x[best]], [g.loc[best, "value"]], marker="*", s=230, color=f"C{k}",
                edgecolors="black", linewidths=0.8, zorder=3,
            )  # fmt: skip
        if _log_scaled(fit.order[param]):
            ax.set_xscale("log")
            plain_log_axis(ax.xaxis)
        ax.set_xlabel(param + (" (log axis)" if ax.get_xscale() == "log" else ""))
        ax.set_title(f"{label} against {param}", fontsize=10)
    ax = axes[-1]
    x = np.arange(1, len(fit.order) + 1)
    for k, (group, g) in enumerate(groups):
        xs, ys = x[g.index], g["value"].to_numpy()
        ax.scatter(xs, ys, color=f"C{k}", s=22, alpha=0.8, label=group)
        best = np.maximum.accumulate(ys) if fit.maximise else np.minimum.accumulate(ys)
        ax.step(xs, best, where="post", color=f"C{k}", lw=1.5)
    ax.set_xlabel("trial (in the order they ran)")
    ax.set_title("the search's history (line: best so far)", fontsize=10)
    way = "higher is better" if fit.maximise else "lower is better"
    for a in axes:
        if log_y:
            a.set_yscale("log")
            plain_log_axis(a.yaxis)
        a.set_ylabel(f"{label} ({way}{', log axis' if log_y else ''})")
    handles, labels = axes[0].get_legend_handles_labels()
    star = axes[0].scatter([], [], marker="*", s=120, color="white", edgecolors="black")
    fig.legend(
        [*handles, star], [*labels, "best of each"], loc="outside right upper", fontsize=9,
        frameon=False,
    )  # fmt: skip
    return png(fig)


FIGURES = (
    FigureSpec(
        "Search",
        order=0,
        lead=0,
        applies=lambda ctx: ctx.search is not None,
        draw=lambda ctx: search_figure(ctx.search),
        caption="Left: the search's objective against each parameter it tuned, one colour per "
        "compared setting, the best trial of each a star (a log axis where the values span a "
        "decade or more, as a log-uniform sampler's do). Right: each trial's objective in the "
        "order the search ran them; the line is the best so far.",
    ),
)
