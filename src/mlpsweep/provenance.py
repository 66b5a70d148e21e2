"""Facts recorded as a run trains: which code (git commit), which machine (CPU model),
which BLAS library, kernel and thread count, which package versions. The report's
provenance section (report/provenance_section.py) formats them."""

import functools
import platform
import subprocess
from importlib import metadata

PACKAGES = (
    "mlpsweep",
    "numpy",
    "pandas",
    "pyarrow",
    "matplotlib",
    "seaborn",
    "hydra-core",
    "omegaconf",
    "joblib",
    "threadpoolctl",
)


def _git(cwd, *args):
    out = subprocess.run(["git", *args], cwd=cwd, timeout=5, capture_output=True, text=True)
    return out.stdout.strip() if out.returncode == 0 else None


def git_commit(cwd):
    """The short commit of the checkout at `cwd`, marked when it has local changes."""
    try:
        commit = _git(cwd, "rev-parse", "--short", "HEAD")
        if commit is None:
            return None
        dirty = _git(cwd, "status", "--porcelain", "--untracked-files=no")
        return commit + (" (with uncommitted changes)" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


@functools.cache
def code_version():
    """The git commit of the code that runs (the checkout holding this package)."""
    from pathlib import Path

    return git_commit(Path(__file__).resolve().parent)


@functools.cache
def harness_version():
    """mlpsweep's own version (pyproject.toml's, as installed): a sweep's manifest records
    it, and sweeps merged into one dataset must share it (report/merge.py)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("mlpsweep")
    except PackageNotFoundError:  # a checkout on sys.path, not installed
        return "unknown"


@functools.cache
def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


@functools.cache
def blas_library():
    """'openblas 0.3.31 (SkylakeX)': the BLAS numpy calls and the kernel it picked for
    this CPU. Kernels round differently, so this belongs in every run's record."""
    from mlpsweep.core.blas import numpy_blas

    lib = numpy_blas()  # numpy's own, not scipy's beside it (which depends on imports)
    if lib is None:
        return "unknown"
    info = lib.info()
    kernel = info.get("architecture")
    name = f"{info.get('internal_api', '?')} {info.get('version') or '?'}"
    return f"{name} ({kernel})" if kernel else name


@functools.cache
def blas_controller():
    """threadpoolctl's view of the loaded BLAS libraries, found once per process (finding
    them costs milliseconds; limiting and reading them through it does not). The same
    one the training core's gemm update looks up."""
    from mlpsweep.core.blas import blas_libraries

    return blas_libraries()


def blas_threads():
    """The BLAS threads numpy's products run with in this process now."""
    counts = [lib.num_threads for lib in blas_controller().lib_controllers]
    return max(counts) if counts else None


def versions():
    out = {}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out
