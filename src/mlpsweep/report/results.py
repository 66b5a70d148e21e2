"""A sweep's results as DataFrames, for a notebook: `mlpsweep.load(sweep_dir)`.

It reads the run records directly (no Hydra, no report needed), so it works on finished,
partial, killed and report-less sweeps alike; a run without a valid record is a row
marked "incomplete" or "corrupt", never an error.
"""

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from mlpsweep import records
from mlpsweep.report.collect import collect
from mlpsweep.report.stats import oscillation_table, run_endings
from mlpsweep.report.study import Study


@dataclass
class Sweep:
    path: Path
    runs: pd.DataFrame  # one row per planned run: config columns, status, metrics, oscillation
    history: pd.DataFrame  # one row per step of every finished run (long form, run_id column)
    study: Study  # what the sweep asks (its study declaration, or the inferred one)
    command: str

    @property
    def finished(self):
        return self.runs[self.runs["status"].isin(records.FINISHED)]


def load(sweep_dir) -> Sweep:
    """The Sweep at `sweep_dir` (results/<name>/<time>); SweepError (one line) when it is
    not a sweep directory."""
    path = Path(sweep_dir)
    tables = collect(path, write=False)
    runs, history, manifest = tables.runs, tables.history, tables.manifest
    if len(history):
        runs = runs.merge(oscillation_table(history, run_endings(runs)), on="run_id", how="left")
    return Sweep(path, runs, history, Study.from_dict(manifest.study), manifest.command)
