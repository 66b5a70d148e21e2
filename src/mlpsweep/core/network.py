"""A multi-layer perceptron assembled from the layers: Affine -> activation (-> Dropout),
repeated per hidden layer, then Affine -> fused softmax-cross-entropy."""

import math

import numpy as np

from mlpsweep.core.layers import ACTIVATIONS, Affine, Dropout, SoftmaxCrossEntropy

INITS = ("xavier", "he")


def init_std(init: float | str, fan_in: int) -> float:
    """The weight std for `init`: a number is the std itself (the listing's 0.01);
    "xavier" is 1/sqrt(fan_in) and "he" sqrt(2/fan_in), as in "Deep Learning from Scratch"."""
    if init == "xavier":
        return 1.0 / math.sqrt(fan_in)
    if init == "he":
        return math.sqrt(2.0 / fan_in)
    if isinstance(init, str):
        raise ValueError(f"init={init!r}: must be a positive number or one of {INITS}")
    return float(init)


def normal(rng, shape):
    """N(0, 1) draws from a Generator or, in legacy mode, a RandomState (`randn` order)."""
    if isinstance(rng, np.random.RandomState):
        return rng.randn(*shape)
    return rng.standard_normal(shape)


def _views(flat, shapes):
    views, start = [], 0
    for shape in shapes:
        size = math.prod(shape)
        views.append(flat[start : start + size].reshape(shape))
        start += size
    return views


class MLP:
    """`hidden_sizes` lists the units of each hidden layer (empty: softmax regression).

    `params` and `grads` are dicts W1, b1, W2, ... of the arrays the layers use, so an
    optimizer's in-place `update(params, grads)` trains the network directly;
    `flat_params` / `flat_grads` are the same numbers as two flat arrays.
    """

    def __init__(
        self,
        input_size,
        hidden_sizes,
        num_classes,
        *,
        activation="relu",
        init=0.01,
        weight_decay=0.0,
        dropout=0.0,
        grad_reduction="mean",
        loss_eps=0.0,
        dtype=np.float32,
        init_rng=None,
        dropout_rng=None,
        input_grad=False,
    ):
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation={activation!r}: must be one of {sorted(ACTIVATIONS)}")
        dtype = np.dtype(dtype)
        init_rng = init_rng if init_rng is not None else np.random.default_rng()
        sizes = [input_size, *hidden_sizes, num_classes]
        shapes = [s for fan in zip(sizes[:-1], sizes[1:]) for s in (fan, fan[1:])]
        # All weights live in one flat array and all gradients in another (the layers hold
        # views), so an optimizer updates the whole network in a couple of numpy calls.
        total = sum(math.prod(s) for s in shapes)
        self.flat_params = np.zeros(total, dtype=dtype)
        self.flat_grads = np.zeros(total, dtype=dtype)
        views = _views(self.flat_params, shapes)
        grad_views = _views(self.flat_grads, shapes)
        # Each b directly follows its W, so [W; b] is one (fan_in + 1) x fan_out matrix
        # in the same memory (the fused step multiplies by it: the bias rides along).
        blocks = [(fan_in + 1, fan_out) for fan_in, fan_out in zip(sizes[:-1], sizes[1:])]
        self.weight_blocks = _views(self.flat_params, blocks)
        self.grad_blocks = _views(self.flat_grads, blocks)
        self.weight_decay = weight_decay
        self.layers, self.affines = [], []
        self.params, self.grads = {}, {}
        for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:]), start=1):
            W, b = views[2 * i - 2], views[2 * i - 1]
            W[...] = init_std(init, fan_in) * normal(init_rng, (fan_in, fan_out))
            # The first layer's input is data: no gradient needed unless asked (grad checks).
            affine = Affine(
                W,
                b,
                input_grad=input_grad or i > 1,
                dW=grad_views[2 * i - 2],
                db=grad_views[2 * i - 1],
            )
            self.layers.append(affine)
            self.affines.append(affine)
            self.params[f"W{i}"], self.params[f"b{i}"] = W, b
            self.grads[f"W{i}"], self.grads[f"b{i}"] = affine.dW, affine.db
            if i < len(sizes) - 1:
                self.layers.append(ACTIVATIONS[activation]())
                if dropout > 0:
                    self.layers.append(Dropout(dropout, dropout_rng))
        self.activation = ACTIVATIONS[activation].function
        self.loss_layer = SoftmaxCrossEntropy(grad_reduction, loss_eps)

    def loss(self, x, labels):
        """Forward pass in training mode; returns the batch's mean loss (data term only)."""
        for layer in self.layers:
            x = layer.forward(x)
        return self.loss_layer.forward(x, labels)

    def backward(self):
        """Gradients of the last `loss` call into `self.grads` (L2 decay added on W)."""
        dout = self.loss_layer.backward()
        for layer in reversed(self.layers):
            dout = layer.backward(dout)
        if self.weight_decay:
            for affine in self.affines:
                affine.dW += self.weight_decay * affine.W
        return dout

    def logits(self, x):
        """Inference: no dropout, no cached state, fresh arrays (safe for any batch size)."""
        for k, affine in enumerate(self.affines):
            x = Affine.function(x, affine.W, affine.b)
            if k < len(self.affines) - 1:
                x = self.activation(x)
        return x

    def example_losses(self, x, labels, eps=0.0, chunk=256):
        """Each row's loss (float64), as `evaluate` computes it, in chunks; at the dtype of
        `x` (float32 rows of a float64 network: the weights are rounded to float32 first,
        a copy, and the arithmetic runs at float32's speed)."""
        out = np.empty(x.shape[0], dtype=np.float64)
        weights = [(a.W, a.b) for a in self.affines]
        if x.dtype != weights[0][0].dtype:
            weights = [(W.astype(x.dtype), b.astype(x.dtype)) for W, b in weights]
        for start in range(0, x.shape[0], chunk):
            z = x[start : start + chunk]
            for k, (W, b) in enumerate(weights):
                z = Affine.function(z, W, b)
                if k < len(weights) - 1:
                    z = self.activation(z)
            z = z.astype(np.float64, copy=False)
            yb = labels[start : start + chunk]
            zmax = z.max(axis=1)
            lse = np.log(np.exp(z - zmax[:, None]).sum(axis=1)) + zmax
            z_true = z[np.arange(len(yb)), yb]
            out[start : start + len(yb)] = (
                -np.log(np.exp(z_true - lse) + eps) if eps else lse - z_true
            )
        return out

    def evaluate(self, x, labels, normalize=None, chunk=256, eps=0.0):
        """Mean loss and accuracy over (x, labels), in chunks to bound memory (256 rows: a
        worker's float copies stay small; its uint8 data is shared via mmap). The loss is
        the stable logsumexp form, or with `eps` > 0 the training loss's -log(p + eps).
        `normalize` maps a raw chunk (uint8 images) to the network's float input."""
        total_loss, correct = 0.0, 0
        for start in range(0, x.shape[0], chunk):
            xb = x[start : start + chunk]
            xb = normalize(xb) if normalize is not None else xb
            z = self.logits(xb).astype(np.float64, copy=False)
            yb = labels[start : start + chunk]
            zmax = z.max(axis=1)
            lse = np.log(np.exp(z - zmax[:, None]).sum(axis=1)) + zmax
            z_true = z[np.arange(len(yb)), yb]
            if eps:
                total_loss -= float(np.sum(np.log(np.exp(z_true - lse) + eps)))
            else:
                total_loss += float(np.sum(lse - z_true))
            correct += int(np.sum(z.argmax(axis=1) == yb))
        n = x.shape[0]
        return total_loss / n, correct / n
