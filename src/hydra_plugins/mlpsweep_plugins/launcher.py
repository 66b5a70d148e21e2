"""hydra/launcher=mlpsweep: a general Hydra launcher on joblib (mlpsweep.launcher).

Unlike the stock hydra-joblib-launcher (which hard-codes loky and composes every job's
config from scratch in the launching process): any joblib backend (Dask included), jobs
composed once per distinct config-group choice, the Hydra state sent to each worker once,
results streamed back as jobs finish with progress and one log line per job, fail_fast,
BLAS threads per worker capped so that workers x threads <= cores, and a worker that dies
(OOM killer) costing its job only, not the launch (recovery.py).
"""

from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from hydra.plugins.launcher import Launcher


@dataclass
class MlpsweepLauncherConf:
    _target_: str = "hydra_plugins.mlpsweep_plugins.launcher.MlpsweepLauncher"
    n_jobs: int = -1  # -1: all cores
    backend: str = "loky"  # any joblib process backend: loky, dask, multiprocessing, ...
    scheduler: str | None = None  # dask: tcp://HOST:8786 (else $DASK_SCHEDULER_ADDRESS,
    #                               else a local cluster for the sweep)
    blas_threads: int | None = None  # per worker; default cores // n_jobs
    fail_fast: bool = False  # stop at the first failed job (the rest are not run)
    # times a job is run again after its worker died under it (killed, out of memory);
    # by default the task config's `retries`, if it has one
    worker_loss_retries: int = "${oc.select:retries,0}"  # type: ignore[assignment]
    # a worker stopped (SIGSTOP, a frozen job) this long is killed, so its job is a lost
    # job and not a wait for ever; by default the task config's `claim_timeout`
    stopped_worker_s: float = "${oc.select:claim_timeout,60}"  # type: ignore[assignment]
    # dask: a cluster left with no worker this long fails the jobs not yet run (one
    # line; resume=true finishes them later), instead of a wait for ever
    no_workers_s: float = 120.0
    progress: bool = True  # a progress bar on a terminal
    joblib: dict[str, Any] = field(default_factory=dict)  # more joblib.Parallel arguments
    # the launcher's shortcuts to turn off, taking Hydra's public path instead (a
    # fallback should a Hydra release change what one mirrors): run_job, compose,
    # state_once, lazy_returns, or all (mlpsweep.launcher.shortcuts)
    no_shortcuts: list[str] = field(default_factory=list)


ConfigStore.instance().store(
    group="hydra/launcher", name="mlpsweep", node=MlpsweepLauncherConf, provider="mlpsweep"
)


class MlpsweepLauncher(Launcher):
    shows_progress = True  # a bar and a line per job: the JobProgress callback stays quiet

    def __init__(
        self,
        n_jobs=-1,
        backend="loky",
        scheduler=None,
        blas_threads=None,
        fail_fast=False,
        worker_loss_retries=0,
        progress=True,
        joblib=None,
        no_shortcuts=(),
        stopped_worker_s=60.0,
        no_workers_s=120.0,
    ):
        self.worker_loss_retries = worker_loss_retries
        self.stopped_worker_s = float(stopped_worker_s)
        self.no_workers_s = float(no_workers_s)
        from mlpsweep.launcher.engines import engine_for
        from mlpsweep.launcher.hydra_compat import warn_if_unchecked
        from mlpsweep.launcher.shortcuts import shortcuts_on

        warn_if_unchecked()
        self.engine = engine_for(backend)
        self.shortcuts = shortcuts_on(no_shortcuts)
        self.n_jobs, self.backend, self.blas_threads = n_jobs, backend, blas_threads
        self.scheduler, self.fail_fast, self.progress = scheduler, fail_fast, progress
        self.joblib_kwargs = dict(joblib or {})
        self.config = self.hydra_context = self.task_function = self._context = None

    def setup(self, *, hydra_context, task_function, config):
        self.hydra_context, self.task_function, self.config = hydra_context, task_function, config
        self._context = None

    @property
    def context(self):
        """What the workers need, made once per sweep (every batch reuses it)."""
        from mlpsweep.launcher.dispatch import make_context

        if self._context is None:
            self._context = make_context(self)
        return self._context

    def launch(self, job_overrides, initial_job_idx):
        from mlpsweep.launcher.dispatch import launch

        return launch(self, job_overrides, initial_job_idx)
