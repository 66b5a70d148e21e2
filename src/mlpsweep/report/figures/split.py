"""What oscillates: the minibatch loss's spread split into the sampling noise of a
B-example average and the weights' own trajectory (stats.oscillation), and the
trajectory probe's loss drawn over the minibatch loss it hides in."""

import numpy as np

from mlpsweep.report.figures.labels import NOT_COMPARED, config_label, drawn_configs
from mlpsweep.report.figures.spec import FigureSpec
from mlpsweep.report.plotting import plain_log_axis, png, robust_limits, subplots
from mlpsweep.report.stats import mean_interval, sampling_shares

PARTS = (  # column, legend label, colour, marker
    ("spread_rel", "observed (minibatch loss)", "0.35", "o"),
    ("spread_sampling_rel", "sampling noise", "C0", "s"),
    ("spread_trajectory_rel", "trajectory (observed less sampling)", "C3", "D"),
    ("spread_trajectory_probe_rel", "trajectory (probe)", "C2", "^"),
)
MAX_TRAJECTORY_PANELS = 12


def has_split(analysis):
    done = analysis.finished
    return "spread_sampling_rel" in done and done["spread_sampling_rel"].notna().any()


def split_figure(analysis):
    """Per config: the relative spread and its parts (mean over seeds, 95% interval, on a
    log axis; an interval reaching 0 is cut at the axis), and the share of the spread's
    variance that is sampling noise (one dot per seed, uncapped; their ratio of means as a
    bar; by the page's one rule, stats.sampling_shares: from the probe where it measured)."""
    done = analysis.finished
    parts = [p for p in PARTS if p[0] in done and done[p[0]].notna().any()]
    configs = drawn_configs(analysis)  # twins once; a config not compared labelled
    width = min(16.0, max(6.0, 1.1 * len(configs) + 2.5))
    fig, (ax, share_ax) = subplots(
        1, 2, figsize=(width, 4.2), width_ratios=[3, 1.4], layout="constrained"
    )
    x = np.arange(len(configs))
    offsets = np.linspace(-0.27, 0.27, len(parts))
    means_seen = []
    for (col, label, color, marker), dx in zip(parts, offsets):
        ivs = [
            mean_interval(done.loc[done["config"] == c, col], valid=(0.0, None)) for c in configs
        ]
        m, lo, hi = (np.array([getattr(iv, k) for iv in ivs]) for k in ("mean", "lo", "hi"))
        means_seen += list(m[np.isfinite(m) & (m > 0)])
        floor = np.nanmin(m[m > 0]) / 4 if np.any(m > 0) else 1e-6
        shown = np.where(m > 0, m, np.nan)
        err = [np.clip(m - np.maximum(lo, floor), 0, None), np.clip(hi - m, 0, None)]
        ax.errorbar(
            x + dx,
            shown,
            yerr=np.where(np.isfinite(shown), err, 0),
            fmt=marker,
            color=color,
            ms=6,
            capsize=3,
            lw=1.2,
            label=label,
        )
    ax.set_yscale("log")
    plain_log_axis(ax.yaxis)
    if means_seen:
        ax.set_ylim(min(means_seen) / 5, max(means_seen) * 2)
    ax.set_xticks(x)
    ax.set_xticklabels([config_label(analysis, c) for c in configs], fontsize=8)
    ax.set_xlabel(", ".join(analysis.dims), fontsize=9)
    ax.set_title("relative spread of the loss, and its parts", fontsize=10)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(0.0, -0.28), ncol=2, frameon=False)
    top = 1.02
    for i, cfg in enumerate(configs):
        per_run, pooled_share = sampling_shares(done.loc[done["config"] == cfg])
        vals = per_run.astype(float).dropna()
        if len(vals):  # each seed's (uncapped) share, and their ratio of means
            jitter = np.linspace(-0.15, 0.15, len(vals)) if len(vals) > 1 else [0.0]
            share_ax.scatter(i + np.asarray(jitter), vals, color="C0", s=18, alpha=0.7)
            share_ax.plot([i - 0.3, i + 0.3], [pooled_share.mean] * 2, color="black", lw=2)
            top = max(top, float(vals.max()) + 0.03)
    share_ax.set_ylim(0, top)
    share_ax.set_xticks(x)
    share_ax.set_xticklabels([config_label(analysis, c) for c in configs], fontsize=8)
    for axis in (ax, share_ax):  # a config left out of the comparison: its label greyed
        for label, cfg in zip(axis.get_xticklabels(), configs):
            if cfg in analysis.degenerate:
                label.set_color(NOT_COMPARED)
    share_ax.set_title("sampling share of the variance", fontsize=10)
    for axis in (ax, share_ax):
        axis.tick_params(axis="y", which="both", labelsize=8)
    return png(fig)


def has_trajectory(analysis):
    h = analysis.history
    return "trajectory_loss" in h and h["trajectory_loss"].notna().any()


def trajectory_figure(analysis):
    """One panel per config (its first seed): the minibatch loss, faint, over the steps
    the probe measured, and the trajectory loss, the weights' own, drawn over it."""
    h = analysis.history.dropna(subset=["trajectory_loss"])
    configs = [c for c in analysis.configs if (h["config"] == c).any()][:MAX_TRAJECTORY_PANELS]
    cols = min(3, len(configs))
    rows = -(-len(configs) // cols)
    fig, axes = subplots(
        rows, cols, figsize=(4.4 * cols, 2.9 * rows + 0.3), squeeze=False, layout="constrained"
    )
    first = analysis.runs.sort_values(
        "seed" if "seed" in analysis.runs else "run_id"
    ).drop_duplicates("config")
    for ax, cfg in zip(axes.flat, configs):
        rid = first.loc[first["config"] == cfg, "run_id"].iloc[0]
        run = analysis.history[analysis.history["run_id"] == rid]
        probe = run.dropna(subset=["trajectory_loss"])
        span = run[(run["step"] >= probe["step"].min()) & (run["step"] <= probe["step"].max())]
        ax.plot(
            span["step"],
            span["train_loss"],
            color="0.55",
            lw=0.5,
            alpha=0.6,
            label="minibatch loss",
        )
        ax.plot(
            probe["step"], probe["trajectory_loss"], color="C3", lw=1.4, label="trajectory (probe)"
        )
        log = bool((span["train_loss"] > 0).all())
        if log:
            ax.set_yscale("log")
            plain_log_axis(ax.yaxis)
        lo, hi = robust_limits(np.concatenate([span["train_loss"], probe["trajectory_loss"]]), log)
        ax.set_ylim(lo, hi)
        seed = first.loc[first["config"] == cfg, "seed"].iloc[0] if "seed" in first else ""
        left_out = " (not compared)" if cfg in analysis.degenerate else ""
        ax.set_title(f"{cfg}, seed {seed}{left_out}", fontsize=8)
        ax.set_xlabel("step", fontsize=8)
        ax.tick_params(which="both", labelsize=7)
    for ax in list(axes.flat)[len(configs) :]:
        ax.set_visible(False)
    axes.flat[0].legend(fontsize=7, loc="upper right")
    return png(fig)


FIGURES = (
    FigureSpec(
        "What oscillates",
        order=20,
        applies=lambda ctx: ctx.oscillation and has_split(ctx.coarse.analysis),
        draw=lambda ctx: split_figure(ctx.coarse.analysis),
        caption="The minibatch loss's spread around its moving average over the last half "
        "of training, relative to that average, split in two: the sampling noise of a "
        "B-example average (from each step's per-example losses) and the rest, the weights' "
        "own trajectory; where the trajectory probe ran, the trajectory measured directly. "
        "Mean over seeds with its 95% interval (one cut at the axis where it reaches 0). "
        "Right: the share of the spread's variance that is sampling noise, one dot per seed.",
        coarse=True,
    ),
    FigureSpec(
        "Trajectory and minibatch loss",
        order=30,
        applies=lambda ctx: ctx.oscillation and has_trajectory(ctx.coarse.analysis),
        draw=lambda ctx: trajectory_figure(ctx.coarse.analysis),
        caption="One seed per config over the steps the trajectory probe measured: the "
        "minibatch loss (grey) and the loss of the same weights on the probe set (red), the "
        "curve the weights themselves trace.",
        coarse=True,
    ),
)
