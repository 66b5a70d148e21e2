"""Figures of a study's answer: its main effects, noise collapse (lr/B) and batch
scaling (B_crit)."""

import numpy as np
import seaborn as sns

from mlpsweep.report.figures.figure_spec import FigureSpec
from mlpsweep.report.figures.labels import wrap_label
from mlpsweep.report.metrics import DIFFERENCE, METRICS, valid_range
from mlpsweep.report.plotting import plain_log_axis, png, subplots


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
    ax.set_xlabel("lr / batch size (log axis)")
    ax.set_ylabel("relative loss spread (log axis)")
    ax.set_title("relative loss spread against the noise scale lr/B", fontsize=10)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return png(fig)


def scaling_figure(analysis, fit):
    """The answer, sized for the page's lead column: steps against the batch size with
    the fit and B_crit; below, the fit's residuals with two seed standard errors (lack of
    fit shows as a pattern)."""
    checks = fit.checks
    fig, axes = subplots(
        2, 1, figsize=(10, 7.6), height_ratios=[3, 2], sharex=True, layout="constrained"
    )
    t = fit.table
    b = t["batch_size"].to_numpy()
    grid = np.geomspace(b.min(), b.max(), 100)
    band = np.isfinite([fit.bcrit_lo, fit.bcrit_hi]).all()
    ax = axes[0]
    ax.errorbar(
        b,
        t["steps"],
        yerr=[t["steps"] - t["lo"], t["hi"] - t["steps"]],
        fmt="o",
        color="black",
        capsize=3,
        label="steps to target (best lr; range over seeds)",
    )
    ax.plot(grid, t["steps"].iloc[0] * b[0] / grid, "--", color="gray", label="perfect scaling")
    ax.plot(grid, fit.smin + fit.emin / grid, color="C0", label="S = Smin + Emin/B")
    ax.axvline(fit.bcrit, color="C3", lw=1.2, label=f"B_crit {fit.bcrit:.3g}")
    if band:
        ax.axvspan(fit.bcrit_lo, fit.bcrit_hi, color="C3", alpha=0.12)
    ax.set_ylabel("steps to target (log axis)")
    ax.set_title("steps to target against batch size", fontsize=11)
    ax = axes[1]
    r = checks.residuals
    ax.axhline(0, color="C0", lw=1.2)
    err = 2 * r["se"].to_numpy() * (1 + r["residual"].to_numpy())  # 2 SE of log, as a share
    ax.errorbar(
        r["batch_size"],
        100 * r["residual"],
        yerr=100 * np.nan_to_num(err),
        fmt="o",
        color="black",
        capsize=3,
        label="(S - S_fit) / S_fit, 2 seed SE",
    )
    ax.set_xlabel("batch size (log axis)")
    ax.set_ylabel("residual of the fit (%)")
    ax.set_title(
        f"lack of fit: chi² {checks.chi2:.1f} on {checks.dof} df, p {checks.p:.2g}"
        if np.isfinite(checks.chi2)
        else "residuals (one seed: no noise to compare)",
        fontsize=11,
    )
    for ax in axes:
        ax.set_xscale("log")
        plain_log_axis(ax.xaxis)
        # outside the data, beside its panel (under ~30% of the figure's width)
        ax.legend(fontsize=9, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    axes[0].set_yscale("log")
    plain_log_axis(axes[0].yaxis)
    return png(fig)


def scaling_checks_figure(analysis, fit):
    """Examples against steps; B_crit with each batch size left out; B_simple at a
    matched point of training per batch size against B_crit and the agreement
    tolerance; B_simple along training."""
    from mlpsweep.report.scaling_checks import TOLERANCE

    checks = fit.checks
    has_noise = fit.b_simple is not None
    fig, grid_axes = subplots(2, 2, figsize=(12, 8.4), layout="constrained")
    axes = dict(zip(("examples", "loo", "noise", "along"), grid_axes.flat))
    t = fit.table
    b = t["batch_size"].to_numpy()
    grid = np.geomspace(b.min(), b.max(), 100)
    band = np.isfinite([fit.bcrit_lo, fit.bcrit_hi]).all()
    ax = axes["examples"]
    ax.plot(t["steps"], t["steps"] * b, "o", color="black")
    model = fit.smin + fit.emin / grid
    ax.plot(model, model * grid, color="C0", label="(S/Smin - 1)(E/Emin - 1) = 1")
    ax.set_xlabel("steps to target")
    ax.set_ylabel("examples to target")
    ax = axes["loo"]
    loo = checks.loo
    if len(loo):
        shown = loo["bcrit"].replace([np.inf], np.nan)
        ax.plot(loo["batch_size"], shown, "s", color="C3", label="B_crit without this batch size")
    ax.axhline(fit.bcrit, color="C3", lw=1.2, label="B_crit, all batch sizes")
    if band:
        ax.axhspan(fit.bcrit_lo, fit.bcrit_hi, color="C3", alpha=0.12, label="its 95% interval")
    ax.set_xlabel("batch size left out")
    ax.set_ylabel("B_crit")
    ax = axes["noise"]
    n = checks.noise
    if len(n):
        colors = {"agrees": "C2", "disagrees": "C3", "cannot tell": "0.45"}
        for verdict, g in n.groupby("verdict"):
            lo = np.nan_to_num(g["b_simple"] - g["lo"] * fit.bcrit)
            hi = np.nan_to_num(g["hi"] * fit.bcrit - g["b_simple"])
            ax.errorbar(
                g["batch_size"],
                g["b_simple"],
                yerr=[np.clip(lo, 0, None), np.clip(hi, 0, None)],
                fmt="o",
                color=colors[verdict],
                capsize=3,
                label=f"B_simple: {verdict}",
            )
        ax.axhline(fit.bcrit, color="C3", lw=1.2, label="B_crit")
        ax.axhspan(
            fit.bcrit / TOLERANCE, fit.bcrit * TOLERANCE, color="C2", alpha=0.1,
            label=f"within {TOLERANCE:g}x",
        )  # fmt: skip
        ax.set_xlabel("batch size")
        ax.set_ylabel("B_simple, 2nd half of the way to target")
    else:
        ax.set_visible(False)
    ax = axes["along"]
    if has_noise:
        runs = analysis.finished
        best = dict(zip(t["batch_size"], t["lr"]))
        for (bs, lr), color in zip(best.items(), sns.color_palette("viridis", len(best))):
            ids = runs.loc[(runs["batch_size"] == bs) & (runs["lr"] == lr), "run_id"]
            h = analysis.history[analysis.history["run_id"].isin(ids)].dropna(subset=["b_simple"])
            med = h.groupby("step")["b_simple"].median()
            ax.plot(med.index, med.to_numpy(), color=color, lw=1, label=f"B={bs:g}")
        ax.axhline(fit.bcrit, color="C3", lw=1.2, label="B_crit")
        ax.set_xlabel("step")
        ax.set_ylabel("B_simple (median over seeds)")
    else:
        ax.set_visible(False)
    for ax in grid_axes.flat:
        if not ax.get_visible():
            continue
        ax.set_xscale("log")
        ax.set_yscale("log")
        plain_log_axis(ax.xaxis)
        plain_log_axis(ax.yaxis)
        for label, scale in ((ax.xaxis.label, ax.get_xscale()), (ax.yaxis.label, ax.get_yscale())):
            if scale == "log" and "log axis" not in label.get_text():
                label.set_text(f"{label.get_text()} (log axis)")
        if not ax.get_title():  # every panel titled: what it plots against what
            ax.set_title(f"{ax.get_ylabel().split(' (')[0]} by {ax.get_xlabel().split(' (')[0]}",
                         fontsize=10)  # fmt: skip
        # below its panel: outside the data, no wider than the panel
        ax.legend(fontsize=9, loc="upper center", bbox_to_anchor=(0.5, -0.2), frameon=False)
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
    from mlpsweep.report.contrast import tuned_runs

    dims = [d for d in study.compared(analysis.dims) if analysis.runs[d].astype(str).nunique() > 1]
    dims = dims[:MAX_EFFECT_DIMS]
    tuned = {m: tuned_runs(analysis, study, m) for m in metrics}
    metrics = [m for m in metrics if tuned[m][0] is not None and len(tuned[m][0])]
    dims = [d for d in dims if any(_compared(analysis, study, d, *tuned[m]) for m in metrics)]
    if not dims or not metrics:
        return None
    fig, axes = subplots(
        len(dims),
        len(metrics),
        figsize=(3.4 * len(metrics) + 2.6, 2.5 * len(dims) + 0.6),
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
                label = wrap_label(", ".join(f"{o}={fmt(v)}" for o, v in zip(others, key))) or None
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
            labels = [tick(v).replace("/", "/\n") for v in values]  # sweep/<time>
            # Names (adagrad, momentum, ...) overlap on a panel ~35 characters wide.
            slant = {"rotation": 30, "ha": "right", "rotation_mode": "anchor"}
            wide = sum(len(s) + 1 for s in labels) > TICK_CHARS
            ax.set_xticklabels(labels, fontsize=9, **(slant if wide else {}))
            ax.set_xlabel(d, fontsize=9, labelpad=1)
            if log:
                ax.set_yscale("log")
                plain_log_axis(ax.yaxis)
            unzoomed(ax, log, valid_range(metric))
            ax.tick_params(axis="y", which="both", labelsize=9)
            name = METRICS.get(metric, (metric,))[0]
            ax.set_title(f"{name} by {d}", fontsize=10)
            ax.set_ylabel("geometric mean (log axis)" if log else "mean", fontsize=9)
            if j == len(metrics) - 1 and ax.get_legend_handles_labels()[1]:
                ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False)
    return png(fig)


def _compared(analysis, study, d, done, nuisance):
    """Whether some setting of the other dimensions holds two values of `d` (a panel with
    something to draw)."""
    if done is None:
        return False
    others = [o for o in analysis.dims if o not in (d, study.replicate, *nuisance)]
    groups = done.groupby(others, sort=True) if others else [((), done)]
    return any(g[d].nunique() >= 2 for _, g in groups)


MIN_SPAN = 0.2  # an axis spans at least +-20% of its level, unless intervals are wider


def unzoomed(ax, log, valid=(None, None)):
    """Never let a panel's axis zoom onto a difference its intervals cannot tell: the axis
    spans at least MIN_SPAN of the level on each side, so a 0.4% difference between two
    one-seed means looks like the flat line it is; wider intervals widen it as usual."""
    lo, hi = ax.get_ylim()
    if log and lo > 0:
        mid = (lo * hi) ** 0.5
        ax.set_ylim(min(lo, mid / (1 + MIN_SPAN)), max(hi, mid * (1 + MIN_SPAN)))
    elif not log:
        mid, half = (lo + hi) / 2, max(abs(lo + hi) / 2 * MIN_SPAN, (hi - lo) / 2)
        low, high = valid
        new_lo = mid - half if low is None else max(low, mid - half)
        new_hi = mid + half if high is None else min(high, mid + half)
        ax.set_ylim(min(lo, new_lo), max(hi, new_hi))


def level_means(done, d, metric, log):
    """(values of `d` in order, and at each: the mean of `metric` over the runs there and
    its 95% t-interval; computed on logs and mapped back when `log`: geometric)."""
    from mlpsweep.report.intervals import mean_interval

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
            "over the batch size; Smith & Le 2018), log-log, twin configs once, with the "
            f"least-squares line: slope {ctx.collapse.slope:.2f}, R² {ctx.collapse.r2:.2f}: "
            f"{ctx.collapse.verdict()}."
        ),
    ),
    FigureSpec(
        "Batch scaling checks",
        order=121,
        applies=lambda ctx: ctx.scaling is not None,
        draw=lambda ctx: scaling_checks_figure(ctx.analysis, ctx.scaling),
        caption="Whether B_crit can be trusted: examples against steps with the model's "
        "curve; B_crit refitted with each batch size left out (against its 95% interval); "
        "B_simple at a matched point of training (each best-lr run's median over the second "
        "half of its way to the target) per batch size, with the 95% interval of its ratio "
        "to B_crit, against the band within 2x of B_crit; B_simple along training.",
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
            "interval (seeds resampled jointly); below, the fit's residuals with two seed "
            "standard errors (a pattern is lack of fit)."
        ),
    ),
)
