"""Effect sizes with 95% intervals: one contrast of a dimension's two settings on a metric.

For a compared dimension d, its smallest and largest values are contrasted, all else
equal where the sweep allows (analysis.pairing_groups), with nuisance dimensions tuned
(the best value per setting, as the Deep Learning Tuning Playbook's isolation plots do,
by the page's one rule, study.select_by: a search's objective, else the study's outcome
metric, else the final train loss). A positive metric is compared as a ratio of
geometric means on every line of the page; accuracy, counts and a metric some run
measured as 0 as a difference (is_ratio).

Intervals: replicates are paired by seed when both settings start from the same weights
(same seeds, and d does not change the network's shape or init): a t-interval on the
per-seed log-ratios (or differences). Otherwise Welch's t-interval on the log values.
"""

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from mlpsweep.report.analysis import fmt
from mlpsweep.report.intervals import mean_interval, t_quantile
from mlpsweep.report.metrics import DIFFERENCE, METRICS

INIT_DIMS = {"depth", "width", "hidden_sizes", "init", "rng", "dtype", "activation"}
TUNE_BY = "final_train_loss"
# A relative metric (a spread over the loss's own moving average) compared between runs
# whose loss levels differ by more than LEVEL_FACTOR divides by different levels: the
# comparison says that, and shows the absolute form beside it.
LEVEL_FACTOR = 2.0


def absolute_form(metric):
    """The absolute metric a relative one (`..._rel...`) divides by the level, or None."""
    return metric.replace("_rel", "", 1) if "_rel" in metric else None


METHOD = (
    "Effects are ratios of geometric means over seeds (differences for accuracy and "
    "counts) with 95% intervals: a paired t-interval on per-seed log-ratios where both "
    "settings start from the same weights (same seeds, same network), else Welch's "
    "t-interval on log values. An interval that includes no change is called inconclusive."
)


@dataclass
class Contrast:
    dim: str
    low: object
    high: object
    where: str  # the setting of the other dimensions, or how they were averaged
    metric: str
    mean_low: float
    mean_high: float
    effect: float  # ratio high/low (or difference high - low)
    lo: float  # its 95% interval (NaN with fewer than two replicates)
    hi: float
    n_low: int
    n_high: int
    paired: bool
    ratio: bool
    unit: str = "seeds"  # what n counts: seeds, or runs when pooled over settings
    # a relative metric between different loss levels: the levels' ratio, and the
    # contrast of its absolute form (None otherwise)
    level_ratio: float = float("nan")
    absolute: "Contrast | None" = None

    @property
    def has_interval(self):
        return math.isfinite(self.lo) and math.isfinite(self.hi)

    @property
    def conclusive(self):
        none = 1.0 if self.ratio else 0.0
        return self.has_interval and not (self.lo <= none <= self.hi)

    @property
    def size(self):
        """For ranking: |log ratio|, or the difference relative to the mean level."""
        if self.ratio:
            return abs(math.log(self.effect)) if self.effect > 0 else 0.0
        level = max(abs(self.mean_low), abs(self.mean_high), 1e-12)
        return abs(self.effect) / level

    def sentence(self):
        label = METRICS.get(self.metric, (self.metric, False))[0]
        at_high, at_low = f"{self.dim}={fmt(self.high)}", f"{self.dim}={fmt(self.low)}"
        where = f" ({self.where})" if self.where else ""
        if not self.has_interval:  # one seed: two numbers, not an effect
            n = min(self.n_low, self.n_high)
            return (
                f"{label.capitalize()} {self.mean_high:.3g} at {at_high} against "
                f"{self.mean_low:.3g} at {at_low}{where}: {n} {self.unit[:-1]} each, so no "
                "interval and no effect claimed."
            )
        if self.ratio:
            lower = self.effect < 1
            factor = 1 / self.effect if lower else self.effect
            shown = f"{factor:.2f}" if factor < 10 else f"{factor:.3g}"
            shown = f"{factor:.4f}" if shown == "1.00" else shown  # never "1.00x lower"
            text = f"{label.capitalize()} is {shown}x {'lower' if lower else 'higher'}"
            # the interval of the factor the sentence states (its inverse when "lower")
            ci = sorted((1 / self.lo, 1 / self.hi) if lower else (self.lo, self.hi))
            ci_text = f"ratio 95% CI [{ci[0]:.3g}, {ci[1]:.3g}]"
        else:
            way = "lower" if self.effect < 0 else "higher"
            text = f"{label.capitalize()} is {abs(self.effect):.3g} {way}"
            # the interval of the size the sentence states: of -difference when "lower"
            lo, hi = sorted((-self.hi, -self.lo) if self.effect < 0 else (self.lo, self.hi))
            ci_text = f"difference ({way}) 95% CI [{lo:.3g}, {hi:.3g}]"
        n = (
            f"{self.n_low} {self.unit} each"
            if self.n_low == self.n_high
            else f"{self.n_high} and {self.n_low} {self.unit}"
        )
        stats = f"{ci_text}, {n}{', paired by seed' if self.paired else ''}"
        verdict = "" if self.conclusive else " Inconclusive: the interval includes no change."
        return (
            f"{text} at {at_high} than at {at_low}{where}: {self.mean_high:.3g} vs "
            f"{self.mean_low:.3g} ({stats}).{verdict}{self.level_note()}"
        )

    def level_note(self):
        """The warning of a relative metric across different loss levels, with its
        absolute form's contrast ("" when the levels are alike)."""
        if not math.isfinite(self.level_ratio):
            return ""
        warning = (
            f" Level-confounded: the final train loss differs {self.level_ratio:.1f}x, so the "
            "relative form divides by different levels"
        )
        if self.absolute is None:
            return warning + "."
        a = self.absolute
        if a.ratio:
            lower = a.effect < 1
            f = 1 / a.effect if lower else a.effect
            ci = sorted((1 / a.lo, 1 / a.hi) if lower else (a.lo, a.hi))
            word = f"{f:.2f}x {'lower' if lower else 'higher'}"
            ci_text = f"95% CI [{ci[0]:.3g}, {ci[1]:.3g}]" if a.has_interval else "no interval"
        else:
            word = f"{a.effect:+.3g}"
            ci_text = f"95% CI [{a.lo:+.3g}, {a.hi:+.3g}]" if a.has_interval else "no interval"
        verdict = ", inconclusive" if a.has_interval and not a.conclusive else ""
        at = f"at {self.dim}={fmt(self.high)} than at {self.dim}={fmt(self.low)}"
        return f"{warning}; in absolute terms it is {word} {at} ({ci_text}{verdict})."

    def row(self):
        return {
            "dimension": self.dim,
            "low": self.low,
            "high": self.high,
            "where": self.where,
            "metric": self.metric,
            "mean_low": self.mean_low,
            "mean_high": self.mean_high,
            "effect": self.effect,
            "ci_lo": self.lo,
            "ci_hi": self.hi,
            "kind": "ratio" if self.ratio else "difference",
            "paired": self.paired,
            "n_low": self.n_low,
            "n_high": self.n_high,
            "conclusive": self.conclusive,
        }


def estimate(x, y, paired, ratio):
    """(effect, lo, hi) of y against x (arrays, aligned by seed when paired)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    tx, ty = (np.log(x), np.log(y)) if ratio else (x, y)
    if paired:
        iv = mean_interval(ty - tx)
        m, half = iv.mean, iv.half if iv.n > 1 else np.nan
    else:
        m = ty.mean() - tx.mean()
        if len(tx) > 1 and len(ty) > 1:
            vx, vy = tx.var(ddof=1) / len(tx), ty.var(ddof=1) / len(ty)
            se = math.sqrt(vx + vy)
            # Welch-Satterthwaite degrees of freedom (real-valued: scipy's t takes them)
            df = (vx + vy) ** 2 / (vx**2 / (len(tx) - 1) + vy**2 / (len(ty) - 1)) if se else 1
            half = float(t_quantile(df)) * se
        else:
            half = np.nan
    if ratio:
        return math.exp(m), math.exp(m - half), math.exp(m + half)
    return m, m - half, m + half


def tuned(done, dims, nuisance, by=TUNE_BY):
    """Keep, per setting of `dims`, the runs of the nuisance value with the best mean of
    `by` (study.select_by: lowest, or highest for accuracy). A value with a run that has
    no `by` (it never reached the target) ranks last, as scaling.best_lr ranks it."""
    if not nuisance:
        return done
    keys = [d for d in dims if d not in nuisance]
    higher = METRICS.get(by, (by, False))[1]
    y = pd.to_numeric(done[by], errors="coerce")
    worst = -np.inf if higher else np.inf
    score = (
        done.assign(_by=y.where(np.isfinite(y), worst))
        .groupby([*keys, *nuisance], dropna=False)["_by"]
        .mean()
        .reset_index()
    )
    pick = (lambda s: s.idxmax()) if higher else (lambda s: s.idxmin())
    groups = [g for _, g in score.groupby(keys, dropna=False)["_by"]] if keys else [score["_by"]]
    best = score.loc[[pick(g) for g in groups]]
    best = best[np.isfinite(best["_by"])]  # no value of the nuisance got there: no best
    return done.merge(best[[*keys, *nuisance]], on=[*keys, *nuisance])


def is_ratio(done, metric):
    """Whether `metric` is compared as a ratio on this page: a positive quantity (not an
    accuracy or a count) that no run measured as 0. Decided once per metric over every
    comparable run, so one metric is never a ratio in one sentence and a difference in
    the next."""
    if metric in DIFFERENCE or metric not in done:
        return False
    values = pd.to_numeric(done[metric], errors="coerce")
    values = values[np.isfinite(values)]
    return bool(len(values)) and bool((values > 0).all())


def contrast(g, d, low, high, metric, where, pairable=True, replicate="seed", ratio=None):
    """The Contrast of d=high against d=low over the runs `g`; `pairable`: whether each
    seed can be one pair (not when pooled over settings of other dimensions); `ratio`:
    the page's form for `metric` (is_ratio over every comparable run; default: over g)."""
    x, y = g[g[d] == low], g[g[d] == high]
    if ratio is None:
        ratio = is_ratio(g, metric)
    paired = (
        pairable
        and d not in INIT_DIMS
        and replicate in g
        and x[replicate].is_unique
        and y[replicate].is_unique
        and set(x[replicate]) == set(y[replicate])
    )
    if paired:
        x, y = x.sort_values(replicate), y.sort_values(replicate)
    if "effective_lr" in g and "lr" in g and (g["effective_lr"] != g["lr"]).any():
        el, eh = (", ".join(fmt(v) for v in sorted(s["effective_lr"].unique())) for s in (x, y))
        if el != eh:  # the sum reduction: a larger batch also takes a larger step
            note = f"effective lr {eh} vs {el}: the step size differs too"
            where = f"{where}; {note}" if where else note
    level_ratio, absolute = float("nan"), None
    plain = absolute_form(metric)
    if plain and TUNE_BY in g:
        # the levels as the page states them: geometric means, as the findings' ratio
        fl, fh = _center(x[TUNE_BY], True), _center(y[TUNE_BY], True)
        if min(fl, fh) > 0 and max(fl, fh) / min(fl, fh) > LEVEL_FACTOR:
            level_ratio = max(fl, fh) / min(fl, fh)
            if plain in g and np.isfinite(pd.to_numeric(g[plain], errors="coerce")).all():
                absolute = contrast(g, d, low, high, plain, "", pairable, replicate)
    effect, lo, hi = estimate(x[metric], y[metric], paired, ratio)
    return Contrast(
        d,
        low,
        high,
        where,
        metric,
        _center(x[metric], ratio),
        _center(y[metric], ratio),
        effect,
        lo,
        hi,
        len(x),
        len(y),
        paired,
        bool(ratio),
        "seeds" if pairable else "runs",
        level_ratio,
        absolute,
    )


def _center(values, ratio):
    """What "A vs B" beside an effect states: the geometric mean where the effect is a
    ratio of geometric means (so A/B is the ratio printed), else the mean."""
    v = pd.to_numeric(values, errors="coerce").astype(float)
    if ratio and len(v) and (v > 0).all():
        return float(np.exp(np.log(v).mean()))
    return float(v.mean())


def extreme_values(done, d, metric):
    """The two values of d to contrast: the smallest and largest of a numeric dimension;
    for a categorical one (optimizer, init), the values with the highest and the lowest
    mean metric. None with fewer than two values."""
    values = list(done[d].dropna().unique())
    if len(values) < 2:
        return None
    if all(isinstance(v, (int, float, np.number)) and not isinstance(v, bool) for v in values):
        return min(values), max(values)
    means = done.groupby(d)[metric].mean().sort_values()
    return means.index[-1], means.index[0]


def tuned_runs(analysis, study, metric):
    """(the comparable runs (finished, not of a degenerate config) with a finite
    `metric`, the nuisance dimensions tuned by the page's one rule (study.select_by, the
    same for every metric: the best lr is chosen once); the nuisance dimensions), or
    (None, []) when the runs lack the metric or what "best" is chosen by."""
    done = analysis.comparable.copy()
    by = study.select_by
    if metric not in done or by not in done:
        return None, []
    done[metric] = pd.to_numeric(done[metric], errors="coerce")
    nuisance = [n for n in study.nuisance if n in analysis.dims]
    best = tuned(done, analysis.dims, nuisance, by=by)
    return best[np.isfinite(best[metric])], nuisance
