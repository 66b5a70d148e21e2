"""The critical batch size from steps to a target (McCandlish et al. 2018; Shallue et al.
2018): at the best lr per batch size B, the steps S and examples E = S x B to reach the
target follow (S/Smin - 1)(E/Emin - 1) = 1, that is S = Smin + Emin / B, and the
critical batch size is B_crit = Emin / Smin: below it doubling B halves the steps
(perfect scaling), above it the steps barely fall.

The fit is least squares on relative errors (S spans decades); its 95% interval is a
percentile bootstrap that resamples the seeds of each batch size.
"""

from dataclasses import dataclass

import numpy as np
import pandas as pd

BOOTSTRAP = 1000


@dataclass
class Scaling:
    table: pd.DataFrame  # per batch size: lr (the best), steps (mean), lo, hi, seeds
    smin: float
    emin: float
    bcrit: float
    bcrit_lo: float
    bcrit_hi: float
    target: str
    b_simple: float | None  # median B_simple along training of the best-lr runs

    def sentence(self):
        text = (
            f"Critical batch size B_crit = Emin/Smin = {self.bcrit:.3g} (95% bootstrap interval "
            f"[{self.bcrit_lo:.3g}, {self.bcrit_hi:.3g}]) from the steps to {self.target} at "
            f"the best lr per batch size (Smin {self.smin:.3g} steps, Emin {self.emin:.3g} "
            "examples)."
        )
        if self.b_simple is not None:
            text += (
                f" B_simple measured along training (median {self.b_simple:.3g}) is "
                f"{self.b_simple / self.bcrit:.2g}x B_crit"
                + (
                    ": it predicted the critical batch size within a factor of 3."
                    if 1 / 3 <= self.b_simple / self.bcrit <= 3
                    else ": it did not predict the critical batch size within a factor of 3."
                )
            )
        return text


def fit(batch, steps):
    """(Smin, Emin) of S = Smin + Emin / B by least squares on relative errors."""
    batch, steps = np.asarray(batch, float), np.asarray(steps, float)
    rows = np.column_stack([1 / steps, 1 / (batch * steps)])
    (smin, emin), *_ = np.linalg.lstsq(rows, np.ones(len(steps)), rcond=None)
    return float(smin), float(emin)


def best_per_batch(runs):
    """{batch size: (lr, per-seed steps)} at the lr whose seeds all reached the target in
    the fewest steps on average."""
    out = {}
    for b, g in runs.groupby("batch_size"):
        best = None
        for lr, h in g.groupby("lr"):
            steps = pd.to_numeric(h["steps_to_target"], errors="coerce")
            if len(steps) and steps.notna().all():
                if best is None or steps.mean() < best[1].mean():
                    best = (lr, steps.to_numpy(float))
        if best is not None:
            out[b] = best
    return out


def scaling(a, seed=0):
    """The Scaling of a sweep over batch size with a target, or None."""
    runs = a.finished
    if "steps_to_target" not in runs or "batch_size" not in a.dims or "lr" not in runs:
        return None
    best = best_per_batch(runs)
    if len(best) < 3:
        return None
    batches = np.array(sorted(best), dtype=float)
    means = np.array([best[b][1].mean() for b in sorted(best)])
    smin, emin = fit(batches, means)
    if smin <= 0 or emin <= 0:
        return None
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(BOOTSTRAP):
        resampled = [rng.choice(best[b][1], len(best[b][1])).mean() for b in sorted(best)]
        s, e = fit(batches, resampled)
        if s > 0 and e > 0:
            draws.append(e / s)
    lo, hi = np.percentile(draws, [2.5, 97.5]) if draws else (np.nan, np.nan)
    table = pd.DataFrame(
        {
            "batch_size": batches,
            "lr": [best[b][0] for b in sorted(best)],
            "steps": means,
            "lo": [best[b][1].min() for b in sorted(best)],
            "hi": [best[b][1].max() for b in sorted(best)],
            "seeds": [len(best[b][1]) for b in sorted(best)],
        }
    )
    target = str(runs["target"].dropna().iloc[0]) if "target" in runs else "the target"
    return Scaling(table, smin, emin, emin / smin, float(lo), float(hi), target, b_simple(a, best))


def b_simple(a, best):
    """The median B_simple over the evaluations of the best-lr runs, if measured."""
    if "b_simple" not in a.history:
        return None
    runs = a.finished
    keep = runs[[(b in best and lr == best[b][0]) for b, lr in zip(runs["batch_size"], runs["lr"])]]
    values = a.history.loc[a.history["run_id"].isin(keep["run_id"]), "b_simple"]
    values = pd.to_numeric(values, errors="coerce").dropna()
    return float(values.median()) if len(values) else None
