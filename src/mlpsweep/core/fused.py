"""One fused training step for the common case: ReLU network, plain SGD, no dropout or decay.

It computes what the layer path computes (Affine -> ReLU ... -> softmax-cross-entropy,
backward, `p -= lr * g`), on the same flat weight buffer, in fewer and smaller numpy
passes. Three re-associations make the difference:

- The bias is a row of the weights. The flat buffer stores each layer's W (fan_in x
  fan_out) followed by its b, which is exactly the augmented matrix [W; b]. Every
  layer's input carries a trailing column of ones (the batch too: the batch loader
  writes into `self.x`, a view of such a buffer, core/batches.py), so `h @ [W; b]` adds
  the bias and `h.T @ dout` yields [dW; db]: no bias add, no bias reduction.
- The learning rate (times the mean's 1/n) scales the loss gradient before it flows
  back; backprop is linear, so the products come out as the SGD step itself and the
  update is one subtraction over the flat buffer instead of a scaling pass and a
  subtraction.
- ReLU masks are stored as floats: a float-by-float multiply is about twice as fast as
  a float-by-bool one.

And one that changes no rounding: where numpy's BLAS can (core/blas.py), the products
that compute [dW; db] write `[W; b] - [dW; db]` straight into the weights (gemm with
beta = 1), so there is no gradient buffer and no update pass over every weight; a step
then touches the weights once forward, once backward. Only where that is bit for bit the
two-pass arithmetic (checked per shape): the step's numbers are the same either way.

These change the rounding (the bias inside a product joins the last block of its sum;
until December 2026 the input layer added its bias after the product, so float32 runs
from before differ in the last bits), which is why the layer path remains the reference:
it keeps the listing's operation order, bit for bit (see tests/test_train.py). The
trainer uses this step for float32 runs (where speed matters and no bit-exact replay is
promised); float64 runs keep the layer path. Tests check the two paths agree, and this
step's ReLU passes against ReLU.function and ReLU.derivative (core/layers.py, where the
math is stated once), bit for bit, at the kink too (tests/test_fused.py).
"""

import math
from functools import partial

import numpy as np

from mlpsweep.core.batches import CACHE_LINE, aligned_empty
from mlpsweep.core.blas import gemm_update
from mlpsweep.core.layers import Dropout, ReLU, sample_variance

ZERO = np.float32(0)  # ReLU's kink, as a numpy scalar: no conversion per call


def padded(width, dtype):
    """`width` rounded up to a whole number of cache lines' worth of `dtype` values."""
    per_line = CACHE_LINE // np.dtype(dtype).itemsize
    return -(-width // per_line) * per_line


def zeros(shape, dtype):
    out = aligned_empty(shape, dtype)
    out.fill(0)
    return out


def with_ones(rows, column):
    """`rows` with its `column` set to 1 (the column a layer's bias row multiplies)."""
    rows[:, column] = 1
    return rows


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
    `net.flat_grads` is its scratch space (with `in_gemm`, mostly unused): call
    `net.backward()` for true gradients.
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
        # Each layer's input with a trailing column of ones: the batch (`self.x`, where
        # the batch loader writes it) and the hidden activations (below).
        inputs = affines[0].W.shape[0]
        h0 = with_ones(aligned_empty((n, inputs + 1), dtype), inputs)
        self.x = h0[:, :-1]
        # A hidden layer's pre-activations, its ReLU mask and its output (the next layer's
        # input) share one layout: rows of `width` values, a 1 and zeros up to a whole
        # number of cache lines (a product writes the first `width` columns). The ReLU
        # passes then run over whole contiguous buffers (1 * 1 keeps the next layer's
        # column of ones, 0 * 0 the zeros), where a pass over (n, width) views of wider
        # rows goes row by row (~30% slower at batch 100); and every row starts on a cache
        # line (a product writing rows that do not is ~2% slower).
        rows = [(w, padded(w + 1, dtype)) for w in widths[:-1]]
        self.z_full = [with_ones(zeros((n, ld), dtype), w) for w, ld in rows]
        self.mask = [with_ones(zeros((n, ld), dtype), w) for w, ld in rows]
        self.relu_full = [with_ones(zeros((n, ld), dtype), w) for w, ld in rows]
        self.h = [h0] + [h[:, : w + 1] for h, (w, _) in zip(self.relu_full, rows)]
        self.z = [z[:, :w] for z, (w, _) in zip(self.z_full, rows)]
        self.z.append(aligned_empty((n, widths[-1]), dtype))  # the logits
        # d(loss)/d(hidden) reuses the hidden layer's pre-activation buffer: it is written
        # in the backward pass, after the forward pass's last read (a smaller working set).
        dh = self.z[:-1]
        # The layers as plans, so a step runs no indexing logic: forward (input, [W; b],
        # z, then the ReLU's mask and output or None); backward through the hidden layers
        # (the loss gradient at the layer's output d, input.T, [dW; db], W.T, d(input),
        # the input's ReLU mask, and the update `[W; b] -= input.T @ d` as one gemm, see
        # below), then the input layer's (d, x.T, [dW; db], its gemm update).
        last = len(widths) - 1
        self.forward_plan = [
            (self.h[k], net.weight_blocks[k], self.z[k])
            + ((self.z_full[k], self.mask[k], self.relu_full[k]) if k < last else (None,) * 3)
            for k in range(last + 1)
        ]
        outgrad = dh + [self.z[last]]  # d(loss) at each layer's output, scaled
        updates = [
            gemm_update(net.weight_blocks[k], self.h[k].T, outgrad[k]) for k in range(last + 1)
        ]
        self.backward_plan = [
            (
                outgrad[k],
                self.h[k].T,
                net.grad_blocks[k],
                affines[k].W.T,
                dh[k - 1],
                self.z_full[k - 1],  # dh with its column of ones, masked whole
                self.mask[k - 1],
                updates[k],
            )
            for k in range(last, 0, -1)
        ]
        self.input_plan = (outgrad[0], self.h[0].T, net.grad_blocks[0], updates[0])
        # Where numpy's BLAS subtracts each product from its weights with the rounding
        # of the subtraction pass (core/blas.py), the products write the updated weights:
        # no gradient buffer, no pass over every weight. All layers or none.
        self.in_gemm = all(update is not None for update in updates)
        # The loss's buffers and views, made once: a step at batch 100 is ~40 numpy
        # calls, and at this size each call's set-up costs about what its work does.
        self.offsets = np.arange(n) * widths[-1]
        self.flat = np.empty(n, self.offsets.dtype)  # each row's true class, flat index
        self.flat_logits = self.z[last].reshape(-1)
        self.logits_t = np.empty((widths[-1], n), dtype)
        self.zmax = np.empty((n, 1), dtype)
        # A row's max, then its scale / sum, spread over the row first: a broadcasting
        # ufunc call costs ~0.4 µs more than a copy and a plain call together.
        self.rows = np.empty((n, widths[-1]), dtype)
        self.zmax_row = self.zmax.reshape(-1)
        self.z_true = np.empty(n, dtype)
        self.total = np.empty((n, 1), dtype)
        self.total_row = self.total.reshape(-1)
        self.log_total = np.empty(n, dtype)
        self.loss_var = float("nan")  # of the last batch's per-example losses (see layers)

    def step(self, x, labels):
        """Forward, loss, backward and update on the batch `x` (n x inputs), `labels`.
        `x` is best `self.x` (the batch loader writes there); another array is copied in.

        Returns the batch's mean loss before the update; a non-finite loss leaves the
        weights untouched (the caller stops the run)."""
        if x is not self.x:
            np.copyto(self.x, x)
        # Outputs passed positionally: a keyword costs a ufunc call ~5% of its set-up.
        matmul, multiply = np.matmul, np.multiply
        for h, Wb, z, z_full, mask, relu_out in self.forward_plan:
            matmul(h, Wb, z)
            if mask is not None:
                np.greater(z_full, ZERO, out=mask, casting="unsafe")
                multiply(z_full, mask, relu_out)
        loss = self._softmax_loss(z, labels)
        if not math.isfinite(loss):
            return loss
        # z now holds scale * dloss/dlogits; each dh below, scale * dloss/d(hidden).
        if self.in_gemm:
            for d, _, _, WT, dh, dh_full, mask, update in self.backward_plan:
                matmul(d, WT, dh)  # through the weights before their update
                update()
                multiply(dh_full, mask, dh_full)
            self.input_plan[-1]()
            return loss
        for d, hT, dWb, WT, dh, dh_full, mask, _ in self.backward_plan:
            np.matmul(hT, d, out=dWb)
            np.matmul(d, WT, out=dh)
            dh_full *= mask
        d, xT, dWb, _ = self.input_plan
        np.matmul(xT, d, out=dWb)
        self.flat_params -= self.flat_grads
        return loss

    def stages(self, x, labels):
        """The step on (`x`, `labels`) as (kind, function) pairs: called in order they do
        what one `step` does (tests/test_fused.py checks it bit for bit), each timeable
        alone (`mlpsweep bench train`'s breakdown). The kinds: batch-independent names
        for the product calls ("products"), each elementwise stage, and the loss."""
        out = []
        if x is not self.x:
            out.append(("batch", partial(np.copyto, self.x, x)))

        def relu(z_full, mask, relu_out):
            np.greater(z_full, 0, out=mask, casting="unsafe")
            np.multiply(z_full, mask, out=relu_out)

        for h, Wb, z, z_full, mask, relu_out in self.forward_plan:
            out.append(("products", partial(np.matmul, h, Wb, out=z)))
            if mask is not None:
                out.append(("ReLU masks and outputs", partial(relu, z_full, mask, relu_out)))
        logits = self.z[-1]
        out.append(("softmax, loss, its variance", lambda: self._softmax_loss(logits, labels)))
        if self.in_gemm:
            for d, _, _, WT, dh, dh_full, mask, update in self.backward_plan:
                out.append(("products", partial(np.matmul, d, WT, out=dh)))
                out.append(("products", update))
                out.append(
                    ("ReLU backward (mask)", partial(np.multiply, dh_full, mask, out=dh_full))
                )
            return out + [("products", self.input_plan[-1])]
        for d, hT, dWb, WT, dh, dh_full, mask, _ in self.backward_plan:
            out.append(("products", partial(np.matmul, hT, d, out=dWb)))
            out.append(("products", partial(np.matmul, d, WT, out=dh)))
            out.append(("ReLU backward (mask)", partial(np.multiply, dh_full, mask, out=dh_full)))
        d, xT, dWb, _ = self.input_plan
        out.append(("products", partial(np.matmul, xT, d, out=dWb)))
        flat = self.flat_params
        return out + [("update pass", partial(np.subtract, flat, self.flat_grads, out=flat))]

    def _softmax_loss(self, z, labels):
        """Mean cross-entropy of logits `z`; leaves scale * (softmax - onehot) in `z`."""
        n = self.n
        flat = np.add(self.offsets, labels, self.flat)
        # Each row's max (exact in any order): numpy reduces a short row per inner-loop
        # call, so across a transposed copy's rows is four times faster at batch 100.
        np.copyto(self.logits_t, z.T)
        np.maximum.reduce(self.logits_t, 0, None, self.zmax_row)
        np.copyto(self.rows, self.zmax)
        np.subtract(z, self.rows, z)
        flat_z = self.flat_logits
        # True-class logits, shifted by the max. mode="clip" skips a bounds check (`flat`
        # is in range for labels below the width; others fail at `flat_z[flat]` below).
        z_true = flat_z.take(flat, None, self.z_true, "clip")
        np.exp(z, z)
        total = np.add.reduce(z, 1, None, self.total, True)
        if self.eps == 0.0:  # loss = log(sum exp(z - max)) - (z_true - max)
            per_row = np.log(self.total_row, self.log_total)
            np.subtract(per_row, z_true, per_row)
            loss = math.fsum(per_row.tolist()) / n
        else:  # the listing's -log(p_true + eps)
            p_true = np.exp(z_true) / self.total_row
            per_row = np.log(p_true + self.eps)
            loss = -math.fsum(per_row.tolist()) / n
            np.negative(per_row, out=per_row)
        self.loss_var = sample_variance(per_row, loss)
        if math.isfinite(loss):
            np.multiply(z, np.divide(self.scale, total, self.rows), z)
            flat_z[flat] -= self.scale
        return loss
