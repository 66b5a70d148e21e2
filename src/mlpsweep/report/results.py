"""A sweep's results as DataFrames, for a notebook: `mlpsweep.load(sweep_dir)`, or one
Sweep over several sweeps' runs: `mlpsweep.load(dir_a, dir_b)` (report/merge.py).

It reads the run records directly (no Hydra, no report needed), so it works on finished,
partial, killed and report-less sweeps alike; a run without a valid record is a row
marked "incomplete" or "corrupt", never an error.
"""

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from mlpsweep import records
from mlpsweep.report.collect import SweepTables, collect
from mlpsweep.report.not_measured import WHY
from mlpsweep.report.study import Study


@dataclass
class Sweep:
    path: Path
    runs: pd.DataFrame  # one row per planned run: config columns, status, metrics, oscillation
    # one row per step of every finished run (long form): run_id, and the sweep's
    # dimensions (the config columns that vary across its runs) beside each step
    history: pd.DataFrame
    study: Study  # what the sweep asks (its study declaration, or the inferred one)
    command: str
    tables: SweepTables = field(default=None, repr=False)  # type: ignore[assignment]
    sources: tuple = ()  # merged: the sweeps it is the union of (their folders)
    note: str = ""  # merged: how many runs were in more than one sweep
    dimensions: tuple[str, ...] = ()  # the config columns that vary across the runs

    @property
    def finished(self):
        """The runs with a finished result (ok, diverged, ...)."""
        return self.runs[self.runs["status"].isin(records.FINISHED)]

    @property
    def unfinished(self):
        """The planned runs without a finished result (incomplete, failed, corrupt)."""
        return self.runs[~self.runs["status"].isin(records.FINISHED)]

    @property
    def complete(self) -> bool:
        """Whether every planned run has a finished result."""
        return not len(self.unfinished)

    def importance(self, metric=None, n_boot=None) -> pd.DataFrame:
        """What matters for `metric` (default: the study's primary one): one row per knob,
        two-knob interaction and the seeds, largest share of its variance first, with
        df, sum_sq, F and p against seed noise, share (omega squared), share_lo, share_hi
        (95%) and within_noise (report/importance.py). ValueError (one line) when the sweep
        has no shares to give: not a grid, one seed per config, a search."""
        from mlpsweep.report.analysis import analyse
        from mlpsweep.report.importance import N_BOOT, what_matters

        analysis = analyse(self.tables, first=self.study.compare)
        search = next((m for m in self.tables.manifests if m.adaptive), None)
        n_boot = N_BOOT if n_boot is None else n_boot
        shares = what_matters(analysis, self.study, search, n_boot=n_boot)
        if not shares:
            raise ValueError(shares.reason)
        metric = metric or shares.metrics[0].metric
        found = shares.of(metric)
        if found is None:
            known = ", ".join(m.metric for m in shares.metrics)
            raise ValueError(f"no variance shares of {metric!r} (these have them: {known})")
        return found.table.copy()


def load(*sweep_dirs, keep_apart=False) -> Sweep:
    """The Sweep at `sweep_dir` (results/<name>/<time>); given several, one Sweep over the
    union of their runs (a run in more than one counted once; sweeps on other data or
    from another mlpsweep version refused unless `keep_apart`, which adds a `sweep`
    column). SweepError (one line) when a folder is not a sweep directory."""
    if not sweep_dirs:
        raise TypeError("load() needs a sweep directory")
    path = Path(sweep_dirs[0])
    sources: tuple[Path, ...] = ()
    note = ""
    if len(sweep_dirs) == 1 and not keep_apart:
        tables = collect(path, write=False)
    else:
        from mlpsweep.report.merge import merge

        merged = merge(sweep_dirs, keep_apart=keep_apart)
        tables, sources, note = merged.tables, tuple(Path(d) for d in sweep_dirs), merged.note
    history, manifest = tables.history, tables.manifest
    runs = tables.runs.drop(columns=WHY, errors="ignore")  # the reasons are in not_measured
    dims = tuple(c for c in tables.config_columns if runs[c].astype(str).nunique() > 1)
    carried = [c for c in dims if c not in history.columns]
    if carried and "run_id" in history:  # a plot of the history needs no merge on run_id
        history = history.merge(runs[["run_id", *carried]], on="run_id", how="left")
    study = Study.from_dict(manifest.study)
    command = " | ".join(m.command for m in tables.manifests)
    return Sweep(path, runs, history, study, command, tables, sources, note, dims)
