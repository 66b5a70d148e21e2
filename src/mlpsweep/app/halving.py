"""Successive halving for our sweeper: which jobs each rung launches, and what it keeps.

Every run is the full-length run (steps = the last rung): a rung launches its runs with
pause_at=<rung steps>, so each trains on from its checkpoint at the rung before (never
from step 0) and pauses, with a record and a checkpoint, at this one. After a rung, the
rule in report/halving.py picks the configs that go on; the others keep their record at
the rung they stopped at. Everything is recomputed from the records, so a sweep killed
mid-halving and run again with resume=true goes on from the rung it reached: the runs
already there are not launched, and nothing is trained twice.
"""

import logging
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from omegaconf import OmegaConf

from mlpsweep import records
from mlpsweep.app.plan import BadInput, compose_all
from mlpsweep.core.target import eval_steps
from mlpsweep.launcher.compose import JobComposer
from mlpsweep.records.checkpoint import remove_checkpoints
from mlpsweep.records.halving import HalvingLog, HalvingSpec
from mlpsweep.report.collect import flatten
from mlpsweep.report.halving import ranking, value_at

log = logging.getLogger("mlpsweep")


@dataclass(frozen=True)
class HalvingJob:
    overrides: tuple  # the job's overrides, as the sweep lists it
    run_id: str
    config: str  # the config's label: its overrides but the replicate (seed)
    group: str  # its value of the dimension halving works within ("" without one)


def halving_spec(config) -> HalvingSpec | None:
    block = config.get("halving")
    if block is None:
        return None
    plain = OmegaConf.to_container(block, resolve=True) if OmegaConf.is_config(block) else block
    try:
        return HalvingSpec.from_dict(plain)
    except ValueError as e:
        raise BadInput(str(e)) from None


class HalvingSweep:
    """The rungs of one halving sweep over `jobs` (every job checked here first)."""

    def __init__(self, config, config_loader, jobs, spec: HalvingSpec):
        self.spec, self.sweep_dir = spec, Path(config.hydra.sweep.dir)
        specs = compose_all(JobComposer(config_loader, config), jobs)
        replicate = str((config.get("study") or {}).get("replicate") or "seed")
        # A config's label: the overrides that vary between jobs, but the replicate.
        fixed = set.intersection(*(set(o) for o in jobs)) if jobs else set()
        self.jobs, seen = [], set()
        for overrides, run in zip(jobs, specs):
            if run.run_id in seen:
                continue
            seen.add(run.run_id)
            flat = flatten(run.config)
            if spec.within is not None and spec.within not in flat:
                near = [k for k in flat if k.split(".")[0] == spec.within]
                hint = f" (did you mean {near[0]}?)" if near else ""
                raise BadInput(f"halving.within={spec.within}: not a setting of the runs{hint}")
            if spec.within is not None and spec.within == replicate:
                raise BadInput(
                    f"halving.within={spec.within}: the replicate, whose values are averaged "
                    "over, not a setting to keep a best config for; halve within a knob"
                )
            label = " ".join(
                o
                for o in overrides
                if o not in fixed and o.split("=", 1)[0].lstrip("+~") != replicate
            )
            group = "" if spec.within is None else str(flat[spec.within])
            self.jobs.append(HalvingJob(tuple(overrides), run.run_id, label, group))
        steps = {run.train.steps for run in specs}
        if len(steps) != 1 or (spec.max_steps is not None and steps != {spec.max_steps}):
            want = spec.max_steps or max(steps)
            raise BadInput(
                f"halving: every run must train halving.max_steps={want} steps (steps= "
                f"{sorted(steps)}): set steps={want}"
            )
        total = steps.pop()
        if spec.min_steps >= total:
            raise BadInput(
                f"halving.min_steps={spec.min_steps}: must be below the runs' steps={total}, "
                "or there is no rung to stop any run at"
            )
        self.rungs = spec.rungs(total)
        if spec.metric != "train_loss":
            for run in specs:
                t = run.train
                if eval_steps(t.steps, t.eval_every, t.eval_schedule)[0] > self.rungs[0]:
                    raise BadInput(
                        f"halving.metric={spec.metric} needs a test evaluation by the first "
                        f"rung ({self.rungs[0]} steps): set eval_every to at most "
                        f"{spec.min_steps}, or halving.metric=train_loss"
                    )
        before = HalvingLog.read(self.sweep_dir)
        if before is not None and (before.spec, before.rungs) != (spec, self.rungs):
            # its records were paused, promoted and stopped by the old rule: a new one
            # would mix two rules on one page and retrain what the old one stopped
            was = ", ".join(f"{k}: {v}" for k, v in vars(before.spec).items() if v is not None)
            raise BadInput(
                f"halving: this sweep was halved with {{{was}}} (rungs {before.rungs}); resume "
                "it with that block, or halve into a new folder"
            )
        self.log = HalvingLog(spec, self.rungs, configs={j.run_id: j.config for j in self.jobs})
        self.alive = list(self.jobs)

    def to_launch(self, k: int) -> list[list[str]]:
        """Rung k's jobs: its runs that have not reached its steps yet, each to pause there."""
        steps = self.rungs[k]
        todo = [
            j for j in self.alive
            if not records.is_finished(records.run_dir(self.sweep_dir, j.run_id), steps)
        ]  # fmt: skip
        done = len(self.alive) - len(todo)
        log.info(
            f"halving rung {k + 1} of {len(self.rungs)} ({steps} steps): {len(self.alive)} runs, "
            f"{len(todo)} to train" + (f", {done} there already" if done else "")
        )
        return [[*j.overrides, f"pause_at={steps}"] for j in todo]

    def decide(self, k: int) -> None:
        """After rung k: keep the best configs of each group (report/halving.py's rule)."""
        if k == len(self.rungs) - 1:
            return
        values = pd.DataFrame(
            [
                {"config": j.config, "group": j.group, **self._value(j, self.rungs[k])}
                for j in self.alive
            ]
        )
        keep = set(ranking(values, self.spec).query("promoted")["config"])
        self.alive = [j for j in self.alive if j.config in keep]
        del self.log.promoted[k:]
        self.log.promoted.append([j.run_id for j in self.alive])
        self.log.write(self.sweep_dir)
        goes = "1 config goes" if len(keep) == 1 else f"{len(keep)} configs go"
        log.info(f"halving: {goes} on to {self.rungs[k + 1]} steps")

    def _value(self, job, steps) -> dict:
        """{value: the metric at `steps`, reached: the step it stopped at its target, or
        NaN} for the ranking (report/halving.py)."""
        nan = float("nan")
        run_dir = records.run_dir(self.sweep_dir, job.run_id)
        metrics = records.read_metrics(run_dir)
        if metrics is None or not metrics.finished:
            return {"value": nan, "reached": nan}  # failed or lost: the worst
        try:
            history = records.read_history(run_dir)
        except OSError:
            return {"value": nan, "reached": nan}
        at_target = metrics.steps_to_target is not None and not metrics.paused
        value = value_at(history, self.spec.metric, steps, at_target)
        return {"value": value, "reached": metrics.steps_to_target if at_target else nan}

    def start(self) -> None:
        self.log.write(self.sweep_dir)

    def finish(self) -> None:
        """The sweep is done: the checkpoints of the runs it stopped early go (their
        records stay, paused at their rung)."""
        for job in self.jobs:
            remove_checkpoints(records.run_dir(self.sweep_dir, job.run_id))
