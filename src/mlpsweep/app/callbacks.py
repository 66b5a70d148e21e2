"""Hydra callback at the end of a multirun: build the report, then make the exit status
tell the truth about failed jobs (and about a report that could not be built)."""

import json
import os
import sys
import time
import traceback
from pathlib import Path

from hydra.experimental.callback import Callback

from mlpsweep.app import storage
from mlpsweep.app.sweep import SWEEP_FILE


def failed_runs(sweep_dir):
    """(lines describing the runs without a finished result, number of runs)."""
    runs = json.loads((sweep_dir / SWEEP_FILE).read_text())["runs"]
    lines = []
    for run in runs:
        metrics = storage.read_metrics(sweep_dir / "runs" / run["run_id"]) or {}
        if metrics.get("status") not in storage.FINISHED:
            what = " ".join(run["overrides"]) or "defaults"
            lines.append(f"  {what}: {metrics.get('error') or 'no result'}")
    return lines, len(runs)


class SweepEnd(Callback):
    def on_multirun_end(self, config, **kwargs):
        sweep_dir = Path(config.hydra.sweep.dir)
        if not (sweep_dir / SWEEP_FILE).exists():
            return
        report_ok = True
        if config.get("report", True):
            # Hydra turns a callback's exception into a warning and exit status 0: catch
            # it here, say so in one line, and fail the exit status ourselves.
            try:
                started = time.perf_counter()
                from mlpsweep.report import build_report

                path = build_report(sweep_dir)
                print(f"report: {path} (built in {time.perf_counter() - started:.1f} s)")
            except Exception as e:  # noqa: BLE001
                report_ok = False
                print(
                    f"mlpsweep: the report could not be built: {type(e).__name__}: {e} "
                    f"(rebuild it with `mlpsweep report {sweep_dir}`)",
                    file=sys.stderr,
                )
                if os.environ.get("HYDRA_FULL_ERROR") == "1":
                    traceback.print_exc()
        lines, total = failed_runs(sweep_dir)
        if lines:
            print(
                f"mlpsweep: {len(lines)} of {total} runs failed (logs in "
                f"{sweep_dir / 'runs'}/<run_id>/job.log):",
                file=sys.stderr,
            )
            print("\n".join(lines), file=sys.stderr)
        if lines or not report_ok:
            sys.exit(1)
