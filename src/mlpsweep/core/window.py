"""Where a run's oscillation is measured: the window of its steps, and the centred moving
average the loss is measured around. Defined once, here: the report measures over this
window, and the trainer's trajectory probe must cover it (with half a smoothing window
before it, so the probe's own moving average is centred at the window's first step)."""

import numpy as np


def smoothing_window(n: int) -> int:
    """Points in the centred moving average of an n-point curve (n/20, at least 5)."""
    return max(5, n // 20)


def last_half(n: int) -> tuple[int, int]:
    """[start, stop) indices of the last half of an n-step curve (step k is index k-1)."""
    return n // 2, n


def trajectory_steps(steps: int, every: int = 1) -> list[int]:
    """The steps (1-based) at which the trajectory probe measures a `steps`-step run: every
    `every`-th step from half a smoothing window before the last half's first step to
    the end, the last step always included."""
    start, stop = last_half(steps)
    first = max(1, start + 1 - smoothing_window(steps) // 2)
    out = list(range(first, stop + 1, every))
    if out[-1] != stop:
        out.append(stop)
    return out


def probe_window(steps: int, every: int) -> int:
    """Points in the moving average of a trajectory probe measured every `every`-th step
    of a `steps`-step run: the same span of steps as the loss's (at least 3 points)."""
    return max(3, smoothing_window(steps) // every)


def moving_average(y, window: int) -> np.ndarray:
    """Centred moving average over `window` points (narrower at the ends), along axis 0
    (each column of a 2-D array on its own). Centred, not trailing: a trailing average
    lags a falling loss, and that lag would count as spread."""
    y = np.asarray(y, dtype=np.float64)
    c = np.cumsum(np.insert(y, 0, 0.0, axis=0), axis=0)
    lo, hi = window_bounds(len(y), window)
    span = (hi - lo).reshape((-1,) + (1,) * (y.ndim - 1))
    return (c[hi] - c[lo]) / span


def window_bounds(n: int, window: int) -> tuple[np.ndarray, np.ndarray]:
    """[lo, hi) of each point's centred moving average over `window` of n points."""
    idx = np.arange(n)
    return np.maximum(idx - window // 2, 0), np.minimum(idx + window // 2 + 1, n)
