"""Optimizers with the `update(params, grads)` API of "Deep Learning from Scratch".

`params` and `grads` are dicts of arrays; every update is in place (the network's layers
hold the same arrays), and per-parameter state is allocated on the first call.
"""

import numpy as np

from mlpsweep.core.checks import Range

FRACTION = Range(0, 1, hi_open=True)  # a decay rate in [0, 1)
POSITIVE = Range(0, lo_open=True)


class Optimizer:
    RANGES: dict = {}  # parameter -> allowed values (checked before any job starts)
    COUNTERS: tuple[str, ...] = ()  # scalar state besides the slots (Adam's step count)

    def __init__(self, lr):
        self.lr = lr
        self.state = {}

    def _state(self, name, key, like):
        slot = self.state.setdefault(name, {})
        if key not in slot:
            slot[key] = np.zeros_like(like)
        return slot[key]

    def update(self, params: dict, grads: dict) -> None:
        for key, p in params.items():
            self.step(key, p, grads[key])

    def snapshot(self) -> dict:
        """A copy of the optimizer's state: its slots and counters (see restore)."""
        return {
            "slots": {n: {k: a.copy() for k, a in s.items()} for n, s in self.state.items()},
            "counters": {c: getattr(self, c) for c in self.COUNTERS},
        }

    def restore(self, snapshot: dict) -> None:
        """Continue from `snapshot`: the next update is the one that would have followed."""
        self.state = {
            n: {k: np.array(a, copy=True) for k, a in s.items()}
            for n, s in snapshot["slots"].items()
        }
        for name, value in snapshot["counters"].items():
            setattr(self, name, int(value))

    def step(self, key, p, g):
        raise NotImplementedError


class SGD(Optimizer):
    """p -= lr * g. Overwrites `grads` with lr * g (they are recomputed every step)."""

    def step(self, key, p, g):
        # Scaling g in place saves a temporary; the product is the same as `lr * g`.
        np.multiply(g, g.dtype.type(self.lr), out=g)
        p -= g


class Momentum(Optimizer):
    """v = momentum * v - lr * g;  p += v"""

    RANGES = {"momentum": FRACTION}

    def __init__(self, lr, momentum=0.9):
        super().__init__(lr)
        self.momentum = momentum

    def step(self, key, p, g):
        v = self._state("v", key, p)
        v *= self.momentum
        v -= self.lr * g
        p += v


class Nesterov(Optimizer):
    """Nesterov momentum in the form PyTorch and Sutskever et al. use:
    v = momentum * v + g;  p -= lr * (g + momentum * v)"""

    RANGES = {"momentum": FRACTION}

    def __init__(self, lr, momentum=0.9):
        super().__init__(lr)
        self.momentum = momentum

    def step(self, key, p, g):
        v = self._state("v", key, p)
        v *= self.momentum
        v += g
        p -= self.lr * (g + self.momentum * v)


class AdaGrad(Optimizer):
    """h += g^2;  p -= lr * g / (sqrt(h) + eps)"""

    RANGES = {"eps": POSITIVE}

    def __init__(self, lr, eps=1e-7):
        super().__init__(lr)
        self.eps = eps

    def step(self, key, p, g):
        h = self._state("h", key, p)
        h += g * g
        p -= self.lr * g / (np.sqrt(h) + self.eps)


class RMSprop(Optimizer):
    """h = rho * h + (1 - rho) * g^2;  p -= lr * g / (sqrt(h) + eps)"""

    RANGES = {"rho": FRACTION, "eps": POSITIVE}

    def __init__(self, lr, rho=0.99, eps=1e-7):
        super().__init__(lr)
        self.rho, self.eps = rho, eps

    def step(self, key, p, g):
        h = self._state("h", key, p)
        h *= self.rho
        h += (1 - self.rho) * g * g
        p -= self.lr * g / (np.sqrt(h) + self.eps)


class Adam(Optimizer):
    """Adam (Kingma & Ba) with bias correction:
    m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2;
    p -= lr * (m / (1-b1^t)) / (sqrt(v / (1-b2^t)) + eps)"""

    RANGES = {"beta1": FRACTION, "beta2": FRACTION, "eps": POSITIVE}
    COUNTERS = ("t",)

    def __init__(self, lr, beta1=0.9, beta2=0.999, eps=1e-8):
        super().__init__(lr)
        self.beta1, self.beta2, self.eps = beta1, beta2, eps
        self.t = 0

    def update(self, params: dict, grads: dict) -> None:
        self.t += 1
        super().update(params, grads)

    def step(self, key, p, g):
        m = self._state("m", key, p)
        v = self._state("v", key, p)
        m *= self.beta1
        m += (1 - self.beta1) * g
        v *= self.beta2
        v += (1 - self.beta2) * g * g
        m_hat = m / (1 - self.beta1**self.t)
        v_hat = v / (1 - self.beta2**self.t)
        p -= self.lr * m_hat / (np.sqrt(v_hat) + self.eps)


OPTIMIZERS = {
    "sgd": SGD,
    "momentum": Momentum,
    "nesterov": Nesterov,
    "adagrad": AdaGrad,
    "rmsprop": RMSprop,
    "adam": Adam,
}


def make_optimizer(name: str, lr: float, **params) -> Optimizer:
    if name not in OPTIMIZERS:
        raise ValueError(f"optimizer={name!r}: must be one of {sorted(OPTIMIZERS)}")
    return OPTIMIZERS[name](lr, **params)
