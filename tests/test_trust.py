"""Nothing read from disk counts until verified: damaged, hand-edited, symlinked or
misnamed records are refused (and rerun), and no read can hang or escape the record."""

import json
import os
from pathlib import Path

import pytest
from helpers import multirun, wait_for

from mlpsweep import records
from mlpsweep.cli import main as cli


@pytest.fixture
def sweep(tmp_path):
    folder = tmp_path / "sweep"
    multirun(folder, "seed=0,1", "steps=30", "report=false")
    return folder


def record(sweep, k):
    return records.run_dir(sweep, records.SweepManifest.read(sweep).run_ids[k])


def edit_metrics(run_dir, **changes):
    path = run_dir / "metrics.json"
    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps(data))


def test_a_hand_edited_metrics_file_fails_its_digest(sweep):
    edit_metrics(record(sweep, 0), final_train_loss=1e-9)
    metrics, problem = records.inspect_run(record(sweep, 0))
    assert metrics is None and "fails its digest" in problem


def test_an_old_record_without_checksums_is_decoded_in_full(sweep):
    """No `files`, no digest (written before either existed), its history's bytes
    damaged: refused, where counting the parquet footer's rows passed it."""
    run = record(sweep, 0)
    edit_metrics(run, files={}, digest=None)
    assert records.inspect_run(run)[0] is not None  # intact: still a finished run
    data = bytearray((run / "history.parquet").read_bytes())
    data[200:1200] = bytes(1000)
    (run / "history.parquet").write_bytes(bytes(data))
    metrics, problem = records.inspect_run(run)
    assert metrics is None and "history.parquet" in problem
    edit_metrics(record(sweep, 1), files={}, digest=None, final_train_loss=1e-9)
    metrics, problem = records.inspect_run(record(sweep, 1))
    assert metrics is None and "final train loss is not its history's" in problem


@pytest.mark.slow  # over 1.4 s: kept out of the one-minute quick suite
def test_a_damaged_record_is_rerun_and_every_command_says_so(sweep, capsys):
    run = record(sweep, 0)
    edit_metrics(run, final_train_loss=1e-9)
    assert cli(["runs", str(sweep)]) == 0 and cli(["report", str(sweep)]) == 0
    assert "corrupt" in (sweep / "report.html").read_text()
    capsys.readouterr()
    multirun(sweep, "seed=0,1", "steps=30", "report=false", "resume=true")
    assert records.inspect_run(run)[0] is not None  # trained again
    assert "ran 1 job in" in capsys.readouterr().out  # only the damaged one


def test_symlinked_records_are_never_read_or_written_through(sweep, tmp_path):
    first, second = record(sweep, 0), record(sweep, 1)
    # seed 0's id pointing at seed 1's record: would count seed 1 twice
    target = tmp_path / "elsewhere"
    second.rename(target)
    second.symlink_to(target, target_is_directory=True)
    metrics, problem = records.inspect_run(second)
    assert metrics is None and "symbolic link" in problem
    with pytest.raises(OSError, match="symbolic link"):
        records.write_run(second, records.RunRecord({}, records.RunMetrics("x", "ok")))
    (target / ".metrics.json.tmp").write_text("x")
    records.remove_partial(second)
    assert (target / ".metrics.json.tmp").exists()  # nothing deleted through the link
    os.remove(first / "history.parquet")
    os.symlink(target / "history.parquet", first / "history.parquet")
    assert records.inspect_run(first)[0] is None


def test_metrics_naming_other_files_are_refused_without_opening_them(sweep):
    run = record(sweep, 0)
    edit_metrics(run, files={"/dev/zero": "0" * 64}, digest=None)
    metrics, problem = records.inspect_run(run)
    assert metrics is None and "not a record's" in problem
    edit_metrics(record(sweep, 1), files={"../../x": "0" * 64}, digest=None)
    assert records.inspect_run(record(sweep, 1))[0] is None


def test_a_fifo_in_place_of_a_record_file_does_not_hang(sweep):
    run = record(sweep, 0)
    (run / "history.parquet").unlink()
    os.mkfifo(run / "history.parquet")
    metrics, problem = records.inspect_run(run)  # would block forever on open()
    assert metrics is None and "history.parquet" in problem
    (run / "metrics.json").unlink()
    os.mkfifo(run / "metrics.json")
    assert records.inspect_run(run)[0] is None


def test_a_manifest_damaged_while_the_sweep_ran_ends_it_with_exit_1(sweep, capsys):
    from omegaconf import OmegaConf

    from mlpsweep.app.callbacks import SweepEnd

    (sweep / records.MANIFEST).write_text("{not json")
    config = OmegaConf.create({"hydra": {"sweep": {"dir": str(sweep)}}, "report": False})
    with pytest.raises(SystemExit) as e:
        SweepEnd().on_multirun_end(config)
    assert e.value.code == 1 and "cannot read the sweep's results" in capsys.readouterr().err


def test_a_zombie_holds_no_claim():
    """A killed worker its parent has not reaped yet is a zombie: its claims are stale
    at once, not after claim_timeout."""
    import subprocess
    import sys

    from mlpsweep.records.claim import pid_exists

    child = subprocess.Popen([sys.executable, "-c", "pass"])
    wait_for(
        lambda: Path(f"/proc/{child.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    )
    try:
        assert not pid_exists(child.pid)  # exited, not reaped
    finally:
        child.wait()
    assert pid_exists(os.getpid())
