"""Noise collapse (Smith & Le 2018): SGD's noise grows like lr / B, so across (lr, batch
size) configs the oscillation should fall on one line against lr / B on log-log axes.

With the `sum` reduction the step is lr x B times the mean gradient, so its noise scale
is (lr x B) / B = lr: x is the effective lr over the batch size either way.
"""

from dataclasses import dataclass

import numpy as np
import pandas as pd

METRIC = "spread_rel"
COLLAPSE_R2 = 0.8  # a line explains at least this much of the log-log variance


@dataclass
class Collapse:
    x: np.ndarray  # lr / B per run
    y: np.ndarray  # relative spread per run
    batch: np.ndarray  # batch size per run
    slope: float
    intercept: float
    r2: float
    n_configs: int

    def sentence(self):
        verdict = (
            "the configs collapse onto one line"
            if self.r2 >= COLLAPSE_R2
            else "the configs do not collapse onto one line"
        )
        return (
            f"Relative loss spread against the noise scale lr/B over {self.n_configs} "
            f"(lr, batch size) configs: slope {self.slope:.2f} on log-log axes, "
            f"R² {self.r2:.2f}: {verdict}."
        )


def noise_collapse(analysis):
    """The fit of log(relative spread) on log(lr / B) over the comparable runs (finished,
    of configs that learned); None unless the sweep varies both lr (or the reduction) and
    the batch size."""
    runs = analysis.comparable
    if not {"lr", "batch_size"} <= set(analysis.dims) or METRIC not in runs:
        return None
    if analysis.stopped_at_target:
        return None  # runs stopped at different points: their spreads compare unlike phases
    lr = runs["effective_lr"] if "effective_lr" in runs else runs["lr"]
    x = pd.to_numeric(lr, errors="coerce") / pd.to_numeric(runs["batch_size"], errors="coerce")
    y = pd.to_numeric(runs[METRIC], errors="coerce")
    ok = np.isfinite(x) & np.isfinite(y) & (x > 0) & (y > 0)
    x, y = x[ok].to_numpy(float), y[ok].to_numpy(float)
    batch = runs.loc[ok, "batch_size"].to_numpy()
    configs = runs.loc[ok, "config"].nunique()
    if configs < 3 or np.ptp(np.log(x)) == 0:
        return None
    lx, ly = np.log(x), np.log(y)
    slope, intercept = np.polyfit(lx, ly, 1)
    resid = ly - (slope * lx + intercept)
    total = ((ly - ly.mean()) ** 2).sum()
    r2 = 1 - (resid**2).sum() / total if total > 0 else 0.0
    return Collapse(x, y, batch, float(slope), float(intercept), float(r2), int(configs))
