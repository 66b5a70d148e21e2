"""What a sweep varied, and what came of it: the tables and findings the report shows."""

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from mlpsweep.core.status import FINISHED, Status
from mlpsweep.report.intervals import mean_interval, sampling_shares
from mlpsweep.report.metrics import METRICS, SUMMARY, valid_range

REPLICATE = "seed"
PREFERRED = ["sweep", "batch_size", "grad_reduction", "lr", "optimizer.name", "depth", "width"]


def swept_dims(runs, config_columns):
    """Config columns with more than one value (seeds are replicates, not a dimension),
    less the settings that only follow their group's choice."""
    cols = [c for c in config_columns if c in runs.columns and c != REPLICATE]
    varied = [c for c in cols if runs[c].astype(str).nunique() > 1]
    varied = [c for c in varied if not follows_its_group(runs, c, varied)]
    return sorted(varied, key=lambda c: (PREFERRED.index(c) if c in PREFERRED else 99, c))


def follows_its_group(runs, col, varied):
    """True for a group's own setting that has one value per choice of the group: with
    optimizer=adagrad,adam swept, optimizer.eps (1e-07, 1e-08) comes with the optimizer
    and names no setting of its own; swept within one optimizer, it does."""
    group = col.rpartition(".")[0]
    choice = f"{group}.name"
    if not group or col == choice or choice not in varied:
        return False
    return runs.groupby(runs[choice].astype(str))[col].nunique().max() <= 1


def fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def tick(value):
    """A value as an axis tick: 3 significant digits (0.0316, not 0.0316228)."""
    if isinstance(value, float):
        return f"{value:.3g}"
    return fmt(value)


@dataclass
class Analysis:
    runs: pd.DataFrame  # one row per run, with `config` label and oscillation metrics
    history: pd.DataFrame  # long form, with `config`
    dims: list
    configs: list  # config labels in display order
    degenerate: dict = field(default_factory=dict)  # config -> why it is not compared

    @property
    def finished(self):
        return self.runs[self.runs["status"].isin(FINISHED)]

    @property
    def stopped_at_target(self):
        """Whether runs stop at their target: their windows end at different points."""
        flag = self.runs.get("stop_at_target")
        return flag is not None and bool(flag.fillna(False).astype(bool).any())

    @property
    def comparable(self):
        """Finished runs of the configs that learned: what contrasts compare."""
        done = self.finished
        return done[~done["config"].isin(list(self.degenerate))]


NEVER_LEARNED = 0.9  # a final train loss above 90% of the starting one: it never learned
MIN_STEPS = 20  # runs shorter than this are not judged


def degenerate_configs(runs, history):
    """{config: why} for configs most of whose finished runs diverged or never learned
    (their train loss at the end, the mean of the last 10% of steps, still above 90% of
    its first steps'): a contrast with them measures a broken run, not the dimension."""
    done = runs[runs["status"].isin(FINISHED)]
    if not len(done) or not len(history):
        return {}
    ends = {}
    for rid, g in history.groupby("run_id", sort=False):
        loss = g["train_loss"].to_numpy()
        if len(loss) < MIN_STEPS:
            continue  # too short to tell (a smoke test of a few steps)
        head = max(5, len(loss) // 100)
        ends[rid] = (float(np.mean(loss[:head])), float(np.mean(loss[-max(1, len(loss) // 10) :])))
    out = {}
    for config, g in done.groupby("config", sort=False):
        diverged = int((g["status"] == Status.DIVERGED).sum())
        alive = g.loc[g["status"] != Status.DIVERGED, "run_id"]  # a run is counted once
        stuck = [ends[r] for r in alive if r in ends]
        stuck = [(s, e) for s, e in stuck if e >= NEVER_LEARNED * s]
        if 2 * (len(stuck) + diverged) <= len(g):
            continue
        parts = [f"{diverged} diverged"] if diverged else []
        if stuck:
            start, end = (float(np.median(v)) for v in zip(*stuck))
            parts.append(
                f"{len(stuck)} never learned (median train loss {end:.3g} at the end against "
                f"{start:.3g} at the start)"
            )
        what = " or ".join(w for w, n in (("diverges", diverged), ("never learns", stuck)) if n)
        out[config] = f"{what}: {' and '.join(parts)} of its {len(g)} runs"
    return out


def analyse(tables, first=()) -> Analysis:
    """The Analysis of a sweep's SweepTables, whose runs carry the history-derived metrics
    as collect measured them (read here, never computed); `first`: dimensions to put first
    (a study's compared ones: figures facet by the first dimension and colour by the next)."""
    runs, history = tables.runs.copy(), tables.history
    swept = swept_dims(runs, tables.config_columns)
    dims = [d for d in first if d in swept] + [d for d in swept if d not in first]
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
        history = history.merge(runs[["run_id", "config"]], on="run_id")
    for col in ("error", *METRICS):
        if col not in runs:
            runs[col] = np.nan  # e.g. a sweep whose runs all failed has no metrics
    return Analysis(runs, history, dims, configs, degenerate_configs(runs, history))


def interval_text(iv):
    """ "mean ± half-width"; the interval itself where it was clipped to the quantity's
    range and is no longer centred on the mean (a share estimated above 100%, its
    interval ending at 100%: "± -0.014" would say nothing); the value alone for one seed."""
    if not iv.n:
        return "–"
    if iv.n == 1:
        return f"{iv.mean:.4g}"
    if math.isclose(iv.mean - iv.lo, iv.hi - iv.mean, rel_tol=1e-6, abs_tol=1e-12):
        return f"{iv.mean:.4g} ± {iv.half:.2g}"
    return f"{iv.mean:.4g} [{iv.lo:.3g}, {iv.hi:.3g}]"


def summary(analysis: Analysis, sort_by: str = "test_accuracy") -> pd.DataFrame:
    """One row per config: seeds, statuses, and each metric's mean with the half-width
    of its 95% t-interval over seeds as text ("1 seed" gets the value alone); numbers in
    `_<metric>`, `_<metric>_lo`, `_<metric>_hi` columns (summary.csv has them)."""
    rows = []
    for config in analysis.configs:
        g = analysis.runs[analysis.runs["config"] == config]
        done = g[g["status"].isin(FINISHED)]
        row = {
            "config": config,
            "runs": len(g),
            "status": ", ".join(f"{n} {s}" for s, n in g["status"].value_counts().items()),
        }
        if "effective_lr" in g and analysis.runs["effective_lr"].nunique() > 1:
            row["effective lr"] = ", ".join(fmt(v) for v in sorted(g["effective_lr"].unique()))
        for col in SUMMARY:
            label = METRICS[col][0]
            vals = pd.to_numeric(done[col], errors="coerce") if col in done else []
            iv = mean_interval(vals, valid=valid_range(col))
            if col == "sampling_share" and iv.n:  # the headline's pooled share, one rule
                iv = sampling_shares(done)[1]
            row[label] = interval_text(iv)
            row[f"_{col}"], row[f"_{col}_lo"], row[f"_{col}_hi"] = iv.mean, iv.lo, iv.hi
        rows.append(row)
    table = pd.DataFrame(rows)
    empty = [METRICS[c][0] for c in SUMMARY if table[f"_{c}"].isna().all()] if rows else []
    table = table.drop(columns=empty)
    if f"_{sort_by}" not in table or table[f"_{sort_by}"].isna().all():
        sort_by = "test_accuracy"  # e.g. a best_test_accuracy the summary does not show
    label, higher = METRICS[sort_by]
    return table.sort_values(f"_{sort_by}", ascending=not higher, na_position="last")


def summary_numbers(table):
    """The summary as numbers for summary.csv: config, runs, status, and per metric its
    mean, lo and hi (the 95% interval), named `<metric>`, `<metric>_lo`, `<metric>_hi`."""
    keep = [c for c in ("config", "runs", "status", "effective lr") if c in table]
    numbers = table[keep].copy()
    for col in SUMMARY:
        if f"_{col}" in table and table[f"_{col}"].notna().any():
            for suffix in ("", "_lo", "_hi"):
                numbers[f"{col}{suffix}"] = table[f"_{col}{suffix}"].astype(float)
    return numbers


def pairing_groups(done, d, others):
    """(keys, groups) in which to compare the two values of d with everything else equal:
    grouped by all other dims; or, where that pairs nothing (the `sum` reduction ties the
    step to the batch size), by the effective lr in place of lr and the reduction (sum
    against mean at an equal step). Never over fewer dims: that would pool over a setting
    the sweep separates. ([], []) when no group holds both values of d."""
    candidates = [others]
    if "lr" in others and "effective_lr" in done and d != "effective_lr":
        candidates.append(
            [o for o in others if o not in ("lr", "grad_reduction")] + ["effective_lr"]
        )
    for keys in candidates:
        if not keys:
            return [], [((), done)] if done[d].nunique() == 2 else []
        groups = [
            (k if isinstance(k, tuple) else (k,), g)
            for k, g in done.groupby(keys, sort=True)
            if g[d].nunique() == 2
        ]
        if groups:
            return keys, groups
    return [], []
