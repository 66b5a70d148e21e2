"""Steps to a target (Shallue et al. 2018, "Measuring the Effects of Data Parallelism on
Neural Network Training"): the first step at which a run reaches e.g.

    target=test_accuracy:0.9      at an evaluation (use eval_schedule=log: evaluations
                                  every ~10% of the step count, so the answer is within
                                  10% of the true step); accuracy rises to it
    target=train_loss:0.3         the train loss averaged over the last SMOOTH steps
                                  (a single batch's loss is too noisy to cross once);
                                  a loss falls to it
    'target="test_loss<=0.3"'     the direction spelled out (quoted for Hydra)
"""

import math
import re
from dataclasses import dataclass

import numpy as np

from mlpsweep.core.checks import ConfigError

METRICS = ("train_loss", "test_loss", "test_accuracy")
SMOOTH = 20  # steps in the trailing mean of the train loss
LOG_RATIO = 1.1  # eval_schedule=log: each evaluation <= 10% after the one before


@dataclass(frozen=True)
class Target:
    metric: str
    op: str  # >= or <=
    value: float

    def reached(self, values):
        return values >= self.value if self.op == ">=" else values <= self.value


def parse_target(text: str | None) -> "Target | None":
    """'test_accuracy:0.9' (accuracy must rise to it, a loss fall to it), or explicitly
    'test_accuracy>=0.9' (quoted on the command line: Hydra reads > as syntax) -> Target;
    ConfigError (one line) for anything else."""
    m = re.fullmatch(r"\s*(\w+)\s*(>=|<=|:)\s*([-+0-9.eE]+)\s*", str(text))
    if not m or m.group(1) not in METRICS:
        raise ConfigError(
            f"target={text!r}: must be METRIC:VALUE (or 'METRIC>=VALUE', quoted) with "
            f"METRIC one of {', '.join(METRICS)} (e.g. target=test_accuracy:0.9)"
        )
    op = m.group(2)
    if op == ":":
        op = ">=" if m.group(1) == "test_accuracy" else "<="
    try:
        target = Target(m.group(1), op, float(m.group(3)))
    except ValueError:
        raise ConfigError(f"target={text!r}: {m.group(3)!r} is not a number") from None
    reachable = 0 <= target.value <= 1 if target.metric == "test_accuracy" else target.value >= 0
    if not reachable or not math.isfinite(target.value):
        what = "an accuracy between 0 and 1" if target.metric == "test_accuracy" else "a loss >= 0"
        raise ConfigError(f"target={text!r}: no run can reach it ({target.metric} is {what})")
    return target


def eval_steps(steps: int, eval_every: int, schedule: str = "linear") -> list[int]:
    """The steps after which the test set is evaluated: every `eval_every` (0: the last
    only), or on a log-spaced schedule (each within 10% of the one before), always with
    the last step."""
    if schedule == "log":
        grid, s = set(), 1
        while s < steps:
            grid.add(s)
            s = max(s + 1, int(s * LOG_RATIO))  # every step up to 10, then <= 10% apart
        return sorted(grid | {steps})
    every = set(range(eval_every, steps + 1, eval_every)) if eval_every else set()
    return sorted(every | {steps})


def steps_to_target(target, train_loss, eval_step, test_loss, test_accuracy):
    """The first step that reaches `target`, or None."""
    if target.metric == "train_loss":
        loss = np.asarray(train_loss, dtype=np.float64)
        if len(loss) < SMOOTH:
            return None
        c = np.cumsum(np.insert(loss, 0, 0.0))
        trailing = (c[SMOOTH:] - c[:-SMOOTH]) / SMOOTH  # mean of steps t-SMOOTH+1 .. t
        hit = np.flatnonzero(target.reached(trailing))
        return int(hit[0] + SMOOTH) if len(hit) else None
    values = np.asarray(test_loss if target.metric == "test_loss" else test_accuracy)
    hit = np.flatnonzero(target.reached(values))
    return int(eval_step[hit[0]]) if len(hit) else None
