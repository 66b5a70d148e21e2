"""One dot per seed, per config, with the mean and its 95% interval (a bar-free strip
plot per metric): the oscillation figure (spread, relative spread, spikes) and the final
test metrics."""

import numpy as np
import seaborn as sns

from mlpsweep.report.figures.curves import MAX_SINGLE_PANEL
from mlpsweep.report.figures.figure_spec import FigureSpec
from mlpsweep.report.figures.labels import NOT_COMPARED, config_label, drawn_configs
from mlpsweep.report.intervals import mean_interval
from mlpsweep.report.metrics import METRICS, valid_range
from mlpsweep.report.plotting import MAX_WIDTH_IN, png, subplots


def palette(analysis):
    return dict(
        zip(
            analysis.configs,
            sns.color_palette(
                "tab10" if len(analysis.configs) <= 10 else "husl", len(analysis.configs)
            ),
        )
    )


def dots(analysis, metrics, title):
    """One dot per seed and the mean per config (a bar-free strip plot per metric)."""
    done = analysis.finished
    configs = drawn_configs(analysis)  # twins once; a config not compared greyed, labelled
    labels = [config_label(analysis, c) for c in configs]
    # A config's values, one per line, at 9 pt: ~0.08 inch a character.
    per = max(0.7, 0.08 * max((len(line) for t in labels for line in t.split("\n")), default=1))
    # Many configs or long values: one metric per row, so the figure stays a page wide.
    many = len(configs) > MAX_SINGLE_PANEL or (per * len(configs) + 1) * len(metrics) > MAX_WIDTH_IN
    width = min(MAX_WIDTH_IN, max(3.5, per * len(configs) + 1))
    crowded = per * len(configs) + 1 > width
    if crowded:  # upright, one line each: slanted blocks of lines would overlap their neighbours
        labels = [t.replace("\n", ", ") for t in labels]
    rows, cols = (len(metrics), 1) if many else (1, len(metrics))
    height = 4.0 if rows == 1 else 2.3  # stacked rows share the config labels' width
    fig, axes = subplots(
        rows,
        cols,
        figsize=(width * cols, height * rows + _label_room(labels, crowded)),
        squeeze=False,
        layout="constrained",
    )
    colors = palette(analysis)
    for ax, col in zip(axes.flat, metrics):
        for i, cfg in enumerate(configs):
            vals = done.loc[done["config"] == cfg, col].astype(float).dropna()
            if not len(vals):
                continue  # no finished run here: the summary table says why
            jitter = np.linspace(-0.12, 0.12, len(vals)) if len(vals) > 1 else [0.0]
            color = NOT_COMPARED if cfg in analysis.degenerate else colors[cfg]
            ax.scatter(i + np.asarray(jitter), vals, color=color, s=22, alpha=0.75)
            ax.plot([i - 0.28, i + 0.28], [vals.mean()] * 2, color="black", lw=2)
            if len(vals) > 1:  # the mean's 95% t-interval, within the metric's range
                iv = mean_interval(vals, valid=valid_range(col))
                err = [[max(0.0, iv.mean - iv.lo)], [max(0.0, iv.hi - iv.mean)]]
                ax.errorbar(i + 0.32, iv.mean, yerr=err, color="black", lw=1.2, capsize=3)
        ax.set_xticks(range(len(configs)))
        ax.set_title(METRICS[col][0], fontsize=10)
        ax.set_ylabel("per seed; bar: mean", fontsize=9)
        if rows > 1 and ax is not axes.flat[-1]:
            ax.set_xticklabels([])  # stacked: the configs are named once, at the bottom
            continue
        ax.set_xticklabels(labels, fontsize=9, **({"rotation": 90} if crowded else {}))
        ax.set_xlabel(", ".join(analysis.dims), fontsize=9)
    fig.suptitle(title)
    return png(fig)


def _label_room(labels, upright):
    """Inches the config tick labels take below the axes (9 pt lines; turned upright,
    their length counts): the figure grows by them, so its panels keep their height
    however long the labels."""
    lines = max((t.count("\n") + 1 for t in labels), default=1)
    longest = max((len(line) for t in labels for line in t.split("\n")), default=1)
    return 0.08 * longest + 0.17 if upright else 0.17 * lines


FIGURES = (
    FigureSpec(
        "Oscillation",
        order=60,
        applies=lambda ctx: ctx.oscillation,
        draw=lambda ctx: dots(
            ctx.coarse.analysis, ["spread", "spread_rel", "spikes"], "oscillation"
        ),
        caption="Over the last half of training: spread of the loss around its moving "
        "average, the same relative to the moving average, and spikes (steps above 3 robust "
        "sigmas). One dot per seed; bar = mean, whisker = its 95% interval.",
        coarse=True,
    ),
    FigureSpec(
        "Test metrics at the end",
        order=70,
        applies=lambda ctx: bool(len(ctx.analysis.history)),
        draw=lambda ctx: dots(
            ctx.coarse.analysis, ["test_accuracy", "test_loss"], "test set, final"
        ),
        caption="One dot per seed; bar = mean, whisker = its 95% interval.",
        more=True,
        coarse=True,
    ),
)
