"""hydra/launcher=mlpsweep: runs a sweep's jobs on joblib (loky by default, or dask).

Unlike the stock hydra-joblib-launcher (which hard-codes loky and composes every job's
config from scratch), the backend is selectable, jobs are composed once per distinct
config-group choice, results stream back as each job finishes, and each job runs on one
BLAS thread, so its numbers do not depend on how many jobs run at once.
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
    # BLAS threads per job. 1: a run's numbers then do not depend on n_jobs or the core
    # count (a product's rounding depends on how many threads split it).
    blas_threads: int = 1
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
        blas_threads=1,
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
