import numpy as np

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
