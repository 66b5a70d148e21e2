import numpy as np
import pytest
from gradcheck import numerical_grad, rel_error

from mlpsweep.core.network import MLP, init_std


@pytest.mark.parametrize("activation", ["relu", "sigmoid", "tanh"])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_whole_network_gradient(activation, reduction):
    rng = np.random.default_rng(3)
    wd = 0.1
    net = MLP(
        6,
        [5, 4],
        3,
        activation=activation,
        init="he",
        weight_decay=wd,
        grad_reduction=reduction,
        dtype=np.float64,
        init_rng=rng,
        input_grad=True,
    )
    x = rng.standard_normal((8, 6))
    y = rng.integers(0, 3, 8)
    scale = len(y) if reduction == "sum" else 1

    def objective():
        penalty = 0.5 * wd * sum(np.sum(a.W**2) for a in net.affines)
        return (
            scale * (net.loss(x, y)) + scale * penalty
            if reduction == "mean"
            else (scale * net.loss(x, y) + penalty)
        )

    numeric = {k: numerical_grad(objective, p) for k, p in net.params.items()}
    net.loss(x, y)
    net.backward()
    for k in net.params:
        assert rel_error(net.grads[k], numeric[k]) < 1e-6, k


def test_params_and_grads_are_views_of_the_flat_buffers():
    net = MLP(4, [3], 2, init_rng=np.random.default_rng(0))
    net.flat_params[:] = 1.5
    assert all(np.all(p == 1.5) for p in net.params.values())
    assert sum(p.size for p in net.params.values()) == net.flat_params.size
    assert all(np.shares_memory(g, net.flat_grads) for g in net.grads.values())


def test_depth_zero_is_softmax_regression_and_explicit_sizes_work():
    net = MLP(4, [], 3, init_rng=np.random.default_rng(0))
    assert [p.shape for p in net.params.values()] == [(4, 3), (3,)]
    net = MLP(4, [7, 5, 2], 3, init_rng=np.random.default_rng(0))
    assert [net.params[f"W{i}"].shape for i in (1, 2, 3, 4)] == [(4, 7), (7, 5), (5, 2), (2, 3)]


def test_init_scales():
    assert init_std(0.01, 100) == 0.01
    assert init_std("xavier", 100) == pytest.approx(0.1)
    assert init_std("he", 200) == pytest.approx(0.1)
    net = MLP(2000, [2000], 2, init="he", init_rng=np.random.default_rng(0))
    assert np.std(net.params["W1"]) == pytest.approx(np.sqrt(2 / 2000), rel=0.01)
    with pytest.raises(ValueError, match="init='lecun'"):
        init_std("lecun", 10)


def test_evaluate_matches_training_forward():
    rng = np.random.default_rng(1)
    net = MLP(5, [4], 3, dtype=np.float64, init_rng=rng)
    x, y = rng.standard_normal((9, 5)), rng.integers(0, 3, 9)
    train_loss = net.loss(x, y)
    test_loss, acc = net.evaluate(x, y, chunk=4)
    assert test_loss == pytest.approx(train_loss, rel=1e-12)
    assert acc == np.mean(net.logits(x).argmax(1) == y)


def test_dtype_float32_end_to_end():
    net = MLP(5, [4], 3, dtype=np.float32, init_rng=np.random.default_rng(1))
    net.loss(np.ones((2, 5), np.float32), np.array([0, 1]))
    net.backward()
    assert all(g.dtype == np.float32 for g in net.grads.values())


def test_weight_blocks_are_w_over_b_in_the_same_memory():
    net = MLP(6, [5, 4], 3, init="he", dtype=np.float64, init_rng=np.random.default_rng(0))
    for k, affine in enumerate(net.affines):
        affine.b[...] = np.arange(affine.b.size) + 1.0
        block, grads = net.weight_blocks[k], net.grad_blocks[k]
        assert np.shares_memory(block, net.flat_params) and np.shares_memory(grads, net.flat_grads)
        assert np.array_equal(block, np.vstack([affine.W, affine.b]))
        grads[-1] = 7.0
        assert np.all(affine.db == 7.0)
