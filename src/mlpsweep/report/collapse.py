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
SAME_X_FACTOR = 1.5  # configs at one lr/B whose spreads differ more do not collapse
MIN_DISTINCT = 3  # lr/B values: through two, a line always fits


@dataclass
class Collapse:
    x: np.ndarray  # lr / B per run
    y: np.ndarray  # relative spread per run
    batch: np.ndarray  # batch size per run
    slope: float
    intercept: float
    r2: float
    n_configs: int
    distinct: int = 0  # distinct lr/B values
    apart: float = 1.0  # the largest ratio between configs' spreads at one lr/B
    apart_at: float = float("nan")  # that lr/B

    def verdict(self):
        """Whether the configs collapse onto one line, or why the fit cannot tell."""
        if self.distinct < MIN_DISTINCT:
            return (
                f"only {self.distinct} distinct lr/B values, through which a line always "
                "fits: no verdict on collapse (sweep lr/B over 3 or more values)"
            )
        if self.apart > SAME_X_FACTOR:
            return (
                f"the configs do not collapse: at lr/B = {self.apart_at:.3g} their spreads "
                f"differ {self.apart:.2f}x"
            )
        if self.r2 >= COLLAPSE_R2:
            return "the configs collapse onto one line"
        return "the configs do not collapse onto one line"

    def sentence(self):
        return (
            f"Relative loss spread against the noise scale lr/B over {self.n_configs} "
            f"(lr, batch size) configs: slope {self.slope:.2f} on log-log axes, "
            f"R² {self.r2:.2f}: {self.verdict()}."
        )


def noise_collapse(analysis, twins=frozenset()):
    """The fit of log(relative spread) on log(lr / B) over the comparable runs (finished,
    of configs that learned), each update once (`twins`: configs that repeat another's
    runs, left out); None unless the sweep varies both lr (or the reduction) and the
    batch size."""
    runs = analysis.comparable
    if not {"lr", "batch_size"} <= set(analysis.dims) or METRIC not in runs:
        return None
    if analysis.stopped_at_target:
        return None  # runs stopped at different points: their spreads compare unlike phases
    runs = runs[~runs["config"].isin(twins)]
    lr = runs["effective_lr"] if "effective_lr" in runs else runs["lr"]
    x = pd.to_numeric(lr, errors="coerce") / pd.to_numeric(runs["batch_size"], errors="coerce")
    y = pd.to_numeric(runs[METRIC], errors="coerce")
    ok = np.isfinite(x) & np.isfinite(y) & (x > 0) & (y > 0)
    x, y = x[ok].to_numpy(float), y[ok].to_numpy(float)
    batch = runs.loc[ok, "batch_size"].to_numpy()
    config = runs.loc[ok, "config"].to_numpy()
    configs = len(set(config))
    if configs < 3 or np.ptp(np.log(x)) == 0:
        return None
    lx, ly = np.log(x), np.log(y)
    slope, intercept = np.polyfit(lx, ly, 1)
    resid = ly - (slope * lx + intercept)
    total = ((ly - ly.mean()) ** 2).sum()
    r2 = 1 - (resid**2).sum() / total if total > 0 else 0.0
    key = np.round(lx, 9)  # one lr/B, whatever rounding made it
    apart, apart_at = 1.0, float("nan")
    for k in np.unique(key):
        at = pd.Series(ly[key == k]).groupby(config[key == k]).mean()  # log geometric means
        if len(at) > 1 and np.exp(np.ptp(at)) > apart:
            apart, apart_at = float(np.exp(np.ptp(at))), float(np.exp(k))
    return Collapse(
        x, y, batch, float(slope), float(intercept), float(r2), int(configs),
        len(np.unique(key)), apart, apart_at,
    )  # fmt: skip
