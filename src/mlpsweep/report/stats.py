"""Numbers the report shows: bands over seeds and the oscillation of a loss curve.

Bands are computed once, vectorised, as a 95% t-interval of the mean over seeds, rather
than by seaborn's per-x bootstrap (seaborn issue 2547: over a minute for six 1000-step runs).
"""

import numpy as np
import pandas as pd

# Two-sided 95% Student t quantiles for 1..30 degrees of freedom (then ~normal).
T95 = [
    12.706,
    4.303,
    3.182,
    2.776,
    2.571,
    2.447,
    2.365,
    2.306,
    2.262,
    2.228,
    2.201,
    2.179,
    2.160,
    2.145,
    2.131,
    2.120,
    2.110,
    2.101,
    2.093,
    2.086,
    2.080,
    2.074,
    2.069,
    2.064,
    2.060,
    2.056,
    2.052,
    2.048,
    2.045,
    2.042,
]


def t95(n):
    """The 95% two-sided t quantile for a mean of n values (NaN for n < 2)."""
    n = np.asarray(n)
    df = n - 1
    q = np.where(df > 30, 1.96, np.take(T95, np.clip(df - 1, 0, 29)))
    return np.where(df >= 1, q, np.nan)


def mean_band(df, by, x, y):
    """Mean of y over replicates per (by, x), with a 95% t-interval: lo, hi columns."""
    g = df.groupby([*by, x], observed=True, sort=True)[y].agg(["mean", "std", "count"])
    half = t95(g["count"].to_numpy()) * g["std"].to_numpy() / np.sqrt(g["count"].to_numpy())
    g["lo"], g["hi"] = g["mean"] - half, g["mean"] + half
    return g.reset_index()


def moving_average(y, window):
    """Centred moving average over `window` points (narrower at the ends). Centred, not
    trailing: a trailing average lags a falling loss, and that lag would count as spread."""
    y = np.asarray(y, dtype=np.float64)
    c = np.cumsum(np.insert(y, 0, 0.0))
    idx = np.arange(len(y))
    lo = np.maximum(idx - window // 2, 0)
    hi = np.minimum(idx + window // 2 + 1, len(y))
    return (c[hi] - c[lo]) / (hi - lo)


def oscillation(loss, window=None):
    """How much a loss curve oscillates over the last half of training:

    spread       std of the loss around its centred moving average (window n/20, >= 5)
    mean_abs_change  mean |loss[t] - loss[t-1]|
    spikes       steps whose residual exceeds 3 robust sigmas (1.4826 x median |residual|)
    """
    loss = np.asarray(loss, dtype=np.float64)
    n = len(loss)
    if n < 4:
        return {"spread": np.nan, "mean_abs_change": np.nan, "spikes": 0}
    window = window or max(5, n // 20)
    resid = (loss - moving_average(loss, window))[n // 2 :]
    tail = loss[n // 2 :]
    sigma = 1.4826 * np.median(np.abs(resid - np.median(resid)))
    return {
        "spread": float(np.std(resid)),
        "mean_abs_change": float(np.mean(np.abs(np.diff(tail)))),
        "spikes": int(np.sum(resid > 3 * sigma)) if sigma > 0 else 0,
    }


def oscillation_table(history):
    """One row per run: its oscillation metrics."""
    rows = [
        {"run_id": rid, **oscillation(g["train_loss"].to_numpy())}
        for rid, g in history.groupby("run_id", sort=False)
    ]
    return pd.DataFrame(rows, columns=["run_id", "spread", "mean_abs_change", "spikes"])
