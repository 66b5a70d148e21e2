import numpy as np
import pytest

from mlpsweep.core.sampling import Epoch, WithReplacement, run_streams


def test_legacy_replays_the_global_stream():
    np.random.seed(8)
    expected = [np.random.randn(3, 2), np.random.choice(50, 4), np.random.choice(50, 4)]
    rs, sample_rs, _ = run_streams(8, "legacy")
    sampler = WithReplacement(50, 4, sample_rs)
    got = [rs.randn(3, 2), sampler.next(), sampler.next()]
    for a, b in zip(expected, got):
        assert np.array_equal(a, b)


def test_default_streams_depend_on_seed_only_and_are_independent():
    a, b = run_streams(5), run_streams(5)
    assert all(np.array_equal(x.random(4), y.random(4)) for x, y in zip(a, b))
    c = run_streams(6)
    assert not np.array_equal(run_streams(5)[0].random(4), c[0].random(4))
    init, sample, drop = run_streams(5)
    assert len({init.random(), sample.random(), drop.random()}) == 3


def test_with_replacement_blocks_are_in_range_and_continue():
    sampler = WithReplacement(10, 3, np.random.default_rng(0))
    batches = np.array([sampler.next() for _ in range(WithReplacement.BLOCK + 5)])
    assert batches.min() >= 0 and batches.max() < 10
    assert len({tuple(b) for b in batches}) > 100


def test_epoch_sampler_visits_every_example_once_per_epoch():
    sampler = Epoch(10, 3, np.random.default_rng(0))
    epoch1 = np.concatenate([sampler.next() for _ in range(3)])  # 9 of 10, one dropped
    assert len(set(epoch1)) == 9
    epoch2 = np.concatenate([sampler.next() for _ in range(3)])
    assert len(set(epoch2)) == 9
    assert not np.array_equal(epoch1, epoch2)


def test_a_restored_state_continues_the_same_batches():
    for cls in (WithReplacement, Epoch):
        a, b = cls(10, 3, np.random.default_rng(0)), cls(10, 3, np.random.default_rng(1))
        a.next()
        b.restore(a.state())
        assert all(np.array_equal(a.next(), b.next()) for _ in range(WithReplacement.BLOCK + 3))


@pytest.mark.parametrize(
    "cls, key, value",
    [
        (WithReplacement, "block", lambda s: s["block"] + 10),  # past the train set
        (WithReplacement, "block", lambda s: s["block"] - 11),  # negative
        (WithReplacement, "block", lambda s: s["block"][:5]),  # another shape
        (WithReplacement, "block", lambda s: s["block"] * 0.5),  # not integers
        (WithReplacement, "row", lambda s: WithReplacement.BLOCK + 1),
        (WithReplacement, "row", lambda s: -1),
        (Epoch, "order", lambda s: np.arange(10) + 1),
        (Epoch, "order", lambda s: np.arange(9)),
        (Epoch, "pos", lambda s: 11),
    ],
)
def test_a_restored_state_that_would_index_outside_the_train_set_is_refused(cls, key, value):
    # The batch loader gathers with mode="clip" (no bounds check): a restored sampler's
    # indices are checked instead, so an edited checkpoint cannot pick other examples.
    sampler = cls(10, 3, np.random.default_rng(0))
    sampler.next()
    state = sampler.state()
    state[key] = value(state)
    fresh = cls(10, 3, np.random.default_rng(0))
    with pytest.raises(ValueError, match="restored sampler"):
        fresh.restore(state)
