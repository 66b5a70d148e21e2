"""tensorboard=true: each run's event file, read back with TensorBoard's own reader, and
the run's records bitwise those of the same sweep without it; `mlpsweep export
tensorboard` writes the same for a finished sweep."""

import numpy as np
import pandas as pd
import pytest
from helpers import multirun
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import metadata

from mlpsweep import records
from mlpsweep.app.tensorboard import FOLDER, export
from mlpsweep.records.run import read_config

SWEEP = ("batch_size=10,100", "steps=60", "eval_every=20", "report=false")
NUMBERS = ("status", "steps_done", "final_train_loss", "test_loss", "test_accuracy")


def read(run_dir):
    events = EventAccumulator(str(run_dir / FOLDER), size_guidance={"scalars": 0})
    events.Reload()
    scalars = {
        tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]
    }
    content = events.PluginTagToContent("hparams")
    start = metadata.parse_session_start_info_plugin_data(content[metadata.SESSION_START_INFO_TAG])
    hparams = {k: v.number_value or v.string_value for k, v in start.hparams.items()}
    return scalars, hparams, content


@pytest.mark.slow  # over 1.4 s: kept out of the one-minute quick suite
def test_live_event_files_hold_every_step_and_the_hparams_and_change_no_number(tmp_path):
    live, plain = tmp_path / "live", tmp_path / "plain"
    multirun(live, *SWEEP, "tensorboard=true")
    multirun(plain, *SWEEP)
    ids = records.SweepManifest.read(live).run_ids
    assert ids == records.SweepManifest.read(plain).run_ids  # not part of the run id
    exported = export(plain)
    assert exported == 2
    for run_id in ids:
        a, b = records.run_dir(live, run_id), records.run_dir(plain, run_id)
        history = records.read_history(a)
        pd.testing.assert_frame_equal(history, records.read_history(b), check_exact=True)
        ma, mb = records.read_metrics(a), records.read_metrics(b)
        assert [getattr(ma, k) for k in NUMBERS] == [getattr(mb, k) for k in NUMBERS]
        assert ma.overrides == mb.overrides  # tensorboard=true is not recorded

        scalars, hparams, content = read(a)
        steps, losses = zip(*scalars["train/loss"])
        assert steps == tuple(range(1, 61))  # every step, as it trained
        np.testing.assert_array_equal(
            np.float32(losses), history["train_loss"].to_numpy(np.float32)
        )  # TensorBoard keeps float32
        assert [s for s, _ in scalars["eval/test_loss"]] == [20, 40, 60]
        assert scalars["final/test_loss"] == [(60, np.float32(ma.test_loss))]
        assert {metadata.EXPERIMENT_TAG, metadata.SESSION_END_INFO_TAG} <= set(content)
        config = read_config(a)
        assert hparams == {k: float(config[k]) for k in ("batch_size", "steps", "eval_every")}

        # The export of the sweep that ran without it: the same curves and hparams.
        again, hparams_again, _ = read(b)
        assert again == scalars  # the export keeps the knobs that vary in the sweep:
        assert hparams_again == {"batch_size": hparams["batch_size"]}
