"""A sweep directory -> two tidy tables, written next to it as parquet:

runs.parquet     one row per run: every config key flattened into a column (optimizer.name,
                 dataset.name, ...), status and error, final and best metrics, time, steps/s,
                 data fingerprint, and the metrics derived from the history (measure: the
                 oscillation metrics, oscillation.oscillation_table: spread, its split into
                 sampling and trajectory, ..., and `_ex` forms);
                 in a halving sweep, each run's rung (halving.json) and `paused`.
                 Runs without a finished result are kept, marked.
history.parquet  long form: run_id, step, examples_seen, train_loss, test_loss, test_accuracy,
                 loss_sampling_var (and trajectory_loss, noise columns where measured).

The history-derived metrics are computed here, once, as the records are collected
(measure, over every run of the sweep or of a merge); the report and the notebook API read
their columns.
"""

import shlex
from dataclasses import dataclass, replace
from pathlib import Path

import pandas as pd
import pyarrow as pa

from mlpsweep import records
from mlpsweep.core.status import Status
from mlpsweep.records.files import atomic_write
from mlpsweep.records.halving import HalvingLog
from mlpsweep.records.run import NO_RESULT, read_config
from mlpsweep.report.metrics import MEASURES
from mlpsweep.report.not_measured import WHY


@dataclass
class SweepTables:
    """A sweep's runs and history, and which of the runs' columns are config: a sweep's
    dimensions are exactly the config columns that vary. Every other column is declared
    by the record (RunMetrics.result_fields), by the harness (run_id, overrides,
    reproduce, status, error) or by the report's history-derived metrics (MEASURES in
    report/metrics.py, which `measure` adds: collect's and merge's tables have them)."""

    runs: pd.DataFrame
    history: pd.DataFrame
    manifests: list  # [SweepManifest]: one, or one per sweep of a comparison
    config_columns: tuple[str, ...]
    halving: HalvingLog | None = None  # a halving sweep's rungs and promotions

    @property
    def manifest(self) -> "records.SweepManifest":
        return self.manifests[0]


def flatten(config, prefix=""):
    out = {}
    for key, value in config.items():
        if isinstance(value, dict):
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = str(value) if isinstance(value, list) else value
    return out


def run_row(run_dir, planned, needs=()) -> tuple[dict, dict]:
    """(the run's config, flattened; its row of harness columns and results).
    `needs`: the sweep command's settings a run needs to be run again (max_memory)."""
    row = {
        "run_id": planned.run_id,
        "overrides": " ".join(planned.overrides),
        # Quoted for a shell, each override one word, so values with spaces survive.
        "reproduce": shlex.join(["python", "run.py", *planned.overrides, *needs]),
    }
    config = flatten(read_config(run_dir))
    metrics, problem = records.inspect_run(run_dir)
    if metrics is not None and list(metrics.overrides) != list(planned.overrides):
        # The manifest can be edited by hand; the record is sealed and verified: the run
        # is what its record says it is, and so is the command that reproduces it.
        row["overrides"] = " ".join(metrics.overrides)
        row["reproduce"] = shlex.join(["python", "run.py", *metrics.overrides, *needs])
    if metrics is None:
        # Listed in the sweep, no valid result: not (yet) run, or damaged since.
        row["status"] = Status.INCOMPLETE if problem == NO_RESULT else Status.CORRUPT
        row["error"] = problem
        return config, row
    row.update(metrics.results())
    return config, row


def reproduce_needs(command):
    """The settings of the sweep's command that reproducing one of its runs needs: a
    max_memory that let it past the memory check."""
    try:
        words = shlex.split(command or "")
    except ValueError:
        return ()
    return tuple(w for w in words if w.split("=", 1)[0].lstrip("+~") == "max_memory")


def read_records(sweep_dir) -> SweepTables:
    """The SweepTables of the sweep at `sweep_dir` as its records give them, before the
    history-derived metrics (`measure` adds them; `collect` does both)."""
    sweep_dir = Path(sweep_dir)
    manifest = records.SweepManifest.read(sweep_dir)
    rows, tables, config_columns = [], [], {}
    needs = reproduce_needs(manifest.command)
    for planned in manifest.runs:
        run_dir = records.run_dir(sweep_dir, planned.run_id)
        config, row = run_row(run_dir, planned, needs)
        config_columns.update(dict.fromkeys(config))
        rows.append({**config, **row})
        if row["status"] in records.FINISHED:
            h = records.read_history_table(run_dir)
            tables.append(h.add_column(0, "run_id", pa.repeat(planned.run_id, len(h))))
    runs = pd.DataFrame(rows)
    halving = HalvingLog.read(sweep_dir)
    if halving is not None and len(runs):  # the last rung each run reached (0: the first)
        runs["rung"] = [halving.rung_of(r) for r in runs["run_id"]]
    if {"lr", "batch_size", "grad_reduction"} <= set(runs.columns):
        # The seed listing's 'sum' reduction multiplies every step by the batch size.
        scale = runs["batch_size"].where(runs["grad_reduction"] == "sum", 1)
        runs["effective_lr"] = runs["lr"] * scale
    columns = ["run_id", "step", "examples_seen", "train_loss", "test_loss", "test_accuracy"]
    if tables:  # runs with and without noise_probe: the missing columns become NaN
        # no Arrow thread pool: see records/run.py's NO_THREADS
        history = pa.concat_tables(tables, promote_options="default").to_pandas(use_threads=False)
    else:
        history = pd.DataFrame(columns=columns)
    return SweepTables(runs, history, [manifest], tuple(config_columns), halving)


def measure(tables: SweepTables) -> SweepTables:
    """`tables` with each history-derived metric (MEASURES, report/metrics.py) added to
    its runs, over all of its runs' histories at once (the oscillation's window of equal
    examples is the sweep's): the one place they are computed. The runs as they are
    without a history. ValueError for a column the runs have already (measured twice, or
    a metric named like a field of the record)."""
    runs, history = tables.runs, tables.history
    if not len(history):
        return tables
    for measures in MEASURES:
        table = measures.table(runs, history)
        clash = sorted((set(table.columns) - {"run_id"}) & set(runs.columns))
        if clash:
            raise ValueError(f"{clash[0]}: the runs have this column already")
        runs = runs.merge(table, on="run_id", how="left")
    return replace(tables, runs=runs)


def write_tables(tables: SweepTables, folder) -> None:
    """runs.parquet (without the in-memory reasons, WHY) and history.parquet in `folder`."""
    runs = tables.runs.drop(columns=WHY, errors="ignore")
    for name, df in (("runs", runs), ("history", tables.history)):
        atomic_write(Path(folder) / f"{name}.parquet", lambda f, df=df: df.to_parquet(f))


def collect(sweep_dir, write=True) -> SweepTables:
    """The SweepTables of the sweep at `sweep_dir`, measured (with `write`, also
    runs.parquet and history.parquet beside it)."""
    tables = measure(read_records(sweep_dir))
    if write:
        write_tables(tables, sweep_dir)
    return tables
