"""Where a sweep's jobs run: joblib's loky processes here, or a Dask cluster.

Dask: `hydra.launcher.backend=dask` with `hydra.launcher.scheduler=tcp://HOST:8786` (or
$DASK_SCHEDULER_ADDRESS) uses that cluster; without an address a local cluster is
started for the sweep (its dashboard link is logged). Workers only compute and return
results; the launcher writes them, so no shared filesystem is needed.
"""

import contextlib
import logging
import os

log = logging.getLogger("mlpsweep")
CONNECT_TIMEOUT_S = 5


@contextlib.contextmanager
def engine(launcher, n_pending):
    """Yield (joblib backend for Parallel, n_jobs) with the engine running; clean up after.
    The backend is None where parallel_config has set it (with its parameters)."""
    from joblib import parallel_config

    from mlpsweep.app.jobs import loky_worker_start

    if launcher.backend != "dask":
        n_jobs = launcher.n_jobs if launcher.n_jobs and launcher.n_jobs > 0 else os.cpu_count()
        if launcher.backend == "loky":
            with parallel_config(backend="loky", initializer=loky_worker_start):
                yield None, min(n_jobs, n_pending)
        else:
            yield launcher.backend, min(n_jobs, n_pending)
        return

    with dask_client(launcher) as client, parallel_config(backend="dask"):
        workers = client.scheduler_info().get("workers", {})
        threads = sum(w.get("nthreads", 1) for w in workers.values())
        log.info(
            f"dask: {len(workers)} workers, {threads} threads at {client.scheduler.address}"
            + (f"; dashboard {client.dashboard_link}" if client.dashboard_link else "")
        )
        yield None, -1


@contextlib.contextmanager
def dask_client(launcher):
    from distributed import Client, LocalCluster

    from mlpsweep.app.sweep import fail

    logging.getLogger("distributed").setLevel(logging.WARNING)
    address = launcher.scheduler or os.environ.get("DASK_SCHEDULER_ADDRESS")
    if address:
        try:
            client = Client(address, timeout=CONNECT_TIMEOUT_S)
        except (OSError, TimeoutError) as e:
            fail(
                f"cannot reach the Dask scheduler at {address} within {CONNECT_TIMEOUT_S} s "
                f"({type(e).__name__}); start one with `dask scheduler`, or leave "
                "hydra.launcher.scheduler unset to run a local cluster"
            )
        with client:
            yield client
        return
    n = launcher.n_jobs if launcher.n_jobs and launcher.n_jobs > 0 else os.cpu_count()
    with LocalCluster(n_workers=n, threads_per_worker=1, processes=True) as cluster:
        with Client(cluster) as client:
            yield client
