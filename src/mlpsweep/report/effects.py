"""The findings of a sweep: each compared dimension's contrasts (one per matched setting
of the others, never pooled over them) on each metric, the headline they lead with, and
interactions where they are large and clear. The estimates are contrast.py's."""

import itertools
import math
from statistics import NormalDist

import numpy as np
import pandas as pd

from mlpsweep.report.analysis import fmt, pairing_groups, tick
from mlpsweep.report.contrast import METHOD, contrast, extreme_values, is_ratio, tuned_runs
from mlpsweep.report.metrics import METRICS


def matched_groups(done, d, low, high, dims, nuisance, replicate):
    """(keys, groups): the runs of d=low and d=high, grouped so every other dimension is
    equal within a group (analysis.pairing_groups); never pooled over one."""
    pair = done[done[d].isin([low, high])]
    others = [o for o in dims if o != d and o not in nuisance and o != replicate]
    return pairing_groups(pair, d, others)


def contrasts(analysis, study, metric):
    """(the contrasts of each compared dimension's extremes, one per matched setting of
    the other dimensions; lines naming the dimensions no matched setting compares)."""
    done, nuisance = tuned_runs(analysis, study, metric)
    if done is None:
        return [], []
    found, unmatched = [], []
    ratio = is_ratio(analysis.comparable, metric)
    for d in study.compared(analysis.dims):
        extremes = extreme_values(done, d, metric)
        if extremes is None:
            continue
        low, high = extremes
        keys, groups = matched_groups(done, d, low, high, analysis.dims, nuisance, study.replicate)
        if not groups:
            pooled = [o for o in analysis.dims if o not in (d, study.replicate, *nuisance)]
            unmatched.append(
                f"{d}={fmt(low)} and {d}={fmt(high)} are never run with the other settings "
                f"equal: not compared (that would pool over {', '.join(pooled)})."
            )
        for key, g in groups:
            where = ", ".join(f"{o}={fmt(v)}" for o, v in zip(keys, key))
            note = tuned_note(g, d, low, high, nuisance, study)
            found.append(
                contrast(
                    g, d, low, high, metric, ", ".join(filter(None, [where, note])), ratio=ratio
                )
            )
    return found, unmatched


def tuned_note(g, d, low, high, nuisance, study):
    """Which nuisance values the contrast compares, and by what they were chosen:
    "best lr by test loss (the search's objective): 0.592 at batch_size=100, 0.0334 at
    batch_size=10", the values the headline and the figures name too."""
    if not nuisance:
        return ""
    chosen = []
    for n in nuisance:
        at = [", ".join(sorted({tick(v) for v in g.loc[g[d] == x, n]})) for x in (high, low)]
        chosen.append(f"{n} {at[0]} at {d}={fmt(high)}, {at[1]} at {d}={fmt(low)}")
    return f"best {', '.join(nuisance)} {study.select_note}: {'; '.join(chosen)}"


def headline(analysis, study):
    """(up to three sentences answering the study's question, the method footnote): the
    clearest, largest contrasts of its first metric."""
    found, _ = contrasts(analysis, study, study.metrics[0])
    if not found:
        return [], ""
    ranked = sorted(found, key=lambda c: (not c.conclusive, -c.size))
    return [c.sentence() for c in ranked[:3]], method(analysis, study)


def method(analysis, study):
    """The method footnote, naming the form of each of the page's metrics (is_ratio: a
    metric is a ratio on every line, or a difference on every line)."""
    metrics = list(dict.fromkeys([*study.metrics, "final_train_loss", "test_accuracy"]))
    metrics = [m for m in metrics if m in analysis.comparable]
    if analysis.stopped_at_target:  # findings make no comparison of these (see findings)
        metrics = [m for m in metrics if m not in FINAL]
    forms = {True: [], False: []}
    for m in metrics:
        forms[is_ratio(analysis.comparable, m)].append(METRICS.get(m, (m,))[0])
    said = "; ".join(
        f"{'ratios' if k else 'differences'} here: {', '.join(v)}" for k, v in forms.items() if v
    )
    return METHOD + (f" On this page ({said})." if said else "")


def interactions(analysis, study, metric, min_factor=1.5):
    """(size, sentence) for pairs of compared dimensions whose effects differ clearly and
    a lot: the effect of d1 (its extremes) at each extreme of d2, and the ratio of the two
    effects (difference, for accuracy) with a 95% interval, Bonferroni-adjusted over the
    pairs tested (the two effects' intervals combined, as independent estimates)."""
    done, nuisance = tuned_runs(analysis, study, metric)
    if done is None:
        return []
    pairs = [
        (d1, d2)
        for d1, d2 in itertools.combinations(study.compared(analysis.dims), 2)
        # at d2's extremes d1 is contrasted over every run there: only where no other
        # dimension is swept, or that contrast would pool over it
        if not [o for o in analysis.dims if o not in (d1, d2, study.replicate, *nuisance)]
    ]
    ratio = is_ratio(analysis.comparable, metric)
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
                at.append(contrast(sub, d1, *e1, metric, "", pairable=False, ratio=ratio))
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


def findings(analysis, study, limit=10):
    """(at most `limit` summary lines: each compared dimension's contrasts (one per
    matched setting of the others) on each of the study's metrics, clear ones first and
    largest first, then interactions only where they are large and clear; the full
    contrast table). A stop-at-target study makes no finding on final loss or accuracy:
    its runs stopped at different points (steps and examples to target are its answer)."""
    metrics = list(dict.fromkeys([*study.metrics, "final_train_loss", "test_accuracy"]))
    if _probed(analysis, metrics):  # the probe measures the trajectory; the subtraction
        # is its cross-check (the headline's verdict), not a second answer
        metrics = [m for m in metrics if not m.startswith("spread_trajectory_rel")]
        metrics = [m for m in metrics if m not in ("spread_trajectory", "spread_trajectory_ex")]
    if analysis.stopped_at_target:
        metrics = [m for m in metrics if m not in FINAL]
    found, unmatched, inter = [], [], []
    for metric in metrics:
        f, u = contrasts(analysis, study, metric)
        found += f
        unmatched += u
        inter += interactions(analysis, study, metric)
    ranked = sorted(found, key=lambda c: (not c.conclusive, -c.size))
    lines = [c.sentence() for c in ranked if c.conclusive]
    lines += [text for _, text in sorted(inter, key=lambda t: -t[0])][:3]
    lines += [c.sentence() for c in ranked if not c.conclusive]
    lines = list(dict.fromkeys(unmatched)) + lines
    return lines[:limit], pd.DataFrame([c.row() for c in found])


def _probed(analysis, metrics):
    """Whether a study metric is the probe's trajectory spread and some run measured it."""
    done = analysis.comparable
    return any(
        m.startswith("spread_trajectory_probe")
        and m in done
        and pd.to_numeric(done[m], errors="coerce").notna().any()
        for m in metrics
    )
