"""The report's figures, chosen by what was swept, written as PNG (150 dpi) and SVG files
with stable names and embedded in report.html.

Curves are means over seeds with a 95% t-band computed once (stats.mean_band), plus thin
per-seed lines so single runs stay visible; diverged runs end in an x.
"""

from pathlib import Path

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.collections import LineCollection

from mlpsweep.core.status import Status
from mlpsweep.report.analysis import Analysis, fmt, tick
from mlpsweep.report.collapse import noise_collapse
from mlpsweep.report.plotting import (
    LEADS,
    SCREEN_DPI,
    FigureFile,
    plain_log_axis,
    png,
    robust_limits,
    save,
    slug,
    smooth,
    subplots,
)
from mlpsweep.report.scaling import scaling
from mlpsweep.report.split_figures import (
    has_split,
    has_trajectory,
    split_figure,
    trajectory_figure,
)
from mlpsweep.report.stats import mean_band, mean_interval
from mlpsweep.report.study import METRICS, valid_range
from mlpsweep.report.study_figures import collapse_figure, main_effects_figure, scaling_figure
from mlpsweep.report.tuning import search_figure

MAX_SINGLE_PANEL = 8
MAX_FIGURE_CONFIGS = 25
MAX_PANELS = 12


def palette(a):
    return dict(
        zip(
            a.configs,
            sns.color_palette("tab10" if len(a.configs) <= 10 else "husl", len(a.configs)),
        )
    )


def panels(a):
    """([(panel title, configs)], columns, facet dims): one panel when few configs;
    else one per value of the first dim, or with three dims or more, rows x columns
    over the first two (when that makes at most MAX_PANELS)."""
    if len(a.configs) <= MAX_SINGLE_PANEL or not a.dims:
        return [("", a.configs)], 1, []
    facet = a.dims[:1]
    if len(a.dims) >= 3 and a.runs[a.dims[:2]].astype(str).drop_duplicates().shape[0] <= MAX_PANELS:
        facet = a.dims[:2]
    where = a.runs.drop_duplicates("config").set_index("config")[facet]
    groups = {}
    for cfg in a.configs:  # in display order, so the panels are too
        key = tuple(where.loc[cfg])
        groups.setdefault(key, []).append(cfg)
    out = [
        (", ".join(f"{d}={fmt(v)}" for d, v in zip(facet, key)), cfgs)
        for key, cfgs in groups.items()
    ][:MAX_PANELS]
    cols = a.runs[facet[1]].nunique() if len(facet) == 2 else min(3, len(out))
    return out, min(cols, len(out)), facet


def hue_label(config, facet):
    """A config's label without the dims its panel already names."""
    kept = []
    for part in config.split(", "):
        key, eq, value = part.partition("=")
        if key not in facet:
            kept.append(f"{key}={_short(value)}" if eq else part)
    return ", ".join(kept) or config


def curves(a, x="step", y="train_loss", log=True, title="", ylabel=None):
    h = a.history.dropna(subset=[y])
    groups, cols, facet = panels(a)
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
    hues = list(dict.fromkeys(hue_label(c, facet) for c in a.configs))
    palette_ = sns.color_palette("tab10" if len(hues) <= 10 else "husl", len(hues))
    colors = {c: palette_[hues.index(hue_label(c, facet))] for c in a.configs}
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
    batches = pd.to_numeric(a.runs.get("batch_size", pd.Series(dtype=float)), errors="coerce")
    log_x = x == "examples_seen" and batches.max() >= 10 * batches.min() > 0
    same = twin_of(a)
    diverged = set(a.runs.loc[a.runs["status"] == Status.DIVERGED, "run_id"])
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
            label = label if len(groups) == 1 else hue_label(cfg, facet)
            marker = "o" if len(b) == 1 else None  # a one-step run: a point, not a line
            mean = smooth(b["mean"].to_numpy(), log)
            ax.plot(b[x], mean, color=colors[cfg], lw=1.8, marker=marker, label=label)
            ax.fill_between(b[x], b["lo"], b["hi"], color=colors[cfg], alpha=0.2, lw=0)
        if log:
            ax.set_yscale("log")
            plain_log_axis(ax.yaxis)
        if log_x:
            ax.set_xscale("log")
            plain_log_axis(ax.xaxis)
        ax.set_title(panel, fontsize=10)
        ax.set_xlabel(x.replace("_", " "))
        ax.set_ylabel(ylabel or y.replace("_", " "))
        if len(groups) == 1:  # outside the data, beside the panel
            ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    if len(groups) > 1:  # one legend for every panel, outside them
        handles = {}
        for ax in axes.flat:
            for handle, label in zip(*ax.get_legend_handles_labels()):
                handles.setdefault(label, handle)
        fig.legend(handles.values(), handles.keys(), loc="outside right upper", fontsize=8)
    lo, hi = robust_limits(h[y].to_numpy(), log)
    axes.flat[0].set_ylim(lo, hi)  # shared: one diverged seed does not flatten the rest
    for ax in list(axes.flat)[len(groups) :]:
        ax.set_visible(False)
    fig.suptitle(title)
    return png(fig)


TWIN_STEPS = 50


def twin_of(a, rtol=1e-9):
    """{config: the earlier config it is a twin of}: configs whose every seed has the
    same loss, up to rounding, over the first TWIN_STEPS steps: the same update written
    two ways (e.g. `sum` at lr 0.01 and `mean` at lr 0.1 with batch 10). Later the
    rounding differences can grow (chaotic runs amplify them); the update is the same.
    Shorter runs are never twins: every config's first loss comes before any update
    (a `steps=1` sweep of optimizers would otherwise be one config)."""
    if "seed" not in a.runs or not len(a.history):
        return {}
    losses = {r: g["train_loss"].to_numpy() for r, g in a.history.groupby("run_id", sort=False)}
    buckets, out = {}, {}  # a coarse key first (seeds, lengths, first losses), then allclose
    for cfg in a.configs:
        runs = a.runs[a.runs["config"] == cfg].sort_values("seed")
        curves = [losses.get(r) for r in runs["run_id"]]
        if not curves or any(c is None or len(c) < TWIN_STEPS for c in curves):
            continue
        key = tuple((s, len(c), round(float(c[0]), 6)) for s, c in zip(runs["seed"], curves))
        for other, other_curves in buckets.get(key, []):
            if all(
                np.allclose(c[:TWIN_STEPS], o[:TWIN_STEPS], rtol=rtol, atol=0)
                for c, o in zip(curves, other_curves)
            ):
                out[cfg] = other
                break
        else:
            buckets.setdefault(key, []).append((cfg, curves))
    return out


def tick_label(a, config):
    """A config's values only ("10, mean, 0.1"); the axis label names the dims."""
    return (
        config.replace(", ", "\n")
        if not a.dims
        else "\n".join(_short(part.split("=", 1)[1]) for part in config.split(", "))
    )


def _short(text):
    try:
        return tick(float(text)) if "." in text or "e" in text else text
    except ValueError:
        return text


def dots(a, metrics, title):
    """One dot per seed and the mean per config (a bar-free strip plot per metric)."""
    done = a.finished
    labels = [tick_label(a, c) for c in a.configs]
    # A config's values, one per line, at 7 pt: ~0.06 inch a character.
    per = max(0.6, 0.06 * max((len(line) for t in labels for line in t.split("\n")), default=1))
    # Many configs or long values: one metric per row, so the figure stays a page wide.
    many = len(a.configs) > MAX_SINGLE_PANEL or per * len(a.configs) * len(metrics) > 16
    width = min(16.0, max(3.5, per * len(a.configs) + 1))
    rows, cols = (len(metrics), 1) if many else (1, len(metrics))
    height = 4.0 if rows == 1 else 2.3  # stacked rows share the config labels' width
    fig, axes = subplots(
        rows, cols, figsize=(width * cols, height * rows), squeeze=False, layout="constrained"
    )
    colors = palette(a)
    for ax, col in zip(axes.flat, metrics):
        for i, cfg in enumerate(a.configs):
            vals = done.loc[done["config"] == cfg, col].astype(float).dropna()
            if not len(vals):
                continue  # no finished run here: the summary table says why
            jitter = np.linspace(-0.12, 0.12, len(vals)) if len(vals) > 1 else [0.0]
            ax.scatter(i + np.asarray(jitter), vals, color=colors[cfg], s=22, alpha=0.75)
            ax.plot([i - 0.28, i + 0.28], [vals.mean()] * 2, color="black", lw=2)
            if len(vals) > 1:  # the mean's 95% t-interval, within the metric's range
                iv = mean_interval(vals, valid=valid_range(col))
                err = [[max(0.0, iv.mean - iv.lo)], [max(0.0, iv.hi - iv.mean)]]
                ax.errorbar(i + 0.32, iv.mean, yerr=err, color="black", lw=1.2, capsize=3)
        ax.set_xticks(range(len(a.configs)))
        ax.set_title(METRICS[col][0], fontsize=10)
        if rows > 1 and ax is not axes.flat[-1]:
            ax.set_xticklabels([])  # stacked: the configs are named once, at the bottom
            continue
        slant = {"rotation": 30, "ha": "right", "rotation_mode": "anchor"}
        ax.set_xticklabels(labels, fontsize=7, **(slant if per * len(a.configs) > 15 else {}))
        ax.set_xlabel(", ".join(a.dims), fontsize=8)
    fig.suptitle(title)
    return png(fig)


def grid_dims(a):
    """The first two dims that form a full grid (every pair of values was run), or None:
    a zipped sweep pairs values and has no grid to draw."""
    done = a.finished
    for i, d1 in enumerate(a.dims):
        for d2 in a.dims[i + 1 :]:
            pairs = done[[d1, d2]].astype(str).drop_duplicates()
            if len(pairs) == done[d1].astype(str).nunique() * done[d2].astype(str).nunique():
                return d1, d2
    return None


def heatmaps(a, d1, d2, metric="test_accuracy"):
    """Mean final metric over seeds on d1 x d2; small multiples over the other dims, all on
    one colour scale with its bar (the same colour is the same value in every panel)."""
    rest = [d for d in a.dims if d not in (d1, d2)]
    done = a.comparable
    done = done.assign(**{metric: pd.to_numeric(done[metric], errors="coerce")})
    facets = list(done.groupby(rest)) if rest else [((), done)]
    facets = facets[:MAX_PANELS]
    cols = min(4, len(facets))
    rows = -(-len(facets) // cols)
    fig, axes = subplots(
        rows, cols, figsize=(4.6 * cols + 0.8, 3.6 * rows), squeeze=False, layout="constrained"
    )
    label, higher = METRICS[metric]
    tables = [g.pivot_table(index=d1, columns=d2, values=metric, aggfunc="mean") for _, g in facets]
    values = np.concatenate([t.to_numpy().ravel() for t in tables]) if tables else np.array([])
    values = values[np.isfinite(values)]
    vmin, vmax = (values.min(), values.max()) if len(values) else (0.0, 1.0)
    cmap = "viridis" if higher else "viridis_r"
    for ax, (key, _), table in zip(axes.flat, facets, tables):
        table.index = [tick(v) for v in table.index]  # 0.0316, not 0.0316227766016838
        table.columns = [tick(v) for v in table.columns]
        sns.heatmap(
            table, annot=True, fmt=".3g", cmap=cmap, vmin=vmin, vmax=vmax, ax=ax, cbar=False
        )
        key = key if isinstance(key, tuple) else (key,)
        ax.set_title(", ".join(f"{d}={fmt(v)}" for d, v in zip(rest, key)), fontsize=9)
        ax.set_ylabel(d1)
        ax.set_xlabel(d2)
    for ax in list(axes.flat)[len(facets) :]:
        ax.set_visible(False)
    if facets:
        mappable = axes.flat[0].collections[0]
        fig.colorbar(mappable, ax=list(axes.flat[: len(facets)]), label=label, shrink=0.9)
    fig.suptitle(f"{label} (mean over seeds)")
    return png(fig)


def all_figures(a, folder, study=None, search=None):
    """The figures that fit what was swept, in report order, written to `folder`; a
    FigureFile each. The style is set for these figures only (matplotlib's global state
    is left as it was). Labels are data (sweep names, values), so `$...$` in them is
    text, not mathtext."""
    import matplotlib as mpl

    Path(folder).mkdir(parents=True, exist_ok=True)
    out = []
    with sns.axes_style("whitegrid"), sns.plotting_context("notebook"):
        with mpl.rc_context({"text.parse_math": False, "svg.hashsalt": "mlpsweep"}):
            figures = _figures(a, study)
            if search is not None:  # an adaptive search: its history answers first
                figures.insert(0, ("Search history", SEARCH_CAPTION, search_figure(search)))
            titles = [title for title, _, _ in figures]
            lead = next((t for t in LEADS if t in titles), None)
            for title, caption, fig in figures:
                name = slug(title)
                data = save(fig, folder, name)
                width = int(fig.get_figwidth() * SCREEN_DPI)
                more = secondary(title, a, study)
                out.append(FigureFile(title, caption, name, data, width, more, title == lead))
    return out


SEARCH_CAPTION = (
    "Each trial's objective in the order the search ran them, one colour per compared "
    "setting; the line is the best so far."
)
SECONDARY = {"Test metrics at the end", "Test accuracy over training", "Test loss over training"}


def secondary(title, a, study):
    """Collapsed under "More figures": the test-set views, and loss per example seen
    unless the batch size is what the study compares first (then equal data is the
    comparison that matters)."""
    if title == "Train loss per example seen":
        compared = study.compared(a.dims) if study is not None else a.dims
        return not compared or compared[0] != "batch_size"
    return title in SECONDARY


def coarsen(a, max_configs=MAX_FIGURE_CONFIGS):
    """(`a` with configs made of the first dims only, so at most `max_configs` remain;
    a note saying which dims were averaged over, or ""). A 100-config grid drawn config
    by config is neither readable nor quick."""
    if len(a.configs) <= max_configs or len(a.dims) < 2:
        return a, ""
    keep = a.dims[:1]
    for k in range(len(a.dims) - 1, 0, -1):
        if a.runs[a.dims[:k]].astype(str).drop_duplicates().shape[0] <= max_configs:
            keep = a.dims[:k]
            break
    rest = [d for d in a.dims if d not in keep]
    runs = a.runs.copy()
    runs["config"] = runs[keep].apply(
        lambda r: ", ".join(f"{d}={fmt(v)}" for d, v in zip(keep, r)), axis=1
    )
    order = runs.sort_values(keep)["config"]
    history = a.history.drop(columns="config").merge(runs[["run_id", "config"]], on="run_id")
    coarse = Analysis(runs, history, keep, list(dict.fromkeys(order)))
    return coarse, f" Averaged over {', '.join(rest)} ({len(a.configs)} configs in all): "
    "bands and dots are over every run of a setting, not over seeds alone."


def _figures(full, study=None):
    figs = []
    if study is not None and len(full.finished):
        metrics = list(dict.fromkeys([*study.metrics, "final_train_loss"]))[:2]
        fig = main_effects_figure(full, study, metrics)
        if fig is not None:
            tuned = [n for n in study.nuisance if n in full.dims]
            figs.append(
                (
                    "Main effects",
                    "Each compared dimension at each of its values: the mean over the seeds "
                    "there with its 95% interval, one line per setting of the other "
                    "dimensions (never pooled over them"
                    + (f"; {', '.join(tuned)} at its best" if tuned else "")
                    + "); geometric means on log axes. Degenerate configs are left out.",
                    fig,
                )
            )
    a, note = coarsen(full)
    # Runs stopped at their target have no oscillation window to compare (stats.run_endings).
    oscillation = len(a.history) and not full.stopped_at_target
    if oscillation and has_split(a):
        figs.append(
            (
                "What oscillates",
                "The minibatch loss's spread around its moving average over the last half "
                "of training, relative to that average, split in two: the sampling noise of "
                "a B-example average (from each step's per-example losses) and the rest, the "
                "weights' own trajectory; where the trajectory probe ran, the trajectory "
                "measured directly. Mean over seeds with its 95% interval (one cut at the "
                "axis where it reaches 0). Right: the share of the spread's variance that is "
                "sampling noise, one dot per seed.",
                split_figure(a, tick_label),
            )
        )
    if oscillation and has_trajectory(a):
        figs.append(
            (
                "Trajectory and minibatch loss",
                "One seed per config over the steps the trajectory probe measured: the "
                "minibatch loss (grey) and the loss of the same weights on the probe set "
                "(red), the curve the weights themselves trace.",
                trajectory_figure(a),
            )
        )
    if len(a.history):
        figs.append(
            (
                "Train loss per step",
                "Bold: the geometric mean over seeds (smoothed over 2% of the steps) with "
                "a 95% band; faint: single seeds; x: where a run diverged; a ≡ b: twins, "
                "two spellings of the same update (equal losses over the first 50 steps; "
                "rounding may part them later), drawn once.",
                curves(a, "step", "train_loss", title="train loss"),
            )
        )
        figs.append(
            (
                "Train loss per example seen",
                "A larger batch sees more examples per step: the same runs against data consumed.",
                curves(a, "examples_seen", "train_loss", title="train loss"),
            )
        )
        if oscillation:
            figs.append(
                (
                    "Oscillation",
                    "Over the last half of training: spread of the loss around "
                    "its moving average, the same relative to the moving average, and spikes "
                    "(steps above 3 robust sigmas). One dot per seed; bar = mean, whisker = "
                    "its 95% interval.",
                    dots(a, ["spread", "spread_rel", "spikes"], "oscillation"),
                )
            )
        figs.append(
            (
                "Test metrics at the end",
                "One dot per seed; bar = mean, whisker = its 95% interval.",
                dots(a, ["test_accuracy", "test_loss"], "test set, final"),
            )
        )
        if a.history["test_accuracy"].notna().sum() > len(a.runs):
            figs.append(
                (
                    "Test accuracy over training",
                    "Mean over seeds with a 95% band.",
                    curves(a, "step", "test_accuracy", log=False, title="test accuracy"),
                )
            )
            figs.append(
                (
                    "Test loss over training",
                    "Mean over seeds with a 95% band.",
                    curves(a, "step", "test_loss", title="test loss"),
                )
            )
    figs = [(title, caption + note, fig) for title, caption, fig in figs]
    a = full  # the heatmap shows every config: one panel per value of the other dims
    fit = noise_collapse(full)
    if fit is not None:
        figs.append(
            (
                "Noise collapse",
                "Relative loss spread of each run against lr/B (the effective lr over the "
                f"batch size; Smith & Le 2018), log-log, with the least-squares line: "
                f"slope {fit.slope:.2f}, R² {fit.r2:.2f}.",
                collapse_figure(fit),
            )
        )
    fit = scaling(full)
    if fit is not None:
        figs.append(
            (
                "Batch scaling",
                f"Steps to {fit.target} against the batch size at the best lr per batch size "
                "(mean and range over seeds), the perfect-scaling line through the smallest "
                "batch, the fit S = Smin + Emin/B and B_crit = Emin/Smin with its 95% "
                "interval; examples against steps; B_simple along training against B_crit.",
                scaling_figure(full, fit),
            )
        )
    grid = grid_dims(a) if len(a.dims) >= 2 and len(a.comparable) else None
    primary = study.metrics[0] if study is not None else None
    metric = next(
        (
            m
            for m in (primary, "test_accuracy", "final_train_loss")
            if m in METRICS
            and m in a.comparable
            and pd.to_numeric(a.comparable[m], errors="coerce").notna().any()
        ),
        None,
    )
    if grid and metric:
        rest = [d for d in a.dims if d not in grid]
        figs.append(
            (
                "Heatmap",
                f"{METRICS[metric][0].capitalize()}, mean over seeds, on {grid[0]} x {grid[1]}"
                + (f", one panel per {', '.join(rest)}" if rest else "")
                + "; one colour scale for every panel (the bar); degenerate configs left out.",
                heatmaps(a, *grid, metric),
            )
        )
    return figs
