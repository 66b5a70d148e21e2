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


def oscillation(loss, window=None, start=None, stop=None):
    """How much a loss curve oscillates over a window of its steps (default: the last
    half of training):

    spread           std of the loss around its centred moving average (window n/20, >= 5)
    spread_rel       the same relative to the moving average (a coefficient of variation:
                     a curve at a lower loss has less absolute spread by construction)
    mean_abs_change  mean |loss[t] - loss[t-1]|; mean_abs_change_rel: over the moving average
    spikes           steps whose residual exceeds 3 robust sigmas (1.4826 x median |residual|)

    The moving average is taken over the whole curve, then cut to [start, stop)."""
    loss = np.asarray(loss, dtype=np.float64)
    n = len(loss)
    start = n // 2 if start is None else start
    stop = n if stop is None else stop
    if stop - start < 4:
        return dict.fromkeys(OSCILLATION, np.nan) | {"spikes": 0}
    window = window or max(5, n // 20)
    smooth = moving_average(loss, window)[start:stop]
    resid = loss[start:stop] - smooth
    tail = loss[start:stop]
    sigma = 1.4826 * np.median(np.abs(resid - np.median(resid)))
    level = float(np.mean(np.abs(smooth)))
    change = float(np.mean(np.abs(np.diff(tail))))
    return {
        "spread": float(np.std(resid)),
        "spread_rel": float(np.std(resid / smooth)) if np.all(smooth > 0) else np.nan,
        "mean_abs_change": change,
        "mean_abs_change_rel": change / level if level > 0 else np.nan,
        "spikes": int(np.sum(resid > 3 * sigma)) if sigma > 0 else 0,
    }


OSCILLATION = ["spread", "spread_rel", "mean_abs_change", "mean_abs_change_rel", "spikes"]


def oscillation_table(history):
    """One row per run: its oscillation metrics over the last half of its steps, and
    (suffix `_ex`) over the same window of examples seen for every run of the sweep: the
    last half of the examples the shortest run saw. A batch-10 and a batch-100 run are
    then compared over the same data as well as over the same number of updates."""
    groups = list(history.groupby("run_id", sort=False))
    seen = [g["examples_seen"].to_numpy() for _, g in groups]
    common = min((s[-1] for s in seen if len(s)), default=0)
    rows = []
    for (rid, g), ex in zip(groups, seen):
        loss = g["train_loss"].to_numpy()
        start, stop = np.searchsorted(ex, [common / 2, common], side="right")
        by_examples = oscillation(loss, start=int(start), stop=int(stop))
        rows.append(
            {"run_id": rid, **oscillation(loss)} | {f"{k}_ex": v for k, v in by_examples.items()}
        )
    columns = ["run_id", *OSCILLATION, *(f"{k}_ex" for k in OSCILLATION)]
    return pd.DataFrame(rows, columns=columns)
