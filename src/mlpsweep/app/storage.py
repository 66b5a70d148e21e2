"""A run's files on disk: written atomically, metrics.json last, validated on read.

runs/<run_id>/
  config.yaml      the resolved config of the run
  history.parquet  step, examples_seen, train_loss, test_loss, test_accuracy
  job.log          warnings, errors and traceback of the job
  metrics.json     status and final metrics; written last, so its presence (valid, and
                   matching the history) is what marks a run as finished
"""

import dataclasses
import hashlib
import json
from pathlib import Path

import numpy as np

from mlpsweep.data.cache import atomic_write

FINISHED = ("ok", "diverged")


def run_id(train_config, dataset_name, data_fingerprint):
    """A stable id from everything that determines a run's numbers, and nothing else."""
    identity = {
        "train": dataclasses.asdict(train_config),
        "dataset": dataset_name,
        "data": data_fingerprint,
    }
    text = json.dumps(identity, sort_keys=True, default=list)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def history_table(result):
    """The run's history as columns: one row per step, eval columns NaN off-schedule."""
    steps = np.arange(1, len(result["train_loss"]) + 1, dtype=np.int64)
    test_loss = np.full(len(steps), np.nan)
    test_acc = np.full(len(steps), np.nan)
    at = np.asarray(result["eval_step"], dtype=np.int64) - 1
    test_loss[at] = result["test_loss"]
    test_acc[at] = result["test_accuracy"]
    return {
        "step": steps,
        "examples_seen": steps * result["batch_size"],
        "train_loss": np.asarray(result["train_loss"], dtype=np.float64),
        "test_loss": test_loss,
        "test_accuracy": test_acc,
    }


def parquet_bytes(columns):
    """The history as parquet bytes (encoded by the worker, written by the launcher)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    sink = pa.BufferOutputStream()
    pq.write_table(pa.table(columns), sink)
    return sink.getvalue().to_pybytes()


def encode_result(result, container):
    """Add the bytes of a run's files to `result` (a worker does this, in parallel)."""
    result["config_yaml"] = yaml_text(container)
    if result.get("train_loss") is not None:
        result["history_parquet"] = parquet_bytes(history_table(result))
    return result


def write_run(run_dir, result, metrics):
    """Write one run's files; metrics.json goes last (the 'finished' marker).

    No fsync per file: a file torn by a power cut fails validation on read (JSON, the
    parquet footer, the row count), so the run counts as unfinished and is rerun."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    files = [
        ("config.yaml", result["config_yaml"].encode()),
        ("job.log", result.get("log", "").encode()),
    ]
    if result.get("history_parquet") is not None:
        files.append(("history.parquet", result["history_parquet"]))
    files.append(
        (
            "metrics.json",
            json.dumps(metrics, indent=1, sort_keys=True, default=_json_default).encode(),
        )
    )
    for name, data in files:
        atomic_write(run_dir / name, lambda f, data=data: f.write(data), durable=False)


def read_metrics(run_dir):
    """The run's metrics when its files are complete and consistent, else None."""
    run_dir = Path(run_dir)
    try:
        metrics = json.loads((run_dir / "metrics.json").read_text())
        if metrics.get("status") in FINISHED:
            import pyarrow.parquet as pq

            rows = pq.ParquetFile(run_dir / "history.parquet").metadata.num_rows
            if rows != metrics.get("steps_done"):
                return None
        return metrics
    except (OSError, ValueError, AttributeError):
        return None


def remove_partial(run_dir):
    """Delete the temporary files of writes a kill interrupted (never read as results)."""
    for tmp in Path(run_dir).glob(".*.tmp"):
        tmp.unlink(missing_ok=True)


def is_finished(run_dir):
    metrics = read_metrics(run_dir)
    return metrics is not None and metrics.get("status") in FINISHED


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (set, tuple)):
        return list(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def yaml_text(container):
    import yaml

    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)  # libyaml: ~3x faster
    return yaml.dump(container, Dumper=dumper, sort_keys=False)
