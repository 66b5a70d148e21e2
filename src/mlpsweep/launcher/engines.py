"""Where a launch's jobs run: joblib's loky processes here, a Dask cluster, or any other
joblib backend.

Dask: `hydra.launcher.backend=dask` with `hydra.launcher.scheduler=tcp://HOST:8786` (or
$DASK_SCHEDULER_ADDRESS) uses that cluster; without an address a local cluster is
started for the launch (its dashboard link is logged). Jobs write their outputs where
Hydra says (hydra.sweep.dir), so workers on other machines need that folder on a shared
filesystem, as with Hydra's submitit launcher.
"""

import asyncio
import concurrent.futures
import contextlib
import logging
import os
import time
import uuid
from collections.abc import Iterator
from typing import NamedTuple

log = logging.getLogger("mlpsweep")
CONNECT_TIMEOUT_S = 5


class EngineError(RuntimeError):
    """An engine that cannot start (one line)."""


class EngineLost(RuntimeError):
    """An engine that can run no more jobs (one line: what was waited for, how long)."""


IN_PROCESS = ("threading", "sequential")  # joblib backends without worker processes


class Running(NamedTuple):
    """A started engine: what each Parallel call of the launch is made with."""

    backend: str | None  # for joblib.Parallel; None: the one parallel_config set
    n_jobs: int
    job_context: object | None  # sent with each job (None: the workers got it at start)
    client: object | None = None  # Dask's Client, for an engine that submits jobs itself


class Engine:
    """Where a launch's jobs run: any joblib process backend. The launcher asks its engine
    what it needs to know and never branches on a backend's name; a new backend is a
    subclass that overrides what differs, registered in ENGINES."""

    name = "?"
    # Dead workers are ours to notice: the launch marks running jobs to tell whose job a
    # death took (recovery.py). Engines that reschedule a dead worker's jobs say False.
    local_workers = True
    # Workers may run on other machines, started in other folders: they get the sweep
    # folder as an absolute path (which must be on a filesystem they share).
    remote_workers = False
    # Workers can be started while the sweep is still being planned (warmup.py).
    warms_up = False

    def __init__(self, name):
        self.name = name

    def worker_died_errors(self) -> tuple[type[BaseException], ...]:
        """The exceptions with which the backend reports that a worker died."""
        from joblib.externals.loky.process_executor import BrokenProcessPool

        return (BrokenProcessPool,)

    @contextlib.contextmanager
    def start(self, launcher, context, n_jobs) -> Iterator[Running]:
        yield Running(self.name, min(workers(launcher), n_jobs), context)

    def results(self, launcher, running, jobs, run) -> Iterator:
        """`run(job)` for each of `jobs`, in worker processes: its results as jobs end, in
        any order. Leaving the loop early abandons the jobs not yet started."""
        from joblib import delayed

        parallel = make_parallel(launcher, running, return_as="generator_unordered")
        yield from parallel(delayed(run)(job) for job in jobs)


class LokyEngine(Engine):
    """joblib's loky processes on this machine: each worker gets the launch's Hydra
    state once, as it starts, and its BLAS threads capped (workers x threads <= cores)."""

    warms_up = True

    @contextlib.contextmanager
    def start(self, launcher, context, n_jobs):
        from joblib import parallel_config

        from mlpsweep.launcher.worker import start_loky_worker

        with parallel_config(
            backend="loky",
            initializer=start_loky_worker,
            initargs=(context,),
            inner_max_num_threads=blas_cap(launcher),
        ):
            yield Running(None, min(workers(launcher), n_jobs), None)


class DaskEngine(Engine):
    """A Dask cluster: hydra.launcher.scheduler (or $DASK_SCHEDULER_ADDRESS), else a local
    one for the launch. Jobs go to the cluster through Dask's own client (joblib's Dask
    backend never hands back a task that failed in the scheduler: it waits for ever).
    Dask reschedules a dead worker's job itself; a job whose workers keep dying fails
    alone (KilledWorker, after distributed.scheduler.allowed-failures deaths), its
    siblings go on; a cluster left with no worker is waited for `no_workers_s` seconds."""

    local_workers = False
    remote_workers = True

    def worker_died_errors(self):
        return ()

    @contextlib.contextmanager
    def start(self, launcher, context, n_jobs):
        with dask_client(launcher) as client:
            info = client.scheduler_info().get("workers", {})
            threads = sum(w.get("nthreads", 1) for w in info.values())
            log.info(
                f"dask: {len(info)} workers, {threads} threads at {client.scheduler.address}"
                + (f"; dashboard {client.dashboard_link}" if client.dashboard_link else "")
            )
            yield Running(None, -1, context, client)

    def results(self, launcher, running, jobs, run):
        from distributed import wait

        client, launch = running.client, uuid.uuid4().hex[:8]
        futures = {
            client.submit(run, job, key=f"mlpsweep-{launch}-{job.idx}", pure=False): job
            for job in jobs
        }
        pending, idle = set(futures), NoWorkers(client, launcher.no_workers_s)
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


POLL_S = 1.0  # how often a launch waiting on Dask looks at the cluster


class NoWorkers:
    """Raises EngineLost once a Dask cluster has had no worker (or its scheduler has not
    answered) for `limit_s` seconds: the bound on a launch's wait for its results."""

    def __init__(self, client, limit_s):
        self.client, self.limit_s, self.since = client, limit_s, None

    def check(self):
        try:
            n = len(self.client.nthreads(callback_timeout=CONNECT_TIMEOUT_S))
        except Exception:  # an unreachable scheduler: no worker can be reached either
            n = 0
        if n:
            self.since = None
            return
        now = time.monotonic()
        self.since = self.since or now
        if now - self.since >= self.limit_s:
            raise EngineLost(
                f"the Dask cluster at {self.client.scheduler.address} has had no worker for "
                f"{now - self.since:.0f} s (hydra.launcher.no_workers_s={self.limit_s:g}); "
                "start workers (`dask worker ADDRESS`) and rerun with resume=true"
            )


def dask_failure(future):
    from mlpsweep.launcher.failures import WorkerLost

    error = future.exception() if future.status == "error" else None
    if error is None:
        return WorkerLost(f"its Dask task ended {future.status}")
    allowed = getattr(error, "allowed_failures", None)
    times = f" {allowed + 1} times" if isinstance(allowed, int) and allowed > 0 else ""
    return WorkerLost(f"worker died{times} (killed? out of memory?; Dask: {type(error).__name__})")


def failed_return(overrides, error):
    from hydra.core.utils import JobReturn, JobStatus

    ret = JobReturn(overrides=list(overrides), status=JobStatus.FAILED)
    ret.return_value = error
    return ret


ENGINES: dict[str, type[Engine]] = {"loky": LokyEngine, "dask": DaskEngine}


def engine_for(name) -> Engine:
    """The Engine of joblib backend `name` (checked as the launcher is made, before a
    sweep writes anything), else EngineError."""
    from joblib.parallel import BACKENDS, EXTERNAL_BACKENDS

    def unordered(n):  # hands back each job's result as it ends (see below)
        return n not in BACKENDS or BACKENDS[n]().supports_return_generator

    known = sorted(
        n for n in {*BACKENDS, *EXTERNAL_BACKENDS, *ENGINES} - set(IN_PROCESS) if unordered(n)
    )
    if name in IN_PROCESS:
        raise EngineError(
            f"hydra.launcher.backend={name}: runs jobs inside this process, where "
            "Hydra's per-job state (HydraConfig) is not theirs; use loky (the default) or dask"
        )
    if name not in {*BACKENDS, *EXTERNAL_BACKENDS, *ENGINES}:
        raise EngineError(
            f"hydra.launcher.backend={name}: not a joblib backend (known: {', '.join(known)})"
        )
    if not unordered(name):
        raise EngineError(
            f"hydra.launcher.backend={name}: cannot hand back each job's result as it ends "
            "(joblib's return_as='generator_unordered'), which records runs as they finish; "
            "use loky (the default) or dask"
        )
    return ENGINES.get(name, Engine)(name)


def workers(launcher) -> int:
    return launcher.n_jobs if launcher.n_jobs and launcher.n_jobs > 0 else os.cpu_count() or 1


def blas_cap(launcher) -> int:
    """BLAS threads per worker so that workers x threads <= cores (a task may lower it)."""
    if launcher.blas_threads:
        return launcher.blas_threads
    return max(1, (os.cpu_count() or 1) // workers(launcher))


def make_parallel(launcher, running, **kwargs):
    """joblib.Parallel as every call of a launch makes it (the same arguments: joblib
    reuses the workers of an executor made with the same ones)."""
    from joblib import Parallel

    return Parallel(
        n_jobs=running.n_jobs, backend=running.backend, **kwargs, **launcher.joblib_kwargs
    )


@contextlib.contextmanager
def dask_client(launcher):
    from distributed import Client, LocalCluster

    logging.getLogger("distributed").setLevel(logging.WARNING)
    address = launcher.scheduler or os.environ.get("DASK_SCHEDULER_ADDRESS")
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
    with LocalCluster(n_workers=workers(launcher), threads_per_worker=1, processes=True) as cluster:
        with Client(cluster) as client:
            yield client
