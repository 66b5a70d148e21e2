"""One dataset across sweeps: the union of several sweeps' runs, as the SweepTables of one
sweep (a seeds sweep extended with more seeds, a grid extended by one lr, ...).

A run id is the hash of a run's config and data (records/identity.py), so a run found in
two sweeps is one run: it is counted once, and the merge says how many were. Sweeps
trained on other data under the same dataset name (another fingerprint), or planned by
another version of mlpsweep, are refused with one line, unless the caller keeps them apart
(`keep_apart`: each run keeps its sweep, a `sweep` column the report treats as a knob).
Nothing in the source sweeps is written: their records are read (collect.read_records),
and the history-derived metrics measured once, over the union (collect.measure: the
oscillation's window of equal examples is the merged sweep's).
"""

from dataclasses import dataclass, replace
from pathlib import Path

import pandas as pd

from mlpsweep.records import FINISHED, SweepError
from mlpsweep.report.collect import SweepTables, measure, read_records


class MergeRefused(SweepError):
    """Sweeps that cannot be one dataset; one line naming why and the way out."""


@dataclass
class Merged:
    tables: SweepTables
    sources: list  # one line per merged sweep: its folder, name, runs
    note: str  # how many runs were in more than one sweep, counted once


def _label(path, manifest):
    return f"{manifest.sweep_name}/{Path(path).name}"


def fingerprints(tables: SweepTables) -> dict:
    """{dataset name: {fingerprints}} of a sweep: its manifest's and its runs'."""
    out: dict = {}
    for name, fp in (tables.manifest.data or {}).items():
        out.setdefault(str(name), set()).add(str(fp))
    runs = tables.runs
    if {"dataset", "data_fingerprint"} <= set(runs.columns):
        for name, fp in runs[["dataset", "data_fingerprint"]].dropna().itertuples(index=False):
            out.setdefault(str(name), set()).add(str(fp))
    return out


def check_compatible(dirs, collected) -> None:
    """MergeRefused (one line) when two sweeps used other data under one dataset name, or
    were planned by different versions of mlpsweep."""
    seen: dict = {}
    for d, tables in zip(dirs, collected):
        for name, fps in fingerprints(tables).items():
            for fp in fps:
                other = seen.setdefault(name, (fp, d))
                if other[0] != fp:
                    raise MergeRefused(
                        f"{other[1]} and {d} trained on different {name} data (fingerprint "
                        f"{other[0][:12]} vs {fp[:12]}): not one dataset; to report them "
                        "together as separate sweeps, keep them apart (--keep-apart, or "
                        "keep_apart=True: a `sweep` column)"
                    )
    versions = {(t.manifest.harness, d) for d, t in zip(dirs, collected) if t.manifest.harness}
    if len({v for v, _ in versions}) > 1:
        (v1, d1), (v2, d2) = sorted(versions, key=str)[:2]
        raise MergeRefused(
            f"{d1} was planned by mlpsweep {v1} and {d2} by {v2}: their numbers need not "
            "agree; to report them together as separate sweeps, keep them apart "
            "(--keep-apart, or keep_apart=True: a `sweep` column)"
        )


def merge(sweep_dirs, keep_apart=False) -> Merged:
    """The union of the sweeps at `sweep_dirs` as one sweep's tables (see the module doc);
    SweepError for a folder that is not a sweep or given twice, MergeRefused for sweeps
    that are not one dataset."""
    dirs = [Path(d) for d in sweep_dirs]
    resolved = [d.resolve() for d in dirs]
    twice = next((d for k, d in enumerate(dirs) if resolved[k] in resolved[:k]), None)
    if twice is not None:
        raise SweepError(f"{twice} is given twice: each sweep once")
    collected = [read_records(d) for d in dirs]
    sources = [
        f"{_label(d, t.manifest)} ({d}): {len(t.runs)} runs; {t.manifest.command}"
        for d, t in zip(dirs, collected)
    ]
    if keep_apart:
        tables = side_by_side(dirs)
        return Merged(tables, sources, "Kept apart: each run keeps its sweep (the `sweep` column).")
    check_compatible(dirs, collected)
    runs, histories, config = [], [], {}
    seen: dict[str, tuple[int, bool]] = {}
    for k, t in enumerate(collected):
        config.update(dict.fromkeys(t.config_columns))
        for row in t.runs.itertuples(index=False):
            rid, finished = row.run_id, row.status in FINISHED
            if rid not in seen or (finished and not seen[rid][1]):
                seen[rid] = (k, finished)  # a finished record wins over an unfinished one
    repeated = sum(len(t.runs) for t in collected) - len(seen)
    for k, t in enumerate(collected):
        mine = [rid for rid, (src, _) in seen.items() if src == k]
        runs.append(t.runs[t.runs["run_id"].isin(mine)].drop_duplicates("run_id"))
        histories.append(t.history[t.history["run_id"].isin(mine)])
    runs = pd.concat(runs, ignore_index=True)
    history = pd.concat([h for h in histories if len(h)] or histories, ignore_index=True)
    first = collected[0].manifest
    planned = {p.run_id: p for t in collected for p in reversed(t.manifest.runs)}
    manifest = replace(
        first,
        runs=[planned[r] for r in runs["run_id"] if r in planned],
        command=" + ".join(t.manifest.command for t in collected),
        data={k: v for t in collected for k, v in (t.manifest.data or {}).items()},
        sweeper=next((t.manifest.sweeper for t in collected if t.manifest.adaptive), first.sweeper),
    )
    note = (
        f"{repeated} run{'s' * (repeated != 1)} appeared in more than one sweep (the same "
        "run id: the same config and data) and "
        f"{'are' if repeated != 1 else 'is'} counted once."
        if repeated
        else "No run appeared in more than one sweep."
    )
    tables = measure(SweepTables(runs, history, [manifest], tuple(config)))
    return Merged(tables, sources, note)


def side_by_side(sweep_dirs) -> SweepTables:
    """The SweepTables of several sweeps, `sweep` (<name>/<time>) a config column,
    measured together."""
    all_runs, all_hist, metas, config = [], [], [], {"sweep": None}
    for d in sweep_dirs:
        d = Path(d)
        tables = read_records(d)
        runs, history, sweep = tables.runs, tables.history, tables.manifest
        config.update(dict.fromkeys(tables.config_columns))
        label = f"{sweep.sweep_name}/{d.name}"
        runs["sweep"] = label
        history["run_id"] = label + ":" + history["run_id"]
        runs["run_id"] = label + ":" + runs["run_id"]
        all_runs.append(runs)
        all_hist.append(history)
        metas.append(sweep)
    runs, history = pd.concat(all_runs, ignore_index=True), pd.concat(all_hist, ignore_index=True)
    return measure(SweepTables(runs, history, metas, tuple(config)))
