"""Hydra callback at the end of a multirun: build the report, then make the exit status
tell the truth about failed jobs (and about a report that could not be built).

Hydra turns a callback's exception into a warning and exit status 0, so everything here
reports its own errors in one line and sets the exit status itself."""

import json
import os
import sys
import time
import traceback
from pathlib import Path

from hydra.experimental.callback import Callback

from mlpsweep.app import storage
from mlpsweep.app.sweep import SWEEP_FILE


def unfinished_runs(sweep_dir):
    """(lines for runs that failed, lines for runs not run, number of runs)."""
    runs = json.loads((sweep_dir / SWEEP_FILE).read_text())["runs"]
    failed, not_run = [], []
    for run in runs:
        metrics = storage.read_metrics(sweep_dir / "runs" / run["run_id"]) or {}
        what = " ".join(run["overrides"]) or "defaults"
        if metrics.get("status") == "failed":
            failed.append(f"  {what}: {metrics.get('error')}")
        elif metrics.get("status") not in storage.FINISHED:
            not_run.append(f"  {what}: not run")
    return failed, not_run, len(runs)


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
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            traceback.print_exc()
        return False
    print(f"report: {path} (built in {time.perf_counter() - started:.1f} s)")
    return True


def summarise(sweep_dir):
    """Print the runs without a result; True if every run finished."""
    failed, not_run, total = unfinished_runs(sweep_dir)
    if not (failed or not_run):
        return True
    print(
        f"mlpsweep: {len(failed)} of {total} runs failed"
        + (f", {len(not_run)} not run (rerun with resume=true)" if not_run else "")
        + f"; logs in {sweep_dir / 'runs'}/<run_id>/job.log:",
        file=sys.stderr,
    )
    print("\n".join(failed + not_run), file=sys.stderr)
    return False


class SweepEnd(Callback):
    def on_multirun_end(self, config, **kwargs):
        sweep_dir = Path(config.hydra.sweep.dir)
        if config.get("dry_run", False) or not (sweep_dir / SWEEP_FILE).exists():
            return
        report_ok = report(sweep_dir) if config.get("report", True) else True
        try:
            all_finished = summarise(sweep_dir)
        except Exception as e:  # noqa: BLE001
            print(f"mlpsweep: cannot read the sweep's results: {e}", file=sys.stderr)
            all_finished = False
        if not (report_ok and all_finished):
            sys.exit(1)
