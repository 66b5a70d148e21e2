"""The settings of one training run, and the checks that reject bad values early."""

import dataclasses
import inspect
import math
from dataclasses import dataclass, field

from mlpsweep.core.layers import ACTIVATIONS
from mlpsweep.core.network import INITS
from mlpsweep.core.optimizers import OPTIMIZERS
from mlpsweep.core.sampling import RNG_MODES, SAMPLERS

DTYPES = ("float32", "float64")
REDUCTIONS = ("mean", "sum")


class ConfigError(ValueError):
    """A config value outside its allowed range; the message is one line naming it."""


@dataclass(frozen=True)
class TrainConfig:
    depth: int = 2  # hidden layers
    width: int = 200  # units per hidden layer
    hidden_sizes: tuple | None = None  # explicit sizes; overrides depth x width
    activation: str = "relu"
    init: float | str = "he"  # std of N(0, std^2), or "xavier" / "he"
    weight_decay: float = 0.0  # L2 coefficient on weights (not biases)
    dropout: float = 0.0
    optimizer: str = "sgd"
    optimizer_params: dict = field(default_factory=dict)
    lr: float = 0.1
    batch_size: int = 100
    steps: int = 1000
    eval_every: int = 100  # 0: evaluate at the end only
    seed: int = 0
    dtype: str = "float32"
    grad_reduction: str = "mean"
    sampler: str = "with_replacement"
    rng: str = "default"
    loss_eps: float = 0.0  # the listing's log(p + 1e-7): 1e-7

    @property
    def hidden(self):
        if self.hidden_sizes is not None:
            return tuple(self.hidden_sizes)
        return (self.width,) * self.depth

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)

    def validate(self, train_size=None):
        """Raise ConfigError on the first bad value; return self when all are fine."""
        _integer("depth", self.depth, 0)
        _integer("width", self.width, 1)
        for size in self.hidden_sizes or ():
            _integer("hidden_sizes", size, 1)
        _choice("activation", self.activation, ACTIVATIONS)
        if isinstance(self.init, str):
            _choice("init", self.init, INITS)
        else:
            _number("init", self.init, lo=0.0, lo_open=True)
        _number("weight_decay", self.weight_decay, lo=0.0)
        _number("dropout", self.dropout, lo=0.0, hi=1.0, hi_open=True)
        _choice("optimizer", self.optimizer, OPTIMIZERS)
        accepted = [
            p for p in inspect.signature(OPTIMIZERS[self.optimizer]).parameters if p != "lr"
        ]
        for key, value in self.optimizer_params.items():
            if key not in accepted:
                has = ", ".join(accepted) or "none"
                raise ConfigError(
                    f"optimizer.{key}={value!r}: {self.optimizer} has no such parameter "
                    f"(its parameters: {has})"
                )
            _number(f"optimizer.{key}", value, lo=0.0)
        _number("lr", self.lr, lo=0.0, lo_open=True)
        _integer("batch_size", self.batch_size, 1, train_size, "the train set size")
        _integer("steps", self.steps, 1)
        _integer("eval_every", self.eval_every, 0)
        _integer("seed", self.seed, 0)
        _choice("dtype", self.dtype, DTYPES)
        _choice("grad_reduction", self.grad_reduction, REDUCTIONS)
        _choice("sampler", self.sampler, SAMPLERS)
        _choice("rng", self.rng, RNG_MODES)
        _number("loss_eps", self.loss_eps, lo=0.0)
        return self


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _number(key, value, lo=None, hi=None, lo_open=False, hi_open=False):
    lo_txt = f"{'>' if lo_open else '>='} {lo:g}" if lo is not None else ""
    hi_txt = f"{'<' if hi_open else '<='} {hi:g}" if hi is not None else ""
    allowed = " and ".join(t for t in (lo_txt, hi_txt) if t)
    if not _is_number(value) or not math.isfinite(value):
        raise ConfigError(f"{key}={value!r}: must be a finite number {allowed}".rstrip())
    if lo is not None and (value < lo or (lo_open and value == lo)):
        raise ConfigError(f"{key}={value!r}: must be {allowed}")
    if hi is not None and (value > hi or (hi_open and value == hi)):
        raise ConfigError(f"{key}={value!r}: must be {allowed}")


def _integer(key, value, lo, hi=None, hi_name=None):
    bound = f" and <= {hi} ({hi_name})" if hi is not None else ""
    if (
        not (isinstance(value, int) and not isinstance(value, bool))
        or value < lo
        or (hi is not None and value > hi)
    ):
        raise ConfigError(f"{key}={value!r}: must be an integer >= {lo}{bound}")


def _choice(key, value, allowed):
    if value not in allowed:
        raise ConfigError(f"{key}={value!r}: must be one of {', '.join(sorted(allowed))}")
