"""One run's record: runs/<run_id>/ with its config, history, log and metrics.

runs/<run_id>/
  config.yaml      the resolved config of the run
  history.parquet  step, examples_seen, train_loss, test_loss, test_accuracy, and
                   loss_sampling_var (each step's minibatch sampling noise); with the
                   probes on, trajectory_loss (+ trajectory_sampling_var) and the
                   gradient-noise columns
  job.log          warnings, errors and tracebacks of the job
  metrics.json     status and final metrics, and a checksum of each file above; written
                   last, so its presence (valid, and the files matching their checksums)
                   is what marks a run as finished

Each file is written atomically (a temporary file, then a rename), so a reader sees a
whole file or none; a record torn by a kill or a power cut, or damaged later, fails
validation on read and counts as unfinished (rerun on resume, listed by the report).
"""

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

# At import, not where a history is written: a sweep's workers import the task's modules
# as they start (while the sweep is planned), not while a job waits for them.
import pyarrow as pa
import pyarrow.parquet as pq

from mlpsweep.records.metrics import RunMetrics, digest_of

if TYPE_CHECKING:
    import pandas as pd
from mlpsweep.core.result import NOISE_COLUMNS
from mlpsweep.records.files import (
    PathLike,
    guarded_mkdir,
    guarded_open,
    guarded_read,
    guarded_write,
    sha256,
)
from mlpsweep.records.identity import is_run_id

NO_RESULT = "no result"  # inspect_run's problem for a run without metrics.json (yet)


@dataclass
class RunRecord:
    """Everything written for one run."""

    config: dict  # the resolved config
    metrics: RunMetrics
    log: str = ""
    history: dict | None = None  # columns (see history_columns); None for a failed run


def history_columns(result) -> dict[str, np.ndarray]:
    """A TrainResult's history as columns: one row per step, eval columns NaN off-schedule."""
    steps = np.arange(1, len(result.train_loss) + 1, dtype=np.int64)
    test_loss = np.full(len(steps), np.nan)
    test_acc = np.full(len(steps), np.nan)
    at = np.asarray(result.eval_step, dtype=np.int64) - 1
    test_loss[at] = result.test_loss
    test_acc[at] = result.test_accuracy
    columns = {
        "step": steps,
        "examples_seen": steps * result.batch_size,
        "train_loss": np.asarray(result.train_loss, dtype=np.float64),
        "test_loss": test_loss,
        "test_accuracy": test_acc,
    }
    for name in ("loss_sampling_var", "trajectory_loss", "trajectory_sampling_var"):
        values = getattr(result, name, None)
        if values is not None:
            columns[name] = np.asarray(values, dtype=np.float64)
    noise = getattr(result, "noise", None)
    if noise is not None:  # the gradient-noise scale at eval steps (noise_probe)
        for k, name in enumerate(NOISE_COLUMNS):
            columns[name] = np.full(len(steps), np.nan)
            columns[name][at[: len(noise)]] = noise[:, k]
    return columns


def write_run(run_dir: PathLike, record: RunRecord, make_root: bool = True) -> None:
    """Write one run's files; metrics.json goes last (the 'finished' marker). Guarded:
    nothing through a link below the sweep's folder. `make_root`: make the sweep's (or
    the record's own) folder when it is missing; a job passes False, so that a sweep
    folder deleted mid-sweep is an error, not silently made again.

    No fsync per file: a file torn by a power cut fails validation on read (JSON, the
    parquet footer, the row count), so the run counts as unfinished and is rerun."""
    run_dir = Path(run_dir)
    root = record_root(run_dir)
    if make_root or root == run_dir:
        root.mkdir(parents=True, exist_ok=True)
    guarded_mkdir(run_dir, root)
    files = [("config.yaml", _yaml(record.config).encode()), ("job.log", record.log.encode())]
    if record.history is not None:
        files.append(("history.parquet", _parquet(record.history)))
    metrics = dataclasses.replace(record.metrics, files={n: sha256(d) for n, d in files})
    files.append(("metrics.json", metrics.sealed().to_json().encode()))
    for name, data in files:
        guarded_write(run_dir / name, data, root=root, durable=False)


def record_root(run_dir: PathLike) -> Path:
    """The folder a record's guarded reads and writes start from: its sweep's folder for
    a sweep's runs/<run_id>/ (so neither runs/ nor the run's folder may be a link), else
    the record's own folder (a single run's)."""
    run_dir = Path(run_dir)
    if run_dir.parent.name == "runs" and is_run_id(run_dir.name):
        return run_dir.parent.parent
    return run_dir


def read_metrics(run_dir: PathLike) -> RunMetrics | None:
    """The run's metrics when its files are complete and consistent, else None."""
    return inspect_run(run_dir)[0]


# NO_THREADS: Arrow's thread pool, once started, can still hold a running thread when
# the interpreter exits; its destructor then aborts the process ("terminate called
# without an active exception", exit -6 in place of the sweep's own code; apache/arrow
# #34314). A history is a few columns: one thread reads it as fast.
RECORD_FILES = ("config.yaml", "job.log", "history.parquet")  # what metrics.json may name
KINDS = {"config.yaml": "config", "job.log": "log", "history.parquet": "history"}


class Inspection(NamedTuple):
    """What inspect_run found: the metrics of a valid record, else what is wrong."""

    metrics: RunMetrics | None
    problem: str | None


def inspect_run(run_dir: PathLike) -> Inspection:
    """(metrics, None) for a complete, consistent record; (None, what is wrong) else
    (NO_RESULT when it has no metrics.json yet).

    Nothing read counts until verified: the folder and its files are no symbolic links
    (never followed), metrics.json names only the record's own files, and they match
    their checksums; metrics.json matches its own digest (a hand edit fails) and names
    the folder's run id. A record written before checksums is decoded in full and its
    numbers checked against its history."""
    run_dir = Path(run_dir)
    if run_dir.is_symlink():
        return Inspection(None, "the run's folder is a symbolic link (not followed)")
    path = run_dir / "metrics.json"
    root = record_root(run_dir)
    try:
        text = guarded_read(path, "metrics", root).decode()
    except FileNotFoundError:
        return Inspection(None, NO_RESULT)
    except (OSError, UnicodeDecodeError) as e:
        return Inspection(None, f"metrics.json: {getattr(e, 'strerror', None) or e}")
    try:
        data = json.loads(text)
        metrics = RunMetrics.from_dict(data)
        # Over the JSON as written: a record from a version with other fields still holds.
        sealed = metrics.digest is None or digest_of(data) == metrics.digest
    except (ValueError, TypeError, AttributeError, RecursionError) as e:
        return Inspection(None, f"metrics.json is not readable ({type(e).__name__})")
    if is_run_id(run_dir.name) and metrics.run_id != run_dir.name:  # (a sweep's runs/<id>)
        return Inspection(None, f"metrics.json is run {metrics.run_id[:12]}'s, not this folder's")
    if not sealed:
        return Inspection(None, "metrics.json was changed after it was written (fails its digest)")
    if not isinstance(metrics.files, dict) or not set(metrics.files) <= set(RECORD_FILES):
        return Inspection(None, "metrics.json names files that are not a record's")
    history = None
    for name, digest in metrics.files.items():
        try:
            data = guarded_read(run_dir / name, KINDS[name], root)
            ok = sha256(data) == digest
        except OSError:
            ok = False
        if not ok:
            return Inspection(None, f"{name} is missing or damaged (fails its checksum)")
        if name == "history.parquet":
            history = data
    if not metrics.finished:
        return Inspection(metrics, None)
    if history is None:
        try:  # a record written before checksums: decode its history in full
            history = guarded_read(run_dir / "history.parquet", "history", root)
        except OSError as e:
            return Inspection(None, f"history.parquet: {e.strerror or e}")
    return _check_against_history(history, metrics)


HEADLINE_COLUMNS = ["train_loss", "test_accuracy"]


def _check_against_history(history: bytes, metrics: RunMetrics) -> Inspection:
    """A finished record's headline numbers re-derived from its history (decoded in
    full) must agree with its metrics.json: the checksums and the digest are written by
    whoever writes the file, so an edit that recomputes them (or nulls the digest) still
    does not make a better number count."""
    try:
        with pq.ParquetFile(pa.BufferReader(history)) as f:
            names = [c for c in HEADLINE_COLUMNS if c in f.schema_arrow.names]
            table = f.read(columns=names, use_threads=False)  # (NO_THREADS)
        loss = table.column("train_loss").to_numpy()
    except (OSError, ValueError, KeyError, pa.ArrowException) as e:
        return Inspection(None, f"history.parquet is not readable ({type(e).__name__})")
    if len(loss) != metrics.steps_done:
        return Inspection(None, "history.parquet does not match metrics.json")
    if not _agrees(metrics.final_train_loss, loss[-1] if len(loss) else None):
        return Inspection(None, "metrics.json's final train loss is not its history's")
    if "test_accuracy" in names and metrics.test_accuracy is not None:
        acc = table.column("test_accuracy").to_numpy()
        acc = acc[np.isfinite(acc)]
        if not _agrees(metrics.test_accuracy, acc[-1] if len(acc) else None):
            return Inspection(None, "metrics.json's test accuracy is not its history's")
        if metrics.best_test_accuracy is not None and not _agrees(
            metrics.best_test_accuracy, acc.max() if len(acc) else None
        ):
            return Inspection(None, "metrics.json's best test accuracy is not its history's")
    return Inspection(metrics, None)


def _agrees(stated, derived) -> bool:
    """A metric as stated and as re-derived: equal to rounding, or both absent (a
    non-finite value is stored as absent)."""
    finite = derived is not None and bool(np.isfinite(derived))
    if stated is None or not np.isfinite(stated):
        return not finite
    return finite and bool(np.isclose(stated, derived, rtol=1e-9, atol=0))


def is_finished(run_dir: PathLike, pause_at: int | None = None) -> bool:
    """Whether the run's record is all that is asked of it: finished, and when it was
    paused at a halving rung, at least `pause_at` steps in (see reached)."""
    return reached(read_metrics(run_dir), pause_at)


def reached(metrics: RunMetrics | None, pause_at: int | None = None) -> bool:
    """Whether `metrics` (or None) is finished, and (when paused at a halving rung) at
    least `pause_at` steps in. Without `pause_at`, a paused record counts as finished:
    a halving sweep keeps the runs it did not promote at the rung they stopped at."""
    if metrics is None or not metrics.finished:
        return False
    return not (metrics.paused and pause_at is not None and metrics.steps_done < pause_at)


def read_history(run_dir: PathLike) -> "pd.DataFrame":
    """The run's history as a DataFrame (one row per step)."""
    return read_history_table(run_dir).to_pandas(use_threads=False)  # (NO_THREADS)


def read_history_table(run_dir: PathLike) -> pa.Table:
    """The run's history as a pyarrow Table (a report concatenates hundreds of them and
    converts once). ParquetFile, not read_table or pandas: a tenth of their cost on a
    small file (no dataset discovery, no thread pool). Never through a symbolic link."""
    path = Path(run_dir) / "history.parquet"
    with guarded_open(path, "history", record_root(run_dir)) as raw, pq.ParquetFile(raw) as f:
        return f.read(use_threads=False)  # (NO_THREADS)


# Records of the first format kept the harness's settings in config.yaml (newer ones keep
# only what defines the run); read back, they are not part of the run's config.
V1_HARNESS_KEYS = ("sweep_name", "resume", "extend", "dry_run", "fail_fast", "retries", "report")


def read_config(run_dir: PathLike) -> dict:
    """The run's resolved config as a dict ({} when missing or unreadable)."""
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml, where installed
    path = Path(run_dir) / "config.yaml"
    try:
        config = yaml.load(guarded_read(path, "config", record_root(run_dir)), Loader=loader) or {}
    except (OSError, ValueError, yaml.YAMLError):
        return {}
    if not isinstance(config, dict):
        return {}
    return {k: v for k, v in config.items() if k not in V1_HARNESS_KEYS}


def remove_partial(run_dir: PathLike) -> None:
    """Delete the temporary files of writes a kill interrupted (never read as results);
    nothing through a symbolic link."""
    if Path(run_dir).is_symlink():
        return
    for tmp in Path(run_dir).glob(".*.tmp"):
        if not tmp.is_symlink():
            tmp.unlink(missing_ok=True)


def _yaml(config):
    import yaml

    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)  # libyaml, where installed
    return yaml.dump(config, Dumper=dumper, sort_keys=False)


def _parquet(columns):
    """Parquet bytes of {name: 1-d int64/float64 array} (NaN kept as NaN, as pa.array
    keeps it). Built from the arrays' buffers: pa.array/pa.table import pandas (a large
    import) to look for pandas objects, and a worker that writes records needs no pandas."""
    types = {np.dtype(np.int64): pa.int64(), np.dtype(np.float64): pa.float64()}
    arrays = []
    for values in columns.values():
        values = np.ascontiguousarray(values)
        arrays.append(
            pa.Array.from_buffers(types[values.dtype], len(values), [None, pa.py_buffer(values)])
        )
    sink = pa.BufferOutputStream()
    pq.write_table(pa.Table.from_arrays(arrays, names=list(columns)), sink)
    return sink.getvalue().to_pybytes()
