"""The Dask engine's side of a launch: a client for the cluster (the one named, or a
local one), the jobs submitted through it, and their results as they end.

Jobs go to the cluster through Dask's own client: joblib's Dask backend never hands back
a task that failed in the scheduler (it waits for ever). Dask reschedules a dead worker's
job itself; a job whose workers keep dying fails alone (KilledWorker, after
distributed.scheduler.allowed-failures deaths) and its siblings go on; a cluster left
with no worker is waited for `no_workers_s` seconds; a lost scheduler ends the launch
with one line. A job whose future is abandoned (the sweep interrupted, the scheduler
lost) stops where it is, on its worker (dask_stop.py), so no record lands after the
sweep said it was not run.
"""

import asyncio
import concurrent.futures
import contextlib
import logging
import os
import time
import uuid

from mlpsweep.launcher.failures import (
    EngineError,
    EngineLost,
    LaunchFailure,
    WorkerLost,
    failed_return,
)

log = logging.getLogger("mlpsweep")
CONNECT_TIMEOUT_S = 5


@contextlib.contextmanager
def connect(scheduler: str | None, n_workers: int):
    """A client of the cluster at `scheduler` (or $DASK_SCHEDULER_ADDRESS), else of a
    local cluster of `n_workers` processes started for the launch; distributed's own
    log lines kept to one line each while it is open (QuietTracebacks)."""
    with QuietTracebacks(), client_of(scheduler, n_workers) as client:
        info = client.scheduler_info().get("workers", {})
        threads = sum(w.get("nthreads", 1) for w in info.values())
        link = client.dashboard_link
        log.info(
            f"dask: {len(info)} workers, {threads} threads at {client.scheduler.address}"
            + (f"; dashboard {link}" if link and serves(link) else "")
        )
        if threads > len(info):
            log.warning(
                f"dask: its workers have {threads} threads in {len(info)} processes: each "
                "process runs one job at a time (a job's Hydra state is its process's); "
                "start workers with `dask worker ADDRESS --nthreads 1 --nworkers N` to use "
                "every core"
            )
        yield client


class QuietTracebacks(logging.Filter):
    """distributed logs what it recovers from, and what ends a launch that we report in
    one line of our own (a lost scheduler, cancelled tasks), with tracebacks: ~40 lines
    above our line. While a launch runs, its warnings and errors keep their message, on
    one line, without the traceback; a record with no message goes, and its info lines
    (every connection) are not shown."""

    LOGGERS = ("distributed", "distributed.utils", "distributed.client", "distributed.core")

    def filter(self, record):
        if record.exc_info:
            text = record.getMessage().strip()
            kind = record.exc_info[0].__name__ if record.exc_info[0] else ""
            record.msg, record.args = (f"{text} ({kind})" if text else ""), ()
            record.exc_info, record.exc_text = None, None
        return bool(str(record.msg).strip())

    def __enter__(self):
        import distributed  # noqa: F401 - its import sets its loggers' levels: first

        top = logging.getLogger("distributed")
        self.level = top.level
        top.setLevel(max(logging.WARNING, top.level))
        for name in self.LOGGERS:
            logging.getLogger(name).addFilter(self)
        return self

    def __exit__(self, *exc):
        for name in self.LOGGERS:
            logging.getLogger(name).removeFilter(self)
        logging.getLogger("distributed").setLevel(self.level)


def results(client, jobs, run, no_workers_s):
    from distributed import wait

    from mlpsweep.launcher.dask_stop import run_watched

    launch = uuid.uuid4().hex[:8]
    futures = {}
    for job in jobs:
        key = f"mlpsweep-{launch}-{job.idx}"
        futures[client.submit(run_watched, run, job, key, key=key, pure=False)] = job
    pending, idle = set(futures), NoWorkers(client, no_workers_s)
    try:
        while pending:
            try:
                done, pending = wait(pending, timeout=POLL_S, return_when="FIRST_COMPLETED")
            except (TimeoutError, asyncio.TimeoutError):
                idle.check()
                continue
            except (asyncio.CancelledError, concurrent.futures.CancelledError) as e:
                # the scheduler was lost: the client cancels every future it held
                raise EngineLost(
                    f"the Dask scheduler at {client.scheduler.address} was lost "
                    f"({type(e).__name__}); start it and its workers again and rerun "
                    "with resume=true"
                ) from None
            for future in done:
                if future.status == "finished":
                    yield future.result()
                else:  # KilledWorker, or cancelled by the cluster
                    job = futures[future]
                    yield job.idx, failed_return(job.overrides, dask_failure(future))
    finally:
        if pending:
            client.cancel(list(pending))


def serves(link) -> bool:
    """Whether the dashboard page answers: Dask makes up its link from a template even
    for a scheduler started with --no-dashboard or without bokeh (a 404 page)."""
    import urllib.request

    try:
        with urllib.request.urlopen(link, timeout=1) as page:
            return page.status == 200
    except (OSError, ValueError):
        return False


POLL_S = 1.0  # how often a launch waiting on Dask looks at the cluster


class NoWorkers:
    """Raises EngineLost once a Dask cluster has had no worker (or its scheduler has not
    answered) for `limit_s` seconds: the bound on a launch's wait for its results."""

    def __init__(self, client, limit_s):
        self.client, self.limit_s, self.since = client, limit_s, None
        self.silent = False  # the scheduler did not answer the last check

    def check(self):
        try:
            n = len(self.client.nthreads(callback_timeout=CONNECT_TIMEOUT_S))
            self.silent = False
        except Exception:  # an unreachable scheduler: no worker can be reached either
            n, self.silent = 0, True
        if n:
            self.since = None
            return
        now = time.monotonic()
        self.since = self.since or now
        if now - self.since < self.limit_s:
            return
        where, waited = self.client.scheduler.address, f"{now - self.since:.0f} s"
        knob = f"hydra.launcher.no_workers_s={self.limit_s:g}"
        if self.silent:
            raise EngineLost(
                f"the Dask scheduler at {where} has not answered for {waited} ({knob}): "
                "is it stopped or overloaded? Jobs its workers were running may still "
                "finish and record their runs; rerun with resume=true, which keeps them"
            )
        raise EngineLost(
            f"the Dask cluster at {where} has had no worker for {waited} ({knob}); "
            "start workers (`dask worker ADDRESS`) and rerun with resume=true"
        )


def dask_failure(future):
    """The job's failure as Dask reports it: its worker died too often (KilledWorker),
    or its task failed outside the job (the job's own failures come back in its
    JobReturn), or it ended otherwise."""
    error = future.exception() if future.status == "error" else None
    if error is None:
        return WorkerLost(f"its Dask task ended {future.status}")
    if type(error).__name__ != "KilledWorker":
        first = (str(error).strip().splitlines() or [""])[0][:200]
        return LaunchFailure(f"its Dask task failed: {type(error).__name__}: {first}")
    allowed = getattr(error, "allowed_failures", None)
    times = f" {allowed + 1} times" if isinstance(allowed, int) and allowed > 0 else ""
    return WorkerLost(f"worker died{times} (killed? out of memory?; Dask: {type(error).__name__})")


@contextlib.contextmanager
def client_of(scheduler, n_workers):
    from distributed import Client, LocalCluster

    address = scheduler or os.environ.get("DASK_SCHEDULER_ADDRESS")
    if address:
        try:
            client = Client(address, timeout=CONNECT_TIMEOUT_S)
        except (OSError, TimeoutError) as e:
            raise EngineError(
                f"cannot reach the Dask scheduler at {address} within {CONNECT_TIMEOUT_S} s "
                f"({type(e).__name__}); start one with `dask scheduler`, or leave "
                "hydra.launcher.scheduler unset to run a local cluster"
            ) from None
        with client:
            yield client
        return
    with LocalCluster(
        n_workers=n_workers,
        threads_per_worker=1,
        processes=True,
        silence_logs=logging.ERROR,  # in its workers too: a cancelled task is no warning
        dashboard_address=":0",  # any free port (logged): two sweeps at once both get one
        preload=["mlpsweep.launcher.dask_stop"],  # its workers leave Ctrl-C to the launch
    ) as cluster:
        with Client(cluster) as client:
            yield client
