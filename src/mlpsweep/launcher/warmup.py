"""Start a sweep's workers while the sweep is still being planned.

A loky worker takes a while to become useful: the interpreter starts, imports Hydra,
NumPy and the task's modules, takes the launch's Hydra state and composes its first
job's config. Done before the first job, that wait is spread over every job of the
sweep (`mlpsweep bench launch` measures the total). Our sweeper's planner calls back
once the first job has composed and validated (most bad input, a bad key or value,
fails before that; the rest of planning, composing the other jobs, the memory and study
checks and the manifest, is main-process work), and the launcher starts its workers in
a thread; the launch joins that thread and finds joblib's reusable executor ready. Input
refused after that waits for the workers to start and still gives one line.

Only engines that say `warms_up` (loky): others have their own workers (a Dask cluster
is already running).
A warm-up that fails is forgotten: the launch starts its workers as it always did.
"""

import contextlib
import logging
import os
import signal
import sys
import threading
import time

log = logging.getLogger("mlpsweep")
STUCK_S = 15.0  # a warm-up still starting workers after this is stuck (many times the usual)


_live = set()  # warm-ups of this process not yet joined
_live_lock = threading.Lock()


def join_all():
    """Wait for every warm-up of this process: a launch must not remake joblib's
    executor while one is still submitting to it (they would deadlock)."""
    with _live_lock:
        live = list(_live)
    for warm in live:
        warm.join()


class WarmUp:
    def __init__(self, launcher, first_job, n_jobs):
        context, _ = launcher.context  # made here: the thread must not read the config
        self.thread = threading.Thread(
            target=self._run, args=(launcher, context, list(first_job), n_jobs), daemon=True
        )
        self.thread.name = "mlpsweep-warm-up"

    def start(self):
        with _live_lock:
            _live.add(self)
        self.thread.start()
        return self

    def join(self, stuck_s=None):
        """Wait for the warm-up; bounded: one stuck past `stuck_s` in loky's start of a
        worker that died as it started is unblocked (drain_stuck_launch); one stuck for
        another reason ends the sweep with one line rather than waiting forever."""
        self.thread.join(STUCK_S if stuck_s is None else stuck_s)
        if self.thread.is_alive() and drain_stuck_launch(self.thread):
            log.warning(
                "a worker died as it started, and its start-up would have waited forever: "
                "unblocked; its jobs are run by the other workers"
            )
            self.thread.join(STUCK_S if stuck_s is None else stuck_s)
        if self.thread.is_alive():
            raise RuntimeError(
                f"the workers did not start within {2 * (stuck_s or STUCK_S):.0f} s; "
                "rerun with resume=true (finished runs are kept)"
            )
        with _live_lock:
            _live.discard(self)

    @staticmethod
    def _run(launcher, context, first_job, n_jobs):
        from joblib import delayed

        from mlpsweep.launcher import worker
        from mlpsweep.launcher.engines import make_parallel

        try:
            with launcher.engine.start(launcher, context, n_jobs) as running:
                # One priming call per worker (each composes the first job's base config).
                make_parallel(launcher, running)(
                    delayed(worker.prime)(first_job) for _ in range(running.n_jobs)
                )
        except Exception as e:  # noqa: BLE001 - the launch starts workers itself
            log.debug(f"warm-up of the workers failed ({type(e).__name__}: {e})")


def drain_stuck_launch(thread):
    """Unblock `thread` if it is stuck in loky's start of a worker: writing the worker's
    start-up data into the pipe the worker should read, after the worker died (killed as
    it started; the data is larger than a pipe holds, and the parent itself still holds
    the read end, so the write waits forever). Reading that pipe's other end here lets
    the write finish; loky then sees the dead worker and the launch recovers from it.
    Returns whether there was such a write to unblock."""
    frame = sys._current_frames().get(thread.ident)
    while frame is not None and not (
        frame.f_code.co_name == "_launch" and "child_r" in frame.f_locals
    ):
        frame = frame.f_back
    if frame is None or frame.f_locals.get("child_r") is None:
        return False
    fd = frame.f_locals["child_r"]
    os.set_blocking(fd, False)
    while thread.is_alive() and _still_in(thread, frame):
        try:
            if not os.read(fd, 1 << 16):
                break
        except BlockingIOError:
            thread.join(0.01)
        except OSError:
            break
    return True


def _still_in(thread, target):
    frame = sys._current_frames().get(thread.ident)
    while frame is not None and frame is not target:
        frame = frame.f_back
    return frame is target


POLL_S = 1.0  # how often a launch's watch looks


class LaunchWatch:
    """A launch's waits, bounded from a thread of its own: a start-up write stuck on a
    worker that died as it started (in any thread: the launch's own, loky's manager
    replacing a dead worker) is unblocked after `stuck_s`; a worker process stopped
    (SIGSTOP, a frozen job: state T) for longer than `stopped_s` is killed, so that its
    job is a lost job, run again or failed (recovery.py), never a wait for ever. Each
    says so in one line naming what was waited for."""

    def __init__(self, stuck_s: float | None = None, stopped_s: float | None = None):
        self.stuck_s = STUCK_S if stuck_s is None else stuck_s
        self.stopped_s = stopped_s
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, name="mlpsweep-watch", daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.done.set()
        self.thread.join()

    def _run(self):
        stuck: dict = {}  # (thread id, frame id) -> when first seen writing start-up data
        stopped: dict = {}  # pid -> when first seen stopped
        while not self.done.wait(min(POLL_S, self.stuck_s / 2)):
            now = time.monotonic()
            self._unblock_start_ups(stuck, now)
            if self.stopped_s:
                self._kill_stopped(stopped, now)

    def _unblock_start_ups(self, stuck, now):
        for thread in threading.enumerate():
            frame = sys._current_frames().get(thread.ident)
            while frame is not None and not (
                frame.f_code.co_name == "_launch" and "child_r" in frame.f_locals
            ):
                frame = frame.f_back
            key = (thread.ident, id(frame))
            if frame is None:
                continue
            if now - stuck.setdefault(key, now) > self.stuck_s and drain_stuck_launch(thread):
                stuck.pop(key, None)
                log.warning(
                    f"a worker died as it started, and its start-up (in {thread.name}) "
                    f"waited {self.stuck_s:.0f} s on it: unblocked; its jobs go on"
                )

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
    from pathlib import Path

    return Path(f"/proc/{os.getpid()}/task").glob("*/children")


def process_state(pid: int) -> str | None:
    """The process's state letter (R, S, T, Z, ...), None when it is gone."""
    from pathlib import Path

    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return None
