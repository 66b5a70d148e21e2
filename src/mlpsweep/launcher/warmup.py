"""Start a sweep's workers while the sweep is still being planned.

A loky worker takes about a second to become useful: the interpreter starts, imports
Hydra, NumPy and the task's modules, takes the launch's Hydra state and composes its
first job's config. Done before the first job, on a 2-core machine that is ~5 ms of
every job of a 200-job sweep. Our sweeper's planner calls back once the first job has
composed and validated (most bad input, a bad key or value, fails before that; the rest
of planning, composing the other jobs, the memory and study checks and the manifest, is
main-process work), and the launcher starts its workers in a thread; the launch joins
that thread and finds joblib's reusable executor ready. Input refused after that waits
for the workers to start (about a second) and still gives one line.

Only loky: other backends have their own workers (a Dask cluster is already running).
A warm-up that fails is forgotten: the launch starts its workers as it always did.
"""

import logging
import threading

log = logging.getLogger("mlpsweep")


_live = set()  # warm-ups of this process not yet joined
_live_lock = threading.Lock()


def join_all():
    """Wait for every warm-up of this process: a launch must not remake joblib's
    executor while one is still submitting to it (they would deadlock)."""
    with _live_lock:
        live = list(_live)
    for warm in live:
        warm.join()


class WarmUp:
    def __init__(self, launcher, first_job, n_jobs):
        context, _ = launcher.context  # made here: the thread must not read the config
        self.thread = threading.Thread(
            target=self._run, args=(launcher, context, list(first_job), n_jobs), daemon=True
        )
        self.thread.name = "mlpsweep-warm-up"

    def start(self):
        with _live_lock:
            _live.add(self)
        self.thread.start()
        return self

    def join(self):
        self.thread.join()
        with _live_lock:
            _live.discard(self)

    @staticmethod
    def _run(launcher, context, first_job, n_jobs):
        from joblib import delayed

        from mlpsweep.launcher import worker
        from mlpsweep.launcher.engines import engine, make_parallel

        try:
            with engine(launcher, context, n_jobs) as (backend, n, _):
                # One priming call per worker (each composes the first job's base config).
                make_parallel(launcher, backend, n)(
                    delayed(worker.prime)(first_job) for _ in range(n)
                )
        except Exception as e:  # noqa: BLE001 - the launch starts workers itself
            log.debug(f"warm-up of the workers failed ({type(e).__name__}: {e})")
