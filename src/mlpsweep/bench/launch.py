"""Sweep benchmarks: the launcher's overhead per job, and parallel efficiency.

launch    N jobs of `steps=1` through our launcher and through the stock
          hydra-joblib-launcher (same app, same machine, 2 workers each), in one run;
          per-job overhead = (wall(N jobs) - wall(1 job)) / (N - 1), so Python and
          Hydra start-up, planning and the report's fixed cost cancel out; also
          printed against a plain single run (the stricter reading: the report's fixed
          cost then counts too).
parallel  `+sweep=batch_oscillation` on all cores: its training phase's wall time next
          to the sum of its runs' whole jobs divided by the cores.
"""

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd


def app_path():
    here = Path.cwd() / "run.py"
    return here if here.is_file() else Path(__file__).resolve().parents[3] / "run.py"


def timed(args, cwd, output=None):
    """Wall seconds of `python run.py ARGS` in `cwd`; its output appended to `output`."""
    t0 = time.perf_counter()
    p = subprocess.run(
        [sys.executable, str(app_path()), *args], cwd=cwd, capture_output=True, text=True
    )
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed:\n{p.stderr[-2000:]}")
    if output is not None:
        output.append(p.stdout + p.stderr)
    return time.perf_counter() - t0


def stock_available():
    try:
        import hydra_plugins.hydra_joblib_launcher  # noqa: F401
    except ImportError:
        return False
    return True


def launch(n_jobs=200, rounds=3, out=print, shortcuts=True):
    """`shortcuts`: also time our launcher with each of its shortcuts turned off (what
    each departure from Hydra's public path earns: launcher/shortcuts.py)."""
    from mlpsweep.launcher.shortcuts import SHORTCUTS

    # The report is part of a sweep's end-to-end cost: it is built, as a user's would be.
    common = ["steps=1", "eval_every=0", "hydra.launcher.n_jobs=2"]
    setups = {"mlpsweep launcher": []}
    if shortcuts:
        for name in SHORTCUTS:
            setups[f"  without {name}"] = [f"hydra.launcher.no_shortcuts=[{name}]"]
    if stock_available():
        setups["stock hydra-joblib-launcher"] = ["hydra/launcher=joblib"]
    else:
        out("(stock launcher not installed: pip install hydra-joblib-launcher to compare)")
    out(
        f"launch overhead per job: wall({n_jobs} jobs) - wall(1 job), / {n_jobs - 1}; "
        f"2 workers, steps=1, each the best of {rounds}"
    )
    rows, strict, phases = {}, {}, None
    with tempfile.TemporaryDirectory() as tmp:
        # A plain single run (no -m: no planning, no report): the stricter baseline.
        single = min(timed(["steps=1", "eval_every=0"], tmp) for _ in range(rounds))
        best = {name: [float("inf"), float("inf"), ""] for name in setups}  # one, many, log
        # Rounds interleave the setups, 1 job and N jobs alternating: a shared machine's
        # noise only ever adds time, and drifts alike over every setup.
        for _ in range(rounds):
            for name, extra in setups.items():
                b = best[name]
                b[0] = min(b[0], timed(["-m", "seed=0", *common, *extra], tmp))
                logs = []
                wall = timed(["-m", f"seed=range({n_jobs})", *common, *extra], tmp, logs)
                if wall < b[1]:
                    b[1], b[2] = wall, logs[0]
        for name, (one, many, best_log) in best.items():
            if name == "mlpsweep launcher":
                phases = sweep_phases(best_log, many, tmp)
            per_job = (many - one) / (n_jobs - 1)
            rows[name] = per_job
            strict[name] = (many - single) / n_jobs
            out(
                f"  {name:30s} 1 job {one:6.2f} s, {n_jobs} jobs {many:7.2f} s: "
                f"{per_job * 1000:6.1f} ms per job, {strict[name] * 1000:6.1f} strict"
            )
    for name in SHORTCUTS:
        off = f"  without {name}"
        if off in rows:
            earns = (rows[off] - rows["mlpsweep launcher"]) * 1000
            earns_strict = (strict[off] - strict["mlpsweep launcher"]) * 1000
            out(
                f"  shortcut {name:13s} earns {earns:5.1f} ms per job, {earns_strict:5.1f} "
                f"strict (keep: >= 2 ms per job either way)"
            )
    ours = rows["mlpsweep launcher"]
    verdict = "met" if ours <= 0.020 else "MISSED"
    line = f"  target <= 20 ms per job: {verdict}"
    if len(rows) > 1:
        line += f"; the stock launcher is {rows['stock hydra-joblib-launcher'] / ours:.0f}x slower"
    out(line)
    out(
        f"  against a plain single run ({single:.2f} s: no planning, no report), / {n_jobs}: "
        + ", ".join(f"{name.strip()} {v * 1000:.1f} ms per job" for name, v in strict.items())
    )
    if phases is not None:
        wall, start, jobs, report, work = phases

        def ms(seconds):
            return f"{seconds / n_jobs * 1000:.1f} ms"

        out(
            f"  where our {n_jobs}-job sweep's {wall:.2f} s went: "
            f"start-up and planning {start:.2f} s, jobs {jobs:.2f} s, report {report:.2f} s"
        )
        out(
            f"  per job, against the plain single run: the runs' own work (data, training, "
            f"evaluation) over {os.cpu_count()} cores {ms(work)} + the report {ms(report)} "
            f"(a floor under any launcher: {ms(work + report)}) + each job's Hydra protocol "
            f"(its config, run_job, record, JobReturn) {ms(jobs - work)} + start-up and "
            f"planning beyond the single run's {ms(start - single)} = {ms(wall - single)}"
        )
    return rows


def sweep_phases(log, wall, cwd):
    """(wall, start-up and planning, jobs, report seconds; the runs' own work over the
    cores) of a sweep from its output, or None when its lines are not there."""
    import re

    ran = re.search(r"ran \d+ jobs in ([\d.]+) s", log)
    built = re.search(r"report: (\S+) \(built in ([\d.]+) s\)", log)
    if ran is None or built is None:
        return None
    jobs, report = float(ran.group(1)), float(built.group(2))
    runs = pd.read_parquet(Path(cwd, built.group(1)).parent / "runs.parquet")
    work = runs["job_seconds"].sum() / os.cpu_count()
    return wall, wall - jobs - report, jobs, report, work


def parallel(out=print):
    import re

    cores = os.cpu_count()
    logs = []
    with tempfile.TemporaryDirectory() as tmp:
        wall = timed(["-m", "+sweep=batch_oscillation"], tmp, logs)
        [sweep] = Path(tmp, "results", "batch_oscillation").glob("*/")
        runs = pd.read_parquet(sweep / "runs.parquet")
        n = len(runs)
    trained = float(re.search(r"ran \d+ jobs in ([\d.]+) s", logs[0]).group(1))
    report = float(re.search(r"built in ([\d.]+) s", logs[0]).group(1))
    train = runs["train_seconds"].sum()
    jobs = runs["job_seconds"].sum()  # training, evaluation, the probes, data loading
    ideal = jobs / cores
    verdict = "met" if trained <= 1.15 * ideal else "MISSED"
    out(
        f"batch_oscillation on {cores} cores, {n} runs: wall {wall:.1f} s = training phase "
        f"{trained:.1f} s + report {report:.1f} s + start-up {wall - trained - report:.1f} s"
    )
    out(
        f"  training phase / (sum of the runs' whole jobs {jobs:.1f} s / {cores}) = "
        f"{trained / ideal:.2f}x (target <= 1.15x: {verdict}); of those jobs, the training "
        f"steps themselves took {train:.1f} s (the rest: evaluation, the trajectory probe, "
        "data loading)"
    )
    return {"wall": wall, "trained": trained, "ideal": ideal}
