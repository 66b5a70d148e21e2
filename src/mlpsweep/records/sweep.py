"""A sweep's manifest, sweep.json: the command that made it and the runs it planned.

The report reads the runs it lists (a planned run without a finished record is shown as
such); resume compares a new command's runs with them.
"""

import contextlib
import fcntl
import json
import os
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path

from mlpsweep.records.files import PathLike, guarded_exists, guarded_read, guarded_write
from mlpsweep.records.identity import is_run_id

MANIFEST = "sweep.json"


class SweepError(ValueError):
    """Not a sweep directory, or a manifest that cannot be read; one line."""


@dataclass(frozen=True)
class PlannedRun:
    run_id: str
    overrides: tuple = ()


@dataclass
class SweepManifest:
    runs: list  # of PlannedRun, in the order of the command's jobs
    command: str = "?"
    cwd: str = "?"
    sweep_name: str = "adhoc"
    started: str = field(default_factory=lambda: time.strftime("%Y-%m-%d %H:%M:%S"))
    code: str | None = None
    data: dict = field(default_factory=dict)  # dataset name -> fingerprint, as planned
    study: dict = field(default_factory=dict)  # the sweep file's study declaration
    sweeper: str = "mlpsweep"  # what proposed the runs: mlpsweep, basic, optuna, ...
    objective: str | None = None  # an adaptive sweeper's objective (the `objective` knob)
    harness: str | None = None  # mlpsweep's version that planned it (None: before it was kept)
    # made once, kept by every rewrite: a copy of the folder is the same sweep
    sweep_id: str = field(default_factory=lambda: uuid.uuid4().hex)

    @property
    def adaptive(self) -> bool:
        """Runs proposed as the sweep went (Optuna): not known when it started."""
        return self.sweeper not in ("mlpsweep", "basic")

    @property
    def run_ids(self) -> list[str]:
        return [r.run_id for r in self.runs]

    def write(self, sweep_dir: PathLike, make: bool = True) -> None:
        """Write sweep.json (guarded: not through a link). `make`: make the sweep folder
        when it is missing (False at a sweep's end: a folder deleted meanwhile is said,
        not silently made again)."""
        data = asdict(self)
        data["runs"] = [{"run_id": r.run_id, "overrides": list(r.overrides)} for r in self.runs]
        if make:
            Path(sweep_dir).mkdir(parents=True, exist_ok=True)
        text = json.dumps(data, indent=1).encode()
        guarded_write(Path(sweep_dir) / MANIFEST, text, root=sweep_dir)

    @classmethod
    def read(cls, sweep_dir: PathLike) -> "SweepManifest":
        """The manifest of `sweep_dir`; SweepError (one line) when it is missing or bad."""
        path = Path(sweep_dir) / MANIFEST
        try:
            text = guarded_read(path, "manifest", root=sweep_dir)
        except FileNotFoundError:
            raise SweepError(f"{sweep_dir}: not a sweep directory (no {MANIFEST})") from None
        except OSError as e:
            raise SweepError(f"{path}: not a readable sweep manifest ({e.strerror})") from None
        try:
            data = json.loads(text)
            if not isinstance(data, dict) or not isinstance(data.get("runs"), list):
                raise ValueError("no list of runs")
            runs = [PlannedRun(*_planned(r)) for r in data["runs"]]
            bad = next((r.run_id for r in runs if not is_run_id(r.run_id)), None)
            if bad is not None:
                raise ValueError(f"a run id that is not one: {bad!r}")
            fields = {k: data[k] for k in TYPES if k in data and data[k] is not None}
            wrong = next((k for k, v in fields.items() if not isinstance(v, TYPES[k])), None)
            if wrong is not None:
                raise ValueError(f"{wrong}: a {type(fields[wrong]).__name__}, not a "
                                 f"{TYPES[wrong].__name__}")  # fmt: skip
            manifest = cls(runs=runs, **fields)
        except (ValueError, KeyError, TypeError, OSError, RecursionError) as e:
            detail = str(e) if isinstance(e, ValueError) else f"{type(e).__name__}: {e}"
            raise SweepError(f"{path}: not a readable sweep manifest ({detail})") from None
        if manifest.adaptive:  # running or killed: its runs so far are in its records
            listed = set(manifest.run_ids)
            manifest.runs += [r for r in found_runs(sweep_dir) if r.run_id not in listed]
        return manifest

    @classmethod
    def from_records(cls, sweep_dir: PathLike, **fields) -> "SweepManifest | None":
        """A manifest listing the readable run records under `sweep_dir`/runs (for a
        sweep run without our planner, by Hydra's basic sweeper say); None if none."""
        runs = found_runs(sweep_dir)
        return cls(runs=runs, **fields) if runs else None

    @classmethod
    def exists(cls, sweep_dir: PathLike) -> bool:
        return guarded_exists(Path(sweep_dir) / MANIFEST)  # what it is: read() says


LOCK_WAIT_S = 120.0  # planning holds the lock for a few seconds at most


@contextlib.contextmanager
def manifest_lock(sweep_dir: PathLike, wait_s: float | None = None):
    """Hold the sweep folder's lock (flock on the folder itself: no lock file to leave
    behind) for a read-modify-write of sweep.json, so that two `resume=true extend=true`
    at once each see the other's runs and lose none. The wait is bounded: SweepError
    (one line, naming the folder) after `wait_s` (LOCK_WAIT_S)."""
    wait_s = LOCK_WAIT_S if wait_s is None else wait_s
    fd = os.open(sweep_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        deadline, pause = time.monotonic() + wait_s, 0.01
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise SweepError(
                        f"{sweep_dir}: waited {wait_s:.0f} s for another command planning "
                        "this sweep to finish (is it stopped?); try again"
                    ) from None
                time.sleep(pause)
                pause = min(pause * 2, 0.5)
        yield
    finally:
        os.close(fd)  # releases the lock


def found_runs(sweep_dir: PathLike) -> list[PlannedRun]:
    """The runs with a readable record under `sweep_dir`/runs, in the order they finished
    (an adaptive search's order); none through a linked runs/ folder."""
    from mlpsweep.records.run import read_metrics

    found = []
    runs = Path(sweep_dir) / "runs"
    if runs.is_symlink():
        return []
    for path in runs.glob("*/"):
        metrics = read_metrics(path) if is_run_id(path.name) and not path.is_symlink() else None
        if metrics is not None:
            mtime = (path / "metrics.json").stat().st_mtime_ns
            found.append((mtime, path.name, PlannedRun(path.name, tuple(metrics.overrides))))
    return [run for *_, run in sorted(found)]


TYPES = {  # the manifest's fields besides runs, and what each must be
    "command": str,
    "cwd": str,
    "sweep_name": str,
    "started": str,
    "code": str,
    "data": dict,
    "study": dict,
    "sweeper": str,
    "objective": str,
    "harness": str,
    "sweep_id": str,
}


def _planned(entry):
    """(run_id, overrides) of one `runs` entry; ValueError naming what is wrong."""
    if not isinstance(entry, dict) or not isinstance(entry.get("run_id"), str):
        raise ValueError(f"a runs entry that is not {{run_id, overrides}}: {str(entry)[:40]}")
    overrides = entry.get("overrides")
    if not isinstance(overrides, list) or not all(isinstance(o, str) for o in overrides):
        raise ValueError(f"run {entry['run_id'][:12]}: overrides must be a list of strings")
    return entry["run_id"], tuple(overrides)


def run_dir(sweep_dir: PathLike, run_id: str) -> Path:
    """runs/<run_id>/ of a sweep; refuses anything but a run id (no path can escape)."""
    if not is_run_id(run_id):
        raise SweepError(f"{run_id!r} is not a run id")
    return Path(sweep_dir) / "runs" / run_id
