import os
import subprocess

import numpy as np
import pytest

from mlpsweep.data import load_dataset, make_dataset

if os.environ.get("PYTEST_XDIST_WORKER"):
    # The suite runs in one process per core (pytest-xdist, -n auto): one BLAS thread
    # each, or the workers' products fight over the cores. A test (or a run's
    # blas_threads) that asks for more gets them within its own limit.
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)


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


@pytest.fixture
def mount_tmpfs(tmp_path):
    """mount_tmpfs(size) -> a fresh tmpfs of that size (e.g. "48k"), unmounted after the
    test: a real filesystem to fill up or make read-only. Needs root (CI has it)."""
    mounted = []

    def mount(size):
        point = tmp_path / f"tmpfs{len(mounted)}"
        point.mkdir()
        p = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(point)],
            capture_output=True,
        )
        if p.returncode != 0:
            if os.environ.get("CI"):
                pytest.fail(f"cannot mount a tmpfs: {p.stderr.decode().strip()}")
            pytest.skip("mounting a tmpfs needs root")
        mounted.append(point)
        return point

    yield mount
    for point in mounted:
        subprocess.run(["umount", str(point)])


def pytest_report_header(config):
    from mlpsweep.provenance import blas_library, cpu_model

    return f"BLAS: {blas_library()} on {cpu_model()}"
