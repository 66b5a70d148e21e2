"""What a worker does with a job: Hydra's `run_job` (runjob.py), as Hydra's launchers call it.

The worker needs the launcher's Hydra state (config store, job runtime, resolvers), the
HydraContext, the task function and the sweep's config, from which it composes each of
its jobs' configs (so composition runs in parallel, not serially in the launcher). A
loky worker gets them once, as it starts (the executor's initializer); other backends
(Dask) get them with every job and install them once per worker process.
"""

import gc
import os
import pickle
import signal
import threading
import time
from dataclasses import dataclass
from typing import Any

from hydra.core.utils import run_job as hydra_run_job
from hydra.core.utils import setup_globals

from mlpsweep.launcher.compose import JobComposer
from mlpsweep.launcher.hydra_compat import hydra_state, install_hydra_state, job_scope
from mlpsweep.launcher.recovery import mark_running
from mlpsweep.launcher.returns import TravellingJobReturn
from mlpsweep.launcher.runjob import run_job

_installed = {"token": None}
_watching = False


@dataclass
class WorkerContext:
    """What a worker needs, sent once. `payload` is (HydraContext, task function, the
    sweep's config), cloudpickled: a worker unpickles it only after installing Hydra's
    state, because that re-imports the plugin modules (Hydra's plugin discovery executes
    them again), and objects unpickled before would refer to their stale classes."""

    token: str  # one per launch: a worker reused by a later launch installs afresh
    singleton_state: Any
    payload: bytes
    launcher_pid: int
    fast_run_job: bool = True  # ours (runjob.py), else Hydra's public run_job

    @classmethod
    def make(cls, token, hydra_context, task_function, master_config, fast_run_job=True):
        import cloudpickle  # the task function may live in __main__

        return cls(
            token=token,
            singleton_state=hydra_state(),
            payload=cloudpickle.dumps((hydra_context, task_function, master_config)),
            launcher_pid=os.getpid(),
            fast_run_job=fast_run_job,
        )


@dataclass
class Job:
    idx: int
    overrides: list
    context: WorkerContext | None = None  # None where the worker was given it at start
    marks: str | None = None  # where the job says it is running (recovery.py)


def install(context, local=None):
    """Set up this process for the launch `context` (once); `local` is the launcher's own
    (hydra_context, task_function, master_config), for jobs it runs itself."""
    if _installed["token"] != context.token:
        if local is None:
            setup_globals()
            install_hydra_state(context.singleton_state)
            local = pickle.loads(context.payload)  # imports the task's modules
            # Keep what was loaded out of the collector's full passes: a worker holds
            # millions of objects (Hydra, NumPy, pandas), which a full pass, every few
            # jobs, would walk for nothing.
            gc.freeze()
        hydra_context, task_function, master = local
        _installed.update(
            token=context.token,
            fast_run_job=context.fast_run_job,
            hydra_context=hydra_context,
            task_function=task_function,
            composer=JobComposer(hydra_context.config_loader, master),
        )


def run(job):
    """(job index, JobReturn) of one job, run by Hydra's run_job."""
    if job.context is not None:
        install(job.context)
    mark = mark_running(job.marks, job.idx)
    configs = _installed["composer"].job(job.overrides, job.idx)
    keys = {"job_dir_key": "hydra.sweep.dir", "job_subdir_key": "hydra.sweep.subdir"}
    if _installed["fast_run_job"]:
        context = _installed["hydra_context"]
        with job_scope(context):  # as Hydra's run_job (1.4)
            ret = run_job(context, _installed["task_function"], configs, **keys)
    else:
        ret = hydra_run_job(
            hydra_context=_installed["hydra_context"],
            task_function=_installed["task_function"],
            config=configs[0],
            **keys,
        )
    if mark is not None:
        mark.unlink(missing_ok=True)
    return job.idx, TravellingJobReturn.of(ret)


def prime(overrides):
    """Compose the base config of a job with `overrides` now (the warm-up, warmup.py),
    so that the first job does not wait for it."""
    _installed["composer"].task(overrides)
    gc.freeze()


def start_loky_worker(context):
    """Run by each loky worker as it starts (the executor's initializer).

    - Install the launcher's Hydra state once, not with every job.
    - Exit when the launching process dies (kill -9), rather than finish jobs nobody
      will collect and idle beside the rerun.
    - Ignore Ctrl-C and SIGTERM: the terminal sends SIGINT to the whole process group
      (SLURM and systemd send SIGTERM to every process of a job), and a worker stopped
      between two jobs would print loky's traceback, or look like a worker lost and
      have its job run again. The launching process handles them and stops its workers.
    """
    exit_with_parent(context.launcher_pid)  # first: installing takes a while
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # the terminal closing: the sweep decides
    install(context)


def exit_with_parent(parent):
    """Exit as soon as `parent` (the launching process) is not our parent any more (it
    died: the kernel gave us to init). Given, not read: it may have died already."""
    global _watching
    if _watching:
        return
    _watching = True

    def watch():
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(70)

    threading.Thread(target=watch, name="mlpsweep-parent-watch", daemon=True).start()
