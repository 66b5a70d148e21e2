"""The on-disk records of runs and sweeps, as typed objects: the only code that reads or
writes result files. No Hydra here: the app, the launcher, the CLI and the report all
come through this package.

    <sweep dir>/sweep.json              SweepManifest: the command and its planned runs
    <sweep dir>/runs/<run_id>/          one RunRecord (see run.py)
    <sweep dir>/claims/<run_id>.json    who is training the run now (see claim.py)
    <sweep dir>/report/, report.html    written by mlpsweep.report
"""

from mlpsweep.core.status import FINISHED
from mlpsweep.records.claim import (
    WORKER_DIED,
    RunBusy,
    claim_run,
    holds,
    live_claims,
    stale_claims,
)
from mlpsweep.records.claim import remove as remove_claim
from mlpsweep.records.claim import tidy as tidy_claims
from mlpsweep.records.files import UnsafeFile
from mlpsweep.records.identity import RunIdentity, is_run_id
from mlpsweep.records.metrics import Metric, RunMetrics, metric
from mlpsweep.records.run import (
    RunRecord,
    inspect_run,
    is_finished,
    reached,
    read_history,
    read_history_table,
    read_metrics,
    remove_partial,
    write_run,
)
from mlpsweep.records.sweep import (
    MANIFEST,
    PlannedRun,
    SweepError,
    SweepManifest,
    manifest_lock,
    run_dir,
)

__all__ = [
    "FINISHED",
    "MANIFEST",
    "Metric",
    "PlannedRun",
    "RunBusy",
    "RunIdentity",
    "RunMetrics",
    "RunRecord",
    "SweepError",
    "SweepManifest",
    "UnsafeFile",
    "WORKER_DIED",
    "holds",
    "live_claims",
    "claim_run",
    "inspect_run",
    "is_finished",
    "is_run_id",
    "manifest_lock",
    "metric",
    "read_history",
    "read_history_table",
    "read_metrics",
    "reached",
    "remove_partial",
    "run_dir",
    "stale_claims",
    "remove_claim",
    "tidy_claims",
    "write_run",
]
