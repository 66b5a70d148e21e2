"""What oscillates: the minibatch loss's spread split into the sampling noise of a
B-example average and the weights' own trajectory (oscillation.oscillation), and the
trajectory probe's loss drawn over the minibatch loss it hides in."""

import numpy as np

from mlpsweep.report.figures.figure_spec import FigureSpec
from mlpsweep.report.figures.labels import (
    NOT_COMPARED,
    config_label,
    drawn_configs,
    twin_of,
    wrap_label,
)
from mlpsweep.report.intervals import mean_interval, sampling_shares
from mlpsweep.report.plotting import MAX_WIDTH_IN, plain_log_axis, png, robust_limits, subplots

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
    bar; by the page's one rule, intervals.sampling_shares: from the probe where it measured)."""
    done = analysis.finished
    parts = [p for p in PARTS if p[0] in done and done[p[0]].notna().any()]
    configs = drawn_configs(analysis)  # twins once; a config not compared labelled
    width = min(MAX_WIDTH_IN, max(8.0, 1.1 * len(configs) + 2.5))
    labels = [config_label(analysis, c) for c in configs]
    slant = _slant(labels, width * 1.4 / 4.4)  # the narrower panel decides for both
    if slant:  # upright: one line each, or neighbours' second lines collide
        labels = [t.replace("\n", ", ") for t in labels]
    tall = 0.08 * max(map(len, labels)) if slant else 0.0  # room for upright labels
    fig, (ax, share_ax) = subplots(
        1, 2, figsize=(width, 4.2 + tall), width_ratios=[3, 1.4], layout="constrained"
    )
    x = np.arange(len(configs))
    offsets = np.linspace(-0.27, 0.27, len(parts))
    drawn = []
    for col, *_ in parts:
        ivs = [
            mean_interval(done.loc[done["config"] == c, col], valid=(0.0, None)) for c in configs
        ]
        drawn.append([np.array([getattr(iv, k) for iv in ivs]) for k in ("mean", "lo", "hi")])
    means = np.concatenate([m for m, _, _ in drawn]) if drawn else np.array([])
    lows = np.concatenate([lo for _, lo, _ in drawn]) if drawn else np.array([])
    means, lows = means[np.isfinite(means) & (means > 0)], lows[np.isfinite(lows) & (lows > 0)]
    # The axis shows every real lower end; an interval reaching 0 runs past its bottom
    # (cut at the axis, with no cap: there is no lower end to draw on a log axis).
    bottom = min([*(means / 5), *(lows / 1.5)]) if len(means) else None
    for (m, lo, hi), (_, label, color, marker), dx in zip(drawn, parts, offsets):
        shown = np.where(m > 0, m, np.nan)
        beyond = bottom / 10 if bottom else 1e-12
        err = [np.clip(m - np.where(lo > 0, lo, beyond), 0, None), np.clip(hi - m, 0, None)]
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
    if bottom:
        ax.set_ylim(bottom, max(means) * 2)
    ax.set_xticks(x)
    ax.set_xticklabels(labels, fontsize=9, **slant)
    ax.set_xlabel(", ".join(analysis.dims), fontsize=9)
    ax.set_ylabel("relative spread (log axis)", fontsize=9)
    ax.set_title("relative spread of the loss, and its parts", fontsize=10)
    fig.legend(
        *ax.get_legend_handles_labels(), loc="outside lower center", ncol=2, fontsize=9,
        frameon=False,
    )  # fmt: skip
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
    share_ax.set_xticklabels(labels, fontsize=9, **slant)
    if len(", ".join(analysis.dims)) <= 40:  # else the left panel's label names them
        share_ax.set_xlabel(", ".join(analysis.dims), fontsize=9)
    share_ax.set_ylabel("share of the variance", fontsize=9)
    for axis in (ax, share_ax):  # a config left out of the comparison: its label greyed
        for label, cfg in zip(axis.get_xticklabels(), configs):
            if cfg in analysis.degenerate:
                label.set_color(NOT_COMPARED)
    share_ax.set_title("sampling share", fontsize=10)
    for axis in (ax, share_ax):
        axis.tick_params(axis="y", which="both", labelsize=9)
    return png(fig)


def _slant(labels, panel_in):
    """Tick-label options: upright where the labels side by side (9 pt, ~0.08 inch a
    character) need more than the panel's width."""
    need = sum(0.08 * max(map(len, t.split("\n"))) + 0.1 for t in labels)
    return {"rotation": 90} if need > panel_in else {}  # upright: dense ticks never collide


def has_trajectory(analysis):
    h = analysis.history
    return "trajectory_loss" in h and h["trajectory_loss"].notna().any()


def trajectory_figure(analysis):
    """One panel per config (its first seed): the minibatch loss, faint, over the steps
    the probe measured, and the trajectory loss, the weights' own, drawn over it."""
    h = analysis.history.dropna(subset=["trajectory_loss"])
    drawn = drawn_configs(analysis)  # twins once, under their first config
    configs = [c for c in drawn if (h["config"] == c).any()][:MAX_TRAJECTORY_PANELS]
    cols = min(3, len(configs))
    rows = -(-len(configs) // cols)
    fig, axes = subplots(
        rows,
        cols,
        figsize=(4.3 * cols, 2.9 * rows + 0.6),
        squeeze=False,
        sharey=True,  # one scale: the panels compare at a glance
        layout="constrained",
    )
    shown = []
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
        shown.append(np.concatenate([span["train_loss"], probe["trajectory_loss"]]))
        seed = first.loc[first["config"] == cfg, "seed"].iloc[0] if "seed" in first else ""
        left_out = " (not compared)" if cfg in analysis.degenerate else ""
        twins = "".join(f" ≡ {t}" for t, f in twin_of(analysis).items() if f == cfg)
        ax.set_title(wrap_label(f"{cfg}{twins}, seed {seed}{left_out}", 42), fontsize=9)
        ax.set_xlabel("step", fontsize=9)
        ax.tick_params(which="both", labelsize=9)
    values = np.concatenate(shown) if shown else np.array([1.0])
    log = bool((values > 0).all())
    for ax in axes[:, 0]:
        ax.set_ylabel("loss (log axis)" if log else "loss", fontsize=9)
    if log:
        axes.flat[0].set_yscale("log")
        plain_log_axis(axes.flat[0].yaxis)
    axes.flat[0].set_ylim(*robust_limits(values, log))
    for ax in list(axes.flat)[len(configs) :]:
        ax.set_visible(False)
    fig.legend(
        *axes.flat[0].get_legend_handles_labels(), loc="outside lower center", ncol=2,
        fontsize=9, frameon=False,
    )  # fmt: skip
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
