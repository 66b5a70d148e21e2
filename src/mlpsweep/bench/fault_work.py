"""Where the fault bench's faults happen: a scratch folder with its sweeps and their logs
(Work), and what is counted afterwards (runs lost, damaged records read, runs trained
twice, files outside the results root)."""

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from mlpsweep import records
from mlpsweep.bench.launch import app_path
from mlpsweep.records import claim

TRAINED = re.compile(r"#\d+ (.+?): (?:ok|diverged) loss")
HUNG_S = 300.0  # a sweep of the bench's size that runs longer than this is hung
SWEEP = ["steps=1500", "batch_size=50", "eval_every=0", "report=false", "hydra.launcher.n_jobs=2"]


class Work:
    """A scratch folder where sweeps run, with their logs kept outside it."""

    def __init__(self, root, name):
        self.root = Path(root, name)
        self.cwd, self.logs = self.root / "work", self.root / "logs"
        self.cwd.mkdir(parents=True)
        self.logs.mkdir()
        self.texts, self.started, self.hung = [], 0, 0

    def start(self, *args):
        # Output to a file, not a pipe: a killed sweep's workers may hold a pipe open.
        self.started += 1
        log = self.logs / f"{self.started}.log"
        with open(log, "w") as f:
            proc = subprocess.Popen(
                [sys.executable, str(app_path()), *args],
                cwd=self.cwd,
                stdout=f,
                stderr=subprocess.STDOUT,
            )
        proc.log = log
        return proc

    def finish(self, proc, timeout=HUNG_S):
        """Wait for a sweep; one still running after `timeout` is hung: counted, then
        killed with its workers (the bench goes on)."""
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.hung += 1
            for pid in loky_children(proc.pid):
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
            proc.kill()
            proc.wait()
        self.texts.append(proc.log.read_text())
        return proc.returncode

    def run(self, *args):
        return self.finish(self.start(*args))

    def trained_twice(self):
        done = [m.group(1) for text in self.texts for m in TRAINED.finditer(text)]
        return len(done) - len(set(done))

    def outside_results(self):
        """Files anywhere around the work folder but in results/ (and our logs)."""
        keep = (self.cwd / "results", self.logs, self.root / "data")  # data: a dataset cache
        return [
            p
            for p in self.root.rglob("*")
            if not p.is_dir() and not any(k in p.parents for k in keep)
        ]


def sweep_dir(work):
    dirs = [p for p in (work.cwd / "results").glob("*/*/") if records.SweepManifest.exists(p)]
    return dirs[0] if len(dirs) == 1 else None


def lost_and_damaged(folder, expected):
    """(planned runs without a finished, intact record; records read as finished whose
    history is not what their metrics say)."""
    manifest = records.SweepManifest.read(folder)
    finished = damaged = 0
    for rid in manifest.run_ids:
        run = records.run_dir(folder, rid)
        metrics = records.read_metrics(run)
        if metrics is None or not metrics.finished:
            continue
        finished += 1
        try:
            damaged += len(records.read_history(run)) != metrics.steps_done
        except Exception:  # noqa: BLE001 - unreadable but taken as finished: that is the fault
            damaged += 1
    return expected - finished, damaged


def resume_until_done(work, args, tries=5):
    for _ in range(tries):
        if work.run(*args, "resume=true") == 0:
            return


def wait_for_claim(folder_of, proc, timeout=60):
    """The pid of a worker holding a claim (a job running), once there is one."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        folder = folder_of()
        for path in (folder / claim.CLAIMS).glob("*.json") if folder else []:
            holder = claim.read_claim(path)
            if holder and holder["pid"] != proc.pid and claim.pid_exists(holder["pid"]):
                return holder["pid"]
        time.sleep(0.02)
    return None


def loky_children(pid):
    """The loky worker processes whose parent is `pid` (Linux /proc)."""
    out = []
    for cmd in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if b"popen_loky" in cmd.read_bytes():
                stat = (cmd.parent / "stat").read_text()
                if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                    out.append(int(cmd.parent.name))
        except (OSError, ValueError, IndexError):
            continue
    return out
