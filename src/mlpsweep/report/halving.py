"""Successive halving's one rule, used by the sweeper that promotes runs, the page that
draws them and the bench that measures them.

At a rung (a number of steps), within each setting of the `within` dimension: each
config's value is the mean of the metric over its seeds at that step (a seed that
diverged or has no value counts as the worst value, so its config is not promoted over
a finite one); configs are ranked by it, ties broken by the narrower 95% t interval of
that mean; the best ceil(n / eta) go on.
"""

import math

import numpy as np
import pandas as pd
from scipy import stats

from mlpsweep.core.window import smoothing_window
from mlpsweep.records.halving import HalvingSpec

RULE = (
    "ranked by the mean over seeds at each rung (ties broken by the narrower 95% "
    "interval), the best 1/eta of each setting go on"
)


def value_at(history: pd.DataFrame, metric: str, step: int) -> float:
    """A run's `metric` at `step` from its history (one row per step): the test metrics
    where evaluated at that step, the train loss as its mean over the smoothing window
    ending there. NaN when the run has no such value (it stopped before)."""
    if len(history) < step:
        return math.nan
    if metric == "train_loss":
        w = smoothing_window(step)
        return float(np.mean(history["train_loss"].to_numpy()[step - w : step]))
    value = history[metric].to_numpy()[step - 1]
    return float(value)


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
