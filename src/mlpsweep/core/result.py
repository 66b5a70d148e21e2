"""What train() returns: a run's histories and its scalar metrics (TrainResult)."""

from dataclasses import dataclass

import numpy as np

from mlpsweep.core.status import Status


@dataclass
class TrainResult:
    status: Status  # OK or DIVERGED
    train_loss: np.ndarray  # float64, one per completed step (never NaN)
    eval_step: np.ndarray  # steps after which the test set was evaluated
    test_loss: np.ndarray
    test_accuracy: np.ndarray
    batch_size: int
    diverged_step: int | None = None  # the step whose loss was not finite
    wall_seconds: float = 0.0  # everything, evaluation included
    train_seconds: float = 0.0  # the training steps alone
    arithmetic: str = "layers"  # which step computed it: "layers" or "fused" (see fused.py)
    noise: np.ndarray | None = None  # (grad_norm_sq, trace_cov, b_simple) per eval step
    noise_init: tuple | None = None  # the same before the first step
    steps_to_target: int | None = None  # with a `target`: the first step reaching it
    # Per step: the variance of the minibatch loss about the weights' own loss, from the
    # batch's per-example losses (Trainer.loss_sampling_var); NaN for batches of one.
    loss_sampling_var: np.ndarray | None = None
    # Per step: the loss of the weights on the trajectory probe (NaN where not measured),
    # and the variance of its residual about the whole train set's (core/trajectory.py).
    trajectory_loss: np.ndarray | None = None
    paused: bool = False  # stopped at train(..., stop_at=) before its last step
    trajectory_sampling_var: np.ndarray | None = None

    @property
    def steps_done(self) -> int:
        return len(self.train_loss)

    @property
    def examples_seen(self) -> int:
        return self.steps_done * self.batch_size

    @property
    def steps_per_s(self) -> float:
        return self.steps_done / self.train_seconds if self.train_seconds > 0 else 0.0

    def summary(self) -> dict:
        """The scalar metrics of the run (what goes into metrics.json)."""
        last = lambda a: float(a[-1]) if len(a) else None  # noqa: E731
        acc = self.test_accuracy
        return {
            "status": self.status,
            "steps_done": self.steps_done,
            "diverged_step": self.diverged_step,
            "final_train_loss": last(self.train_loss),
            "test_loss": last(self.test_loss),
            "test_accuracy": last(self.test_accuracy),
            "best_test_accuracy": float(acc.max()) if len(acc) else None,
            "examples_seen": self.examples_seen,
            "wall_seconds": self.wall_seconds,
            "train_seconds": self.train_seconds,
            "steps_per_s": self.steps_per_s,
            "arithmetic": self.arithmetic,
            "steps_to_target": self.steps_to_target,
            "examples_to_target": (
                None if self.steps_to_target is None else self.steps_to_target * self.batch_size
            ),
            "paused": self.paused,
            **(dict(zip(NOISE_INIT, self.noise_init)) if self.noise_init is not None else {}),
        }


NOISE_INIT = ("grad_norm_sq_init", "trace_cov_init", "b_simple_init")
NOISE_COLUMNS = ("grad_norm_sq", "trace_cov", "b_simple")  # NoiseStats' fields, in order
