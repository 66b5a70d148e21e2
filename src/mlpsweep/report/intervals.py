"""Means over seeds with their 95% intervals: a mean's t-interval (on logs for ratios),
a ratio of means by the delta method, the pooled sampling share, and the bands of the
curves.

Bands are computed once, vectorised, as a 95% t-interval of the mean over seeds, rather
than by seaborn's per-x bootstrap (seaborn issue 2547: over a minute for six 1000-step runs).
"""

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd


def t_quantile(df, level=0.95):
    """The two-sided `level` quantile of Student's t with `df` degrees of freedom (any
    positive real df, vectorised; NaN for df < 1): scipy's inverse t distribution."""
    from scipy.special import stdtrit  # scipy.stats' t.ppf, without loading scipy.stats

    df = np.asarray(df, dtype=np.float64)
    q = stdtrit(np.maximum(df, 1.0), 0.5 + level / 2)
    return np.where(df >= 1, q, np.nan)


def t95(n):
    """The 95% two-sided t quantile for a mean of n values (NaN for n < 2)."""
    return t_quantile(np.asarray(n) - 1)


@dataclass(frozen=True)
class Interval:
    """A mean with its 95% t-interval (lo = hi = mean for one value; NaN for none)."""

    mean: float
    lo: float
    hi: float
    n: int

    @property
    def half(self):
        return (self.hi - self.lo) / 2


def mean_interval(values, log=False, valid=(None, None)):
    """The mean of `values` (NaN dropped) with its 95% t-interval; on their logs and
    mapped back when `log` (a geometric mean and its interval, for ratios); the interval
    clipped to the `valid` range of the quantity (a spread >= 0, an accuracy <= 1)."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if log:
        v = np.log(v[v > 0])
    if not len(v):
        return Interval(np.nan, np.nan, np.nan, 0)
    m = float(v.mean())
    half = float(t95(len(v)) * v.std(ddof=1) / math.sqrt(len(v))) if len(v) > 1 else 0.0
    lo, hi = m - half, m + half
    if log:
        m, lo, hi = math.exp(m), math.exp(lo), math.exp(hi)
    return clipped(m, lo, hi, len(v), valid)


def clipped(mean, lo, hi, n, valid=(None, None)) -> Interval:
    """The interval cut to the quantity's `valid` range (a spread >= 0, a share <= 1).
    An estimate outside that range (a share's ratio estimated above 1 by its noise)
    keeps its own interval: cut, it would lie outside its interval, or the interval
    would be inverted ([1.03, 1])."""
    floor, ceil = valid
    inside = (floor is None or mean >= floor) and (ceil is None or mean <= ceil)
    if inside:
        lo = lo if floor is None else max(lo, floor)
        hi = hi if ceil is None else min(hi, ceil)
    return Interval(mean, lo, hi, n)


def ratio_of_means(numerators, denominators, valid=(0.0, None)):
    """sum(y) / sum(x) over paired values (NaN pairs dropped) with its 95% interval by
    the delta method (the linearised ratio's t-interval over the pairs): a share over
    seeds taken as one ratio, so no single seed's noisy ratio is capped or dominates.
    One pair: the ratio, no interval."""
    y = np.asarray(numerators, dtype=np.float64)
    x = np.asarray(denominators, dtype=np.float64)
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    if not len(x) or x.sum() <= 0:
        return Interval(np.nan, np.nan, np.nan, 0)
    r = float(y.sum() / x.sum())
    if len(x) < 2:
        return Interval(r, r, r, 1)
    se = float(np.std(y - r * x, ddof=1) / math.sqrt(len(x)) / x.mean())
    half = float(t95(len(x))) * se
    return clipped(r, r - half, r + half, len(x), valid)


def sampling_shares(runs, suffix=""):
    """(each run's share of the spread's variance that is sampling noise, and their pooled
    share with its 95% interval) over the runs of one config, by one rule for the whole
    page: where the trajectory probe measured, one minus the probe's trajectory variance
    over the observed (relative forms), what the probe measures; else the recorded
    sampling variance over the observed. Pooled as one ratio of means (ratio_of_means):
    no run's share is capped."""
    probe = f"spread_trajectory_probe_rel{suffix}"
    spread = f"spread_rel{suffix}"
    if probe in runs and spread in runs and pd.to_numeric(runs[probe]).notna().all():
        traj = pd.to_numeric(runs[probe]) ** 2
        observed = pd.to_numeric(runs[spread]) ** 2
        iv = ratio_of_means(traj, observed)
        pooled = clipped(1 - iv.mean, 1 - iv.hi, 1 - iv.lo, iv.n, (0.0, 1.0))
        return 1 - traj / observed, pooled
    num, den = f"sampling_var{suffix}", f"spread_var{suffix}"
    if num not in runs or den not in runs:
        return pd.Series(dtype=float), Interval(np.nan, np.nan, np.nan, 0)
    y, x = pd.to_numeric(runs[num]), pd.to_numeric(runs[den])
    return y / x, ratio_of_means(y, x, valid=(0.0, 1.0))


def mean_band(df, by, x, y):
    """Mean of y over replicates per (by, x), with a 95% t-interval: lo, hi columns."""
    g = df.groupby([*by, x], observed=True, sort=True)[y].agg(["mean", "std", "count"])
    half = t95(g["count"].to_numpy()) * g["std"].to_numpy() / np.sqrt(g["count"].to_numpy())
    g["lo"], g["hi"] = g["mean"] - half, g["mean"] + half
    return g.reset_index()
