"""A launch's WorkerContext handed to loky workers through a private file, not through
loky's start-up pipe.

loky starts a worker by writing its start-up data (the initializer's arguments among
them) into a pipe the new worker reads. If the worker dies as it starts and the data is
larger than a pipe holds (64 KiB on Linux; a context, Hydra's state and the sweep's
config, is several hundred KiB), that write waits forever: loky still holds the pipe's
read end itself. A path and a digest (~2 KiB of start-up data in all) always fit, so a
worker that dies as it starts costs nothing but itself.

The file lives in a folder of its own (mode 0700, named after this process), read back
without following a symbolic link and used only when its SHA-256 is the one sent. It
goes when the process exits; a folder left by a killed process goes at the next launch.

Sending the state once per worker earns 1.9 ms per job (2.4 strict) over sending it with
every job as Hydra's launchers do, which `hydra.launcher.no_shortcuts=[state_once]` does
(`mlpsweep bench launch`; shortcuts.py).
"""

import atexit
import hashlib
import os
import pickle
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

PREFIX = "mlpsweep-launch-"


@dataclass(frozen=True)
class Parked:
    """Where a launch's context waits for its workers, and the digest it must have."""

    path: str
    sha256: str


def park(context) -> Parked:
    """Write `context` (pickled) where this machine's workers can read it."""
    remove_orphans()
    folder = tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-")
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    import cloudpickle  # Hydra's state holds resolvers that are local functions

    data = cloudpickle.dumps(context, protocol=pickle.HIGHEST_PROTOCOL)
    path = os.path.join(folder, "context.pickle")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    return Parked(path, hashlib.sha256(data).hexdigest())


def unpark(parked: Parked):
    """The context `parked` (in a worker): read without following a link, verified."""
    fd = os.open(parked.path, os.O_RDONLY | os.O_NOFOLLOW)
    with os.fdopen(fd, "rb") as f:
        data = f.read()
    if hashlib.sha256(data).hexdigest() != parked.sha256:
        raise RuntimeError(f"{parked.path}: not the launch context that was written")
    return pickle.loads(data)


def remove_orphans() -> None:
    """Remove the context folders of processes that are gone (killed before exiting)."""
    for folder in Path(tempfile.gettempdir()).glob(f"{PREFIX}*-*"):
        pid = folder.name[len(PREFIX) :].split("-", 1)[0]
        if pid.isdigit() and not alive(int(pid)) and not folder.is_symlink():
            shutil.rmtree(folder, ignore_errors=True)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True
