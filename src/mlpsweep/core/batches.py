"""How training reads its images: normalised to [0, 1] and gathered batch by batch.

A batch lands in a buffer with a trailing column of ones (the input layer's bias input:
core/fused.py multiplies it by [W; b]); the layer path reads the same buffer without it.
"""

import numpy as np

_255 = np.float32(255)


def normalizer(dtype):
    """uint8 images to [0, 1] as the listing does (`x.astype(np.float32) / 255.0`, bit for
    bit, also when the network runs in float64); other dtypes are only cast."""

    def normalize(x):
        if x.dtype == np.uint8:
            x = np.divide(x, _255, dtype=np.float32)
        return x.astype(dtype, copy=False)

    return normalize


HUGE_PAGE = 2 * 2**20


def huge_page_aligned(shape, dtype):
    """An uninitialised array that starts on a 2 MiB boundary. numpy asks Linux for
    transparent huge pages on large allocations, and the kernel can back only the whole
    aligned 2 MiB pages inside one: aligned, all of it is. A batch gathers rows from all
    over the train set, and with 4 KiB pages each row costs a TLB miss (a two-level page
    walk in a virtual machine): 1.5% of a batch-100 step here."""
    nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
    raw = np.empty(nbytes + HUGE_PAGE, np.uint8)
    start = -raw.ctypes.data % HUGE_PAGE
    return raw[start : start + nbytes].view(dtype).reshape(shape)


def train_inputs(images):
    """uint8 `images` normalised (`normalizer(np.float32)`), each row followed by a 1,
    read-only: what BatchLoader gathers a batch from in one call (its fast path)."""
    out = huge_page_aligned((images.shape[0], images.shape[1] + 1), np.float32)
    np.divide(images, _255, out=out[:, :-1], dtype=np.float32)
    out[:, -1] = 1
    out.flags.writeable = False
    return out


class BatchLoader:
    """Gathers each batch into one preallocated buffer, normalising only that batch.

    `into` is where the batch goes: an (n x inputs) view of an (n x inputs + 1) buffer
    whose last column is ones (FusedReluSGD.x), or None for a buffer of its own. With
    `unit` (train_inputs of the whole train set, Dataset.train_inputs) a float32 batch
    is one gather of whole rows, ones included: the same numbers, without a division per
    batch.

    Gathers use mode="clip": under numpy's default mode="raise" an `out` is buffered,
    which doubles a gather's time. Indices come from the samplers, which draw them in
    range and check a restored state's (core/sampling.py)."""

    def __init__(self, images, labels, batch_size, dtype, unit=None, into=None):
        n, width = batch_size, images.shape[1]
        if into is None:
            wide = np.empty((n, width + 1), dtype)
            wide[:, -1] = 1
            into = wide[:, :-1]
        if into.base is None or into.base.shape != (n, width + 1):
            raise ValueError("a batch goes into an (n, inputs) view of an (n, inputs + 1) buffer")
        self.images, self.labels = images, labels
        self.x, self.wide = into, into.base
        self.raw = images.dtype == np.uint8
        self.unit = unit if self.raw and unit is not None else None
        self.gathered = np.empty((n, width), images.dtype)
        float32 = self.x.dtype == np.float32
        # float32 batches are written in place; float64 ones via a float32 copy (below).
        self.f32 = None if float32 else np.empty((n, width + 1), np.float32)

    def load(self, idx):
        labels = self.labels.take(idx, mode="clip")
        if self.unit is not None:
            if self.f32 is None:
                np.take(self.unit, idx, axis=0, out=self.wide, mode="clip")
            else:
                np.take(self.unit, idx, axis=0, out=self.f32, mode="clip")
                self.x[...] = self.f32[:, :-1]
            return self.x, labels
        np.take(self.images, idx, axis=0, out=self.gathered, mode="clip")
        if not self.raw:
            self.x[...] = self.gathered
        elif self.f32 is None:
            np.divide(self.gathered, _255, out=self.x, dtype=np.float32)
        else:
            np.divide(self.gathered, _255, out=self.f32[:, :-1], dtype=np.float32)
            self.x[...] = self.f32[:, :-1]
        return self.x, labels
