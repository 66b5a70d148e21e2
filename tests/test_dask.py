"""The same sweep on a real Dask cluster: a scheduler and two workers on 127.0.0.1."""

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from helpers import REPO, run_app, start_app, sweep_dirs, wait_for, wait_for_runs

pytest.importorskip("distributed")
from mlpsweep.bench.dask_cluster import free_port, local_cluster, worker_processes  # noqa: E402

pytestmark = pytest.mark.e2e  # `python run.py` as a subprocess


@pytest.fixture
def cluster(tmp_path):
    """A scheduler and two workers without nannies: a killed worker stays dead."""
    with local_cluster(tmp_path) as c:
        yield c


def histories(sweep):
    return {r.name: pd.read_parquet(r / "history.parquet") for r in (sweep / "runs").iterdir()}


@pytest.mark.slow
@pytest.mark.repro
def test_dask_sweep_equals_the_loky_sweep(tmp_path, cluster):
    address, _ = cluster
    args = ["-m", "seed=0,1,2", "batch_size=10,50", "steps=40", "dropout=0.1", "report=false"]
    dask = run_app(
        tmp_path / "dask",
        *args,
        "hydra.launcher.backend=dask",
        f"hydra.launcher.scheduler={address}",
    )
    loky = run_app(tmp_path / "loky", *args)
    assert dask.returncode == 0, dask.stderr[-3000:]
    assert loky.returncode == 0, loky.stderr[-3000:]
    assert "dask: 2 workers" in dask.stdout + dask.stderr
    hd, hl = (
        histories(sweep_dirs(tmp_path / "dask")[0]),
        histories(sweep_dirs(tmp_path / "loky")[0]),
    )
    assert hd.keys() == hl.keys() and len(hd) == 6
    for rid in hd:
        pd.testing.assert_frame_equal(hd[rid], hl[rid])


@pytest.mark.slow
def test_scheduler_from_the_environment(tmp_path, cluster):
    address, _ = cluster
    p = run_app(
        tmp_path,
        "-m",
        "seed=0,1",
        "steps=10",
        "report=false",
        "hydra.launcher.backend=dask",
        env={"DASK_SCHEDULER_ADDRESS": address},
    )
    assert p.returncode == 0, p.stderr[-3000:]
    assert address in p.stdout + p.stderr


@pytest.mark.slow
def test_a_killed_worker_loses_and_duplicates_nothing(tmp_path, cluster):
    address, pids = cluster
    n = 8
    cmd = [
        sys.executable,
        str(REPO / "run.py"),
        "-m",
        f"seed=range({n})",
        "steps=300",
        "batch_size=200",
        "eval_every=0",
        "report=false",
        "hydra.launcher.backend=dask",
        f"hydra.launcher.scheduler={address}",
    ]
    sweep = subprocess.Popen(
        cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    assert wait_for_runs(tmp_path, 1), "no run finished"
    os.kill(pids[0], signal.SIGKILL)  # a worker dies mid-sweep
    out, _ = sweep.communicate(timeout=300)
    assert sweep.returncode == 0, out[-3000:]
    [folder] = sweep_dirs(tmp_path)
    runs = list((folder / "runs").iterdir())
    assert len(runs) == n
    assert all(json.loads((r / "metrics.json").read_text())["status"] == "ok" for r in runs)
    # One line per job. A job whose worker died after writing its record but before
    # returning is rescheduled, finds its record complete and is not trained again.
    jobs = re.findall(r"#\d+ (.+?): ok (loss|\(already done\))", out)
    assert sorted(o for o, _ in jobs) == sorted(set(o for o, _ in jobs))  # none twice
    assert len(jobs) == n  # none lost


@pytest.mark.slow  # waits out the connection timeout
def test_a_wrong_scheduler_address_fails_fast_with_one_line(tmp_path):
    p = run_app(
        tmp_path,
        "-m",
        "seed=0,1",
        "steps=5",
        "hydra.launcher.backend=dask",
        f"hydra.launcher.scheduler=tcp://127.0.0.1:{free_port()}",
        timeout=120,
    )
    assert p.returncode == 2
    lines = [line for line in p.stderr.splitlines() if line.startswith("mlpsweep:")]
    assert len(lines) == 1 and "cannot reach the Dask scheduler at tcp://127.0.0.1:" in lines[0]
    assert "within 5 s" in lines[0] and "Traceback" not in p.stderr
    assert not list(tmp_path.rglob("sweep.json"))  # no sweep folder left behind


def sweep_on(address, tmp_path, *args):
    """The sweep as a terminal starts it: in a process group of its own (a Ctrl-C there
    reaches every process of the group)."""
    args = ["-m", *args, "eval_every=0", "report=false", "hydra.launcher.backend=dask"]
    args += [f"hydra.launcher.scheduler={address}"] if address else []
    return start_app(
        tmp_path,
        *args,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def records(cwd):
    return list(Path(cwd).glob("results/*/*/runs/*"))


def wait_until_idle(address):
    """Until no worker thread runs a task: a task the sweep abandoned but that trained on
    would finish (and write its record) before this returns. (The scheduler forgets a
    cancelled task at once, whether or not its thread still runs it.)"""
    from distributed import Client

    def busy(dask_worker):
        return len(dask_worker.active_threads)

    with Client(address, timeout=30) as client:
        wait_for(lambda: not sum(client.run(busy).values()), 120, "idle workers")


@pytest.mark.slow
def test_ctrl_c_stops_the_jobs_running_on_the_cluster(tmp_path, cluster):
    # Dask cannot stop a running task: before, the jobs a Ctrl-C abandoned trained on
    # and wrote their records after the sweep said "0 of 4 jobs finished".
    address, _ = cluster
    sweep = sweep_on(address, tmp_path, "seed=range(4)", "steps=20000")
    wait_for(lambda: len(running_claims(tmp_path)) >= 2, what="two running jobs")
    os.killpg(sweep.pid, signal.SIGINT)
    out, _ = sweep.communicate(timeout=120)
    assert sweep.returncode == 130, out[-3000:]
    assert "interrupted: 0 of 4 jobs finished" in out and "Traceback" not in out, out
    assert "dashboard" not in out  # the scheduler serves none (--no-dashboard)
    wait_until_idle(address)
    assert not records(tmp_path) and not running_claims(tmp_path)


@pytest.mark.slow
def test_ctrl_c_of_a_sweep_on_its_own_local_cluster_prints_one_line(tmp_path):
    # The local cluster's workers are in the terminal's process group: each printed its
    # KeyboardInterrupt traceback, and distributed its teardown, around our line.
    sweep = sweep_on(None, tmp_path, "seed=range(4)", "steps=20000", "hydra.launcher.n_jobs=2")
    wait_for(lambda: len(running_claims(tmp_path)) >= 2, what="two running jobs")
    os.killpg(sweep.pid, signal.SIGINT)
    out, _ = sweep.communicate(timeout=120)
    assert sweep.returncode == 130, out[-3000:]
    assert "Traceback" not in out and "KeyboardInterrupt" not in out, out
    assert out.count("\n") <= 5, out  # planning, the cluster, interrupted, the last line
    assert not records(tmp_path) and not running_claims(tmp_path)


def running_claims(cwd):
    return list(Path(cwd).glob("results/*/*/claims/*.json"))


@pytest.mark.slow
def test_a_cluster_left_without_workers_ends_the_sweep_with_one_line(tmp_path, cluster):
    # Both workers die (no nanny to restart them): the sweep waits no_workers_s for a
    # worker, then ends with one line and exit 1, its finished runs kept; before, it
    # waited for ever.
    address, pids = cluster
    sweep = sweep_on(
        address, tmp_path, "seed=range(4)", "steps=20000", "hydra.launcher.no_workers_s=3"
    )
    wait_for(lambda: len(running_claims(tmp_path)) >= 2, what="two running jobs")
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    out, _ = sweep.communicate(timeout=120)
    assert sweep.returncode == 1, out[-3000:]
    lines = [line for line in out.splitlines() if "has had no worker for" in line]
    assert len(lines) == 1 and "no_workers_s=3" in lines[0] and "4 jobs not run" in lines[0]
    assert "Traceback" not in out


@pytest.mark.slow
def test_a_job_whose_workers_keep_dying_fails_alone(tmp_path):
    # allowed-failures=0: Dask gives up on a task at its worker's first death
    # (KilledWorker). Before, joblib's Dask backend never handed that failure back and
    # the sweep waited for ever; now that job fails, its siblings finish.
    env = {"DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES": "0"}
    with local_cluster(tmp_path, nanny=True, scheduler_env=env) as (address, nannies):
        sweep = sweep_on(address, tmp_path, "seed=range(4)", "steps=3000", "batch_size=50")
        wait_for(lambda: len(running_claims(tmp_path)) >= 2, what="two running jobs")
        [victim] = worker_processes(nannies[0])
        os.kill(victim, signal.SIGKILL)
        out, _ = sweep.communicate(timeout=300)
    assert sweep.returncode == 1, out[-3000:]
    failed = re.findall(r"#\d+ (.+?): FAILED WorkerLost: (.+)", out)
    ok = re.findall(r"#\d+ (.+?): ok loss", out)
    # The dead worker's job fails, and one Dask had already handed it may fail with it;
    # the other worker's jobs finish, and every job has its one line.
    assert 1 <= len(failed) <= 2 and all("KilledWorker" in why for _, why in failed), out
    assert len(ok) >= 2 and len(ok) + len(failed) == 4, out


@pytest.mark.slow
def test_a_lost_scheduler_ends_the_sweep_with_one_line(tmp_path, cluster):
    # The scheduler SIGKILLed mid-sweep: the client cancels every future it held, and
    # the sweep ends with one line naming the scheduler, exit 1, instead of a traceback.
    import psutil

    address, pids = cluster
    port = address.rsplit(":", 1)[1]
    sweep = sweep_on(address, tmp_path, "seed=range(4)", "steps=20000")
    wait_for(lambda: len(running_claims(tmp_path)) >= 2, what="two running jobs")
    [scheduler] = [
        p
        for p in psutil.process_iter(["cmdline"])
        if "scheduler" in (p.info["cmdline"] or []) and port in (p.info["cmdline"] or [])
    ]
    scheduler.kill()
    out, _ = sweep.communicate(timeout=120)
    assert sweep.returncode == 1, out[-3000:]
    lines = [
        line for line in out.splitlines() if f"the Dask scheduler at {address} was lost" in line
    ]
    assert len(lines) == 1 and "4 jobs not run" in lines[0], out[-3000:]
    assert "Traceback" not in out, out  # distributed's own, of its reconnection
    # The workers close without their scheduler; before, each first trained its job to
    # the end and wrote its record, after the sweep had said it was not run.
    for pid in pids:
        psutil.Process(pid).wait(timeout=120)
    assert not records(tmp_path) and not running_claims(tmp_path)


@pytest.mark.slow
def test_workers_with_several_threads_run_one_job_at_a_time_and_say_so(tmp_path):
    # A job's Hydra state (HydraConfig, its logging, the launch's composer) is its
    # process's: two jobs at once in one worker process failed (PicklingError, or
    # "HydraConfig was not set").
    with local_cluster(tmp_path, workers=1, threads=2) as (address, _):
        sweep = sweep_on(address, tmp_path, "seed=range(4)", "steps=200")
        out, _ = sweep.communicate(timeout=300)
    assert sweep.returncode == 0, out[-3000:]
    assert len(re.findall(r"#\d+ .+?: ok loss", out)) == 4, out
    assert "2 threads in 1 processes: each process runs one job at a time" in out
