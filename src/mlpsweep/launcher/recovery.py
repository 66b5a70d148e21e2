"""A worker process that dies (the OOM killer, kill -9) costs its job, not the sweep.

loky reports a dead worker as a broken executor: every job in flight is lost, the dead
worker's and its siblings', and no one says which job was on the dead one. So each job
marks itself as running (a file named after it, in a folder of the launch's own) and
after a death the launcher knows the jobs that were running:
- one running job: the dead worker ran it; it is charged one death;
- several: each is run again alone (in a worker of its own) first, where a death is
  unambiguous; the others go on in parallel after that.
A job is retried after a death while its deaths <= `retries`; after that it fails with
WorkerLost ("worker died (killed? out of memory?)") and the sweep goes on without it.
"""

import logging
import shutil
from collections import Counter
from pathlib import Path

from hydra.core.utils import JobReturn, JobStatus

from mlpsweep.launcher.failures import WorkerLost
from mlpsweep.launcher.hydra_compat import return_value
from mlpsweep.launcher.temp_folders import own_folder

log = logging.getLogger("mlpsweep")
MAX_UNEXPLAINED = 3  # deaths with no job running (a worker that cannot start): give up


class Recovery:
    """Which jobs to run next: (batch of job indices, alone?) until none is left."""

    def __init__(self, n_jobs, retries, first_idx=0, local=True):
        self.todo, self.alone, self.first = list(range(n_jobs)), [], first_idx
        self.retries = max(0, int(retries or 0))
        self.deaths, self.unexplained = Counter(), 0
        if local:
            self.marks = own_folder("running")
        else:
            self.marks = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.marks is not None:
            shutil.rmtree(self.marks, ignore_errors=True)

    @property
    def marks_dir(self):
        return None if self.marks is None else str(self.marks)

    def next_batch(self):
        if self.alone:
            return [self.alone.pop(0)], True
        batch, self.todo = self.todo, []
        return batch, False

    def worker_died(self, batch, returns, overrides, error):
        """Account for a death during `batch`; fills `returns` for jobs that are out of
        retries. Re-raises `error` when deaths keep happening with no job running."""
        unfinished = [i for i in batch if returns[i] is None]
        marks = {i: self.marks / str(self.first + i) for i in unfinished} if self.marks else {}
        running = [i for i, mark in marks.items() if mark.exists()]
        for i in running:
            marks[i].unlink(missing_ok=True)
        if not running:
            self.unexplained += 1
            if self.unexplained > MAX_UNEXPLAINED:
                raise error
        if len(running) == 1:
            i = running[0]
            self.deaths[i] += 1
            if self.deaths[i] > self.retries:
                returns[i] = lost(overrides[i], self.deaths[i])
                what = " ".join(overrides[i])
                log.error(f"#{self.first + i} {what}: {return_value(returns[i])}")
            else:
                self.alone.append(i)
        else:
            self.alone.extend(running)
        self.todo = [i for i in unfinished if i not in running] + self.todo
        log.error(
            f"a worker died (killed? out of memory?) while {len(running)} jobs ran; "
            f"{len(self.todo) + len(self.alone)} jobs go on in new workers"
            + (" (the ones that were running, one at a time first)" if len(running) > 1 else "")
        )


def lost(overrides, deaths):
    ret = JobReturn(overrides=list(overrides), status=JobStatus.FAILED)
    times = "" if deaths == 1 else f" {deaths} times"
    ret.return_value = WorkerLost(f"worker died{times} (killed? out of memory?)")
    return ret


def mark_running(marks_dir, idx):
    """The file that says job `idx` is running (None when the launch keeps no marks)."""
    if marks_dir is None:
        return None
    mark = Path(marks_dir) / str(idx)
    mark.touch()
    return mark
