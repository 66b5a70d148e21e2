"""Train one run (with its retries) and assemble its record. A run that raises is
recorded as "failed" with a one-line error and the traceback in its log: a failure is
data, never an exception that could take its siblings down."""

import io
import logging
import os
import threading
import time
import traceback
import warnings

from mlpsweep.app.checkpoints import CheckpointWriter, resume_point
from mlpsweep.app.spec import load_dataset_cached
from mlpsweep.core import train
from mlpsweep.core.observe import Observers
from mlpsweep.core.status import Status
from mlpsweep.provenance import (
    blas_controller,
    blas_library,
    blas_threads,
    code_version,
    cpu_model,
)
from mlpsweep.records import RunMetrics, RunRecord
from mlpsweep.records.run import history_columns


def execute(spec, observer=None, run_dir=None, stop_at=None) -> RunRecord:
    """Train `spec` (a RunSpec) and return its RunRecord (the record is not written
    here); `observer` (a core TrainObserver) is told each step, as train() runs. With
    `run_dir`, the run continues from its newest valid checkpoint there and writes its
    checkpoints there (see checkpoints.py); `stop_at` pauses it after that step, with a
    checkpoint to continue from."""
    start = time.perf_counter()
    log = io.StringIO()
    # The run's own log, for as long as it trains: what this thread logs, not what
    # another job does meanwhile in the same process (a Dask worker runs one per thread).
    handler = logging.StreamHandler(log)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    me = threading.get_ident()
    handler.addFilter(lambda record: record.thread == me)
    root = logging.getLogger()
    root.addHandler(handler)
    metrics = RunMetrics(
        run_id=spec.run_id,
        status=Status.FAILED,
        overrides=list(spec.overrides),
        dataset=spec.identity.dataset,
        data_fingerprint=spec.identity.data_fingerprint,
        code=code_version(),
        worker_pid=os.getpid(),
    )
    result = None
    try:
        for attempt in range(1, spec.retries + 2):
            metrics.attempts = attempt
            try:
                result = train_once(spec, log, observer, run_dir, stop_at)
                break
            except Exception as e:  # noqa: BLE001 - a run's failure is data, not a crash
                first = str(e).splitlines()[0] if str(e) else ""
                metrics.error = f"{type(e).__name__}: {first}".rstrip(": ")
                log.write(f"attempt {attempt} of {spec.retries + 1} failed:\n")
                log.write(traceback.format_exc())
    finally:
        root.removeHandler(handler)
    history = None
    if result is not None:
        trained, threads = result
        machine = {"blas": blas_library(), "blas_threads": threads, "cpu": cpu_model()}
        metrics = metrics.with_results({**trained.summary(), **machine, "error": None})
        history = history_columns(trained)
    metrics.job_seconds = time.perf_counter() - start
    return RunRecord(config=spec.config, metrics=metrics, log=log.getvalue(), history=history)


def train_once(spec, log, observer=None, run_dir=None, stop_at=None):
    """(TrainResult, BLAS threads it ran with). A product's rounding depends on how many
    threads split it, so the thread count is fixed per run (blas_threads, default 1)."""
    dataset = load_dataset_cached(spec.identity.dataset, spec.data_dir)
    start = None
    if run_dir is not None:
        observer = Observers(observer, CheckpointWriter(run_dir, spec.run_id))
        start = resume_point(run_dir, spec.run_id)
    with blas_controller().limit(limits=spec.blas_threads):
        threads = blas_threads()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = train(spec.train, dataset, observer=observer, start=start, stop_at=stop_at)
    for w in caught:
        log.write(f"warning: {w.category.__name__}: {w.message} ({w.filename}:{w.lineno})\n")
    return result, threads
