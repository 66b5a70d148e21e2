"""Successive halving's one rule, used by the sweeper that promotes runs, the page that
draws them and the bench that measures them.

At a rung (a number of steps), within each setting of the `within` dimension: each
config's value is the mean of the metric over its seeds at that step (a test metric at
its last evaluation at or before it) (a seed that
diverged or has no value counts as the worst value, so its config is not promoted over
a finite one); configs are ranked by it, ties broken by the narrower 95% t interval of
that mean; the best ceil(n / eta) go on. Where runs stop at a target (stop_at_target),
a config whose every seed has reached it ranks above every other, by its mean steps to
the target (fewer first): the question is how soon, and a run trained longer to a
higher accuracy is no better answer to it.
"""

import math
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
from scipy import stats

from mlpsweep.core.window import smoothing_window
from mlpsweep.records.halving import HalvingLog, HalvingSpec

RULE = (
    "ranked by the mean over seeds at each rung (ties broken by the narrower 95% "
    "interval), the best ceil(n/eta) of each setting's n go on"
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
    """Per config: group, mean, halfwidth, by (what mean is of), rank within its group
    (0: best), promoted. `values` has columns config, group, value (one row per seed),
    and optionally reached: the step at which the seed stopped at its target (NaN: it
    did not), see the module's rule."""
    worst = -math.inf if spec.higher_is_better else math.inf
    v = values.assign(value=values["value"].where(np.isfinite(values["value"]), worst))
    if "reached" not in v:
        v = v.assign(reached=math.nan)
    rows = []
    for (group, config), seeds in v.groupby(["group", "config"], sort=False, dropna=False):
        reached = seeds["reached"].to_numpy(dtype=float)
        at_target = bool(np.isfinite(reached).all())
        x = reached if at_target else seeds["value"].to_numpy(dtype=float)
        rows.append({"group": group, "config": config, "mean": float(np.mean(x)),
                     "halfwidth": halfwidth(x), "seeds": len(x),
                     "by": "steps_to_target" if at_target else spec.metric})  # fmt: skip
    cols = ["group", "config", "mean", "halfwidth", "seeds", "by"]
    table = pd.DataFrame(rows, columns=cols)
    sign = -1.0 if spec.higher_is_better else 1.0
    table["_tier"] = table["by"] != "steps_to_target"  # at the target first
    table["_key"] = np.where(table["_tier"], sign * table["mean"], table["mean"])
    table = table.sort_values(["group", "_tier", "_key", "halfwidth", "config"], kind="stable")
    table["rank"] = table.groupby("group", dropna=False).cumcount()
    sizes = table.groupby("group", dropna=False)["config"].transform("size")
    table["promoted"] = table["rank"] < sizes.map(spec.keep)
    return table.drop(columns=["_key", "_tier"]).reset_index(drop=True)


def promoted(values: pd.DataFrame, spec: HalvingSpec) -> list:
    """The configs that go on from this rung (see ranking)."""
    table = ranking(values, spec)
    return table.loc[table["promoted"], "config"].tolist()


LABELS = {
    "test_loss": "test loss",
    "test_accuracy": "test accuracy",
    "train_loss": "train loss",
    "steps_to_target": "steps to target",
}


@dataclass
class HalvingOutcome:
    """What a halving sweep chose and what it cost, from its records and halving.json."""

    log: HalvingLog
    chosen: dict  # group -> (config label, mean, halfwidth, by) at the last rung
    steps: int  # training steps spent (every run's steps, each trained once)
    full_steps: int  # the full grid's: every run to the last rung
    curves: pd.DataFrame  # run_id, config, group, step, value (the metric over training)
    stops_at_target: bool = False  # full_steps is then an upper bound: runs stop early
    tried_lrs: dict | None = None  # batch size -> the lrs tried there, dropped ones too

    @property
    def share(self) -> float:
        return self.steps / self.full_steps if self.full_steps else math.nan

    def short(self, config: str) -> str:
        """A config's label without the setting it was halved within."""
        within = f"{self.log.spec.within}="
        return " ".join(w for w in config.split() if not w.startswith(within)) or config

    def _pick(self, config, mean, half, by) -> str:
        if not math.isfinite(mean):  # every seed of every config diverged, failed or stopped
            return "none (no config has a value at the last rung: diverged, failed or unfinished)"
        spread = f" ± {half:.2g}" if math.isfinite(half) else ", one seed: no interval"
        return f"{self.short(config)} ({LABELS[by]} {mean:.4g}{spread})"

    def sentence(self) -> str:
        spec = self.log.spec
        label = LABELS[spec.metric]
        within = f"per {spec.within}" if spec.within else "over the grid"
        picks = "; ".join(
            (f"{spec.within}={g}: " if spec.within else "") + self._pick(c, m, h, by)
            for g, (c, m, h, by) in self.chosen.items()
        )
        rungs = ", ".join(map(str, self.log.rungs))
        last = self.log.rungs[-1]
        if self.stops_at_target:  # the full grid's runs would stop at their target too
            cost = (
                f"It trained {self.steps:,} steps; the full grid would take fewer than "
                f"{self.full_steps:,} (every run to {last}), as its runs stop at their target "
                "too: mlpsweep bench halving counts both ways"
            )
        else:
            cost = (
                f"It trained {self.steps:,} steps, {self.share:.0%} of the full grid's "
                f"{self.full_steps:,}"
            )
        how = (
            f"by steps to target where every seed reached the target, else by {label} at the rung"
            if self.stops_at_target
            else f"by {label} at {last} steps"
        )
        return (
            f"Successive halving chose, {within}, {how}: "
            f"{picks}. {cost} (rungs at {rungs} steps, eta {spec.eta}; {RULE})."
        )


def halving_outcome(log: HalvingLog, runs: pd.DataFrame, history: pd.DataFrame):
    """The outcome of a halving sweep (None without runs)."""
    spec, last = log.spec, log.rungs[-1]
    ids = [r for r in runs["run_id"] if r in log.configs]
    if not ids:
        return None
    steps_done = runs.set_index("run_id")["steps_done"].reindex(ids).fillna(0)
    group_of, order = {}, {}  # a group's label, and its place (by value: 2 before 16)
    at_target = {}  # stopped at its target: its last value stands at every later rung
    for _, r in runs[runs["run_id"].isin(ids)].sort_values(spec.within or "run_id").iterrows():
        group_of[r["run_id"]] = "" if spec.within is None else str(r.get(spec.within, ""))
        order.setdefault(group_of[r["run_id"]], len(order))
        stopped = r.get("steps_to_target")
        at_target[r["run_id"]] = bool(pd.notna(stopped) and not r.get("paused", False))
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
    reached = runs.set_index("run_id").get("steps_to_target")
    values = pd.DataFrame(
        [
            {
                "config": log.configs[rid],
                "group": group_of[rid],
                "value": value_at(
                    history[history["run_id"] == rid].sort_values("step"),
                    spec.metric,
                    last,
                    at_target[rid],
                ),
                "reached": float(reached[rid]) if at_target[rid] else math.nan,
            }
            for rid in ids
            if rid in finalists
        ]
    )
    chosen = {}
    if len(values):
        table = ranking(values, spec)
        best = table[table["rank"] == 0]
        for _, row in best.iloc[np.argsort(best["group"].map(order).to_numpy())].iterrows():
            chosen[row["group"]] = (row["config"], row["mean"], row["halfwidth"], row["by"])
    stops = "stop_at_target" in runs and bool(runs["stop_at_target"].fillna(False).any())
    tried = None
    if {"batch_size", "lr"} <= set(runs):
        both = runs[runs["run_id"].isin(ids)]
        tried = {
            float(b): sorted(set(g["lr"].astype(float))) for b, g in both.groupby("batch_size")
        }
    return HalvingOutcome(log, chosen, int(steps_done.sum()), len(ids) * last, curves, stops, tried)


def paused_runs(runs: pd.DataFrame) -> pd.Series:
    """Which runs were paused before their last step (a halving rung, pause_at)."""
    if "paused" not in runs:
        return pd.Series(False, index=runs.index)
    return runs["paused"].fillna(False).astype(bool)


def finished_configs(runs: pd.DataFrame, log: HalvingLog) -> pd.DataFrame:
    """The runs of the configs halving trained to the end: every seed of each either at
    the last rung or stopped at its target. A config with any seed paused at a rung is
    left out whole: its other seeds alone (those that reached the target early) would
    be a survivor's mean."""
    stopped = {log.configs.get(r) for r in runs.loc[paused_runs(runs), "run_id"]}
    label = runs["run_id"].map(log.configs)
    return runs[~label.isin(stopped - {None})].reset_index(drop=True)


def halving_study(study, log: HalvingLog, swept: list):
    """A halving sweep's study, as halving ran it: undeclared, its `within` dimension is
    compared and the other swept knobs (but the replicate) are what halving tuned per
    setting of it; with no outcome declared to choose by, "best" on the page is
    halving's own metric (one rule on the page)."""
    within = log.spec.within
    if not study.compare and within is not None and within in swept:
        tuned = tuple(d for d in swept if d not in (within, study.replicate))
        study = replace(study, compare=(within,), nuisance=tuned)
    if not study.objective and study.select_by == "final_train_loss":
        metric = {"train_loss": "final_train_loss"}.get(log.spec.metric, log.spec.metric)
        study = replace(study, objective=metric, objective_of="halving")
    return study


def paused_without_halving(runs: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """(the runs to compare, a sentence) for runs paused before their last step outside
    a readable halving sweep (pause_at, or a halving.json gone or damaged): a paused run
    is no sample of the full-length outcome, so it is left out, or, when every run is
    paused, compared where it stopped and said so."""
    paused = paused_runs(runs)
    if not paused.any():
        return runs, ""
    steps = ", ".join(str(int(s)) for s in sorted(set(runs.loc[paused, "steps_done"])))
    if paused.all():
        return runs, (
            f"Every run is paused before its last step (at {steps} steps): the page compares "
            "them where they stopped; rerun with resume=true to train them on."
        )
    return runs[~paused].reset_index(drop=True), (
        f"{int(paused.sum())} runs paused before their last step (at {steps} steps: pause_at, "
        "or a halving sweep whose halving.json is gone) are left out: they are no sample of "
        "the full-length outcome."
    )
