"""Report benchmark: build reports for synthetic sweeps of N runs x `steps` steps.

The sweeps are written by the record layer (the files a sweep leaves), with loss
curves shaped like real ones (decay + noise + occasional spikes), 5 seeds per config.
Each report is built by `mlpsweep report DIR` in a process of its own: Python's start-up
and the imports count, as a user waits for them.
"""

import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from mlpsweep import records
from mlpsweep.core import TrainConfig
from mlpsweep.core.status import Status


def synthetic_sweep(folder, n_runs, steps, seeds=5):
    rng = np.random.default_rng(0)
    folder = Path(folder)
    runs = []
    configs = max(1, n_runs // seeds)
    if configs >= 100:  # a large grid: 5 lr x 5 batch x 2 depth x 2 width
        grid = [
            (lr, b, d, w)
            for lr in np.geomspace(0.01, 1.0, 5)
            for b in [10, 30, 100, 300, 1000]
            for d in (1, 2)
            for w in (16, 32)
        ]
    else:
        lrs = np.geomspace(0.01, 1.0, max(1, int(np.sqrt(configs))))
        batches = [10, 30, 100, 300, 1000][: max(1, -(-configs // len(lrs)))]
        grid = [(lr, b, 2, 200) for lr in lrs for b in batches]
    grid = grid[:configs]
    for i in range(n_runs):
        lr, batch, depth, width = grid[i % len(grid)]
        seed = i // len(grid)
        tc = TrainConfig(
            lr=float(lr), batch_size=int(batch), seed=seed, steps=steps, depth=depth, width=width
        )
        rid = records.RunIdentity(tc, "mnist_5k", "synthetic").run_id
        t = np.arange(1, steps + 1)
        loss = 2.3 * np.exp(-t * lr / 50) + 0.05 + rng.normal(0, 0.3 / np.sqrt(batch), steps) ** 2
        loss[rng.integers(0, steps, 3)] *= 4
        ev = np.arange(100, steps + 1, 100)
        history = {
            "step": t,
            "examples_seen": t * batch,
            "train_loss": loss,
            "test_loss": np.full(steps, np.nan),
            "test_accuracy": np.full(steps, np.nan),
        }
        history["test_loss"][ev - 1] = loss[ev - 1] * 1.1
        history["test_accuracy"][ev - 1] = 1 - loss[ev - 1] / 3
        overrides = (f"lr={lr:g}", f"batch_size={batch}", f"depth={depth}", f"width={width}")
        overrides += (f"seed={seed}", f"steps={steps}")
        metrics = records.RunMetrics(
            run_id=rid,
            status=Status.OK,
            overrides=list(overrides),
            steps_done=steps,
            final_train_loss=float(loss[-1]),
            test_accuracy=float(1 - loss[-1] / 3),
            test_loss=float(loss[-1]),
            train_seconds=1.0,
            job_seconds=1.2,
        )
        config = {
            "lr": float(lr),
            "batch_size": int(batch),
            "seed": seed,
            "steps": steps,
            "depth": depth,
            "width": width,
            "optimizer": {"name": "sgd"},
        }
        records.write_run(folder / "runs" / rid, records.RunRecord(config, metrics, "", history))
        runs.append(records.PlannedRun(rid, overrides))
    records.SweepManifest(runs=runs, command="synthetic").write(folder)
    return folder


def run(sizes=(20, 200, 500), steps=1000, out=print):
    """`mlpsweep report DIR` as a user runs it, start-up included, on each size."""
    out(f"`mlpsweep report`, start-up included, on synthetic sweeps of {steps}-step runs")
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for n in sizes:
            folder = synthetic_sweep(Path(tmp) / f"s{n}", n, steps)
            t0 = time.perf_counter()
            done = subprocess.run(
                [sys.executable, "-m", "mlpsweep.cli", "report", str(folder)],
                capture_output=True,
                text=True,
            )
            seconds = time.perf_counter() - t0
            if done.returncode != 0:
                raise RuntimeError(f"mlpsweep report failed:\n{done.stderr[-2000:]}")
            path = folder / "report.html"
            target = 5 if n <= 20 else 30 if n <= 500 else None
            verdict = (
                ""
                if target is None
                else (f"  (target <= {target} s: {'met' if seconds <= target else 'MISSED'})")
            )
            out(
                f"{n:>5} runs: {seconds:6.2f} s, report.html {path.stat().st_size / 1e6:.1f} MB"
                f"{verdict}"
            )
            results[n] = seconds
    return results
