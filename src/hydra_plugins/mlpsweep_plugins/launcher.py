"""hydra/launcher=mlpsweep: runs a sweep's jobs on joblib (loky by default, or dask).

Unlike the stock hydra-joblib-launcher (which hard-codes loky and composes every job's
config from scratch), the backend is selectable, jobs are composed once per distinct
config-group choice, results stream back as each job finishes, and BLAS threads per
worker are capped so that jobs x threads <= cores.
"""

from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from hydra.plugins.launcher import Launcher


@dataclass
class MlpsweepLauncherConf:
    _target_: str = "hydra_plugins.mlpsweep_plugins.launcher.MlpsweepLauncher"
    n_jobs: int = -1  # -1: all cores
    backend: str = "loky"  # any joblib backend: loky, threading, dask, ...
    scheduler: str | None = None  # dask: tcp://HOST:8786 (else $DASK_SCHEDULER_ADDRESS,
    #                               else a local cluster for the sweep)
    blas_threads: int | None = None  # per job; default cores // n_jobs (dask: 1)
    progress: bool = True
    joblib: dict[str, Any] = field(default_factory=dict)  # more joblib.Parallel arguments


ConfigStore.instance().store(
    group="hydra/launcher", name="mlpsweep", node=MlpsweepLauncherConf, provider="mlpsweep"
)


class MlpsweepLauncher(Launcher):
    def __init__(
        self,
        n_jobs=-1,
        backend="loky",
        scheduler=None,
        blas_threads=None,
        progress=True,
        joblib=None,
    ):
        self.n_jobs, self.backend, self.blas_threads = n_jobs, backend, blas_threads
        self.scheduler = scheduler
        self.progress = progress
        self.joblib_kwargs = dict(joblib or {})
        self.config = self.hydra_context = self.task_function = None

    def setup(self, *, hydra_context, task_function, config):
        self.hydra_context, self.task_function, self.config = hydra_context, task_function, config

    def launch(self, job_overrides, initial_job_idx):
        from mlpsweep.app.sweep import run_sweep

        return run_sweep(self, job_overrides)
