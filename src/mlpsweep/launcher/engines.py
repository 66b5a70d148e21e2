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

log = logging.getLogger("mlpsweep")
CONNECT_TIMEOUT_S = 5


class EngineError(RuntimeError):
    """An engine that cannot start (one line)."""


IN_PROCESS = ("threading", "sequential")  # joblib backends without worker processes


def check_backend(name):
    """`name` if joblib knows the backend (checked as the launcher is made, before a
    sweep writes anything), else EngineError."""
    from joblib.parallel import BACKENDS, EXTERNAL_BACKENDS

    known = sorted({*BACKENDS, *EXTERNAL_BACKENDS} - set(IN_PROCESS))
    if name in IN_PROCESS:
        raise EngineError(
            f"hydra.launcher.backend={name}: runs jobs as threads of this process, where "
            "Hydra's per-job state (HydraConfig) is not theirs; use loky (the default) or dask"
        )
    if name not in known:
        raise EngineError(
            f"hydra.launcher.backend={name}: not a joblib backend (known: {', '.join(known)})"
        )
    return name


def workers(launcher):
    return launcher.n_jobs if launcher.n_jobs and launcher.n_jobs > 0 else os.cpu_count() or 1


def blas_cap(launcher):
    """BLAS threads per worker so that workers x threads <= cores (a task may lower it)."""
    if launcher.blas_threads:
        return launcher.blas_threads
    return max(1, (os.cpu_count() or 1) // workers(launcher))


def make_parallel(launcher, backend, n_jobs, **kwargs):
    """joblib.Parallel as every call of a launch makes it (the same arguments: joblib
    reuses the workers of an executor made with the same ones)."""
    from joblib import Parallel

    # backend None: the one engine() set with parallel_config
    return Parallel(n_jobs=n_jobs, backend=backend, **kwargs, **launcher.joblib_kwargs)


@contextlib.contextmanager
def engine(launcher, context, n_jobs):
    """Yield (joblib backend for Parallel or None, n_jobs, context to send with each
    job or None) with the engine running; clean up after."""
    from joblib import parallel_config

    from mlpsweep.launcher.worker import start_loky_worker

    if launcher.backend == "loky":
        with parallel_config(
            backend="loky",
            initializer=start_loky_worker,
            initargs=(context,),
            inner_max_num_threads=blas_cap(launcher),
        ):
            yield None, min(workers(launcher), n_jobs), None
    elif launcher.backend == "dask":
        with dask_client(launcher) as client, parallel_config(backend="dask"):
            info = client.scheduler_info().get("workers", {})
            threads = sum(w.get("nthreads", 1) for w in info.values())
            log.info(
                f"dask: {len(info)} workers, {threads} threads at {client.scheduler.address}"
                + (f"; dashboard {client.dashboard_link}" if client.dashboard_link else "")
            )
            yield None, -1, context
    else:
        yield launcher.backend, min(workers(launcher), n_jobs), context


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
