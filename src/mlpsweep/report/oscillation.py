"""The oscillation of a loss curve: its spread around a moving average, split into the
minibatch's sampling noise and the weights' own trajectory (measured directly where the
trajectory probe ran), over a window of steps or of examples; one row per run of a sweep
(oscillation_table), with why each metric that is NaN could not be measured.
"""

import math

import numpy as np
import pandas as pd

from mlpsweep.core.window import moving_average, smoothing_window
from mlpsweep.core.window import window_bounds as _window_bounds
from mlpsweep.report.not_measured import WHY, reasons_text

OSCILLATION = [
    "spread",
    "spread_rel",
    "mean_abs_change",
    "mean_abs_change_rel",
    "spikes",
    "spread_sampling",
    "spread_sampling_rel",
    "spread_trajectory",
    "spread_trajectory_rel",
    "spread_trajectory_probe",
    "spread_trajectory_probe_rel",
    "spread_trajectory_probe_raw",
    "spread_trajectory_probe_rel_raw",
    "probe_correction_share",
    "sampling_share",
    "sampling_var",
    "spread_var",
    "example_loss_cv",
]
SAMPLING = ("spread_sampling", "spread_sampling_rel", "spread_trajectory", "spread_trajectory_rel")
SAMPLING_SHARE = ("sampling_share", "sampling_var", "spread_var", "example_loss_cv")
PROBE = (
    "spread_trajectory_probe",
    "spread_trajectory_probe_rel",
    "spread_trajectory_probe_raw",
    "spread_trajectory_probe_rel_raw",
    "probe_correction_share",
)


# A window is no place to measure oscillation while the run is still in its early phase:
# its loss near the starting value (a plateau, where the spread is an untrained network's)
# or on its way down from it (an escape: a spread around a moving average that sweeps
# through levels), in a run that later learns. Runs that never learn are the report's
# degenerate configs, not an unmeasurable window.
EARLY = 0.75  # the window entered at 75% of the starting loss or more ...
LEARNED = 0.5  # ... in a run whose final level falls below half of it
PLATEAU = 0.02  # within 2% of the starting loss: a plateau, not yet an escape


def unmeasurable(loss, smooth, start, stop):
    """Why the window [start, stop) of `loss` (its moving average `smooth` over the whole
    curve) cannot be measured, or "": the run's early phase, a plateau or an escape."""
    n = len(loss)
    head = max(5, n // 100)
    initial = float(np.mean(loss[:head]))
    level = float(np.mean(smooth[start:stop]))
    entry = float(np.mean(smooth[start : start + max(1, (stop - start) // 10)]))
    final = float(np.mean(smooth[-max(head, n // 10) :]))
    if not (initial > 0 and entry >= EARLY * initial and final < LEARNED * initial):
        return ""
    phase = (
        "sit on the starting plateau"
        if abs(level - initial) <= PLATEAU * initial
        else "are the escape from the starting level"
    )
    return (
        f"steps {start + 1}-{stop} {phase} (loss {level:.3g} there against {initial:.3g} at "
        f"the start; the run later falls to {final:.3g})"
    )


def oscillation(
    loss,
    window=None,
    start=None,
    stop=None,
    sampling_var=None,
    trajectory=None,
    ended="",
    probe_var=None,
    batch_size=None,
):
    """How much a loss curve oscillates over a window of its steps (default: the last
    half of training), and which part of that is the weights' own trajectory:

    spread           std of the minibatch loss around its centred moving average (window
                     n/20, >= 5 steps)
    spread_rel       the same relative to the moving average (a coefficient of variation:
                     a curve at a lower loss has less absolute spread by construction)
    mean_abs_change  mean |loss[t] - loss[t-1]|; mean_abs_change_rel: over the moving average
    spikes           steps whose residual exceeds 3 robust sigmas (1.4826 x median |residual|)

    A minibatch loss is the weights' loss plus the sampling noise of a B-example average,
    whose variance v_t given the weights each step records (`sampling_var`, see
    Trainer.loss_sampling_var). That noise is independent from step to step, so around a
    centred average of m points it leaves a residual of variance v_t (1 - 1/m):

    spread_sampling    sqrt(mean of v_t (1 - 1/m_t)): the spread sampling alone would show
    spread_trajectory  sqrt(max(0, spread^2 - spread_sampling^2)): the rest, the spread of
                       the weights' own loss (the trajectory) around its moving average
    sampling_share     spread_sampling_rel^2 / spread_rel^2: the share of the observed
                       variance that is sampling noise, in the relative form the probe's
                       share takes too (so seeds at different loss levels weigh alike when
                       pooled). Not capped at 1: a run's estimate scatters around the true
                       share both ways, and a cap would bias the mean of runs whose share
                       is near 1 downward. sampling_var and spread_var (its numerator and
                       denominator) let the report take the ratio of their means over
                       seeds (report.intervals.sampling_shares).
    example_loss_cv    the per-example loss's coefficient of variation over the window:
                       sqrt(mean of v_t B) / mean loss (with `batch_size` B): what the
                       sampling spread of a B-example mean is made of
    spread_trajectory_probe  the trajectory measured directly: the spread of `trajectory`
                       (the loss of the weights on a fixed probe set, NaN where not measured)
                       around its own moving average over the same span of steps, less the
                       probe's own sampling noise (`probe_var`, see core/trajectory.py):
                       sqrt(max(0, raw^2 - mean of probe_var)). The raw spread, which a
                       subset probe overstates, is spread_trajectory_probe_raw;
                       probe_correction_share is the correction's share of the raw variance
                       (near 1: the probe is too small to tell the trajectory from its own
                       noise).
    (each `_rel`: relative to the moving average, as spread_rel)

    Returns the metrics and, under "why", the reason for each that cannot be measured
    (NaN): never a number from a window the data does not cover, nor from a window in
    the run's early phase, a plateau or an escape (see `unmeasurable`), nor from a run
    that `ended` in a way that makes its windows incomparable (a divergence, a stop at
    its target: the reason).
    The moving average is taken over the whole curve, then cut to [start, stop)."""
    loss = np.asarray(loss, dtype=np.float64)
    n = len(loss)
    start = n // 2 if start is None else start
    stop = n if stop is None else stop
    out = dict.fromkeys(OSCILLATION, np.nan) | {"why": {}}
    if stop - start < 4:
        out["why"] = dict.fromkeys(OSCILLATION, f"a window of {stop - start} steps is too short")
        return out
    window = window or smoothing_window(n)
    full_smooth = moving_average(loss, window)
    why = ended or unmeasurable(loss, full_smooth, start, stop)
    if why:
        out["why"] = dict.fromkeys(OSCILLATION, why)
        return out
    smooth = full_smooth[start:stop]
    resid = loss[start:stop] - smooth
    tail = loss[start:stop]
    sigma = 1.4826 * np.median(np.abs(resid - np.median(resid)))
    level = float(np.mean(np.abs(smooth)))
    change = float(np.mean(np.abs(np.diff(tail))))
    positive = bool(np.all(smooth > 0))
    out |= {
        "spread": float(np.std(resid)),
        "spread_rel": float(np.std(resid / smooth)) if positive else np.nan,
        "mean_abs_change": change,
        "mean_abs_change_rel": change / level if level > 0 else np.nan,
        "spikes": int(np.sum(resid > 3 * sigma)) if sigma > 0 else 0,
    }
    out["why"] |= _decompose(out, sampling_var, n, window, start, stop, smooth, positive)
    if batch_size and np.isfinite(out["spread_sampling"]):
        v = np.asarray(sampling_var, dtype=np.float64)[start:stop]
        if level > 0:
            out["example_loss_cv"] = math.sqrt(float(np.mean(v)) * batch_size) / level
        else:  # every minibatch fitted exactly: no level to be relative to
            out["why"]["example_loss_cv"] = "the loss is 0 over this window"
    out["why"] |= _probe(out, trajectory, n, window, start, stop, probe_var)
    return out


def _decompose(out, sampling_var, n, window, start, stop, smooth, positive):
    """spread_sampling, spread_trajectory, sampling_share into `out`; {metric: why not}."""
    if sampling_var is None:
        return dict.fromkeys(
            (*SAMPLING, *SAMPLING_SHARE), "the record has no loss_sampling_var (an older run)"
        )
    v = np.asarray(sampling_var, dtype=np.float64)[start:stop]
    if not np.all(np.isfinite(v)):
        return dict.fromkeys(
            (*SAMPLING, *SAMPLING_SHARE),
            "one example's loss has no sampling variance (batch_size=1)"
            if np.all(np.isnan(v))
            else "the sampling variance is not finite in this window",
        )
    lo, hi = _window_bounds(n, window)
    kept = (1 - 1 / (hi - lo))[start:stop]  # what a centred average of m points leaves
    sampling = float(np.mean(v * kept))
    out["spread_sampling"] = math.sqrt(sampling)
    out["spread_trajectory"] = math.sqrt(max(0.0, out["spread"] ** 2 - sampling))
    if positive:
        rel = float(np.mean(v * kept / smooth**2))
        out["spread_sampling_rel"] = math.sqrt(rel)
        out["spread_trajectory_rel"] = math.sqrt(max(0.0, out["spread_rel"] ** 2 - rel))
        out["sampling_var"], out["spread_var"] = rel, out["spread_rel"] ** 2
        if out["spread_rel"] > 0:
            out["sampling_share"] = rel / out["spread_rel"] ** 2
        return {}
    return dict.fromkeys(
        (*SAMPLING[1::2], *SAMPLING_SHARE[:3]), "the moving average is not positive"
    )


def _probe(out, trajectory, n, window, start, stop, probe_var=None):
    """spread_trajectory_probe(_rel, _raw) into `out` where the probe covered [start, stop)
    with half a smoothing window before it; {metric: why not}. `probe_var`: the probe's
    own sampling variance per measured step (None: an older record, or probe=all: no
    correction)."""
    if trajectory is None:
        return dict.fromkeys(PROBE, "trajectory_probe was off")
    t = np.asarray(trajectory, dtype=np.float64)
    at = np.flatnonzero(np.isfinite(t))
    if len(at) < 4:
        return dict.fromkeys(PROBE, "trajectory_probe measured fewer than 4 steps")
    if at[0] > start or at[-1] < stop - 1:
        return dict.fromkeys(
            PROBE,
            f"the trajectory probe measured steps {at[0] + 1}-{at[-1] + 1}; "
            f"this window is steps {start + 1}-{stop}",
        )
    every = int(np.median(np.diff(at))) if len(at) > 1 else 1
    points = t[at]
    smooth = moving_average(points, max(3, window // every))
    inside = (at >= start) & (at < stop)
    resid = points[inside] - smooth[inside]
    own = np.zeros(int(inside.sum()))
    if probe_var is not None:
        own = np.nan_to_num(np.asarray(probe_var, dtype=np.float64)[at][inside])
    raw = float(np.var(resid))
    out["spread_trajectory_probe_raw"] = math.sqrt(raw)
    out["spread_trajectory_probe"] = math.sqrt(max(0.0, raw - float(np.mean(own))))
    out["probe_correction_share"] = float(np.mean(own)) / raw if raw > 0 else 0.0
    if np.all(smooth[inside] > 0):
        raw_rel = float(np.var(resid / smooth[inside]))
        own_rel = float(np.mean(own / smooth[inside] ** 2))
        out["spread_trajectory_probe_rel_raw"] = math.sqrt(raw_rel)
        out["spread_trajectory_probe_rel"] = math.sqrt(max(0.0, raw_rel - own_rel))
        return {}
    return dict.fromkeys(
        ("spread_trajectory_probe_rel", "spread_trajectory_probe_rel_raw"),
        "the moving average is not positive",
    )


def oscillation_table(history, ended=None):
    """One row per run: its oscillation metrics over the last half of its steps, and
    (suffix `_ex`) over the same window of examples seen for every run of the sweep: the
    last half of the examples the shortest run saw. A batch-10 and a batch-100 run are
    then compared over the same data as well as over the same number of updates.
    `not_measured` says why its metrics are NaN, each reason once after the metrics it
    holds for ("spread, spread_rel: the run diverged at step 1001"); WHY holds the same
    as {metric: why} (in memory; not_measured_reason reads it).
    `ended`: {run_id: why its windows cannot be compared} (see run_endings)."""
    ended = ended or {}
    groups = list(history.groupby("run_id", sort=False))
    seen = [g["examples_seen"].to_numpy() for _, g in groups]
    common = min((s[-1] for s in seen if len(s)), default=0)
    rows = []
    for (rid, g), ex in zip(groups, seen):
        loss = g["train_loss"].to_numpy()
        parts = {
            key: g[col].to_numpy() if col in g and g[col].notna().any() else None
            for key, col in (
                ("sampling_var", "loss_sampling_var"),
                ("trajectory", "trajectory_loss"),
                ("probe_var", "trajectory_sampling_var"),
            )
        }
        if len(ex):
            parts["batch_size"] = int(round(ex[0] / g["step"].iloc[0])) if "step" in g else None
        start, stop = np.searchsorted(ex, [common / 2, common], side="right")
        parts["ended"] = ended.get(rid, "")
        by_steps = oscillation(loss, **parts)
        by_examples = oscillation(loss, start=int(start), stop=int(stop), **parts)
        why = {**by_steps.pop("why"), **{f"{k}_ex": v for k, v in by_examples.pop("why").items()}}
        rows.append(
            {"run_id": rid, **by_steps}
            | {f"{k}_ex": v for k, v in by_examples.items()}
            | {"not_measured": reasons_text(why), WHY: why}
        )
    columns = ["run_id", *OSCILLATION, *(f"{k}_ex" for k in OSCILLATION), "not_measured", WHY]
    return pd.DataFrame(rows, columns=columns)
