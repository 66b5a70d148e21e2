"""Kill-and-resume measurement: a sweep SIGKILLed at random moments, resumed each time.

Reports jobs lost (runs without a result at the end), finished runs trained again (a run
whose result was logged by more than one attempt), and corrupted files read (a run taken
as finished whose files are inconsistent). Kills hit the sweep process alone, as a
user's `kill -9` does; its workers exit with it.
"""

import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from mlpsweep import records
from mlpsweep.bench.launch import app_path

TRAINED = re.compile(r"#\d+ (.+?): (?:ok|diverged) loss")


def snapshot(sweep):
    out = {}
    for run in (sweep / "runs").iterdir() if (sweep / "runs").exists() else []:
        if records.is_finished(run):
            out[run.name] = {p.name: p.read_bytes() for p in run.iterdir()}
    return out


def consistent(run):
    m = records.read_metrics(run)
    h = records.read_history(run)
    return m is not None and len(h) == m.steps_done and np.isfinite(h["train_loss"]).all()


def run(jobs=40, kills=10, seed=0, out=print):
    rng = random.Random(seed)
    args = [
        sys.executable,
        str(app_path()),
        "-m",
        f"seed=range({jobs})",
        "steps=300",
        "batch_size=50",
        "eval_every=0",
        "report=false",
        "resume=true",
    ]
    logs, done, changed, corrupted, attempts = [], {}, 0, 0, 0
    with tempfile.TemporaryDirectory() as tmp:
        killed = 0
        while True:
            attempts += 1
            # Output to a file, not a pipe: a killed sweep's workers hold a pipe open
            # until they notice (within 0.5 s, launcher.worker.exit_with_parent).
            log_path = Path(tmp, f"attempt{attempts}.log")
            log_file = open(log_path, "w")
            proc = subprocess.Popen(args, cwd=tmp, stdout=log_file, stderr=subprocess.STDOUT)
            if killed < kills:
                time.sleep(rng.uniform(1.0, 3.0))
                if proc.poll() is None:
                    os.kill(proc.pid, signal.SIGKILL)
                    killed += 1
            proc.wait()
            log_file.close()
            logs.append(log_path.read_text())
            sweeps = list(Path(tmp, "results", "adhoc").glob("*/"))
            if len(sweeps) != 1:
                raise RuntimeError(f"expected one sweep folder, found {len(sweeps)}")
            now = snapshot(sweeps[0])
            changed += sum(now.get(r) != files for r, files in done.items())
            corrupted += sum(not consistent(sweeps[0] / "runs" / r) for r in now)
            done = now
            if proc.returncode == 0 and killed >= kills:
                break
            if attempts > 4 * kills:
                raise RuntimeError("the sweep did not complete")
        # The launcher logs each job it ran: "#<n> <overrides>: ok loss ..." (once the
        # job's record is written). A run trained twice shows its overrides twice.
        finished_logs = [m.group(1) for log in logs for m in TRAINED.finditer(log)]
    lost = jobs - len(done)
    twice = len(finished_logs) - len(set(finished_logs))
    out(
        f"kill -9 at {killed} random moments over a {jobs}-job sweep, resumed {attempts - 1} times:"
    )
    out(f"  jobs lost: {lost} (target 0)")
    out(
        f"  finished runs trained again: {twice}; finished files changed: {changed} "
        "(target 0: only jobs in flight at a kill are redone)"
    )
    out(f"  corrupted files read as results: {corrupted} (target 0)")
    return {"lost": lost, "twice": twice, "changed": changed, "corrupted": corrupted}
