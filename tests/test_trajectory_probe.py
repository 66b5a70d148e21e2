"""The trajectory probe's correction for its own sampling noise (core/trajectory.py), the
sampling share without a cap, and the subtraction as the probe's cross-check: each
against the exact quantity (the whole set's, a known share), with a tolerance smaller
than the effect it checks and the case that fails without the fix."""

import math

import numpy as np
import pandas as pd
import pytest

from mlpsweep.core import TrainConfig, train
from mlpsweep.core.train import Trainer, normalizer
from mlpsweep.core.trajectory import trajectory_sampling_var
from mlpsweep.core.window import trajectory_steps
from mlpsweep.report.declared import cross_check
from mlpsweep.report.intervals import ratio_of_means
from mlpsweep.report.oscillation import oscillation


def probe_spreads(losses, measured, steps, every, subset, total):
    """(corrected, raw) relative trajectory spread of the probe `subset` (columns of the
    per-example `losses` at the 0-based steps `measured`), as a run records and the report
    reads it."""
    rows = losses[:, subset]
    t = np.full(steps, np.nan)
    t[measured] = rows.mean(axis=1)
    v = np.full(steps, np.nan)
    v[measured] = trajectory_sampling_var(rows, measured, steps, every, total)
    m = oscillation(np.linspace(1.0, 0.9, steps), trajectory=t, probe_var=v)
    return m["spread_trajectory_probe_rel"], m["spread_trajectory_probe_rel_raw"]


def population(rng, total=2000, steps=400, every=1):
    """Per-example losses of a synthetic population: a shared trajectory each example
    follows with its own gain (so a subset's mean moves more or less than the whole
    set's), plus each example's own jitter."""
    measured = np.array(trajectory_steps(steps, every)) - 1
    shared = 0.05 * rng.standard_normal(len(measured))
    gain = rng.lognormal(0, 0.8, total)
    own = 0.3 * rng.standard_normal((len(measured), total))
    losses = 1.0 + np.outer(shared, gain) + own + 0.3 * rng.random(total)
    return losses, measured


def test_the_correction_is_unbiased_for_the_whole_sets_spread_and_the_raw_one_is_not():
    """Over 400 random 100-example subsets of a 2000-example population, the mean
    corrected variance is within 2% of the whole set's, while the raw one overstates it
    by ~25%: a 2% tolerance, under the 25% bias it removes (what it would catch: a
    correction left out, scaled wrong (1/n vs (1 - n/N)/n) or centred wrongly)."""
    rng = np.random.default_rng(0)
    losses, measured = population(rng)
    total = losses.shape[1]
    whole, _ = probe_spreads(losses, measured, 400, 1, np.arange(total), total)
    corrected, raw = [], []
    for _ in range(400):
        c, r = probe_spreads(losses, measured, 400, 1, rng.choice(total, 100, replace=False), total)
        corrected.append(c**2)
        raw.append(r**2)
    assert np.mean(corrected) == pytest.approx(whole**2, rel=0.02)
    assert np.mean(raw) > 1.15 * whole**2  # the bias the correction removes
    # the whole population as its own probe: nothing to remove
    assert trajectory_sampling_var(losses, measured, 400, 1, total).max() == 0.0


def test_the_probe_records_its_sampling_variance_and_reads_the_weights_only(tiny_dataset):
    base = TrainConfig(depth=1, width=16, steps=120, batch_size=8, eval_every=0, lr=0.5)
    off = train(base, tiny_dataset)
    on = train(base.replace(trajectory_probe=64), tiny_dataset)
    assert np.array_equal(off.train_loss, on.train_loss)
    at = np.isfinite(on.trajectory_loss)
    assert np.array_equal(at, np.isfinite(on.trajectory_sampling_var))
    assert (on.trajectory_sampling_var[at] > 0).all()
    whole = train(base.replace(trajectory_probe="all"), tiny_dataset)
    assert (whole.trajectory_sampling_var[at] == 0).all()  # the whole set: nothing to remove


def whole_set_losses(cfg, dataset):
    """The per-example losses of every train example at each step the probe measures
    (before that step's update): the exact quantity a subset probe estimates."""
    trainer = Trainer(cfg, dataset)
    x, y = normalizer(trainer.dtype)(dataset.x_train), dataset.y_train
    measured = set(trajectory_steps(cfg.steps, cfg.trajectory_every))
    rows, loss = [], []
    for step in range(1, cfg.steps + 1):
        if step in measured:
            rows.append(trainer.net.example_losses(x, y, eps=cfg.loss_eps))
        loss.append(trainer.step())
    return np.array(rows), np.array(sorted(measured)) - 1


@pytest.mark.slow
@pytest.mark.parametrize("batch", [10, 100])
def test_the_corrected_500_example_probe_matches_the_whole_train_set(mnist_5k, batch):
    """batch_oscillation's equal-step runs (mean, lr 0.1) on the real data: the whole
    train set's trajectory spread at each probed step, and that of 200 random 500-example
    subsets. The corrected estimates' mean is within 3% of the whole set's at both batch
    sizes; the raw one's overstates it (at batch 100 by more than 3%). What it would
    catch: a correction that leaves the bias (~+4% at batch 10, ~+16% at batch 100) or
    overcorrects."""
    cfg = TrainConfig(
        dtype="float64",
        init=0.01,
        loss_eps=1e-7,
        lr=0.1,
        batch_size=batch,
        eval_every=0,
        trajectory_every=4,  # the correction holds at any thinning; 4 keeps the test short
    )
    losses, measured = whole_set_losses(cfg, mnist_5k)
    total = losses.shape[1]
    whole, _ = probe_spreads(losses, measured, cfg.steps, 4, np.arange(total), total)
    rng = np.random.default_rng(batch)
    pairs = np.array(
        [
            probe_spreads(
                losses, measured, cfg.steps, 4, rng.choice(total, 500, replace=False), total
            )
            for _ in range(200)
        ]
    )
    corrected, raw = pairs.mean(axis=0)
    se = pairs[:, 1].std() / math.sqrt(len(pairs))
    assert corrected == pytest.approx(whole, rel=0.03), (corrected, raw, whole)
    assert raw > whole + 2 * se  # the bias is there to remove
    if batch == 100:
        assert raw > 1.03 * whole


def synthetic_runs(share, seeds=8, steps=400, rng=None):
    """Histories whose sampling share of the spread's variance is `share`: a trajectory
    of a known spread plus independent noise of the variance that makes it so."""
    rng = rng or np.random.default_rng(0)
    out = []
    for _ in range(seeds):
        traj = 0.01 * rng.standard_normal(steps)
        v = 0.01**2 * share / (1 - share)
        loss = 2.0 + traj + rng.normal(0, math.sqrt(v), steps)
        out.append(oscillation(loss, sampling_var=np.full(steps, v)))
    return pd.DataFrame(out)


def test_the_sampling_share_has_no_cap_artefact():
    """A known share of 0.98 over 8 short runs, each estimate noisy (some above 1): the
    ratio of means is within 1.5% of 0.98 and its interval holds it; the old estimator
    (each run capped at 1, then averaged) is biased low by more than the tolerance. What it
    would catch: a cap, or a mean of per-run ratios dominated by one run."""
    rng = np.random.default_rng(3)
    hits, capped, above = 0, [], 0
    for _ in range(40):
        runs = synthetic_runs(0.98, rng=rng)
        iv = ratio_of_means(runs["sampling_var"], runs["spread_var"])
        hits += iv.lo <= 0.98 <= iv.hi
        capped.append(np.minimum(runs["sampling_share"], 1.0).mean())
        above += int((runs["sampling_share"] > 1).sum())
    assert above > 0  # uncapped: a run's estimate may exceed 1
    assert hits >= 34  # a 95% interval: 38 of 40 expected, 34 allows for chance
    runs = synthetic_runs(0.98, seeds=400, rng=rng)
    assert ratio_of_means(runs["sampling_var"], runs["spread_var"]).mean == pytest.approx(
        0.98, abs=0.015
    )
    assert np.mean(capped) < 0.98 - 0.015  # the artefact the ratio of means removes


def cross_runs(probe_var, subtracted_var, noise, seeds=5, rng=None):
    rng = rng or np.random.default_rng(0)
    spread2 = 1.0
    rows = []
    for b in (10, 100):
        for s in range(seeds):
            sub = subtracted_var + rng.normal(0, noise)
            rows.append(
                {
                    "batch_size": b,
                    "seed": s,
                    "spread_rel": math.sqrt(spread2),
                    "spread_sampling_rel": math.sqrt(spread2 - sub),
                    "spread_trajectory_probe_rel": math.sqrt(probe_var),
                    "sampling_var": spread2 - sub,
                    "spread_var": spread2,
                }
            )
    return pd.DataFrame(rows)


def test_the_cross_check_says_consistent_too_noisy_or_disagree():
    """Probe variance 0.1: a subtraction that scatters 0.01 around it is consistent; one
    that scatters 0.2 cannot tell (sampling ~90% of the variance); one at 0.2 (twice the
    probe's) disagrees. The verdict's tolerance (half the probe's variance) is stated."""
    ok = cross_check(cross_runs(0.1, 0.1, 0.01), "batch_size", (10, 100))
    assert ok.count("consistent at") == 2
    noisy = cross_check(cross_runs(0.1, 0.1, 0.2), "batch_size", (10, 100))
    assert "too noisy to tell at batch_size=10: sampling is" in noisy
    bad = cross_check(cross_runs(0.1, 0.2, 0.01), "batch_size", (10, 100))
    assert "they disagree at batch_size=10" in bad
