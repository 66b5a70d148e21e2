"""The settings of one training run: each knob defined once, here, as a dataclass field
whose metadata holds its help line and allowed values. The Hydra schema, the value
checks and `python run.py --help` are all derived from these fields."""

import dataclasses
import inspect
import math
from dataclasses import dataclass, field

from mlpsweep.core.checks import ConfigError, Range, choice
from mlpsweep.core.layers import ACTIVATIONS
from mlpsweep.core.network import INITS
from mlpsweep.core.optimizers import OPTIMIZERS
from mlpsweep.core.sampling import RNG_MODES, SAMPLERS
from mlpsweep.core.target import parse_target

DTYPES = ("float32", "float64")
EVAL_SCHEDULES = ("linear", "log")
REDUCTIONS = ("mean", "sum")
MAX_LEGACY_SEED = 2**32 - 1  # RandomState's seed range


def knob(default, help, *, choices=None, range=None, factory=None, numbers=True):  # noqa: A002
    """A config field: its default, one line of help, and its allowed values.
    `numbers=False` marks a knob that changes no number of the run (how often it is
    checkpointed): it is no part of the run's identity (records/identity.py)."""
    meta = {"help": help, "choices": choices, "range": range, "numbers": numbers}
    if factory is not None:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class TrainConfig:
    # what is trained
    depth: int = knob(2, "hidden layers", range=Range(0, integer=True))
    width: int = knob(200, "units per hidden layer", range=Range(1, integer=True))
    hidden_sizes: tuple | None = knob(
        None, "explicit hidden sizes, e.g. [300,100]; null: depth x width"
    )
    activation: str = knob("relu", "hidden activation", choices=tuple(ACTIVATIONS))
    init: float | str = knob("he", "weight init: a std (the listing: 0.01) | xavier | he")
    weight_decay: float = knob(0.0, "L2 coefficient on weights (not biases)", range=Range(0))
    dropout: float = knob(0.0, "drop rate after each hidden layer", range=Range(0, 1, hi_open=True))
    # how
    optimizer: str = knob("sgd", "the optimizer group", choices=tuple(OPTIMIZERS))
    optimizer_params: dict = knob(None, "the optimizer's parameters (optimizer.*)", factory=dict)
    lr: float = knob(0.1, "learning rate", range=Range(0, lo_open=True))
    batch_size: int = knob(
        100, "examples per step; <= the train set size", range=Range(1, integer=True)
    )
    steps: int = knob(1000, "training steps", range=Range(1, integer=True))
    eval_every: int = knob(
        100, "test-set evaluation every N steps; 0: at the end", range=Range(0, integer=True)
    )
    seed: int = knob(0, "the run's seed: all its randomness", range=Range(0, integer=True))
    dtype: str = knob("float32", "floating-point type", choices=DTYPES)
    grad_reduction: str = knob(
        "mean", "batch gradient reduction (sum: the listing)", choices=REDUCTIONS
    )
    sampler: str = knob(
        "with_replacement", "batch sampling (with_replacement: the listing)", choices=SAMPLERS
    )
    rng: str = knob("default", "random streams (legacy: the listing's)", choices=RNG_MODES)
    loss_eps: float = knob(
        0.0, "the listing's log(p + 1e-7) in the reported loss (1e-7 to replay it)", range=Range(0)
    )
    eval_schedule: str = knob(
        "linear",
        "evaluations every eval_every steps, or log-spaced (10% apart)",
        choices=EVAL_SCHEDULES,
    )
    target: str | None = knob(
        None, "e.g. test_accuracy:0.9 or train_loss:0.3: record steps_to_target"
    )
    stop_at_target: bool = knob(False, "end the run once it reaches its target")
    noise_probe: int | str | None = knob(
        None, "gradient-noise scale B_simple on N train examples (or all) at each eval"
    )
    trajectory_probe: int | str | None = knob(
        None,
        "the weights' own loss on N train examples (or all) at each step of the last half",
    )
    trajectory_every: int = knob(
        1, "the trajectory probe measures every k-th step", range=Range(1, integer=True)
    )
    checkpoint_every: int = knob(
        0,
        "a mid-run checkpoint every k steps (0: off), to resume=true from; changes no number",
        range=Range(0, integer=True),
        numbers=False,
    )

    @property
    def hidden(self) -> tuple[int, ...]:
        if self.hidden_sizes is not None:
            return tuple(self.hidden_sizes)
        return (self.width,) * self.depth

    def replace(self, **changes) -> "TrainConfig":
        return dataclasses.replace(self, **changes)

    def validate(self, train_size: int | None = None) -> "TrainConfig":
        """Raise ConfigError on the first bad value; return self when all are fine."""
        for f in dataclasses.fields(self):
            value, rng = getattr(self, f.name), f.metadata.get("range")
            if f.metadata.get("choices") is not None:
                choice(f.name, value, f.metadata["choices"])
            elif f.name == "batch_size" and train_size is not None:
                Range(1, train_size, integer=True).check(f.name, value, "the train set size")
            elif rng is not None:
                rng.check(f.name, value)
        for size in self.hidden_sizes or ():
            Range(1, integer=True).check("hidden_sizes", size)
        if isinstance(self.init, str):
            choice("init", self.init, INITS)
        else:
            Range(0, lo_open=True).check("init", self.init)
        if self.target is not None:
            parse_target(self.target)
        elif self.stop_at_target:
            raise ConfigError("stop_at_target=true needs a target (e.g. target=test_accuracy:0.9)")
        if self.noise_probe is not None and self.noise_probe != "all":
            hi = train_size if train_size is not None else math.inf
            Range(2, hi, integer=True).check("noise_probe", self.noise_probe, "the train set size")
        if self.trajectory_probe is not None and self.trajectory_probe != "all":
            hi = train_size if train_size is not None else math.inf
            Range(1, hi, integer=True).check(
                "trajectory_probe", self.trajectory_probe, "the train set size; or all"
            )
        if self.rng == "legacy" and self.seed > MAX_LEGACY_SEED:
            raise ConfigError(f"seed={self.seed}: rng=legacy takes seeds <= {MAX_LEGACY_SEED}")
        self._validate_optimizer()
        return self

    def _validate_optimizer(self):
        cls = OPTIMIZERS[self.optimizer]
        accepted = [p for p in inspect.signature(cls).parameters if p != "lr"]
        for key, value in self.optimizer_params.items():
            if key not in accepted:
                has = ", ".join(accepted) or "none"
                raise ConfigError(
                    f"optimizer.{key}={value!r}: {self.optimizer} has no such parameter "
                    f"(its parameters: {has})"
                )
            cls.RANGES.get(key, Range(0)).check(f"optimizer.{key}", value)


__all__ = ["ConfigError", "Range", "TrainConfig", "knob"]
