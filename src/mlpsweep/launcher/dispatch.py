"""Launch a batch of jobs on a joblib backend: each worker composes its jobs' configs
(compose.py) and runs them with Hydra's run_job (runjob.py); results stream back as jobs
finish (progress bar, one log line per job, fail_fast); one JobReturn per job, in order."""

import contextlib
import logging
import sys
import time
import uuid
import warnings
from pathlib import Path

from hydra.core.utils import JobReturn, JobStatus, configure_log, filter_overrides, setup_globals
from omegaconf import OmegaConf

from mlpsweep.launcher import worker
from mlpsweep.launcher.engines import EngineLost, failed_return
from mlpsweep.launcher.failures import JobNotRun
from mlpsweep.launcher.hydra_compat import return_value
from mlpsweep.launcher.recovery import Recovery
from mlpsweep.launcher.stopped_workers import StoppedWorkerWatch

log = logging.getLogger("mlpsweep")


def make_context(launcher):
    """(WorkerContext, the launcher's own (hydra_context, task_function, config))."""
    cfg = launcher.config
    # Resolve the sweep folder first: its ${now:...} and our resolver cache their value,
    # and plain_copy carries the cache, so every job gets this one folder.
    sweep_dir = str(cfg.hydra.sweep.dir)
    master = plain_copy(cfg)
    if launcher.engine.remote_workers:
        # Workers elsewhere start in other folders: the sweep folder is the one seen
        # from here (it must be on a filesystem they share, as with submitit), as if
        # the command had said hydra.sweep.dir=<absolute path>.
        where = str(Path(sweep_dir).resolve()).replace("'", "\\'")
        master.hydra.overrides.hydra.append(f"hydra.sweep.dir='{where}'")
    local = (launcher.hydra_context, launcher.task_function, master)
    token = uuid.uuid4().hex
    return worker.WorkerContext.make(token, *local, shortcuts=launcher.shortcuts), local


def launch(launcher, job_overrides, initial_job_idx: int) -> list[JobReturn]:
    setup_globals()
    cfg = launcher.config
    configure_log(cfg.hydra.hydra_logging, cfg.hydra.verbose)
    Path(str(cfg.hydra.sweep.dir)).mkdir(parents=True, exist_ok=True)
    if not job_overrides:
        return []
    jobs = [list(overrides) for overrides in job_overrides]
    context, local = launcher.context
    worker.install(context, local)  # for jobs joblib runs in this process (a single job)
    returns = [None] * len(jobs)
    engine = launcher.engine
    stopped_s = getattr(launcher, "stopped_worker_s", None)
    with (
        StoppedWorkerWatch(stopped_s=stopped_s),
        Recovery(
            len(jobs), launcher.worker_loss_retries, initial_job_idx, engine.local_workers
        ) as plan,
    ):
        while True:
            batch, alone = plan.next_batch()
            if not batch:
                break
            try:
                with engine.start(launcher, context, 2 if alone else len(batch)) as running:
                    if stream(launcher, running, jobs, batch, returns, initial_job_idx, plan):
                        break  # fail_fast
            except engine.worker_died_errors() as e:
                plan.worker_died(batch, returns, jobs, e)
            except EngineLost as e:
                unfinished = [i for i in range(len(jobs)) if returns[i] is None]
                log.error(f"{e}: {len(unfinished)} jobs not run")
                for i in unfinished:
                    returns[i] = failed_return(jobs[i], JobNotRun(f"not run: {e}"))
                break
    configure_log(cfg.hydra.hydra_logging, cfg.hydra.verbose)
    for i, ret in enumerate(returns):
        if ret is None:
            returns[i] = not_run(job_overrides[i])
    return returns


def plain_copy(cfg):
    """The sweep's config as an untyped copy (with its resolver cache: ${now:...}). What
    Hydra hands over can hold classes of plugin modules that Hydra's plugin discovery has
    executed again since, which pickle refuses to send; the composer needs only values."""
    plain = OmegaConf.create(OmegaConf.to_container(cfg, resolve=False))
    OmegaConf.copy_cache(from_config=cfg, to_config=plain)
    return plain


def stream(launcher, running, jobs, batch, returns, first_idx, plan):
    """Run the jobs `batch` (indices into `jobs`), putting each JobReturn in `returns`
    as it arrives; True when fail_fast stopped it."""
    from tqdm import tqdm
    from tqdm.contrib.logging import logging_redirect_tqdm

    show = launcher.progress and sys.stderr.isatty()
    started, done = time.perf_counter(), 0
    token = launcher.context[0].token
    calls = (
        worker.Job(first_idx + i, jobs[i], token, running.job_context, plan.marks_dir)
        for i in batch
    )
    with tqdm(total=len(batch), unit="job", disable=not show, dynamic_ncols=True) as bar:
        try:
            # Log lines go around the bar only when there is one (it costs every line).
            redirect = logging_redirect_tqdm() if show else contextlib.nullcontext()
            with redirect, warnings.catch_warnings():
                # joblib warns when fail_fast abandons the queue: that is what was asked.
                warnings.filterwarnings("ignore", message=".*tasks which were still being")
                for idx, ret in launcher.engine.results(launcher, running, calls, worker.run):
                    returns[idx - first_idx] = ret
                    done += 1
                    bar.update()
                    log.info(f"#{idx} {' '.join(filter_overrides(ret.overrides))}: {summary(ret)}")
                    if launcher.fail_fast and failed(ret):
                        log.error(
                            f"fail_fast: stopping after the first failed job; "
                            f"{len(batch) - done} jobs not run"
                        )
                        return True
        except KeyboardInterrupt:
            bar.close()
            log.error(f"interrupted: {done} of {len(batch)} jobs finished")
            raise
    log.info(f"ran {done} job{'s' if done != 1 else ''} in {time.perf_counter() - started:.1f} s")
    return False


def failed(ret):
    """A job failed if it raised, or if its return value says so (a `failed` attribute
    that is true: how a task that records failures as data reports them)."""
    if ret.status != JobStatus.COMPLETED:
        return True
    return bool(getattr(return_value(ret), "failed", False))


def summary(ret):
    value = return_value(ret)
    if ret.status == JobStatus.COMPLETED:
        text = str(value)
        return text if len(text) <= 120 else text[:117] + "..."
    return f"FAILED {type(value).__name__}: {value}"


def not_run(overrides):
    return failed_return(
        overrides, JobNotRun("fail_fast stopped the sweep before this job started")
    )
