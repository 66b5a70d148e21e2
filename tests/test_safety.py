"""Bad input and odd states each get one line, and nothing is lost or waited on forever:
single runs never overwrite, resume finds the newest sweep, a clock-skewed claim goes
stale, a garbage manifest or study declaration is refused by name."""

import gc
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import finished_runs, multirun, run_cli, run_once, start_app, wait_for

from mlpsweep import records
from mlpsweep.cli import main as cli


def test_a_single_run_never_writes_over_another(tmp_path):
    folder = tmp_path / "run"
    run_once(folder, "steps=10", "seed=1")
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    with pytest.raises(SystemExit) as e:
        run_once(folder, "steps=10", "seed=2")
    assert e.value.code == 2
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before


@pytest.mark.slow
@pytest.mark.e2e
def test_an_interrupted_single_run_speaks_of_the_run_and_leaves_no_folder(tmp_path):
    proc = start_app(tmp_path, "steps=1000000", stderr=__import__("subprocess").PIPE, text=True)
    wait_for(lambda: list(tmp_path.glob("results/single/*/")), what="the run's folder")
    time.sleep(0.5)  # the run is training (its folder is made before the job starts)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143
    assert "the run did not finish; nothing was kept" in err and "resume" not in err
    assert not (tmp_path / "results").exists()


def test_resume_takes_the_newest_sweep_by_when_it_was_made(tmp_path):
    from mlpsweep.app.resolvers import sweep_dir

    parent = tmp_path / "results" / "s"
    stamp = "2026-12-01_10-00-00"
    for name in [stamp, *(f"{stamp}_{n}" for n in range(2, 11))]:
        records.SweepManifest(runs=[]).write(parent / name)
    assert sweep_dir(tmp_path / "results", "s", resume=True) == str(parent / f"{stamp}_10")


def test_a_claim_with_a_future_heartbeat_goes_stale(tmp_path):
    claims = tmp_path / records.claim.CLAIMS
    claims.mkdir()
    path = claims / ("ab" * 8 + ".json")
    path.write_text(json.dumps({"pid": os.getpid(), "host": "elsewhere", "token": "t"}))
    assert records.live_claims(tmp_path) == [path.stem]  # another host, fresh: alive
    later = time.time() + 3600  # its clock an hour ahead (a shared filesystem)
    os.utime(path, (later, later))
    assert records.live_claims(tmp_path) == []
    assert [rid for rid, _ in records.stale_claims(tmp_path)] == [path.stem]


@pytest.mark.parametrize(
    "text, says",
    [
        ('{"runs": [], "study": "hello"}', "study: a str, not a dict"),
        ('{"runs": [], "study": [1, 2]}', "study: a list, not a dict"),
        ('{"runs": []}', None),
        ('{"runs": [], "overrides": [1, 2]}', None),
        ('{"runs": [{"run_id": "0123456789abcdef", "overrides": [1, 2]}]}', "list of strings"),
        ("[" * 100000 + "]" * 100000, "RecursionError"),
        ('{"runs": {}}', "no list of runs"),
    ],
)
def test_a_garbage_manifest_is_one_line_for_every_command(tmp_path, capsys, text, says):
    (tmp_path / records.MANIFEST).write_text(text)
    if says is None:  # well-formed enough: an empty sweep
        records.SweepManifest.read(tmp_path)
        return
    with pytest.raises(records.SweepError, match=says):
        records.SweepManifest.read(tmp_path)
    for command in (["report", str(tmp_path)], ["runs", str(tmp_path)]):
        assert cli(command) == 2
        err = capsys.readouterr().err
        assert err.startswith("mlpsweep: ") and "Traceback" not in err and err.count("\n") == 1


@pytest.mark.parametrize(
    "study, says",
    [
        ("{compare: lr}", "study.compare: must be a list of names"),
        ("{compare: [nonexist]}", "'nonexist' is not a setting of this sweep's runs"),
        ("{replicate: lr}", "only seed repeats a config"),
        ("{compare: [lr], nuisance: [lr]}", "'lr' is both compared and tuned"),
    ],
)
def test_a_malformed_study_is_refused_before_any_run(tmp_path, capsys, study, says):
    with pytest.raises(SystemExit) as e:
        multirun(tmp_path / "s", f"study={study}", "lr=0.1,0.2", "steps=5")
    assert e.value.code == 2 and says in capsys.readouterr().err
    assert not list(tmp_path.glob("**/metrics.json"))


def test_the_threading_backend_is_refused_up_front(tmp_path):
    from mlpsweep.launcher.engines import EngineError, LokyEngine, engine_for

    with pytest.raises(EngineError, match="use loky"):
        engine_for("threading")
    assert isinstance(engine_for("loky"), LokyEngine)


@pytest.mark.parametrize(
    "value, says",
    [
        ("[bogus]", "no shortcut named bogus"),
        ("[all,bogus]", "no shortcut named bogus"),  # not hidden behind `all`
        ("[Compose]", "no shortcut named Compose"),
        ("[[compose]]", "a list of names, e.g. [compose]"),
    ],
)
def test_a_shortcut_that_is_not_one_is_refused_in_one_line_before_any_run(tmp_path, value, says):
    from mlpsweep.launcher.shortcuts import SHORTCUTS, shortcuts_on

    p = run_cli(tmp_path, "-m", f"hydra.launcher.no_shortcuts={value}", "seed=0,1", "steps=2")
    assert p.returncode == 2 and p.stderr.count("\n") == 1 and says in p.stderr, p.stderr
    assert not list(tmp_path.glob("**/metrics.json"))
    assert shortcuts_on([]) == set(SHORTCUTS) and shortcuts_on(["all", "all"]) == set()
    assert shortcuts_on(["compose", "compose"]) == set(SHORTCUTS) - {"compose"}


def test_blas_threads_are_capped_at_the_cores(caplog):
    from mlpsweep.app.spec import capped_threads

    cores = len(os.sched_getaffinity(0))
    assert capped_threads(100000) == cores and "using" in caplog.text
    assert capped_threads(1) == 1


@pytest.mark.parametrize(
    "args",
    [
        ["faults", "--jobs", "0"],
        ["faults", "--repeats", "0"],
        ["report", "--runs", "0"],
        ["report", "--steps", "0"],
        ["train", "--rounds", "0"],
        ["launch", "--jobs", "0"],
        ["kill", "--jobs", "0"],
        ["data", "--dataset", "bogus"],
    ],
)
def test_every_bench_argument_is_checked(args, capsys):
    from mlpsweep.bench import main as bench

    with pytest.raises(SystemExit) as e:
        bench(args)
    err = capsys.readouterr().err
    assert e.value.code == 2 and "error: argument" in err and "Traceback" not in err


def test_a_closed_pipe_and_a_full_disk_are_said_plainly(monkeypatch, capsys):
    import errno

    from mlpsweep.app import errors, main

    def closed():
        raise BrokenPipeError(errno.EPIPE, "Broken pipe")

    monkeypatch.setattr(main, "quiet_stdout", lambda: None)  # keep pytest's stdout
    with pytest.raises(SystemExit) as e:
        main.run_main(closed)
    assert e.value.code == 0 and capsys.readouterr().err == ""
    full = OSError(errno.ENOSPC, "No space left on device")
    assert errors.one_line(full) == "cannot write: No space left on device; free space, then rerun"


@pytest.mark.e2e
@pytest.mark.parametrize(
    "args",
    [["--info"], ["--help"], ["--cfg", "job"], ["--info=all"], ["--inf"],
     ["-m", "seed=0,1", "steps=5", "report=false"]],
)  # fmt: skip
@pytest.mark.slow  # over 1.4 s: kept out of the one-minute quick suite
def test_a_reader_gone_before_the_first_line_is_no_traceback(tmp_path, args):
    """`python run.py --info | head -1`: Hydra prints through logging, whose handler
    reported the closed pipe once per record (74 tracebacks). The pipe's read end is closed
    before the child writes, so every write meets it (no race with the reader)."""
    import subprocess

    read, write = os.pipe()
    os.close(read)
    try:
        p = start_app(tmp_path, *args, stdout=write, stderr=subprocess.PIPE, text=True)
    finally:
        os.close(write)
    _, err = p.communicate(timeout=120)
    assert p.returncode == 0 and err == "", err


@pytest.mark.slow  # over 1.4 s: kept out of the one-minute quick suite
def test_a_bench_on_a_bad_data_folder_says_so_in_one_line(tmp_path, capsys):
    from mlpsweep.cli import main

    a_file = tmp_path / "a_file"
    a_file.write_text("not a folder")
    for where in (a_file, a_file / "below"):
        assert main(["bench", "data", "--data-dir", str(where)]) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and str(a_file) in err and "Traceback" not in err, err


@pytest.mark.slow
@pytest.mark.e2e
def test_a_stopped_worker_cannot_publish_over_the_run_that_was_taken_over(tmp_path):
    """Sweep A's worker SIGSTOPped mid-run past the claim timeout; sweep B into the same
    folder takes the run over and trains it; after SIGCONT, A's worker finds its claim
    gone (the fence) and discards its result. The run is written once, by B."""
    import subprocess

    args = ["-m", "seed=0", "steps=6000", "claim_timeout=2", "report=false"]
    a = start_app(tmp_path, *args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    claims = lambda: list(tmp_path.glob("results/adhoc/*/claims/*.json"))  # noqa: E731
    wait_for(lambda: claims() and claims()[0].stat().st_size > 0, what="A's claim")
    path = claims()[0]
    first = json.loads(path.read_text())
    os.kill(first["pid"], signal.SIGSTOP)
    try:
        b = start_app(tmp_path, *args, "resume=true", stdout=subprocess.PIPE, text=True)
        wait_for(  # B took the run over (a new token) and is training it
            lambda: path.exists() and path.stat().st_size > 0
            and json.loads(path.read_text())["token"] != first["token"],
            what="B's takeover",
        )  # fmt: skip
    finally:
        os.kill(first["pid"], signal.SIGCONT)
    out_a, _ = a.communicate(timeout=300)
    b.communicate(timeout=300)
    assert a.returncode == 0 and b.returncode == 0, out_a
    assert "was taken over while it trained" in out_a and "discarded" in out_a
    [run] = list(tmp_path.glob("results/adhoc/*/runs/*/"))
    metrics = records.read_metrics(run)
    assert metrics is not None and metrics.worker_pid != first["pid"]


def test_a_launch_context_reaches_loky_workers_through_a_verified_private_file(tmp_path):
    """loky writes a worker's start-up data into a pipe the worker reads, and waits
    forever when the worker died first and the data is more than the pipe holds (the
    parent holds the read end too). So the context travels by file: the start-up data
    is a path and a digest, and the file counts only when it is the one written."""
    import pickle

    from mlpsweep.launcher.handover import Parked, park, unpark

    context = {"state": bytes(1 << 20)}  # 1 MiB: far more than a pipe holds
    parked = park(context)
    assert len(pickle.dumps(parked)) < 4096
    folder = Path(parked.path).parent
    assert folder.stat().st_mode & 0o777 == 0o700
    assert unpark(parked) == context
    tampered = Parked(parked.path, "0" * 64)
    with pytest.raises(RuntimeError, match="not the launch context"):
        unpark(tampered)
    Path(parked.path).write_bytes(b"another")
    with pytest.raises(RuntimeError, match="not the launch context"):
        unpark(parked)
    Path(parked.path).unlink()
    other = tmp_path / "other"
    other.write_bytes(b"x")
    Path(parked.path).symlink_to(other)
    with pytest.raises(OSError):  # a link in its place is not followed
        unpark(parked)


@pytest.mark.parametrize("kind", ["launch", "running"])
def test_temp_folders_of_gone_processes_of_this_host_are_removed_and_no_others(
    tmp_path, monkeypatch, kind
):
    """A launch's folders in the temp dir (its parked context, its running marks) of a
    process that is gone are removed by the next launch: of this host and PID namespace
    only (a temp dir shared with another machine or container holds pids that mean
    nothing here), never through a symbolic link, never a live process's."""
    import tempfile

    from mlpsweep.launcher import handover
    from mlpsweep.launcher.recovery import Recovery
    from mlpsweep.launcher.temp_folders import here

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    dead = tmp_path / f"mlpsweep-{kind}-{here()}-{gone}-abc"
    live = tmp_path / f"mlpsweep-{kind}-{here()}-{os.getpid()}-abc"
    elsewhere = tmp_path / f"mlpsweep-{kind}-0badf00d-{gone}-abc"  # another host's
    target = tmp_path / "not-ours"
    target.mkdir()
    link = tmp_path / f"mlpsweep-{kind}-{here()}-{gone}-link"
    link.symlink_to(target)
    for folder in (dead, live, elsewhere):
        folder.mkdir()
        (folder / "x").write_bytes(b"x")
    if kind == "launch":
        made = Path(handover.park({"a": 1}).path).parent
    else:
        with Recovery(1, 0) as plan:
            made = Path(plan.marks_dir)
    assert made.name.startswith(f"mlpsweep-{kind}-{here()}-{os.getpid()}-")
    assert not dead.exists() and live.exists() and elsewhere.exists()
    assert target.exists() and link.is_symlink()


@pytest.mark.slow
@pytest.mark.e2e
@pytest.mark.parametrize("harm", ["linked"])  # the others: the unit test below
def test_a_worker_restarted_after_its_context_file_is_harmed_costs_the_sweep_nothing(
    tmp_path, harm
):
    """A worker killed mid-sweep: the workers started after it read the parked context
    again; gone, changed or replaced by a link, that file is written again first, and the
    sweep finishes every run (it once ended with tracebacks, exit 2, no record)."""
    import pickle

    env = {**os.environ, "TMPDIR": str(tmp_path / "tmp")}
    (tmp_path / "tmp").mkdir()
    # retries=1: the job on the killed worker runs again (by default a death fails it)
    args = ["-m", "seed=range(4)", "steps=1500", "report=false", "retries=1"]
    pipes = {"stdout": subprocess.PIPE, "stderr": subprocess.STDOUT, "text": True}
    proc = start_app(tmp_path, *args, env=env, **pipes)
    contexts = lambda: list((tmp_path / "tmp").glob("mlpsweep-launch-*/context.pickle"))  # noqa: E731
    wait_for(lambda: contexts() or proc.poll() is not None, what="the parked context")
    wait_for(lambda: finished_runs(tmp_path) or proc.poll() is not None, what="a run")
    [context] = contexts()
    context.unlink()
    if harm == "changed":
        context.write_bytes(pickle.dumps("not the context"))
    elif harm == "linked":
        context.symlink_to(tmp_path / "elsewhere")
    workers = loky_workers(proc.pid)
    assert workers, "no loky worker to kill"
    os.kill(workers[0], signal.SIGKILL)
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out[-3000:]
    assert len(finished_runs(tmp_path)) == 4
    assert "Traceback" not in out, out[-3000:]
    assert "is gone or changed: written again" in out, out[-3000:]


@pytest.mark.parametrize("harm", ["removed", "changed", "linked", "emptied"])
def test_a_harmed_context_file_is_not_intact(tmp_path, harm):
    """What the engine checks before it starts workers (else it parks the context again)."""
    from mlpsweep.launcher.handover import intact, park

    parked = park({"state": 1})
    assert intact(parked)
    path = Path(parked.path)
    path.unlink()
    if harm == "changed":
        path.write_bytes(b"another")
    elif harm == "linked":
        (tmp_path / "elsewhere").write_bytes(Path(parked.path).name.encode())
        path.symlink_to(tmp_path / "elsewhere")
    elif harm == "emptied":
        path.write_bytes(b"")
    assert not intact(parked)


def loky_workers(parent):
    """The pids of `parent`'s loky worker processes."""
    out = []
    for cmd in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if b"popen_loky" in cmd.read_bytes():
                ppid = int((cmd.parent / "stat").read_text().rsplit(")", 1)[1].split()[1])
                if ppid == parent:
                    out.append(int(cmd.parent.name))
        except (OSError, ValueError):
            continue
    return out


@pytest.mark.slow
@pytest.mark.e2e
@pytest.mark.parametrize("after_s", [0.0, 0.1])
def test_a_worker_killed_as_it_starts_costs_no_run_and_no_hang(tmp_path, after_s):
    """SIGKILL the first loky worker as soon as it appears, or 0.1 s later (before its
    first job): the sweep finishes every run, within a bound, whatever moment the kill
    hit."""
    proc = start_app(tmp_path, "-m", "seed=range(4)", "steps=200", "report=false")
    found = []

    def worker_started():
        for cmd in Path("/proc").glob("[0-9]*/cmdline"):
            try:
                if b"popen_loky" in cmd.read_bytes():
                    ppid = int((cmd.parent / "stat").read_text().rsplit(")", 1)[1].split()[1])
                    if ppid == proc.pid:
                        found.append(int(cmd.parent.name))
                        return True
            except (OSError, ValueError):
                continue
        return proc.poll() is not None

    wait_for(worker_started, what="a worker")
    if found:
        time.sleep(after_s)
        os.kill(found[0], signal.SIGKILL)
    assert proc.wait(timeout=120) == 0
    assert len(list(tmp_path.glob("results/adhoc/*/runs/*/metrics.json"))) == 4


UNREADABLE = [
    (["sweep_name=ünïcødé"], "plain folder name (letters, digits, . _ -), e.g. sweep_name=unicde"),
    (["hydra.sweeper.zip=notalist", "lr=0.1,0.2"], "zip: must be a list of lists"),
    (
        ["hydra.sweeper.zip=[[lr,seed],[lr,batch_size]]", "lr=0.1,0.2", "seed=0,1"],
        "zip: lr is in two zips",
    ),
    (["hydra.sweeper.zip=[[]]", "lr=0.1,0.2"], "each zip is a list of swept keys"),
]


@pytest.mark.parametrize("args, says", UNREADABLE)
def test_names_and_zips_that_cannot_be_read_say_how_to_write_them(tmp_path, args, says):
    from helpers import run_cli

    p = run_cli(tmp_path, "-m", *args, "steps=2")
    assert p.returncode == 2 and says in p.stderr, p.stderr
    assert not list(tmp_path.glob("**/metrics.json"))


def test_an_unreachable_target_is_refused():
    from mlpsweep.core.checks import ConfigError
    from mlpsweep.core.target import parse_target

    for text in ("test_accuracy:2", "test_accuracy:-0.1", "train_loss:-1", "test_loss:1e999"):
        with pytest.raises(ConfigError, match="no run can reach it"):
            parse_target(text)
    assert parse_target("test_accuracy:0.9").value == 0.9


def test_a_full_disk_while_planning_leaves_no_empty_multirun_yaml(tmp_path, mount_tmpfs):
    from helpers import run_cli

    disk = mount_tmpfs("16k")
    (disk / "filler").write_bytes(bytes(16 * 1024 - 512))  # nearly full
    p = run_cli(tmp_path, "-m", "seed=0,1", "steps=5", f"hydra.sweep.dir={disk}/sweep")
    assert p.returncode == 2 and "No space left on device" in p.stderr
    assert "None" not in p.stderr and not (disk / "sweep").exists()


def test_a_dry_run_writes_nothing_even_in_a_read_only_folder(tmp_path, mount_tmpfs):
    import subprocess

    from helpers import run_cli

    disk = mount_tmpfs("1m")
    subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)
    p = run_cli(disk, "-m", "seed=0,1", "steps=5", "dry_run=true")
    assert p.returncode == 0, p.stderr
    assert "dry run: 2 runs" in p.stdout and not list(disk.iterdir())


@pytest.mark.slow  # over 1.4 s: kept out of the one-minute quick suite
def test_a_resumed_sweep_keeps_its_command_and_its_runs_keep_what_they_need(tmp_path, monkeypatch):
    import shlex
    import sys

    from mlpsweep.report.collect import collect

    sweep = tmp_path / "s"
    args = ["seed=0,1", "steps=5", "report=false", "max_memory=64G"]
    monkeypatch.setattr(sys, "argv", ["run.py", "-m", *args])  # the command, as typed
    multirun(sweep, *args)
    first = records.SweepManifest.read(sweep).command
    multirun(sweep, "seed=0", "steps=5", "report=false", "resume=true", "extend=true")
    assert records.SweepManifest.read(sweep).command == first  # a subset: nothing new
    multirun(sweep, "seed=2", "steps=5", "report=false", "resume=true", "extend=true")
    assert records.SweepManifest.read(sweep).command.startswith(f"{first} ; extended by: ")
    runs = collect(sweep, write=False).runs
    assert all("max_memory=64G" in shlex.split(r) for r in runs["reproduce"])


def test_a_single_run_on_a_full_disk_says_so_in_one_line_and_leaves_nothing(tmp_path, mount_tmpfs):
    from helpers import run_cli

    disk = mount_tmpfs("16k")
    (disk / "filler").write_bytes(bytes(15000))
    p = run_cli(tmp_path, "steps=20", f"hydra.run.dir={disk}/run")
    assert p.returncode == 1
    assert p.stderr.strip().splitlines() == [
        f"mlpsweep: cannot write the run's results to {disk}/run: No space left on device; "
        "nothing was kept: free space, then run it again"
    ]
    assert not (disk / "run").exists()


def test_the_memory_estimate_counts_the_noise_probe():
    from mlpsweep.core import TrainConfig
    from mlpsweep.core.memory import run_bytes

    big = TrainConfig(width=4000)
    params = 784 * 4000 + 4000 + 4000 * 4000 + 4000 + 4000 * 10 + 10
    grown = run_bytes(big.replace(noise_probe="all"), 784, 10) - run_bytes(big, 784, 10)
    assert grown == pytest.approx(params * (4 + 16), rel=1e-9)


def test_a_folder_left_by_a_command_killed_while_planning_is_tidied_later(tmp_path):
    from mlpsweep.app import resolvers

    parent = tmp_path / "results" / "s"
    (parent / "2026-01-01_00-00-00").mkdir(parents=True)
    (parent / "2026-01-01_00-00-00" / "multirun.yaml").write_text("x")
    (parent / "2026-01-01_00-00-01").mkdir()
    planned = parent / "2026-01-01_00-00-02"
    records.SweepManifest(runs=[]).write(planned)
    recent = parent / "2026-01-01_00-00-03"
    recent.mkdir()
    old = time.time() - 2 * resolvers.ABANDONED_S
    for d in parent.iterdir():
        if d != recent:
            os.utime(d, (old, old))
    new = resolvers.sweep_dir(tmp_path / "results", "s")
    left = sorted(p.name for p in parent.iterdir())
    assert left == sorted([planned.name, recent.name, Path(new).name])


def test_a_data_folder_that_is_no_folder_is_named_in_one_line_before_any_job(tmp_path, monkeypatch):
    from mlpsweep.data.fetch import ENV_DATA_DIR, data_root

    a_file = tmp_path / "a_file"
    a_file.write_text("not a folder")
    (tmp_path / "to_file").symlink_to(a_file)
    cases = {
        str(a_file): "is not a folder",
        str(a_file / "below" / "deeper"): f"lies under {a_file}, which is not a folder",
        str(tmp_path / "to_file"): "is not a folder",
        "/dev/null": "is not a folder",
        "~no_such_user_here/data": "no home folder for ~no_such_user_here",
    }
    for value, says in cases.items():
        with pytest.raises(ValueError, match=f"^dataset.data_dir={value}: {says}"):
            data_root(value)
        monkeypatch.setenv(ENV_DATA_DIR, value)
        with pytest.raises(ValueError, match=f"^{ENV_DATA_DIR}={value}: {says}"):
            data_root()
    monkeypatch.delenv(ENV_DATA_DIR)
    assert data_root(str(tmp_path / "new" / "data")) == tmp_path / "new" / "data"  # made later


def test_a_single_runs_error_is_one_line_from_the_command_line(tmp_path):
    a_file = tmp_path / "a_file"
    a_file.write_text("not a folder")
    # the mnist_5k default has no data folder; mnist reads one
    for mode in ([], ["-m"]):
        p = run_cli(tmp_path, *mode, "steps=1", "dataset=mnist", f"dataset.data_dir={a_file}")
        assert p.returncode == 2 and p.stderr.count("\n") == 1, p.stderr
        assert f"dataset.data_dir={a_file}: is not a folder" in p.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file"]  # nothing written


def test_hydras_own_line_before_a_single_runs_error_is_left_out():
    import io

    from mlpsweep.app.main import _WithoutHydrasJobLine

    sink = io.StringIO()
    err = _WithoutHydrasJobLine(sink)
    err.write("Error executing job with overrides: ['steps=1']\n")
    err.write("mlpsweep: what went wrong\n")
    err.flush()
    assert sink.getvalue() == "mlpsweep: what went wrong\n"


@pytest.mark.slow
@pytest.mark.e2e
@pytest.mark.parametrize("closed", [(1,), (1, 2), (0, 1, 2)])
def test_a_sweep_with_its_standard_streams_closed_runs_and_writes_where_it_should(tmp_path, closed):
    import subprocess
    import sys

    from helpers import REPO

    def close():  # as `>&-`: the descriptors are missing, not pointed at /dev/null
        for fd in closed:
            os.close(fd)

    sweep = tmp_path / "s"
    err = tmp_path / "err"
    with open(err, "w") as keep:
        p = subprocess.run(
            [sys.executable, str(REPO / "run.py"), "-m", "steps=1", "seed=0,1",
             f"hydra.sweep.dir={sweep}"],  # fmt: skip
            cwd=tmp_path, preexec_fn=close, stderr=keep if 2 not in closed else None,
            timeout=300,
        )  # fmt: skip
    assert p.returncode == 0, err.read_text()
    assert "Traceback" not in err.read_text() and "flush" not in err.read_text()
    assert len(list((sweep / "runs").iterdir())) == 2 and (sweep / "report.html").exists()


def test_bad_input_carries_its_line_and_run_main_says_it_once(capsys, monkeypatch):
    # BadInput only carries its message (it printed in its constructor: twice when
    # made twice, and even when caught); run_main says it, with exit status 2.
    from mlpsweep.app.errors import BadInput
    from mlpsweep.app.main import run_main

    made = BadInput("lr=-1: must be > 0")
    assert capsys.readouterr().err == ""
    assert made.code == "mlpsweep: lr=-1: must be > 0"  # said even with no run_main

    def main():
        raise BadInput("lr=-1: must be > 0")

    # run_main sets up the process for run.py: put back what it changes
    monkeypatch.setenv("HYDRA_FULL_ERROR", "0")
    handlers = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        with pytest.raises(SystemExit) as exit_:
            run_main(main)
    finally:
        for s, handler in handlers.items():
            signal.signal(s, handler)
        gc.unfreeze()
    assert exit_.value.code == 2
    assert capsys.readouterr().err == "mlpsweep: lr=-1: must be > 0\n"
