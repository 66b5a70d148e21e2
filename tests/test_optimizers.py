"""Each optimizer's first two steps against values computed by hand."""

import numpy as np
import pytest

from mlpsweep.core.optimizers import make_optimizer

G1, G2 = 2.0, -1.0  # the gradient at step 1 and step 2, on a single weight starting at 1.0


def two_steps(name, **kw):
    opt = make_optimizer(name, 0.1, **kw)
    p = {"w": np.array([1.0])}
    out = []
    for g in (G1, G2):
        opt.update(p, {"w": np.array([g])})
        out.append(float(p["w"][0]))
    return out


def test_sgd():
    assert two_steps("sgd") == pytest.approx([1 - 0.2, 1 - 0.2 + 0.1])


def test_momentum():
    v1 = -0.1 * G1
    v2 = 0.9 * v1 - 0.1 * G2
    assert two_steps("momentum", momentum=0.9) == pytest.approx([1 + v1, 1 + v1 + v2])


def test_nesterov():
    v1 = G1
    p1 = 1 - 0.1 * (G1 + 0.9 * v1)
    v2 = 0.9 * v1 + G2
    p2 = p1 - 0.1 * (G2 + 0.9 * v2)
    assert two_steps("nesterov", momentum=0.9) == pytest.approx([p1, p2])


def test_adagrad():
    h1 = G1**2
    p1 = 1 - 0.1 * G1 / (np.sqrt(h1) + 1e-7)
    h2 = h1 + G2**2
    p2 = p1 - 0.1 * G2 / (np.sqrt(h2) + 1e-7)
    assert two_steps("adagrad") == pytest.approx([p1, p2])


def test_rmsprop():
    h1 = 0.01 * G1**2
    p1 = 1 - 0.1 * G1 / (np.sqrt(h1) + 1e-7)
    h2 = 0.99 * h1 + 0.01 * G2**2
    p2 = p1 - 0.1 * G2 / (np.sqrt(h2) + 1e-7)
    assert two_steps("rmsprop", rho=0.99) == pytest.approx([p1, p2])


def test_adam():
    m1, v1 = 0.1 * G1, 0.001 * G1**2
    p1 = 1 - 0.1 * (m1 / 0.1) / (np.sqrt(v1 / 0.001) + 1e-8)  # first step moves by ~lr
    m2, v2 = 0.9 * m1 + 0.1 * G2, 0.999 * v1 + 0.001 * G2**2
    p2 = p1 - 0.1 * (m2 / (1 - 0.81)) / (np.sqrt(v2 / (1 - 0.999**2)) + 1e-8)
    assert two_steps("adam") == pytest.approx([p1, p2])
    assert p1 == pytest.approx(0.9)


@pytest.mark.parametrize("name", ["sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam"])
def test_updates_in_place_and_descends_a_quadratic(name):
    opt = make_optimizer(name, 0.2)
    w = np.array([3.0, -2.0])
    params = {"w": w}
    for _ in range(300):
        opt.update(params, {"w": 2 * w.copy()})  # gradient of |w|^2
    # In place: the array the network holds is the one that descended (an optimizer that
    # rebound params["w"] to a new array would leave w at 3.6 and fail here).
    assert params["w"] is w
    assert np.linalg.norm(w) < 0.5


def test_unknown_optimizer():
    with pytest.raises(ValueError, match="optimizer='lbfgs'"):
        make_optimizer("lbfgs", 0.1)
