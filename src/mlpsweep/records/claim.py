"""Per-run claims: any number of processes (terminals, SLURM array tasks on a shared
filesystem) may sweep into one folder, and each run is trained by one of them at a time.

    <sweep dir>/claims/<run_id>.json    {"host", "pid", "token", "started", "timeout"};
                                        mtime = heartbeat

A claim is created exclusively (O_EXCL), kept fresh by a heartbeat thread while its run
trains, and deleted when the run's record is written (or its job gives up). A claim is
stale when its process is gone: on this host, when its pid no longer exists; anywhere,
when its heartbeat is older than the timeout its owner wrote into it (a second process
with a smaller `claim_timeout` judges by the owner's, so it never takes over a live
sweep's runs). A stopped process (SIGSTOP, a frozen machine) stops beating, so its runs
are taken over after its timeout. A claim that cannot be read (torn by a crash, not a
claim, the wrong types) or whose heartbeat is far in the future (clock skew) is stale
once it has been so for `torn_s` (30 s at most), measured by its ctime (which no utime
can set), so no such file makes anyone wait for ever. A stale claim is taken over, under a second
exclusive file so that two processes never both take it over, and the taker says so.
"""

import contextlib
import json
import logging
import os
import shutil
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

from mlpsweep.records.files import PathLike, guarded_create, guarded_mkdir, guarded_read

log = logging.getLogger("mlpsweep")

CLAIMS = "claims"
# How long a claim's heartbeat may be silent before others take it over: the
# `claim_timeout` knob, passed to each call as a value (and written into the claim).
STALE_S = 60.0  # its default: several missed heartbeats, the process (or machine) gone
MAX_TIMEOUT_S = 7 * 24 * 3600.0  # a claim's own timeout beyond this is not a claim's


def heartbeat_s(timeout_s: float) -> float:
    """How often a claim with this timeout is freshened: six beats per timeout."""
    return min(10.0, timeout_s / 6)


def torn_s(timeout_s: float) -> float:
    """How long (by its ctime) an unreadable or future-dated claim may stand before a
    process judging with this timeout calls it stale, not a write in progress."""
    return min(30.0, timeout_s)


# The claims this process holds, path -> (token, heartbeat interval): the one heartbeat
# thread keeps them fresh. Process state by nature (a claim is a process's), bounded by
# the runs its jobs are training.
_held: dict = {}
_lock = threading.Lock()
_beating = threading.Event()


WORKER_DIED = "its process died while training it: killed, preempted or out of memory?"


class RunBusy(RuntimeError):
    """The run is being trained by another live process (the message names it)."""


def claim_path(sweep_dir: PathLike, run_id: str) -> Path:
    return Path(sweep_dir) / CLAIMS / f"{run_id}.json"


@contextlib.contextmanager
def claim_run(sweep_dir: PathLike, run_id: str, timeout_s: float = STALE_S):
    """Hold the run's claim for the `with` block; RunBusy if another process holds it.
    Others may take it over once its heartbeat has been silent for `timeout_s`."""
    path = claim_path(sweep_dir, run_id)
    token = acquire(path, timeout_s)
    try:
        yield path
    finally:
        release(path, token)


def acquire(path, timeout_s: float = STALE_S):
    root = path.parent.parent  # the sweep's folder: claims/ may not be a link
    me = {"host": socket.gethostname(), "pid": os.getpid(), "token": uuid.uuid4().hex}
    me["started"] = time.strftime("%Y-%m-%d %H:%M:%S")
    me["timeout"] = float(timeout_s)  # others judge this claim by its owner's timeout
    for _ in range(5):
        try:
            guarded_mkdir(path.parent, root)
            guarded_create(path, json.dumps(me).encode(), root)
        except FileNotFoundError:  # claims/ was tidied away by a sweep that ended
            if not os.path.isdir(root):
                raise  # the sweep's folder itself is gone: said, never made again
            continue
        except FileExistsError:
            holder = read_claim(path)
            if holder is None and not _torn_stale(path, timeout_s):
                raise RunBusy("being claimed by another process") from None
            if holder is not None and is_alive(holder, path):
                raise RunBusy(f"being trained by pid {holder['pid']} on {holder['host']}") from None
            take_over(path, holder, timeout_s)
            continue
        _start_heartbeat()
        # Last, with nothing after it that runs Python code: an exception raised into
        # this thread from outside (a Dask job abandoned, dask_stop.py) lands in the
        # caller's `with`, whose exit releases the claim, never between the two.
        with _lock:
            _held[path] = (me["token"], heartbeat_s(timeout_s))
        return me["token"]
    raise RunBusy(f"{path}: claimed and released by others repeatedly; try again")


def holds(path: PathLike) -> bool:
    """Whether this process still holds the claim at `path` (the fence a result is
    published behind: a process stopped past the timeout has lost it to another)."""
    with _lock:
        token, _ = _held.get(path, (None, None))
    holder = read_claim(path)
    return token is not None and holder is not None and holder.get("token") == token


def release(path: Path, token: str) -> None:
    """Delete our claim (not one that another process took over as stale)."""
    with _lock:
        _held.pop(path, None)
    holder = read_claim(path)
    if holder is not None and holder.get("token") == token:
        path.unlink(missing_ok=True)


CLAIM_TYPES = {"host": str, "pid": int, "token": str}


def read_claim(path: PathLike) -> dict | None:
    """The claim's holder, or None when it is gone or not (yet) a readable claim (read
    guarded: a FIFO, a link or a huge file is not waited on or followed)."""
    path = Path(path)
    try:
        holder = json.loads(guarded_read(path, "claim", root=path.parent.parent))
    except (OSError, ValueError, RecursionError):
        return None
    if not isinstance(holder, dict):
        return None
    if any(type(holder.get(k)) is not t for k, t in CLAIM_TYPES.items()):
        return None  # (type(), not isinstance: True is not a pid)
    timeout = holder.get("timeout", STALE_S)
    if type(timeout) not in (int, float) or not 0 < timeout <= MAX_TIMEOUT_S:
        return None
    return holder


def _claim_files(sweep_dir: PathLike) -> list[Path]:
    """The claim files of a sweep (none through a linked claims/ folder)."""
    folder = Path(sweep_dir) / CLAIMS
    if folder.is_symlink():
        return []
    return sorted(folder.glob("*.json"))


def stale_claims(sweep_dir: PathLike, timeout_s: float = STALE_S) -> Iterator[tuple[str, Path]]:
    """(run_id, claim path) of the claims left behind by processes that are gone (each
    judged by its owner's timeout; one that cannot be read, by `timeout_s`)."""
    for path in _claim_files(sweep_dir):
        holder = read_claim(path)
        if holder is None and not _torn_stale(path, timeout_s):
            continue  # being written
        if holder is None or not is_alive(holder, path):
            yield path.stem, path


def live_claims(sweep_dir: PathLike, timeout_s: float = STALE_S) -> list[str]:
    """The run ids whose claims a live process holds (a job training them now)."""
    out = []
    for path in _claim_files(sweep_dir):
        holder = read_claim(path)
        if holder is None and not _torn_stale(path, timeout_s):
            out.append(path.stem)  # being written
        elif holder is not None and is_alive(holder, path):
            out.append(path.stem)
    return out


def _torn_stale(path: PathLike, timeout_s: float) -> bool:
    """Whether an unreadable claim has been so long enough to be a crash's, not a write
    in progress: by its ctime (set by the kernel on every change; no utime sets it)."""
    try:
        changed = os.lstat(path).st_ctime
    except OSError:
        return True
    return time.time() - changed > torn_s(timeout_s)


def remove(path: PathLike) -> None:
    """Remove a stale claim, whatever stands in its place: a file, a FIFO, a link (not
    what it points to) or a folder made there by hand (claims/ is the harness's own)."""
    path = Path(path)
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)  # (rmtree never follows a link inside)
    else:
        path.unlink(missing_ok=True)


def tidy(sweep_dir: PathLike) -> None:
    """Remove the claims folder when no claim is left in it."""
    with contextlib.suppress(OSError):
        (Path(sweep_dir) / CLAIMS).rmdir()


def _age(path):
    """Seconds since the file's last write or heartbeat (infinite when it is gone)."""
    try:
        return time.time() - Path(path).stat().st_mtime
    except OSError:
        return float("inf")


SKEW_S = 300.0  # a heartbeat this far in the future is a clock gone wrong, not a live job


def is_alive(holder: dict, path: PathLike) -> bool:
    """Whether the claim's owner is alive: judged by the timeout it wrote (not ours)."""
    age = _age(path)
    timeout = holder.get("timeout", STALE_S)
    if age > timeout or age < -SKEW_S:
        return False
    if holder.get("host") == socket.gethostname():
        return pid_exists(int(holder["pid"]))
    return True


def take_over(path, holder, timeout_s):
    """Remove a stale claim, once: the remover holds `<claim>.takeover` exclusively and
    checks that the claim is still the stale one it judged (one another process has
    made since is left alone)."""
    guard = path.with_suffix(".takeover")
    try:
        guarded_create(guard, b"", root=path.parent.parent)
    except FileExistsError:
        if _torn_stale(guard, timeout_s):  # its taker died meanwhile
            guard.unlink(missing_ok=True)
        raise RunBusy(f"{path.name}: another process is taking the stale claim over") from None
    try:
        now = read_claim(path)
        if holder is None:  # an old claim that cannot be read (torn by a crash)
            same = now is None
        else:
            same = now is not None and now.get("token") == holder.get("token")
        if same:
            why = _why_stale(holder, path, timeout_s)  # before the file (its age) goes
            remove(path)
            log.warning(f"{path}: {why}; its run is taken over")
    finally:
        guard.unlink(missing_ok=True)


def _why_stale(holder: dict | None, path: PathLike, timeout_s: float) -> str:
    if holder is None:
        return (
            f"a claim that cannot be read (torn, or not a claim) for over {torn_s(timeout_s):g} s"
        )
    age = _age(path)
    if age < -SKEW_S:
        return f"a claim whose heartbeat is {-age:.0f} s in the future (clock skew)"
    if age > holder.get("timeout", STALE_S):
        return (
            f"pid {holder['pid']} on {holder['host']} has not beaten for {age:.0f} s "
            f"(its timeout {holder.get('timeout', STALE_S):g} s): stopped or gone"
        )
    return f"pid {holder['pid']} on {holder['host']} is gone"


def pid_exists(pid: int) -> bool:
    """Whether process `pid` is running. A zombie (exited, not yet reaped by its parent:
    a worker killed under a process that has not waited for it) runs no job."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # Linux: the state after the command's closing parenthesis
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state != "Z"


def _start_heartbeat():
    with _lock:
        if _beating.is_set():
            return
        _beating.set()
    threading.Thread(target=_heartbeat, name="mlpsweep-claims", daemon=True).start()


def _heartbeat():
    """Freshen each claim held, as often as its own timeout needs. It wakes at least once
    a second, so a claim just taken (with any timeout) is never missed for long."""
    beaten: dict = {}  # path -> when this thread last freshened it
    while True:
        with _lock:
            held = dict(_held)
        time.sleep(min([1.0] + [beat for _, beat in held.values()]))
        now = time.monotonic()
        for path, (_, beat) in held.items():
            if now - beaten.get(path, 0.0) < beat:
                continue
            beaten[path] = now
            if holds(path):  # never freshen a claim another process has taken over
                with contextlib.suppress(OSError):
                    os.utime(path)
        for path in set(beaten) - set(held):
            del beaten[path]
