"""The record layer: stable run ids, records verified on read, manifests that cannot
point outside their sweep, and a record written by earlier code that still resumes."""

import dataclasses
import shutil
from pathlib import Path

import numpy as np
import pytest
from helpers import multirun

from mlpsweep import records
from mlpsweep.core import TrainConfig
from mlpsweep.records.identity import HASHED_ALWAYS

V1 = Path(__file__).parent / "fixtures" / "record_v1"  # written by the code of 2026-11-29
V1_ARGS = ["seed=0,1", "steps=5", "eval_every=5", "width=8", "depth=1", "sweep_name=old_record"]
FINGERPRINT = "5511a0eb163fc32bd2d211fe6946177734e2e49862e7983e522b32a1402d6310"


def with_new_knob(default):
    """TrainConfig as it would be after a knob is added (its default keeps the old
    behaviour), the way the next issue will add one."""
    return dataclasses.make_dataclass(
        "TrainConfigPlus",
        [("new_knob", float, dataclasses.field(default=default))],
        bases=(TrainConfig,),
        frozen=True,
    )


def test_run_ids_of_the_old_record_are_recomputed_today():
    manifest = records.SweepManifest.read(V1)
    for seed, rid in enumerate(manifest.run_ids):
        tc = TrainConfig(seed=seed, steps=5, eval_every=5, width=8, depth=1)
        assert records.RunIdentity(tc, "mnist_5k", FINGERPRINT).run_id == rid


def test_a_new_knob_at_its_default_keeps_every_run_id():
    plus = with_new_knob(0.0)
    for seed in range(3):
        old = records.RunIdentity(TrainConfig(seed=seed), "mnist_5k", FINGERPRINT).run_id
        new = records.RunIdentity(plus(seed=seed), "mnist_5k", FINGERPRINT)
        assert new.run_id == old
        assert new.hashed_train_fields().keys() == set(HASHED_ALWAYS)
        changed = records.RunIdentity(plus(seed=seed, new_knob=0.5), "mnist_5k", FINGERPRINT)
        assert changed.run_id != old


def test_the_old_record_still_resumes(tmp_path, monkeypatch):
    """A sweep written before this code: rerunning its command trains nothing, and
    adding a knob (at its default) to the training config changes nothing of that."""
    sweep = tmp_path / "sweep"
    shutil.copytree(V1, sweep)
    before = {p: p.read_bytes() for p in (sweep / "runs").rglob("*") if p.is_file()}
    assert multirun(sweep, *V1_ARGS, "report=false") == []  # nothing left to launch
    monkeypatch.setattr("mlpsweep.app.spec.TrainConfig", with_new_knob(0.0))
    [returns] = multirun(sweep, *V1_ARGS, "report=false", "hydra/sweeper=basic")
    assert len(returns) == 2 and all(r.return_value.reused for r in returns)
    for path, data in before.items():
        assert path.read_bytes() == data, path


def test_the_old_record_reads_into_typed_objects():
    manifest = records.SweepManifest.read(V1)
    assert manifest.sweep_name == "old_record" and len(manifest.runs) == 2
    metrics = records.read_metrics(records.run_dir(V1, manifest.run_ids[0]))
    assert metrics.status == "ok" and metrics.steps_done == 5 and metrics.finished
    assert len(records.read_history(records.run_dir(V1, manifest.run_ids[0]))) == 5


def record(rid, steps=3):
    step = np.arange(1, steps + 1)
    history = {
        "step": step,
        "examples_seen": step * 10,
        "train_loss": np.linspace(2, 1, steps),
        "test_loss": np.full(steps, np.nan),
        "test_accuracy": np.full(steps, np.nan),
    }
    metrics = records.RunMetrics(rid, "ok", ["seed=0"], steps_done=steps, final_train_loss=1.0)
    return records.RunRecord({"seed": 0}, metrics, "log", history)


def test_a_record_is_finished_only_when_whole_and_consistent(tmp_path):
    run = tmp_path / "runs" / "0123456789abcdef"
    records.write_run(run, record("0123456789abcdef"))
    assert records.is_finished(run)
    hist = (run / "history.parquet").read_bytes()
    (run / "history.parquet").write_bytes(hist[:50])  # torn
    assert not records.is_finished(run)
    (run / "history.parquet").write_bytes(hist)
    (run / "metrics.json").write_text(
        '{"run_id": "0123456789abcdef", "status": "ok", "steps_done": 9}'
    )
    assert not records.is_finished(run)  # disagrees with the history
    (run / "metrics.json").write_text("[1, 2]")
    assert records.read_metrics(run) is None
    (run / "metrics.json").write_text('{"run_id": "x", "status": "maybe"}')
    assert records.read_metrics(run) is None


@pytest.mark.parametrize(
    "text",
    [
        "",
        "{}",
        '{"runs": 5}',
        '{"runs": [{"run_id": "../../etc", "overrides": []}]}',
        '{"runs": [{"run_id": "0123456789abcdef"}]}',
    ],
)
def test_a_bad_manifest_is_one_clear_error(tmp_path, text):
    (tmp_path / records.MANIFEST).write_text(text)
    with pytest.raises(records.SweepError) as err:
        records.SweepManifest.read(tmp_path)
    assert "\n" not in str(err.value) and str(tmp_path) in str(err.value)


def test_run_dirs_stay_inside_their_sweep(tmp_path):
    assert records.run_dir(tmp_path, "0123456789abcdef").parent == tmp_path / "runs"
    for bad in ("../x", "0123456789ABCDEF", "/etc/passwd", "0123456789abcdef/.."):
        with pytest.raises(records.SweepError):
            records.run_dir(tmp_path, bad)


def test_resume_picks_the_newest_sweep_with_a_readable_manifest(tmp_path):
    from mlpsweep.app.resolvers import sweep_dir

    root = tmp_path / "results"
    good, empty, broken = (root / "s" / t for t in ("2026-01-01", "2026-01-02", "2026-01-03"))
    records.SweepManifest(runs=[records.PlannedRun("0123456789abcdef")]).write(good)
    empty.mkdir()
    broken.mkdir()
    (broken / records.MANIFEST).write_text("{")
    assert sweep_dir(root, "s", resume=True) == str(good)
    assert Path(sweep_dir(root, "s")).parent == root / "s"  # a new one without resume
    assert Path(sweep_dir(root, "new", resume=True)).parent == root / "new"
    with pytest.raises(ValueError, match="plain folder name"):
        sweep_dir(root, "../up")


def test_a_history_reads_back_as_written_nan_included(tmp_path):
    run = tmp_path / "runs" / "0123456789abcdef"
    written = record("0123456789abcdef")
    records.write_run(run, written)
    back = records.read_history(run)
    assert list(back.columns) == list(written.history)
    for name, values in written.history.items():
        np.testing.assert_array_equal(back[name].to_numpy(), values)
        assert back[name].dtype == np.asarray(values).dtype


def test_writing_a_record_does_not_import_pandas(tmp_path):
    """A sweep's workers write records and nothing else of theirs needs pandas (~0.6 s
    of every worker's start)."""
    import subprocess
    import sys

    code = (
        "import sys; import numpy as np; from mlpsweep import records\n"
        "m = records.RunMetrics('0123456789abcdef', 'ok', [], steps_done=2)\n"
        "h = {'step': np.arange(1, 3), 'train_loss': np.array([2.0, np.nan])}\n"
        f"records.write_run({str(tmp_path / 'r')!r}, records.RunRecord({{}}, m, '', h))\n"
        "assert 'pandas' not in sys.modules, 'pandas was imported'"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert records.read_metrics(tmp_path / "r").finished
