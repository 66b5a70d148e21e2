"""The same sweep on a real Dask cluster: a scheduler and two workers on 127.0.0.1."""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys

import pandas as pd
import pytest
from helpers import REPO, run_app, sweep_dirs, wait_for_runs

pytest.importorskip("distributed")
DASK = shutil.which("dask") or os.path.join(os.path.dirname(sys.executable), "dask")

pytestmark = pytest.mark.e2e  # `python run.py` as a subprocess


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_workers(address, n, timeout=60):
    from distributed import Client

    with Client(address, timeout=timeout) as client:
        client.wait_for_workers(n, timeout=timeout)


@pytest.fixture
def cluster(tmp_path):
    """`dask scheduler` + 2 `dask worker` processes, bounded in time, torn down after."""
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    logs = open(tmp_path / "dask.log", "w")
    common = {"stdout": logs, "stderr": subprocess.STDOUT, "cwd": tmp_path}
    procs = [
        subprocess.Popen(
            [DASK, "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
            **common,
        )
    ]
    for _ in range(2):
        procs.append(
            subprocess.Popen(
                [
                    DASK,
                    "worker",
                    address,
                    "--nthreads",
                    "1",
                    "--nworkers",
                    "1",
                    "--no-dashboard",
                    "--no-nanny",
                    "--memory-limit",
                    "0",
                ],
                **common,
            )
        )
    try:
        wait_for_workers(address, 2)
        yield address, [p.pid for p in procs[1:]]  # --no-nanny: these are the workers
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=5)  # bounded: a worker still closing is killed
            except subprocess.TimeoutExpired:
                p.kill()
        logs.close()


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
