"""The fused float32 step against the layer path it stands in for."""

import numpy as np
import pytest

from mlpsweep.core import TrainConfig
from mlpsweep.core.train import Trainer

# Tolerances, not stored numbers: they must hold under any BLAS kernel.
pytestmark = pytest.mark.repro


def trainers(ds, **kw):
    cfg = TrainConfig(steps=100, width=16, **kw)
    return Trainer(cfg, ds, fused=True), Trainer(cfg, ds, fused=False)


@pytest.mark.parametrize(
    "kw",
    [
        {},
        {"grad_reduction": "sum", "lr": 0.01},
        {"depth": 0},
        {"depth": 1, "batch_size": 7},
        {"hidden_sizes": (12, 9, 5)},
        {"loss_eps": 1e-7, "init": 0.01, "rng": "legacy", "grad_reduction": "sum", "lr": 0.01},
    ],
)
def test_same_losses_and_weights_as_the_layer_path(tiny_dataset, kw):
    # In float64 the two paths differ only by rounding: 30 steps stay within 1e-12.
    fused, layers = trainers(tiny_dataset, dtype="float64", **kw)
    a = [fused.step() for _ in range(30)]
    b = [layers.step() for _ in range(30)]
    np.testing.assert_allclose(a, b, rtol=1e-12)
    np.testing.assert_allclose(fused.net.flat_params, layers.net.flat_params, rtol=0, atol=1e-13)


def test_float32_close_to_the_layer_path(tiny_dataset):
    fused, layers = trainers(tiny_dataset, dtype="float32", lr=0.5)
    a = [fused.step() for _ in range(30)]
    b = [layers.step() for _ in range(30)]
    np.testing.assert_allclose(a, b, rtol=1e-4)
    np.testing.assert_allclose(fused.net.flat_params, layers.net.flat_params, atol=1e-5)
    assert a[-1] < 0.5 * a[0]  # it learns


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_its_update_is_lr_times_the_gradient(tiny_dataset, reduction):
    lr = 0.05
    fused, layers = trainers(tiny_dataset, dtype="float64", lr=lr, grad_reduction=reduction)
    x, y = fused.loader.load(np.arange(fused.config.batch_size))
    before = fused.net.flat_params.copy()
    fused.fused.step(x, y)
    layers.net.loss(x, y)
    layers.net.backward()
    np.testing.assert_allclose(fused.net.flat_grads, lr * layers.net.flat_grads, atol=1e-15)
    np.testing.assert_allclose(before - fused.net.flat_params, fused.net.flat_grads, atol=1e-15)


def test_a_non_finite_loss_leaves_the_weights_alone(tiny_dataset):
    fused, _ = trainers(tiny_dataset, dtype="float32")
    before = fused.net.flat_params.copy()
    x = np.full((fused.config.batch_size, 20), np.inf, np.float32)
    with np.errstate(all="ignore"):
        loss = fused.fused.step(x, np.zeros(fused.config.batch_size, np.intp))
    assert not np.isfinite(loss)
    assert np.array_equal(fused.net.flat_params, before)


@pytest.mark.parametrize(
    "kw, expected",
    [
        ({}, True),
        ({"dtype": "float64"}, False),  # float64 keeps the listing's rounding
        ({"optimizer": "momentum"}, False),
        ({"activation": "tanh"}, False),
        ({"dropout": 0.2}, False),
        ({"weight_decay": 1e-4}, False),
    ],
)
def test_the_trainer_uses_it_where_it_applies(tiny_dataset, kw, expected):
    trainer = Trainer(TrainConfig(width=8, **kw), tiny_dataset)
    assert (trainer.fused is not None) is expected


def test_forcing_it_where_it_does_not_apply_is_refused(tiny_dataset):
    with pytest.raises(ValueError, match="fused step needs sgd"):
        Trainer(TrainConfig(width=8, optimizer="adam"), tiny_dataset, fused=True)
