"""Steps to a target on crafted histories, and the log-spaced evaluation schedule."""

import numpy as np
import pytest

from mlpsweep.core import TrainConfig, train
from mlpsweep.core.checks import ConfigError
from mlpsweep.core.target import SMOOTH, eval_steps, parse_target, steps_to_target


def test_train_loss_target_uses_the_trailing_mean():
    loss = np.full(200, 1.0)
    loss[50] = 0.0  # one lucky batch does not reach the target
    loss[120:] = 0.2  # from step 121 on; the trailing mean of SMOOTH steps gets there later
    t = parse_target("train_loss<=0.3")
    # mean of the last SMOOTH steps <= 0.3 once k of them are 0.2: k >= 0.7 * SMOOTH / 0.8
    k = int(np.ceil(0.7 * SMOOTH / 0.8))
    assert steps_to_target(t, loss, [], [], []) == 120 + k
    assert steps_to_target(parse_target("train_loss<=0.1"), loss, [], [], []) is None


def test_test_metric_targets_read_the_evaluations():
    steps, acc = np.array([10, 20, 40, 80]), np.array([0.5, 0.85, 0.91, 0.95])
    assert steps_to_target(parse_target("test_accuracy>=0.9"), [], steps, acc, acc) == 40
    assert steps_to_target(parse_target("test_loss<=0.5"), [], steps, acc, acc) == 10
    assert steps_to_target(parse_target("test_accuracy>=0.99"), [], steps, acc, acc) is None
    # METRIC:VALUE (what Hydra takes unquoted): accuracy rises to the value, a loss falls
    assert parse_target("test_accuracy:0.9") == parse_target("test_accuracy>=0.9")
    assert parse_target("train_loss:0.3") == parse_target("train_loss<=0.3")


def test_log_schedule_resolves_every_step_to_within_ten_percent():
    at = eval_steps(5000, 100, "log")
    assert at[0] == 1 and at[-1] == 5000
    gaps = np.diff(at) / np.array(at[:-1])
    assert (gaps[np.array(at[:-1]) >= 10] <= 0.1 + 1e-9).all()  # within 10% beyond step 10
    assert eval_steps(1000, 100) == list(range(100, 1001, 100))
    assert eval_steps(1000, 0) == [1000]


@pytest.mark.parametrize("bad", ["accuracy:0.9", "test_accuracy=0.9", "train_loss<=x"])
def test_bad_targets_say_how_to_write_one(bad):
    with pytest.raises(ConfigError, match="target="):
        TrainConfig(target=bad).validate()


def test_a_run_records_its_steps_and_examples_to_target(tiny_dataset):
    cfg = TrainConfig(
        depth=1, width=16, steps=300, batch_size=8, eval_schedule="log", target="test_accuracy:0.8"
    )
    result = train(cfg, tiny_dataset)
    s = result.summary()
    reached = s["steps_to_target"]
    assert reached is not None and s["examples_to_target"] == reached * 8
    i = list(result.eval_step).index(reached)
    assert result.test_accuracy[i] >= 0.8 and (result.test_accuracy[:i] < 0.8).all()
    without = train(cfg.replace(target=None, eval_schedule="linear", eval_every=100), tiny_dataset)
    np.testing.assert_array_equal(
        without.train_loss, result.train_loss
    )  # evaluations change no loss


@pytest.mark.parametrize("target", ["test_accuracy:0.8", "train_loss:0.5"])
def test_stop_at_target_ends_the_run_where_it_is_reached(tiny_dataset, target):
    cfg = TrainConfig(
        depth=1, width=16, steps=400, batch_size=8, eval_schedule="log", target=target
    )
    full = train(cfg, tiny_dataset)
    short = train(cfg.replace(stop_at_target=True), tiny_dataset)
    reached = full.steps_to_target
    assert reached is not None and short.steps_to_target == reached
    assert short.steps_done == reached < full.steps_done
    np.testing.assert_array_equal(short.train_loss, full.train_loss[:reached])  # the same run, cut
    assert short.eval_step[-1] == reached  # evaluated where it stopped
    with pytest.raises(ConfigError, match="stop_at_target=true needs a target"):
        TrainConfig(stop_at_target=True).validate()
