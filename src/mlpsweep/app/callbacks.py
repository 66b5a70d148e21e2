"""Hydra callbacks: what attaches to a sweep whatever launcher runs it.

- SweepEnd (on_multirun_end): the report, then an exit status that tells the truth about
  failed jobs (and about a report that could not be built). Hydra turns a callback's
  exception into a warning and exit status 0, so it reports its own errors in one line
  and sets the exit status itself.
- JobProgress (on_job_end): one line per finished job with the sweep's progress and an
  ETA, for launchers without progress of their own (basic, joblib, submitit). It runs
  where the job runs, so it counts finished records on disk.
"""

import contextlib
import functools
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import NamedTuple

from hydra.experimental.callback import Callback

from mlpsweep import records
from mlpsweep.app import errors
from mlpsweep.core.status import Status
from mlpsweep.launcher.hydra_compat import multirun_raised, return_value
from mlpsweep.records.run import NO_RESULT


class Unfinished(NamedTuple):
    """A sweep's runs without a result, one line each, by why; and how many it plans."""

    failed: list[str]
    not_run: list[str]
    damaged: list[str]
    total: int


def unfinished_runs(sweep_dir) -> Unfinished:
    """The sweep's runs that failed, were not run, or are damaged."""
    manifest = records.SweepManifest.read(sweep_dir)
    failed, not_run, damaged = [], [], []
    for run in manifest.runs:
        metrics, problem = records.inspect_run(records.run_dir(sweep_dir, run.run_id))
        what = " ".join(run.overrides) or "defaults"
        if metrics is not None and metrics.status == Status.FAILED:
            failed.append(f"  {what}: {metrics.error}")
        elif metrics is None and problem == NO_RESULT:
            not_run.append(f"  {what}: not run")
        elif metrics is None:
            damaged.append(f"  {what}: {problem}")
    return Unfinished(failed, not_run, damaged, len(manifest.runs))


def record_lost_runs(sweep_dir, claim_timeout):
    """A run whose process died while training it (its worker was killed, or ran out of
    memory) left its claim behind and no result: record it as failed, saying so."""
    planned = {r.run_id: r for r in records.SweepManifest.read(sweep_dir).runs}
    for run_id, claim in records.stale_claims(sweep_dir, claim_timeout):
        run_dir = records.run_dir(sweep_dir, run_id)
        if run_id in planned and records.inspect_run(run_dir)[1] == NO_RESULT:
            metrics = records.RunMetrics(
                run_id, Status.FAILED, list(planned[run_id].overrides), error=records.WORKER_DIED
            )
            records.write_run(run_dir, records.RunRecord(config={}, metrics=metrics))
        records.remove_claim(claim)
    records.tidy_claims(sweep_dir)


def preload_report():
    """Import the report's modules (pandas, matplotlib, seaborn: seconds of CPU) in a
    thread while the jobs run: after the last job, the report would wait for them.
    A failed import is left for report() to say."""

    def load():
        with contextlib.suppress(Exception):
            import mlpsweep.report.build  # noqa: F401

    threading.Thread(target=load, name="mlpsweep-report-preload", daemon=True).start()


def report(sweep_dir):
    """Build the report; False (after one line on stderr) if that failed."""
    started = time.perf_counter()
    try:
        from mlpsweep.report import build_report

        path = build_report(sweep_dir)
    except Exception as e:  # noqa: BLE001 - said in one line, and in the exit status
        print(
            f"mlpsweep: the report could not be built: {type(e).__name__}: {e} "
            f"(rebuild it with `mlpsweep report {sweep_dir}`)",
            file=sys.stderr,
        )
        if errors.user_wants_tracebacks():
            traceback.print_exc()
        return False
    print(f"report: {path} (built in {time.perf_counter() - started:.1f} s)")
    return True


def summarise(sweep_dir):
    """Print the runs without a result; True if every run finished."""
    failed, not_run, damaged, total = unfinished_runs(sweep_dir)
    if not (failed or not_run or damaged):
        return True
    print(
        f"mlpsweep: {len(failed)} of {total} runs failed"
        + (f", {len(not_run)} not run" if not_run else "")
        + (f", {len(damaged)} damaged" if damaged else "")
        + f"; logs in {sweep_dir / 'runs'}/<run_id>/job.log; rerun the same command with "
        "resume=true to run them again:",
        file=sys.stderr,
    )
    print("\n".join(failed + not_run + damaged), file=sys.stderr)
    return False


class SweepEnd(Callback):
    def on_multirun_end(self, config, **kwargs):
        if config.get("dry_run", False) or multirun_raised():
            return  # the sweep's own error (Hydra 1.4 calls us then too) says what happened
        sweep_dir = Path(config.hydra.sweep.dir)  # resolving it makes the folder
        if not sweep_dir.is_dir():  # deleted while the sweep ran: its runs with it
            print(
                f"mlpsweep: the sweep folder {sweep_dir} is gone (deleted while the sweep "
                "ran?): no run of it is kept; run the command again",
                file=sys.stderr,
            )
            sys.exit(1)
        if not records.SweepManifest.exists(sweep_dir):
            return  # refused before anything started (SweepStart writes it otherwise)
        try:
            manifest = records.SweepManifest.read(sweep_dir)
        except records.SweepError as e:  # damaged while the sweep ran: say so, exit 1
            print(f"mlpsweep: cannot read the sweep's results: {e}", file=sys.stderr)
            sys.exit(1)
        if manifest.adaptive:  # list the runs the sweeper proposed (read found them)
            manifest.write(sweep_dir, make=False)
        record_lost_runs(sweep_dir, float(config.get("claim_timeout", records.claim.STALE_S)))
        report_ok = report(sweep_dir) if config.get("report", True) else True
        try:
            all_finished = summarise(sweep_dir)
        except records.SweepError as e:
            print(f"mlpsweep: cannot read the sweep's results: {e}", file=sys.stderr)
            all_finished = False
        if not (report_ok and all_finished):
            sys.exit(1)


class JobProgress(Callback):
    def on_job_end(self, config, job_return, **kwargs):
        if shows_own_progress(config.hydra.launcher.get("_target_")):
            return
        sweep_dir = Path(str(config.hydra.sweep.dir))
        try:
            manifest = records.SweepManifest.read(sweep_dir)
        except records.SweepError:
            return  # not a planned sweep (another sweeper): nothing to count against
        print(progress_line(sweep_dir, manifest, job_return), file=sys.stderr, flush=True)


@functools.lru_cache(maxsize=4)  # a bounded cache: a sweep has one launcher
def shows_own_progress(launcher_target):
    """Whether the launcher class prints its own line per job (its `shows_progress`)."""
    from hydra.utils import get_class

    try:
        return bool(getattr(get_class(launcher_target), "shows_progress", False))
    except Exception:  # noqa: BLE001 - a launcher we cannot import: we print ours
        return False


def progress_line(sweep_dir, manifest, job_return):
    """'[12/30] batch_size=10 seed=3: ok loss 0.2934 (1.2s); ETA 0:00:40'."""
    planned_at = (sweep_dir / records.MANIFEST).stat().st_mtime
    done = since = 0
    for run_id in manifest.run_ids:
        path = records.run_dir(sweep_dir, run_id) / "metrics.json"
        try:
            mtime = path.stat().st_mtime
        except OSError:
            continue
        done += 1
        since += mtime >= planned_at
    total = len(manifest.runs)
    elapsed = time.time() - planned_at
    eta = ""
    if since and done < total:
        eta = f"; ETA {time.strftime('%H:%M:%S', time.gmtime(elapsed / since * (total - done)))}"
    what = " ".join(job_return.overrides) or "defaults"
    value = return_value(job_return)
    count = f"{done}/{total}" if total else f"{done} done"  # an adaptive search: no total
    return f"[{count}] {what}: {value}{eta}"
