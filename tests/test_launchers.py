"""One execution path: the same sweep under Hydra's basic launcher, the stock joblib
launcher and ours gives the same run records and a report, in-process through Hydra's
own API; resume works under any of them."""

import json

import pandas as pd
import pytest
from helpers import multirun

from mlpsweep import records

GRID = ["batch_size=10,100", "seed=0,1", "steps=30", "eval_every=10", "width=32"]
LAUNCHERS = {
    "mlpsweep": [],
    "basic": ["hydra/launcher=basic"],
    "joblib": ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"],
}
# Ours in worker processes, with and without its shortcuts (Hydra's public path).
WORKERS = {
    "mlpsweep-workers": ["hydra.launcher.n_jobs=2"],
    "mlpsweep-no-shortcuts": ["hydra.launcher.n_jobs=2", "hydra.launcher.no_shortcuts=[all]"],
}


def histories(sweep_dir):
    runs = records.SweepManifest.read(sweep_dir).run_ids
    return {rid: records.read_history(records.run_dir(sweep_dir, rid)) for rid in runs}


@pytest.fixture(scope="module")
def sweeps(tmp_path_factory):
    out = {}
    for name, extra in {**LAUNCHERS, **WORKERS}.items():
        sweep_dir = tmp_path_factory.mktemp(name) / "sweep"
        multirun(sweep_dir, *GRID, *extra)
        out[name] = sweep_dir
    return out


@pytest.mark.slow  # five sweeps with their reports
def test_every_launcher_writes_the_same_records_and_a_report(sweeps):
    ours = histories(sweeps["mlpsweep"])
    assert len(ours) == 4
    for name, sweep_dir in sweeps.items():
        theirs = histories(sweep_dir)
        assert theirs.keys() == ours.keys(), name
        for rid in ours:
            pd.testing.assert_frame_equal(theirs[rid], ours[rid], check_exact=True)
        assert 'alt="Train loss per step"' in (sweep_dir / "report.html").read_text(), name
        for rid in ours:
            metrics = records.read_metrics(records.run_dir(sweep_dir, rid))
            assert metrics.status == "ok" and metrics.blas_threads == 1


@pytest.mark.slow  # three sweeps; the quick suite runs each launcher in the rerun test
def test_the_task_returns_its_outcome_under_every_launcher(tmp_path):
    for name, extra in LAUNCHERS.items():
        [returns] = multirun(tmp_path / name, "seed=0,1", "steps=5", "report=false", *extra)
        outcomes = [r.return_value for r in returns]
        assert [o.status for o in outcomes] == ["ok", "ok"], name
        assert all(o.record.endswith(o.run_id) for o in outcomes)


# Each launcher under each sweeper; the quick suite keeps the two pure pairs.
RERUNS = [
    pytest.param(launcher, sweeper, marks=[] if launcher == sweeper else [pytest.mark.slow])
    for launcher in sorted(LAUNCHERS)
    for sweeper in ("mlpsweep", "basic")
]


@pytest.mark.slow  # over 1.4 s: kept out of the one-minute quick suite
@pytest.mark.parametrize("launcher, sweeper", RERUNS)
def test_a_rerun_trains_only_what_is_missing(tmp_path, launcher, sweeper):
    """What a killed sweep leaves: some records complete, one torn, one missing. The
    rerun (as resume=true would pick this folder) trains those two only: our sweeper
    leaves the others out of the launch; under Hydra's basic sweeper every job is
    launched and the task finds their records complete."""
    sweep_dir = tmp_path / "sweep"
    args = [*GRID, "report=false", *LAUNCHERS[launcher]]
    if sweeper == "basic":
        args.append("hydra/sweeper=basic")
    multirun(sweep_dir, *args)
    runs = sorted((sweep_dir / "runs").iterdir())
    torn, missing, kept = runs[0], runs[1], runs[2:]
    (torn / "history.parquet").write_bytes(b"PAR1 torn")
    (missing / "metrics.json").unlink()
    before = {r.name: (r / "metrics.json").stat().st_mtime_ns for r in kept}
    [returns] = multirun(sweep_dir, *args)
    trained = {r.return_value.run_id for r in returns if not r.return_value.reused}
    assert trained == {torn.name, missing.name}
    assert len(returns) == (4 if sweeper == "basic" else 2)
    assert {r.name: (r / "metrics.json").stat().st_mtime_ns for r in kept} == before
    assert all(records.is_finished(r) for r in runs)


def test_the_planner_leaves_finished_runs_out_of_the_launch(tmp_path):
    sweep_dir = tmp_path / "sweep"
    multirun(sweep_dir, "seed=0,1,2", "steps=5", "report=false")
    (records.run_dir(sweep_dir, records.SweepManifest.read(sweep_dir).run_ids[1])).joinpath(
        "metrics.json"
    ).unlink()
    [returns] = multirun(sweep_dir, "seed=0,1,2", "steps=5", "report=false")
    assert [r.overrides for r in returns] == [["seed=1", "steps=5", "report=False"]]
    manifest = json.loads((sweep_dir / "sweep.json").read_text())
    assert len(manifest["runs"]) == 3


def test_a_worker_with_other_data_refuses_to_train(tmp_path, monkeypatch):
    from mlpsweep.app.errors import JobError
    from mlpsweep.app.sweep_start import SweepStart

    # The planning happened elsewhere (another machine): this process only runs jobs.
    monkeypatch.setattr(SweepStart, "on_multirun_start", lambda self, config, **kw: None)

    sweep_dir = tmp_path / "sweep"
    multirun(sweep_dir, "seed=0,1", "steps=5", "report=false")
    manifest = records.SweepManifest.read(sweep_dir)
    manifest.data = {"mnist_5k": "0" * 64}  # as if planned elsewhere, with other data
    manifest.write(sweep_dir)
    (records.run_dir(sweep_dir, manifest.run_ids[0]) / "metrics.json").unlink()
    with pytest.raises(JobError, match="the sweep was planned with 000000000000"):
        multirun(sweep_dir, "seed=0,1", "steps=5", "report=false", "hydra/sweeper=basic")


@pytest.mark.slow
@pytest.mark.e2e
@pytest.mark.parametrize(
    "hydra, sig",
    [("hydra/launcher=basic", "SIGKILL"), ("hydra/sweeper=basic", "SIGTERM")],
    ids=["basic-launcher-kill", "basic-sweeper-term"],
)
def test_a_killed_sweep_resumes_past_its_finished_runs(tmp_path, hydra, sig):
    """Hydra's basic launcher (killed) and Hydra's basic sweeper (stopped by SIGTERM,
    as SLURM's scancel does), for real after two runs finished: the manifest was written
    before the first job, so rerunning the command with resume=true finds the folder
    and trains only the rest."""
    import signal

    from helpers import finished_runs, run_cli, start_app, wait_for

    args = ["-m", "seed=range(6)", "steps=300", "report=false", hydra]
    proc = start_app(tmp_path, *args)
    wait_for(lambda: len(finished_runs(tmp_path)) >= 2 or proc.poll() is not None)
    proc.send_signal(getattr(signal, sig))
    assert proc.wait(timeout=60) != 0
    done = {p.parent.name: p.stat().st_mtime_ns for p in finished_runs(tmp_path)}
    assert 2 <= len(done) < 6
    # Its workers exit as they notice the sweep is gone; a run still claimed by one is
    # busy (Hydra's basic sweeper would not come back to it): resume once they are gone.
    [sweep] = (tmp_path / "results" / "adhoc").glob("*/")
    wait_for(lambda: not records.live_claims(sweep), what="the old workers' claims to go")
    p = run_cli(tmp_path, *args, "resume=true")
    assert p.returncode == 0, p.stderr
    assert f"{6 - len(done)} to train, {len(done)} already done" in p.stderr + p.stdout
    after = {p.parent.name: p.stat().st_mtime_ns for p in finished_runs(tmp_path)}
    assert len(after) == 6 and all(after[r] == t for r, t in done.items())


@pytest.mark.slow  # over 1.4 s: kept out of the one-minute quick suite
def test_hydras_basic_sweeper_still_gets_a_manifest_and_a_report(tmp_path):
    """Hydra's basic sweeper: its jobs are planned before the first starts (the
    manifest lists them), so the report and `mlpsweep report` work all the same."""
    sweep_dir = tmp_path / "sweep"
    multirun(sweep_dir, "seed=0,1", "steps=5", "hydra/sweeper=basic")
    manifest = records.SweepManifest.read(sweep_dir)
    assert len(manifest.runs) == 2 and (sweep_dir / "report.html").exists()


def test_control_flags_are_not_part_of_a_runs_overrides(tmp_path):
    """resume/extend/dry_run say how to run a sweep, not what a run is: they stay out of
    the records (and so out of reproduce commands)."""
    sweep_dir = tmp_path / "sweep"
    multirun(sweep_dir, "seed=0", "steps=5", "report=false", "resume=true", "extend=true")
    [planned] = records.SweepManifest.read(sweep_dir).runs
    metrics = records.read_metrics(records.run_dir(sweep_dir, planned.run_id))
    for overrides in (planned.overrides, tuple(metrics.overrides)):
        assert overrides == ("seed=0", "steps=5", "report=False")
