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
    assert (tmp_path / "s" / "report" / "batch_scaling.png").exists()
