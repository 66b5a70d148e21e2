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
