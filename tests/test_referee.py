"""What a referee would check in a report: degenerate settings named and left out, no
contrast pooled over a setting the sweep separates, and declared contrasts in order."""

import re

import numpy as np
import pandas as pd
import pytest
from helpers import page_text

from mlpsweep import records
from mlpsweep.core import TrainConfig
from mlpsweep.report import build_report
from mlpsweep.report.analysis import analyse
from mlpsweep.report.collect import collect


def write_curves(folder, configs, seeds=4, steps=300, study=None, sampling=None):
    """A sweep of synthetic runs: `configs` is [(config dict, level, sigma)], each run
    falling from 2.3 to `level` (or staying at 2.3 when level is None: it never learns)
    with noise of relative size sigma; with `sampling`, that share of the noise's
    variance is recorded as the minibatch's sampling variance (loss_sampling_var)."""
    rng = np.random.default_rng(7)
    planned = []
    step = np.arange(1, steps + 1)
    for config, level, sigma in configs:
        for seed in range(seeds):
            tc = TrainConfig(seed=seed, **config)
            rid = records.RunIdentity(tc, "mnist_5k", "x").run_id
            base = (
                np.full(steps, 2.3) if level is None else level + (2.3 - level) * np.exp(-step / 8)
            )
            loss = base * (1 + rng.normal(0, sigma, steps))
            acc = np.full(steps, np.nan)
            acc[-1] = 0.1 if level is None else 0.9
            history = {
                "step": step,
                "examples_seen": step * tc.batch_size,
                "train_loss": loss,
                "test_loss": np.where(np.isnan(acc), np.nan, base[-1]),
                "test_accuracy": acc,
            }
            if sampling is not None:
                history["loss_sampling_var"] = sampling * (base * sigma) ** 2
            overrides = tuple(f"{k}={v}" for k, v in config.items())
            metrics = records.RunMetrics(
                rid, "ok", list(overrides), steps_done=steps, final_train_loss=float(loss[-1]),
                test_accuracy=float(acc[-1]),
            )  # fmt: skip
            records.write_run(
                folder / "runs" / rid,
                records.RunRecord({**config, "seed": seed}, metrics, "", history),
            )
            planned.append(records.PlannedRun(rid, overrides))
    records.SweepManifest(runs=planned, command="test", study=study or {}).write(folder)
    return folder


def headline(html):
    block = re.search(r'<div class="headline">(.*?)</div>', html, re.S)
    return [plain(p) for p in re.findall(r"<p>(.*?)</p>", block.group(1))] if block else []


def findings(html):
    found = html.split("<h2>Findings</h2>")[1].split("<details>")[0]
    return [plain(li) for li in re.findall(r"<li>(.*?)</li>", found)]


def plain(fragment):
    """A page fragment's text: without the links to the glossary its first uses carry."""
    return re.sub(r"<[^>]+>", "", fragment)


ZIPPED = [  # the batch_oscillation shape: (reduction, lr) pairs, both batch sizes at each
    ({"grad_reduction": "mean", "lr": 0.1, "batch_size": 10}, 0.4, 0.3),
    ({"grad_reduction": "mean", "lr": 0.1, "batch_size": 100}, 0.3, 0.1),
    ({"grad_reduction": "mean", "lr": 1.0, "batch_size": 10}, None, 0.05),  # never learns
    ({"grad_reduction": "mean", "lr": 1.0, "batch_size": 100}, 0.05, 0.5),
    ({"grad_reduction": "sum", "lr": 0.01, "batch_size": 10}, 0.4, 0.3),
    ({"grad_reduction": "sum", "lr": 0.01, "batch_size": 100}, 0.1, 0.4),
]


@pytest.mark.slow  # over 1.4 s: kept out of the one-minute quick suite
def test_a_config_that_never_learns_is_named_and_never_compared(tmp_path):
    sweep = write_curves(tmp_path, ZIPPED, study={"compare": ["batch_size"]})
    a = analyse(collect(sweep, write=False), first=["batch_size"])
    stuck = "batch_size=10, grad_reduction=mean, lr=1"
    assert list(a.degenerate) == [stuck]
    assert "never learns: 4 never learned" in a.degenerate[stuck]
    html = build_report(sweep).read_text()
    assert re.search(r"<b>(<a [^>]+>)?Not compared(</a>)?</b>", html) and "never learns" in html
    text = " ".join(headline(html) + findings(html))
    assert "lr=1" not in text  # neither the headline nor a finding contrasts it
    table = pd.read_csv(sweep / "contrasts.csv")
    assert not table["where"].str.contains("lr=1").any()


@pytest.mark.slow  # over 1.4 s: kept out of the one-minute quick suite
def test_contrasts_are_matched_never_pooled_over_the_other_settings(tmp_path):
    sweep = write_curves(tmp_path, ZIPPED, study={"compare": ["batch_size"]})
    html = build_report(sweep).read_text()
    lines = headline(html) + findings(html)
    assert lines and not any("pooled" in line for line in lines)
    table = pd.read_csv(sweep / "contrasts.csv")
    assert set(table["where"].str.split(";").str[0]) == {
        "grad_reduction=mean, lr=0.1",
        "grad_reduction=sum, lr=0.01",
    }


@pytest.mark.slow  # over 1.4 s: kept out of the one-minute quick suite
def test_no_matched_comparison_is_said_not_made(tmp_path):
    """Each lr holds one batch size: comparing batch sizes would pool over lr."""
    configs = [
        ({"lr": 0.1, "batch_size": 10}, 0.4, 0.3),
        ({"lr": 0.3, "batch_size": 100}, 0.3, 0.1),
    ]
    sweep = write_curves(tmp_path, configs, study={"compare": ["batch_size"]})
    html = build_report(sweep).read_text()
    assert "are never run with the other settings equal: not compared" in page_text(html)
    assert not headline(html)


@pytest.mark.slow  # over 1.4 s: kept out of the one-minute quick suite
def test_declared_contrasts_lead_in_their_order_and_name_a_degenerate_one(tmp_path):
    study = {
        "compare": ["batch_size"],
        "metrics": ["spread_rel"],
        "contrasts": [
            {"name": "the listing", "where": {"grad_reduction": "sum", "lr": 0.01}},
            {"name": "at an equal step", "where": {"grad_reduction": "mean", "lr": 0.1}},
            {"name": "at the large step", "where": {"grad_reduction": "mean", "lr": 1.0}},
        ],
    }
    sweep = write_curves(tmp_path, ZIPPED, study=study)
    lines = headline(build_report(sweep).read_text())
    assert lines[0].startswith("The listing (grad_reduction=sum, lr=0.01): Relative loss spread")
    assert lines[1].startswith("At an equal step (grad_reduction=mean, lr=0.1): Relative")
    assert lines[2].startswith("At the large step (grad_reduction=mean, lr=1): not compared:")
    assert "never learns" in lines[2]


def test_figures_label_a_config_not_compared_and_draw_twins_once(tmp_path):
    """Catches a per-config figure that draws a config left out of the comparison as if
    it were compared (its tick and curve must say "(not compared)", its dots greyed),
    and one that draws a twin (the same update spelled twice) twice."""
    import matplotlib
    from matplotlib.collections import PathCollection

    from mlpsweep.report.figures.curves import curves
    from mlpsweep.report.figures.labels import NOT_COMPARED, config_label, drawn_configs
    from mlpsweep.report.figures.seed_dots import dots

    sweep = write_curves(tmp_path, ZIPPED, study={"compare": ["batch_size"]})
    a = analyse(collect(sweep, write=False), first=["batch_size"])
    stuck = "batch_size=10, grad_reduction=mean, lr=1"
    assert config_label(a, stuck).endswith("(not compared)")
    fig = dots(a, ["spread_rel"], "t")
    ax = fig.axes[0]
    ticks = [t.get_text() for t in ax.get_xticklabels()]
    k = next(i for i, t in enumerate(ticks) if t.endswith("(not compared)"))
    grey = matplotlib.colors.to_rgba(NOT_COMPARED)
    dots_drawn = [c for c in ax.collections if isinstance(c, PathCollection)]
    greyed = [c for c in dots_drawn if tuple(c.get_facecolor()[0][:3]) == grey[:3]]
    assert len(greyed) == 1 and round(greyed[0].get_offsets()[:, 0].mean()) == k
    legend = [t.get_text() for t in curves(a).axes[0].get_legend().get_texts()]
    assert sum("(not compared)" in t for t in legend) == 1
    # a twin: one config's runs copied under another's name
    name = "batch_size=10, grad_reduction=mean, lr=0.3"
    twin = a.runs[a.runs["config"] == a.configs[0]].assign(config=name)
    twin["run_id"] = "t" + twin["run_id"]
    hist = a.history[a.history["run_id"].isin(twin["run_id"].str[1:])].copy()
    hist["run_id"], hist["config"] = "t" + hist["run_id"], name
    both = type(a)(
        pd.concat([a.runs, twin]), pd.concat([a.history, hist]), a.dims, [*a.configs, name],
        a.degenerate,
    )  # fmt: skip
    assert name not in drawn_configs(both) and len(drawn_configs(both)) == len(a.configs)
    assert config_label(both, a.configs[0]).endswith("\n≡ 10, mean, 0.3")
    ticks = [t.get_text() for t in dots(both, ["spread_rel"], "t").axes[0].get_xticklabels()]
    assert len(ticks) == len(a.configs)


def test_a_diverged_run_is_counted_once_not_also_as_never_learned():
    from mlpsweep.report.analysis import degenerate_configs

    runs = pd.DataFrame(
        {
            "run_id": ["a", "b", "c"],
            "config": ["lr=1"] * 3,
            "status": ["diverged", "ok", "ok"],
        }
    )
    steps = np.arange(100)
    history = pd.concat(
        [
            pd.DataFrame({"run_id": "a", "step": steps, "train_loss": np.exp(steps)}),
            pd.DataFrame({"run_id": "b", "step": steps, "train_loss": 2.3}),  # stuck
            pd.DataFrame({"run_id": "c", "step": steps, "train_loss": 2.3 / (1 + steps)}),
        ]
    )
    why = degenerate_configs(runs, history)["lr=1"]
    assert why.startswith("diverges or never learns: 1 diverged and 1 never learned (")
    assert why.endswith("of its 3 runs")
