"""What matters: each term's share of a metric's variance (report/importance.py), one bar
per knob, interaction and the seeds, with its 95% interval, largest first; one panel per
metric side by side, the study's primary metric first."""

import numpy as np

from mlpsweep.report.figures.figure_spec import FigureSpec
from mlpsweep.report.importance import HIGHER, SEEDS
from mlpsweep.report.plotting import png, subplots

MAX_METRICS = 2  # panels: the study's metrics; importance.csv has every metric
FONT = 10  # pt: >= 10 CSS px at the lead figure's displayed width (560 px of 6.2 in)
WIDTH = 6.2  # inches: the lead column's 560 px at 90 dpi


def colour(term):
    if term == SEEDS:
        return "0.55"
    if term == HIGHER or " × " in term:
        return "C1"
    return "C0"


def what_matters_figure(shares, metrics=MAX_METRICS):
    """One horizontal bar per term (share as %, its interval as a whisker), seeds grey,
    terms within seed noise pale and marked; one panel per metric."""
    panels = shares.metrics[:metrics]
    rows = [len(m.table) for m in panels]
    # Side by side (2 x 6.2 in fits the page's 12.9): half the height of a stack.
    fig, axes = subplots(
        1, len(panels), figsize=(WIDTH * len(panels), 0.34 * max(rows) + 0.9), squeeze=False
    )
    for ax, m in zip(axes[0], panels):
        t = m.table
        y = np.arange(len(t))[::-1]
        share, lo, hi = (
            100 * t[c].clip(0, 1).to_numpy() for c in ("share", "share_lo", "share_hi")
        )
        faint = t["within_noise"].to_numpy()
        ax.barh(
            y,
            share,
            color=[colour(term) for term in t["term"]],
            alpha=None,
            height=0.7,
            edgecolor="none",
        )
        for k, pale in enumerate(faint):  # within seed noise: pale
            if pale:
                ax.patches[k].set_alpha(0.35)
        has = np.isfinite(lo) & np.isfinite(hi)
        ax.errorbar(
            share[has],
            y[has],
            xerr=[np.clip(share - lo, 0, None)[has], np.clip(hi - share, 0, None)[has]],
            fmt="none",
            ecolor="black",
            capsize=3,
            lw=1,
        )
        top = max(np.nanmax(np.where(has, hi, share)), 1.0)
        for k in range(len(t)):
            text = f"{share[k]:.0f}%" if share[k] >= 1 or share[k] == 0 else f"{share[k]:.1f}%"
            if has[k]:
                text += f" [{lo[k]:.0f}, {hi[k]:.0f}]"
            if faint[k]:
                text += " (within seed noise)"
            right = hi[k] if has[k] else share[k]
            ax.text(right + 0.015 * top, y[k], text, va="center", fontsize=FONT)
        ax.set_yticks(y)
        ax.set_yticklabels(t["term"], fontsize=FONT)
        ax.set_xlim(0, top * 1.6)
        ax.set_xticks([v for v in (0, 20, 40, 60, 80, 100) if v <= top * 1.6])
        ax.set_title(m.label, fontsize=FONT + 1, loc="left")
        ax.set_xlabel("share of its variance (%), with its 95% interval", fontsize=FONT)
        ax.tick_params(axis="x", labelsize=FONT)
        ax.grid(axis="y", visible=False)
    return png(fig)


def _caption(ctx):
    s = ctx.importance
    first = s.metrics[0]
    return (
        f"Share of each metric's variance (omega squared) explained by each swept knob, each "
        f"pair of knobs and the seeds, over {first.runs} runs ({first.configs} configs x up to "
        f"{first.seeds} seeds); whiskers: 95% intervals. Pale bars are within seed noise "
        "(F test against the seeds, p >= 0.05). " + s.note + " Every metric: importance.csv."
    )


FIGURES = (
    FigureSpec(
        "What matters",
        order=5,  # the first figure below the summary (the answer's own figure leads)
        lead=3,
        applies=lambda ctx: bool(ctx.importance),
        draw=lambda ctx: what_matters_figure(ctx.importance),
        caption=_caption,
    ),
)
