"""A halving sweep's plan and decisions: <sweep dir>/halving.json.

    halving:                 # in a study file, or halving.metric=... on the command line
      metric: test_loss      # test_loss | test_accuracy | train_loss (smoothed to the rung)
      min_steps: 100         # the first rung
      eta: 3                 # rungs at min_steps x eta^k; the best 1/eta go on at each
      max_steps: 2700        # the last rung: the runs' `steps` (default)
      within: batch_size     # each setting of it keeps its own best (null: the whole grid)

The sweeper writes the rungs and, after each rung, which configs it promoted; the report
draws them, and a resumed sweep goes on from the rung it reached (its decisions are
recomputed from the records, so they are the same).
"""

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

from mlpsweep.records.files import PathLike, guarded_read, guarded_write

HALVING = "halving.json"
HALVING_METRICS = {"test_loss": False, "test_accuracy": True, "train_loss": False}  # higher?
KEYS = ("metric", "min_steps", "eta", "max_steps", "within")


@dataclass(frozen=True)
class HalvingSpec:
    metric: str = "test_loss"
    min_steps: int = 100
    eta: int = 3
    max_steps: int | None = None  # None: the runs' steps
    within: str | None = None

    @classmethod
    def from_dict(cls, data) -> "HalvingSpec":
        """The spec in `data`; ValueError (one line, naming the key) if it is not one."""
        if not isinstance(data, dict):
            raise ValueError(f"halving: must be a mapping with keys {', '.join(KEYS)}")
        unknown = sorted(set(data) - set(KEYS))
        if unknown:
            raise ValueError(f"halving.{unknown[0]}: unknown key (keys: {', '.join(KEYS)})")
        spec = cls(**{k: v for k, v in data.items() if v is not None or k == "within"})
        if spec.metric not in HALVING_METRICS:
            raise ValueError(
                f"halving.metric={spec.metric!r}: must be one of {', '.join(HALVING_METRICS)}"
            )
        for key, low in (("min_steps", 1), ("eta", 2)):
            value = getattr(spec, key)
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise ValueError(f"halving.{key}={value!r}: must be an integer >= {low}")
        if spec.max_steps is not None and (
            not isinstance(spec.max_steps, int) or spec.max_steps <= spec.min_steps
        ):
            raise ValueError(
                f"halving.max_steps={spec.max_steps!r}: must be an integer > min_steps "
                f"({spec.min_steps})"
            )
        if spec.within is not None and not isinstance(spec.within, str):
            raise ValueError(f"halving.within={spec.within!r}: must be one swept key")
        return spec

    def rungs(self, steps: int) -> list[int]:
        """min_steps x eta^k below `steps`, then `steps` itself."""
        out, r = [], self.min_steps
        while r < steps:
            out.append(r)
            r *= self.eta
        return [*out, int(steps)]

    @property
    def higher_is_better(self) -> bool:
        return HALVING_METRICS[self.metric]

    def keep(self, n: int) -> int:
        """How many of `n` configs a rung promotes: the best 1/eta, at least one."""
        return max(1, math.ceil(n / self.eta))


@dataclass
class HalvingLog:
    """halving.json: the spec, the rungs' steps, and for each rung decided so far the
    run ids that went on (all seeds of each promoted config)."""

    spec: HalvingSpec
    rungs: list[int]
    promoted: list[list[str]] = field(default_factory=list)
    configs: dict[str, str] = field(default_factory=dict)  # run_id -> its config's label

    def write(self, sweep_dir: PathLike) -> None:
        text = json.dumps({**asdict(self), "spec": asdict(self.spec)}, indent=1).encode()
        guarded_write(Path(sweep_dir) / HALVING, text, durable=False)

    @classmethod
    def read(cls, sweep_dir: PathLike) -> "HalvingLog | None":
        """The sweep's halving log, or None when it has none or it does not hold."""
        try:
            data = json.loads(guarded_read(Path(sweep_dir) / HALVING, "manifest"))
            log = cls(
                spec=HalvingSpec.from_dict(data["spec"]),
                rungs=[int(r) for r in data["rungs"]],
                promoted=[[str(r) for r in rung] for rung in data["promoted"]],
                configs={str(k): str(v) for k, v in data.get("configs", {}).items()},
            )
        except (OSError, ValueError, KeyError, TypeError):
            return None
        return log

    def rung_of(self, run_id: str) -> int:
        """The last rung the run reached (0: the first)."""
        rung = 0
        for k, ids in enumerate(self.promoted):
            if run_id in ids:
                rung = k + 1
        return rung
