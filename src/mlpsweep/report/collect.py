"""A sweep directory -> two tidy tables, written next to it as parquet:

runs.parquet     one row per run: every config key flattened into a column (optimizer.name,
                 dataset.name, ...), status and error, final and best metrics, time, steps/s,
                 data fingerprint. Runs without a finished result are kept, marked.
history.parquet  long form: run_id, step, examples_seen, train_loss, test_loss, test_accuracy.
"""

import json
from pathlib import Path

import pandas as pd
import yaml

from mlpsweep.app import storage
from mlpsweep.app.sweep import SWEEP_FILE

HARNESS_KEYS = ("sweep_name", "resume", "extend", "dry_run", "fail_fast", "retries", "report")


def flatten(config, prefix=""):
    out = {}
    for key, value in config.items():
        if isinstance(value, dict):
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = str(value) if isinstance(value, list) else value
    return out


def run_row(run_dir, run_id, overrides):
    row = {"run_id": run_id, "overrides": " ".join(overrides)}
    try:
        config = yaml.safe_load((run_dir / "config.yaml").read_text()) or {}
    except (OSError, yaml.YAMLError):
        config = {}
    row.update({k: v for k, v in flatten(config).items() if k not in HARNESS_KEYS})
    metrics = storage.read_metrics(run_dir)
    if metrics is None:
        row["status"] = "incomplete"  # listed in the sweep, no valid result (yet)
        return row
    for key, value in metrics.items():
        if key not in ("overrides", "run_id"):
            row[key] = value
    return row


def collect(sweep_dir, write=True):
    """(runs, history) DataFrames of the sweep at `sweep_dir`."""
    sweep_dir = Path(sweep_dir)
    sweep = json.loads((sweep_dir / SWEEP_FILE).read_text())
    rows, frames = [], []
    for run in sweep["runs"]:
        run_dir = sweep_dir / "runs" / run["run_id"]
        row = run_row(run_dir, run["run_id"], run["overrides"])
        rows.append(row)
        if row["status"] in storage.FINISHED:
            h = pd.read_parquet(run_dir / "history.parquet")
            h.insert(0, "run_id", run["run_id"])
            frames.append(h)
    runs = pd.DataFrame(rows)
    if {"lr", "batch_size", "grad_reduction"} <= set(runs.columns):
        # The listing's 'sum' reduction multiplies every step by the batch size.
        scale = runs["batch_size"].where(runs["grad_reduction"] == "sum", 1)
        runs["effective_lr"] = runs["lr"] * scale
    columns = ["run_id", "step", "examples_seen", "train_loss", "test_loss", "test_accuracy"]
    history = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)
    if write:
        for name, df in (("runs", runs), ("history", history)):
            storage.atomic_write(sweep_dir / f"{name}.parquet", lambda f, df=df: df.to_parquet(f))
    return runs, history, sweep
