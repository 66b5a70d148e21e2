"""The unit of work: `run.py`'s task function, for a single run and for every job of a
multirun under any Hydra launcher (mlpsweep, joblib, basic, submitit, ...).

It trains the run its config describes, writes the run's record and returns a
RunOutcome. In a multirun the record goes to <sweep dir>/runs/<run_id>/, and a run whose
record there is already complete is not trained again: that is how a killed sweep
resumes, whichever launcher runs it. A single run writes into Hydra's run directory.
"""

import errno
import functools
import logging
import math
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode

from mlpsweep import records
from mlpsweep.app import single
from mlpsweep.app.errors import JobError, user_wants_tracebacks
from mlpsweep.app.execute import execute
from mlpsweep.app.resources import check_memory
from mlpsweep.app.schema import OBJECTIVES
from mlpsweep.app.single import drop_if_empty
from mlpsweep.app.spec import run_spec
from mlpsweep.core.checks import ConfigError
from mlpsweep.core.status import Status
from mlpsweep.data.idx import DatasetError
from mlpsweep.launcher.compose import task_container
from mlpsweep.records.checkpoint import remove_checkpoints

log = logging.getLogger("mlpsweep")


@dataclass(frozen=True)
class RunOutcome:
    """What a job returns (picklable; the launcher and Hydra's JobReturn carry it)."""

    run_id: str
    status: Status  # OK | DIVERGED | FAILED | BUSY | DRY_RUN
    record: str  # the run's record folder
    overrides: tuple = ()
    error: str | None = None
    final_train_loss: float | None = None
    seconds: float = 0.0
    reused: bool = False  # its record was complete already: not trained again
    objective: float = math.inf  # the value an adaptive sweeper optimises (see __float__)
    objective_name: str = ""  # its metric (the `objective` knob), shown on the run's line

    def __float__(self):
        """The run's objective (the `objective` knob's metric): what Hydra's Optuna sweeper
        reads from a job's return value. A run without it (failed, diverged, target not
        reached) returns the worst value, so the sweeper moves on."""
        return float(self.objective)

    @property
    def failed(self):
        """The launcher's fail_fast stops on a return value whose `failed` is true."""
        return self.status == Status.FAILED

    @property
    def retry_later(self):
        """Another process is training this run: our sweeper launches it again later
        (then its record is there, or the other process is gone and it is trained)."""
        return self.status == Status.BUSY

    def __str__(self):
        if self.retry_later:
            return f"busy: {self.error}; waiting for it"
        if self.reused:
            return f"{self.status} (already done)"
        if self.failed:
            return f"FAILED {self.error} ({self.seconds:.1f}s)"
        loss = "no loss" if self.final_train_loss is None else f"loss {self.final_train_loss:.4f}"
        if self.objective_name and math.isfinite(self.objective):  # what a search optimises
            loss += f", objective {self.objective_name} {self.objective:.4g}"
        return f"{self.status} {loss} ({self.seconds:.1f}s)"


def main_task(cfg):
    """run.py's task function: run_task, plus a single run's last words and exit status."""
    try:
        result = run_task(cfg)
    except (ConfigError, DatasetError) as e:
        if HydraConfig.get().mode == RunMode.MULTIRUN or user_wants_tracebacks():
            raise
        # One line, exit 2, as for a sweep's bad input (not Hydra's "Error executing job").
        print(f"mlpsweep: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    except JobError as e:
        if HydraConfig.get().mode == RunMode.MULTIRUN or user_wants_tracebacks():
            raise
        # A single run's folder stopped taking writes: one line, no empty folder left.
        drop_if_empty(HydraConfig.get().runtime.output_dir)
        print(f"mlpsweep: {e}", file=sys.stderr)
        raise SystemExit(1) from None
    if HydraConfig.get().mode != RunMode.MULTIRUN and result.status != "dry_run":
        print(f"{' '.join(result.overrides) or 'defaults'}: {result}\nresults: {result.record}")
        if result.failed:
            raise SystemExit(1)
    return result


def run_task(cfg):
    """Run the job whose (task) config is `cfg`; returns its RunOutcome."""
    hydra = HydraConfig.get()
    multirun = hydra.mode == RunMode.MULTIRUN
    try:
        spec = run_spec(task_container(cfg), overrides=tuple(hydra.overrides.task))
        if not multirun:  # a sweep's planner checked all its jobs together
            check_memory([spec], 1, cfg.get("max_memory", "auto"))
    except Exception:
        if not multirun:  # a refused single run leaves no folder behind
            drop_if_empty(hydra.runtime.output_dir)
        raise
    if not multirun:
        if cfg.get("dry_run", False):
            return dry_run(spec, drop_if_empty(hydra.runtime.output_dir))
        out = Path(hydra.runtime.output_dir)
        taken = out.is_symlink()
        if not taken:  # exclusively: of two runs started at once into it, one is refused
            try:
                records.files.guarded_create(out / single.MARK, str(os.getpid()).encode(), out)
            except FileExistsError:
                taken = True
            except OSError as e:  # a full disk, a read-only folder: before any training
                drop_if_empty(out)
                raise write_error(out, e, single=True) from None
        if taken or {p.name for p in out.iterdir()} != {single.MARK}:
            if not taken:
                (out / single.MARK).unlink(missing_ok=True)
            raise ConfigError(
                f"hydra.run.dir={out}: holds files already (another run's record, or a run "
                "writing into it now); a run never writes over one: name an empty folder, "
                "or leave hydra.run.dir out for a fresh one"
            )
        try:
            return train_and_write(spec, out, single=True)
        except KeyboardInterrupt:  # Ctrl-C, SIGTERM, SIGHUP: nothing of the run is kept
            drop_if_empty(out)
            raise
        finally:
            (out / single.MARK).unlink(missing_ok=True)
    sweep_dir = sweep_folder(hydra)
    check_data(sweep_dir, spec)
    record_dir = records.run_dir(sweep_dir, spec.run_id)
    pause_at = cfg.get("pause_at")
    done = records.read_metrics(record_dir)
    if records.reached(done, pause_at):
        return outcome(spec, record_dir, done, reused=True)
    if cfg.get("dry_run", False):
        return dry_run(spec, record_dir)
    try:
        # an OSError is a folder that cannot be written: see write_error
        with records.claim_run(sweep_dir, spec.run_id, spec.claim_timeout) as claim:
            done = records.read_metrics(record_dir)  # finished while we waited for it?
            if records.reached(done, pause_at):
                return outcome(spec, record_dir, done, reused=True)
            if record_dir.is_symlink():  # never read or written through: the link goes
                log.warning(
                    f"runs/{spec.run_id} was a symbolic link: removed (its target is left alone)"
                )
                record_dir.unlink()
            records.remove_partial(record_dir)  # temporary files a kill left behind
            return train_and_write(spec, record_dir, fence=claim, pause_at=pause_at)
    except records.RunBusy as busy:
        return RunOutcome(
            spec.run_id, Status.BUSY, str(record_dir), spec.overrides, error=str(busy)
        )
    except OSError as e:
        raise write_error(record_dir, e) from None


def sweep_folder(hydra):
    """hydra.sweep.dir. Reading it resolves its interpolation anew (a noticeable part of a
    short job's overhead); with our subdir `.` the launcher has resolved it already, as
    the job's output dir."""
    if hydra.sweep.subdir == ".":
        return hydra.runtime.output_dir
    return hydra.sweep.dir


def dry_run(spec, record_dir):
    print(f"dry run: would train {spec.run_id} ({spec.describe()}); nothing is trained")
    return RunOutcome(spec.run_id, Status.DRY_RUN, str(record_dir), spec.overrides)


def train_and_write(spec, record_dir, fence=None, single=False, pause_at=None):
    """Train and write the record; with a `fence` (the run's claim), publish only while
    this process still holds it: a job stopped (SIGSTOP, a frozen VM) past the claim
    timeout has lost the run to another process, and its result is discarded.

    A sweep's run continues from its checkpoint in `record_dir` (resume=true after a
    kill; a halving rung's promotion), and its checkpoints are removed once its final
    record is written (a paused run's stay: it may be promoted)."""
    board = None
    if spec.tensorboard:  # the event file lives in the record's folder, written as it trains
        from mlpsweep.app.tensorboard import RunBoard, swept_knobs

        board = RunBoard(
            record_dir, swept_knobs(spec.overrides, spec.config), spec.train.stop_at_target
        )
    try:
        record = execute(spec, board, None if single else record_dir, pause_at)
    finally:
        if board is not None:
            board.close()
    if fence is not None and not records.holds(fence):
        log.warning(
            f"{spec.describe()}: this job's claim on run {spec.run_id} was taken over while "
            "it trained (was it stopped?); its result is discarded, the other one is kept"
        )
        return RunOutcome(
            spec.run_id, Status.BUSY, str(record_dir), spec.overrides, error="taken over"
        )
    try:
        records.write_run(record_dir, record, make_root=single)
        if not single and record.metrics.finished and not record.metrics.paused:
            remove_checkpoints(record_dir)
    except OSError as e:
        raise write_error(record_dir, e, single) from None
    return outcome(spec, record_dir, record.metrics)


def write_error(record_dir, e, single=False):
    """A JobError (one line, exit 1) for a results folder that stopped taking writes."""
    fix = {errno.ENOSPC: "free space", errno.EDQUOT: "free space"}.get(e.errno, "fix the folder")
    if e.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        fix = "make the folder writable"
    if isinstance(e, records.UnsafeFile):  # a link (or a FIFO...) where a folder should be
        fix = f"remove {e.filename} (it is not written through)"
    if single:
        return JobError(
            f"cannot write the run's results to {record_dir}: {e.strerror or e}; nothing was "
            f"kept: {fix}, then run it again"
        )
    return JobError(
        f"cannot write results to {record_dir.parent}: {e.strerror or e}; the runs written "
        f"before are kept: {fix}, then rerun with resume=true"
    )


def check_data(sweep_dir, spec):
    """A worker on another machine loads its own copy of the dataset: it must be the
    data the sweep was planned with (else its runs would be other runs)."""
    planned = planned_data(sweep_dir)
    if planned is None:
        return  # not planned by our sweeper: nothing to compare with
    name, mine = spec.identity.dataset, spec.identity.data_fingerprint
    if planned.get(name, mine) != mine:
        raise JobError(
            f"dataset {name} here has fingerprint {mine[:12]}, the sweep was planned with "
            f"{planned[name][:12]}: give every worker the same data"
        )


def planned_data(sweep_dir):
    """The manifest's {dataset: fingerprint}, read once per worker and manifest version
    (every job of a sweep checks it), or None without a readable manifest."""
    try:
        st = (Path(sweep_dir) / records.MANIFEST).stat()
        return manifest_data_cached(str(sweep_dir), st.st_mtime_ns, st.st_size)
    except (OSError, records.SweepError):  # not cached: read again by the next job
        return None


@functools.lru_cache(maxsize=8)  # a bounded cache: keyed by the manifest's version
def manifest_data_cached(sweep_dir, mtime_ns, size):
    return records.SweepManifest.read(sweep_dir).data


def objective(spec, metrics):
    """The run's value of its objective metric, or the worst one (+inf when minimised,
    -inf when maximised) when it has none: a failed or diverged run, an unreached target."""
    worst = -math.inf if OBJECTIVES[spec.objective] == "maximize" else math.inf
    value = getattr(metrics, spec.objective, None) if metrics.status == Status.OK else None
    return float(value) if value is not None and math.isfinite(value) else worst


def outcome(spec, record_dir, metrics, reused=False):
    return RunOutcome(
        run_id=spec.run_id,
        status=metrics.status,
        record=str(record_dir),
        overrides=spec.overrides,
        error=metrics.error,
        final_train_loss=metrics.final_train_loss,
        seconds=metrics.job_seconds or 0.0,
        reused=reused,
        objective=objective(spec, metrics),
        objective_name=spec.objective,
    )
