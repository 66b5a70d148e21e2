"""The trajectory probe's own sampling noise, so the report can remove it.

The probe's loss at step t is the mean of n per-example losses L_j(t) over a fixed subset
P of the N train examples; the whole set's is their mean over all N. The report measures
the trajectory as the spread of the probe's loss around its centred moving average
(window.moving_average): its residual r_t = mean_{j in P} d_j(t), where each example's own
residual d_j(t) = L_j(t) - MA[L_j](t) (the moving average is linear, so averaging and
smoothing commute). The whole set's residual R_t is the mean of d_j(t) over all N.

P is a simple random sample of n of the N, so given the weights' path E_P[r_t] = R_t, and
the vector r = (r_t) over the window's T steps has covariance (1 - n/N) Sigma / n, with
Sigma the covariance over the N examples of their residual vectors d_j. The report's
spread is the window's variance s^2(r) = r' C r, C = (I - 11'/T) / T, so

    E_P[s^2(r)] = s^2(R) + (1 - n/N) tr(C Sigma) / n,
    tr(C Sigma) = mean_t Var_j[d_j(t) - dbar_j],   dbar_j = mean_t d_j(t) over the window:

the probe overstates the whole set's trajectory variance by its own sampling variance,
(1 - n/N)/n times the across-example variance of each example's residual centred on its
own window mean, averaged over the window. Every example's residual is known for the
examples of P, and their sample variance (n - 1 in the denominator) is unbiased for the
population one, so

    trajectory_sampling_var_t = (1 - n/N) * var_{j in P, ddof=1}[d_j(t) - dbar_j] / n

recorded at each measured step, averaged over the window and subtracted from s^2(r),
leaves an unbiased estimate of the whole set's s^2(R) (exactly 0 when n = N). The
correction is unbiased for the variance; the spread (its square root) keeps the small
downward bias of any square root, and its noise grows as n shrinks (the report says
where the correction is most of the raw variance). The window here is the report's
default (the last half, a moving average of window.probe_window points); over another
window the centring differs by the mean of d_j over it, a term of order 1/T.
"""

import numpy as np

from mlpsweep.core.window import last_half, moving_average, probe_window


def trajectory_sampling_var(losses, measured, steps, every, train_size):
    """Per measured step, the variance of the probe's residual about the whole set's.

    `losses`: (measured steps, n) per-example probe losses in step order; `measured`:
    their 0-based step indices; `steps`: the run's configured length; `every`: the
    probe's thinning; `train_size`: N. Returns an array like `measured` (float64)."""
    losses = np.asarray(losses, dtype=np.float64)
    measured = np.asarray(measured)
    t, n = losses.shape
    if n >= train_size or n < 2 or t == 0:
        return np.zeros(t)
    resid = losses - moving_average(losses, probe_window(steps, every))
    start, stop = last_half(steps)
    inside = (measured >= start) & (measured < stop)
    if inside.any():
        resid -= resid[inside].mean(axis=0)  # each example's own mean over the window
    return (1 - n / train_size) * resid.var(axis=1, ddof=1) / n


def sampling_var_column(examples, probe_steps, done, steps, every, train_size):
    """The history column of a run that did `done` steps: trajectory_sampling_var at the
    steps the probe measured (`examples`: their per-example losses, in the order of the
    1-based `probe_steps`), NaN elsewhere."""
    column = np.full(done, np.nan)
    at = np.asarray(probe_steps[: len(examples)], dtype=np.int64) - 1
    keep = at < done  # a step measured before the update that diverged has no loss
    if keep.any():
        rows = np.asarray(examples)[keep]
        column[at[keep]] = trajectory_sampling_var(rows, at[keep], steps, every, train_size)
    return column
