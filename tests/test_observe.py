"""The observer hook and the core's resumable state: train(start=state) continues a run to
the uninterrupted run's numbers, bit for bit (in-process; tests/test_checkpoint.py kills
real processes)."""

import numpy as np
import pytest

from mlpsweep.core import TrainConfig, train
from mlpsweep.core.observe import TrainObserver
from mlpsweep.core.optimizers import OPTIMIZERS

FIELDS = (
    "train_loss",
    "eval_step",
    "test_loss",
    "test_accuracy",
    "noise",
    "loss_sampling_var",
    "trajectory_loss",
    "trajectory_sampling_var",  # needs every measured step's per-example losses
)


def assert_same_numbers(a, b):
    for name in FIELDS:
        x, y = getattr(a, name), getattr(b, name)
        assert (x is None) == (y is None), name
        if x is not None:
            assert x.dtype == y.dtype and np.array_equal(x, y, equal_nan=True), name
    assert a.summary() | TIMES == b.summary() | TIMES


TIMES = {"wall_seconds": 0, "train_seconds": 0, "steps_per_s": 0}


class Recorder(TrainObserver):
    def __init__(self):
        self.steps, self.evals, self.states, self.ended = [], [], [], None

    def on_step(self, step, train_loss):
        self.steps.append((step, train_loss))

    def on_eval(self, step, values):
        self.evals.append((step, dict(values)))

    def on_checkpoint(self, state):
        self.states.append(state)

    def on_end(self, result):
        self.ended = result


def small(**changes):
    base = dict(steps=40, eval_every=10, width=16, batch_size=20, noise_probe=16)
    return TrainConfig(**(base | changes))


def test_the_observer_sees_every_step_and_evaluation(tiny_dataset):
    cfg = small(checkpoint_every=15)
    rec = Recorder()
    result = train(cfg, tiny_dataset, observer=rec)
    assert [s for s, _ in rec.steps] == list(range(1, 41))
    assert np.array_equal([loss for _, loss in rec.steps], result.train_loss)
    assert [s for s, _ in rec.evals] == [10, 20, 30, 40]
    assert [v["test_loss"] for _, v in rec.evals] == result.test_loss.tolist()
    assert [v["b_simple"] for _, v in rec.evals] == result.noise[:, 2].tolist()
    assert [s.step for s in rec.states] == [15, 30]  # none at the last step
    assert rec.ended is result


def test_checkpoint_every_changes_no_number(tiny_dataset):
    assert_same_numbers(
        train(small(), tiny_dataset), train(small(checkpoint_every=3), tiny_dataset)
    )


CASES = [  # every optimizer; dropout, both samplers, both stream modes and the probes
    dict(optimizer=name, dropout=drop, sampler=sampler, rng=rng, trajectory_probe=30)
    for name, drop, sampler, rng in zip(
        OPTIMIZERS,
        [0.0, 0.3, 0.0, 0.3, 0.3, 0.0],
        ["epoch", "with_replacement", "with_replacement", "epoch", "epoch", "with_replacement"],
        ["default", "legacy", "default", "default", "legacy", "legacy"],
    )
]


@pytest.mark.parametrize("changes", CASES, ids=lambda c: "-".join(map(str, c.values())))
def test_a_run_continued_from_any_checkpoint_is_bitwise_the_uninterrupted_one(
    tiny_dataset, changes
):
    cfg = small(checkpoint_every=6, **changes)
    rec = Recorder()
    full = train(cfg, tiny_dataset, observer=rec)
    assert len(rec.states) == 6
    for state in rec.states[::2]:
        assert_same_numbers(full, train(cfg, tiny_dataset, start=state))


def test_a_paused_run_continues_to_the_same_numbers(tiny_dataset):
    cfg = small(optimizer="adam")
    rec = Recorder()
    paused = train(cfg, tiny_dataset, observer=rec, stop_at=17)
    assert paused.paused and paused.steps_done == 17 and rec.states[-1].step == 17
    full = train(cfg, tiny_dataset)
    assert np.array_equal(paused.train_loss, full.train_loss[:17])
    assert_same_numbers(full, train(cfg, tiny_dataset, start=rec.states[-1]))


def test_a_run_at_its_target_on_the_step_it_was_to_pause_at_has_stopped_not_paused(
    tiny_dataset,
):
    cfg = small(eval_every=1, target="test_accuracy:0.6", stop_at_target=True)
    whole = train(cfg, tiny_dataset)
    at = whole.steps_to_target
    assert at is not None and 1 < at < cfg.steps and not whole.paused
    there = train(cfg, tiny_dataset, stop_at=at)
    assert there.steps_done == at and there.steps_to_target == at and not there.paused
    before = train(cfg, tiny_dataset, stop_at=at - 1)
    assert before.paused and before.steps_to_target is None


def test_a_state_of_another_config_is_refused(tiny_dataset):
    rec = Recorder()
    train(small(), tiny_dataset, observer=rec, stop_at=5)
    with pytest.raises(ValueError, match="another run's"):
        train(small(lr=0.2), tiny_dataset, start=rec.states[-1])
    # checkpoint_every is no part of what a state must match
    train(small(checkpoint_every=2), tiny_dataset, start=rec.states[-1])
