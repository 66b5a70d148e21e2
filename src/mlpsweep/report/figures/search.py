"""The history of an adaptive search (Hydra's Optuna sweeper): each trial's objective in
the order the trials ran."""

import numpy as np

from mlpsweep.report.figures.spec import FigureSpec
from mlpsweep.report.plotting import plain_log_axis, png, subplots
from mlpsweep.report.study import METRICS


def search_figure(fit):
    """Each trial's objective in the order the trials ran, with the best so far, one
    colour per compared setting."""
    fig, ax = subplots(1, 1, figsize=(8, 3.8), layout="constrained")
    x = np.arange(1, len(fit.order) + 1)
    for k, (group, g) in enumerate(fit.order.groupby("group", sort=True)):
        xs, ys = x[g.index], g["value"].to_numpy()
        ax.scatter(xs, ys, color=f"C{k}", s=22, alpha=0.8, label=group)
        best = np.maximum.accumulate(ys) if fit.maximise else np.minimum.accumulate(ys)
        ax.step(xs, best, where="post", color=f"C{k}", lw=1.5)
        # the trial the page names as best (tuning.Best, by the objective), starred
        named = next((b for b in fit.best if b.where and group == b.where), None)
        top = int(np.argmax(ys) if fit.maximise else np.argmin(ys))
        ax.scatter(
            xs[top], ys[top], marker="*", s=160, color=f"C{k}", edgecolors="black", zorder=3,
            label=f"best: {named.config}" if named else "best",
        )  # fmt: skip
    values = fit.order["value"]
    if (values > 0).all() and values.max() > 10 * values.min():
        ax.set_yscale("log")
        plain_log_axis(ax.yaxis)
    ax.set_xlabel("trial (in the order they ran)")
    ax.set_ylabel(METRICS.get(fit.objective, (fit.objective,))[0])
    ax.tick_params(which="both", labelsize=8)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    return png(fig)


FIGURES = (
    FigureSpec(
        "Search history",
        order=0,
        lead=0,
        applies=lambda ctx: ctx.search is not None,
        draw=lambda ctx: search_figure(ctx.search),
        caption="Each trial's objective in the order the search ran them, one colour per "
        "compared setting; the line is the best so far, the star the best the page names.",
    ),
)
