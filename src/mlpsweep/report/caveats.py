"""What an opening that leads with a contrast must add so a reader who stops there is not
misled: with one seed per config, what one seed can and cannot show and the command that
gives an interval; when the contrast is an oscillation metric across batch sizes, how much
of the spread is the minibatch's sampling noise (the thermometer, not the temperature)."""

import math
import re

import pandas as pd

from mlpsweep.report.analysis import fmt
from mlpsweep.report.intervals import sampling_shares

# the raw readings of the minibatch loss (the split's own metrics answer for themselves)
READINGS = {
    f"{m}{r}{e}" for m in ("spread", "mean_abs_change") for r in ("", "_rel") for e in ("", "_ex")
}
MOSTLY = 0.5  # "mostly sampling noise" above this share of the variance


def seeds_per_config(analysis):
    done = analysis.finished
    return int(done.groupby("config").size().max()) if len(done) else 0


def interval_command(command, seeds=3):
    """`command` with a seed list added (replacing any seed=..., and without the sweep's
    own hydra.sweep.dir): the one to rerun for an interval over seeds."""
    # a seed list replaces any seed; a fresh folder, not the one this sweep wrote
    rest = re.sub(r"\s+(?:seed|hydra\.sweep\.dir)=\S+", "", command or "run.py -m").strip()
    rest = f"python {rest}" if rest.startswith("run.py") else rest
    return f"{rest} seed={','.join(str(s) for s in range(seeds))}"


def share_text(share):
    """A share as a percentage, with a decimal where rounding would say 100% or 0%; an
    estimate above 1 (one run's sampling variance can exceed its observed variance) as
    all of it, with the estimate."""
    if share > 1:
        return f"all (estimated {share:.0%})"
    return f"{share:.1%}" if share >= 0.995 or share < 0.005 else f"{share:.0%}"


def bound_text(bound):
    """An end of a share's interval: a percentage (above 100% where the estimate is:
    intervals.clipped keeps such an estimate's own interval)."""
    return f"{bound:.0%}" if bound > 1 else share_text(bound)


def one_seed(analysis, command):
    """The sentence for a one-seed sweep ("" with more seeds)."""
    if seeds_per_config(analysis) != 1:
        return ""
    return (
        "One seed per config: each number is a single run's reading, so this shows what "
        "these runs did, not whether the configs differ by more than one seed differs from "
        "another (no interval can be given). For 95% intervals over seeds, run "
        f"`{interval_command(command)}`."
    )


def sampling_split(analysis, study):
    """For an oscillation metric across batch sizes: each extreme batch size's share of
    the spread's variance that is sampling noise (a ratio of means over its runs), and
    what that leaves for the weights' own trajectory; "" otherwise."""
    metric = study.metrics[0] if study.metrics else ""
    compared = study.compared(analysis.dims)
    if metric not in READINGS or "batch_size" not in compared:
        return ""
    suffix = "_ex" if metric.endswith("_ex") else ""
    done = analysis.comparable
    sizes = sorted(pd.to_numeric(done["batch_size"], errors="coerce").dropna().unique())
    if len(sizes) < 2:
        return ""
    shares = []
    for b in (sizes[0], sizes[-1]):
        iv = sampling_shares(done[done["batch_size"] == b], suffix)[1]
        if not math.isfinite(iv.mean):
            return ""
        ci = f" [95% CI {bound_text(iv.lo)}, {bound_text(iv.hi)}]" if iv.n > 1 else ""
        shares.append((b, iv, ci))
    (b1, iv1, ci1), (b2, iv2, ci2) = shares
    mostly = iv1.mean > MOSTLY and iv2.mean > MOSTLY
    lead = f"The spread is {'mostly' if mostly else 'partly'} sampling noise"
    return (
        f"{lead}: at batch_size={fmt(b1)}, {share_text(iv1.mean)}{ci1} of its variance is "
        f"the noise of a {fmt(b1)}-example average, at batch_size={fmt(b2)} "
        f"{share_text(iv2.mean)}{ci2}; that noise scatters a minibatch loss even at fixed "
        "weights, so a smaller batch reads noisier whether or not its weights move more. "
        "The weights' own oscillation is the rest: `spread_trajectory_rel` (sampling "
        "subtracted) in the table, or measured with `trajectory_probe=500`, as "
        "`+sweep=batch_oscillation` does."
    )
