"""Figures of a study's answer: its main effects, noise collapse (lr/B) and batch
scaling (B_crit)."""

import numpy as np
import seaborn as sns

from mlpsweep.report.figures.spec import FigureSpec
from mlpsweep.report.plotting import plain_log_axis, png, subplots
from mlpsweep.report.study import METRICS


def collapse_figure(fit):
    fig, ax = subplots(1, 1, figsize=(7, 3.9), layout="constrained")
    batches = sorted(set(fit.batch))  # coloured by batch size: a short legend
    markers = "os^Dv<>p"
    for k, (b, color) in enumerate(zip(batches, sns.color_palette("viridis", len(batches)))):
        pick = fit.batch == b
        # Dodged a little along x (log axis) and hollow, so no batch size hides another
        # where their lr/B coincide.
        dodge = 1.06 ** (k - (len(batches) - 1) / 2)
        ax.scatter(
            fit.x[pick] * dodge,
            fit.y[pick],
            facecolors="none",
            edgecolors=[color],
            marker=markers[k % len(markers)],
            s=26,
            lw=1.3,
            label=f"B={b}",
        )
    line = np.geomspace(fit.x.min(), fit.x.max(), 50)
    ax.plot(
        line,
        np.exp(fit.intercept) * line**fit.slope,
        color="black",
        lw=1.2,
        label=f"fit: slope {fit.slope:.2f}, R² {fit.r2:.2f}",
    )
    ax.set_xscale("log")
    ax.set_yscale("log")
    for axis in (ax.xaxis, ax.yaxis):
        plain_log_axis(axis)
    ax.set_xlabel("lr / batch size")
    ax.set_ylabel("relative loss spread")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return png(fig)


def scaling_figure(analysis, fit):
    has_noise = fit.b_simple is not None
    fig, axes = subplots(1, 3 if has_noise else 2, figsize=(17 if has_noise else 12, 4.8))
    t = fit.table
    b = t["batch_size"].to_numpy()
    ax = axes[0]
    ax.errorbar(
        b,
        t["steps"],
        yerr=[t["steps"] - t["lo"], t["hi"] - t["steps"]],
        fmt="o",
        color="black",
        capsize=3,
        label="steps to target (best lr)",
    )
    grid = np.geomspace(b.min(), b.max(), 100)
    ax.plot(grid, t["steps"].iloc[0] * b[0] / grid, "--", color="gray", label="perfect scaling")
    ax.plot(grid, fit.smin + fit.emin / grid, color="C0", label="S = Smin + Emin/B")
    ax.axvline(fit.bcrit, color="C3", lw=1.2, label=f"B_crit {fit.bcrit:.3g}")
    if np.isfinite([fit.bcrit_lo, fit.bcrit_hi]).all():
        ax.axvspan(fit.bcrit_lo, fit.bcrit_hi, color="C3", alpha=0.12)
    ax.set_xlabel("batch size")
    ax.set_ylabel("steps to target")
    ax = axes[1]
    ax.plot(t["steps"], t["steps"] * b, "o", color="black")
    model = fit.smin + fit.emin / grid
    ax.plot(model, model * grid, color="C0", label="(S/Smin - 1)(E/Emin - 1) = 1")
    ax.set_xlabel("steps to target")
    ax.set_ylabel("examples to target")
    if has_noise:
        ax = axes[2]
        runs = analysis.finished
        best = dict(zip(t["batch_size"], t["lr"]))
        for (bs, lr), color in zip(best.items(), sns.color_palette("viridis", len(best))):
            ids = runs.loc[(runs["batch_size"] == bs) & (runs["lr"] == lr), "run_id"]
            h = analysis.history[analysis.history["run_id"].isin(ids)].dropna(subset=["b_simple"])
            med = h.groupby("step")["b_simple"].median()
            ax.plot(med.index, med.to_numpy(), color=color, label=f"B={bs:g}")
        ax.axhline(fit.bcrit, color="C3", lw=1.2, label="B_crit")
        ax.set_xscale("log")
        ax.set_xlabel("step")
        ax.set_ylabel("B_simple (median over seeds)")
    for ax in axes:
        ax.set_xscale("log")
        ax.set_yscale("log")
        plain_log_axis(ax.xaxis)
        plain_log_axis(ax.yaxis)
        ax.legend(fontsize=7)
    return png(fig)


MAX_EFFECT_DIMS = 4
TICK_CHARS = 32  # x tick text one main-effects panel holds side by side


MAX_GROUPS = 8  # lines per panel: one per matched setting of the other dimensions


def main_effects_figure(analysis, study, metrics):
    """The study's answer at a glance: one row per compared dimension, one column per
    metric; at each value, the mean over the runs there with its 95% interval, one line
    per setting of the other dimensions (never pooled over them; the nuisance ones at
    their best); geometric on a log axis for positive metrics, as the findings compare
    them. None when nothing is compared."""
    from mlpsweep.report.analysis import fmt, tick
    from mlpsweep.report.contrast import DIFFERENCE, tuned_runs

    dims = [d for d in study.compared(analysis.dims) if analysis.runs[d].astype(str).nunique() > 1]
    dims = dims[:MAX_EFFECT_DIMS]
    tuned = {m: tuned_runs(analysis, study, m) for m in metrics}
    metrics = [m for m in metrics if tuned[m][0] is not None and len(tuned[m][0])]
    if not dims or not metrics:
        return None
    fig, axes = subplots(
        len(dims),
        len(metrics),
        figsize=(2.9 * len(metrics) + 2.2, 1.75 * len(dims) + 0.7),
        squeeze=False,
        layout="constrained",
    )
    for j, metric in enumerate(metrics):
        done, nuisance = tuned[metric]
        log = metric not in DIFFERENCE and bool((done[metric] > 0).all())
        for i, d in enumerate(dims):
            ax = axes[i][j]
            others = [o for o in analysis.dims if o not in (d, study.replicate, *nuisance)]
            groups = list(done.groupby(others, sort=True)) if others else [((), done)]
            values = sorted(done[d].unique(), key=_order)
            x = {v: k for k, v in enumerate(values)}
            for k, (key, g) in enumerate(groups[:MAX_GROUPS]):
                if g[d].nunique() < 2:
                    continue  # this setting holds one value of d: nothing to compare
                vals, means, los, his = level_means(g, d, metric, log)
                key = key if isinstance(key, tuple) else (key,)
                label = ", ".join(f"{o}={fmt(v)}" for o, v in zip(others, key)) or None
                err = [np.clip(means - los, 0, None), np.clip(his - means, 0, None)]
                ax.errorbar(
                    [x[v] for v in vals],
                    means,
                    yerr=err,
                    fmt="o-",
                    color=f"C{k}",
                    capsize=3,
                    ms=4,
                    lw=1.3,
                    label=label,
                )
            ax.set_xticks(range(len(values)))
            labels = [tick(v) for v in values]
            # Names (adagrad, momentum, ...) overlap on a panel ~35 characters wide.
            slant = {"rotation": 30, "ha": "right", "rotation_mode": "anchor"}
            wide = sum(len(s) + 1 for s in labels) > TICK_CHARS
            ax.set_xticklabels(labels, fontsize=8, **(slant if wide else {}))
            ax.set_xlabel(d, fontsize=9, labelpad=1)
            if log:
                ax.set_yscale("log")
                plain_log_axis(ax.yaxis)
            ax.tick_params(axis="y", which="both", labelsize=8)
            if i == 0:
                ax.set_title(METRICS.get(metric, (metric,))[0], fontsize=10)
            if j == len(metrics) - 1 and ax.get_legend_handles_labels()[1]:
                ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False)
    return png(fig)


def level_means(done, d, metric, log):
    """(values of `d` in order, and at each: the mean of `metric` over the runs there and
    its 95% t-interval; computed on logs and mapped back when `log`: geometric)."""
    from mlpsweep.report.stats import mean_interval
    from mlpsweep.report.study import valid_range

    values = sorted(done[d].unique(), key=_order)
    ivs = [
        mean_interval(done.loc[done[d] == v, metric].astype(float), log, valid_range(metric))
        for v in values
    ]
    means, los, his = (np.array([getattr(iv, k) for iv in ivs]) for k in ("mean", "lo", "hi"))
    return values, means, los, his


def _order(value):
    try:
        return (0, float(value), "")
    except (TypeError, ValueError):
        return (1, 0.0, str(value))


def _main_effects_metrics(ctx):
    return list(dict.fromkeys([*ctx.study.metrics, "final_train_loss"]))[:2]


def _main_effects_caption(ctx):
    tuned = [n for n in ctx.study.nuisance if n in ctx.analysis.dims]
    return (
        "Each compared dimension at each of its values: the mean over the seeds there with "
        "its 95% interval, one line per setting of the other dimensions (never pooled over "
        "them"
        + (f"; {', '.join(tuned)} at its best {ctx.study.select_note}" if tuned else "")
        + "); geometric means "
        "on log axes. Degenerate configs are left out."
    )


FIGURES = (
    FigureSpec(
        "Main effects",
        order=10,
        lead=2,
        applies=lambda ctx: ctx.study is not None and bool(len(ctx.analysis.finished)),
        draw=lambda ctx: main_effects_figure(ctx.analysis, ctx.study, _main_effects_metrics(ctx)),
        caption=_main_effects_caption,
    ),
    FigureSpec(
        "Noise collapse",
        order=110,
        applies=lambda ctx: ctx.collapse is not None,
        draw=lambda ctx: collapse_figure(ctx.collapse),
        caption=lambda ctx: (
            "Relative loss spread of each run against lr/B (the effective lr "
            "over the batch size; Smith & Le 2018), log-log, with the least-squares line: "
            f"slope {ctx.collapse.slope:.2f}, R² {ctx.collapse.r2:.2f}."
        ),
    ),
    FigureSpec(
        "Batch scaling",
        order=120,
        lead=1,
        applies=lambda ctx: ctx.scaling is not None,
        draw=lambda ctx: scaling_figure(ctx.analysis, ctx.scaling),
        caption=lambda ctx: (
            f"Steps to {ctx.scaling.target} against the batch size at the best "
            "lr per batch size (mean and range over seeds), the perfect-scaling line through the "
            "smallest batch, the fit S = Smin + Emin/B and B_crit = Emin/Smin with its 95% "
            "interval; examples against steps; B_simple along training against B_crit."
        ),
    ),
)
