import numpy as np
import pytest

from mlpsweep.data import load_dataset, make_dataset


@pytest.fixture(scope="session")
def mnist_5k():
    return load_dataset("mnist_5k")


@pytest.fixture(scope="session")
def tiny_dataset():
    """A small separable 3-class problem in uint8 'pixels', fast to train on."""
    rng = np.random.default_rng(123)
    centers = rng.integers(0, 256, (3, 20))
    labels = rng.integers(0, 3, 600).astype(np.uint8)
    x = np.clip(centers[labels] + rng.normal(0, 30, (600, 20)), 0, 255).astype(np.uint8)
    return make_dataset("tiny", x[:500], labels[:500], x[500:], labels[500:], num_classes=3)


REPO = __import__("pathlib").Path(__file__).resolve().parent.parent


def run_app(cwd, *args, timeout=600, env=None):
    """`python run.py ARGS` in `cwd`, as a user would run it; returns the CompletedProcess."""
    import os
    import subprocess
    import sys

    environ = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    environ.update(env or {})
    __import__("pathlib").Path(cwd).mkdir(parents=True, exist_ok=True)
    return subprocess.run(
        [sys.executable, str(REPO / "run.py"), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=environ,
    )


def sweep_dirs(cwd, name="adhoc"):
    return sorted((__import__("pathlib").Path(cwd) / "results" / name).glob("*/"))


def wait_for_runs(cwd, n=1, timeout=120):
    """Poll until at least n runs under cwd/results have finished; return how many did."""
    import time

    deadline = time.time() + timeout
    while True:
        done = len(list(__import__("pathlib").Path(cwd).glob("results/*/*/runs/*/metrics.json")))
        if done >= n or time.time() > deadline:
            return done
        time.sleep(0.05)


def pytest_report_header(config):
    from mlpsweep.provenance import blas_library, cpu_model

    return f"BLAS: {blas_library()} on {cpu_model()}"
