"""Sweeps end to end: in-process through Hydra's API for logic, and `python run.py` in a
temporary directory (marked e2e) for the CLI surface and exit codes."""

import json

import pandas as pd
import pytest
from helpers import REPO, multirun, run_app, run_cli, run_once, sweep_dirs

from mlpsweep import records


def histories(sweep):
    out = {}
    for run in (sweep / "runs").iterdir():
        out[run.name] = pd.read_parquet(run / "history.parquet")
    return out


@pytest.mark.slow  # over 1.4 s: kept out of the one-minute quick suite
@pytest.mark.e2e
def test_sweep_runs_every_job_and_ends_with_a_report(tmp_path):
    p = run_app(tmp_path, "-m", "batch_size=10,100", "steps=50")
    assert p.returncode == 0, p.stderr
    [sweep] = sweep_dirs(tmp_path)
    assert f"report: results/adhoc/{sweep.name}/report.html" in p.stdout
    runs = list((sweep / "runs").iterdir())
    assert len(runs) == 2
    for run in runs:
        metrics = json.loads((run / "metrics.json").read_text())
        assert metrics["status"] == "ok" and metrics["steps_done"] == 50
        assert {
            "final_train_loss",
            "test_loss",
            "test_accuracy",
            "examples_seen",
            "wall_seconds",
            "steps_per_s",
        } <= set(metrics)
        assert metrics["arithmetic"] == "fused" and "code" in metrics  # float32 default
        assert len(pd.read_parquet(run / "history.parquet")) == 50
        assert "batch_size:" in (run / "config.yaml").read_text()
    table = pd.read_parquet(sweep / "runs.parquet")
    assert sorted(table["batch_size"]) == [10, 100] and set(table["status"]) == {"ok"}
    assert len(pd.read_parquet(sweep / "history.parquet")) == 100
    assert 'alt="Train loss per step"' in (sweep / "report.html").read_text()
    assert "fused float32 step: 2 runs" in (sweep / "report.html").read_text()
    assert "1 BLAS thread(s): 2 runs" in (sweep / "report.html").read_text()
    assert "batch_size=10" in p.stderr + p.stdout  # one log line per finished job


@pytest.mark.e2e
def test_single_run_writes_the_same_files(tmp_path):
    p = run_app(tmp_path, "steps=20", "eval_every=10")
    assert p.returncode == 0, p.stderr
    [out] = (tmp_path / "results" / "single").iterdir()
    assert json.loads((out / "metrics.json").read_text())["steps_done"] == 20
    assert len(pd.read_parquet(out / "history.parquet")) == 20


# Products big enough for OpenBLAS to split across threads (width 256, batch 1000):
# there, 2 BLAS threads and 1 round differently from the first step on.
PARALLEL_ARGS = ["seed=0", "steps=60", "eval_every=20", "width=256"]


@pytest.mark.slow
@pytest.mark.repro
def test_parallelism_does_not_change_the_numbers(tmp_path):
    """The same runs with 1 and 2 workers and as a single run: bitwise-equal histories
    (each job runs on one BLAS thread, whatever n_jobs and the core count are)."""
    grid = ["batch_size=10,100,1000", *PARALLEL_ARGS, "report=false"]
    multirun(tmp_path / "a", *grid, "hydra.launcher.n_jobs=1")
    multirun(tmp_path / "b", *grid, "hydra.launcher.n_jobs=2")
    h1, h2 = histories(tmp_path / "a"), histories(tmp_path / "b")
    assert h1.keys() == h2.keys() and len(h1) == 3
    for rid in h1:
        pd.testing.assert_frame_equal(h1[rid], h2[rid], check_exact=True)
    single = run_once(tmp_path / "c", "batch_size=1000", *PARALLEL_ARGS).return_value
    assert single.run_id in h1
    pd.testing.assert_frame_equal(
        records.read_history(tmp_path / "c"), h1[single.run_id], check_exact=True
    )
    metrics = records.read_metrics(tmp_path / "c")
    assert metrics.blas_threads == 1 and metrics.blas.split()[0] in ("openblas", "mkl")


@pytest.mark.slow
@pytest.mark.e2e
def test_resume_skips_finished_runs_and_reruns_truncated_ones(tmp_path):
    args = ["-m", "seed=0,1,2", "steps=30", "report=false"]
    assert run_app(tmp_path, *args).returncode == 0
    [sweep] = sweep_dirs(tmp_path)
    runs = sorted((sweep / "runs").iterdir())
    kept = {r.name: (r / "metrics.json").stat().st_mtime_ns for r in runs[1:]}
    hist = runs[0] / "history.parquet"
    hist.write_bytes(hist.read_bytes()[:100])  # a half-written file
    p = run_app(tmp_path, *args, "resume=true")
    assert p.returncode == 0, p.stderr
    out = p.stdout + p.stderr
    assert "3 runs in" in out and "1 to train, 2 already done" in out
    assert sweep_dirs(tmp_path) == [sweep]
    for r in runs[1:]:
        assert (r / "metrics.json").stat().st_mtime_ns == kept[r.name]  # not retrained
    assert len(pd.read_parquet(hist)) == 30


@pytest.mark.slow  # over 1.4 s: kept out of the one-minute quick suite
def test_a_failing_job_leaves_its_siblings_and_fails_the_exit_status(tmp_path, capsys):
    # width 10^8 needs ~320 GB of weights: the job raises MemoryError, its siblings run
    # (max_memory lets it past the memory check that would refuse the sweep).
    sweep = tmp_path / "sweep"
    with pytest.raises(SystemExit) as exit_:
        multirun(sweep, "width=16,100000000", "depth=1", "steps=20", "max_memory=1000T")
    assert exit_.value.code == 1
    err = capsys.readouterr().err
    assert "1 of 2 runs failed" in err and "MemoryError" in err
    metrics = [records.read_metrics(r) for r in (sweep / "runs").iterdir()]
    assert sorted(m.status for m in metrics) == ["failed", "ok"]
    failed = next(m for m in metrics if m.status == "failed")
    assert "Traceback" in (records.run_dir(sweep, failed.run_id) / "job.log").read_text()
    assert (sweep / "report.html").exists()


@pytest.mark.parametrize(
    "args, line",
    [
        (["lr=0.1,-1"], "lr=-1.0: must be > 0"),
        (["batch_size=0"], "batch_size=0: must be an integer >= 1 and <= 4000"),
        (["batch_size=4001"], "batch_size=4001"),
        (["optimizer=momentum", "optimizer.momentum=-0.5"], "optimizer.momentum=-0.5"),
        (["optimizer=momentum", "optimizer.momentum=1.0"], "must be >= 0 and < 1"),
        (["optimizer=adam", "optimizer.beta1=2"], "optimizer.beta1=2.0: must be >= 0 and < 1"),
        (["optimizer=adam", "optimizer.eps=0"], "optimizer.eps=0.0: must be > 0"),
        (["init=lecun"], "init='lecun'"),
        (["retries=-1"], "retries=-1: must be an integer >= 0 and <= 10"),
        (["retries=100000"], "retries=100000"),
        (["rng=legacy", "seed=4294967296"], "rng=legacy takes seeds <= 4294967295"),
    ],
)
def test_value_errors_give_one_line_and_start_no_job(tmp_path, capsys, args, line):
    """In-process: the planner checks every job before any starts."""
    with pytest.raises(SystemExit) as exit_:
        multirun(tmp_path / "sweep", *args, "steps=5")
    err = capsys.readouterr().err.strip()
    assert exit_.value.code == 2 and line in err and "\n" not in err
    assert not (tmp_path / "sweep").exists()


@pytest.mark.parametrize(
    "args, text",
    [
        (["btach_size=10"], "btach_size"),
        (["activation=gelu"], "gelu"),
        (["steps=many"], "many"),
        (["optimizer=lbfgs"], "lbfgs"),
    ],
)
def test_composition_errors(tmp_path, args, text):
    p = run_cli(tmp_path, "-m", *args)
    assert p.returncode != 0 and text in p.stderr
    assert not list(tmp_path.glob("results/*/*/runs/*"))


@pytest.mark.e2e
def test_help_lists_every_knob(tmp_path):
    from dataclasses import fields

    from mlpsweep.app.schema import Config

    p = run_app(tmp_path, "--help")
    assert p.returncode == 0
    for f in fields(Config):
        assert f.name in p.stdout, f.name
    for choice in ("relu", "sigmoid", "tanh", "xavier", "with_replacement", "legacy", "adam"):
        assert choice in p.stdout


def test_the_readmes_knob_list_is_every_knob():
    """The README names every knob of TrainConfig (the one definition), no more."""
    import re
    from dataclasses import fields

    from mlpsweep.core import TrainConfig

    text = (REPO / "README.md").read_text()
    listed = re.search(r"\*\*Knobs\*\* are top-level keys \(`([^`]+)`\)", text).group(1).split()
    groups = {"optimizer", "optimizer_params"}  # the groups, named after the list
    assert set(listed) == {f.name for f in fields(TrainConfig)} - groups


SWEEPS = sorted(p.stem for p in (REPO / "sweeps").glob("*.yaml"))


@pytest.mark.slow
@pytest.mark.parametrize("name", SWEEPS)
def test_every_named_sweep_runs_with_tiny_steps(tmp_path, name):
    text = (REPO / "sweeps" / f"{name}.yaml").read_text()
    # An Optuna study names its sweeper on the command line (see its header).
    adaptive = ["hydra/sweeper=optuna", "hydra.sweeper.n_trials=4"] if "n_trials" in text else []
    tiny = ("steps=3", "eval_every=0", "report=false", "seed=0")  # one seed of each config
    if "halving:" in text:  # two rungs: 3 steps, then 9
        tiny = ("steps=9", "eval_every=3", "halving.min_steps=3", *tiny[2:])
    multirun(tmp_path / "sweep", *adaptive, f"+sweep={name}", *tiny)
    manifest = records.SweepManifest.read(tmp_path / "sweep")
    assert manifest.runs and all(
        records.is_finished(records.run_dir(tmp_path / "sweep", r)) for r in manifest.run_ids
    )
    if "halving:" in text:
        from mlpsweep.records.halving import HalvingLog

        assert HalvingLog.read(tmp_path / "sweep").rungs == [3, 9]
