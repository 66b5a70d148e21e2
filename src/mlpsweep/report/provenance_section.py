"""Where a report's numbers came from, as its provenance section lists them: when, which
code, which machine, which arithmetic and BLAS, how much CPU (from the facts the runs
recorded: mlpsweep.provenance)."""

import datetime
import os
import platform

from mlpsweep.provenance import cpu_model, versions


def provenance(sweep, runs) -> dict:
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
