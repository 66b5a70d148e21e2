"""Where a launch's jobs run: joblib's loky processes here, a Dask cluster, or any other
joblib backend.

Dask: `hydra.launcher.backend=dask` with `hydra.launcher.scheduler=tcp://HOST:8786` (or
$DASK_SCHEDULER_ADDRESS) uses that cluster; without an address a local cluster is
started for the launch (its dashboard link is logged). Jobs write their outputs where
Hydra says (hydra.sweep.dir), so workers on other machines need that folder on a shared
filesystem, as with Hydra's submitit launcher.
"""

import contextlib
import logging
import os
from collections.abc import Iterator
from typing import NamedTuple

from mlpsweep.launcher.failures import EngineError, EngineLost, failed_return

__all__ = ["EngineError", "EngineLost", "failed_return"]  # where callers look for them
log = logging.getLogger("mlpsweep")


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
    state once, as it starts (through a file: handover.py), and its BLAS threads capped
    (workers x threads <= cores)."""

    def __init__(self, name):
        super().__init__(name)
        self.parked = {}  # launch token -> where its context waits (handover.py)

    @contextlib.contextmanager
    def start(self, launcher, context, n_jobs):
        from joblib import parallel_config

        from mlpsweep.launcher.handover import intact, park
        from mlpsweep.launcher.worker import start_loky_worker

        once = "state_once" in launcher.shortcuts  # else sent with every job, as by Hydra
        parked = self.parked.get(context.token)
        if once and (parked is None or not intact(parked)):
            if parked is not None:  # a worker started now could not read it: again
                log.warning(
                    f"the launch's context file {parked.path} is gone or changed: "
                    "written again for the workers started from now on"
                )
            self.parked[context.token] = park(context)
        with parallel_config(
            backend="loky",
            initializer=start_loky_worker,
            initargs=(context.launcher_pid, self.parked[context.token] if once else None),
            inner_max_num_threads=blas_cap(launcher),
        ):
            yield Running(None, min(workers(launcher), n_jobs), None if once else context)


class DaskEngine(Engine):
    """A Dask cluster: hydra.launcher.scheduler (or $DASK_SCHEDULER_ADDRESS), else a local
    one for the launch; its jobs go through Dask's own client (dask_client.py)."""

    local_workers = False
    remote_workers = True

    def worker_died_errors(self):
        return ()

    @contextlib.contextmanager
    def start(self, launcher, context, n_jobs):
        from mlpsweep.launcher import dask_client

        with dask_client.connect(launcher.scheduler, workers(launcher)) as client:
            yield Running(None, -1, context, client)

    def results(self, launcher, running, jobs, run):
        from mlpsweep.launcher import dask_client

        return dask_client.results(running.client, jobs, run, launcher.no_workers_s)


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
