"""The gradient-noise scale: per-example norms against brute force, the estimators
against populations whose answers are known, and a measurement that changes no loss."""

import itertools

import numpy as np
import pytest

from mlpsweep.core import TrainConfig, train
from mlpsweep.core.config import ConfigError
from mlpsweep.core.layers import ACTIVATIONS
from mlpsweep.core.network import MLP
from mlpsweep.core.noise import estimates, noise_stats, per_example
from mlpsweep.core.sampling import probe_indices
from mlpsweep.records.run import history_columns


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_per_example_norms_match_single_example_backward_passes(activation):
    # The probe's own backprop (noise.per_example) against the layers' backward passes.
    rng = np.random.default_rng(0)
    net = MLP(7, (6, 5), 4, activation=activation, init=0.5, dtype=np.float64, init_rng=rng)
    x, y = rng.normal(size=(12, 7)), rng.integers(0, 4, 12)
    weights = [(a.W, a.b) for a in net.affines]
    sq, sums = per_example(weights, activation, x, y)
    total = np.zeros_like(net.flat_grads)
    for i in range(len(x)):  # brute force: one backward pass per example
        net.loss(x[i : i + 1], y[i : i + 1])
        net.backward()
        g = net.flat_grads.copy()
        np.testing.assert_allclose(sq[i], g @ g, rtol=1e-10)
        total += g
    summed = np.concatenate([v.ravel() for dW, db in sums for v in (dW, db)])
    np.testing.assert_allclose(summed, total, rtol=1e-10, atol=1e-14)


def population_values(g):
    mean = g.mean(axis=0)
    return ((g - mean) ** 2).sum(axis=1).mean(), mean @ mean  # tr(Sigma), |G|^2


def subset_estimates(g, idx):
    sub = g[idx]
    mean = sub.mean(axis=0)
    return estimates(len(idx), len(g), float((sub * sub).sum()), float(mean @ mean))


def test_b_simple_of_a_population_with_a_known_covariance():
    """g = G +- s e_k over all k and signs: mean G, tr(Sigma) = s^2, so B = s^2 / |G|^2."""
    G, s, d = np.array([3.0, 0.0, 4.0, 0.0]), 0.7, 4
    g = np.array([G + sign * s * e for e in np.eye(d) for sign in (1, -1)])
    exact = subset_estimates(g, np.arange(len(g)))  # the whole set: n = N
    assert exact.trace_cov == pytest.approx(s * s, rel=1e-12)
    assert exact.grad_norm_sq == pytest.approx(25.0, rel=1e-12)
    assert exact.b_simple == pytest.approx(s * s / 25.0, rel=1e-12)


def test_the_estimators_are_unbiased_over_probe_draws():
    """Averaged over every probe of 3 from a population of 9, the estimates equal the
    population's values exactly (an expectation, computed by enumeration)."""
    rng = np.random.default_rng(5)
    g = rng.normal(size=(9, 3)) + np.array([0.5, -0.2, 0.1])
    trace, norm = population_values(g)
    draws = [subset_estimates(g, list(idx)) for idx in itertools.combinations(range(9), 3)]
    assert np.mean([e.trace_cov for e in draws]) == pytest.approx(trace, rel=1e-12)
    assert np.mean([e.grad_norm_sq for e in draws]) == pytest.approx(norm, rel=1e-12)
    # and one probe is not the answer: the estimates scatter
    assert np.std([e.grad_norm_sq for e in draws]) > 0.01 * norm


def test_below_the_noise_floor_b_simple_is_nan():
    assert np.isnan(estimates(2, 100, sum_sq_norms=10.0, mean_grad_sq_norm=0.01).b_simple)


def test_noise_stats_of_a_network_equal_the_brute_force_definition(tiny_dataset):
    rng = np.random.default_rng(1)
    net = MLP(20, (8,), 3, init="he", dtype=np.float64, init_rng=rng)
    x = tiny_dataset.x_train[:40].astype(np.float64) / 255
    y = tiny_dataset.y_train[:40]
    chunks = [(x[i : i + 16], y[i : i + 16]) for i in range(0, 40, 16)]
    stats = noise_stats([(a.W, a.b) for a in net.affines], "relu", chunks, total=40)
    grads = []
    for i in range(40):
        net.loss(x[i : i + 1], y[i : i + 1])
        net.backward()
        grads.append(net.flat_grads.copy())
    trace, norm = population_values(np.array(grads))
    assert stats.trace_cov == pytest.approx(trace, rel=1e-9)
    assert stats.grad_norm_sq == pytest.approx(norm, rel=1e-9)


def test_the_probe_is_drawn_once_without_replacement_from_its_own_stream():
    a, b = probe_indices(50, seed=3, train_size=400), probe_indices(50, seed=3, train_size=400)
    assert np.array_equal(a, b) and len(np.unique(a)) == 50
    assert not np.array_equal(a, probe_indices(50, seed=4, train_size=400))
    assert np.array_equal(probe_indices("all", seed=3, train_size=400), np.arange(400))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_measuring_changes_no_loss_and_records_the_noise_scale(tiny_dataset, dtype):
    base = TrainConfig(depth=1, width=16, steps=60, eval_every=20, batch_size=8, dtype=dtype)
    off = train(base, tiny_dataset)
    on = train(base.replace(noise_probe="all"), tiny_dataset)
    np.testing.assert_array_equal(on.train_loss, off.train_loss)  # bitwise
    np.testing.assert_array_equal(on.test_loss, off.test_loss)
    assert on.noise.shape == (3, 3) and off.noise is None
    summary = on.summary()
    assert summary["b_simple_init"] > 0 and summary["trace_cov_init"] > 0
    cols = history_columns(on)
    evals = ~np.isnan(cols["b_simple"])
    assert list(cols["step"][evals]) == [20, 40, 60]
    assert list(cols["b_simple"][evals]) == list(on.noise[:, 2])


def test_noise_probe_values_are_checked(tiny_dataset):
    for bad in (1, 501, "some"):
        with pytest.raises(ConfigError, match="noise_probe"):
            TrainConfig(noise_probe=bad).validate(train_size=500)
    TrainConfig(noise_probe="all").validate(train_size=500)
    TrainConfig(noise_probe=64).validate(train_size=500)
