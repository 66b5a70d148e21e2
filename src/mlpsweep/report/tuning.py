"""What an adaptive search (Hydra's Optuna sweeper) found: the best setting per compared
setting (e.g. the best lr at each batch size), its objective over seeds where there are
seeds, and the search history."""

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from mlpsweep.report.analysis import fmt, tick
from mlpsweep.report.contrast import tuned
from mlpsweep.report.intervals import mean_interval
from mlpsweep.report.metrics import MAXIMISED, METRICS, valid_range


@dataclass
class Best:
    where: str  # the compared setting ("batch_size=10"), or "" for the whole search
    config: str  # the best config there
    value: object  # intervals.Interval of the objective over its seeds
    trials: int  # trials at this compared setting


@dataclass
class Tuning:
    sweeper: str
    objective: str
    maximise: bool
    trials: int
    best: list  # Best, one per compared setting
    order: pd.DataFrame  # per trial in the order they ran: objective (value), group, tuned
    tuned: list = field(default_factory=list)  # the parameters the search tuned (e.g. lr)

    def sentence(self):
        label = METRICS.get(self.objective, (self.objective,))[0]
        way = "maximised" if self.maximise else "minimised"
        parts = []
        for b in self.best:
            v = b.value
            spread = (
                f"mean of {v.n} seeds, 95% CI [{v.lo:.3g}, {v.hi:.3g}]"
                if v.n > 1
                else "1 seed, no interval"
            )
            at = f"at {b.where}: " if b.where else ""
            parts.append(f"{at}{b.config} ({label} {v.mean:.4g}, {spread}; {b.trials} trials)")
        return (
            f"The search ({self.sweeper}, {self.trials} trials, {label} {way}) found best "
            + "; ".join(parts)
            + "."
        )


def tuning(analysis, manifest, study):
    """The Tuning of an adaptive sweep, or None (a grid, or no objective recorded)."""
    metric = getattr(manifest, "objective", None)
    if not getattr(manifest, "adaptive", False) or metric not in analysis.runs:
        return None
    done = analysis.finished.assign(_y=pd.to_numeric(analysis.finished[metric], errors="coerce"))
    done = done[np.isfinite(done["_y"])]
    if not len(done):
        return None
    maximise = metric in MAXIMISED
    compared = [d for d in study.compare if d in analysis.dims]
    groups = list(done.groupby(compared, sort=True)) if compared else [((), done)]
    # "best" by the rule every other section of the page uses (contrast.tuned)
    winners = set(tuned(done, ["config", *compared], ["config"], by=metric)["config"])
    best = []
    for key, g in groups:
        [config] = [c for c in dict.fromkeys(g["config"]) if c in winners]
        key = key if isinstance(key, tuple) else (key,)
        where = ", ".join(f"{d}={fmt(v)}" for d, v in zip(compared, key))
        shown = ", ".join(
            f"{k}={tick(_number(v))}"
            for k, _, v in (p.partition("=") for p in config.split(", "))
            if k not in compared
        )
        value = mean_interval(g.loc[g["config"] == config, "_y"], valid=valid_range(metric))
        best.append(Best(where, shown or config, value, g["config"].nunique()))
    params = [d for d in analysis.dims if d not in compared and d != study.replicate]
    order = done[["_y", *compared, *params]].rename(columns={"_y": "value"})
    order["group"] = (
        order[compared].astype(str).agg(", ".join, axis=1).radd(f"{', '.join(compared)}=")
        if compared
        else "all trials"
    )
    return Tuning(
        manifest.sweeper,
        metric,
        maximise,
        len(done),
        best,
        order.reset_index(drop=True),
        params,
    )


def _number(text):
    try:
        return float(text) if any(c in text for c in ".e") else text
    except ValueError:
        return text
