"""The fused float32 step against the layer path it stands in for."""

import numpy as np
import pytest

from mlpsweep.core import TrainConfig
from mlpsweep.core.layers import ReLU
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


def kill_a_unit_per_hidden_layer(trainer):
    """Zero one unit's incoming weights and bias in each hidden layer: its pre-activation
    is exactly 0, ReLU's kink, at every step (ReLU.derivative there is 0: it stays dead)."""
    for k, affine in enumerate(trainer.net.affines[:-1]):
        affine.W[:, k] = 0
        affine.b[k] = 0
    return trainer


@pytest.mark.parametrize("in_gemm", [True, False])
def test_same_steps_as_the_layer_path_at_relus_kink(tiny_dataset, in_gemm):
    # As test_same_losses_and_weights_as_the_layer_path, with pre-activations at ReLU's
    # kink, where the two paths' ReLU passes could differ (is 0 "on"?), and do not.
    fused, layers = trainers(tiny_dataset, dtype="float64", hidden_sizes=(12, 9, 5))
    if in_gemm:
        gemm_or_skip(fused)
    fused.fused.in_gemm = in_gemm
    for trainer in (fused, layers):
        kill_a_unit_per_hidden_layer(trainer)
    a = [fused.step() for _ in range(30)]
    b = [layers.step() for _ in range(30)]
    np.testing.assert_allclose(a, b, rtol=1e-12)
    np.testing.assert_allclose(fused.net.flat_params, layers.net.flat_params, rtol=0, atol=1e-13)
    for trainer in (fused, layers):
        for k, affine in enumerate(trainer.net.affines[:-1]):
            assert not affine.W[:, k].any() and affine.b[k] == 0  # still dead


@pytest.mark.parametrize("in_gemm", [True, False])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_its_relu_passes_are_the_relu_layers_function_and_derivative(tiny_dataset, dtype, in_gemm):
    """Pass by pass, bit for bit: the fused step's ReLU outputs are ReLU.function of its
    pre-activations, its masks ReLU.derivative, and its backward multiplies d(loss)/d(output)
    by that derivative (core/layers.py states the math once; the fused step restates it
    for speed, so this checks it)."""
    cfg = TrainConfig(steps=100, width=16, dtype=dtype, hidden_sizes=(12, 9, 5), lr=0.5)
    trainer = kill_a_unit_per_hidden_layer(Trainer(cfg, tiny_dataset, fused=True))
    if in_gemm:
        gemm_or_skip(trainer)
    fused = trainer.fused
    fused.in_gemm = in_gemm
    widths = [z.shape[1] for z in fused.z[:-1]]
    checked = []
    for _ in range(3):
        x, y = trainer.loader.load(trainer.sampler.next())
        for kind, stage in fused.stages(x, y):
            if kind.startswith("ReLU"):
                k = next(k for k, z in enumerate(fused.z_full) if z is stage.args[0])
                z, w = fused.z_full[k], widths[k]
                before = z[:, :w].copy()  # pre-activations; backward: d(loss)/d(output)
            stage()
            if kind == "ReLU masks and outputs":
                assert np.array_equal(fused.mask[k][:, :w], ReLU.derivative(before))
                assert np.array_equal(fused.relu_full[k][:, :w], ReLU.function(before.copy()))
                assert not fused.relu_full[k][:, k].any()  # the dead unit: the kink
                checked.append(("forward", k))
            elif kind == "ReLU backward (mask)":
                slope = ReLU.derivative(fused.relu_full[k][:, :w])
                assert np.array_equal(z[:, :w], before * slope)
                checked.append(("backward", k))
    assert sorted(checked) == sorted(
        [(way, k) for way in ("forward", "backward") for k in range(3)] * 3
    )


@pytest.mark.parametrize("in_gemm", [True, False])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_its_update_is_lr_times_the_gradient(tiny_dataset, reduction, in_gemm):
    lr = 0.05
    fused, layers = trainers(tiny_dataset, dtype="float64", lr=lr, grad_reduction=reduction)
    if in_gemm and not fused.fused.in_gemm:
        pytest.skip("no exact gemm update with this BLAS")
    fused.fused.in_gemm = in_gemm
    x, y = fused.loader.load(np.arange(fused.config.batch_size))
    before = fused.net.flat_params.copy()
    fused.fused.step(x, y)
    layers.net.loss(x, y)
    layers.net.backward()
    np.testing.assert_allclose(
        before - fused.net.flat_params, lr * layers.net.flat_grads, atol=1e-15
    )
    if not in_gemm:  # the two-pass step leaves the step it took in flat_grads
        np.testing.assert_allclose(before - fused.net.flat_params, fused.net.flat_grads, atol=1e-15)


def gemm_or_skip(trainer):
    if not trainer.fused.in_gemm:
        pytest.skip("numpy's BLAS takes no exact gemm update here (see core/blas.py)")


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize(
    "kw",
    [
        {},
        {"batch_size": 1},
        {"batch_size": 100, "width": 64},
        {"depth": 0, "batch_size": 32},
        {"hidden_sizes": (12, 9, 5), "batch_size": 7},
        {"loss_eps": 1e-7, "grad_reduction": "sum", "lr": 0.01, "sampler": "epoch"},
        {"lr": 1e4},  # diverges: the same step, the same weights left behind
    ],
)
def test_the_products_writing_the_update_change_no_bit(tiny_dataset, kw, dtype):
    # The gemm update (core/blas.py) against the products-then-subtraction it replaces:
    # losses, their variance and the weights, bit for bit, step by step.
    cfg = TrainConfig(**{"steps": 100, "width": 16, "dtype": dtype, **kw})
    gemm, two_pass = Trainer(cfg, tiny_dataset, fused=True), Trainer(cfg, tiny_dataset, fused=True)
    gemm_or_skip(gemm)
    two_pass.fused.in_gemm = False
    with np.errstate(all="ignore"):
        for _ in range(40):
            a, b = gemm.step(), two_pass.step()
            assert np.array_equal(a, b, equal_nan=True)
            assert np.array_equal(
                gemm.loss_sampling_var(), two_pass.loss_sampling_var(), equal_nan=True
            )
            assert np.array_equal(gemm.net.flat_params, two_pass.net.flat_params, equal_nan=True)


def test_an_input_laid_out_otherwise_takes_two_passes_with_the_same_numbers(tiny_dataset):
    cfg = TrainConfig(steps=100, width=16, batch_size=8)
    gemm, two_pass = Trainer(cfg, tiny_dataset), Trainer(cfg, tiny_dataset)
    gemm_or_skip(gemm)
    two_pass.fused.in_gemm = False
    for _ in range(10):
        x, y = gemm.loader.load(gemm.sampler.next())
        wide = np.zeros((8, 2 * x.shape[1]), x.dtype)  # a strided view, then a fresh copy
        wide[:, ::2] = x
        for batch in (wide[:, ::2], x.copy()):
            assert gemm.fused.step(batch, y) == two_pass.fused.step(x, y)
            assert np.array_equal(gemm.net.flat_params, two_pass.net.flat_params)


def test_without_an_exact_gemm_update_it_takes_two_passes(tiny_dataset, monkeypatch):
    from mlpsweep.core import blas

    monkeypatch.setattr(blas, "exact_update", lambda *shape: False)
    assert not Trainer(TrainConfig(width=8), tiny_dataset).fused.in_gemm


@pytest.mark.parametrize("in_gemm", [True, False])
@pytest.mark.parametrize("kw", [{}, {"depth": 0}, {"hidden_sizes": (12, 9, 5)}])
def test_its_stages_in_order_are_its_step(tiny_dataset, kw, in_gemm):
    # What `mlpsweep bench train` times stage by stage is what the step does.
    cfg = TrainConfig(steps=100, width=16, **kw)
    staged, stepped = Trainer(cfg, tiny_dataset), Trainer(cfg, tiny_dataset)
    if in_gemm:
        gemm_or_skip(staged)
    staged.fused.in_gemm = stepped.fused.in_gemm = in_gemm
    for _ in range(5):
        x, y = staged.loader.load(staged.sampler.next())
        for _, stage in staged.fused.stages(x, y):
            stage()
        stepped.step()
        assert np.array_equal(staged.net.flat_params, stepped.net.flat_params)


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


def test_numpys_own_blas_is_found_beside_scipys():
    """scipy.linalg loads a second OpenBLAS beside numpy's: the record's `blas` and the
    gemm update follow numpy's (found alone in a fresh process), not whichever threadpoolctl
    lists first (which made a resumed run's record differ from an unbroken one's)."""
    import subprocess
    import sys

    import scipy.linalg  # noqa: F401 - loads scipy's BLAS into this process
    from threadpoolctl import threadpool_info

    from mlpsweep import provenance
    from mlpsweep.core import blas

    alone = subprocess.run(
        [sys.executable, "-c", "import numpy, threadpoolctl; "
         "print(*[i['filepath'] for i in threadpoolctl.threadpool_info()"
         " if i['user_api'] == 'blas'])"],
        capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    if len(alone) != 1 or sum(i["user_api"] == "blas" for i in threadpool_info()) < 2:
        pytest.skip("numpy and scipy share one BLAS here")
    for cached in (blas.blas_libraries, blas.numpy_blas, blas._gemm, provenance.blas_library):
        cached.cache_clear()
    try:
        assert blas.numpy_blas().filepath == alone[0]
        assert blas.numpy_blas().version in provenance.blas_library()
        if blas.numpy_blas().internal_api == "openblas":
            assert blas._gemm("d") is not None  # the one-call update stays on
    finally:
        for cached in (blas.blas_libraries, blas.numpy_blas, blas._gemm, provenance.blas_library):
            cached.cache_clear()


@pytest.mark.parametrize("kw", [{}, {"hidden_sizes": (12, 9, 5)}, {"lr": 1e4}])
def test_the_hidden_rows_keep_their_ones_and_zeros_and_start_on_cache_lines(tiny_dataset, kw):
    # The ReLU passes run over whole rows (width values, a 1, zeros to a cache line):
    # the next layer's bias needs the 1 and the padding must stay 0, step after step.
    cfg = TrainConfig(**{"steps": 100, "width": 16, "dtype": "float32", **kw})
    trainer = Trainer(cfg, tiny_dataset, fused=True)
    fused = trainer.fused
    with np.errstate(all="ignore"):
        for _ in range(30):
            trainer.step()
    for full in fused.z_full + fused.mask + fused.relu_full:
        width = full.shape[1] - 1
        while full[0, width] == 0:  # the padding ends at the 1
            width -= 1
        assert full.shape[1] % 16 == 0 and full.ctypes.data % 64 == 0
        assert (full[:, width] == 1).all() and (full[:, width + 1 :] == 0).all()
    assert all(h.ctypes.data % 64 == 0 for h in fused.h)


def test_a_batch_buffer_without_the_ones_column_under_it_is_refused(tiny_dataset):
    # The loader gathers whole rows, ones included, into the buffer under the batch's
    # view: the memory under each row's extra column must be the view's owner's.
    from mlpsweep.core.batches import BatchLoader

    x, y = tiny_dataset.x_train, tiny_dataset.y_train
    width = x.shape[1]
    for bad in (
        np.empty((4, width), np.float32),  # its own memory: no column beside it
        np.ones((4, width + 2), np.float32)[:, :width],  # rows two wider
        np.ones((4, width + 1), np.float32)[1:, :-1],  # 3 rows: a batch of 4 is asked
        np.ones((4, width + 1), np.float64)[:, :-1],  # another dtype's rows
    ):
        with pytest.raises(ValueError, match="inputs \\+ 1"):
            BatchLoader(x, y, 4, np.float32, into=bad)
    wide = np.ones((5, width + 1), np.float32)
    loader = BatchLoader(x, y, 4, np.float32, into=wide[1:, :-1])  # rows 1-4 of five
    loader.load(np.arange(4))
    assert (wide[0] == 1).all() and (wide[1:, -1] == 1).all()  # row 0 untouched
