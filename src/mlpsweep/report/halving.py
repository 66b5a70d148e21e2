"""Successive halving's one rule, used by the sweeper that promotes runs, the page that
draws them and the bench that measures them.

At a rung (a number of steps), within each setting of the `within` dimension: each
config's value is the mean of the metric over its seeds at that step (a test metric at
its last evaluation at or before it) (a seed that
diverged or has no value counts as the worst value, so its config is not promoted over
a finite one); configs are ranked by it, ties broken by the narrower 95% t interval of
that mean; the best ceil(n / eta) go on.
"""

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from mlpsweep.core.window import smoothing_window
from mlpsweep.records.halving import HalvingLog, HalvingSpec

RULE = (
    "ranked by the mean over seeds at each rung (ties broken by the narrower 95% "
    "interval), the best 1/eta of each setting go on"
)


def value_at(history: pd.DataFrame, metric: str, step: int, at_target: bool = False) -> float:
    """A run's `metric` at `step` from its history (one row per step): a test metric at
    its last evaluation at or before that step, the train loss as its mean over the
    smoothing window ending there. A run that stopped before `step` has none (NaN),
    unless it stopped because it reached its target (`at_target`, stop_at_target): then
    its last value."""
    if len(history) < step:
        if not at_target or not len(history):
            return math.nan
        step = len(history)
    if metric == "train_loss":
        w = smoothing_window(step)
        return float(np.mean(history["train_loss"].to_numpy()[step - w : step]))
    values = history[metric].to_numpy()[:step]
    values = values[~np.isnan(values)]
    return float(values[-1]) if len(values) else math.nan


def halfwidth(values: np.ndarray) -> float:
    """The 95% t interval's half-width of the mean of `values` (inf for one value)."""
    n = len(values)
    if n < 2 or not np.all(np.isfinite(values)):
        return math.inf
    return float(stats.t.ppf(0.975, n - 1) * np.std(values, ddof=1) / math.sqrt(n))


def ranking(values: pd.DataFrame, spec: HalvingSpec) -> pd.DataFrame:
    """Per config: group, mean, halfwidth, rank within its group (0: best), promoted.
    `values` has columns config, group, value (one row per seed)."""
    worst = -math.inf if spec.higher_is_better else math.inf
    v = values.assign(value=values["value"].where(np.isfinite(values["value"]), worst))
    rows = []
    for (group, config), seeds in v.groupby(["group", "config"], sort=False, dropna=False):
        x = seeds["value"].to_numpy(dtype=float)
        rows.append({"group": group, "config": config, "mean": float(np.mean(x)),
                     "halfwidth": halfwidth(x), "seeds": len(x)})  # fmt: skip
    table = pd.DataFrame(rows, columns=["group", "config", "mean", "halfwidth", "seeds"])
    sign = -1.0 if spec.higher_is_better else 1.0
    table["_key"] = sign * table["mean"]
    table = table.sort_values(["group", "_key", "halfwidth", "config"], kind="stable")
    table["rank"] = table.groupby("group", dropna=False).cumcount()
    sizes = table.groupby("group", dropna=False)["config"].transform("size")
    table["promoted"] = table["rank"] < sizes.map(spec.keep)
    return table.drop(columns="_key").reset_index(drop=True)


def promoted(values: pd.DataFrame, spec: HalvingSpec) -> list:
    """The configs that go on from this rung (see ranking)."""
    table = ranking(values, spec)
    return table.loc[table["promoted"], "config"].tolist()


LABELS = {"test_loss": "test loss", "test_accuracy": "test accuracy", "train_loss": "train loss"}


@dataclass
class HalvingOutcome:
    """What a halving sweep chose and what it cost, from its records and halving.json."""

    log: HalvingLog
    chosen: dict  # group -> (config label, mean, halfwidth) at the last rung
    steps: int  # training steps spent (every run's steps, each trained once)
    full_steps: int  # the full grid's: every run to the last rung
    curves: pd.DataFrame  # run_id, config, group, step, value (the metric over training)

    @property
    def share(self) -> float:
        return self.steps / self.full_steps if self.full_steps else math.nan

    def short(self, config: str) -> str:
        """A config's label without the setting it was halved within."""
        within = f"{self.log.spec.within}="
        return " ".join(w for w in config.split() if not w.startswith(within)) or config

    def sentence(self) -> str:
        spec = self.log.spec
        label = LABELS[spec.metric]
        within = f"per {spec.within}" if spec.within else "over the grid"
        picks = "; ".join(
            f"{spec.within}={g}: {self.short(c)} ({label} {m:.4g} ± {h:.2g})"
            if spec.within
            else f"{c} ({label} {m:.4g} ± {h:.2g})"
            for g, (c, m, h) in self.chosen.items()
        )
        rungs = ", ".join(map(str, self.log.rungs))
        return (
            f"Successive halving chose, {within}, by {label} at {self.log.rungs[-1]} steps: "
            f"{picks}. It trained {self.steps:,} steps, {self.share:.0%} of the full grid's "
            f"{self.full_steps:,} (rungs at {rungs} steps, eta {spec.eta}; {RULE})."
        )


def halving_outcome(log: HalvingLog, runs: pd.DataFrame, history: pd.DataFrame):
    """The outcome of a halving sweep (None without runs)."""
    spec, last = log.spec, log.rungs[-1]
    ids = [r for r in runs["run_id"] if r in log.configs]
    if not ids:
        return None
    steps_done = runs.set_index("run_id")["steps_done"].reindex(ids).fillna(0)
    group_of = {}
    for _, r in runs[runs["run_id"].isin(ids)].iterrows():
        group_of[r["run_id"]] = "" if spec.within is None else str(r.get(spec.within, ""))
    h = history[history["run_id"].isin(ids)]
    parts = []
    for rid, one in h.groupby("run_id", sort=False):
        one = one.sort_values("step")
        if spec.metric == "train_loss":
            w = smoothing_window(last)
            value = one["train_loss"].rolling(w, min_periods=1).mean()
        else:
            value = one[spec.metric]
        part = pd.DataFrame({"step": one["step"].to_numpy(), "value": value.to_numpy()})
        parts.append(part.assign(run_id=rid, config=log.configs[rid], group=group_of[rid]))
    curves = pd.concat(parts).dropna(subset=["value"]) if parts else pd.DataFrame()
    finalists = set(log.promoted[-1]) if log.promoted else set(ids)
    values = pd.DataFrame(
        [
            {
                "config": log.configs[rid],
                "group": group_of[rid],
                "value": value_at(
                    history[history["run_id"] == rid].sort_values("step"), spec.metric, last
                ),
            }
            for rid in ids
            if rid in finalists
        ]
    )
    chosen = {}
    if len(values):
        table = ranking(values, spec)
        for _, row in table[table["rank"] == 0].iterrows():
            chosen[row["group"]] = (row["config"], row["mean"], row["halfwidth"])
    return HalvingOutcome(log, chosen, int(steps_done.sum()), len(ids) * last, curves)
