"""Mid-run checkpoints on disk: verified before use (every hostile variant falls back to
the previous checkpoint or to step 0, and says so), removed when the record lands, and a
sweep's run continued from one ends bitwise equal to an uninterrupted run. The real
SIGKILL tests are marked slow."""

import logging
import os
import random
import signal
import subprocess
import sys

import numpy as np
import pytest
from helpers import REPO, multirun, wait_for

from mlpsweep import records
from mlpsweep.app.checkpoints import resume_point
from mlpsweep.core import TrainConfig, train
from mlpsweep.core.observe import TrainObserver
from mlpsweep.records.checkpoint import (
    checkpoint_name,
    checkpoints,
    decode,
    encode,
    read_checkpoint,
    write_checkpoint,
)

RID = "0123456789abcdef"


class Keep(TrainObserver):
    def __init__(self):
        self.states = []

    def on_checkpoint(self, state):
        self.states.append(state)


@pytest.fixture(scope="module")
def states(tiny_dataset):
    cfg = TrainConfig(
        steps=30, eval_every=10, width=8, batch_size=10, optimizer="adam", dropout=0.2,
        sampler="epoch", noise_probe=10, trajectory_probe=20, checkpoint_every=10,
    )  # fmt: skip
    keep = Keep()
    full = train(cfg, tiny_dataset, observer=keep)
    return cfg, full, keep.states


def test_a_state_survives_its_bytes_exactly(tiny_dataset, states):
    cfg, full, kept = states
    back = decode(encode(kept[0], RID), RID)
    resumed = train(cfg, tiny_dataset, start=back)
    assert np.array_equal(resumed.train_loss, full.train_loss)
    assert np.array_equal(resumed.trajectory_loss, full.trajectory_loss, equal_nan=True)
    assert np.array_equal(resumed.noise, full.noise, equal_nan=True)
    assert np.array_equal(resumed.noise_init, full.noise_init, equal_nan=True)


def hostile(path, good):
    """Each way a checkpoint file can be wrong, as (name, make)."""
    return [
        ("a flipped byte", lambda: path.write_bytes(good[:-9] + bytes([good[-9] ^ 1]) + good[-8:])),
        ("truncated", lambda: path.write_bytes(good[: len(good) // 2])),
        ("empty", lambda: path.write_bytes(b"")),
        ("not a checkpoint", lambda: path.write_bytes(b"PK\x03\x04" + good[100:])),
        ("another run's", lambda: path.write_bytes(encode(decode(good, RID), "f" * 16))),
        ("a symbolic link", lambda: path.symlink_to(path.parent / "elsewhere")),
        ("a folder", lambda: path.mkdir()),
        ("a FIFO", lambda: os.mkfifo(path)),
    ]


def test_a_checkpoint_that_fails_its_check_falls_back_to_the_one_before(tmp_path, states, caplog):
    _, _, kept = states
    write_checkpoint(tmp_path, kept[0], RID)
    newest = write_checkpoint(tmp_path, kept[1], RID)
    good = newest.read_bytes()
    (tmp_path / "elsewhere").write_bytes(good)
    for name, make in hostile(newest, good):
        newest.unlink() if not newest.is_dir() else newest.rmdir()
        make()
        with caplog.at_level(logging.WARNING, "mlpsweep"):
            caplog.clear()
            state = resume_point(tmp_path, RID)
        assert state is not None and state.step == kept[0].step, name
        if name != "a symbolic link":  # a link is not even looked at
            assert "checkpoint ignored: checkpoint-000000020.npz" in caplog.text, name
    newest.unlink()
    # and with no good one left, step 0, said
    (tmp_path / checkpoint_name(10)).write_bytes(good[:100])
    with caplog.at_level(logging.WARNING, "mlpsweep"):
        caplog.clear()
        assert resume_point(tmp_path, RID) is None
    assert "no usable checkpoint: trained from step 0" in caplog.text


def test_only_the_newest_two_are_kept(tmp_path, states):
    for state in states[2]:
        write_checkpoint(tmp_path, state, RID)
    assert [p.name for p in checkpoints(tmp_path)] == [checkpoint_name(20), checkpoint_name(10)]
    assert read_checkpoint(tmp_path, RID).state.step == 20


def history_and_numbers(run_dir):
    metrics = records.read_metrics(run_dir)
    assert metrics is not None
    numbers = {
        k: v for k, v in metrics.results().items() if "seconds" not in k and k != "steps_per_s"
    }
    numbers.pop("worker_pid")
    return (run_dir / "history.parquet").read_bytes(), numbers


ARGS = ("steps=60", "eval_every=20", "width=16", "batch_size=20", "report=false")


@pytest.mark.slow  # over 1.4 s: kept out of the one-minute quick suite
def test_checkpoints_change_no_run_id_and_are_gone_when_the_record_lands(tmp_path):
    [plain] = multirun(tmp_path / "a", *ARGS, "seed=0,1")
    [ckpt] = multirun(tmp_path / "b", *ARGS, "seed=0,1", "checkpoint_every=7")
    assert [r.return_value.run_id for r in plain] == [r.return_value.run_id for r in ckpt]
    for r in ckpt:
        run_dir = tmp_path / "b" / "runs" / r.return_value.run_id
        assert checkpoints(run_dir) == []
        a, b = (
            history_and_numbers(run_dir),
            history_and_numbers(tmp_path / "a" / "runs" / r.return_value.run_id),
        )
        assert a == b


def test_a_resumed_sweep_removes_checkpoints_a_kill_left_beside_a_finished_record(tmp_path):
    """A SIGKILL between a record landing and its checkpoints' removal leaves them; the
    resumed sweep never trains that run again, so its planner removes them (a dry run
    touches nothing)."""
    [first] = multirun(tmp_path, *ARGS, "seed=0,1")
    run_dirs = [tmp_path / "runs" / r.return_value.run_id for r in first]
    left = run_dirs[0] / checkpoint_name(10)
    left.write_bytes(b"left by a kill")
    multirun(tmp_path, *ARGS, "seed=0,1", "resume=true", "dry_run=true")
    assert checkpoints(run_dirs[0]) == [left]
    multirun(tmp_path, *ARGS, "seed=0,1", "resume=true")
    assert checkpoints(run_dirs[0]) == []
    assert all(records.is_finished(d) for d in run_dirs)


@pytest.mark.slow  # over 1.4 s: kept out of the one-minute quick suite
def test_a_paused_run_continues_from_its_checkpoint_to_the_uninterrupted_numbers(tmp_path):
    args = (*ARGS, "optimizer=momentum", "dropout=0.2", "seed=3")
    [[full]] = multirun(tmp_path / "full", *args)
    [[paused]] = multirun(tmp_path / "s", *args, "pause_at=25")
    run_dir = tmp_path / "s" / "runs" / paused.return_value.run_id
    metrics = records.read_metrics(run_dir)
    assert metrics.paused and metrics.steps_done == 25
    assert [p.name for p in checkpoints(run_dir)] == [checkpoint_name(25)]
    # nothing to do: it is at that rung already (the planner leaves it out)
    assert multirun(tmp_path / "s", *args, "pause_at=25", "resume=true") == []
    # a paused run is a result as it is (halving keeps the ones it did not promote) ...
    assert multirun(tmp_path / "s", *args, "resume=true") == []
    # ... until asked for more steps (promoted)
    [[rest]] = multirun(tmp_path / "s", *args, "pause_at=60", "resume=true")
    assert not rest.return_value.reused and checkpoints(run_dir) == []
    a = history_and_numbers(run_dir)
    b = history_and_numbers(tmp_path / "full" / "runs" / full.return_value.run_id)
    assert a == b


KILL_GRID = (
    "optimizer=sgd,momentum,nesterov,adagrad,rmsprop,adam",
    "dropout=0,0.3,0.3,0,0.3,0.3",
    "sampler=with_replacement,epoch,with_replacement,epoch,epoch,with_replacement",
    "rng=legacy,default,default,legacy,default,legacy",
    "hydra.sweeper.zip=[[optimizer,dropout,sampler,rng]]",
    "noise_probe=50",
    "trajectory_probe=100",
    "steps=300",
    "eval_every=50",
    "width=32",
    "batch_size=20",
    "report=false",
    "hydra/launcher=basic",
)


@pytest.mark.slow
def test_a_sweep_sigkilled_at_random_steps_resumes_bitwise_equal(tmp_path):
    """Every optimizer, dropout on and off, both samplers, both with the probes on: the
    sweep is SIGKILLed at random moments (right after a checkpoint past a random step
    appears: mid-run), resumed with resume=true, and every record equals the
    uninterrupted one's."""
    [reference] = multirun(tmp_path / "ref", *KILL_GRID)
    sweep = tmp_path / "killed"
    args = [sys.executable, str(REPO / "run.py"), "-m", *KILL_GRID, "checkpoint_every=10"]
    args += [f"hydra.sweep.dir={sweep}", "resume=true"]
    rng = random.Random(33)
    kills = 0
    for _ in range(5):
        with open(tmp_path / "stderr", "wb") as err:
            proc = subprocess.Popen(
                args, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=err,
                start_new_session=True,
            )  # fmt: skip
        target = rng.randrange(20, 290, 10)  # a checkpoint of some run at a random step

        before = set(sweep.glob("runs/*/checkpoint-*.npz"))

        def reached(t=target, p=proc, old=before):
            new = set(sweep.glob("runs/*/checkpoint-*.npz")) - old
            return p.poll() is not None or any(int(c.name[11:20]) >= t for c in new)

        wait_for(reached, timeout=300, what=f"a checkpoint at step {target}")
        if proc.poll() is not None:
            break
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        kills += 1
    last = subprocess.run(args, cwd=tmp_path, capture_output=True, text=True)
    assert last.returncode == 0, last.stderr[-2000:]
    assert kills >= 3  # killed mid-run several times
    log = "".join(p.read_text() for p in sweep.glob("runs/*/job.log"))
    assert "continuing from its checkpoint" in log or kills == 0
    for r in reference:
        rid = r.return_value.run_id
        a, b = (
            history_and_numbers(sweep / "runs" / rid),
            history_and_numbers(tmp_path / "ref" / "runs" / rid),
        )
        assert a == b, rid
        assert checkpoints(sweep / "runs" / rid) == []
