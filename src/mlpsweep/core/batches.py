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
CACHE_LINE = 64


def aligned_empty(shape, dtype, boundary=CACHE_LINE):
    """An uninitialised C-contiguous array that starts on a `boundary` (bytes). On a
    cache line: numpy aligns to 16 bytes, and an AVX-512 pass over a buffer that is not
    on 64 splits every load across two lines (a ReLU pass at batch 100: ~40% slower)."""
    nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
    raw = np.empty(nbytes + boundary, np.uint8)
    start = -raw.ctypes.data % boundary
    return raw[start : start + nbytes].view(dtype).reshape(shape)


def huge_page_aligned(shape, dtype):
    """An uninitialised array that starts on a 2 MiB boundary. numpy asks Linux for
    transparent huge pages on large allocations, and the kernel can back only the whole
    aligned 2 MiB pages inside one: aligned, all of it is. A batch gathers rows from all
    over the train set, and with 4 KiB pages each row costs a TLB miss (a two-level page
    walk in a virtual machine): 1.5% of a batch-100 step here."""
    return aligned_empty(shape, dtype, HUGE_PAGE)


def train_inputs(images):
    """uint8 `images` normalised (`normalizer(np.float32)`), each row followed by a 1,
    read-only: what BatchLoader gathers a batch from in one call (its fast path)."""
    out = huge_page_aligned((images.shape[0], images.shape[1] + 1), np.float32)
    np.divide(images, _255, out=out[:, :-1], dtype=np.float32)
    out[:, -1] = 1
    out.flags.writeable = False
    return out


def wide_buffer(x):
    """The (n, inputs + 1) buffer whose (n, inputs) view is `x`, checked: rows one column
    wider than x, and memory (of the array that owns it) under every element."""
    n, width = x.shape
    item, owner = x.itemsize, x.base
    start = x.__array_interface__["data"][0]
    span = (n * (width + 1)) * item
    if (
        owner is None
        or x.strides != ((width + 1) * item, item)
        or not owner.flags.c_contiguous
        or start < owner.__array_interface__["data"][0]
        or start + span > owner.__array_interface__["data"][0] + owner.nbytes
    ):
        raise ValueError("a batch goes into an (n, inputs) view of an (n, inputs + 1) buffer")
    return np.lib.stride_tricks.as_strided(x, shape=(n, width + 1), writeable=True)


class BatchLoader:
    """Gathers each batch into one preallocated buffer, normalising only that batch.

    `into` is where the batch goes: the (n x inputs) view of an (n x inputs + 1) buffer
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
        if into.shape != (n, width) or into.dtype != np.dtype(dtype):
            raise ValueError("a batch goes into an (n, inputs) view of an (n, inputs + 1) buffer")
        # Labels as intp, once: a batch's labels index the logits (`offsets + labels`,
        # core/fused.py and layers.py), and from uint8 that add casts on every step.
        self.images, self.labels = images, np.asarray(labels).astype(np.intp, copy=False)
        self.x, self.wide = into, wide_buffer(into)
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
