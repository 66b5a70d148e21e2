"""The gradient-noise scale of McCandlish et al. (2018, "An Empirical Model of
Large-Batch Training"): B_simple = tr(Sigma) / |G|^2, measured on a probe set.

From exact per-example gradients g_i of each example's own cross-entropy (all weights
and biases; dropout off; weight decay left out), with N train examples, a probe of n of
them, Gbar their mean gradient and s2 = sum_i |g_i - Gbar|^2 / (n - 1):

    trace_cov    = s2 * (N - 1) / N
    grad_norm_sq = |Gbar|^2 - (1 - n/N) * s2 / n
    b_simple     = trace_cov / grad_norm_sq     (NaN when grad_norm_sq <= 0: below the
                                                 noise floor of this probe)

unbiased for the train set's values, and exact when n = N. No per-example gradient is
materialised: for a dense layer the gradient of example i is the outer product a_i d_i^T
of its input and its output delta, so |g_i|^2 = |a_i|^2 |d_i|^2 (+ |d_i|^2 for the bias).
"""

import math
from dataclasses import dataclass

import numpy as np

from mlpsweep.core.layers import ACTIVATIONS, Affine


@dataclass(frozen=True)
class NoiseStats:
    grad_norm_sq: float
    trace_cov: float
    b_simple: float  # NaN below the noise floor

    def as_tuple(self):
        return (self.grad_norm_sq, self.trace_cov, self.b_simple)


def estimates(n, total, sum_sq_norms, mean_grad_sq_norm):
    """The unbiased estimates from a probe of n of `total` examples: the sum of their
    squared gradient norms and the squared norm of their mean gradient."""
    s2 = (sum_sq_norms - n * mean_grad_sq_norm) / (n - 1)
    trace_cov = s2 * (total - 1) / total
    grad_norm_sq = mean_grad_sq_norm - (1 - n / total) * s2 / n
    b_simple = trace_cov / grad_norm_sq if grad_norm_sq > 0 else math.nan
    return NoiseStats(float(grad_norm_sq), float(trace_cov), float(b_simple))


def per_example(weights, activation, x, labels):
    """(|g_i|^2 for each row of x, the summed gradient as a list of (dW, db)) of the
    network `weights` [(W, b), ...] with hidden `activation`. The math is the layers'
    own (core/layers.py): Affine.function, the activation's function and derivative."""
    act = ACTIVATIONS[activation]
    outs, h = [x], x
    for k, (W, b) in enumerate(weights):
        h = Affine.function(h, W, b)
        if k < len(weights) - 1:
            h = act.function(h)
            outs.append(h)
    h = h - h.max(axis=1, keepdims=True)
    p = np.exp(h)
    p /= p.sum(axis=1, keepdims=True)
    delta = p
    delta[np.arange(len(labels)), labels] -= 1  # d CE_i / d logits_i
    sq = np.zeros(len(x), dtype=np.float64)
    sums = [None] * len(weights)
    for k in range(len(weights) - 1, -1, -1):
        a = outs[k]
        d2 = np.einsum("ij,ij->i", delta, delta, dtype=np.float64)
        sq += (np.einsum("ij,ij->i", a, a, dtype=np.float64) + 1.0) * d2
        sums[k] = (a.T @ delta, delta.sum(axis=0))
        if k:
            delta = (delta @ weights[k][0].T) * act.derivative(outs[k])
    return sq, sums


def noise_stats(weights, activation, chunks, total):
    """NoiseStats over the probe given as (x, labels) chunks (x already the network's
    float input); `total`: the train set's size N."""
    n, sum_sq, grad = 0, 0.0, None
    for x, labels in chunks:
        sq, sums = per_example(weights, activation, x, labels)
        n += len(x)
        sum_sq += float(sq.sum())
        if grad is None:
            grad = [(dW.astype(np.float64), db.astype(np.float64)) for dW, db in sums]
        else:
            for (gW, gb), (dW, db) in zip(grad, sums):
                gW += dW
                gb += db
    mean_sq = sum(float(np.sum(gW * gW) + np.sum(gb * gb)) for gW, gb in grad) / (n * n)
    return estimates(n, total, sum_sq, mean_sq)
