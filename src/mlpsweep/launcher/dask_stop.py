"""A job on a Dask worker stops when nobody will collect it.

Dask cannot stop a running task: cancelling its future (Ctrl-C or SIGTERM of the sweep)
or losing the scheduler leaves the task training to its end, and its record lands
minutes after the sweep said it was not run. So each job runs beside a watcher thread
that looks, every WATCH_S, at the task's state on its worker; once the task is cancelled
or released, or the worker is closing (it closes when it loses its scheduler), the
watcher raises JobAbandoned in the job's thread. The job then ends as an interrupted
single run does: no record, its claim released, and a rerun with resume=true trains it.
"""

import ctypes
import signal
import threading

WATCH_S = 0.5


class JobAbandoned(BaseException):
    """Raised in a job's thread once its Dask task is cancelled: a BaseException, so no
    `except Exception` in the task records the interruption as the run's failure."""


def run_watched(run, job, key):
    """`run(job)` on a Dask worker (this is the function the launch submits), stopped
    by JobAbandoned once the task `key` is abandoned."""
    from distributed import get_worker

    worker, thread = get_worker(), threading.get_ident()
    finished, lock = threading.Event(), threading.Lock()

    def watch():
        while not finished.wait(WATCH_S):
            if not abandoned(worker, key):
                continue
            with lock:  # never raise into the thread once the job has returned
                if not finished.is_set():
                    raise_in_thread(thread, JobAbandoned)
            return

    with ONE_JOB_AT_A_TIME:
        if abandoned(worker, key):  # while it waited for the worker's other thread
            raise JobAbandoned
        threading.Thread(target=watch, name=f"mlpsweep-watch-{key}", daemon=True).start()
        try:
            return run(job)
        finally:
            with lock:
                finished.set()


# A job runs through Hydra's job protocol, whose state (HydraConfig, the job's logging,
# the composer installed for the launch) is the process's: a worker with several threads
# runs its jobs one at a time (the launch says so; `dask worker --nthreads 1 --nworkers
# N` uses every core).
ONE_JOB_AT_A_TIME = threading.Lock()


ABANDONED = {"cancelled", "released", "forgotten"}  # the task's states on its worker
CLOSING = {"closing", "closing_gracefully", "closed", "failed", "stopping", "stopped"}


def abandoned(worker, key) -> bool:
    """Whether nobody will collect task `key`: the client cancelled it (or went away),
    or the worker is closing."""
    if worker.status.name in CLOSING:
        return True
    task = worker.state.tasks.get(key)
    return task is None or task.state in ABANDONED


def raise_in_thread(ident: int, exc_type: type[BaseException]) -> None:
    """Raise `exc_type` in thread `ident` at its next Python instruction (CPython's
    PyThreadState_SetAsyncExc: a running thread cannot be stopped any other way)."""
    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(ident), ctypes.py_object(exc_type))


def dask_setup(worker):
    """Run by each worker of a local cluster as it starts (Dask's preload hook). Ctrl-C
    (and a closed terminal) reach every process of the terminal's group: the launch
    decides and closes its cluster, rather than each worker printing its traceback."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
