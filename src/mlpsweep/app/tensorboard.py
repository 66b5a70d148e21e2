"""TensorBoard event files for runs: live while a run trains (`tensorboard=true`), or
afterwards for a finished sweep (`mlpsweep export tensorboard DIR`), in the same place
and form, so that `tensorboard --logdir results/<sweep>` shows the sweep with its
HParams table.

Each run writes one event file in its record folder (runs/<run_id>/tensorboard/):
`train/loss` at every step, `eval/<name>` at each evaluation, and, in the same writer
(not add_hparams', which opens a sub-folder per call and splits a run in two), one
HParams session: the run's swept knobs and, when it ends, its final metrics
(`final/<name>`) and the oscillation parts that could be measured (`oscillation/<name>`,
by the report's own function, over the last half of the run's steps). The writer is
tensorboardX's (numpy and protobuf only); it only reads what train() reports, so a run's
numbers are the same with it or without it.
"""

import math
import shutil
import time
from pathlib import Path

from mlpsweep.core.observe import TrainObserver
from mlpsweep.core.status import Status

FOLDER = "tensorboard"  # in a run's record folder
FINAL = ("final_train_loss", "test_loss", "test_accuracy", "best_test_accuracy")
OSCILLATION = ("spread", "spread_rel", "spread_sampling_rel", "spread_trajectory_rel")
METRICS = tuple(f"final/{m}" for m in FINAL) + tuple(f"oscillation/{m}" for m in OSCILLATION)
FLUSH_STEPS = 100  # a live curve is at most this many steps (and flush_secs) behind
INSTALL = 'tensorboard=true needs tensorboardX: pip install -e ".[tensorboard]"'


def writer(run_dir):
    """A SummaryWriter on the run's tensorboard/ folder, emptied first (a run trained
    again, after a kill or a failed attempt, starts a fresh curve)."""
    try:
        from tensorboardX import SummaryWriter
    except ImportError:
        raise ImportError(INSTALL) from None
    folder = Path(run_dir) / FOLDER
    if folder.is_symlink():
        folder.unlink()  # never written through
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    # live: flushed every 5 s; a queue that holds a flush of pending steps without blocking
    return SummaryWriter(logdir=str(folder), flush_secs=5, max_queue=4 * FLUSH_STEPS)


def hparam_value(value):
    """What the HParams table takes: a number, a string or a bool."""
    if isinstance(value, (bool, int, float, str)):
        return value
    return "null" if value is None else str(value)


def swept_knobs(overrides, config):
    """{knob: value} of the run's knobs set on the command line (`batch_size=10` ->
    batch_size: 10, from the resolved config; a group such as `optimizer=adam` by its
    name); harness knobs (report=false) are not the run's, and are left out. A sweep's
    swept knobs are among them: the export, which sees the whole sweep, keeps only
    those that vary."""
    out = {}
    for text in overrides:
        key = text.split("=", 1)[0]
        if key.startswith(("+", "~", "hydra.")) or "=" not in text:
            continue
        node = config
        for part in key.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        if node is None:
            continue  # not a knob of the run's config
        if isinstance(node, dict):  # a group: its name
            node = node.get("name", text.split("=", 1)[1])
        out[key] = hparam_value(node)
    return out


class RunBoard(TrainObserver):
    """Writes one run's event file as it trains (train() calls it each step)."""

    def __init__(self, run_dir, hparams, stop_at_target=False):
        self.writer = writer(run_dir)  # first: it names the package if it is missing
        from tensorboardX.summary import hparams as hparams_summaries

        self.hparams, self.stop_at_target = dict(hparams), stop_at_target
        self.pending = []
        exp, ssi, self._end = hparams_summaries(self.hparams, dict.fromkeys(METRICS, 0.0))
        self.writer.file_writer.add_summary(exp)  # the table's columns
        self.writer.file_writer.add_summary(ssi)  # this run's row, from its start

    def on_step(self, step, train_loss):
        # Kept, then written every FLUSH_STEPS steps as bare protobuf events: half the
        # cost of add_scalar's checks per step (README: the cost per step).
        self.pending.append((step, train_loss, time.time()))
        if len(self.pending) >= FLUSH_STEPS:
            self.flush()

    def flush(self):
        if not self.pending:
            return
        from tensorboardX.proto.event_pb2 import Event
        from tensorboardX.proto.summary_pb2 import Summary

        add = self.writer.file_writer.add_event
        for step, loss, when in self.pending:
            value = Summary.Value(tag="train/loss", simple_value=loss)
            add(Event(wall_time=when, step=step, summary=Summary(value=[value])))
        self.pending.clear()

    def on_eval(self, step, values):
        self.flush()
        for name, value in values.items():
            self.writer.add_scalar(f"eval/{name}", value, step)

    def on_end(self, result):
        self.flush()
        parts = oscillation_parts(result, self.stop_at_target)
        finish(self.writer, result.summary(), parts, result.steps_done)
        self.writer.file_writer.add_summary(self._end)
        self.writer.close()

    def close(self):
        """For a run that raised: its curve so far stays readable."""
        self.flush()
        self.writer.close()


def finish(w, summary, oscillation, step):
    for name in FINAL:
        value = summary.get(name)
        if value is not None and math.isfinite(value):
            w.add_scalar(f"final/{name}", value, step)
    for name in OSCILLATION:
        value = oscillation.get(name)
        if value is not None and math.isfinite(value):  # NaN: not measured, not written
            w.add_scalar(f"oscillation/{name}", value, step)


def ended(status, steps_done, steps_to_target, stop_at_target, diverged_step):
    """Why a run's oscillation window cannot be measured (as report.not_measured.run_endings,
    for a run still in memory, as it ends)."""
    if status == Status.DIVERGED:
        return f"the run diverged at step {diverged_step}"
    if stop_at_target and steps_to_target == steps_done:
        return f"the run stopped at its target at step {steps_done}"
    return ""


def oscillation_parts(result, stop_at_target=False):
    """The report's oscillation metrics of a finished TrainResult (NaN where not measured)."""
    from mlpsweep.report.oscillation import oscillation

    why = ended(
        result.status,
        result.steps_done,
        result.steps_to_target,
        stop_at_target,
        result.diverged_step,
    )
    return oscillation(
        result.train_loss,
        sampling_var=result.loss_sampling_var,
        trajectory=result.trajectory_loss,
        ended=why,
    )


def export(sweep_dir) -> int:
    """Event files for every finished run of the sweep at `sweep_dir`, as tensorboard=true
    writes them live (an existing one is replaced); the number of runs written."""
    from tensorboardX.summary import hparams as hparams_summaries

    from mlpsweep import records
    from mlpsweep.report.collect import collect

    sweep_dir = Path(sweep_dir)
    tables = collect(sweep_dir, write=False)
    runs, history = tables.runs, tables.history
    # the sweep's dimensions: the config columns that vary
    swept = [c for c in tables.config_columns if runs[c].astype(str).nunique() > 1]
    written = 0
    for run in runs.to_dict("records"):
        if run["status"] not in records.FINISHED:
            continue
        steps = history[history["run_id"] == run["run_id"]]
        w = writer(records.run_dir(sweep_dir, run["run_id"]))
        hparams = {k: hparam_value(run.get(k)) for k in swept}
        exp, ssi, sei = hparams_summaries(hparams, dict.fromkeys(METRICS, 0.0))
        w.file_writer.add_summary(exp)
        w.file_writer.add_summary(ssi)
        for step, loss in zip(steps["step"], steps["train_loss"]):
            w.add_scalar("train/loss", float(loss), int(step))
        evals = steps.dropna(subset=["test_loss"]) if "test_loss" in steps else steps[:0]
        for row in evals.to_dict("records"):
            for name in ("test_loss", "test_accuracy", "grad_norm_sq", "trace_cov", "b_simple"):
                if name in row and row[name] == row[name]:
                    w.add_scalar(f"eval/{name}", float(row[name]), int(row["step"]))
        # the oscillation as collect measured it (report/collect.py): not computed again
        finish(w, run, run, int(run.get("steps_done") or 0))
        w.file_writer.add_summary(sei)
        w.close()
        written += 1
    return written
