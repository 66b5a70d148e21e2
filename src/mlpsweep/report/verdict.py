"""The report's first line: the answer in plain words (about 30 at most), for a reader who
stops there. Computed from the same objects as the detailed headline below it (the
contrasts of contrast.py, the declared contrasts of declared.py, the search's Tuning,
the batch-scaling fit), so a change to how those are estimated or chosen flows into it.
Where the data give no answer (one seed, an interval that includes no change, nothing
compared), it says so and what would give one."""

import dataclasses
import math
import re

from mlpsweep.report.analysis import fmt
from mlpsweep.report.caveats import MOSTLY, READINGS, share_text
from mlpsweep.report.contrast import contrast, extreme_values, tuned_runs
from mlpsweep.report.declared import matching
from mlpsweep.report.effects import contrasts, matched_groups
from mlpsweep.report.intervals import sampling_shares
from mlpsweep.report.metrics import METRICS
from mlpsweep.report.study import DECOMPOSED

MORE_SEEDS = "rerun with seed=range(5) for an interval"
MAX_WORDS = 32  # a verdict line: read at a glance


def verdict(analysis, study, search=None, scaling=None, shares=None) -> str:
    """One plain sentence answering the study's question (see the module doc)."""
    if not len(analysis.finished):
        return "No answer: no run finished (see the runs table for their errors)."
    if search is not None:
        return _search(search)
    if scaling is not None:
        return _scaling(scaling)
    if study.contrasts and study.metrics[0] in DECOMPOSED:
        text = _oscillation(analysis, study)
        if text:
            return text
    compared = study.compared(analysis.dims)
    if not compared:
        return (
            "No answer: nothing was compared (one config). Sweep a knob with seeds, e.g. "
            "batch_size=10,100 seed=range(5)."
        )
    metric = study.metrics[0]
    found, unmatched = contrasts(analysis, study, metric)
    if not found:
        if unmatched:
            return "No answer: " + unmatched[0]
        return f"No answer: {_label(metric)} could not be measured in any compared pair."
    best = sorted(found, key=lambda c: (not c.conclusive, -c.size))[0]
    # a knob that clearly works one way at one setting and the other way at another: no
    # one-line "yes", and no share that averages the two away (a study that declares its
    # contrasts has named the setting it asks about)
    flips = [(a, b) for a in found for b in found if a.effect > b.effect and _opposed(a, b)]
    if flips and not study.contrasts:
        pair = max(flips, key=lambda p: p[0].size + p[1].size)
        return _depends(*sorted(pair, key=lambda c: -c.size))  # the larger first
    if shares and len(compared) >= 2 and not study.contrasts:
        line = _what_matters(shares.metrics[0], best)
        if line:
            return line
    line, noise = _contrast(best), _mostly_sampling(analysis, best)
    return line + noise if len((line + noise).split()) <= MAX_WORDS else line


def _mostly_sampling(analysis, c):
    """' It is mostly sampling noise (...)': for a minibatch loss's scatter compared
    across batch sizes, when most of its variance at both ends is the noise of a
    B-example average (the page's one rule: intervals.sampling_shares), so that a reader
    who stops at the first line does not take it for the weights' oscillation; "" else."""
    if c.metric not in READINGS or c.dim != "batch_size":
        return ""
    done, suffix = analysis.comparable, "_ex" if c.metric.endswith("_ex") else ""
    shares = [sampling_shares(done[done[c.dim] == b], suffix)[1].mean for b in (c.low, c.high)]
    if not all(math.isfinite(x) and x > MOSTLY for x in shares):
        return ""
    share = shares[0]
    amount = (
        f"all of its variance, estimated {share:.0%}," if share > 1
        else f"{share_text(share)} of its variance"
    )  # fmt: skip
    return (
        f" It is mostly sampling noise ({amount} at {c.dim}={fmt(c.low)}), not the "
        "weights' own oscillation."
    )


def _what_matters(importance, best):
    """A grid of several knobs: how much of the variance each explains against the seeds
    (what the study is for), then its largest clear effect where the line has room; ""
    where the shares do not fit a line."""
    fits = [
        line
        for line in ("What matters: " + importance.sentence(max_terms=k) for k in (3, 2, 1))
        if len(line.split()) <= MAX_WORDS
    ]
    if not fits:
        return ""  # too many terms for one line: the findings open with them
    line = fits[0]
    if best.conclusive:
        word, _ = _factor(best)
        more = (
            f" Largest effect: {_label(best.metric)} {word} at {best.dim}={fmt(best.high)} "
            f"vs {fmt(best.low)}."
        )
        if len((line + more).split()) <= MAX_WORDS:
            line += more
    return line


def _opposed(a, b):
    """Both clear, the same knob's same two values, effects in opposite directions."""
    if not (a.conclusive and b.conclusive) or (a.dim, a.low, a.high) != (b.dim, b.low, b.high):
        return False
    none = 1.0 if a.ratio else 0.0
    return (a.effect - none) * (b.effect - none) < 0


def _settings(where):
    """The knob=value parts of a contrast's `where` (its notes left out)."""
    return [p for p in where.split(", ") if re.fullmatch(r"[\w./+-]+=\S+", p)]


def _depends(a, b):
    """A contrast that flips with the other settings, named by what differs."""
    settings_a, settings_b = _settings(a.where), _settings(b.where)
    only = [p for p in settings_a if p not in settings_b] or settings_a
    other = [p for p in settings_b if p not in settings_a] or settings_b
    word, ci = _factor(a)
    return (
        f"It depends: {_label(a.metric)} is {word} at {a.dim}={fmt(a.high)} vs {fmt(a.low)} "
        f"where {', '.join(only)}{ci}, but {_factor(b)[0]} where {', '.join(other)}."
    )


def _label(metric):
    return METRICS.get(metric, (metric,))[0]


def _factor(c):
    """("2.4x lower", interval text) of a Contrast, high against low."""
    if c.ratio:
        lower = c.effect < 1
        f = 1 / c.effect if lower else c.effect
        lo, hi = sorted((1 / c.lo, 1 / c.hi) if lower else (c.lo, c.hi))
        ci = f" (95% CI {lo:.3g}-{hi:.3g}x)" if c.has_interval else ""
        return f"{f:.3g}x {'lower' if lower else 'higher'}", ci
    way = "lower" if c.effect < 0 else "higher"
    lo, hi = (-c.hi, -c.lo) if c.effect < 0 else (c.lo, c.hi)  # in the sentence's direction
    ci = f" (95% CI {lo:.2g} to {hi:.2g})" if c.has_interval else ""
    return f"{abs(c.effect):.2g} {way}", ci


def _contrast(c):
    at = f"{c.dim}={fmt(c.high)} vs {fmt(c.low)}"
    if not c.has_interval:
        return (
            f"No answer yet: one seed per setting, so no interval ({_label(c.metric)} "
            f"{_factor(c)[0]} at {at} may be noise); {MORE_SEEDS}."
        )
    if not c.conclusive:
        return (
            f"Can't tell: {_label(c.metric)} at {at} differs by less than its interval "
            "(inconclusive); more seeds would narrow it."
        )
    word, ci = _factor(c)
    return f"Yes: {_label(c.metric)} is {word} at {at}{ci}."


def _oscillation(analysis, study):
    """The first declared contrast of a trajectory-spread study: do the weights
    oscillate more, by about how much, and how much of the visible scatter is sampling
    noise; with a second declared contrast that clearly says otherwise (the seed
    listing's runs, where the larger batch also steps further), that one too, so that a
    reader who stops here does not take the first for the whole answer."""
    metric, d = study.metrics[0], study.compared(analysis.dims)[:1]
    if not d:
        return ""
    d, declared = d[0], study.contrasts[0]
    done, _ = tuned_runs(analysis, study, metric)
    if done is None:
        return ""
    found = _declared(analysis, study, done, d, declared, metric)
    if found is None:
        return (
            f"No answer {declared.name}: the weights' oscillation is not measurable in its "
            "runs (see Not measurable here)."
        )
    if not found:
        return ""
    c, runs, low, high = found
    # the headline's share, by the page's one rule (not the mean of per-run shares,
    # which can exceed 1 and read "100%" beside the headline's 96%)
    share = sampling_shares(runs.loc[runs[d] == low], "_ex" if metric.endswith("_ex") else "")
    noise = ""
    if math.isfinite(share[1].mean):
        noise = f"; {share_text(share[1].mean)} of {d}={fmt(low)}'s visible scatter"
        noise += " is sampling noise"
    who = f"{d}={fmt(low)}'s weights"
    if not c.has_interval:
        return (
            f"No answer yet {declared.name}: one seed per setting gives no interval; "
            f"{MORE_SEEDS}{noise}."
        )
    if not c.conclusive:
        return (
            f"Can't tell {declared.name} whether {who} oscillate more than at "
            f"{fmt(high)} (inconclusive); more seeds would tell{noise}."
        )
    word, ci = _oscillates(c)
    name = f"{declared.name[:1].upper()}{declared.name[1:]}"
    line = f"{name}, {who} oscillate {word} than at {fmt(high)}{ci}"
    other = _other_contrast(analysis, study, done, d, metric, (low, high), c)
    for text in (f"{line}{other}{noise}.", f"{line}{other}.", f"{line}{noise}."):
        if len(text.split()) <= MAX_WORDS:
            return text
    return f"{line}."


def _declared(analysis, study, done, d, declared, metric):
    """(Contrast, its runs, low, high) of a declared contrast; None where the metric is
    measurable in none of its runs; () where its runs give no one comparison."""
    runs = matching(done, declared.where)
    extremes = extreme_values(runs, d, metric)
    if extremes is None:
        return None
    low, high = extremes
    _, groups = matched_groups(runs, d, low, high, analysis.dims, [], study.replicate)
    if len(groups) != 1:
        return ()
    return contrast(groups[0][1], d, low, high, metric, ""), runs, low, high


def _other_contrast(analysis, study, done, d, metric, ends, first):
    """'; in <its name>, 3.05x less (95% CI ...)': the second declared contrast, when it
    compares the same two values and clearly goes the other way; "" else."""
    if len(study.contrasts) < 2:
        return ""
    declared = study.contrasts[1]
    found = _declared(analysis, study, done, d, declared, metric)
    if not found:
        return ""
    c, _, low, high = found
    if (low, high) != ends or not (c.has_interval and c.conclusive):
        return ""
    none = 1.0 if c.ratio else 0.0
    if (c.effect - none) * (first.effect - none) >= 0:
        return ""  # the same way: the first line's answer stands
    word, ci = _oscillates(c)
    return f"; in {declared.name}, {word}{ci}"


def _oscillates(c):
    """("3.43x more", interval text): how much more the low value's weights oscillate."""
    word, ci = _factor(_flipped(c))
    return word.replace("higher", "more").replace("lower", "less"), ci


def _flipped(c):
    """The Contrast read the other way round: low against high."""
    if c.ratio:
        return dataclasses.replace(c, effect=1 / c.effect, lo=1 / c.hi, hi=1 / c.lo)
    return dataclasses.replace(c, effect=-c.effect, lo=-c.hi, hi=-c.lo)


def _search(t):
    label = _label(t.objective)
    parts = [
        (f"{b.config} at {b.where}" if b.where else b.config) + f" ({b.value.mean:.3g})"
        for b in t.best
    ]
    one_seed = all(b.value.n < 2 for b in t.best)
    tail = "; one seed each: rerun the best with seed=range(5) for an interval" if one_seed else ""
    return f"Best by {label} ({'max' if t.maximise else 'min'}imised): {'; '.join(parts)}{tail}."


def _scaling(s):
    finite = math.isfinite(s.bcrit_lo) and math.isfinite(s.bcrit_hi)
    wide = not finite or s.bcrit_hi > 10 * max(s.bcrit_lo, 1e-12)
    if wide:
        return (
            f"No firm answer: the critical batch size is about {s.bcrit:.3g}, but its interval "
            f"is wider than 10x; more batch sizes and seeds would pin it down."
        )
    if s.doubts:  # the warnings' reader must not take the number home as settled
        return (
            f"Tentative: B_crit about {s.bcrit:.3g} (95% interval {s.bcrit_lo:.3g}-"
            f"{s.bcrit_hi:.3g}), not yet trustworthy: {' and '.join(s.doubts)}."
        )
    return (
        f"Batches beyond about {s.bcrit:.3g} (B_crit, 95% interval {s.bcrit_lo:.3g}-"
        f"{s.bcrit_hi:.3g}) barely cut the steps to {_target(s.target)}; below it, doubling "
        "the batch nearly halves them."
    )


def _target(target):
    """ "test_accuracy:0.85" as "test accuracy 0.85"."""
    metric, _, value = str(target).partition(":")
    return f"{_label(metric)} {value}".strip()
