"""What an opening adds so a reader who stops there is not misled: a one-seed sweep names
the command that gives an interval and how much of a batch-size spread is sampling noise;
a relative metric compared across different loss levels carries its absolute form; the
expected sampling ratio comes from each config's own per-example losses."""

import math
import re

import numpy as np
import pandas as pd
import pytest

from mlpsweep.report.caveats import interval_command, share_text
from mlpsweep.report.contrast import contrast
from mlpsweep.report.declared import _expected


@pytest.mark.slow  # over 1.4 s: kept out of the one-minute quick suite
def test_a_one_seed_batch_sweep_names_its_seed_list_and_the_sampling_share(tmp_path):
    """`python run.py -m batch_size=10,100` (shortened): the opening leads with the
    spread, then says it is mostly sampling noise with each batch size's share, then
    what one seed cannot show and the command with seed=0,1,2."""
    from helpers import multirun

    sweep = tmp_path / "sweep"
    multirun(sweep, "batch_size=10,100", "steps=200", "eval_every=0", "depth=1", "width=32")
    html = (sweep / "report.html").read_text()
    lead = re.search(r'<div class="headline">(.*?)</div>', html, re.S).group(1)
    # tags removed, not spaced: the glossary links terms inside sentences
    lead = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", lead)).replace("&#39;", "'")
    assert "is mostly sampling noise: at batch_size=10, " in lead
    share = re.search(r"at batch_size=10, (?:all \(estimated )?([0-9.]+)%\)? of its", lead)
    assert share and 50 < float(share.group(1)), lead
    assert "One seed per config" in lead
    assert "seed=0,1,2`" in lead  # in-process the command is pytest's (see the next test)


def test_the_interval_command_replaces_a_seed_and_says_python():
    assert interval_command("run.py -m batch_size=10,100") == (
        "python run.py -m batch_size=10,100 seed=0,1,2"
    )
    assert interval_command("run.py -m seed=4 lr=0.1").endswith("lr=0.1 seed=0,1,2")
    assert interval_command("run.py -m b=1 hydra.sweep.dir=/x") == "python run.py -m b=1 seed=0,1,2"
    assert share_text(0.9962) == "99.6%" and share_text(0.9) == "90%"
    assert share_text(1.066) == "all (estimated 107%)"


def level_runs(level_high, seeds=5):
    """Two batch sizes, paired seeds: the relative spread 2x higher at batch 100, the
    absolute spread alike, the loss level `level_high` times lower at batch 100."""
    rng = np.random.default_rng(0)
    rows = []
    for s in range(seeds):
        noise = rng.normal(0, 0.02, 2)
        for b, level, k in ((10, 1.0, 0), (100, 1.0 / level_high, 1)):
            spread = 0.1 * math.exp(noise[k])
            rows.append(
                {
                    "batch_size": b,
                    "seed": s,
                    "final_train_loss": level,
                    "spread": spread,
                    "spread_rel": spread / level / (level_high / 2 if b == 100 else 1),
                }
            )
    return pd.DataFrame(rows)


def test_a_relative_metric_across_loss_levels_shows_its_absolute_form():
    """Levels 4x apart (over the 2x threshold): the relative contrast says so and gives the
    absolute one, inconclusive here; levels 1.5x apart: no warning."""
    c = contrast(level_runs(4.0), "batch_size", 10, 100, "spread_rel", "")
    text = c.sentence()
    assert "Level-confounded: the final train loss differs 4.0x" in text
    assert "in absolute terms it is" in text and "at batch_size=100 than at batch_size=10" in text
    assert c.absolute is not None and not c.absolute.conclusive
    plain = contrast(level_runs(1.5), "batch_size", 10, 100, "spread_rel", "")
    assert plain.absolute is None and "Level-confounded" not in plain.sentence()


def test_the_expected_sampling_ratio_uses_each_configs_coefficient_of_variation():
    """sqrt(100/10) x CV_10 / CV_100: with CVs 2.0 and 2.5, 3.16 x 0.8 = 2.53x, named with
    why it is not 3.16x."""
    g = pd.DataFrame({"batch_size": [10] * 3 + [100] * 3, "example_loss_cv": [2.0] * 3 + [2.5] * 3})
    text = _expected(g, "batch_size", 10, 100, "")
    assert f"{math.sqrt(10) * 0.8:.2f}x expected" in text and "not 3.16x" in text
    assert _expected(g.rename(columns={"batch_size": "lr"}), "lr", 10, 100, "") == ""


def test_the_level_warning_states_the_levels_as_the_findings_do():
    """The levels' ratio is of geometric means, as the findings' final-train-loss ratio:
    one page, one number (arithmetic means said 2.0x beside the findings' 10x here)."""
    rows = [
        {"batch_size": b, "seed": s, "final_train_loss": level, "spread": 0.1, "spread_rel": r}
        for b, levels in ((10, (1.0, 1.0)), (100, (0.01, 1.0)))
        for s, (level, r) in enumerate(zip(levels, (0.1, 0.2)))
    ]
    g = pd.DataFrame(rows)
    c = contrast(g, "batch_size", 10, 100, "spread_rel", "")
    findings = contrast(g, "batch_size", 10, 100, "final_train_loss", "")
    assert c.level_ratio == pytest.approx(1 / findings.effect) == pytest.approx(10.0)
    assert "the final train loss differs 10.0x" in c.sentence()
