"""Start a sweep's workers while the sweep is still being planned.

A loky worker takes a while to become useful: the interpreter starts, imports Hydra,
NumPy and the task's modules, takes the launch's Hydra state and composes its first
job's config. Done before the first job, that wait is spread over every job of the
sweep (`mlpsweep bench launch` measures the total). Our sweeper's planner calls back
once the first job has composed and validated (most bad input, a bad key or value,
fails before that; the rest of planning, composing the other jobs, the memory and study
checks and the manifest, is main-process work), and the launcher starts its workers in
a thread; the launch joins that thread and finds joblib's reusable executor ready. Input
refused after that waits for the workers to start and still gives one line.

Only engines that say `warms_up` (loky): others have their own workers (a Dask cluster
is already running).
A warm-up that fails is forgotten: the launch starts its workers as it always did.
"""

import logging
import threading

log = logging.getLogger("mlpsweep")
STUCK_S = 60.0  # a warm-up still starting workers after this is stuck (many times the usual)


WARM_UP = "mlpsweep-warm-up"  # the name of a warm-up's thread


def join_all():
    """Wait for every warm-up of this process (found by its thread's name): a launch must
    not remake joblib's executor while one is still submitting to it (they would
    deadlock)."""
    for thread in threading.enumerate():
        if thread.name == WARM_UP:
            join_bounded(thread)


def join_bounded(thread, stuck_s=None):
    """Wait for a warm-up's thread; bounded: one still starting workers after `stuck_s`
    ends the sweep with one line rather than waiting forever. (A worker that dies as it
    starts cannot stall loky's start of it: handover.py.)"""
    thread.join(STUCK_S if stuck_s is None else stuck_s)
    if thread.is_alive():
        raise RuntimeError(
            f"the workers did not start within {stuck_s or STUCK_S:.0f} s; "
            "rerun with resume=true (finished runs are kept)"
        )


class WarmUp:
    def __init__(self, launcher, first_job, n_jobs):
        context, _ = launcher.context  # made here: the thread must not read the config
        self.thread = threading.Thread(
            target=self._run,
            args=(launcher, context, list(first_job), n_jobs),
            name=WARM_UP,
            daemon=True,
        )

    def start(self):
        self.thread.start()
        return self

    def join(self, stuck_s=None):
        join_bounded(self.thread, stuck_s)

    @staticmethod
    def _run(launcher, context, first_job, n_jobs):
        from joblib import delayed

        from mlpsweep.launcher import worker
        from mlpsweep.launcher.engines import make_parallel

        try:
            with launcher.engine.start(launcher, context, n_jobs) as running:
                # One priming call per worker (each composes the first job's base config).
                make_parallel(launcher, running)(
                    delayed(worker.prime)(context.token, first_job) for _ in range(running.n_jobs)
                )
        except Exception as e:  # noqa: BLE001 - the launch starts workers itself
            log.debug(f"warm-up of the workers failed ({type(e).__name__}: {e})")
