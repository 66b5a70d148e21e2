"""Effect sizes with 95% intervals: the report's headline and findings.

For a compared dimension d, its smallest and largest values are contrasted, all else
equal where the sweep allows (analysis.pairing_groups), with nuisance dimensions tuned
(the best value per setting, by final train loss, as the Deep Learning Tuning
Playbook's isolation plots do). A positive metric is compared as a ratio of geometric
means; accuracy and counts as a difference.

Intervals: replicates are paired by seed when both settings start from the same weights
(same seeds, and d does not change the network's shape or init): a t-interval on the
per-seed log-ratios (or differences). Otherwise Welch's t-interval on the log values.
"""

import itertools
import math
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np
import pandas as pd

from mlpsweep.report.analysis import fmt, pairing_groups
from mlpsweep.report.stats import mean_interval, t_quantile
from mlpsweep.report.study import DECOMPOSED, METRICS

INIT_DIMS = {"depth", "width", "hidden_sizes", "init", "rng", "dtype", "activation"}
DIFFERENCE = {"test_accuracy", "best_test_accuracy", "spikes", "spikes_ex"}
TUNE_BY = "final_train_loss"
SELF_TUNED = {"steps_to_target", "examples_to_target"}  # the nuisance tuned for them directly
LEVEL_RELATIVE = {"spread_rel", "spread_rel_ex", "mean_abs_change_rel"}
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
        a, b = f"{self.dim}={fmt(self.high)}", f"{self.dim}={fmt(self.low)}"
        where = f" ({self.where})" if self.where else ""
        if self.ratio:
            lower = self.effect < 1
            factor = 1 / self.effect if lower else self.effect
            shown = f"{factor:.2f}" if factor < 10 else f"{factor:.3g}"
            text = f"{label.capitalize()} is {shown}x {'lower' if lower else 'higher'}"
            ci = sorted((1 / self.lo, 1 / self.hi) if lower else (self.lo, self.hi))
            ci_text = f"ratio 95% CI [{ci[0]:.3g}, {ci[1]:.3g}]"
        else:
            way = "lower" if self.effect < 0 else "higher"
            text = f"{label.capitalize()} is {abs(self.effect):.3g} {way}"
            ci_text = f"difference 95% CI [{self.lo:+.3g}, {self.hi:+.3g}]"
        n = (
            f"{self.n_low} {self.unit} each"
            if self.n_low == self.n_high
            else f"{self.n_high} and {self.n_low} {self.unit}"
        )
        stats = (
            f"{ci_text}, {n}{', paired by seed' if self.paired else ''}"
            if self.has_interval
            else f"{min(self.n_low, self.n_high)} {self.unit[:-1]}, no interval"
        )
        verdict = (
            ""
            if self.conclusive or not self.has_interval
            else " Inconclusive: the interval includes no change."
        )
        return (
            f"{text} at {a} than at {b}{where}: {self.mean_high:.3g} vs {self.mean_low:.3g} "
            f"({stats}).{verdict}"
        )

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
    """Keep, per setting of `dims`, the runs of the nuisance value with the lowest mean
    of `by` (the final train loss; the steps themselves for steps to a target)."""
    if not nuisance:
        return done
    keys = [d for d in dims if d not in nuisance]
    score = done.groupby([*keys, *nuisance], dropna=False)[by].mean().reset_index()
    best = (
        score.loc[score.groupby(keys, dropna=False)[by].idxmin()]
        if keys
        else score.nsmallest(1, by)
    )
    return done.merge(best[[*keys, *nuisance]], on=[*keys, *nuisance])


def contrast(g, d, low, high, metric, where, pairable=True, replicate="seed"):
    """The Contrast of d=high against d=low over the runs `g`; `pairable`: whether each
    seed can be one pair (not when pooled over settings of other dimensions)."""
    x, y = g[g[d] == low], g[g[d] == high]
    ratio = metric not in DIFFERENCE and (x[metric] > 0).all() and (y[metric] > 0).all()
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
    if metric in LEVEL_RELATIVE and TUNE_BY in g:
        fl, fh = float(x[TUNE_BY].mean()), float(y[TUNE_BY].mean())
        if min(fl, fh) > 0 and max(fl, fh) / min(fl, fh) > 10:
            note = f"final train loss {fh:.3g} vs {fl:.3g}: relative to very different loss levels"
            where = f"{where}; {note}" if where else note
    effect, lo, hi = estimate(x[metric], y[metric], paired, ratio)
    return Contrast(
        d,
        low,
        high,
        where,
        metric,
        float(x[metric].mean()),
        float(y[metric].mean()),
        effect,
        lo,
        hi,
        len(x),
        len(y),
        paired,
        bool(ratio),
        "seeds" if pairable else "runs",
    )


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


def tuned_runs(a, study, metric):
    """(the comparable runs (finished, not of a degenerate config) with a finite
    `metric`, the nuisance dimensions tuned; the nuisance dimensions), or (None, []) when
    the runs lack the metric."""
    done = a.comparable.copy()
    if metric not in done or TUNE_BY not in done:
        return None, []
    done[metric] = pd.to_numeric(done[metric], errors="coerce")
    nuisance = [n for n in study.nuisance if n in a.dims]
    by = metric if metric in SELF_TUNED else TUNE_BY
    return tuned(done[np.isfinite(done[metric])], a.dims, nuisance, by=by), nuisance


def matched_groups(done, d, low, high, dims, nuisance, replicate):
    """(keys, groups): the runs of d=low and d=high, grouped so every other dimension is
    equal within a group (analysis.pairing_groups); never pooled over one."""
    pair = done[done[d].isin([low, high])]
    others = [o for o in dims if o != d and o not in nuisance and o != replicate]
    return pairing_groups(pair, d, others)


def contrasts(a, study, metric):
    """(the contrasts of each compared dimension's extremes, one per matched setting of
    the other dimensions; lines naming the dimensions no matched setting compares)."""
    done, nuisance = tuned_runs(a, study, metric)
    if done is None:
        return [], []
    found, unmatched = [], []
    tuned_note = f"best {', '.join(nuisance)} per setting" if nuisance else ""
    for d in study.compared(a.dims):
        extremes = extreme_values(done, d, metric)
        if extremes is None:
            continue
        low, high = extremes
        keys, groups = matched_groups(done, d, low, high, a.dims, nuisance, study.replicate)
        if not groups:
            unmatched.append(
                f"{d}={fmt(low)} and {d}={fmt(high)} are never run with the other settings "
                f"equal: not compared (that would pool over "
                f"{', '.join(o for o in a.dims if o not in (d, study.replicate, *nuisance))})."
            )
        for key, g in groups:
            where = ", ".join(f"{o}={fmt(v)}" for o, v in zip(keys, key))
            found.append(
                contrast(g, d, low, high, metric, ", ".join(filter(None, [where, tuned_note])))
            )
    return found, unmatched


def headline(a, study):
    """(up to three sentences answering the study's question, the method footnote): the
    clearest, largest contrasts of its first metric."""
    found, _ = contrasts(a, study, study.metrics[0])
    if not found:
        return [], ""
    ranked = sorted(found, key=lambda c: (not c.conclusive, -c.size))
    return [c.sentence() for c in ranked[:3]], METHOD


def interactions(a, study, metric, min_factor=1.5):
    """(size, sentence) for pairs of compared dimensions whose effects differ clearly and
    a lot: the effect of d1 (its extremes) at each extreme of d2, and the ratio of the two
    effects (difference, for accuracy) with a 95% interval, Bonferroni-adjusted over the
    pairs tested (the two effects' intervals combined, as independent estimates)."""
    done, nuisance = tuned_runs(a, study, metric)
    if done is None:
        return []
    pairs = [
        (d1, d2)
        for d1, d2 in itertools.combinations(study.compared(a.dims), 2)
        # at d2's extremes d1 is contrasted over every run there: only where no other
        # dimension is swept, or that contrast would pool over it
        if not [o for o in a.dims if o not in (d1, d2, study.replicate, *nuisance)]
    ]
    widen = NormalDist().inv_cdf(1 - 0.025 / max(1, len(pairs))) / NormalDist().inv_cdf(0.975)
    out = []
    for d1, d2 in pairs:
        e1, e2 = extreme_values(done, d1, metric), extreme_values(done, d2, metric)
        if e1 is None or e2 is None:
            continue
        at = []
        for v2 in e2:
            sub = done[(done[d2] == v2) & done[d1].isin(e1)]
            if sub[d1].nunique() == 2:
                at.append(contrast(sub, d1, *e1, metric, "", pairable=False))
        if len(at) < 2 or not all(c.has_interval for c in at) or at[0].ratio != at[1].ratio:
            continue
        ratio = at[0].ratio
        f = np.log if ratio else (lambda v: v)
        est = [f(c.effect) for c in at]
        diff = est[1] - est[0]
        width = widen * math.hypot(*((f(c.hi) - f(c.lo)) / 2 for c in at))
        size = math.exp(abs(diff)) if ratio else abs(diff) / max(abs(at[0].mean_low), 1e-12) + 1
        if abs(diff) <= width or size < min_factor:
            continue
        label = METRICS.get(metric, (metric, False))[0]
        show = (lambda v: f"{math.exp(v):.2f}x") if ratio else (lambda v: f"{v:+.3g}")
        out.append(
            (
                size,
                f"Interaction: the effect of {d1}={fmt(e1[1])} against {d1}={fmt(e1[0])} on "
                f"{label} is {show(est[1])} at {d2}={fmt(e2[1])} but {show(est[0])} at "
                f"{d2}={fmt(e2[0])} ({'ratio' if ratio else 'difference'} of the effects "
                f"{show(diff)}, 95% CI [{show(diff - width)}, {show(diff + width)}], "
                f"adjusted for {len(pairs)} pairs of dimensions).",
            )
        )
    return out


FINAL = ("final_train_loss", "test_accuracy", "test_loss", "best_test_accuracy")


def findings(a, study, limit=10):
    """(at most `limit` summary lines: each compared dimension's contrasts (one per
    matched setting of the others) on each of the study's metrics, clear ones first and
    largest first, then interactions only where they are large and clear; the full
    contrast table). A stop-at-target study makes no finding on final loss or accuracy:
    its runs stopped at different points (steps and examples to target are its answer)."""
    metrics = list(dict.fromkeys([*study.metrics, "final_train_loss", "test_accuracy"]))
    if a.stopped_at_target:
        metrics = [m for m in metrics if m not in FINAL]
    found, unmatched, inter = [], [], []
    for metric in metrics:
        f, u = contrasts(a, study, metric)
        found += f
        unmatched += u
        inter += interactions(a, study, metric)
    ranked = sorted(found, key=lambda c: (not c.conclusive, -c.size))
    lines = [c.sentence() for c in ranked if c.conclusive]
    lines += [text for _, text in sorted(inter, key=lambda t: -t[0])][:3]
    lines += [c.sentence() for c in ranked if not c.conclusive]
    lines = list(dict.fromkeys(unmatched)) + lines
    return lines[:limit], pd.DataFrame([c.row() for c in found])


def matching(runs, where):
    """The rows of `runs` whose settings equal `where` ((key, value), ...): numbers by
    value (a YAML 0.1 is the config's 0.1), anything else by its text."""
    keep = np.ones(len(runs), dtype=bool)
    for key, value in where:
        if key not in runs:
            return runs.iloc[0:0]
        col = runs[key]
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            keep &= np.isclose(pd.to_numeric(col, errors="coerce"), float(value), rtol=1e-9)
        else:
            keep &= col.astype(str).to_numpy() == str(value)
    return runs[keep]


def declared_headline(a, study):
    """One sentence per contrast the study declares, in its order: the compared
    dimension's extremes within the runs each contrast names. For a decomposed primary
    metric (the trajectory spread), the sentence says how much the minibatch loss
    scatters, how much of that is sampling noise, and what is left for the weights. A
    contrast that names a degenerate config, or leaves another dimension free (it would
    pool over it), says so instead."""
    compared = study.compared(a.dims)
    if not compared or not study.contrasts:
        return []
    d, metric = compared[0], study.metrics[0]
    lines = []
    for declared in study.contrasts:
        where = ", ".join(f"{k}={fmt(v)}" for k, v in declared.where)
        lead = f"{declared.name[:1].upper()}{declared.name[1:]} ({where}): "
        named = matching(a.finished, declared.where)
        broken = [
            f"{c} {a.degenerate[c]}" for c in dict.fromkeys(named["config"]) if c in a.degenerate
        ]
        if broken:
            lines.append(lead + "not compared: " + "; ".join(broken) + ".")
            continue
        runs = {m: _runs_for(a, study, m, declared.where) for m in _parts(metric)}
        done = runs[metric]
        extremes = extreme_values(done, d, metric) if done is not None else None
        if extremes is None:
            why = not_measured_reason(named, metric)
            lines.append(
                lead + (f"not measurable here ({why})." if why else f"fewer than two {d} values.")
            )
            continue
        low, high = extremes
        keys, groups = matched_groups(done, d, low, high, a.dims, [], study.replicate)
        if len(groups) != 1:
            free = [k for k in keys if k not in dict(declared.where)] or ["another dimension"]
            lines.append(
                lead + f"not compared: it leaves {', '.join(free)} free (name it in where)."
            )
            continue
        found = {
            m: contrast(g, d, low, high, m, "") if extreme_values(g, d, m) == extremes else None
            for m, g in runs.items()
            if g is not None
        }
        if metric in DECOMPOSED:
            text = _decomposition(found, d, low, high, metric, runs)
        else:
            text = found[metric].sentence()
        lines.append(lead + text)
    return lines


def _parts(metric):
    """The metrics a headline sentence on `metric` needs."""
    if metric not in DECOMPOSED:
        return (metric,)
    suffix = "_ex" if metric.endswith("_ex") else ""
    return (metric, f"spread_rel{suffix}", f"spread_sampling_rel{suffix}")


def _runs_for(a, study, metric, where):
    done, _ = tuned_runs(a, study, metric)
    return None if done is None else matching(done, where)


def _times(c):
    """(`low` against `high` as "2.81x more", its 95% interval "[95% CI 2.63, 2.89]", with
    "inconclusive" when the interval holds no change)."""
    if not c.ratio:  # some seed measured 0: compared as a difference
        word = f"{c.mean_low:.3g} against {c.mean_high:.3g}"
        ci = f"[difference 95% CI {-c.hi:+.3g}, {-c.lo:+.3g}]" if c.has_interval else ""
    else:
        r = 1 / c.effect
        word = f"{r:.2f}x more" if r >= 1 else f"{1 / r:.2f}x less"
        lo, hi = sorted((1 / c.lo, 1 / c.hi) if r >= 1 else (c.lo, c.hi))
        ci = f"[95% CI {lo:.2f}, {hi:.2f}]" if c.has_interval else "(one seed, no interval)"
    if c.has_interval and not c.conclusive:
        ci += ", inconclusive"
    return word, ci


def _decomposition(found, d, low, high, metric, runs):
    """The sentence for a trajectory-spread metric: observed, sampling, trajectory."""
    lo_s, hi_s = f"{d}={fmt(low)}", f"{d}={fmt(high)}"
    observed, sampling, trajectory = (found.get(m) for m in _parts(metric)[1:] + (metric,))
    parts = []
    if observed is not None:
        word, ci = _times(observed)
        parts.append(f"the minibatch loss scatters {word} at {lo_s} than at {hi_s} {ci}")
    if sampling is not None:
        word, ci = _times(sampling)
        share = "sampling_share_ex" if metric.endswith("_ex") else "sampling_share"
        g = runs[_parts(metric)[2]]
        shares = [
            pd.to_numeric(g.loc[g[d] == v, share], errors="coerce").mean() for v in (low, high)
        ]
        expected = (
            f"; sqrt({fmt(high)}/{fmt(low)}) = {math.sqrt(high / low):.2f}x expected"
            if d == "batch_size"
            else ""
        )
        noise = (
            f"the sampling noise of a {fmt(low)}- or {fmt(high)}-example average"
            if d == "batch_size"
            else "the minibatch's sampling noise"
        )
        parts.append(
            f"{shares[0]:.0%} of that variance at {lo_s} and {shares[1]:.0%} at {hi_s} is "
            f"{noise} (alone it scatters {word} {ci}{expected})"
        )
    word, ci = _times(trajectory)
    how = "measured on the probe" if "probe" in metric else "sampling noise subtracted"
    if trajectory.has_interval and not trajectory.conclusive:
        parts.append(
            f"whether the weights' own trajectory ({how}) oscillates more cannot be told "
            f"from these seeds: {word} {ci}"
        )
    else:
        parts.append(f"the weights' own trajectory ({how}) oscillates {word} {ci}")
    return "; ".join(parts) + "."


def not_measured_reason(runs, metric):
    """Why `metric` is NaN for `runs`: the most common reason their records give
    (stats.oscillation_table's `not_measured`), or ""."""
    if "not_measured" not in runs:
        return ""
    reasons = runs["not_measured"].dropna().str.split("; ").explode().dropna()
    reasons = reasons[reasons.str.startswith(f"{metric}: ")].str.slice(len(metric) + 2)
    return reasons.value_counts().index[0] if len(reasons) else ""


def unmeasured(a, study):
    """One line per study metric that some configs cannot measure: where, and why."""
    lines = []
    for metric in study.metrics:
        if metric not in a.comparable:
            continue
        done = a.comparable
        missing = done[pd.to_numeric(done[metric], errors="coerce").isna()]
        if not len(missing):
            continue
        by_reason = {}
        for config, g in missing.groupby("config", sort=False):
            by_reason.setdefault(not_measured_reason(g, metric), []).append(config)
        label = METRICS.get(metric, (metric, False))[0].capitalize()
        for why, configs in by_reason.items():
            if not why:
                continue  # not a measurement a window limits (e.g. a record without it)
            shown = "; ".join(configs[:3])
            shown += f" and {len(configs) - 3} more" if len(configs) > 3 else ""
            lines.append(f"{label} is not measurable at {shown}: {why}.")
    return lines
