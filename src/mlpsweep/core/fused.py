"""One fused training step for the common case: ReLU network, plain SGD, no dropout or decay.

It computes what the layer path computes (Affine -> ReLU ... -> softmax-cross-entropy,
backward, `p -= lr * g`), on the same flat weight buffer, in fewer and smaller numpy
passes. Three re-associations make the difference:

- The bias is a row of the weights. The flat buffer stores each layer's W (fan_in x
  fan_out) followed by its b, which is exactly the augmented matrix [W; b]. Hidden
  activations carry a trailing column of ones, so `h @ [W; b]` adds the bias and
  `h.T @ dout` yields [dW; db]: no separate bias add or bias reduction. (The input
  layer keeps both: its input is the batch loader's buffer, which has no such column,
  and writing the batch into a wider buffer costs what it would save.)
- The learning rate (times the mean's 1/n) scales the loss gradient before it flows
  back; backprop is linear, so the products come out as the SGD step itself and the
  update is one subtraction over the flat buffer instead of a scaling pass and a
  subtraction.
- ReLU masks are stored as floats: a float-by-float multiply is about twice as fast as
  a float-by-bool one.

These change the rounding, which is why the layer path remains the reference: it keeps
the listing's operation order, bit for bit (see tests/test_train.py). The trainer uses
this step for float32 runs (where speed matters and no bit-exact replay is promised);
float64 runs keep the layer path. Tests check the two paths agree.
"""

import math

import numpy as np

from mlpsweep.core.layers import Dropout, ReLU, sample_variance


def fused_step_applies(config) -> bool:
    """Whether the fused step computes `config`'s model and update (in either dtype)."""
    return (
        config.optimizer == "sgd"
        and config.activation == "relu"
        and config.dropout == 0
        and config.weight_decay == 0
    )


class FusedReluSGD:
    """The step for `net` (an MLP with ReLU, no dropout) trained by SGD at `lr`.

    It shares `net.flat_params`, so evaluation and everything else keep using `net`.
    After a step `net.flat_grads` holds lr times the gradient (the step just taken),
    not the gradient: call `net.backward()` for true gradients.
    """

    def __init__(self, net, lr, batch_size):
        if net.activation is not ReLU.function or any(
            isinstance(layer, Dropout) for layer in net.layers
        ):
            raise ValueError("the fused step needs a ReLU network without dropout")
        if net.weight_decay:
            raise ValueError("the fused step has no weight decay")
        n, dtype = batch_size, net.flat_params.dtype
        self.n = n
        loss = net.loss_layer
        self.eps = loss.eps
        # The step's gradient scale: lr on the summed loss, lr/n on the mean.
        self.scale = dtype.type(lr / n if loss.reduction == "mean" else lr)
        self.flat_params, self.flat_grads = net.flat_params, net.flat_grads
        affines = net.affines
        widths = [a.W.shape[1] for a in affines]
        self.W0, self.b0 = affines[0].W, affines[0].b
        self.dW0, self.db0 = affines[0].dW, affines[0].db
        # Hidden activations with a trailing column of ones. (The input layer adds its
        # bias itself: its input is the batch loader's buffer, which has no such column.)
        self.h = []
        for w in widths[:-1]:
            h = np.empty((n, w + 1), dtype)
            h[:, w] = 1
            self.h.append(h)
        self.z = [np.empty((n, w), dtype) for w in widths]  # pre-activations; last: logits
        self.mask = [np.empty((n, w), dtype) for w in widths[:-1]]
        dh = [np.empty((n, w), dtype) for w in widths[:-1]]
        relu_out = [h[:, :-1] for h in self.h]
        # Layers 1.. as plans, so a step runs no indexing logic: forward (input, [W; b],
        # z, then the ReLU's mask and output or None), backward (input.T, [dW; db], W.T,
        # d(input), the input's ReLU mask).
        last = len(widths) - 1
        self.forward_plan = [
            (self.h[k - 1], net.weight_blocks[k], self.z[k])
            + ((self.mask[k], relu_out[k]) if k < last else (None, None))
            for k in range(1, last + 1)
        ]
        self.backward_plan = [
            (self.h[k - 1].T, net.grad_blocks[k], affines[k].W.T, dh[k - 1], self.mask[k - 1])
            for k in range(last, 0, -1)
        ]
        self.offsets = np.arange(n) * widths[-1]
        self.zmax = np.empty((n, 1), dtype)
        self.total = np.empty((n, 1), dtype)
        self.log_total = np.empty(n, dtype)
        self.loss_var = float("nan")  # of the last batch's per-example losses (see layers)

    def step(self, x, labels):
        """Forward, loss, backward and update on the batch `x` (n x inputs), `labels`.

        Returns the batch's mean loss before the update; a non-finite loss leaves the
        weights untouched (the caller stops the run)."""
        z = self.z[0]
        np.matmul(x, self.W0, out=z)
        z += self.b0
        if self.mask:
            np.greater(z, 0, out=self.mask[0], casting="unsafe")
            np.multiply(z, self.mask[0], out=self.h[0][:, :-1])
        for h, Wb, z, mask, relu_out in self.forward_plan:
            np.matmul(h, Wb, out=z)
            if mask is not None:
                np.greater(z, 0, out=mask, casting="unsafe")
                np.multiply(z, mask, out=relu_out)
        loss = self._softmax_loss(z, labels)
        if not math.isfinite(loss):
            return loss
        d = z  # now scale * dloss/dlogits; below, scale * dloss/d(hidden)
        for hT, dWb, WT, dh, mask in self.backward_plan:
            np.matmul(hT, d, out=dWb)
            np.matmul(d, WT, out=dh)
            dh *= mask
            d = dh
        np.matmul(x.T, d, out=self.dW0)
        np.add.reduce(d, axis=0, out=self.db0)
        self.flat_params -= self.flat_grads
        return loss

    def _softmax_loss(self, z, labels):
        """Mean cross-entropy of logits `z`; leaves scale * (softmax - onehot) in `z`."""
        n = self.n
        flat = np.add(self.offsets, labels)
        np.maximum.reduce(z, axis=1, keepdims=True, out=self.zmax)
        z -= self.zmax
        flat_z = z.reshape(-1)
        z_true = flat_z.take(flat)  # true-class logits, shifted by the row max
        np.exp(z, out=z)
        total = np.add.reduce(z, axis=1, keepdims=True, out=self.total)
        if self.eps == 0.0:  # loss = log(sum exp(z - max)) - (z_true - max)
            per_row = np.log(total.reshape(-1), out=self.log_total)
            per_row -= z_true
            loss = math.fsum(per_row.tolist()) / n
        else:  # the listing's -log(p_true + eps)
            p_true = np.exp(z_true) / total.reshape(-1)
            per_row = np.log(p_true + self.eps)
            loss = -math.fsum(per_row.tolist()) / n
            np.negative(per_row, out=per_row)
        self.loss_var = sample_variance(per_row, loss)
        if math.isfinite(loss):
            np.divide(self.scale, total, out=total)
            z *= total
            flat_z[flat] -= self.scale
        return loss
