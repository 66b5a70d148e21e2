"""A study's declared contrasts (study.contrasts): the headline in its own order, with the
oscillation's decomposition into sampling noise and trajectory; and the metrics that
cannot be measured in a window, with the reason."""

import math

import numpy as np
import pandas as pd

from mlpsweep.report.analysis import fmt
from mlpsweep.report.caveats import bound_text, share_text
from mlpsweep.report.contrast import contrast, extreme_values, is_ratio, tuned_runs
from mlpsweep.report.effects import matched_groups
from mlpsweep.report.intervals import mean_interval, sampling_shares
from mlpsweep.report.metrics import METRICS
from mlpsweep.report.not_measured import not_measured_reason
from mlpsweep.report.study import DECOMPOSED


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


def declared_headline(analysis, study):
    """One sentence per contrast the study declares, in its order: the compared
    dimension's extremes within the runs each contrast names. For a decomposed primary
    metric (the trajectory spread), the sentence says how much the minibatch loss
    scatters, how much of that is sampling noise, and what is left for the weights. A
    contrast that names a degenerate config, or leaves another dimension free (it would
    pool over it), says so instead."""
    compared = study.compared(analysis.dims)
    if not compared or not study.contrasts:
        return []
    d, metric = compared[0], study.metrics[0]
    lines = []
    for declared in study.contrasts:
        where = ", ".join(f"{k}={fmt(v)}" for k, v in declared.where)
        lead = f"{declared.name[:1].upper()}{declared.name[1:]} ({where}): "
        named = matching(analysis.finished, declared.where)
        broken = [
            f"{c} {analysis.degenerate[c]}"
            for c in dict.fromkeys(named["config"])
            if c in analysis.degenerate
        ]
        if broken:
            lines.append(lead + "not compared: " + "; ".join(broken) + ".")
            continue
        runs = {m: _runs_for(analysis, study, m, declared.where) for m in _parts(metric)}
        done = runs[metric]
        extremes = extreme_values(done, d, metric) if done is not None else None
        if extremes is None:
            why = not_measured_reason(named, metric)
            lines.append(
                lead + (f"not measurable here ({why})." if why else f"fewer than two {d} values.")
            )
            continue
        low, high = extremes
        keys, groups = matched_groups(done, d, low, high, analysis.dims, [], study.replicate)
        if len(groups) != 1:
            free = [k for k in keys if k not in dict(declared.where)] or ["another dimension"]
            lines.append(
                lead + f"not compared: it leaves {', '.join(free)} free (name it in where)."
            )
            continue
        found = {  # each metric in the page's one form for it (contrast.is_ratio)
            m: contrast(g, d, low, high, m, "", ratio=is_ratio(analysis.comparable, m))
            if extreme_values(g, d, m) == extremes
            else None
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


def _runs_for(analysis, study, metric, where):
    done, _ = tuned_runs(analysis, study, metric)
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
    """The sentence for a trajectory-spread metric: observed, sampling (its share of the
    variance, and the ratio expected from each config's per-example losses), trajectory;
    for the probe, the subtraction's cross-check verdict."""
    lo_s, hi_s = f"{d}={fmt(low)}", f"{d}={fmt(high)}"
    observed, sampling, trajectory = (found.get(m) for m in _parts(metric)[1:] + (metric,))
    suffix = "_ex" if metric.endswith("_ex") else ""
    parts = []
    if observed is not None:
        word, ci = _times(observed)
        parts.append(f"the minibatch loss scatters {word} at {lo_s} than at {hi_s} {ci}")
    if sampling is not None:
        word, ci = _times(sampling)
        g = runs[_parts(metric)[2]]
        probed = runs[metric] if "probe" in metric else None
        shares = [_share(g[g[d] == v], suffix, probed, d, v) for v in (low, high)]
        noise = (
            f"the sampling noise of a {fmt(low)}- or {fmt(high)}-example average"
            if d == "batch_size"
            else "the minibatch's sampling noise"
        )
        parts.append(
            f"{shares[0]} of that variance at {lo_s} and {shares[1]} at {hi_s} is "
            f"{noise} (alone it scatters {word} {ci}{_expected(g, d, low, high, suffix)})"
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
    level = trajectory.level_note()
    if "probe" in metric:
        check = cross_check(runs[metric], d, (low, high), suffix)
        if check:
            parts.append(check)
    return "; ".join(parts) + "." + level


def _share(g, suffix, probed=None, d=None, value=None):
    """'96% [95%, 97%]': the share of the spread's variance that is sampling noise over
    the runs `g` (with the probe: over `probed`'s runs at d=value), by the page's one rule
    (intervals.sampling_shares)."""
    runs = probed[probed[d] == value] if probed is not None else g
    iv = sampling_shares(runs, suffix)[1]
    if not math.isfinite(iv.mean):
        return "?"
    if iv.n < 2:
        return share_text(iv.mean)
    if iv.hi - iv.lo < 0.02:  # a narrow interval needs a decimal to be seen
        return f"{iv.mean:.1%} [{iv.lo:.1%}, {iv.hi:.1%}]"
    return f"{share_text(iv.mean)} [{bound_text(iv.lo)}, {bound_text(iv.hi)}]"


def _expected(g, d, low, high, suffix):
    """'; 2.81x expected ...': the sampling-only ratio a B-example mean gives, from each
    config's own per-example loss spread and level: sqrt(B_high/B_low) x CV_low/CV_high
    (a relative spread is sigma_l / (sqrt(B) L)); "" when not a batch-size contrast."""
    cv = f"example_loss_cv{suffix}"
    if d != "batch_size" or cv not in g:
        return ""
    means = [mean_interval(g.loc[g[d] == v, cv], log=True).mean for v in (low, high)]
    if not all(math.isfinite(m) and m > 0 for m in means):
        return ""
    root = math.sqrt(float(high) / float(low))
    expected = root * means[0] / means[1]
    return (
        f"; {expected:.2f}x expected: sqrt({fmt(high)}/{fmt(low)}) times the ratio of the "
        f"per-example losses' coefficients of variation ({means[0]:.2f}/{means[1]:.2f}), "
        f"not {root:.2f}x, as the two sit at different weights"
    )


AGREES = 0.5  # the cross-check can tell when its interval is narrower than this share


def cross_check(g, d, values, suffix=""):
    """The subtraction (observed less sampling variance) as a cross-check of the probe's
    trajectory variance, per compared value: paired by run, the difference of the two
    trajectory shares of the observed variance (relative forms; a share, so every seed
    weighs alike) with its 95% t-interval. 'consistent' when the interval holds 0 and its
    half-width is under AGREES of the probe's share; 'too noisy to tell' when it is wider
    (sampling is most of the variance: the subtraction is a small difference of two
    large numbers); 'they disagree' when the interval excludes 0."""
    probe, spread = f"spread_trajectory_probe_rel{suffix}", f"spread_rel{suffix}"
    sampled = f"spread_sampling_rel{suffix}"
    if not {probe, spread, sampled} <= set(g.columns):
        return ""
    verdicts = []
    for v in values:
        r = g[g[d] == v]
        observed = pd.to_numeric(r[spread]) ** 2
        measured = pd.to_numeric(r[probe]) ** 2 / observed
        subtracted = 1 - pd.to_numeric(r[sampled]) ** 2 / observed
        iv = mean_interval(subtracted - measured)
        share = _share(r, suffix, g, d, v).split(" ")[0]
        at = f"{d}={fmt(v)}"
        if iv.n < 2 or not math.isfinite(iv.half):
            verdicts.append(f"{at} has one seed: no cross-check")
        elif iv.lo > 0 or iv.hi < 0:
            verdicts.append(
                f"they disagree at {at} (the trajectory's share of the variance by "
                f"subtraction less the probe's: {iv.mean:+.1%}, 95% CI [{iv.lo:+.1%}, "
                f"{iv.hi:+.1%}])"
            )
        elif iv.half <= AGREES * float(measured.mean()):
            verdicts.append(f"consistent at {at}")
        else:
            verdicts.append(f"too noisy to tell at {at}: sampling is {share} of the variance")
    return "the subtraction (observed less sampling), a cross-check: " + "; ".join(verdicts)


UNRELIABLE = 0.5  # the probe's correction is more than this share of its raw variance


def probe_too_small(analysis, study):
    """A line naming the configs whose trajectory probe is too small for its correction
    to be trusted: its own sampling noise is most of the raw variance it measured, so the
    corrected spread is a small difference of two noisy numbers."""
    if not any("probe" in m for m in study.metrics):
        return []
    done = analysis.comparable
    if "probe_correction_share" not in done:
        return []
    share = pd.to_numeric(done["probe_correction_share"], errors="coerce")
    by = share.groupby(done["config"], sort=False).mean().dropna()
    bad = by[by > UNRELIABLE]
    if not len(bad):
        return []
    shown = "; ".join(f"{c} ({v:.0%})" for c, v in bad.iloc[:3].items())
    return [
        f"The trajectory probe is too small to trust at {shown}: its own sampling noise is "
        f"more than {UNRELIABLE:.0%} of the variance it measured, so the corrected "
        "trajectory spread is mostly the correction. Use a larger trajectory_probe (its "
        "noise falls as 1/n) or all."
    ]


def unmeasured(analysis, study):
    """One line per study metric that some configs cannot measure: where, and why; and
    where the trajectory probe is too small to trust."""
    lines = probe_too_small(analysis, study)
    for metric in study.metrics:
        if metric not in analysis.comparable:
            continue
        done = analysis.comparable
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
