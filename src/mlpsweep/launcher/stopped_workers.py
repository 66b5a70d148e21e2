"""Workers stopped (SIGSTOP, a frozen job) during a launch are killed after a bound, so
that their jobs are lost jobs, run again or failed (recovery.py), never a wait for ever.
"""

import contextlib
import logging
import os
import signal
import threading
import time
from pathlib import Path

log = logging.getLogger("mlpsweep")

POLL_S = 1.0  # how often a launch's watch looks


class StoppedWorkerWatch:
    """A launch's waits, bounded from a thread of its own: a worker process stopped
    (SIGSTOP, a frozen job: state T) for longer than `stopped_s` is killed, so that its
    job is a lost job, run again or failed (recovery.py), never a wait for ever. It says
    so in one line."""

    def __init__(self, stopped_s: float | None = None):
        self.stopped_s = stopped_s
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, name="mlpsweep-watch", daemon=True)

    def __enter__(self):
        if self.stopped_s:
            self.thread.start()
        return self

    def __exit__(self, *exc):
        self.done.set()
        if self.thread.is_alive():
            self.thread.join()

    def _run(self):
        stopped: dict = {}  # pid -> when first seen stopped
        while not self.done.wait(POLL_S):
            self._kill_stopped(stopped, time.monotonic())

    def _kill_stopped(self, stopped, now):
        for pid in child_pids():
            if process_state(pid) not in ("T", "t"):
                stopped.pop(pid, None)
                continue
            if now - stopped.setdefault(pid, now) > self.stopped_s:
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
                stopped.pop(pid, None)
                log.error(
                    f"worker pid {pid} was stopped (SIGSTOP?) for over {self.stopped_s:g} s "
                    "(the claim timeout): killed; its job is taken over as a lost job"
                )


def child_pids() -> set[int]:
    """The pids of this process's children (Linux: every thread's children list)."""
    out = set()
    for path in _tasks():
        with contextlib.suppress(OSError, ValueError):
            out.update(int(p) for p in path.read_text().split())
    return out


def _tasks():
    return Path(f"/proc/{os.getpid()}/task").glob("*/children")


def process_state(pid: int) -> str | None:
    """The process's state letter (R, S, T, Z, ...), None when it is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return None
