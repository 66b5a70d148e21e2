"""Where a run's randomness comes from, and how it draws its mini-batches."""

import numpy as np


def rng_state(rng):
    """The state of a Generator or a RandomState, as plain values and arrays."""
    if isinstance(rng, np.random.RandomState):
        return rng.get_state(legacy=False)
    return rng.bit_generator.state


def set_rng_state(rng, state) -> None:
    if isinstance(rng, np.random.RandomState):
        rng.set_state(state)
    else:
        rng.bit_generator.state = state


def indices(values, shape, n):
    """`values` as an integer index array of `shape` within 0..n-1, or ValueError: a
    restored sampler's state is checked, as the batch loader gathers without a bounds
    check (core/batches.py)."""
    values = np.asarray(values)
    if values.shape != shape or values.dtype.kind not in "iu":
        raise ValueError(f"a restored sampler's indices are not {shape} integers")
    if values.size and (values.min() < 0 or values.max() >= n):
        raise ValueError(f"a restored sampler's indices fall outside 0..{n - 1}")
    return values


RNG_MODES = ("default", "legacy")
SAMPLERS = ("with_replacement", "epoch")


def run_streams(seed: int, mode: str = "default"):
    """The (init, sampling, dropout) generators of a run, from its seed alone.

    "default": three independent PCG64 streams spawned from SeedSequence(seed), so the
    numbers depend on nothing but the seed, whichever process or worker runs the job.
    "legacy": one RandomState(seed) shared by all three in the listing's order
    (init, then each step's batch), which replays `np.random.seed(seed)` draws exactly
    without touching numpy's global state.
    """
    if mode == "legacy":
        rs = np.random.RandomState(seed)
        return rs, rs, rs
    if mode != "default":
        raise ValueError(f"rng={mode!r}: must be one of {RNG_MODES}")
    return tuple(np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(3))


# The probes' streams: the run's fourth and fifth SeedSequence children (0-2: init,
# sampling, dropout), each its own, so a probe moves no other draw.
NOISE_PROBE_STREAM = 3
TRAJECTORY_STREAM = 4


def probe_indices(spec, seed, train_size, stream=NOISE_PROBE_STREAM):
    """A probe's train-set rows: `spec` examples ("all": every one), drawn once without
    replacement from the run's own `stream` (the training streams are untouched)."""
    n = train_size if spec == "all" else int(spec)
    if n >= train_size:
        return np.arange(train_size)
    child = np.random.SeedSequence(seed).spawn(stream + 1)[stream]
    return np.sort(np.random.default_rng(child).choice(train_size, n, replace=False))


class WithReplacement:
    """Each batch: `batch_size` indices drawn uniformly with replacement (the listing's
    `np.random.choice(train_size, batch_size)`).

    A Generator draws BLOCK batches per call: one call per batch costs more than a small
    step's arithmetic. A RandomState (legacy) draws per batch, as the listing does."""

    BLOCK = 256

    def __init__(self, n, batch_size, rng):
        self.n, self.batch_size, self.rng = n, batch_size, rng
        self.block, self.row = None, self.BLOCK

    def next(self):
        if isinstance(self.rng, np.random.RandomState):
            return self.rng.choice(self.n, self.batch_size)
        if self.row == self.BLOCK:
            self.block, self.row = self.rng.integers(0, self.n, (self.BLOCK, self.batch_size)), 0
        self.row += 1
        return self.block[self.row - 1]

    def state(self):
        """Where the sampler is. The current block goes as is (a legacy RandomState has
        none: it draws per batch, and its state is the run's shared stream)."""
        if isinstance(self.rng, np.random.RandomState):
            return {}
        return {"rng": rng_state(self.rng), "block": self.block, "row": self.row}

    def restore(self, state):
        if state:
            block, row = state["block"], int(state["row"])
            if block is not None:
                block = indices(block, (self.BLOCK, self.batch_size), self.n)
            if not 0 <= row <= self.BLOCK or (block is None and row != self.BLOCK):
                raise ValueError(f"a restored sampler's row {row} is outside its block")
            set_rng_state(self.rng, state["rng"])
            self.block, self.row = block, row


class Epoch:
    """Shuffle once per epoch and walk through it; a last partial batch is dropped, so
    every batch has `batch_size` distinct examples and every epoch a fresh order."""

    def __init__(self, n, batch_size, rng):
        self.n, self.batch_size, self.rng = n, batch_size, rng
        self.order, self.pos = None, n

    def next(self):
        if self.pos + self.batch_size > self.n:
            self.order, self.pos = self.rng.permutation(self.n), 0
        idx = self.order[self.pos : self.pos + self.batch_size]
        self.pos += self.batch_size
        return idx

    def state(self):
        """Where the sampler is: this epoch's order and position, and its generator (in
        legacy mode the generator is the run's shared stream, saved once as "shared")."""
        state = {"order": self.order, "pos": self.pos}
        if not isinstance(self.rng, np.random.RandomState):
            state["rng"] = rng_state(self.rng)
        return state

    def restore(self, state):
        order, pos = state["order"], int(state["pos"])
        if order is not None:
            order = indices(order, (self.n,), self.n)
        if not 0 <= pos <= self.n:
            raise ValueError(f"a restored sampler's position {pos} is outside 0..{self.n}")
        self.order, self.pos = order, pos
        if "rng" in state:
            set_rng_state(self.rng, state["rng"])


def make_sampler(name: str, n: int, batch_size: int, rng):
    if name == "with_replacement":
        return WithReplacement(n, batch_size, rng)
    if name == "epoch":
        return Epoch(n, batch_size, rng)
    raise ValueError(f"sampler={name!r}: must be one of {SAMPLERS}")
