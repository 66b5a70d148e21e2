"""Layers with the `forward(x)` / `backward(dout)` API of "Deep Learning from Scratch".

Speed matters here (the training step should run near the matrix-multiply ceiling), so
every layer writes into buffers it owns and reuses them while the batch size stays the
same. The arrays a layer returns are those buffers: they stay valid until the layer's
next call, and `backward` may overwrite the `dout` it is given (as the book's ReLU does).
"""

import math

import numpy as np


class Layer:
    """Base class: buffer management, and no parameters unless a subclass has them."""

    def __init__(self):
        self.params = {}
        self.grads = {}
        self._buffers = {}

    def _buffer(self, name, shape, dtype):
        buf = self._buffers.get(name)
        if buf is None or buf.shape != shape or buf.dtype != dtype:
            buf = np.empty(shape, dtype=dtype)
            self._buffers[name] = buf
        return buf


class Affine(Layer):
    """y = x @ W + b. `input_grad=False` skips dx (nothing upstream needs the input's grad).

    `dW` and `db` may be given (views into a network's flat gradient buffer)."""

    def __init__(self, W, b, input_grad=True, dW=None, db=None):
        super().__init__()
        self.W, self.b = W, b
        self.dW = dW if dW is not None else np.zeros_like(W)
        self.db = db if db is not None else np.zeros_like(b)
        self.params = {"W": W, "b": b}
        self.grads = {"W": self.dW, "b": self.db}
        self.input_grad = input_grad
        self.x = None

    def forward(self, x):
        self.x = x
        out = self._buffer("out", (x.shape[0], self.W.shape[1]), self.W.dtype)
        return self.function(x, self.W, self.b, out)

    def backward(self, dout):
        np.matmul(self.x.T, dout, out=self.dW)
        # add.reduce is np.sum without its wrapper's cost. (ones @ dout would be faster but
        # sums in another order, and the listing's batch-100 run is chaotic enough that
        # such last-bit differences grow to O(1) within 1000 steps.)
        np.add.reduce(dout, axis=0, out=self.db)
        if not self.input_grad:
            return None
        dx = self._buffer("dx", self.x.shape, dout.dtype)
        np.matmul(dout, self.W.T, out=dx)
        return dx

    @staticmethod
    def function(x, W, b, out=None):
        """x @ W + b, into `out` (a new array by default)."""
        out = np.matmul(x, W, out=out)
        out += b
        return out


class Activation(Layer):
    """An elementwise activation f, its math stated once, here, in two static methods:

    - `function(x, out=None)`: f(x), into `out` (by default x itself, in place);
    - `derivative(y, out=None)`: f'(x) from the output y = f(x) (into `out`, by default
      a new array of y's dtype), which backprop multiplies the output's gradient by.

    The layer's forward and backward are these; so are the network's inference
    (core/network.py) and the noise probe's per-example backprop (core/noise.py). The
    fused ReLU step (core/fused.py) keeps its own passes for speed: tests/test_fused.py
    checks them against ReLU's methods, tests/test_layers.py each `derivative` against
    finite differences of its `function`."""

    @staticmethod
    def function(x, out=None):
        raise NotImplementedError

    @staticmethod
    def derivative(y, out=None):
        raise NotImplementedError

    def forward(self, x):
        self.out = self.function(x, self._buffer("out", x.shape, x.dtype))
        return self.out

    def backward(self, dout):
        slope = self.derivative(self.out, self._buffer("slope", dout.shape, dout.dtype))
        np.multiply(dout, slope, out=dout)
        return dout


class ReLU(Activation):
    def forward(self, x):
        # f'(x) from x itself (x > 0 exactly where f(x) > 0): the mask backward needs,
        # and f(x) = x * f'(x), bit for bit max(x, 0) (-0.0 aside) and faster than it.
        self.mask = self.derivative(x, self._buffer("mask", x.shape, np.bool_))
        out = self._buffer("out", x.shape, x.dtype)
        np.multiply(x, self.mask, out=out)
        return out

    def backward(self, dout):
        np.multiply(dout, self.mask, out=dout)
        return dout

    @staticmethod
    def function(x, out=None):
        return np.maximum(x, 0, out=x if out is None else out)

    @staticmethod
    def derivative(y, out=None):
        # 1 where the unit is on, 0 where it is off: at the kink (0) too. A bool `out`
        # is a mask; a float one holds 1.0 and 0.0.
        out = np.empty_like(y) if out is None else out
        return np.greater(y, 0, out=out, casting="unsafe")


class Sigmoid(Activation):
    @staticmethod
    def function(x, out=None):
        # 0.5 * (1 + tanh(x / 2)) is the logistic function without exp overflow for x << 0.
        out = np.multiply(x, 0.5, out=x if out is None else out)
        np.tanh(out, out=out)
        out += 1
        out *= 0.5
        return out

    @staticmethod
    def derivative(y, out=None):
        # s' = s * (1 - s)
        out = np.subtract(1, y, out=out)
        out *= y
        return out


class Tanh(Activation):
    @staticmethod
    def function(x, out=None):
        return np.tanh(x, out=x if out is None else out)

    @staticmethod
    def derivative(y, out=None):
        # tanh' = 1 - tanh^2
        out = np.multiply(y, y, out=out)
        np.subtract(1, out, out=out)
        return out


class Dropout(Layer):
    """Inverted dropout: at training time keep each unit with probability 1 - rate and
    scale by 1 / (1 - rate), so inference needs no rescaling. `rng` is the run's own
    generator (a numpy Generator or RandomState), never the global one."""

    def __init__(self, rate, rng):
        super().__init__()
        if not 0.0 <= rate < 1.0:
            raise ValueError(f"dropout={rate}: must be in [0, 1)")
        self.rate, self.rng = rate, rng
        self.train = True

    def forward(self, x):
        if not self.train or self.rate == 0.0:
            self.scale = None
            return x
        self.scale = self._buffer("scale", x.shape, x.dtype)
        keep = self.rng.random(x.shape) >= self.rate
        np.multiply(keep, 1.0 / (1.0 - self.rate), out=self.scale)
        out = self._buffer("out", x.shape, x.dtype)
        np.multiply(x, self.scale, out=out)
        return out

    def backward(self, dout):
        if self.scale is not None:
            np.multiply(dout, self.scale, out=dout)
        return dout


class SoftmaxCrossEntropy(Layer):
    """Fused softmax + cross-entropy on integer labels.

    `forward(logits, labels)` returns the mean loss over the batch; `backward()` returns
    d(loss)/d(logits) reduced by `reduction`: "mean" (the true gradient of the mean loss)
    or "sum" (the seed listing's `output - y_true`, a batch-size-times larger step).

    `eps = 0` computes the loss stably as logsumexp(z) - z[label]. The listing instead
    reports -log(softmax + 1e-7); `eps = 1e-7` reproduces its numbers exactly. The
    gradient is the same either way.

    After `forward`, `loss_var` is the unbiased sample variance of the batch's
    per-example losses (NaN for a batch of one): the spread behind the mean, which
    tells how far a minibatch's loss may fall from the loss of the weights themselves.
    """

    def __init__(self, reduction="mean", eps=0.0):
        super().__init__()
        if reduction not in ("mean", "sum"):
            raise ValueError(f"grad_reduction={reduction!r}: must be 'mean' or 'sum'")
        self.reduction, self.eps = reduction, eps
        self.loss_var = float("nan")

    def forward(self, logits, labels):
        n, classes = logits.shape
        # Index the true classes in the flattened array: 1-d take/put is several times
        # cheaper than p[rows, labels] at these sizes, and this layer runs every step.
        offsets = self._buffers.get((n, classes))
        if offsets is None:
            offsets = self._buffers[(n, classes)] = np.arange(n) * classes
        self.flat = np.add(offsets, labels)
        # ufunc.reduce rather than np.max / np.sum: the wrappers cost more than the work here.
        zmax = self._buffer("zmax", (n, 1), logits.dtype)
        np.maximum.reduce(logits, axis=1, keepdims=True, out=zmax)
        p = self.probs = self._buffer("probs", logits.shape, logits.dtype)
        np.subtract(logits, zmax, out=p)
        flat_p = p.reshape(-1)
        if self.eps == 0.0:
            z_true = flat_p.take(self.flat)  # true-class logits, shifted by the row max
        np.exp(p, out=p)
        total = self._buffer("total", (n, 1), logits.dtype)
        np.add.reduce(p, axis=1, keepdims=True, out=total)
        p /= total
        # math.fsum: an exactly rounded sum, and cheaper than a float64 reduction here.
        if self.eps == 0.0:  # loss = log(sum exp(z - max)) - (z_true - max)
            log_total = np.log(total.reshape(-1), out=self._buffer("log", (n,), p.dtype))
            loss = (math.fsum(log_total.tolist()) - math.fsum(z_true.tolist())) / n
            per_example = np.subtract(log_total, z_true, out=log_total)
        else:
            per_example = np.log(flat_p.take(self.flat) + self.eps)
            loss = -math.fsum(per_example.tolist()) / n
            np.negative(per_example, out=per_example)
        self.loss_var = sample_variance(per_example, loss)
        return loss

    def backward(self, dout=None):
        d = self.probs
        flat_d = d.reshape(-1)
        flat_d[self.flat] -= 1
        if self.reduction == "mean":
            d *= d.dtype.type(1.0 / d.shape[0])
        return d


def sample_variance(values: np.ndarray, mean: float) -> float:
    """Unbiased variance of `values` (a 1-d array, overwritten) about their known `mean`;
    NaN for fewer than two. Two small numpy calls: it runs at every training step."""
    n = values.shape[0]
    if n < 2:
        return float("nan")
    values -= values.dtype.type(mean)
    return float(np.dot(values, values)) / (n - 1)


ACTIVATIONS = {"relu": ReLU, "sigmoid": Sigmoid, "tanh": Tanh}
