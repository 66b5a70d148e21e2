"""The critical batch size from steps to a target (McCandlish et al. 2018; Shallue et al.
2018): at the best lr per batch size B, the steps S and examples E = S x B to reach the
target follow (S/Smin - 1)(E/Emin - 1) = 1, that is S = Smin + Emin / B, and the
critical batch size is B_crit = Emin / Smin: below it doubling B halves the steps
(perfect scaling), above it the steps barely fall.

The fit is least squares on relative errors (S spans decades). Its 95% interval is a
percentile bootstrap over seeds, drawn jointly across batch sizes: a seed is the same
initial weights at every batch size (and lr), so a run's luck is shared by the whole
curve; each resample draws one list of seeds with replacement, uses it at every batch
size, chooses each batch size's best lr again (the choice is part of the estimate), then
fits. Drawing each batch size's seeds independently would treat that shared luck as
independent noise and miss how it moves the whole curve. No resample is dropped: one
whose steps never saturate (Smin <= 0) puts B_crit beyond the batch sizes run (+inf),
one whose steps do not fall with the batch size (Emin <= 0) at 0, and one that cannot be
fit (fewer than 3 batch sizes reach the target) at both ends, widening the interval.
scaling_checks says whether the model fits, whether one batch size decides B_crit, and
whether B_simple agrees with it.
"""

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from mlpsweep.report.analysis import tick
from mlpsweep.report.scaling_checks import checks
from mlpsweep.report.scaling_fit import b_crit_of, fit

BOOTSTRAP = 1000
MIN_SEEDS = 3  # fewer seeds per batch size: the interval is said to be rough


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
    resamples: int = BOOTSTRAP
    beyond: int = 0  # resamples whose steps never saturate: B_crit past the largest batch
    below: int = 0  # resamples whose steps do not fall with the batch size: B_crit at 0
    unfit: int = 0  # resamples that could not be fit at all
    warnings: list = field(default_factory=list)
    doubts: list = field(default_factory=list)  # the warnings in a few words, for the verdict
    checks: object = None  # scaling_checks.Checks: lack of fit, leave-one-out, B_simple

    def check_lines(self):
        """The checks (scaling_checks) as findings: the fit, leave-one-out, B_simple."""
        if self.checks is None:
            return []
        c = self.checks
        return [t for t in (c.fit_sentence(), c.loo_sentence(self), c.noise_sentence()) if t]

    def sentence(self):
        lost = [
            f"{n} {what}"
            for n, what in (
                (self.beyond, "never saturate (counted as B_crit beyond the batch sizes run)"),
                (self.below, "do not fall with the batch size (counted as 0)"),
                (self.unfit, "cannot be fit (counted at both ends)"),
            )
            if n
        ]
        text = (
            f"Critical batch size B_crit = Emin/Smin = {self.bcrit:.3g} (95% bootstrap interval "
            f"[{self.bcrit_lo:.3g}, {self.bcrit_hi:.3g}], the best lr re-chosen in each of "
            f"{self.resamples} resamples of the seeds"
            + (f"; of them {', '.join(lost)}" if lost else "; every one fit")
            + f") from the steps to {self.target} at the best lr per batch size (Smin "
            f"{self.smin:.3g} steps, Emin {self.emin:.3g} examples)."
        )
        if self.b_simple is not None:
            text += (
                f" B_simple along training: median {self.b_simple:.3g} (judged per batch "
                "size below)."
            )
        if self.checks is not None and self.checks.p < 0.05:
            text += " The model misses the steps by more than seed noise (see below)."
        return text


def steps_grids(runs):
    """{batch size: DataFrame lr x seed of steps to target (NaN: not reached)}."""
    out = {}
    for b, g in runs.groupby("batch_size"):
        steps = pd.to_numeric(g["steps_to_target"], errors="coerce")
        out[b] = g.assign(steps=steps).pivot_table(
            index="lr", columns="seed", values="steps", aggfunc="mean", dropna=False
        )
    return out


def best_lr(grid, seeds=None):
    """(lr, mean steps) at the lr whose runs over `seeds` (default: all; a resample may
    repeat some) all reached the target in the fewest steps on average, or None."""
    m = grid.to_numpy(float) if seeds is None else grid.to_numpy(float)[:, seeds]
    reached = np.isfinite(m).all(axis=1)
    if not reached.any():
        return None
    means = np.where(reached, np.nanmean(np.where(np.isfinite(m), m, 0), axis=1), np.inf)
    k = int(np.argmin(means))
    return grid.index[k], float(means[k])


def best_per_batch(grids):
    """{batch size: (lr, per-seed steps)} at the best lr (best_lr) of each steps grid."""
    out = {}
    for b, grid in grids.items():
        best = best_lr(grid)
        if best is not None:
            out[b] = (best[0], grid.loc[best[0]].dropna().to_numpy(float))
    return out


def bootstrap(grids, rng, resamples=BOOTSTRAP):
    """B_crit per resample, with +inf / 0 / NaN for the failures: seeds drawn jointly, one
    list of seeds (with replacement) used at every batch size (paired by initial
    weights); a batch size without some drawn seed uses those it has."""
    seeds = sorted(set().union(*(grid.columns for grid in grids.values())))
    where = {b: {s: k for k, s in enumerate(grid.columns)} for b, grid in grids.items()}
    draws = np.empty(resamples)
    for r in range(resamples):
        drawn = rng.choice(len(seeds), len(seeds))
        points = []
        for b, grid in grids.items():
            cols = np.array([where[b][seeds[i]] for i in drawn if seeds[i] in where[b]], int)
            best = best_lr(grid, cols) if len(cols) else None
            if best is not None:
                points.append((b, best[1]))
        draws[r] = b_crit_of(points)
    return draws


def interval(draws):
    """The 95% percentile interval of `draws`, a NaN (an unfit resample) counted at the
    low end for the lower bound and at the high end for the upper: never dropped."""
    lo = np.percentile(np.where(np.isnan(draws), -np.inf, draws), 2.5, method="lower")
    hi = np.percentile(np.where(np.isnan(draws), np.inf, draws), 97.5, method="higher")
    return float(max(lo, 0.0)), float(hi)


def scaling(analysis, seed: int = 0, tried: dict | None = None) -> Scaling | None:
    """The Scaling of a sweep over batch size with a target, or None. `tried`: {batch
    size: the lrs tried there} where the runs compared are fewer than those tried (a
    halving sweep's finalists): a best lr is on the edge of what was tried, not of what
    was kept."""
    runs = analysis.finished
    if "steps_to_target" not in runs or "batch_size" not in analysis.dims or "lr" not in runs:
        return None
    if "seed" not in runs:
        runs = runs.assign(seed=0)
    grids = steps_grids(runs)
    best = best_per_batch(grids)
    if len(best) < 3:
        return None
    batches = np.array(sorted(best), dtype=float)
    means = np.array([best[b][1].mean() for b in sorted(best)])
    smin, emin = fit(batches, means)
    if smin <= 0 or emin <= 0:
        return None
    draws = bootstrap({b: grids[b] for b in sorted(best)}, np.random.default_rng(seed))
    lo, hi = interval(draws)
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
    found = Scaling(
        table, smin, emin, emin / smin, lo, hi, target, b_simple(analysis, best),
        resamples=len(draws),
        beyond=int(np.isposinf(draws).sum()),
        below=int((draws == 0).sum()),
        unfit=int(np.isnan(draws).sum()),
    )  # fmt: skip
    pairs = warnings(grids, best, tried)
    found.doubts, found.warnings = [d for d, _ in pairs], [w for _, w in pairs]
    found.checks = checks(found, best, analysis)
    return found


def warnings(grids, best, tried=None):
    """(a few words, the sentence) of what a reader must see beside B_crit: a best lr
    on the edge of its grid (a better one may lie outside), too few seeds for the
    interval."""
    out = []
    lrs = {b: np.sort(np.asarray((tried or {}).get(b, grids[b].index), float)) for b in best}
    edge = [b for b, (lr, _) in best.items() if lr in (lrs[b][0], lrs[b][-1])]
    if edge:
        sizes = ", ".join(f"{b:g}" for b in sorted(edge))
        which = (
            "every batch size"
            if len(edge) == len(best)
            else f"batch size{'s' if len(edge) > 1 else ''} {sizes}"
        )
        out.append((
            "the best lr sits on its grid's edge",
            f"Warning: the best lr sits on the edge of the lr grid at {which}: a better lr may "
            "lie outside it, so the steps (and B_crit) may be off. "
            + settling_grid(lrs, best, edge),
        ))  # fmt: skip
    seeds = min(len(s) for _, s in best.values())
    if seeds < MIN_SEEDS:
        out.append((
            f"{seeds} seed{'s' if seeds != 1 else ''} per batch size are too few",
            f"Warning: {seeds} seed{'s' if seeds != 1 else ''} per batch size: too few for a "
            f"trustworthy interval (use {MIN_SEEDS} or more"
            + (
                f"; {seeds} seeds drawn jointly have only {math.comb(2 * seeds - 1, seeds)} "
                "distinct resamples)."
                if seeds > 1
                else ")."
            ),
        ))  # fmt: skip
    return out


def b_simple(analysis, best):
    """The median B_simple over the evaluations of the best-lr runs, if measured."""
    if "b_simple" not in analysis.history:
        return None
    runs = analysis.finished
    keep = runs[[(b in best and lr == best[b][0]) for b, lr in zip(runs["batch_size"], runs["lr"])]]
    values = analysis.history.loc[analysis.history["run_id"].isin(keep["run_id"]), "b_simple"]
    values = pd.to_numeric(values, errors="coerce").dropna()
    return float(values.median()) if len(values) else None


def settling_grid(lrs_at, best, edge):
    """The lr grid that would settle a grid-edge warning: at each edge batch size, the
    grid continued two of its own (log) steps past the edge the best lr sits on, so the
    best is either inside (a minimum) or the steps keep falling (widen again)."""
    asks = {}
    for b in sorted(edge):
        lrs = lrs_at[b]  # sorted
        lr = float(best[b][0])
        top = lr >= lrs[-1]
        ratio = (lrs[-1] / lrs[-2] if top else lrs[1] / lrs[0]) if len(lrs) > 1 else 3.0
        way = ratio if top else 1 / ratio
        asks.setdefault(tuple(lr * way**k for k in (0, 1, 2)), []).append(b)
    parts = [
        f"lr={','.join(tick(v) for v in sorted(lrs))} at "
        f"batch_size={','.join(f'{b:g}' for b in bs)}"
        for lrs, bs in asks.items()
    ]
    return (
        "To settle it, rerun with " + "; and ".join(parts) + " (the grid two of its steps past "
        "the edge): the best lr is settled once it sits inside the grid."
    )
