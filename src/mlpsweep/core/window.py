"""Where a run's oscillation is measured: the window of its steps, and the centred moving
average the loss is measured around. Defined once, here: the report measures over this
window, and the trainer's trajectory probe must cover it (with half a smoothing window
before it, so the probe's own moving average is centred at the window's first step)."""


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
