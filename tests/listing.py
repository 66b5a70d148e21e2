"""The seed listing's training loop (../shared/seed/day60_reference.py), re-implemented
for the tests with its own code: no harness layer, network or sampler is used.

It follows the listing's arithmetic operation for operation (float32 images / 255,
float64 weights, one-hot targets, `output - y` summed over the batch, `W -= lr * dW`),
and draws from a `RandomState(seed)` instance in the listing's order (three `randn`
weight matrices, then one `choice` per step) instead of numpy's global state. Run on
the same machine as the harness, it is the oracle for the harness's listing replay: the
two must agree whatever the CPU's BLAS kernel rounds like.
"""

import numpy as np


def listing_losses(x_train_u8, y_train, batch_size, steps, seed=8, lr=0.01, hidden=200):
    x = x_train_u8.astype(np.float32) / 255.0
    t = np.eye(10)[y_train]
    rs = np.random.RandomState(seed)
    sizes = [x.shape[1], hidden, hidden, 10]
    weights = [0.01 * rs.randn(a, b) for a, b in zip(sizes[:-1], sizes[1:])]
    biases = [np.zeros(b) for b in sizes[1:]]
    losses = []
    for _ in range(steps):
        mask = rs.choice(x.shape[0], batch_size)
        xb, tb = x[mask], t[mask]
        # forward: Affine, ReLU, Affine, ReLU, Affine, softmax
        inputs, relu_masks, h = [], [], xb
        for i, (w, b) in enumerate(zip(weights, biases)):
            inputs.append(h)
            h = np.dot(h, w) + b
            if i < len(weights) - 1:
                relu_masks.append(h <= 0)
                h = np.maximum(0, h)
        e = np.exp(h - np.max(h, axis=1, keepdims=True))
        y = e / np.sum(e, axis=1, keepdims=True)
        losses.append(-np.sum(tb * np.log(y + 1e-7)) / y.shape[0])
        # backward: the gradient is a sum over the batch, as in the listing
        dout = y - tb
        grads = [None] * len(weights)
        for i in reversed(range(len(weights))):
            grads[i] = (np.dot(inputs[i].T, dout), np.sum(dout, axis=0))
            dout = np.dot(dout, weights[i].T)
            if i > 0:
                dout[relu_masks[i - 1]] = 0
        for (w, b), (dw, db) in zip(zip(weights, biases), grads):
            w -= lr * dw
            b -= lr * db
    return np.array(losses)
