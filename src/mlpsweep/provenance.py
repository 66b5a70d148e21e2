"""Where a report's numbers came from: when, which code, which machine, how much CPU."""

import datetime
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
    import numpy  # noqa: F401 - threadpoolctl sees only the BLAS libraries already loaded
    from threadpoolctl import threadpool_info

    for lib in threadpool_info():
        if lib.get("user_api") == "blas":
            kernel = lib.get("architecture")
            name = f"{lib.get('internal_api', '?')} {lib.get('version') or '?'}"
            return f"{name} ({kernel})" if kernel else name
    return "unknown"


@functools.cache
def blas_controller():
    """threadpoolctl's view of the loaded BLAS libraries, found once per process (finding
    them costs milliseconds; limiting and reading them through it does not)."""
    import numpy  # noqa: F401
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController().select(user_api="blas")


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


def provenance(sweep, runs):
    import os

    cpu = runs.get("train_seconds")
    job = runs.get("job_seconds")
    return {
        "report made": datetime.datetime.now().strftime("%Y-%m-%d %H:%M:%S"),
        "sweep started": sweep.started,
        "git commit": commits(sweep, runs),
        "arithmetic": arithmetic(runs),
        "BLAS": blas(runs),
        "python": platform.python_version(),
        "packages": ", ".join(f"{k} {v}" for k, v in versions().items()),
        "cpu": f"{cpu_model()}, {os.cpu_count()} cores",
        "training CPU time": f"{cpu.sum():.1f} s over {len(runs)} runs" if cpu is not None else "?",
        "job time (incl. data load, eval)": f"{job.sum():.1f} s" if job is not None else "?",
    }


def commits(sweep, runs):
    """The sweep's commit, and the others its runs were trained by (a resumed sweep)."""
    main = sweep.code or "not run from a git checkout"
    codes = runs["code"].dropna().unique() if "code" in runs else []
    others = sorted(str(c)[:12] for c in codes if c != sweep.code)
    if not others:
        return main
    return f"{main}; some runs were trained by another commit: {', '.join(others)}"


def arithmetic(runs):
    """How many runs each training step computed (fused float32 step or layer path)."""
    if "arithmetic" not in runs:
        return "?"
    counts = runs["arithmetic"].dropna().value_counts()
    names = {"fused": "fused float32 step", "layers": "layer path"}
    parts = [f"{names.get(k, k)}: {n} run{'s' * (n != 1)}" for k, n in counts.items()]
    return ", ".join(parts) or "?"


def blas(runs):
    """Which BLAS library, kernel and thread count computed the runs. Runs from more than
    one kernel (a sweep resumed or spread over other CPUs) agree only up to rounding."""
    done = runs[runs["blas"].notna()] if "blas" in runs else runs.iloc[:0]
    if done.empty:
        return "?"
    threads = done.get("blas_threads")
    labels = done["blas"].astype(str)
    if threads is not None:
        labels += threads.map(lambda n: f", {n:g} BLAS thread(s)" if n == n else "")
    text = "; ".join(f"{k}: {n} run{'s' * (n != 1)}" for k, n in labels.value_counts().items())
    if done["blas"].nunique() > 1:
        text += (
            ". These runs came from more than one BLAS kernel: their numbers agree only up "
            "to rounding, which a chaotic run amplifies"
        )
    return text or "?"
