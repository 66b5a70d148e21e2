"""The critical batch size: McCandlish's model fitted to points it generated, and the
quick batch-scaling study end to end."""

import re

import numpy as np
import pandas as pd
import pytest
from helpers import multirun

from mlpsweep.report.analysis import Analysis
from mlpsweep.report.scaling import fit, scaling


def test_the_fit_recovers_smin_and_emin_from_the_model():
    smin, emin = 30.0, 4000.0
    batch = 2.0 ** np.arange(1, 12)
    steps = smin + emin / batch  # (S/Smin - 1)(E/Emin - 1) = 1 exactly
    assert np.allclose((steps / smin - 1) * (steps * batch / emin - 1), 1)
    s, e = fit(batch, steps)
    assert s == pytest.approx(smin, rel=1e-9) and e == pytest.approx(emin, rel=1e-9)


def synthetic_runs(smin, emin, seeds=4, noise=0.05):
    """Runs whose best lr reaches the target in model steps (+ noise); a worse lr twice
    as slow, and one that never reaches it."""
    rng = np.random.default_rng(0)
    rows = []
    for b in 2.0 ** np.arange(1, 11):
        for lr, slow in ((0.1, 1.0), (0.3, 2.0), (1.0, None)):
            for seed in range(seeds):
                steps = (smin + emin / b) * (slow or 1) * np.exp(rng.normal(0, noise))
                rows.append(
                    {
                        "run_id": f"{b}-{lr}-{seed}",
                        "batch_size": b,
                        "lr": lr,
                        "seed": seed,
                        "status": "ok",
                        "steps_to_target": None if slow is None else round(steps),
                        "target": "test_accuracy:0.9",
                    }
                )
    runs = pd.DataFrame(rows)
    return Analysis(runs, pd.DataFrame({"run_id": [], "step": []}), ["batch_size", "lr"], [])


def test_b_crit_and_its_interval_from_noisy_seeds():
    sc = scaling(synthetic_runs(smin=30.0, emin=3000.0))
    assert sc.bcrit == pytest.approx(100.0, rel=0.15)
    assert sc.bcrit_lo < 100.0 < sc.bcrit_hi and sc.bcrit_hi / sc.bcrit_lo < 2
    assert (sc.table["lr"] == 0.1).all()  # the best lr per batch size
    assert sc.b_simple is None and "B_crit = Emin/Smin = " in sc.sentence()


@pytest.mark.slow
def test_the_quick_batch_scaling_study_answers_with_b_crit(tmp_path, capsys):
    multirun(tmp_path / "s", "+sweep=batch_scaling_quick")
    html = (tmp_path / "s" / "report.html").read_text()
    block = re.search(r'<div class="headline">(.*?)</div>', html, re.S).group(1)
    assert block.startswith("<p>Critical batch size B_crit = Emin/Smin = ")
    assert "B_simple measured along training" in block
    assert "the best lr re-chosen in each of 1000 resamples" in block
    assert "edge of the lr grid at every batch size" in block  # lr 0.1 or 0.3 only
    assert "2 seeds per batch size: too few" in block
    assert "The study&#39;s own caveat: 4 batch sizes, 2 lrs and 2 seeds" in block
    assert (tmp_path / "s" / "report" / "batch_scaling.png").exists()
    lead = html.split('<div class="lead">')[1].split("<h2>Summary")[0]
    assert 'alt="Batch scaling"' in lead  # the answer's figure on the first screen
    findings = lead.split("<h2>Findings</h2>")[1]
    assert "Final train loss is" not in findings and "Test accuracy is" not in findings


def test_each_resample_chooses_its_best_lr_again():
    from mlpsweep.report.scaling import best_lr

    grid = pd.DataFrame({0: [10.0, 50.0], 1: [100.0, 50.0]}, index=[0.1, 0.3])
    assert best_lr(grid) == (0.3, 50.0)  # on average over both seeds
    assert best_lr(grid, np.array([0, 0])) == (0.1, 10.0)  # a resample of seed 0 twice
    grid.loc[0.3, 1] = np.nan  # lr 0.3 misses the target with seed 1
    assert best_lr(grid) == (0.1, 55.0) and best_lr(grid, np.array([1, 1])) == (0.1, 100.0)


def test_no_resample_is_dropped_and_few_seeds_or_a_grid_edge_are_warned_of():
    """Steps that barely saturate: some resamples fit no saturation (B_crit beyond the
    batch sizes run). They are counted, not dropped, so the interval reaches infinity."""
    sc = scaling(synthetic_runs(smin=0.5, emin=3000.0, seeds=2, noise=0.3))
    assert sc.beyond > 0 and sc.beyond + sc.below + sc.unfit <= sc.resamples
    assert sc.bcrit_hi == np.inf
    assert f"of them {sc.beyond} never saturate" in sc.sentence()
    assert any("2 seeds per batch size: too few" in w for w in sc.warnings)
    # the best lr (0.1) is the smallest of the grid (0.1, 0.3, 1.0) at every batch size
    assert any("edge of the lr grid at every batch size" in w for w in sc.warnings)
    clean = scaling(synthetic_runs(smin=30.0, emin=3000.0))
    assert clean.beyond == clean.below == clean.unfit == 0 and "every one fit" in clean.sentence()
