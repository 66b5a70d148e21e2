"""A halving sweep's figure: the metric against steps for every config, one panel per
setting of the dimension it halved within, the rungs drawn, the promoted marked."""

import numpy as np

from mlpsweep.report.figures.figure_spec import FigureSpec
from mlpsweep.report.halving import LABELS
from mlpsweep.report.plotting import plain_log_axis, png, subplots

MAX_PANELS = 12


def halving_figure(outcome):
    curves, log = outcome.curves, outcome.log
    if not len(curves):
        return None
    groups = sorted(curves["group"].unique(), key=_numeric)[:MAX_PANELS]
    cols = min(3, len(groups))
    rows = -(-len(groups) // cols)
    fig, axes = subplots(rows, cols, figsize=(4.2 * cols + 1.5, 3.4 * rows), layout="constrained",
                         squeeze=False, sharey=True)  # fmt: skip
    promoted = [set(ids) for ids in log.promoted]
    # one colour per config across the panels (e.g. per lr, whatever the batch size)
    shorts = sorted({outcome.short(c) for c in curves["config"]}, key=_numeric)
    colours = {c: f"C{k % 10}" for k, c in enumerate(shorts)}
    chosen = {c for c, *_ in outcome.chosen.values()}
    for ax, group in zip(axes.flat, groups):
        g = curves[curves["group"] == group]
        for config, runs in sorted(
            g.groupby("config"), key=lambda c: _numeric(outcome.short(c[0]))
        ):
            mean = runs.groupby("step")["value"].mean()
            best = config in chosen
            colour = colours[outcome.short(config)]
            name = outcome.short(config) + (" (chosen)" if best else "")
            ax.plot(mean.index, mean.to_numpy(), color=colour, lw=2.4 if best else 1.0,
                    alpha=1.0 if best else 0.75, label=name)  # fmt: skip
            ids = set(runs["run_id"])
            for r, steps in enumerate(log.rungs[:-1]):
                if steps not in mean.index:
                    continue
                went_on = r < len(promoted) and ids & promoted[r]
                ax.plot([steps], [mean.loc[steps]], marker="o" if went_on else "x",
                        ms=7 if went_on else 6, color=colour)  # fmt: skip
        for steps in log.rungs:
            ax.axvline(steps, color="0.6", lw=0.8, ls="--")
        ax.set_xscale("log")
        plain_log_axis(ax.xaxis)
        ax.set_title(
            f"{log.spec.within}={group}" if log.spec.within else "all configs", fontsize=10
        )
        ax.set_xlabel("step")
        ax.legend(fontsize=7, loc="best", frameon=False)
    for ax in axes.flat[len(groups) :]:
        ax.set_visible(False)
    for ax in axes[:, 0]:
        ax.set_ylabel(LABELS[log.spec.metric])
    return png(fig)


def _numeric(value):
    """Sort key: by the number in a value or a label like lr=0.1, else by its text."""
    text = str(value).split("=")[-1]
    try:
        return (0, float(text), str(value))
    except ValueError:
        return (1, np.inf, str(value))


def caption(ctx):
    out = ctx.halving
    return (
        f"{LABELS[out.log.spec.metric]} against steps (mean over seeds) for every config; "
        f"dashed lines: the rungs ({', '.join(map(str, out.log.rungs))} steps); o: promoted "
        f"at that rung, x: stopped there; thick: chosen. {out.steps:,} steps trained, "
        + (
            f"against fewer than {out.full_steps:,} for the full grid (its runs stop at "
            "their target too)."
            if out.stops_at_target
            else f"{out.share:.0%} of the full grid's {out.full_steps:,}."
        )
    )


FIGURES = (
    FigureSpec(
        "Successive halving",
        order=1,
        lead=0,
        applies=lambda ctx: getattr(ctx, "halving", None) is not None,
        draw=lambda ctx: halving_figure(ctx.halving),
        caption=caption,
    ),
)
