"""A job's config -> RunSpec: the validated, typed description of one run."""

import dataclasses
import functools
from dataclasses import dataclass

from mlpsweep.app.schema import HARNESS_KEYS, check_harness
from mlpsweep.core import TrainConfig
from mlpsweep.records import RunIdentity


@functools.lru_cache(maxsize=4)  # a bounded cache: a worker's jobs use one or two
def load_dataset_cached(name, data_dir):
    """One load per process and dataset (cheap: the full datasets are mmap'd .npy files;
    each job would otherwise verify and normalise its copy again)."""
    from mlpsweep.data import load_dataset

    return load_dataset(name, data_dir=data_dir)


@dataclass(frozen=True)
class RunSpec:
    identity: RunIdentity
    data_dir: str | None
    config: dict  # the run's resolved config, harness knobs left out (what is recorded)
    overrides: tuple  # the job's task overrides, control flags left out
    retries: int = 0
    blas_threads: int = 1
    objective: str = "test_loss"  # what the job returns to an adaptive sweeper
    claim_timeout: float = 60.0  # seconds; see records.claim
    tensorboard: bool = False  # write the run's event file as it trains (app/tensorboard.py)
    input_size: int = 784
    num_classes: int = 10

    @property
    def run_id(self):
        return self.identity.run_id

    @property
    def train(self):
        return self.identity.train

    def describe(self):
        return " ".join(self.overrides) or "defaults"


CONTROL_KEYS = (
    "resume",
    "extend",
    "dry_run",
    "max_memory",
    "objective",
    "claim_timeout",
    "tensorboard",
    "pause_at",
    "halving",
)  # how to run a sweep, not what a run is


def train_config(container):
    """The core's TrainConfig from a resolved task config."""
    optimizer = dict(container.get("optimizer") or {})
    name = optimizer.pop("name", "sgd")
    names = {f.name for f in dataclasses.fields(TrainConfig)} - {"optimizer", "optimizer_params"}
    kwargs = {k: container[k] for k in names if k in container}
    if kwargs.get("hidden_sizes") is not None:
        kwargs["hidden_sizes"] = tuple(kwargs["hidden_sizes"])
    return TrainConfig(**kwargs, optimizer=name, optimizer_params=optimizer)


def run_spec(container, overrides=()):
    """Validate a job's config (ConfigError / DatasetError, one line) and describe it."""
    check_harness(container)
    train = train_config(container)
    ds = container.get("dataset") or {"name": "mnist_5k"}
    dataset = load_dataset_cached(ds["name"], ds.get("data_dir"))
    train.validate(train_size=dataset.train_size)
    kept = tuple(o for o in overrides if o.split("=", 1)[0].lstrip("+~") not in CONTROL_KEYS)
    return RunSpec(
        identity=RunIdentity(train, ds["name"], dataset.fingerprint),
        data_dir=ds.get("data_dir"),
        config={k: v for k, v in container.items() if k not in HARNESS_KEYS},
        overrides=kept,
        retries=int(container.get("retries", 0)),
        blas_threads=capped_threads(int(container.get("blas_threads", 1))),
        objective=str(container.get("objective", "test_loss")),
        claim_timeout=float(container.get("claim_timeout", 60.0)),
        tensorboard=bool(container.get("tensorboard", False)),
        input_size=dataset.input_size,
        num_classes=dataset.num_classes,
    )


def capped_threads(n):
    """`n` BLAS threads, at most the machine's cores (more only queue behind each other,
    and OpenBLAS's spinning threads slow the run by orders of magnitude), with a warning
    when capped."""
    import logging
    import os

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    if cores and n > cores:
        logging.getLogger("mlpsweep").warning(
            f"blas_threads={n}: more than this machine's {cores} cores; using {cores}"
        )
        return cores
    return n


def expected_cost(spec):
    """A rough relative cost of a run: steps x (batch + a fixed part) x weights x dtype."""
    t = spec.train
    sizes = [spec.input_size, *t.hidden, spec.num_classes]
    weights = sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))
    return t.steps * (t.batch_size + 20) * weights * (2 if t.dtype == "float64" else 1)
