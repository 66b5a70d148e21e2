"""What a sweep varied, and what came of it: the tables and findings the report shows."""

import itertools
from dataclasses import dataclass

import numpy as np
import pandas as pd

from mlpsweep.report.stats import oscillation_table, t95

NOT_CONFIG = {
    "run_id",
    "overrides",
    "status",
    "error",
    "steps_done",
    "diverged_step",
    "final_train_loss",
    "test_loss",
    "test_accuracy",
    "best_test_accuracy",
    "examples_seen",
    "wall_seconds",
    "train_seconds",
    "steps_per_s",
    "dataset",
    "data_fingerprint",
    "job_seconds",
    "worker_pid",
    "attempts",
    "code",
    "arithmetic",
    "blas",
    "blas_threads",
    "cpu",
    "effective_lr",
    "spread",
    "mean_abs_change",
    "spikes",
    "config",
    "reproduce",
}
REPLICATE = "seed"
PREFERRED = ["sweep", "batch_size", "grad_reduction", "lr", "optimizer.name", "depth", "width"]
METRICS = {  # column -> (label, higher is better)
    "final_train_loss": ("final train loss", False),
    "test_accuracy": ("test accuracy", True),
    "test_loss": ("test loss", False),
    "spread": ("loss spread", False),
    "mean_abs_change": ("mean |step change|", False),
    "spikes": ("spikes", False),
}


def swept_dims(runs):
    """Config columns with more than one value (seeds are replicates, not a dimension)."""
    cols = [c for c in runs.columns if c not in NOT_CONFIG and c != REPLICATE]
    varied = [c for c in cols if runs[c].astype(str).nunique() > 1]
    return sorted(varied, key=lambda c: (PREFERRED.index(c) if c in PREFERRED else 99, c))


def fmt(value):
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


@dataclass
class Analysis:
    runs: pd.DataFrame  # one row per run, with `config` label and oscillation metrics
    history: pd.DataFrame  # long form, with `config`
    dims: list
    configs: list  # config labels in display order

    @property
    def finished(self):
        return self.runs[self.runs["status"].isin(["ok", "diverged"])]


def analyse(runs, history):
    runs = runs.copy()
    dims = swept_dims(runs)
    if dims:
        runs["config"] = runs[dims].apply(
            lambda r: ", ".join(f"{d}={fmt(v)}" for d, v in zip(dims, r)), axis=1
        )
        order = runs.sort_values(
            dims,
            key=lambda s: pd.to_numeric(s, errors="coerce").fillna(-1) if s.dtype == object else s,
        )["config"]
    else:
        runs["config"] = "all runs"
        order = runs["config"]
    configs = list(dict.fromkeys(order))
    if len(history):
        osc = oscillation_table(history)
        runs = runs.merge(osc, on="run_id", how="left")
        history = history.merge(runs[["run_id", "config"]], on="run_id")
    for col in ("error", *METRICS):
        if col not in runs:
            runs[col] = np.nan  # e.g. a sweep whose runs all failed has no metrics
    return Analysis(runs, history, dims, configs)


def summary(a, sort_by="test_accuracy"):
    """One row per config: seeds, statuses, mean and sd of each metric."""
    rows = []
    for config in a.configs:
        g = a.runs[a.runs["config"] == config]
        done = g[g["status"].isin(["ok", "diverged"])]
        row = {
            "config": config,
            "runs": len(g),
            "status": ", ".join(f"{n} {s}" for s, n in g["status"].value_counts().items()),
        }
        if "effective_lr" in g and a.runs["effective_lr"].nunique() > 1:
            row["effective lr"] = ", ".join(fmt(v) for v in sorted(g["effective_lr"].unique()))
        for col, (label, _) in METRICS.items():
            vals = pd.to_numeric(done[col], errors="coerce").dropna() if col in done else []
            row[label] = (
                f"{vals.mean():.4g} ± {vals.std():.2g}"
                if len(vals) > 1
                else f"{vals.mean():.4g}"
                if len(vals)
                else "–"
            )
            row[f"_{col}"] = vals.mean() if len(vals) else np.nan
        rows.append(row)
    table = pd.DataFrame(rows)
    label, higher = METRICS[sort_by]
    return table.sort_values(f"_{sort_by}", ascending=not higher, na_position="last")


def _interval(values):
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if len(v) < 2:
        return (v.mean() if len(v) else np.nan), np.nan, np.nan
    half = float(t95(len(v)) * v.std(ddof=1) / np.sqrt(len(v)))
    return v.mean(), v.mean() - half, v.mean() + half


def findings(a, metric="spread"):
    """Plain-words comparisons for each swept dimension with two values, within the
    finest grouping of the other dimensions in which both values occur (a zipped sweep
    pairs values, so e.g. lr may have to be left out of the grouping)."""
    out = []
    done = a.finished
    for d in a.dims:
        values = sorted(done[d].dropna().unique(), key=lambda v: (str(type(v)), v))
        if len(values) != 2:
            continue
        keys, groups = _pairing_groups(done, d, [o for o in a.dims if o != d])
        for key, g in groups:
            where = ", ".join(f"{o}={fmt(v)}" for o, v in zip(keys, key))
            out.append(_compare(g, d, values, metric, where))
    return out


def _pairing_groups(done, d, others):
    """Groups in which to compare the two values of d, all else equal where possible:
    first all other dims; then with lr replaced by the effective lr (sum vs mean at an
    equal step); then ever fewer dims (a zipped sweep pairs values, so no group may hold
    both values with every other dim fixed). Groups holding only one value are skipped."""
    candidates = [others]
    if "lr" in others and "effective_lr" in done and d != "effective_lr":
        candidates.append(
            [o for o in others if o not in ("lr", "grad_reduction")] + ["effective_lr"]
        )
    for k in range(len(others) - 1, 0, -1):
        candidates += [list(c) for c in itertools.combinations(others, k)]
    for keys in candidates:
        if not keys:
            continue
        groups = [
            (k if isinstance(k, tuple) else (k,), g)
            for k, g in done.groupby(keys, sort=True)
            if g[d].nunique() == 2
        ]
        if groups:
            return keys, groups
    return [], [((), done)]


def _compare(g, d, values, metric, where):
    label = METRICS[metric][0]
    parts, stats = [], []
    for v in sorted(values, key=lambda v: -_interval(g[g[d] == v][metric])[0]):
        sub = g[g[d] == v]
        m, lo, hi = _interval(sub[metric])
        sd = sub[metric].std()
        eff = ""
        if "effective_lr" in sub and (sub["effective_lr"] != sub.get("lr")).any():
            eff = (
                f", effective lr {', '.join(fmt(x) for x in sorted(sub['effective_lr'].unique()))}"
            )
        parts.append(f"{d}={fmt(v)}: {label} {m:.3g} ± {sd:.2g}{eff}")
        stats.append((m, lo, hi, len(sub)))
    (m1, lo1, hi1, n1), (m2, lo2, hi2, n2) = stats
    ratio = f"{m1 / m2:.1f}x" if m2 and np.isfinite(m2) and m2 > 0 else "n/a"
    separated = np.isfinite([lo1, hi2]).all() and lo1 > hi2
    verdict = (
        "95% intervals do not overlap"
        if separated
        else "95% intervals overlap: not distinguishable with these seeds"
    )
    prefix = f"{where}: " if where else ""
    return (
        f"{prefix}{parts[0]} vs {parts[1]} (mean ± sd over {min(n1, n2)}"
        f"{'' if n1 == n2 else '+'} seeds; {ratio}; {verdict})"
    )
