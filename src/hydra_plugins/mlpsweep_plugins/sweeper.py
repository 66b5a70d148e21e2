"""hydra/sweeper=mlpsweep: Hydra's basic sweeper plus zipped (paired) parameters.

    hydra:
      sweeper:
        params: {batch_size: "10,100,1000", lr: "0.01,0.1,1.0", seed: "range(3)"}
        zip: [[batch_size, lr]]      # 3 pairs x 3 seeds = 9 jobs, not 27

Keys in one zip group advance together (their value lists must be equally long); every
other swept key is crossed with them as usual.

`recover` (a dotted path; default mlpsweep.app.plan.recover_lost_job) is called with
(config, batch, error) when the launcher raises for a batch (submitit does when one of
its jobs' processes died: killed, preempted, out of memory); it waits for the batch's
other jobs and returns, and the sweep goes on (the lost run is then a failed run), or
raises.

`planner` (a dotted path; default mlpsweep.app.plan.plan_sweep) is called
with (config, config_loader, jobs) before anything is launched and returns the jobs
to launch: it composes and validates every job (faster than the per-batch check of
Hydra's sweeper, which it replaces), writes the sweep's manifest and leaves out finished
runs. Whatever launcher runs the jobs, that has happened first.

A job whose return value has a true `retry_later` (another process is running the same
work: see mlpsweep.records.claim) is launched again after a pause, until none is left.
"""

import contextlib
import logging
import time
from dataclasses import dataclass
from pathlib import Path

from hydra.core.config_store import ConfigStore
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.utils import JobStatus
from hydra.utils import get_method
from omegaconf import OmegaConf

from mlpsweep.launcher.failures import LaunchFailure
from mlpsweep.launcher.hydra_compat import basic_sweeper, return_value, sweep_params
from mlpsweep.launcher.sweep_grid import zipped_product
from mlpsweep.records.sweep import MANIFEST


@dataclass
class MlpsweepSweeperConf:
    _target_: str = "hydra_plugins.mlpsweep_plugins.sweeper.MlpsweepSweeper"
    max_batch_size: int | None = None
    params: dict[str, str] | None = None
    zip: list[list[str]] | None = None
    # mlpsweep's own: every job checked before any starts; a lost job is a failed run.
    planner: str | None = "mlpsweep.app.plan.plan_sweep"
    recover: str | None = "mlpsweep.app.plan.recover_lost_job"


ConfigStore.instance().store(
    group="hydra/sweeper", name="mlpsweep", node=MlpsweepSweeperConf, provider="mlpsweep"
)
__all__ = ["MlpsweepSweeper", "MlpsweepSweeperConf", "zipped_product"]


def save_multirun_yaml(config, sweep_dir):
    """multirun.yaml, as Hydra's sweepers write it, but atomically: a full disk leaves no
    empty file (and no empty sweep folder) behind, only the error."""
    from mlpsweep.records.files import atomic_write
    from mlpsweep.records.layout import remove_if_empty

    sweep_dir.mkdir(parents=True, exist_ok=True)
    text = OmegaConf.to_yaml(config).encode()
    try:
        atomic_write(sweep_dir / "multirun.yaml", lambda f: f.write(text), durable=False)
    except OSError:
        remove_if_empty(sweep_dir, up_to=sweep_dir.parent.parent.parent)
        raise


def drop_unstarted(sweep_dir):
    """Remove a sweep folder this command made whose launch failed before any run was
    written (only its multirun.yaml, sweep.json and empty claims or runs folders): a
    rerun then starts clean."""
    from mlpsweep.records.layout import remove_if_empty

    for name in ("claims", "runs"):  # made by a job that stopped before it wrote anything
        folder = sweep_dir / name
        if folder.is_dir() and not folder.is_symlink():
            with contextlib.suppress(OSError):  # not empty: something was written
                folder.rmdir()
    remove_if_empty(
        sweep_dir, up_to=sweep_dir.parent.parent.parent, keep={"multirun.yaml", MANIFEST}
    )


def refuse_foreign_folder(sweep_dir):
    """BadInput (one line, exit 2) when hydra.sweep.dir is a folder of someone else's."""
    from mlpsweep.app.plan import BadInput
    from mlpsweep.records import MANIFEST
    from mlpsweep.records.layout import foreign_folder

    problem = foreign_folder(sweep_dir, MANIFEST)
    if problem is not None:
        raise BadInput(problem)


log = logging.getLogger("mlpsweep")
WAIT_S = (1.0, 15.0)  # first and longest pause before relaunching jobs run elsewhere


class MlpsweepSweeper(basic_sweeper()):
    def __init__(self, max_batch_size=None, params=None, zip=None, planner=None, recover=None):
        super().__init__(max_batch_size=max_batch_size, params=params)
        self.zip = [list(g) for g in (zip or [])]
        self.planner = planner
        self.recover = recover

    def sweep(self, arguments):
        params = sweep_params(self)
        params.extend(arguments)
        parser = OverridesParser.create(config_loader=self.hydra_context.config_loader)
        jobs = zipped_product(parser.parse_overrides(params), self.zip)
        all_jobs = list(jobs)  # (the planner leaves out finished runs; halving needs all)
        sweep_dir = Path(self.config.hydra.sweep.dir)
        refuse_foreign_folder(sweep_dir)  # before anything (multirun.yaml) is written
        fresh = not (sweep_dir / MANIFEST).exists()  # (its folder may be made already)
        halving = None
        if self.config.get("halving") is not None and self.planner:
            halving = self._halving_sweep(all_jobs)  # refused here: nothing written yet
        if not self.config.get("dry_run", False):  # a dry run writes nothing
            save_multirun_yaml(self.config, sweep_dir)
        if self.planner:
            jobs = get_method(self.planner)(self.config, self.hydra_context.config_loader, jobs)
        elif jobs:
            self.validate_batch_is_legal(jobs)  # Hydra's own check, as its sweeper does
        try:
            if halving is not None:
                return self._halving(halving)
            returns: list = []
            self._launch(jobs, returns, 0)
            return returns
        except BaseException as e:
            if fresh:  # e.g. an unreachable Dask scheduler: nothing ran, nothing stays
                drop_unstarted(sweep_dir)
                if isinstance(e, KeyboardInterrupt) and not sweep_dir.exists():
                    e.nothing_kept = True  # type: ignore[attr-defined]  # run_main says so
            raise

    def _halving_sweep(self, jobs):
        """The HalvingSweep of `jobs`: its block and every job checked (BadInput)."""
        from mlpsweep.app.halving import HalvingSweep, halving_spec

        return HalvingSweep(
            self.config, self.hydra_context.config_loader, jobs, halving_spec(self.config)
        )

    def _halving(self, rungs):
        """Successive halving (mlpsweep.app.halving): each rung is launched as a batch of
        its runs, each paused at the rung's steps; then the best go on to the next."""
        if self.config.get("dry_run", False):
            return []
        rungs.start()
        returns: list = []
        first = 0
        for k in range(len(rungs.rungs)):
            batch = rungs.to_launch(k)
            first = self._launch(batch, returns, first)
            rungs.decide(k)
        rungs.finish()
        return returns

    def _launch(self, jobs, returns, first):
        """Launch `jobs` in batches until none is left to retry (their results are
        appended to `returns`); returns the next job index."""
        pause = WAIT_S[0]
        while jobs:
            later = []
            for batch in self.split_overrides_to_chunks(jobs, self.max_batch_size):
                try:
                    results = self.launcher.launch(batch, initial_job_idx=first)
                except Exception as e:
                    if not self.recover:
                        raise
                    get_method(self.recover)(self.config, batch, e)
                    first += len(batch)
                    continue  # the batch's records say what became of its jobs
                for overrides, r in zip(batch, results):
                    if r.status != JobStatus.COMPLETED:
                        if isinstance(return_value(r), LaunchFailure):
                            continue  # reported by the launcher, not raised
                        raise return_value(r)  # the job's exception, as Hydra's sweeper
                    elif getattr(r.return_value, "retry_later", False):
                        later.append(overrides)
                first += len(batch)
                returns.append(results)
            if later:
                log.info(
                    f"{len(later)} jobs are run by another process; checking again in {pause:.0f} s"
                )
                time.sleep(pause)
                pause = min(pause * 2, WAIT_S[1])
            jobs = later
        return first
