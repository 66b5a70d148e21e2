"""A fuzzer, not a list: every kind of file the harness reads from a sweep or cache
folder is replaced by every hostile form (a FIFO, a link out, a link to /dev/zero, a
folder, empty, truncated, huge and sparse, the wrong JSON types, a future mtime), and
every reader must end within a deadline with one line (or a verdict), writing nothing
outside the sweep; every folder the harness writes into is replaced by a link to a
folder outside, and nothing may be written there.

The quick suite runs every form against the records layer's readers (and the data
cache's) and a resumed sweep into linked folders; the slow form (-m slow) adds `mlpsweep
runs`, `mlpsweep report` and a resumed sweep for every form, and linked report folders."""

import json
import os
import re
import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from helpers import multirun

from mlpsweep import records
from mlpsweep.app.errors import JobError
from mlpsweep.cli import main as cli

DEADLINE_S = 120.0  # a reader takes well under a second; a hang never ends
FORMS = (
    "fifo",
    "link_out",
    "link_zero",
    "folder",
    "empty",
    "truncated",
    "sparse",
    "wrong_types",
    "future_mtime",
)
KINDS = {  # what each kind of file read from a sweep folder is, relative to it
    "manifest": "sweep.json",
    "metrics": "runs/{run}/metrics.json",
    "config": "runs/{run}/config.yaml",
    "history": "runs/{run}/history.parquet",
    "log": "runs/{run}/job.log",
    "claim": "claims/{run}.json",
}
WRONG_TYPES = {
    "manifest": {"runs": [{"run_id": 7, "overrides": "x"}], "study": [1]},
    "metrics": {"run_id": 5, "status": ["ok"], "files": "x", "digest": 3},
    "claim": {"pid": "1", "host": 2, "token": None, "timeout": -1},
}


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fuzz") / "sweep"
    multirun(folder, "seed=0,1", "steps=20", "eval_every=10", "report=false")
    return folder


@pytest.fixture
def sweep(template, tmp_path):
    folder = tmp_path / "sweep"
    shutil.copytree(template, folder, symlinks=True)
    run = records.SweepManifest.read(folder).run_ids[0]
    claim = records.claim.claim_path(folder, run)
    claim.parent.mkdir()
    claim.write_text(json.dumps({"host": "elsewhere", "pid": 1, "token": "t", "timeout": 60}))
    return folder, run


def hostile(path: Path, form: str, kind: str, outside: Path) -> None:
    """Put the hostile `form` where the file `path` (of `kind`) is."""
    data = path.read_bytes()
    if form == "future_mtime":
        later = time.time() + 3600
        os.utime(path, (later, later))
        return
    path.unlink()
    if form == "fifo":
        os.mkfifo(path)
    elif form == "link_out":
        (outside / path.name).write_bytes(data)
        path.symlink_to(outside / path.name)
    elif form == "link_zero":
        path.symlink_to("/dev/zero")
    elif form == "folder":
        path.mkdir()
        (path / "x").write_text("x")
    elif form == "empty":
        path.write_bytes(b"")
    elif form == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif form == "sparse":
        with open(path, "wb") as f:
            f.truncate(1 << 40)  # 1 TiB of holes
    elif form == "wrong_types":
        path.write_text(json.dumps(WRONG_TYPES.get(kind, [1, "two", None])))


def snapshot(folder: Path) -> dict:
    return {
        str(p): (p.is_symlink(), p.is_file() and p.read_bytes())
        for p in sorted(folder.rglob("*"))
        if not p.is_fifo()
    }


def within_deadline(fn, *args):
    """fn(*args) in a thread: (its value or exception); fails the test when it has not
    ended by the deadline (a reader that blocks on a FIFO never would)."""
    out = {}

    def call():
        try:
            out["value"] = fn(*args)
        except BaseException as e:  # judged by the caller
            out["error"] = e

    thread = threading.Thread(target=call, daemon=True)
    thread.start()
    thread.join(DEADLINE_S)
    assert not thread.is_alive(), f"{fn.__name__} still waiting after {DEADLINE_S} s (a hang)"
    return out


def one_line(out, allowed=(OSError, ValueError)):
    """The outcome is a value, or an allowed exception whose message is one line."""
    if "error" in out:
        e = out["error"]
        assert isinstance(e, allowed), f"{type(e).__name__}: {e}"
        assert "\n" not in str(e).strip(), str(e)


def readers(folder, run):
    """Every records-layer read of a sweep folder, as a list of (name, call)."""
    run_dir = records.run_dir(folder, run)
    return [
        ("inspect_run", lambda: records.inspect_run(run_dir)),
        ("manifest", lambda: records.SweepManifest.read(folder)),
        ("from_records", lambda: records.SweepManifest.from_records(folder)),
        ("config", lambda: records.run.read_config(run_dir)),
        ("live_claims", lambda: records.live_claims(folder)),
        ("stale_claims", lambda: list(records.stale_claims(folder))),
        ("claim", lambda: claim_once(folder, run)),
    ]


def claim_once(folder, run):
    with records.claim_run(folder, run):
        return "claimed"


def without_logging_errors(err):
    """stderr less the "--- Logging error ---" blocks of a handler an earlier in-process
    sweep left on a capture pytest has closed since (not the harness's output)."""
    return re.sub(r"--- Logging error ---.*?Arguments: .*?\n", "", err, flags=re.S)


def cli_outcome(capsys, *argv):
    code = within_deadline(cli, list(argv))
    captured = capsys.readouterr()
    assert "error" not in code, f"{argv}: {type(code['error']).__name__}: {code['error']}"
    assert "Traceback" not in captured.err
    if code["value"] != 0:
        lines = [x for x in captured.err.splitlines() if x.strip()]
        assert len(lines) == 1 and lines[0].startswith("mlpsweep: "), captured.err
    return code["value"], captured


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("kind", KINDS)
def test_every_hostile_form_of_every_file_read_is_one_line_in_bounded_time(
    sweep, tmp_path, capsys, kind, form
):
    folder, run = sweep
    outside = tmp_path / "outside"
    outside.mkdir()
    path = folder / KINDS[kind].format(run=run)
    changed = form != "future_mtime" and (path.stat().st_size or form not in ("empty", "truncated"))
    hostile(path, form, kind, outside)
    before = snapshot(outside)
    for name, call in readers(folder, run):
        out = within_deadline(call)
        one_line(out, (OSError, ValueError, records.RunBusy))
        if name == "inspect_run" and kind in ("metrics", "config", "history", "log") and changed:
            assert out.get("value", (None,))[0] is None, f"{form} {kind} counted as a record"
    assert snapshot(outside) == before


@pytest.mark.slow
@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("kind", KINDS)
def test_every_hostile_form_through_report_and_resume(sweep, tmp_path, capsys, recwarn, kind, form):
    folder, run = sweep
    outside = tmp_path / "outside"
    outside.mkdir()
    if kind != "claim":  # the other host's claim has gone quiet: the resume takes it over
        # at once rather than waiting out its 60 s (a live claim is tested in test_faults)
        stale = time.time() - 120
        os.utime(records.claim.claim_path(folder, run), (stale, stale))
    hostile(folder / KINDS[kind].format(run=run), form, kind, outside)
    before = snapshot(outside)
    cli_outcome(capsys, "runs", str(folder))
    cli_outcome(capsys, "report", str(folder))
    out = within_deadline(
        multirun,
        folder,
        "seed=0,1",
        "steps=20",
        "eval_every=10",
        "report=false",
        "resume=true",
        "claim_timeout=2",  # an unreadable claim is judged torn after 2 s, not 30
    )
    if "error" in out:
        assert isinstance(out["error"], (SystemExit, JobError)), repr(out["error"])
    assert "Traceback" not in without_logging_errors(capsys.readouterr().err)
    raised = [str(w.message) for w in recwarn if "raised" in str(w.message)]
    assert not raised, raised  # (Hydra turns a callback's exception into a warning)
    assert snapshot(outside) == before


WRITTEN = ("runs", "runs/{run}", "claims")  # folders a sweep's jobs write into


@pytest.mark.parametrize("level", WRITTEN)
def test_no_write_goes_through_a_linked_folder_at_any_level(sweep, tmp_path, capsys, level):
    folder, run = sweep
    (folder / "claims" / f"{run}.json").unlink()
    (folder / "claims").rmdir()
    outside = tmp_path / "outside"
    target = folder / level.format(run=run)
    if target.exists():
        shutil.move(target, outside)
    else:
        outside.mkdir()
    target.symlink_to(outside, target_is_directory=True)
    for p in [*outside.rglob("metrics.json"), *folder.glob(f"runs/{run}/metrics.json")]:
        p.unlink(
            missing_ok=True
        )  # the runs look unfinished: a resume trains them, writing their claims
    before = snapshot(outside)
    out = within_deadline(
        multirun, folder, "seed=0,1", "steps=20", "eval_every=10", "report=false", "resume=true"
    )
    if "error" in out:  # (in-process, a job's one-line JobError ends the sweep)
        assert isinstance(out["error"], (SystemExit, JobError)), repr(out["error"])
        assert "symbolic link" in str(out["error"]) or out["error"].code == 1
    assert "Traceback" not in without_logging_errors(capsys.readouterr().err)
    assert snapshot(outside) == before


@pytest.mark.slow
@pytest.mark.parametrize("level", ("report", "report.html"))
def test_no_report_goes_through_a_link(sweep, tmp_path, capsys, level):
    folder, _ = sweep
    outside = tmp_path / "outside"
    outside.mkdir()
    (folder / level).symlink_to(outside / level, target_is_directory=level == "report")
    if level == "report":
        (outside / level).mkdir()
    before = snapshot(outside)
    cli_outcome(capsys, "report", str(folder))
    assert snapshot(outside) == before


CACHE_FILES = ("manifest.json", "x_train.npy", "y_train.npy")


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("name", CACHE_FILES)
def test_every_hostile_form_in_the_data_cache_is_rebuilt_or_refused(tmp_path, name, form):
    from test_datasets import make_idx_files, source_for

    from mlpsweep.data import load_dataset
    from mlpsweep.data.idx import DatasetError

    data = tmp_path / "data"
    arrays = make_idx_files(data / "toy")
    src = source_for(data / "toy")
    load_dataset("toy", data_dir=data, source=src)
    outside = tmp_path / "outside"
    outside.mkdir()
    hostile(data / "toy" / "npy" / name, form, "cache", outside)
    before = snapshot(outside)
    out = within_deadline(load_dataset, "toy", data, src)
    one_line(out, (DatasetError, OSError))
    if "value" in out:
        assert np.array_equal(out["value"].y_train, arrays["train_labels"])
    assert snapshot(outside) == before
