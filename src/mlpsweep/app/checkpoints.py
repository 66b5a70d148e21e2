"""A run's checkpoints as a job writes and reads them: the core's observer that writes
each TrainState to the run's folder, and the state a job continues from."""

import logging
import time

from mlpsweep.core.observe import TrainObserver, TrainState
from mlpsweep.records.checkpoint import read_checkpoint, write_checkpoint

log = logging.getLogger("mlpsweep")


class CheckpointWriter(TrainObserver):
    """Writes every checkpoint train() hands it into `run_dir` (atomically, checksummed).
    A checkpoint that cannot be written costs the run nothing but the checkpoint: one
    warning, and training goes on."""

    def __init__(self, run_dir, run_id):
        self.run_dir, self.run_id = run_dir, run_id
        self.failed = False
        self.written = 0
        self.seconds = 0.0

    def on_checkpoint(self, state: TrainState) -> None:
        t0 = time.perf_counter()
        try:
            write_checkpoint(self.run_dir, state, self.run_id)
            self.written += 1
        except OSError as e:
            if not self.failed:
                say(self.run_id, f"its checkpoint at step {state.step} was not written: {e}")
            self.failed = True
        self.seconds += time.perf_counter() - t0


def resume_point(run_dir, run_id) -> TrainState | None:
    """The newest checkpoint of the run that passes its checksum (None: from step 0),
    saying which ones were ignored and where the run continues."""
    state, skipped = read_checkpoint(run_dir, run_id)
    for problem in skipped:
        say(run_id, f"checkpoint ignored: {problem}")
    if state is not None:
        log.info(f"run {run_id}: continuing from its checkpoint at step {state.step}")
    elif skipped:
        say(run_id, "no usable checkpoint: trained from step 0")
    else:
        from mlpsweep.records import read_metrics

        before = read_metrics(run_dir)
        if before is not None and before.paused:  # its checkpoints went with its sweep's end
            say(
                run_id,
                f"paused at step {before.steps_done} with no checkpoint left (removed when "
                "its sweep ended): trained from step 0",
            )
    return state


def say(run_id, text):
    """A warning on the console and in the run's job.log (execute captures the log)."""
    log.warning(f"run {run_id}: {text}")
