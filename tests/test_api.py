"""The Python surface a notebook uses: mlpsweep.load and mlpsweep.train, without Hydra."""

import signal
import subprocess
import sys

import numpy as np
import pytest
from helpers import finished_runs, multirun, start_app, wait_for

import mlpsweep
from mlpsweep import records


def test_train_from_python_gives_the_sweeps_record_bit_for_bit(tmp_path):
    sweep = tmp_path / "sweep"
    multirun(sweep, "steps=60", "batch_size=10", "seed=3", "dtype=float64", "report=false")
    [run_id] = records.SweepManifest.read(sweep).run_ids
    recorded = records.read_history(records.run_dir(sweep, run_id))
    config = mlpsweep.TrainConfig(steps=60, batch_size=10, seed=3, dtype="float64")
    result = mlpsweep.train(config, mlpsweep.dataset("mnist_5k"))
    assert np.array_equal(result.train_loss, recorded["train_loss"].to_numpy())
    assert np.array_equal(result.loss_sampling_var, recorded["loss_sampling_var"].to_numpy())


def test_train_takes_a_mapping_of_knobs_and_says_in_one_line_what_it_wants(tiny_dataset):
    knobs = {"steps": 30, "batch_size": 10, "hidden_sizes": [16], "optimizer": {"name": "adam"}}
    typed = mlpsweep.TrainConfig(steps=30, batch_size=10, hidden_sizes=(16,), optimizer="adam")
    a, b = mlpsweep.train(knobs, tiny_dataset), mlpsweep.train(typed, tiny_dataset)
    assert np.array_equal(a.train_loss, b.train_loss)
    for bad, says in (({"batch": 10}, "unknown knob 'batch'"), ([10], "not a list")):
        with pytest.raises(TypeError, match=says) as e:
            mlpsweep.train(bad, tiny_dataset)
        assert "\n" not in str(e.value) and "TrainConfig" in str(e.value)


def test_a_loaded_sweeps_history_carries_its_dimensions_and_says_if_it_is_complete(tmp_path):
    multirun(tmp_path, "batch_size=10,100", "steps=20", "report=false")
    sweep = mlpsweep.load(tmp_path)
    assert sweep.dimensions == ("batch_size",) and sweep.complete and not len(sweep.unfinished)
    by_run = sweep.history.groupby("run_id")["batch_size"].nunique()
    assert set(sweep.history["batch_size"]) == {10, 100} and (by_run == 1).all()
    run_id = sweep.runs["run_id"].iloc[0]
    (records.run_dir(tmp_path, run_id) / "metrics.json").unlink()
    again = mlpsweep.load(tmp_path)
    assert not again.complete and list(again.unfinished["run_id"]) == [run_id]


def test_importing_mlpsweep_loads_neither_hydra_nor_pandas():
    code = "import sys, mlpsweep; print('hydra' in sys.modules, 'pandas' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.split() == ["False", "False"], out.stderr


@pytest.mark.slow
@pytest.mark.e2e
def test_load_reads_a_killed_sweep_in_a_notebook(tmp_path):
    """A sweep killed for real after two runs, no report: load() lists every planned run
    (finished or not) with its status, and the finished runs' histories."""
    args = ["-m", "seed=range(6)", "steps=400", "report=false"]
    proc = start_app(tmp_path, *args, start_new_session=True)
    wait_for(lambda: len(finished_runs(tmp_path)) >= 2 or proc.poll() is not None)
    import os

    os.killpg(proc.pid, signal.SIGKILL)  # the sweep and its workers
    proc.wait()
    [sweep_dir] = sorted((tmp_path / "results" / "adhoc").glob("*/"))
    assert not (sweep_dir / "report.html").exists()

    sweep = mlpsweep.load(sweep_dir)  # the three lines of the README's notebook example
    done = sweep.runs[sweep.runs["status"] == "ok"]
    curves = sweep.history.groupby("run_id")["train_loss"].mean()

    assert len(sweep.runs) == 6 and 2 <= len(done) <= 6
    assert set(sweep.runs["status"]) <= {"ok", "incomplete"}
    assert set(curves.index) == set(done["run_id"])
    assert {"seed", "final_train_loss", "spread_rel", "loss_sampling_var"} <= set(
        sweep.runs.columns
    ) | set(sweep.history.columns)
    assert sweep.study.replicate == "seed" and sweep.command
