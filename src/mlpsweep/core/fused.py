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

And one that changes no rounding: where numpy's BLAS can (core/blas.py), the products
that compute [dW; db] write `[W; b] - [dW; db]` straight into the weights (gemm with
beta = 1), so there is no gradient buffer and no update pass over every weight; a step
then touches the weights once forward, once backward. Only where that is bit for bit the
two-pass arithmetic (checked per shape): the step's numbers are the same either way.

These change the rounding, which is why the layer path remains the reference: it keeps
the listing's operation order, bit for bit (see tests/test_train.py). The trainer uses
this step for float32 runs (where speed matters and no bit-exact replay is promised);
float64 runs keep the layer path. Tests check the two paths agree.
"""

import math
from functools import partial

import numpy as np

from mlpsweep.core.blas import gemm_update
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
        # z, then the ReLU's mask and output or None), backward (the loss gradient at
        # the layer's output d, input.T, [W; b], [dW; db], W.T, d(input), the input's
        # ReLU mask, and the update `[W; b] -= input.T @ d` as one gemm, see below).
        last = len(widths) - 1
        self.forward_plan = [
            (self.h[k - 1], net.weight_blocks[k], self.z[k])
            + ((self.mask[k], relu_out[k]) if k < last else (None, None))
            for k in range(1, last + 1)
        ]
        outgrad = dh + [self.z[last]]  # d(loss) at each layer's output, scaled
        self.backward_plan = [
            (
                outgrad[k],
                self.h[k - 1].T,
                net.weight_blocks[k],
                net.grad_blocks[k],
                affines[k].W.T,
                dh[k - 1],
                self.mask[k - 1],
                gemm_update(net.weight_blocks[k], self.h[k - 1].T, outgrad[k]),
            )
            for k in range(last, 0, -1)
        ]
        self.d0 = outgrad[0]
        # Where numpy's BLAS subtracts each product from its weights with the rounding
        # of the subtraction pass (core/blas.py), the products write the updated weights:
        # no gradient buffer, no pass over every weight. All layers or none: the input
        # layer's is checked here on a stand-in for the input, bound to it at the step.
        self.in_gemm = all(p[-1] is not None for p in self.backward_plan) and (
            gemm_update(self.W0, np.empty((n, self.W0.shape[0]), dtype).T, self.d0) is not None
        )
        self.x_bound, self.update0 = None, None
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
        # z now holds scale * dloss/dlogits; each dh below, scale * dloss/d(hidden).
        if self.in_gemm:
            for d, _, _, _, WT, dh, mask, update in self.backward_plan:
                np.matmul(d, WT, out=dh)  # through the weights before their update
                update()
                dh *= mask
            d = self.d0
            self._bias0(d)
            if x is not self.x_bound:
                self.x_bound, self.update0 = x, gemm_update(self.W0, x.T, d)
            if self.update0 is not None:
                self.update0()
            else:  # an input laid out otherwise: the same numbers, in two passes
                np.matmul(x.T, d, out=self.dW0)
                self.W0 -= self.dW0
            return loss
        for d, hT, _, dWb, WT, dh, mask, _ in self.backward_plan:
            np.matmul(hT, d, out=dWb)
            np.matmul(d, WT, out=dh)
            dh *= mask
        d = self.d0
        np.matmul(x.T, d, out=self.dW0)
        np.add.reduce(d, axis=0, out=self.db0)
        self.flat_params -= self.flat_grads
        return loss

    def stages(self, x, labels):
        """The step on (`x`, `labels`) as (kind, function) pairs: called in order they do
        what one `step` does (tests/test_fused.py checks it bit for bit), each timeable
        alone (`mlpsweep bench train`'s breakdown). The kinds: batch-independent names
        for the product calls ("products"), each elementwise stage, and the loss."""
        out = []
        z0 = self.z[0]
        out.append(("products", lambda: np.matmul(x, self.W0, out=z0)))
        out.append(("bias add (input layer)", lambda: np.add(z0, self.b0, out=z0)))
        relus = [(z0, self.mask[0], self.h[0][:, :-1])] if self.mask else []
        relus += [(z, mask, r) for _, _, z, mask, r in self.forward_plan if mask is not None]

        def relu(z, mask, relu_out):
            np.greater(z, 0, out=mask, casting="unsafe")
            np.multiply(z, mask, out=relu_out)

        if relus:
            out.append(("ReLU masks and outputs", partial(relu, *relus[0])))
        for (h, Wb, z, _, _), args in zip(self.forward_plan, relus[1:] + [None]):
            out.append(("products", partial(np.matmul, h, Wb, out=z)))
            if args is not None:
                out.append(("ReLU masks and outputs", partial(relu, *args)))
        logits = self.z[-1]
        out.append(("softmax, loss, its variance", lambda: self._softmax_loss(logits, labels)))
        d0 = self.d0
        if self.in_gemm:
            for d, _, _, _, WT, dh, mask, update in self.backward_plan:
                out.append(("products", partial(np.matmul, d, WT, out=dh)))
                out.append(("products", update))
                out.append(("ReLU backward (mask)", partial(np.multiply, dh, mask, out=dh)))
            out.append(("input-layer bias: gradient, update", partial(self._bias0, d0)))
            update0 = gemm_update(self.W0, x.T, d0)
            if update0 is not None:
                return out + [("products", update0)]
            out.append(("products", partial(np.matmul, x.T, d0, out=self.dW0)))
            return out + [("update pass", partial(np.subtract, self.W0, self.dW0, out=self.W0))]
        for d, hT, _, dWb, WT, dh, mask, _ in self.backward_plan:
            out.append(("products", partial(np.matmul, hT, d, out=dWb)))
            out.append(("products", partial(np.matmul, d, WT, out=dh)))
            out.append(("ReLU backward (mask)", partial(np.multiply, dh, mask, out=dh)))
        out.append(("products", partial(np.matmul, x.T, d0, out=self.dW0)))
        out.append(("input-layer bias: gradient", partial(np.add.reduce, d0, 0, out=self.db0)))
        flat = self.flat_params
        return out + [("update pass", partial(np.subtract, flat, self.flat_grads, out=flat))]

    def _bias0(self, d):
        np.add.reduce(d, axis=0, out=self.db0)
        self.b0 -= self.db0

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
