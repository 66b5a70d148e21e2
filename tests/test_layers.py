import numpy as np
import pytest
from gradcheck import numerical_grad, rel_error

from mlpsweep.core.layers import (
    ACTIVATIONS,
    Affine,
    Dropout,
    ReLU,
    Sigmoid,
    SoftmaxCrossEntropy,
)

rng = np.random.default_rng(0)


def check_layer_input_grad(layer, x, reset=lambda: None):
    """Objective sum(forward(x) * R): its gradient wrt x is backward(R)."""
    reset()
    R = rng.standard_normal(layer.forward(x.copy()).shape)

    def f():
        reset()
        return float(np.sum(layer.forward(x.copy()) * R))

    numeric = numerical_grad(f, x)
    reset()
    layer.forward(x.copy())
    analytic = layer.backward(R.copy())
    assert rel_error(analytic, numeric) < 1e-6


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_activation_gradients(name):
    x = rng.standard_normal((4, 7))
    x[np.abs(x) < 1e-3] = 0.5  # keep clear of ReLU's kink
    check_layer_input_grad(ACTIVATIONS[name](), x)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_each_activation_is_its_function_and_derivative(name, dtype):
    """An activation's math is its `function` and `derivative` (core/layers.py): the layer
    computes them, bit for bit, and the derivative is the function's (finite differences;
    its value at ReLU's kink, 0, is the fused step's too: tests/test_fused.py)."""
    act = ACTIVATIONS[name]
    x = (3 * rng.standard_normal((6, 9))).astype(dtype)
    x[0, :3] = 0.0, -0.0, 40.0  # the kink, its other zero, saturation
    R = rng.standard_normal(x.shape).astype(dtype)
    y = act.function(x.copy())
    layer = act()
    out = layer.forward(x.copy())
    assert out.dtype == dtype and np.array_equal(out, y)  # (ReLU: -0.0 == 0.0)
    slope = act.derivative(y)
    assert slope.dtype == dtype
    assert np.array_equal(layer.backward(R.copy()), R * slope)
    x64 = x.astype(np.float64)
    h = 1e-6
    numeric = (act.function(x64 + h) - act.function(x64 - h)) / (2 * h)
    kink = (x64 == 0) if act is ReLU else np.zeros(x.shape, bool)
    np.testing.assert_allclose(slope[~kink], numeric[~kink], rtol=1e-4, atol=1e-6)
    assert (slope[kink] == 0).all()


def test_sigmoid_is_stable_for_large_inputs():
    out = Sigmoid().forward(np.array([[-1000.0, 0.0, 1000.0]]))
    assert np.allclose(out, [[0.0, 0.5, 1.0]]) and np.all(np.isfinite(out))


def test_dropout_gradient_with_fixed_mask():
    layer = Dropout(0.4, None)

    def reset():
        layer.rng = np.random.default_rng(7)

    check_layer_input_grad(layer, rng.standard_normal((5, 6)), reset)


def test_dropout_keeps_expectation_and_is_identity_at_inference():
    layer = Dropout(0.5, np.random.default_rng(1))
    x = np.ones((200, 200))
    out = layer.forward(x)
    assert set(np.unique(out)) == {0.0, 2.0}
    assert abs(out.mean() - 1.0) < 0.02
    layer.train = False
    assert layer.forward(x) is x


def test_affine_gradients_wrt_input_weights_and_bias():
    W, b = rng.standard_normal((6, 3)), rng.standard_normal(3)
    layer = Affine(W, b)
    x = rng.standard_normal((4, 6))
    R = rng.standard_normal((4, 3))
    f = lambda: float(np.sum(layer.forward(x) * R))  # noqa: E731
    num_x, num_W, num_b = (numerical_grad(f, a) for a in (x, W, b))
    layer.forward(x)
    dx = layer.backward(R)
    assert rel_error(dx, num_x) < 1e-6
    assert rel_error(layer.dW, num_W) < 1e-6
    assert rel_error(layer.db, num_b) < 1e-6


def test_affine_without_input_grad_returns_none():
    layer = Affine(np.ones((3, 2)), np.zeros(2), input_grad=False)
    layer.forward(np.ones((4, 3)))
    assert layer.backward(np.ones((4, 2))) is None
    assert np.all(layer.dW == 4)


@pytest.mark.parametrize("eps", [0.0, 1e-7])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_softmax_cross_entropy_gradient(reduction, eps):
    logits = rng.standard_normal((5, 4)) * 3
    labels = np.array([0, 3, 1, 1, 2])
    loss = SoftmaxCrossEntropy(reduction, eps=0.0)
    numeric = numerical_grad(lambda: loss.forward(logits.copy(), labels), logits)
    loss = SoftmaxCrossEntropy(reduction, eps=eps)
    loss.forward(logits.copy(), labels)
    analytic = loss.backward().copy()
    if reduction == "sum":
        analytic /= len(labels)  # 'sum' is the mean loss's gradient times the batch size
    assert rel_error(analytic, numeric) < 1e-6


def test_softmax_cross_entropy_value_and_stability():
    loss = SoftmaxCrossEntropy()
    logits = np.array([[1000.0, 0.0, -1000.0], [0.0, 0.0, 0.0]])
    value = loss.forward(logits, np.array([0, 2]))
    assert value == pytest.approx((0.0 + np.log(3)) / 2, rel=1e-12)
    listing = SoftmaxCrossEntropy(eps=1e-7)
    assert listing.forward(logits, np.array([1, 2])) == pytest.approx(
        -(np.log(1e-7) + np.log(1 / 3 + 1e-7)) / 2, rel=1e-12
    )


def test_bad_reduction_is_rejected():
    with pytest.raises(ValueError, match="grad_reduction='max'"):
        SoftmaxCrossEntropy("max")


@pytest.mark.parametrize("eps", [0.0, 1e-7])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_the_four_softmax_cross_entropy_forms_agree(reduction, eps):
    """Softmax-cross-entropy is written four times, each fused into its caller for speed
    (the layer, the fused step's loss, the network's per-example losses and evaluation,
    the noise probe's per-example gradients), with different rounding: on the same logits
    their losses, loss variances and gradients agree, and this fails when one drifts."""
    from mlpsweep.core.fused import FusedReluSGD
    from mlpsweep.core.network import MLP
    from mlpsweep.core.noise import per_example

    n, classes, lr = 6, 4, 0.1
    logits = rng.standard_normal((n, classes)) * 3
    labels = np.array([0, 3, 1, 1, 2, 3])
    layer = SoftmaxCrossEntropy(reduction, eps)
    loss = layer.forward(logits.copy(), labels)
    grad = layer.backward().copy() * (n if reduction == "mean" else 1)  # p - onehot
    # A softmax regression whose logits are its inputs: W = I, b = 0.
    net = MLP(classes, [], classes, dtype=np.float64, loss_eps=eps, grad_reduction=reduction)
    net.affines[0].W[...] = np.eye(classes)
    net.affines[0].b[...] = 0
    per_row = net.example_losses(logits, labels, eps=eps)
    assert per_row.mean() == pytest.approx(loss, rel=1e-12)
    assert per_row.var(ddof=1) == pytest.approx(layer.loss_var, rel=1e-10)
    assert net.evaluate(logits, labels, eps=eps)[0] == pytest.approx(loss, rel=1e-12)
    fused = FusedReluSGD(net, lr, n)
    z = fused.z[-1]  # the logits' buffer, which the loss reads and overwrites
    z[...] = logits
    assert fused._softmax_loss(z, labels) == pytest.approx(loss, rel=1e-12)
    assert fused.loss_var == pytest.approx(layer.loss_var, rel=1e-10)
    np.testing.assert_allclose(z / (lr / n if reduction == "mean" else lr), grad, atol=1e-12)
    sq, sums = per_example([(np.eye(classes), np.zeros(classes))], "relu", logits, labels)
    np.testing.assert_allclose(sums[0][1], grad.sum(axis=0), atol=1e-12)
    np.testing.assert_allclose(sq, ((logits**2).sum(1) + 1) * (grad**2).sum(1), rtol=1e-12)
