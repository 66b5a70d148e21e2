"""Crash safety, resume safety, failure policy and bad input (issue: nothing is lost)."""

import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from helpers import REPO, finished_runs, run_cli, sweep_dirs, wait_for, wait_for_runs

from mlpsweep import records


def digest(run_dir):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(run_dir.iterdir())}


def finished(sweep):
    return {r.name: digest(r) for r in (sweep / "runs").iterdir() if records.is_finished(r)}


@pytest.mark.e2e
def test_kill9_during_a_result_write_leaves_no_readable_result(tmp_path):
    """A process SIGKILLed in the middle of writing metrics.json: the run is not taken
    as finished, and the next sweep cleans the leftover temporary file."""
    run = tmp_path / "run"
    code = textwrap.dedent(f"""
        import os, signal
        from mlpsweep.records.files import atomic_write
        def write(f):
            f.write(b'{{"status": "ok", "steps_d')
            f.flush()
            os.kill(os.getpid(), signal.SIGKILL)
        os.makedirs({str(run)!r}, exist_ok=True)
        atomic_write({str(run / "metrics.json")!r}, write)
    """)
    p = subprocess.run([sys.executable, "-c", code])
    assert p.returncode == -signal.SIGKILL
    assert not (run / "metrics.json").exists() and list(run.glob(".metrics.json.*.tmp"))
    assert records.read_metrics(run) is None and not records.is_finished(run)
    records.remove_partial(run)
    assert not list(run.iterdir())


@pytest.mark.slow
@pytest.mark.e2e
def test_random_kills_lose_nothing_and_retrain_nothing_finished(tmp_path):
    rng = random.Random(7)
    args = [
        sys.executable,
        str(REPO / "run.py"),
        "-m",
        "seed=range(12)",
        "steps=400",
        "batch_size=50",
        "report=false",
        "resume=true",
    ]
    kept, kills = {}, 0
    for _ in range(8):
        proc = subprocess.Popen(
            args,
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        # Kill at a random point of progress: after 1 to 3 more runs have finished.
        target = len(finished_runs(tmp_path)) + rng.randint(1, 3)
        wait_for(lambda p=proc, n=target: p.poll() is not None or len(finished_runs(tmp_path)) >= n)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)  # the sweep and its workers, mid-flight
            kills += 1
        proc.communicate()
        [sweep] = sweep_dirs(tmp_path)
        now = finished(sweep)
        for rid, files in kept.items():
            assert now[rid] == files, f"{rid} changed after it had finished"
        kept = now
        if proc.returncode == 0:
            break
    final = subprocess.run(args, cwd=tmp_path, capture_output=True, text=True)
    assert final.returncode == 0, final.stderr[-2000:]
    [sweep] = sweep_dirs(tmp_path)
    assert len(finished(sweep)) == 12 and kills >= 2
    # A finished run is never trained (or written) again: its files stay byte for byte
    # what they were when it finished, through every later kill and rerun.
    for rid, files in kept.items():
        assert finished(sweep)[rid] == files
    assert "(already done)" not in final.stdout + final.stderr  # the planner left them out


@pytest.mark.slow  # over 1.4 s: kept out of the one-minute quick suite
def test_resume_into_another_sweep_definition_is_refused_unless_extended(tmp_path):
    assert run_cli(tmp_path, "-m", "seed=0,1", "steps=10", "report=false").returncode == 0
    [sweep] = sweep_dirs(tmp_path)
    p = run_cli(tmp_path, "-m", "seed=0,1", "steps=20", "report=false", "resume=true")
    assert p.returncode == 2 and "holds another sweep definition" in p.stderr
    assert "2 of this command's 2 runs are not in it" in p.stderr
    p = run_cli(
        tmp_path, "-m", "seed=0,1,2", "steps=10", "report=false", "resume=true", "extend=true"
    )
    assert p.returncode == 0, p.stderr
    assert "3 runs in" in p.stdout + p.stderr and "1 to train, 2 already done" in p.stdout
    assert sweep_dirs(tmp_path) == [sweep]
    assert len(json.loads((sweep / "sweep.json").read_text())["runs"]) == 3


@pytest.mark.slow  # over 1.4 s: kept out of the one-minute quick suite
def test_dry_run_lists_jobs_and_writes_nothing(tmp_path):
    assert run_cli(tmp_path, "-m", "seed=0", "steps=10", "report=false").returncode == 0
    before = sorted(p for p in tmp_path.rglob("*"))
    p = run_cli(
        tmp_path, "-m", "seed=0,1", "steps=10", "resume=true", "extend=true", "dry_run=true"
    )
    assert p.returncode == 0, p.stderr
    assert "2 runs" in p.stdout and "1 to train, 1 already done" in p.stdout
    assert "  done " in p.stdout and "  train " in p.stdout
    assert sorted(p for p in tmp_path.rglob("*")) == before
    p = run_cli(tmp_path / "fresh", "-m", "lr=0.1,0.2", "dry_run=true")
    assert p.returncode == 0 and not (tmp_path / "fresh" / "results").exists()


@pytest.mark.slow
@pytest.mark.e2e
def test_fail_fast_and_retries(tmp_path):
    p = run_cli(
        tmp_path / "a",
        "-m",
        "width=100000000,16,17",
        "depth=1",
        "steps=10",
        "hydra.launcher.fail_fast=true",
        "hydra.launcher.n_jobs=1",
        "max_memory=1000T",  # past the memory check: the job itself fails (MemoryError)
    )
    assert p.returncode == 1
    assert "1 of 3 runs failed, 2 not run" in p.stderr
    p = run_cli(
        tmp_path / "b", "width=100000000", "depth=1", "steps=10", "retries=2", "max_memory=1000T"
    )
    assert p.returncode == 1
    [out] = (tmp_path / "b" / "results" / "single").iterdir()
    assert json.loads((out / "metrics.json").read_text())["attempts"] == 3
    assert (out / "job.log").read_text().count("MemoryError") >= 3


@pytest.mark.parametrize(
    "args, line",
    [
        (["lr=0"], "lr=0.0: must be > 0"),
        (["lr=-1"], "lr=-1.0: must be > 0"),
        (["batch_size=0"], "batch_size=0: must be an integer >= 1"),
        (["batch_size=-3"], "batch_size=-3: must be an integer >= 1"),
        (["batch_size=2.5"], "batch_size=2.5: Value '2.5' of type 'float' could not be converted"),
        (["batch_size=5000"], "batch_size=5000: must be an integer >= 1 and <= 4000"),
        (["depth=-1"], "depth=-1: must be an integer >= 0"),
        (["width=0"], "width=0: must be an integer >= 1"),
        (["steps=0"], "steps=0: must be an integer >= 1"),
        (["optimizer=lbfgs"], "optimizer=lbfgs: no such optimizer (available: adagrad, adam"),
        (["activation=gelu"], "activation=gelu: Invalid value 'gelu', expected one of [relu,"),
        (["init=lecun"], "init='lecun': must be one of he, xavier"),
        (["dataset=cifar"], "dataset=cifar: no such dataset (available: fashion_mnist, mnist"),
        (["lr=fast"], "lr=fast: Value 'fast' of type 'str' could not be converted to Float"),
        (["btach_size=10"], "unknown key 'btach_size' (did you mean 'batch_size'?)"),
        (["bogus=1,2"], "unknown key 'bogus'"),  # swept: each job's value is checked
        # Refused after the first job passed (a later job or the memory check fails):
        # still one line.
        (["lr=0.1,-1"], "lr=-1.0: must be > 0"),
        (["seed=0,1", "max_memory=1KB"], "more than the 1.0 KiB allowed by max_memory"),
    ],
)
def test_bad_input_gives_one_line_and_writes_nothing(tmp_path, args, line):
    p = run_cli(tmp_path, "-m", *args, "steps=3" if "steps=0" not in args else "seed=0")
    assert p.returncode == 2
    assert p.stderr.count("\n") == 1 and p.stderr.startswith("mlpsweep: "), p.stderr
    assert line in p.stderr
    assert not (tmp_path / "results").exists()


@pytest.mark.parametrize("args", [["-m", "activation=gelu"], ["-m", "lr=0.1,-1", "steps=2"]])
def test_full_error_shows_the_traceback(tmp_path, args):
    """The user's HYDRA_FULL_ERROR=1 gives the traceback, for a value the planner refuses
    too (it once gave the one line alone)."""
    p = run_cli(tmp_path, *args, env={"HYDRA_FULL_ERROR": "1"})
    assert p.returncode != 0 and "Traceback" in p.stderr


def test_a_missing_config_is_named_not_called_a_write_error(tmp_path):
    p = run_cli(tmp_path, "--config-name=nope")
    assert p.returncode == 2 and "Cannot find primary config 'nope'" in p.stderr, p.stderr
    assert "cannot write" not in p.stderr


def test_only_the_users_full_error_gives_a_single_runs_traceback(tmp_path):
    # run_main sets HYDRA_FULL_ERROR=1 itself: that one does not count, the user's does
    p = run_cli(tmp_path, "steps=1", "lr=-1")
    assert p.returncode == 2 and p.stderr.count("\n") == 1 and "Traceback" not in p.stderr
    p = run_cli(tmp_path, "steps=1", "lr=-1", env={"HYDRA_FULL_ERROR": "1"})
    assert p.returncode != 0 and "Traceback" in p.stderr
    assert not (tmp_path / "results").exists()


def test_run_main_sets_hydras_full_error_as_its_own_and_puts_it_back(monkeypatch):
    import gc

    from mlpsweep.app import main as app_main
    from mlpsweep.app.errors import SET_BY_RUN_MAIN, user_wants_tracebacks

    seen = []

    def hydra_main():
        seen.append((os.environ.get("HYDRA_FULL_ERROR"), user_wants_tracebacks()))
        raise ValueError("what went wrong")

    handlers = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGHUP)}
    monkeypatch.setattr(sys, "stderr", sys.stderr)  # run_main wraps it
    try:
        for users in (None, "1"):
            if users is None:
                monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
            else:
                monkeypatch.setenv("HYDRA_FULL_ERROR", users)
            with pytest.raises((SystemExit, ValueError)) as e:
                app_main.run_main(hydra_main)
            assert (e.type is ValueError) == (users == "1")  # the user's: the traceback
            assert os.environ.get("HYDRA_FULL_ERROR") == users
            assert SET_BY_RUN_MAIN not in os.environ
    finally:
        for s, handler in handlers.items():
            signal.signal(s, handler)
        gc.unfreeze()
    assert seen == [("1", False), ("1", True)]


def test_an_interrupted_single_run_leaves_no_folder(tmp_path, monkeypatch):
    from mlpsweep.app import single, task

    def interrupted(spec, record_dir, **kwargs):
        assert (record_dir / single.MARK).exists()  # its folder, marked as training
        raise KeyboardInterrupt

    monkeypatch.setattr(task, "train_and_write", interrupted)
    p = run_cli(tmp_path, "steps=1")
    assert p.returncode == 130
    assert p.stderr == "mlpsweep: interrupted: the run did not finish; nothing was kept\n"
    assert not (tmp_path / "results").exists()


@pytest.mark.parametrize("finished", [0, 1])
def test_an_interrupted_sweep_says_whether_anything_was_kept(tmp_path, monkeypatch, finished):
    """Ctrl-C before any run finished: the new sweep's folder is gone, so the line must not
    say "rerun with resume=true" (which found an older sweep and refused it); after a
    run finished: it is kept, and resume=true finishes the rest."""
    from mlpsweep.app import task

    calls, real = [], task.train_and_write

    def interrupted(spec, record_dir, **kwargs):
        calls.append(spec)
        if len(calls) > finished:
            raise KeyboardInterrupt
        return real(spec, record_dir, **kwargs)

    monkeypatch.setattr(task, "train_and_write", interrupted)
    p = run_cli(tmp_path, "-m", "seed=0,1", "steps=2", "report=false", "hydra.launcher.n_jobs=1")
    assert p.returncode == 130, p.stderr
    if finished:
        assert (
            "interrupted: finished runs kept; rerun the same command with resume=true" in p.stderr
        )
        assert len(list(tmp_path.glob("results/adhoc/*/runs/*/metrics.json"))) == 1
    else:
        assert "interrupted before any run finished: nothing was kept" in p.stderr
        assert "without resume=true" in p.stderr
        assert not list(tmp_path.glob("results/adhoc/*/"))


def test_a_command_that_only_shows_or_dry_runs_names_its_folder_and_makes_none(tmp_path):
    from mlpsweep.app import resolvers

    shows = [
        ["--cfg", "job"], ["--info=all"], ["--cf", "hydra", "--resolve"], ["-chydra"],
        ["--cf=all"], ["--inf"], ["--hydra-h"], ["-h"], ["lr=0.1", "--cfg", "job"],
    ]  # fmt: skip
    for args in shows:  # as Hydra's parser reads them: abbreviated, value attached
        assert resolvers.only_shows(args), args
    for args in (["-m", "lr=0.1,0.2"], ["--res"], ["lr=0.1"], ["-m", "sweep_name=cfg"]):
        assert not resolvers.only_shows(args), args
    root = tmp_path / "results"
    assert Path(resolvers.run_dir(root, dry_run=True)).parent == root
    assert Path(resolvers.sweep_dir(root, "s", dry_run=True)).parent == root / "s"
    assert not root.exists()
    assert Path(resolvers.run_dir(root)).is_dir()  # a command that runs: made


def test_unwritable_results_directory(tmp_path):
    (tmp_path / "file").write_text("not a directory")
    p = run_cli(tmp_path, "-m", "seed=0", "steps=3", "hydra.sweep.dir=file/sweep")
    assert p.returncode == 2 and p.stderr.count("\n") == 1
    assert "cannot write file/sweep: Not a directory" in p.stderr


@pytest.fixture
def tiny_disk(mount_tmpfs):
    return mount_tmpfs("48k")


@pytest.mark.slow  # over 1.4 s: kept out of the one-minute quick suite
def test_a_full_disk_stops_with_one_line_and_no_half_written_result(tmp_path, tiny_disk):
    p = run_cli(
        tmp_path,
        "-m",
        "seed=range(6)",
        "steps=200",
        "report=false",
        f"hydra.sweep.dir={tiny_disk}/sweep",
    )
    assert p.returncode == 1
    assert "No space left on device" in p.stderr and "rerun with resume=true" in p.stderr
    runs = list((tiny_disk / "sweep" / "runs").iterdir())
    assert runs and not list(tiny_disk.rglob("*.tmp"))
    for run in runs:  # every run is either wholly finished or not taken for a result
        metrics = records.read_metrics(run)
        assert metrics is None or metrics.steps_done == 200


def test_corrupt_dataset_and_checksum_mismatch_fail_before_any_job(tmp_path):
    folder = tmp_path / "data" / "fashion_mnist"
    folder.mkdir(parents=True)
    (folder / "train-images-idx3-ubyte.gz").write_bytes(b"\x1f\x8b" + os.urandom(200))
    p = run_cli(
        tmp_path, "-m", "dataset=fashion_mnist", f"dataset.data_dir={tmp_path / 'data'}", "steps=3"
    )
    assert p.returncode == 2 and p.stderr.count("\n") == 1
    assert "train-images-idx3-ubyte.gz" in p.stderr
    assert "corrupted gzip stream" in p.stderr or "checksum mismatch" in p.stderr
    assert not (tmp_path / "results").exists()


@pytest.mark.slow
@pytest.mark.e2e
def test_editing_a_sweep_file_mid_sweep_does_not_change_composed_jobs(tmp_path):
    import shutil

    app = tmp_path / "app"
    shutil.copytree(REPO / "conf", app / "conf", symlinks=False)
    shutil.copy(REPO / "run.py", app / "run.py")
    (app / "conf" / "sweep" / "probe.yaml").write_text(
        "# @package _global_\nsweep_name: probe\nlr: 0.05\nhydra:\n  sweeper:\n"
        "    params:\n      seed: range(6)\n"
    )
    proc = subprocess.Popen(
        [
            sys.executable,
            str(app / "run.py"),
            "-m",
            "+sweep=probe",
            "steps=500",
            "report=false",
            "hydra.launcher.n_jobs=1",
        ],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert wait_for_runs(tmp_path, 1), "no run finished"
    (app / "conf" / "sweep" / "probe.yaml").write_text(
        (app / "conf" / "sweep" / "probe.yaml").read_text().replace("lr: 0.05", "lr: 0.9")
    )
    out = proc.communicate(timeout=300)[0]
    assert proc.returncode == 0, out[-2000:]
    [sweep] = sweep_dirs(tmp_path, "probe")
    lrs = {
        json.loads((r / "metrics.json").read_text())["run_id"]: (r / "config.yaml").read_text()
        for r in (sweep / "runs").iterdir()
    }
    assert len(lrs) == 6 and all("lr: 0.05" in text for text in lrs.values())


def ignores_sigint(pid):
    try:
        with open(f"/proc/{pid}/status") as status:
            mask = next(line for line in status if line.startswith("SigIgn:")).split()[1]
    except FileNotFoundError:  # it has just exited
        return False
    return bool(int(mask, 16) & (1 << (signal.SIGINT - 1)))


def loky_children(pid):
    import psutil

    try:
        children = psutil.Process(pid).children(recursive=True)
        return [c for c in children if "popen_loky" in " ".join(c.cmdline())]
    except psutil.Error:
        return []


def started_loky_workers(pid, count=2, timeout=60):
    """The sweep's loky workers, once `count` of them have run their start-up hook
    (launcher.worker.start_loky_worker), which makes them ignore SIGINT."""

    def ready():
        return [w for w in loky_children(pid) if ignores_sigint(w.pid)]

    wait_for(lambda: len(ready()) >= count, timeout, f"{count} loky workers")
    return ready()


@pytest.mark.slow
@pytest.mark.e2e
@pytest.mark.parametrize("when", ["running", "starting"])
def test_workers_exit_when_the_sweep_process_is_killed(tmp_path, when):
    """kill -9 of the sweep process alone: its loky workers must not run on as orphans,
    whether they were running jobs or still starting up (installing Hydra's state)."""
    import psutil

    proc = subprocess.Popen(
        [
            *[sys.executable, str(REPO / "run.py"), "-m", "seed=range(6)", "steps=5000"],
            *["report=false", "hydra.launcher.n_jobs=2"],  # 2 workers, whatever the cores
        ],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    if when == "running":
        workers = started_loky_workers(proc.pid)
    else:  # as soon as the first worker process exists
        workers = []
        wait_for(lambda: bool(workers.extend(loky_children(proc.pid)) or workers), 60, "a worker")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    gone, alive = psutil.wait_procs(workers, timeout=10)
    for p in alive:
        p.kill()
    assert not alive, f"{len(alive)} workers outlived the sweep process"


@pytest.mark.slow
@pytest.mark.e2e
def test_ctrl_c_stops_cleanly_and_keeps_finished_runs(tmp_path):
    proc = subprocess.Popen(
        [
            *[sys.executable, str(REPO / "run.py"), "-m", "seed=range(12)", "steps=800"],
            *["report=false", "hydra.launcher.n_jobs=2"],  # 2 workers, whatever the cores
        ],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    assert wait_for_runs(tmp_path, 2) >= 2, "runs did not finish"
    # Workers ignore SIGINT, so none prints a traceback when it lands between two jobs.
    assert len(started_loky_workers(proc.pid)) == 2
    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
    _, err = proc.communicate(timeout=90)
    assert proc.returncode == 130
    assert "finished runs kept" in err and "resume=true" in err and "Traceback" not in err
    [sweep] = sweep_dirs(tmp_path)
    kept = [r for r in (sweep / "runs").iterdir() if records.is_finished(r)]
    assert len(kept) >= 2


@pytest.mark.parametrize("name", ["../../escape", "/tmp/abs", "a/b", ".."])
def test_a_sweep_name_cannot_write_outside_results(tmp_path, name):
    work = tmp_path / "work"
    p = run_cli(work, "-m", "steps=5", "seed=0", f"sweep_name={name}")
    assert p.returncode == 2 and p.stderr.count("\n") == 1
    assert "must be a plain folder name" in p.stderr and "Traceback" not in p.stderr
    assert [q.name for q in tmp_path.iterdir()] == ["work"] and not any(work.iterdir())
