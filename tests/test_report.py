import base64
import io
import re
from html import unescape

import numpy as np
import pandas as pd
import pytest
from helpers import run_cli, sweep_dirs
from PIL import Image

from mlpsweep import records
from mlpsweep.bench.report import synthetic_sweep
from mlpsweep.core import TrainConfig
from mlpsweep.records.run import read_config
from mlpsweep.report import build_report
from mlpsweep.report.analysis import analyse
from mlpsweep.report.collect import collect
from mlpsweep.report.intervals import mean_band, t95
from mlpsweep.report.oscillation import oscillation


def images(html):
    return [base64.b64decode(m) for m in re.findall(r'src="data:image/png;base64,([^"]+)"', html)]


@pytest.fixture(scope="module")
def mixed_sweep(tmp_path_factory):
    """A real sweep with a finished, a diverged and a failed run."""
    cwd = tmp_path_factory.mktemp("mixed")
    p = run_cli(
        cwd,
        "-m",
        "lr=0.1,1e30,0.1",
        "width=16,16,100000000",
        "hydra.sweeper.zip=[[lr,width]]",
        "depth=1",
        "steps=40",
        "eval_every=10",
        "max_memory=1000T",  # past the memory check: the job itself fails (MemoryError)
    )
    assert p.returncode == 1, p.stderr  # one job failed: the exit status says so
    return sweep_dirs(cwd)[0]


@pytest.mark.slow
def test_collection_keeps_every_run_with_its_status(mixed_sweep):
    runs = pd.read_parquet(mixed_sweep / "runs.parquet")
    assert sorted(runs["status"]) == ["diverged", "failed", "ok"]
    failed = runs[runs["status"] == "failed"].iloc[0]
    assert "MemoryError" in failed["error"] and failed["width"] == 100000000
    assert {
        "lr",
        "width",
        "optimizer.name",
        "dataset.name",
        "data_fingerprint",
        "steps_per_s",
        "final_train_loss",
        "best_test_accuracy",
    } <= set(runs.columns)
    history = pd.read_parquet(mixed_sweep / "history.parquet")
    assert set(history["run_id"]) == set(runs.loc[runs["status"] != "failed", "run_id"])
    diverged = runs[runs["status"] == "diverged"].iloc[0]
    assert (history["run_id"] == diverged["run_id"]).sum() == diverged["steps_done"] < 40


@pytest.mark.slow
def test_report_marks_problem_runs_and_has_its_figures(mixed_sweep):
    html = (mixed_sweep / "report.html").read_text()
    assert "Not all runs finished" in html and "diverged" in html and "MemoryError" in html
    pngs = images(html)
    assert len(pngs) >= 5
    for data in pngs:  # each a decodable image with something drawn on it
        pixels = np.asarray(Image.open(io.BytesIO(data)).convert("L"), dtype=float)
        assert min(pixels.shape) > 100 and pixels.std() > 1
    assert "python run.py lr=0.1 width=16" in html  # each run's reproducing command


def test_incomplete_runs_are_listed_not_dropped(tmp_path):
    sweep = synthetic_sweep(tmp_path / "s", 10, 100)
    victim = next((sweep / "runs").iterdir())
    (victim / "metrics.json").unlink()
    build_report(sweep)
    runs = pd.read_parquet(sweep / "runs.parquet")
    assert len(runs) == 10 and (runs["status"] == "incomplete").sum() == 1


def test_oscillation_metrics_on_known_curves():
    rng = np.random.default_rng(0)
    noise = 1 + rng.normal(0, 0.1, 4000)
    m = oscillation(noise)
    assert m["spread"] == pytest.approx(0.1, rel=0.05)
    assert m["mean_abs_change"] == pytest.approx(0.1 * np.sqrt(2) * np.sqrt(2 / np.pi), rel=0.05)
    smooth = np.exp(-np.arange(1000) / 300)
    assert oscillation(smooth)["spread"] < 1e-3 and oscillation(smooth)["spikes"] == 0
    spiky = smooth + rng.normal(0, 1e-3, 1000)
    spiky[[600, 650, 700, 750, 800, 850, 900]] += 1.0
    assert oscillation(spiky)["spikes"] == 7
    alternating = 0.5 + 0.2 * (-1) ** np.arange(1000)
    assert oscillation(alternating)["mean_abs_change"] == pytest.approx(0.4)


def test_t_band_matches_the_formula():
    df = pd.DataFrame({"cfg": "a", "step": [1] * 5, "y": [1.0, 2.0, 3.0, 4.0, 5.0]})
    band = mean_band(df, ["cfg"], "step", "y").iloc[0]
    half = 2.776 * np.std([1, 2, 3, 4, 5], ddof=1) / np.sqrt(5)
    assert band["mean"] == 3.0 and band["hi"] - 3.0 == pytest.approx(half, rel=1e-3)
    assert np.isnan(t95(1))


@pytest.mark.parametrize("n", [2, 5, 31, 32, 100])
def test_intervals_use_students_t_from_scipy(n):
    """The hand-written table this replaced jumped from 2.042 to 1.96 above 30 degrees of
    freedom: intervals ~4% too narrow at n = 32."""
    from scipy import stats

    from mlpsweep.report.intervals import mean_interval

    assert t95(n) == pytest.approx(stats.t.ppf(0.975, n - 1), rel=1e-12)
    values = np.random.default_rng(n).lognormal(0, 0.5, n)
    iv = mean_interval(values)
    sem = stats.sem(values)
    lo, hi = stats.t.interval(0.95, n - 1, loc=values.mean(), scale=sem)
    assert (iv.mean, iv.lo, iv.hi) == pytest.approx((values.mean(), lo, hi), rel=1e-12)
    geo = mean_interval(values, log=True)
    lo, hi = stats.t.interval(
        0.95, n - 1, loc=np.log(values).mean(), scale=stats.sem(np.log(values))
    )
    assert (geo.lo, geo.hi) == pytest.approx((np.exp(lo), np.exp(hi)), rel=1e-12)
    clipped = mean_interval(values - values.mean() + 0.01, valid=(0.0, None))
    assert clipped.lo == 0.0  # a spread's interval stops at 0


def write_runs(folder, configs, seeds=5, steps=400):
    """A sweep whose runs have a known loss spread per config: each learns (falls from
    2.3 within its first ~20 steps, as a real run does), then scatters around 0.5."""
    rng = np.random.default_rng(1)
    runs = []
    for config, sigma in configs:
        for seed in range(seeds):
            tc = TrainConfig(seed=seed, **config)
            rid = records.RunIdentity(tc, "mnist_5k", "x").run_id
            step = np.arange(1, steps + 1)
            loss = 0.5 + 1.8 * np.exp(-(step - 1) / 4) + rng.normal(0, sigma, steps)
            test = np.full(steps, np.nan)
            test[-1] = 0.5
            history = {
                "step": step,
                "examples_seen": step * tc.batch_size,
                "train_loss": loss,
                "test_loss": test,
                "test_accuracy": np.where(np.isnan(test), np.nan, 0.9),
            }
            overrides = tuple(f"{k}={v}" for k, v in config.items())
            metrics = records.RunMetrics(
                rid, "ok", list(overrides), steps_done=steps, final_train_loss=float(loss[-1])
            )
            record = records.RunRecord({**config, "seed": seed}, metrics, "", history)
            records.write_run(folder / "runs" / rid, record)
            runs.append(records.PlannedRun(rid, overrides))
    records.SweepManifest(runs=runs, command="test").write(folder)
    return folder


def brute_spread_rel(loss):
    """The relative spread of oscillation.oscillation, by an explicit loop: the std over the
    last half of loss / (its centred moving average) - 1."""
    n, w = len(loss), max(5, len(loss) // 20)
    ratios = []
    for t in range(n // 2, n):
        lo, hi = max(0, t - w // 2), min(n, t + w // 2 + 1)
        avg = sum(loss[lo:hi]) / (hi - lo)
        ratios.append((loss[t] - avg) / avg)
    mean = sum(ratios) / len(ratios)
    return (sum((r - mean) ** 2 for r in ratios) / len(ratios)) ** 0.5


def headline_lines(html):
    block = re.search(r'<div class="headline">(.*?)</div>', html, re.S).group(1)
    return [re.sub(r"<[^>]+>", "", p) for p in re.findall(r"<p>(.*?)</p>", block)]


@pytest.mark.slow  # over 1.4 s: kept out of the one-minute quick suite
def test_headline_effect_and_interval_recomputed_independently(tmp_path):
    sweep = write_runs(tmp_path, [({"batch_size": 10}, 0.3), ({"batch_size": 100}, 0.06)])
    html = build_report(sweep).read_text()
    [line] = headline_lines(html)
    # by hand: per-seed relative spreads, their log-ratios, a paired t-interval (t(4) = 2.776)
    by_config = {}
    for planned in records.SweepManifest.read(sweep).runs:
        run = records.run_dir(sweep, planned.run_id)
        seed = read_config(run)["seed"]
        loss = list(records.read_history(run)["train_loss"])
        by_config.setdefault(planned.overrides, {})[seed] = brute_spread_rel(loss)
    low, high = by_config[("batch_size=10",)], by_config[("batch_size=100",)]
    logs = [np.log(high[s] / low[s]) for s in sorted(low)]
    mean, sd = np.mean(logs), np.std(logs, ddof=1)
    half = 2.776 * sd / np.sqrt(5)
    factor, ci = np.exp(-mean), sorted(np.exp([-(mean - half), -(mean + half)]))
    assert line.startswith(
        f"Relative loss spread is {factor:.2f}x lower at batch_size=100 than at batch_size=10"
    )
    assert f"ratio 95% CI [{ci[0]:.3g}, {ci[1]:.3g}], 5 seeds each, paired by seed" in line
    assert "Inconclusive" not in line
    assert (sweep / "contrasts.csv").exists() and (sweep / "summary.csv").exists()


def test_a_null_effect_is_called_inconclusive(tmp_path):
    from mlpsweep.report.effects import headline
    from mlpsweep.report.study import Study

    sweep = write_runs(tmp_path, [({"batch_size": 10}, 0.1), ({"batch_size": 100}, 0.1)])
    [line], _ = headline(analyse(collect(sweep, write=False)), Study())  # the text only
    assert "Inconclusive: the interval includes no change." in line


@pytest.mark.slow  # over 1.4 s: kept out of the one-minute quick suite
def test_one_seed_says_so_and_prints_no_nan(tmp_path):
    sweep = write_runs(tmp_path, [({"batch_size": 10}, 0.3), ({"batch_size": 100}, 0.06)], seeds=1)
    html = build_report(sweep).read_text()
    line, *notes = headline_lines(html)
    assert "1 seed each, so no interval and no effect claimed" in line
    assert "One seed per config" in notes[-1] and "seed=0,1,2" in notes[-1]  # how to get one
    text = re.sub(r"<[^>]+>|data:image/png;base64,[^\"]+", " ", html)
    assert not re.search(r"\bnan\b", text, re.IGNORECASE)


@pytest.mark.slow  # over 1.4 s: kept out of the one-minute quick suite
def test_figures_are_written_as_png_and_svg_files(tmp_path):
    import xml.etree.ElementTree as ET

    sweep = write_runs(tmp_path, [({"batch_size": 10}, 0.3), ({"batch_size": 100}, 0.06)])
    html = build_report(sweep).read_text()
    pngs = sorted((sweep / "report").glob("*.png"))
    names = [p.stem for p in pngs]
    assert "train_loss_per_step" in names and names == sorted(
        p.stem for p in (sweep / "report").glob("*.svg")
    )
    for p in pngs:
        data = p.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n"
        with Image.open(p) as im:  # decodes, at 150 dpi (not the screen's 90)
            im.load()
            assert round(im.info["dpi"][0]) == 150 and im.width >= 150 * 3
        assert ET.parse(p.with_suffix(".svg")).getroot().tag.endswith("svg")
        assert f'href="report/{p.stem}.svg"' in html


@pytest.mark.slow  # over 1.4 s: kept out of the one-minute quick suite
def test_sum_reduction_confound_is_spelled_out(tmp_path):
    sweep = write_runs(
        tmp_path,
        [
            ({"batch_size": 10, "grad_reduction": "sum", "lr": 0.01}, 0.3),
            ({"batch_size": 100, "grad_reduction": "sum", "lr": 0.01}, 0.1),
            ({"batch_size": 10, "grad_reduction": "mean", "lr": 1.0}, 0.3),
            ({"batch_size": 100, "grad_reduction": "mean", "lr": 1.0}, 0.1),
        ],
    )
    html = build_report(sweep).read_text()
    assert "effective learning rate is lr x batch_size" in html
    # the contrast of batch sizes under sum names the step size that differs with it, and
    # is never pooled with the contrast under mean
    assert "grad_reduction=sum, lr=0.01; effective lr 1 vs 0.1: the step size differs too" in html
    assert "(pooled over" not in html
    runs = pd.read_parquet(sweep / "runs.parquet")
    assert sorted(runs["effective_lr"].unique()) == [0.1, 1.0]


@pytest.mark.slow  # over 1.4 s: kept out of the one-minute quick suite
def test_config_strings_are_html_escaped(tmp_path):
    evil = "<script>alert(1)</script>"
    sweep = write_runs(tmp_path, [({"batch_size": 10}, 0.1), ({"batch_size": 20}, 0.1)])
    meta = records.SweepManifest.read(sweep)
    meta.command = f"run.py -m activation={evil}"
    first = meta.runs[0]
    meta.runs[0] = records.PlannedRun(first.run_id, (*first.overrides, f"dataset.data_dir={evil}"))
    meta.write(sweep)
    run = sweep / "runs" / first.run_id
    (run / "config.yaml").write_text(f"batch_size: 10\nseed: 0\nnote: '{evil}'\n")
    html = build_report(sweep).read_text()
    scripts = re.findall(r"<script[^>]*>(.*?)</script>", html, re.S)
    assert not any("alert(1)" in s for s in scripts)  # the page's own scripts only
    assert evil not in html and evil in unescape(html)  # shown, as text


@pytest.mark.slow  # two reports and a comparison
def test_cli_report_compare_and_runs(tmp_path, capsys):
    from mlpsweep.cli import main  # the `mlpsweep` command, in this process

    a = synthetic_sweep(tmp_path / "a", 10, 100)
    b = synthetic_sweep(tmp_path / "b_$x^$", 10, 100)  # a label that is not mathtext
    assert main(["report", str(a)]) == 0 and (a / "report.html").exists()
    out = tmp_path / "cmp"
    assert main(["compare", str(a), str(b), "--out", str(out)]) == 0
    assert "sweep=" in (out / "comparison.html").read_text()
    capsys.readouterr()
    assert main(["runs", str(a)]) == 0
    printed = capsys.readouterr().out
    assert "batch_size=10" in printed and "test accuracy" in printed
    assert main(["runs", str(tmp_path)]) == 2
    assert "not a sweep directory" in capsys.readouterr().err


def test_provenance_names_every_commit_and_arithmetic_of_a_mixed_sweep():
    from mlpsweep.report.provenance_section import arithmetic, commits

    runs = pd.DataFrame(
        {"code": ["a" * 40, "b" * 40, "a" * 40], "arithmetic": ["fused", "layers", "fused"]}
    )
    sweep = records.SweepManifest(runs=[], code="a" * 40)
    assert (
        commits(sweep, runs) == f"{'a' * 40}; some runs were trained by another commit: {'b' * 12}"
    )
    assert commits(sweep, runs.iloc[[0, 2]]) == "a" * 40
    assert arithmetic(runs) == "fused float32 step: 2 runs, layer path: 1 run"
    assert arithmetic(pd.DataFrame({"x": [1]})) == "?"


def test_provenance_names_the_blas_kernels_and_flags_a_mix():
    from mlpsweep.report.provenance_section import blas

    runs = pd.DataFrame(
        {
            "blas": ["openblas 0.3.31 (Haswell)", "openblas 0.3.31 (SkylakeX)", None],
            "blas_threads": [1, 1, None],
        }
    )
    text = blas(runs)
    assert "openblas 0.3.31 (Haswell), 1 BLAS thread(s): 1 run" in text
    assert "openblas 0.3.31 (SkylakeX), 1 BLAS thread(s): 1 run" in text
    assert "more than one BLAS kernel" in text
    one = blas(runs.iloc[[0, 0]])
    assert one == "openblas 0.3.31 (Haswell), 1 BLAS thread(s): 2 runs"
    assert blas(pd.DataFrame({"x": [1]})) == "?"


@pytest.mark.slow  # over 1.4 s: kept out of the one-minute quick suite
def test_reproduce_commands_survive_values_with_spaces(tmp_path):
    import dataclasses
    import shlex

    from mlpsweep.records.run import read_config

    sweep = write_runs(tmp_path, [({"batch_size": 10}, 0.1)], seeds=1)
    meta = records.SweepManifest.read(sweep)
    first = meta.runs[0]
    odd = ("sweep_name='my study'", "dataset.data_dir=/data/it's here", *first.overrides)
    run_dir = records.run_dir(sweep, first.run_id)
    metrics, history = records.read_metrics(run_dir), records.read_history(run_dir)
    record = records.RunRecord(
        read_config(run_dir),
        dataclasses.replace(metrics, overrides=list(odd), digest=None),
        history={c: history[c].to_numpy() for c in history},
    )
    records.write_run(run_dir, record)  # the run's own record says how it was made
    meta.runs[0] = records.PlannedRun(first.run_id, odd)
    meta.write(sweep)
    runs = collect(sweep, write=False).runs
    assert shlex.split(runs.loc[0, "reproduce"]) == ["python", "run.py", *odd]
    page = unescape(build_report(sweep).read_text())
    assert shlex.join(["python", "run.py", *odd]) in page  # the command as a shell reads it


def test_a_study_declaration_is_checked_and_kept_with_the_sweep(tmp_path, capsys):
    from helpers import multirun

    study = "study={question: 'Is 100 calmer?',compare: [batch_size],metrics: [spread_rel]}"
    multirun(
        tmp_path / "ok", "steps=30", "batch_size=10,100", "eval_every=0", study, "report=false"
    )
    kept = records.SweepManifest.read(tmp_path / "ok").study
    assert kept == {
        "question": "Is 100 calmer?",
        "compare": ["batch_size"],
        "metrics": ["spread_rel"],
    }
    for bad, line in [
        ("study={compair: [batch_size]}", "study: unknown key 'compair'"),
        ("study={metrics: [wobble]}", "study.metrics: unknown metric 'wobble'"),
    ]:
        with pytest.raises(SystemExit) as exit_:
            multirun(tmp_path / "bad", "steps=30", "batch_size=10,100", bad)
        assert exit_.value.code == 2 and line in capsys.readouterr().err
        assert not (tmp_path / "bad").exists()


def test_twins_are_found_and_drawn_once():
    from mlpsweep.report.analysis import Analysis
    from mlpsweep.report.figures.labels import TWIN_STEPS, twin_of

    rng = np.random.default_rng(0)
    base = [rng.random(200) + 0.1 for _ in range(3)]
    other = [rng.random(200) + 0.1 for _ in range(3)]
    later = [np.concatenate([b[:TWIN_STEPS], b[TWIN_STEPS:] * 1.01]) for b in base]
    curves = {"a": base, "b": [b * (1 + 1e-13) for b in base], "c": other, "d": later}
    runs, history = [], []
    for cfg, losses in curves.items():
        for seed, loss in enumerate(losses):
            runs.append({"run_id": f"{cfg}{seed}", "config": cfg, "seed": seed})
            history.append(pd.DataFrame({"run_id": f"{cfg}{seed}", "train_loss": loss}))
    a = Analysis(pd.DataFrame(runs), pd.concat(history), ["x"], list(curves))
    # b: the same losses up to rounding; d: the same first steps, parted later by rounding
    assert twin_of(a) == {"b": "a", "d": "a"}
    # Runs shorter than the window are never twins (their first loss comes before any
    # update, so every config of a steps=1 sweep would be one).
    short = a.history.groupby("run_id").head(TWIN_STEPS - 1)
    assert twin_of(Analysis(a.runs, short, ["x"], list(curves))) == {}


def test_robust_limits_ignore_a_lone_outlier():
    from mlpsweep.report.plotting import robust_limits

    values = np.concatenate([np.linspace(0.1, 1.0, 5000), [1e6]])
    lo, hi = robust_limits(values, log=True)
    assert 0.05 < lo < 0.1 and 1.0 < hi < 2.0


def test_an_interaction_is_reported_only_where_it_is_large_and_clear(tmp_path):
    def finding_lines(sigmas, folder):
        configs = [
            ({"batch_size": b, "lr": lr}, sigma)
            for (b, lr), sigma in zip([(10, 0.01), (100, 0.01), (10, 0.1), (100, 0.1)], sigmas)
        ]
        # The findings as the report lists them (its text only: no figures drawn).
        from mlpsweep.report.effects import findings
        from mlpsweep.report.study import Study

        return findings(analyse(collect(write_runs(folder, configs), write=False)), Study())[0]

    # batch 100 calms the loss 8x at lr 0.1 and not at all at lr 0.01
    lines = finding_lines([0.1, 0.1, 0.4, 0.05], tmp_path / "yes")
    [inter] = [line for line in lines if line.startswith("Interaction")]
    assert "at lr=0.1 but" in inter and "at lr=0.01" in inter and "relative loss spread" in inter
    assert not [x for x in finding_lines([0.1] * 4, tmp_path / "no") if "Interaction" in x]


@pytest.mark.slow  # over 1.4 s: kept out of the one-minute quick suite
def test_noise_collapse_fits_the_known_power_law(tmp_path):
    from mlpsweep.report.analysis import analyse
    from mlpsweep.report.collapse import noise_collapse

    grid = [(lr, b) for lr in (0.01, 0.1, 1.0) for b in (10, 100)]

    def sweep(folder, sigma):
        configs = [({"lr": lr, "batch_size": b}, sigma(lr / b)) for lr, b in grid]
        return write_runs(folder, configs)

    # spread proportional to sqrt(lr / B): slope 1/2 on log-log axes
    folder = sweep(tmp_path / "law", lambda x: 0.3 * np.sqrt(x / 0.1))
    fit = noise_collapse(analyse(collect(folder, write=False)))
    assert fit.slope == pytest.approx(0.5, abs=0.05) and fit.r2 > 0.95
    html = build_report(folder).read_text()
    assert "the configs collapse onto one line" in html
    assert (folder / "report" / "noise_collapse.png").exists()
    flat = sweep(tmp_path / "flat", lambda x: 0.1)  # the text only: no report to build
    assert "do not collapse" in noise_collapse(analyse(collect(flat, write=False))).sentence()


@pytest.mark.slow  # over 1.4 s: kept out of the one-minute quick suite
def test_main_effects_are_geometric_means_over_every_run_at_a_value(tmp_path):
    from mlpsweep.report.analysis import analyse
    from mlpsweep.report.figures.answers import level_means
    from mlpsweep.report.study import Study

    grid = [(10, 0.01, 0.1), (10, 0.1, 0.4), (100, 0.01, 0.05), (100, 0.1, 0.1)]
    sweep = write_runs(tmp_path, [({"batch_size": b, "lr": lr}, s) for b, lr, s in grid])
    html = build_report(sweep).read_text()
    assert (sweep / "report" / "main_effects.png").exists()
    lead = html.split('<figure class="lead">')[1].split("<h2>Findings")[0]
    assert 'alt="Main effects"' in lead  # on the first screen, before the findings
    tables = collect(sweep, write=False)
    runs, history = tables.runs, tables.history
    a = analyse(tables)
    done = a.finished
    values, means, lo, hi = level_means(done, "batch_size", "spread_rel", log=True)
    assert list(values) == [10, 100]
    for v, m, low, high in zip(values, means, lo, hi):
        rids = runs.loc[runs["batch_size"] == v, "run_id"]
        logs = [
            np.log(brute_spread_rel(history.loc[history["run_id"] == r, "train_loss"].to_numpy()))
            for r in rids
        ]
        assert m == pytest.approx(np.exp(np.mean(logs)), rel=1e-9)
        half = t95(len(logs)) * np.std(logs, ddof=1) / np.sqrt(len(logs))
        assert (low, high) == pytest.approx(
            (np.exp(np.mean(logs) - half), np.exp(np.mean(logs) + half))
        )
    assert Study().compared(a.dims) == ["batch_size", "lr"]


def test_three_dims_facet_rows_by_columns_with_one_hue_per_remaining_setting(tmp_path):
    from mlpsweep.report.analysis import analyse
    from mlpsweep.report.figures.curves import panels
    from mlpsweep.report.figures.labels import hue_label

    configs = [
        ({"batch_size": b, "lr": lr, "width": w}, 0.1)
        for b in (10, 100)
        for lr in (0.01, 0.1)
        for w in (16, 32, 64)
    ]
    sweep = write_runs(tmp_path, configs, seeds=1, steps=50)
    groups, cols, facet = panels(analyse(collect(sweep, write=False)))
    assert facet == ["batch_size", "lr"] and cols == 2
    assert [title for title, _ in groups] == [
        "batch_size=10, lr=0.01",
        "batch_size=10, lr=0.1",
        "batch_size=100, lr=0.01",
        "batch_size=100, lr=0.1",
    ]
    for title, cfgs in groups:
        assert [hue_label(c, facet) for c in cfgs] == ["width=16", "width=32", "width=64"]
        assert all(c.startswith(title) for c in cfgs)


def test_a_groups_own_settings_are_not_dimensions_unless_swept_within_a_choice():
    from mlpsweep.report.analysis import swept_dims

    nan = float("nan")
    runs = pd.DataFrame(
        {
            "optimizer.name": ["adagrad", "adagrad", "adam", "adam", "sgd", "sgd"],
            "optimizer.eps": [1e-7, 1e-7, 1e-8, 1e-8, nan, nan],
            "optimizer.beta1": [nan, nan, 0.9, 0.9, nan, nan],
            "lr": [0.01, 0.01, 0.001, 0.001, 0.01, 0.01],
            "seed": [0, 1, 0, 1, 0, 1],
        }
    )
    # eps comes with the optimizer (as lr does here, but lr is no optimizer setting)
    config = ("optimizer.name", "optimizer.eps", "optimizer.beta1", "lr", "seed")
    assert swept_dims(runs, config) == ["lr", "optimizer.name"]
    # eps swept within adam: a dimension of its own
    runs.loc[3, "optimizer.eps"] = 1e-6
    assert swept_dims(runs, config) == ["lr", "optimizer.name", "optimizer.eps"]
    # one optimizer only: its eps is a dimension like any other
    one = runs[runs["optimizer.name"] == "adam"]
    assert swept_dims(one, config) == ["optimizer.eps"]


@pytest.mark.parametrize("lo, hi, minor_labels", [(0.2, 0.6, True), (0.01, 5.0, False)])
def test_a_log_axis_within_one_decade_still_has_numbers(lo, hi, minor_labels):
    """0.2 to 0.6 holds no power of ten: without minor labels the axis had no numbers."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from mlpsweep.report.plotting import plain_log_axis, subplots

    fig, ax = subplots(1, 1, (4, 3))
    ax.plot([0, 1], [lo, hi])
    ax.set_yscale("log")
    plain_log_axis(ax.yaxis)
    ax.set_ylim(lo, hi)
    FigureCanvasAgg(fig).draw()

    def shown(minor):
        return [t.get_text() for t in ax.yaxis.get_ticklabels(minor=minor) if t.get_text()]

    labels = shown(False) + shown(True)
    assert len(labels) >= 2, labels
    assert all(float(t) > 0 for t in labels)  # plain numbers, no mathtext
    assert bool(shown(True)) is minor_labels  # a wide axis keeps its decades only


@pytest.mark.parametrize(
    "names, slanted",
    [(["sgd", "adam"], False), (["adagrad", "adam", "momentum", "nesterov"], True)],
)
def test_main_effects_tick_labels_do_not_overlap(names, slanted):
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from mlpsweep.report.analysis import analyse
    from mlpsweep.report.collect import SweepTables
    from mlpsweep.report.figures.answers import main_effects_figure
    from mlpsweep.report.study import Study

    names = [*names, "rmsprop", "sgd_long_name"] if len(names) > 2 else names
    rng = np.random.default_rng(0)
    runs = pd.DataFrame(
        [
            {"run_id": f"{n}{s}", "status": "ok", "seed": s, "optimizer.name": n,
             "final_train_loss": rng.uniform(0.1, 1), "test_accuracy": rng.uniform(0.8, 0.9)}
            for n in names
            for s in range(3)
        ]
    )  # fmt: skip
    history = pd.DataFrame(
        {"run_id": runs["run_id"], "step": 1, "examples_seen": 10, "train_loss": 1.0}
    )
    a = analyse(SweepTables(runs, history, [], ("seed", "optimizer.name")))
    fig = main_effects_figure(a, Study(), ["final_train_loss", "test_accuracy"])
    renderer = FigureCanvasAgg(fig).get_renderer()
    fig.draw(renderer)
    height = renderer.points_to_pixels(8)  # the tick labels' font size
    for ax in fig.axes:
        labels = [t for t in ax.get_xticklabels() if t.get_text()]
        assert len(labels) == len(names)
        for t1, t2 in zip(labels, labels[1:]):
            if t1.get_rotation() == 0:
                b1, b2 = t1.get_window_extent(renderer), t2.get_window_extent(renderer)
                assert b1.x1 < b2.x0, names
            else:  # parallel slanted lines: their gap across the text must hold a line
                dx = ax.transData.transform((1, 0))[0] - ax.transData.transform((0, 0))[0]
                assert dx * np.sin(np.radians(t1.get_rotation())) > height, names
    assert (fig.axes[0].get_xticklabels()[0].get_rotation() != 0) is slanted


@pytest.mark.slow  # over 1.4 s: kept out of the one-minute quick suite
def test_summary_csv_is_numbers_with_their_intervals(tmp_path):
    sweep = write_runs(tmp_path, [({"batch_size": 10}, 0.3), ({"batch_size": 100}, 0.06)])
    build_report(sweep)
    table = pd.read_csv(sweep / "summary.csv")
    for metric in ("spread_rel", "spread"):
        for col in (metric, f"{metric}_lo", f"{metric}_hi"):
            assert pd.api.types.is_float_dtype(table[col]), col
        assert (table[f"{metric}_lo"] <= table[metric]).all()
        assert (table[metric] <= table[f"{metric}_hi"]).all()
    assert "±" not in table.to_csv()
    assert "±" in (sweep / "report.html").read_text()  # the page keeps "mean ± half-width"


@pytest.mark.slow  # over 1.4 s: kept out of the one-minute quick suite
def test_compare_writes_a_folder_named_after_its_inputs_and_refuses_bad_ones(
    tmp_path, monkeypatch, capsys
):
    from mlpsweep.cli import main

    results = tmp_path / "results"
    configs = [({"batch_size": 10}, 0.3), ({"batch_size": 100}, 0.1)]
    a = write_runs(results / "one" / "t1", configs, seeds=2, steps=100)
    b = write_runs(results / "two" / "t2", configs, seeds=2, steps=100)
    monkeypatch.chdir(tmp_path)
    assert main(["compare", str(a), str(b)]) == 0
    folder = results / "comparisons" / "one_t1-vs-two_t2"
    assert (folder / "comparison.html").exists() and (folder / "summary.csv").exists()
    assert (folder / "report" / "train_loss_per_step.svg").exists()
    assert not list(tmp_path.glob("*.html")) and not list(tmp_path.glob("*.csv"))
    capsys.readouterr()
    assert main(["compare", str(a), str(a)]) == 2
    assert "given twice" in capsys.readouterr().err
    (tmp_path / "afile").write_text("x")
    assert main(["compare", str(a), str(b), "--out", str(tmp_path / "afile")]) == 2
    assert "exists and is not a folder" in capsys.readouterr().err
    assert main(["compare", str(a), str(b), "--out", str(tmp_path / "afile" / "x")]) == 2
    assert "cannot make this folder" in capsys.readouterr().err
    odd = tmp_path / "javascript:alert(1);x=.html"  # a folder like any other: links stay relative
    assert main(["compare", str(a), str(b), "--out", str(odd)]) == 0
    page = (odd / "comparison.html").read_text()
    assert 'href="javascript:' not in page and 'href="report/' in page


def test_a_clipped_interval_is_shown_as_an_interval_not_a_negative_half_width():
    # A share estimated above 100% with its interval clipped at 100% was "1.177 ± -0.014".
    from mlpsweep.report.analysis import interval_text
    from mlpsweep.report.intervals import Interval

    assert interval_text(Interval(0.98, 0.9, 1.0, 2)) == "0.98 [0.9, 1]"
    assert interval_text(Interval(0.5, 0.4, 0.6, 2)) == "0.5 ± 0.1"
    assert interval_text(Interval(0.5, 0.5, 0.5, 1)) == "0.5"
    assert interval_text(Interval(float("nan"), float("nan"), float("nan"), 0)) == "–"


@pytest.mark.parametrize(
    "values",
    [[0.9, 1.1], [1.1, 1.25], [1.3, 1.05, 1.2], [0.99, 1.0, 1.01], [-0.2, 0.1], [-0.3, -0.1]],
)
def test_an_interval_cut_to_its_range_is_never_inverted_nor_leaves_its_estimate_outside(values):
    """A share estimated above 100% (its noise) once read '1.177 [1.03, 1]': cut to the
    range, the interval ended below its own low end. Means and ratio estimates alike."""
    from mlpsweep.report.intervals import mean_interval, ratio_of_means

    x = np.ones(len(values))
    for iv in (mean_interval(values, valid=(0.0, 1.0)), ratio_of_means(values, x, (0.0, 1.0))):
        assert iv.lo <= iv.mean <= iv.hi, iv
        if 0.0 <= iv.mean <= 1.0:  # inside its range: the interval is cut to it
            assert 0.0 <= iv.lo and iv.hi <= 1.0, iv


def test_a_share_estimated_above_all_reads_as_all_with_its_own_interval_in_percent():
    from mlpsweep.report.caveats import bound_text, share_text

    assert share_text(1.177) == "all (estimated 118%)"
    assert [bound_text(b) for b in (1.03, 1.32, 0.999, 0.5)] == ["103%", "132%", "99.9%", "50%"]


def test_noise_collapse_gives_no_verdict_from_two_lr_b_values_nor_over_configs_that_disagree(
    tmp_path,
):
    """A line through two lr/B values always fits (R² then only measures the scatter at
    each); configs at one lr/B whose spreads differ 3x do not collapse, whatever R² says."""
    from mlpsweep.report.analysis import analyse
    from mlpsweep.report.collapse import noise_collapse

    two = [({"lr": lr, "batch_size": b}, 0.3 * (lr / b) ** 0.5) for lr, b in
           [(0.1, 10), (1.0, 100), (0.01, 10), (0.01, 100)]]  # fmt: skip
    fit = noise_collapse(analyse(collect(write_runs(tmp_path / "two", two), write=False)))
    assert fit.distinct == 3 and "no verdict" not in fit.sentence()
    pair = [({"lr": lr, "batch_size": b}, 0.1 * (1 + (b == 100))) for lr, b in
            [(0.1, 10), (1.0, 100), (0.01, 10)]]  # fmt: skip
    fit = noise_collapse(analyse(collect(write_runs(tmp_path / "pair", pair), write=False)))
    assert fit.distinct == 2 and "no verdict on collapse" in fit.sentence(), fit.sentence()
    grid = [(0.1, 10), (1.0, 100), (0.01, 10), (0.001, 10)]
    apart = [({"lr": lr, "batch_size": b}, s) for (lr, b), s in zip(grid, (0.3, 0.1, 0.03, 0.01))]
    fit = noise_collapse(analyse(collect(write_runs(tmp_path / "apart", apart), write=False)))
    assert fit.apart == pytest.approx(3.0, rel=0.2), fit
    assert "do not collapse: at lr/B = 0.01 their spreads differ" in fit.sentence()
