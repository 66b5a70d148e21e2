"""The batch loader: its fast path (the train set normalised once) gives the batches of
its slow path (each batch normalised), bit for bit, in every dtype and layout."""

import dataclasses

import numpy as np
import pytest

from mlpsweep.core import TrainConfig
from mlpsweep.core.batches import BatchLoader, normalizer, train_inputs
from mlpsweep.core.train import Trainer
from mlpsweep.data import dataset as dataset_module


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_normalised_copy_gives_the_same_batches(tiny_dataset, dtype):
    x, y = tiny_dataset.x_train, tiny_dataset.y_train
    fast = BatchLoader(x, y, 7, dtype, unit=train_inputs(x))
    slow = BatchLoader(x, y, 7, dtype)
    rng = np.random.default_rng(0)
    for _ in range(5):
        idx = rng.integers(0, len(y), 7)
        a, la = fast.load(idx)
        a = a.copy()
        b, lb = slow.load(idx)
        assert a.dtype == dtype and np.array_equal(a, b) and np.array_equal(la, lb)
        assert np.array_equal(a, normalizer(dtype)(x[idx]))  # the listing's x / 255
        assert np.array_equal(la, y[idx])
        assert np.all(fast.wide[:, -1] == 1) and np.all(slow.wide[:, -1] == 1)


def test_images_of_another_dtype_are_only_cast(tiny_dataset):
    x = tiny_dataset.x_train.astype(np.float64) / 7
    loader = BatchLoader(x, tiny_dataset.y_train, 4, np.float64, unit=None)
    batch, _ = loader.load(np.arange(4))
    assert np.array_equal(batch, x[:4])


def test_the_copy_is_kept_read_only_and_not_made_when_too_large(tiny_dataset, monkeypatch):
    unit = tiny_dataset.train_inputs
    assert unit is tiny_dataset.train_inputs  # made once per Dataset object
    assert not unit.flags.writeable and unit.shape == (500, 21)
    monkeypatch.setattr(dataset_module, "FLOAT32_COPY_MAX_BYTES", 500 * 20 * 4 - 1)
    assert dataclasses.replace(tiny_dataset).train_inputs is None
    floats = dataclasses.replace(tiny_dataset, x_train=tiny_dataset.x_train.astype(np.float32))
    assert floats.train_inputs is None


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("fused", [True, False])
def test_a_run_is_the_same_with_or_without_the_copy(tiny_dataset, monkeypatch, dtype, fused):
    # A run's numbers depend on its config and seed alone, not on the dataset's size.
    cfg = TrainConfig(steps=100, width=16, batch_size=9, dtype=dtype)
    with_copy = Trainer(cfg, tiny_dataset, fused=fused)
    monkeypatch.setattr(dataset_module, "FLOAT32_COPY_MAX_BYTES", 0)
    without = Trainer(cfg, dataclasses.replace(tiny_dataset), fused=fused)
    assert with_copy.loader.unit is not None and without.loader.unit is None
    for _ in range(20):
        assert with_copy.step() == without.step()
    assert np.array_equal(with_copy.net.flat_params, without.net.flat_params)


def test_a_buffer_without_room_for_the_ones_is_refused(tiny_dataset):
    x = tiny_dataset.x_train
    with pytest.raises(ValueError, match="inputs \\+ 1"):
        BatchLoader(x, tiny_dataset.y_train, 4, np.float32, into=np.empty((4, 20), np.float32))
