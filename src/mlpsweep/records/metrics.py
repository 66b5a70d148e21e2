"""metrics.json: what a run is (its id, overrides, data) and what came of it, sealed
with a digest of its own JSON so that a hand edit shows; and the declaration of each
scalar metric reports compare (Metric), made once, on its field."""

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mlpsweep.core.status import FINISHED, Status
from mlpsweep.records.files import sha256

STATUSES = (*FINISHED, Status.FAILED)  # what a record can say


@dataclass(frozen=True)
class Metric:
    """A metric's one declaration: how reports label and compare it, where the summary
    shows it, whether a search may tune it. Everything else follows from it (the study's
    known metrics, the summary table and summary.csv, `objective=`'s choices, intervals
    clipped to its range). A scalar result of a run declares it on its RunMetrics field
    (`metric(...)` below); a metric derived from the history, in its HistoryMetrics
    (report/metrics.py)."""

    name: str  # its column in runs.parquet (a RunMetrics field's: that field's name)
    label: str  # in tables, figures and sentences: "test accuracy"
    higher: bool = False  # higher is better
    # its column's place in the summary table and summary.csv (None: not there)
    summary: int | None = None
    objective: bool = False  # an outcome: a search may tune it (objective=), "best" may mean it
    most: float | None = None  # its largest value (1: an accuracy, a share); it is never below 0
    # compared as a ratio where positive; False: as a difference (an accuracy, a count)
    ratio: bool = True


def metric(label: str, default: Any = None, **how: Any) -> Any:
    """A RunMetrics result field that reports compare, declared (see Metric): its default,
    and `higher`, `summary`, `objective`, `most`, `ratio`."""
    return field(default=default, metadata={"metric": Metric("", label, **how)})


@dataclass
class RunMetrics:
    """metrics.json: what a run is (id, overrides, data) and what came of it."""

    run_id: str = field(metadata={"record": True})
    status: Status  # ok | diverged | failed
    overrides: list = field(default_factory=list, metadata={"record": True})
    dataset: str | None = None
    data_fingerprint: str | None = None
    error: str | None = None  # one line, for failed runs (the traceback is in job.log)
    attempts: int = 1
    steps_done: int = 0
    diverged_step: int | None = None
    final_train_loss: float | None = metric("final train loss", summary=10, objective=True)
    test_loss: float | None = metric("test loss", summary=30, objective=True)
    test_accuracy: float | None = metric(
        "test accuracy", higher=True, summary=20, objective=True, most=1.0, ratio=False
    )
    best_test_accuracy: float | None = metric(
        "best test accuracy", higher=True, objective=True, most=1.0, ratio=False
    )
    examples_seen: int = 0
    wall_seconds: float = 0.0
    train_seconds: float = 0.0
    steps_per_s: float = 0.0
    job_seconds: float | None = None
    arithmetic: str | None = None  # which step computed it: fused | layers
    code: str | None = None  # the git commit that trained it
    blas: str | None = None  # library, version and kernel
    blas_threads: int | None = None
    cpu: str | None = None
    worker_pid: int | None = None
    grad_norm_sq_init: float | None = None  # the gradient-noise scale before training
    trace_cov_init: float | None = None  # (noise_probe; history has it at each eval)
    b_simple_init: float | None = None
    # with a `target`: the first step reaching it, and the examples seen by then
    steps_to_target: int | None = metric("steps to target", summary=130, objective=True)
    examples_to_target: int | None = metric("examples to target", summary=140, objective=True)
    paused: bool = False  # stopped at a halving rung (steps_done): may be continued
    # name -> sha256 of the record's other files
    files: dict = field(default_factory=dict, metadata={"record": True})
    # sha256 of this JSON written with digest null: a hand edit shows
    digest: str | None = field(default=None, metadata={"record": True})

    @property
    def finished(self) -> bool:
        return self.status in FINISHED

    @classmethod
    def result_fields(cls) -> tuple[str, ...]:
        """The fields that say what came of the run (the report's metric columns); the
        others say which record this is (marked `record` above)."""
        return tuple(f.name for f in dataclasses.fields(cls) if not f.metadata.get("record"))

    @classmethod
    def metrics(cls) -> tuple[Metric, ...]:
        """The result fields that reports compare, as declared (in field order)."""
        return tuple(
            dataclasses.replace(f.metadata["metric"], name=f.name)
            for f in dataclasses.fields(cls)
            if "metric" in f.metadata
        )

    def results(self) -> dict:
        return {name: getattr(self, name) for name in self.result_fields()}

    def with_results(self, results: dict) -> "RunMetrics":
        """These metrics with `results` (a TrainResult's summary) set; a key that is not
        a result field is a TypeError, never dropped without a word."""
        unknown = set(results) - set(self.result_fields())
        if unknown:
            raise TypeError(f"not fields of RunMetrics' results: {sorted(unknown)}")
        return dataclasses.replace(self, **results)

    def to_json(self) -> str:
        return _json(dataclasses.asdict(self))

    def sealed(self) -> "RunMetrics":
        """These metrics with `digest` set: the sha256 of their JSON with digest null."""
        return dataclasses.replace(self, digest=digest_of(dataclasses.asdict(self)))

    @classmethod
    def from_dict(cls, data: dict) -> "RunMetrics":
        """The metrics in `data` (keys this version does not know are ignored)."""
        names = {f.name for f in dataclasses.fields(cls)}
        metrics = cls(**{k: v for k, v in data.items() if k in names})
        if not isinstance(metrics.run_id, str) or metrics.status not in STATUSES:
            raise ValueError("not a run's metrics")
        return dataclasses.replace(metrics, status=Status(metrics.status))


def _json(data: dict) -> str:
    return json.dumps(data, indent=1, sort_keys=True, default=_plain)


def digest_of(data: dict) -> str:
    """The sha256 of metrics' JSON with its digest null."""
    return sha256(_json({**data, "digest": None}).encode())


def _plain(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (set, tuple)):
        return list(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
