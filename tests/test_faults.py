"""Collisions, worker loss, damaged records, memory and signals: nothing lost, nothing
trained twice, nothing written outside results/ (issue: reliability under hostile use)."""

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time

import pytest
from helpers import REPO, multirun, run_cli, sweep_dirs, wait_for, wait_for_runs

from mlpsweep import records
from mlpsweep.app.resources import check_memory
from mlpsweep.core import TrainConfig
from mlpsweep.core.checks import ConfigError
from mlpsweep.core.memory import parse_size, run_bytes
from mlpsweep.launcher.failures import WorkerLost
from mlpsweep.launcher.hydra_compat import return_value
from mlpsweep.launcher.recovery import Recovery
from mlpsweep.records import claim
from mlpsweep.records.layout import fresh_dir

APP = [sys.executable, str(REPO / "run.py")]


def trained_seeds(*texts):
    """The seeds of the jobs sweep logs say were trained (not 'already done', 'busy')."""
    return sorted(m.group(1) for t in texts for m in re.finditer(r"#\d+ (seed=\d+).*: ok loss", t))


# --- exclusive folders -------------------------------------------------------------


def test_fresh_dirs_are_exclusive_even_when_created_at_once(tmp_path):
    made = []
    threads = [
        threading.Thread(target=lambda: made.append(fresh_dir(tmp_path, "x"))) for _ in range(16)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(made)) == 16 and {p.name for p in made} == {
        "x",
        *(f"x_{n}" for n in range(2, 17)),
    }


@pytest.mark.slow  # over 1.4 s: kept out of the one-minute quick suite
@pytest.mark.e2e
def test_two_single_runs_started_together_keep_their_own_results(tmp_path):
    procs = [
        subprocess.Popen(
            [*APP, "steps=200", f"lr={lr}"], cwd=tmp_path, stdout=subprocess.PIPE, text=True
        )
        for lr in (0.05, 0.2)
    ]
    outs = [p.communicate(timeout=120)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0]
    paths = [
        line.split("results: ", 1)[1]
        for out in outs
        for line in out.splitlines()
        if line.startswith("results: ")
    ]
    assert len(set(paths)) == 2
    lrs = sorted(records.read_metrics(p).overrides[1] for p in paths)
    assert lrs == ["lr=0.05", "lr=0.2"]


def test_a_refused_single_run_leaves_no_folder(tmp_path):
    p = run_cli(tmp_path, "lr=-1")
    assert p.returncode == 2 and p.stderr.strip() == "mlpsweep: lr=-1.0: must be > 0"
    assert not (tmp_path / "results").exists()


# --- claims: any number of processes into one sweep folder ---------------------------


def test_a_claim_is_exclusive_and_released(tmp_path):
    rid = "0123456789abcdef"
    with records.claim_run(tmp_path, rid) as path:
        assert json.loads(path.read_text())["pid"] == os.getpid()
        with pytest.raises(records.RunBusy, match=f"pid {os.getpid()}"):
            with records.claim_run(tmp_path, rid):
                pass
    assert not path.exists()
    with records.claim_run(tmp_path, rid):  # free again
        pass


def test_the_claim_of_a_dead_process_is_taken_over(tmp_path, caplog):
    rid = "0123456789abcdef"
    path = claim.claim_path(tmp_path, rid)
    code = f"from mlpsweep.records import claim; claim.acquire(claim.Path({str(path)!r}))"
    subprocess.run([sys.executable, "-c", code], check=True)  # exits holding the claim
    assert path.exists() and [r for r, _ in records.stale_claims(tmp_path)] == [rid]
    with records.claim_run(tmp_path, rid):
        assert json.loads(path.read_text())["pid"] == os.getpid()
    # said as it was judged (before the file went: a gone file's age is infinite)
    assert "is gone; its run is taken over" in caplog.text and "inf s" not in caplog.text


def test_a_claim_without_heartbeat_is_stale_even_from_another_host(tmp_path):
    path = claim.claim_path(tmp_path, "0123456789abcdef")
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"host": "elsewhere", "pid": 1, "token": "t"}))
    with pytest.raises(records.RunBusy, match="on elsewhere"):
        claim.acquire(path)  # fresh heartbeat: alive
    old = time.time() - claim.STALE_S - 5
    os.utime(path, (old, old))
    token = claim.acquire(path)
    claim.release(path, token)
    assert not path.exists()


def test_release_leaves_a_claim_that_another_process_took_over(tmp_path):
    path = claim.claim_path(tmp_path, "0123456789abcdef")
    token = claim.acquire(path)
    path.write_text(json.dumps({"host": "h", "pid": 1, "token": "someone else"}))
    claim.release(path, token)
    assert path.exists()


@pytest.mark.slow
@pytest.mark.e2e
def test_two_identical_sweeps_into_one_folder_train_each_run_once(tmp_path):
    args = [
        *APP,
        "-m",
        "seed=range(6)",
        "steps=600",
        "report=false",
        "hydra.launcher.n_jobs=1",
        "hydra.sweep.dir=shared",
    ]
    procs = [
        subprocess.Popen(
            args, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    # each once, by one of them
    assert trained_seeds(*outs) == sorted(f"seed={s}" for s in range(6))
    sweep = tmp_path / "shared"
    assert all(
        records.is_finished(records.run_dir(sweep, r))
        for r in records.SweepManifest.read(sweep).run_ids
    )
    assert not (sweep / "claims").exists()  # no claim left: the folder tidied away


# --- damaged records -----------------------------------------------------------------


@pytest.mark.slow  # over 1.4 s: kept out of the one-minute quick suite
def test_a_damaged_record_is_rerun_and_listed_not_read(tmp_path, capsys):
    sweep = tmp_path / "sweep"
    multirun(sweep, "seed=0,1", "steps=200", "eval_every=100", "report=false")
    first = records.run_dir(sweep, records.SweepManifest.read(sweep).run_ids[0])
    hist = first / "history.parquet"
    data = bytearray(hist.read_bytes())
    data[200:1200] = os.urandom(1000)  # the footer intact: the file still opens
    hist.write_bytes(bytes(data))
    metrics, problem = records.inspect_run(first)
    assert metrics is None and "history.parquet" in problem and "checksum" in problem

    from mlpsweep.report import build_report
    from mlpsweep.report.collect import collect

    runs = collect(sweep, write=False).runs
    assert sorted(runs["status"]) == ["corrupt", "ok"]
    assert "corrupt" in build_report(sweep).read_text()

    capsys.readouterr()
    multirun(sweep, "seed=0,1", "steps=200", "eval_every=100", "report=false")
    assert "2 runs in" in capsys.readouterr().err or records.is_finished(first)
    assert records.is_finished(first)


# --- memory --------------------------------------------------------------------------


def test_memory_estimate_grows_with_the_network_and_the_optimizer():
    small, big = TrainConfig(width=100), TrainConfig(width=20000)
    assert run_bytes(big, 784, 10) > 3 * 2**30 > run_bytes(small, 784, 10)
    assert (
        run_bytes(TrainConfig(width=4000, optimizer="adam"), 784, 10)
        > run_bytes(TrainConfig(width=4000), 784, 10) * 2
    )
    assert (
        parse_size("1.5G") == 3 * 2**29 and parse_size("512M") == 2**29 and parse_size("100") == 100
    )
    with pytest.raises(ValueError):
        parse_size("lots")


def test_memory_check_counts_the_concurrent_runs():
    class Spec:  # the fields of a RunSpec that check_memory reads
        train, input_size, num_classes = TrainConfig(width=20000), 784, 10

        def describe(self):
            return "width=20000"

    one = run_bytes(Spec.train, 784, 10)
    check_memory([Spec(), Spec()], 1, str(one + 2**20))
    with pytest.raises(
        ConfigError, match="2 runs at once need .*hydra.launcher.n_jobs.*max_memory=SIZE"
    ):
        check_memory([Spec(), Spec()], 2, str(one + 2**20))
    with pytest.raises(ConfigError, match="max_memory='x'"):
        check_memory([Spec()], 1, "x")


@pytest.mark.parametrize("args", [["width=10000000"], ["-m", "width=10000000", "seed=0,1"]])
def test_a_run_too_big_for_memory_is_refused_before_it_starts(tmp_path, args):
    p = run_cli(tmp_path, *args)
    assert p.returncode == 2 and len(p.stderr.strip().splitlines()) == 1, p.stderr
    assert (
        "not enough memory" in p.stderr
        and "width=10000000" in p.stderr
        and "max_memory" in p.stderr
    )
    assert not (tmp_path / "results").exists()


# --- up-front checks -----------------------------------------------------------------


@pytest.mark.parametrize(
    "args, line",
    [
        (["-m", "seed=range(0)"], "the sweep has no jobs"),
        (["-m", "sweep_name=my", "study"], "a value with spaces must be quoted"),
        (["-m", "sweep_name=my study"], "(e.g. sweep_name=my_study)"),
        (["-m", "seed=0", "hydra.launcher.backend=bogus"], "bogus: not a joblib backend (known:"),
        (["-m", "seed=0", "hydra.launcher.backend=multiprocessing"], "use loky (the default)"),
        (["-m", "seed=0", "sweep_name=étude"], "e.g. sweep_name=etude"),
        (["-m", "seed=0,1", "objective=steps_to_target"], "needs a target to reach, e.g."),
        (["-m", "seed=0", 'sweep_name="étude"'], "e.g. sweep_name=etude"),
        (["-m", "seed=0", "sweep_name=étude 2"], "e.g. sweep_name=etude_2"),
        (["-m", "seed=0", "sweep_name=" + "a" * 256], "e.g. sweep_name=" + "a" * 100 + " "),
    ],
)
def test_more_bad_input_gives_one_line(tmp_path, args, line):
    p = run_cli(tmp_path, *args)
    assert p.returncode == 2 and line in p.stderr and len(p.stderr.strip().splitlines()) == 1, (
        p.stderr
    )
    assert not (tmp_path / "results").exists()


@pytest.mark.slow  # over 1.4 s: kept out of the one-minute quick suite
def test_a_refused_extension_leaves_the_sweep_as_it_was(tmp_path):
    assert run_cli(tmp_path, "-m", "steps=5", "seed=0", "report=false").returncode == 0
    [sweep] = sweep_dirs(tmp_path)
    before = (sweep / records.MANIFEST).read_bytes()
    for bad in ("hydra.launcher.backend=bogus", "lr=-1", "width=10000000"):
        p = run_cli(tmp_path, "-m", "steps=5", "seed=0,1", "resume=true", "extend=true", bad)
        assert p.returncode == 2, p.stderr
        assert "resume=True" not in p.stderr and "extend=True" not in p.stderr
        assert (sweep / records.MANIFEST).read_bytes() == before and sweep_dirs(tmp_path) == [sweep]


# --- worker loss -----------------------------------------------------------------------


def test_recovery_blames_the_job_that_ran_alone():
    overrides = [[f"seed={i}"] for i in range(4)]
    returns = [None] * 4
    with Recovery(4, retries=0, first_idx=10) as plan:
        batch, alone = plan.next_batch()
        assert (batch, alone) == ([0, 1, 2, 3], False)
        returns[0] = "done"
        for idx in (11, 12):  # jobs 1 and 2 were running when a worker died
            (plan.marks / str(idx)).touch()
        plan.worker_died(batch, returns, overrides, RuntimeError())
        assert plan.next_batch() == ([1], True)  # each suspect alone first
        (plan.marks / "11").touch()
        plan.worker_died([1], returns, overrides, RuntimeError())  # died alone: it
        assert isinstance(return_value(returns[1]), WorkerLost) and "out of memory" in str(
            return_value(returns[1])
        )
        assert plan.next_batch() == ([2], True)
        assert plan.next_batch() == ([3], False)
        assert plan.next_batch() == ([], False)
        for _ in range(3):  # deaths with nothing running: given up on after a few
            plan.worker_died([3], returns, overrides, RuntimeError("broken"))
        with pytest.raises(RuntimeError, match="broken"):
            plan.worker_died([3], returns, overrides, RuntimeError("broken"))


def claim_holder(sweep_root, override):
    """The pid holding the claim of the run with `override`, once there is one."""
    dirs = sweep_dirs(sweep_root)
    if not dirs or not records.SweepManifest.exists(dirs[0]):
        return None
    manifest = records.SweepManifest.read(dirs[0])
    rid = next(r.run_id for r in manifest.runs if override in r.overrides)
    holder = claim.read_claim(claim.claim_path(dirs[0], rid))
    return holder and holder["pid"]


@pytest.mark.slow
@pytest.mark.e2e
def test_a_job_whose_worker_keeps_dying_fails_alone_and_the_sweep_goes_on(tmp_path):
    """Every worker that runs seed=1 is SIGKILLed (as the OOM killer would): that job
    fails with 'worker died', its sibling finishes, the report is built, exit 1 with a
    resume hint; resuming then trains it."""
    args = ["-m", "seed=0,1", "steps=1500", "hydra.launcher.n_jobs=2"]
    proc = subprocess.Popen(
        [*APP, *args], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    killed = set()

    def kill_seed1_workers():
        while proc.poll() is None:
            pid = claim_holder(tmp_path, "seed=1")
            if pid and pid != proc.pid and pid not in killed:
                os.kill(pid, signal.SIGKILL)
                killed.add(pid)
            time.sleep(0.02)

    killer = threading.Thread(target=kill_seed1_workers)
    killer.start()
    out, err = proc.communicate(timeout=300)
    killer.join()
    assert proc.returncode == 1, err
    assert len(killed) == 2  # in the pair, then alone
    assert records.WORKER_DIED in err and "resume=true" in err and "Traceback" not in err
    [sweep] = sweep_dirs(tmp_path)
    statuses = {}
    for planned in records.SweepManifest.read(sweep).runs:
        m = records.read_metrics(records.run_dir(sweep, planned.run_id))
        statuses[planned.overrides[0]] = (m.status, m.error)
    assert statuses["seed=0"] == ("ok", None)
    assert statuses["seed=1"] == ("failed", records.WORKER_DIED)
    assert (sweep / "report.html").exists()
    p = run_cli(tmp_path, *args, "resume=true")
    assert p.returncode == 0 and "1 to train, 1 already done" in p.stdout, p.stderr


@pytest.mark.slow
@pytest.mark.e2e
def test_one_killed_worker_costs_nothing(tmp_path):
    proc = subprocess.Popen(
        [*APP, "-m", "seed=range(6)", "steps=1500", "hydra.launcher.n_jobs=2", "report=false"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    wait_for_runs(tmp_path, 1)
    found = []  # the pid of a worker running one of the last jobs, once one does

    def running():
        found.append(claim_holder(tmp_path, "seed=5") or claim_holder(tmp_path, "seed=4"))
        return found[-1]

    wait_for(running, 120, "a running job")
    os.kill(found[-1], signal.SIGKILL)
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out
    assert "a worker died" in out
    # Each run trained once. A sibling killed with the broken executor may have written
    # its record already: its rerun then reports it as done instead of training it again.
    trained = trained_seeds(out)
    done = sorted(set(re.findall(r"#\d+ (seed=\d+).*: ok \(already done\)", out)))
    assert len(set(trained)) == len(trained)
    assert sorted(trained + done) == sorted(f"seed={s}" for s in range(6))


# --- signals ---------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.e2e
@pytest.mark.parametrize("to_group", [False, True])
def test_sigterm_stops_like_ctrl_c(tmp_path, to_group):
    """SIGTERM to the sweep process (kill) or to its whole group (SLURM, systemd)."""
    import psutil

    proc = subprocess.Popen(
        [*APP, "-m", "seed=range(12)", "steps=800", "report=false", "hydra.launcher.n_jobs=2"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    wait_for_runs(tmp_path, 2)
    workers = psutil.Process(proc.pid).children(recursive=True)
    if to_group:
        os.killpg(proc.pid, signal.SIGTERM)
    else:
        proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=90)
    assert proc.returncode == 143, err
    assert "terminated: finished runs kept" in err and "resume=true" in err
    assert "Traceback" not in err and "leaked" not in err and "worker died" not in err
    _, alive = psutil.wait_procs(workers, timeout=10)
    assert not alive
    [sweep] = sweep_dirs(tmp_path)
    assert sum(records.is_finished(r) for r in (sweep / "runs").iterdir()) >= 2


@pytest.fixture
def tmpfs(mount_tmpfs):
    return mount_tmpfs("64m")


@pytest.mark.slow
@pytest.mark.e2e
def test_a_folder_made_read_only_mid_sweep_says_so(tmp_path, tmpfs):
    proc = subprocess.Popen(
        [
            *APP,
            "-m",
            "seed=range(8)",
            "steps=1500",
            "report=false",
            "hydra.launcher.n_jobs=1",
            f"hydra.sweep.dir={tmpfs}/sweep",
        ],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_for(lambda: list(tmpfs.glob("sweep/runs/*/metrics.json")), 120, "a finished run")
    subprocess.run(["mount", "-o", "remount,ro", str(tmpfs)], check=True)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 1, err
    assert err.startswith("mlpsweep: cannot write results to") and err.count("\n") == 1, err
    assert "Read-only file system" in err and "make the folder writable" in err
    assert "rerun with resume=true" in err
