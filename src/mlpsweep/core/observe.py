"""What a running train() tells whoever watches it, and the state it can resume from.

`TrainObserver` is the hook: train() calls its methods at each step, each evaluation,
each checkpoint and at the end. Every method is a no-op here; a subclass overrides the
ones it needs (the records layer writes checkpoints; a logger streams losses). An
observer only reads: whatever it does, the run's numbers are the same.

`TrainState` is a run between two steps, complete enough that train(..., start=state)
continues it to the same numbers, bit for bit, as if it had never stopped: the weights,
the optimizer's slots and counters, every random stream (the sampler's generator and its
position in the current block or epoch, dropout's generator), the step, and the history
so far. The probe sets are drawn from the seed alone, so they need no state. Core knows
nothing of files: the records layer turns a TrainState into bytes and back.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from mlpsweep.core.result import TrainResult


@dataclass
class History:
    """What a run has recorded so far (the arrays hold `step` entries each)."""

    train_loss: np.ndarray  # float64 per step
    loss_sampling_var: np.ndarray  # float64 per step
    trajectory_loss: np.ndarray | None  # float64 per step (NaN off the probe's steps)
    evals: np.ndarray  # (k, 3): step, test_loss, test_accuracy
    noise: np.ndarray | None  # (k, 3) at the same steps (noise_probe)
    noise_init: np.ndarray | None  # (3,) before the first step
    wall_seconds: float = 0.0  # spent so far (timings add up across a resume)
    # the trajectory probe's per-example losses at each step it measured (its correction
    # needs them at the run's end: core/trajectory.py); arrays never changed in place
    trajectory_examples: list | None = None
    eval_seconds: float = 0.0


@dataclass
class TrainState:
    """A run after `step` steps: everything train() needs to continue it bitwise."""

    step: int
    params: np.ndarray  # the network's flat weights
    optimizer: dict[str, Any]  # Optimizer.snapshot(): slots (arrays) and counters
    streams: dict[str, Any]  # sampler and dropout generators and positions
    history: History
    fingerprint: dict[str, Any] = field(default_factory=dict)  # what it must match on restore


class TrainObserver:
    """No-op hooks; train() calls them in this order: on_step (every step), on_eval
    (after each evaluation), checkpoint_due then on_checkpoint (see below), on_end."""

    def on_step(self, step: int, train_loss: float) -> None:
        """After step `step` (1-based) whose minibatch loss was `train_loss`."""

    def on_eval(self, step: int, values: Mapping[str, float]) -> None:
        """After the evaluation at `step`: test_loss, test_accuracy (and with the noise
        probe grad_norm_sq, trace_cov, b_simple)."""

    def checkpoint_due(self, step: int) -> bool:
        """Whether to checkpoint after `step`, besides every `checkpoint_every` steps."""
        return False

    def on_checkpoint(self, state: TrainState) -> None:
        """A checkpoint after `state.step` steps (the state is a copy: keep it if needed)."""

    def on_end(self, result: TrainResult) -> None:
        """The run stopped (finished, diverged, reached its target, or paused)."""


class Observers(TrainObserver):
    """Several observers as one (None entries left out): each is told everything, in
    order; a checkpoint is due when any of them asks."""

    def __init__(self, *observers: TrainObserver | None):
        self.observers = [o for o in observers if o is not None]

    def on_step(self, step: int, train_loss: float) -> None:
        for o in self.observers:
            o.on_step(step, train_loss)

    def on_eval(self, step: int, values: Mapping[str, float]) -> None:
        for o in self.observers:
            o.on_eval(step, values)

    def checkpoint_due(self, step: int) -> bool:
        return any(o.checkpoint_due(step) for o in self.observers)

    def on_checkpoint(self, state: TrainState) -> None:
        for o in self.observers:
            o.on_checkpoint(state)

    def on_end(self, result: TrainResult) -> None:
        for o in self.observers:
            o.on_end(result)


NO_OBSERVER = TrainObserver()
