"""The class-level mechanisms one by one: the guarded read and write (records/files.py),
the claim protocol (the owner's timeout, torn and future-dated claims), and verification
that the same edit cannot bypass (a data cache checked against the published content)."""

import json
import os
import time

import numpy as np
import pytest

from mlpsweep import records
from mlpsweep.records import claim
from mlpsweep.records.files import (
    UnsafeFile,
    guarded_mkdir,
    guarded_read,
    guarded_write,
)


def test_the_guarded_read_refuses_a_link_at_any_level_below_its_root(tmp_path):
    root = tmp_path / "sweep"
    (root / "runs" / "a").mkdir(parents=True)
    (root / "runs" / "a" / "f").write_text("ok")
    assert guarded_read(root / "runs" / "a" / "f", "metrics", root) == b"ok"
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "f").write_text("outside")
    os.rename(root / "runs" / "a", tmp_path / "a")
    (root / "runs" / "a").symlink_to(tmp_path / "out")
    with pytest.raises(UnsafeFile, match=r"runs/a: a symbolic link where a folder should be"):
        guarded_read(root / "runs" / "a" / "f", "metrics", root)


def test_the_guarded_read_caps_each_kind_and_never_blocks(tmp_path):
    big = tmp_path / "claim.json"
    with open(big, "wb") as f:
        f.truncate(1 << 20)
    with pytest.raises(UnsafeFile, match="more than a claim file can be"):
        guarded_read(big, "claim")
    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(UnsafeFile, match="a FIFO, not a regular file"):
        guarded_read(tmp_path / "fifo", "metrics")


def test_the_guarded_write_never_goes_through_a_link_nor_makes_its_root(tmp_path):
    root, outside = tmp_path / "sweep", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (root / "report").symlink_to(outside)
    with pytest.raises(UnsafeFile, match="symbolic link"):
        guarded_write(root / "report" / "x.png", b"x", root)
    with pytest.raises(UnsafeFile, match="symbolic link"):
        guarded_mkdir(root / "report" / "sub", root)
    assert list(outside.iterdir()) == []
    gone = tmp_path / "deleted"
    with pytest.raises(FileNotFoundError, match="the folder is gone"):
        guarded_write(gone / "runs" / "x", b"x", gone)
    assert not gone.exists()


def test_a_sweep_folder_deleted_mid_sweep_is_not_made_again(tmp_path):
    gone = tmp_path / "sweep"
    with pytest.raises(FileNotFoundError):
        with records.claim_run(gone, "ab" * 8):
            pass
    record = records.RunRecord({}, records.RunMetrics("ab" * 8, "ok"))
    with pytest.raises(FileNotFoundError):
        records.write_run(records.run_dir(gone, "ab" * 8), record, make_root=False)
    assert not gone.exists()


def write_claim(sweep, run_id, **holder):
    path = claim.claim_path(sweep, run_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"host": "elsewhere", "pid": 1, "token": "t", **holder}))
    return path


def test_a_claim_is_judged_by_its_owners_timeout_not_the_readers(tmp_path, monkeypatch):
    """A second process with a smaller claim_timeout must not take over a live sweep's
    running jobs: the claim says how long its owner may be silent."""
    path = write_claim(tmp_path, "ab" * 8, timeout=600.0)
    old = time.time() - 100  # silent for 100 s: past the reader's 10, within the owner's 600
    os.utime(path, (old, old))
    assert records.live_claims(tmp_path, timeout_s=10.0) == ["ab" * 8]
    with pytest.raises(records.RunBusy):
        with records.claim_run(tmp_path, "ab" * 8, timeout_s=10.0):
            pass
    old = time.time() - 700
    os.utime(path, (old, old))
    assert records.live_claims(tmp_path, timeout_s=10.0) == []


@pytest.mark.parametrize("text", ["", '{"pid": "1", "host": 2}', "[1]", '{"pid": 1, "host'])
def test_a_torn_malformed_or_future_dated_claim_is_stale_after_a_bounded_time(
    tmp_path, monkeypatch, caplog, text
):
    path = claim.claim_path(tmp_path, "cd" * 8)
    path.parent.mkdir()
    path.write_text(text)
    later = time.time() + 3600  # an hour ahead: its mtime would keep it fresh for ever
    os.utime(path, (later, later))
    assert records.live_claims(tmp_path) == ["cd" * 8]  # could be a write in progress
    # a reader with a timeout so short that the claim's ctime is past it: torn, stale
    assert records.live_claims(tmp_path, timeout_s=1e-9) == []
    with records.claim_run(tmp_path, "cd" * 8, timeout_s=1e-9):  # taken over, and said
        pass
    assert "cannot be read" in caplog.text and str(path) in caplog.text


def test_a_data_cache_whose_labels_and_manifest_were_both_rewritten_is_rebuilt(tmp_path):
    from test_datasets import make_idx_files, source_for

    from mlpsweep.data import load_dataset
    from mlpsweep.data.dataset import fingerprint

    data = tmp_path / "data"
    arrays = make_idx_files(data / "toy")
    src = source_for(data / "toy")
    first = load_dataset("toy", data_dir=data, source=src)
    npy = data / "toy" / "npy"
    loaded = [np.load(npy / f"{k}.npy") for k in ("x_train", "y_train", "x_test", "y_test")]
    loaded[1] = np.zeros_like(loaded[1])  # every label 0
    np.save(npy / "y_train.npy", loaded[1], allow_pickle=False)
    manifest = json.loads((npy / "manifest.json").read_text())
    manifest["fingerprint"] = fingerprint(*loaded)  # the manifest agrees with the edit
    (npy / "manifest.json").write_text(json.dumps(manifest))
    again = load_dataset("toy", data_dir=data, source=src)
    assert np.array_equal(again.y_train, arrays["train_labels"])
    assert again.fingerprint == first.fingerprint


def test_labels_outside_the_class_range_are_refused():
    from mlpsweep.data import make_dataset
    from mlpsweep.data.idx import DatasetError

    x = np.zeros((4, 3), np.uint8)
    y = np.array([0, 1, 2, 5], np.uint8)
    with pytest.raises(DatasetError, match="labels outside 0-2"):
        make_dataset("custom", x, y, x, y, num_classes=3)


# --- verification, the manifest's lock, folders that are not ours, the items one by one


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    from helpers import multirun

    folder = tmp_path_factory.mktemp("guarded") / "sweep"
    multirun(folder, "seed=0,1", "steps=20", "eval_every=10", "report=false")
    return folder


@pytest.fixture
def sweep(made, tmp_path):
    import shutil

    shutil.copytree(made, tmp_path / "sweep", symlinks=True)
    return tmp_path / "sweep"


def reseal(run_dir, **changes):
    """Edit metrics.json and recompute its digest (what an edit that knows the format
    does), or null it (digest=None)."""
    import dataclasses

    data = json.loads((run_dir / "metrics.json").read_text())
    metrics = records.RunMetrics.from_dict({**data, **changes})
    if "digest" not in changes:
        metrics = dataclasses.replace(metrics, digest=None).sealed()
    (run_dir / "metrics.json").write_text(metrics.to_json())


@pytest.mark.parametrize(
    "changes, says",
    [
        ({"test_accuracy": 0.99}, "test accuracy is not its history's"),
        ({"best_test_accuracy": 0.99}, "best test accuracy is not its history's"),
        ({"final_train_loss": 1e-9}, "final train loss is not its history's"),
        ({"final_train_loss": 1e-9, "digest": None}, "final train loss is not its history's"),
        ({"final_train_loss": None}, "final train loss is not its history's"),
    ],
)
def test_an_edit_that_reseals_its_digest_still_does_not_count(sweep, changes, says):
    run = records.run_dir(sweep, records.SweepManifest.read(sweep).run_ids[0])
    reseal(run, **changes)
    metrics, problem = records.inspect_run(run)
    assert metrics is None and says in problem


def test_the_reproduce_command_is_the_records_not_the_manifests(sweep):
    from mlpsweep.report.collect import collect

    manifest = records.SweepManifest.read(sweep)
    real = manifest.runs[0]
    manifest.runs[0] = records.PlannedRun(real.run_id, ("lr=0.5", *real.overrides))
    manifest.write(sweep)
    row = collect(sweep, write=False).runs.set_index("run_id").loc[real.run_id]
    assert "lr=0.5" not in row["reproduce"] and "seed=0" in row["reproduce"]


def extend_many(folder, tag, n):
    for k in range(n):
        with records.manifest_lock(folder):
            manifest = records.SweepManifest.read(folder)
            manifest.runs.append(records.PlannedRun(f"{tag}{k:015x}"))
            manifest.write(folder)


def test_concurrent_read_modify_writes_of_the_manifest_lose_nothing(tmp_path):
    import multiprocessing

    records.SweepManifest(runs=[]).write(tmp_path)
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=extend_many, args=(tmp_path, tag, 25)) for tag in "ab"]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    assert len(records.SweepManifest.read(tmp_path).runs) == 50


def test_the_manifests_lock_is_a_bounded_wait_that_says_what_it_waited_for(tmp_path):
    records.SweepManifest(runs=[]).write(tmp_path)
    with records.manifest_lock(tmp_path):
        import threading

        out = {}

        def other():
            try:
                with records.manifest_lock(tmp_path, wait_s=0.2):
                    out["got"] = True
            except records.SweepError as e:
                out["error"] = str(e)

        t = threading.Thread(target=other)
        t.start()
        t.join(60)
    assert "another command planning this sweep" in out["error"]


def test_a_sweep_never_writes_into_a_users_folder(tmp_path, capsys):
    from helpers import multirun

    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "summary.csv").write_text("precious")
    with pytest.raises(SystemExit) as e:
        multirun(folder, "seed=0,1", "steps=5", "report=false")
    assert e.value.code == 2
    assert "holds files that are not a sweep's (summary.csv)" in capsys.readouterr().err
    assert sorted(p.name for p in folder.iterdir()) == ["summary.csv"]
    assert (folder / "summary.csv").read_text() == "precious"


def test_compare_refuses_a_copy_of_an_input_and_an_output_inside_one(sweep, tmp_path, capsys):
    import shutil

    from mlpsweep.cli import main

    copy = tmp_path / "copy"
    shutil.copytree(sweep, copy)
    assert main(["compare", str(sweep), str(copy)]) == 2
    assert "the same sweep" in capsys.readouterr().err
    other = tmp_path / "other"
    shutil.copytree(sweep, other)
    manifest = records.SweepManifest.read(other)
    manifest.sweep_id = "another"
    manifest.write(other)
    before = sorted(p.name for p in sweep.iterdir())
    assert main(["compare", str(sweep), str(other), "--out", str(sweep)]) == 2
    assert "is (or is inside) the input" in capsys.readouterr().err
    assert sorted(p.name for p in sweep.iterdir()) == before


def test_an_adaptive_sweep_running_or_killed_lists_its_finished_runs(sweep, capsys):
    from mlpsweep.cli import main

    manifest = records.SweepManifest.read(sweep)
    manifest.runs, manifest.sweeper = [], "optuna"  # as it is while Optuna proposes runs
    manifest.write(sweep)
    assert len(records.SweepManifest.read(sweep).runs) == 2
    assert main(["runs", str(sweep)]) == 0
    import re

    assert re.search(r"all runs\s+2\s+2 ok", capsys.readouterr().out)  # both, finished


def test_a_sweep_folder_deleted_while_the_sweep_ran_is_said_with_exit_1(tmp_path, capsys):
    from omegaconf import OmegaConf

    from mlpsweep.app.callbacks import SweepEnd

    config = OmegaConf.create({"hydra": {"sweep": {"dir": str(tmp_path / "gone")}}})
    with pytest.raises(SystemExit) as e:
        SweepEnd().on_multirun_end(config)
    assert e.value.code == 1 and "is gone" in capsys.readouterr().err


def test_a_study_comparing_a_setting_that_is_not_swept_is_refused_before_training(tmp_path, capsys):
    from helpers import multirun

    study = "study={question: 'Does width matter?',compare: [width]}"
    with pytest.raises(SystemExit) as e:
        multirun(tmp_path / "s", "seed=0,1", "steps=5", study, "report=false")
    assert e.value.code == 2
    assert "'width' takes one value in this sweep" in capsys.readouterr().err
    assert not list(tmp_path.glob("s/runs"))


# --- bounded waits: a launch's watch


@pytest.mark.slow  # over 1.4 s: kept out of the one-minute quick suite
def test_a_launchs_watch_kills_a_worker_stopped_past_the_claim_timeout(caplog):
    import signal
    import subprocess
    import sys

    from mlpsweep.launcher.stopped_workers import StoppedWorkerWatch

    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        os.kill(child.pid, signal.SIGSTOP)
        with StoppedWorkerWatch(stopped_s=0.3):
            assert child.wait(timeout=60) == -signal.SIGKILL
        assert f"worker pid {child.pid} was stopped" in caplog.text
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


@pytest.mark.parametrize("command", ["runs", "report"])
def test_a_sweep_with_no_runs_yet_is_one_line_for_every_command(tmp_path, capsys, command):
    from mlpsweep.cli import main

    (tmp_path / records.MANIFEST).write_text('{"runs": []}')  # was KeyError 'status'
    assert main([command, str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "the sweep has no runs yet" in err


@pytest.mark.slow
@pytest.mark.e2e
def test_sighup_stops_a_sweep_as_sigterm_does(tmp_path):
    import signal
    import subprocess

    from helpers import start_app, wait_for

    proc = start_app(
        tmp_path, "-m", "seed=0,1", "steps=1000000", "report=false", stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    wait_for(lambda: list(tmp_path.glob("results/adhoc/*/claims/*.json")), what="a job")
    proc.send_signal(signal.SIGHUP)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 129, err
    assert "hung up: finished runs kept" in err
