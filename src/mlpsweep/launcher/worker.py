"""What a worker does with a job: Hydra's `run_job` (runjob.py), as Hydra's launchers call it.

The worker needs the launcher's Hydra state (config store, job runtime, resolvers), the
HydraContext, the task function and the sweep's config, from which it composes each of
its jobs' configs (so composition runs in parallel, not serially in the launcher). A
loky worker gets them once, as it starts (the executor's initializer, through a file:
handover.py, with what that earns); other backends (Dask) get them with every job and
install them once per worker process.
"""

import gc
import os
import pickle
import signal
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any

from hydra.core.utils import run_job as hydra_run_job
from hydra.core.utils import setup_globals

from mlpsweep.launcher.compose import JobComposer
from mlpsweep.launcher.handover import unpark
from mlpsweep.launcher.hydra_compat import hydra_state, install_hydra_state, job_scope
from mlpsweep.launcher.recovery import mark_running
from mlpsweep.launcher.returns import TravellingJobReturn
from mlpsweep.launcher.runjob import run_job
from mlpsweep.launcher.shortcuts import SHORTCUTS

PARENT_WATCH = "mlpsweep-parent-watch"  # the thread that exits a loky worker whose launcher died


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
    shortcuts: frozenset[str] = frozenset(SHORTCUTS)  # those in use (shortcuts.py)

    @classmethod
    def make(cls, token, hydra_context, task_function, master_config, shortcuts=None):
        import cloudpickle  # the task function may live in __main__

        return cls(
            token=token,
            singleton_state=hydra_state(),
            payload=cloudpickle.dumps((hydra_context, task_function, master_config)),
            launcher_pid=os.getpid(),
            shortcuts=frozenset(SHORTCUTS if shortcuts is None else shortcuts),
        )


@dataclass(frozen=True)
class Installed:
    """A launch's state as set up in this process: what its jobs run with."""

    token: str
    hydra_context: Any
    task_function: Any
    composer: JobComposer
    shortcuts: frozenset[str]


# The launch this process works for, by token: a cache of one entry (a worker that a
# later launch reuses installs that launch's state in its place).
_launch_cache: dict[str, Installed] = {}


@dataclass
class Job:
    idx: int
    overrides: list
    token: str  # its launch's
    context: WorkerContext | None = None  # None where the worker was given it at start
    marks: str | None = None  # where the job says it is running (recovery.py)


def install(context, local=None) -> Installed:
    """Set up this process for the launch `context` (once); `local` is the launcher's own
    (hydra_context, task_function, master_config), for jobs it runs itself."""
    found = _launch_cache.get(context.token)
    if found is not None:
        return found
    if local is None:
        setup_globals()
        install_hydra_state(context.singleton_state)
        local = pickle.loads(context.payload)  # imports the task's modules
        # Keep what was loaded out of the collector's full passes: a worker holds
        # millions of objects (Hydra, NumPy, pandas), which a full pass, every few
        # jobs, would walk for nothing.
        gc.freeze()
    hydra_context, task_function, master = local
    found = Installed(
        token=context.token,
        hydra_context=hydra_context,
        task_function=task_function,
        composer=JobComposer(
            hydra_context.config_loader, master, reuse_bases="compose" in context.shortcuts
        ),
        shortcuts=context.shortcuts,
    )
    _launch_cache.clear()
    _launch_cache[context.token] = found
    return found


def installed(token) -> Installed:
    """The launch `token`'s state in this process (given at the worker's start)."""
    return _launch_cache[token]


def run(job):
    """(job index, JobReturn) of one job, run by Hydra's run_job."""
    launch = install(job.context) if job.context is not None else installed(job.token)
    mark = mark_running(job.marks, job.idx)
    configs = launch.composer.job(job.overrides, job.idx)
    keys = {"job_dir_key": "hydra.sweep.dir", "job_subdir_key": "hydra.sweep.subdir"}
    if "run_job" in launch.shortcuts:
        with job_scope(launch.hydra_context):  # as Hydra's run_job (1.4)
            ret = run_job(launch.hydra_context, launch.task_function, configs, **keys)
    else:
        ret = hydra_run_job(
            hydra_context=launch.hydra_context,
            task_function=launch.task_function,
            config=configs[0],
            **keys,
        )
    if mark is not None:
        mark.unlink(missing_ok=True)
    return job.idx, TravellingJobReturn.of(ret) if "lazy_returns" in launch.shortcuts else ret


def start_loky_worker(launcher_pid, parked=None):
    """Run by each loky worker as it starts (the executor's initializer).

    - Install the launcher's Hydra state once, not with every job (`state_once`).
    - Exit when the launching process dies (kill -9), rather than finish jobs nobody
      will collect and idle beside the rerun.
    - Ignore Ctrl-C and SIGTERM: the terminal sends SIGINT to the whole process group
      (SLURM and systemd send SIGTERM to every process of a job), and a worker stopped
      between two jobs would print loky's traceback, or look like a worker lost and
      have its job run again. The launching process handles them and stops its workers.
    """
    exit_with_parent(launcher_pid)  # first: installing takes a while
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # the terminal closing: the sweep decides
    if parked is not None:  # else it comes with every job
        try:
            context = unpark(parked)
        except (OSError, RuntimeError, pickle.UnpicklingError, EOFError) as e:
            # One line, then out: the launch sees a worker that died running no job,
            # parks the context again and starts others (handover.py).
            sys.stderr.write(f"mlpsweep: a worker could not read the launch's context: {e}\n")
            sys.stderr.flush()
            os._exit(75)
        install(context)


def exit_with_parent(parent):
    """Exit as soon as `parent` (the launching process) is not our parent any more (it
    died: the kernel gave us to init). Given, not read: it may have died already."""
    if any(t.name == PARENT_WATCH for t in threading.enumerate()):
        return  # watching already (a worker a later launch reuses)

    def watch():
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(70)

    threading.Thread(target=watch, name=PARENT_WATCH, daemon=True).start()
