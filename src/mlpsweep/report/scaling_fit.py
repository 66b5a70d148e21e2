"""The critical batch size's model, S = Smin + Emin / B (steps to a target at batch
size B), fitted; shared by the scaling analysis and its checks."""

import numpy as np


def fit(batch, steps):
    """(Smin, Emin) of S = Smin + Emin / B by least squares on relative errors."""
    batch, steps = np.asarray(batch, float), np.asarray(steps, float)
    rows = np.column_stack([1 / steps, 1 / (batch * steps)])
    (smin, emin), *_ = np.linalg.lstsq(rows, np.ones(len(steps)), rcond=None)
    return float(smin), float(emin)


def b_crit_of(points):
    """B_crit of [(batch size, steps)]: +inf when the steps never saturate (Smin <= 0), 0
    when they do not fall with the batch size (Emin <= 0), NaN with fewer than 3 points."""
    if len(points) < 3:
        return np.nan
    s, e = fit(*zip(*points))
    return e / s if s > 0 and e > 0 else np.inf if e > 0 else 0.0 if s > 0 else np.nan
