"""A launch's WorkerContext handed to loky workers through a private file, not through
loky's start-up pipe.

loky starts a worker by writing its start-up data (the initializer's arguments among
them) into a pipe the new worker reads. If the worker dies as it starts and the data is
larger than a pipe holds (64 KiB on Linux; a context, Hydra's state and the sweep's
config, is several hundred KiB), that write waits forever: loky still holds the pipe's
read end itself. A path and a digest (~2 KiB of start-up data in all) always fit, so a
worker that dies as it starts costs nothing but itself.

The file lives in a folder of its own (mode 0700, named after this host and process:
temp_folders.py), read back without following a symbolic link and used only when its
SHA-256 is the one sent. It goes when the process exits; a folder left by a killed
process goes at the next launch. A worker that cannot read it (gone, changed) says so in
one line and exits; the launch sees a worker that died with no job, parks the context
again (engines.py) and goes on in new workers.

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

from mlpsweep.launcher.failures import EngineError
from mlpsweep.launcher.temp_folders import own_folder


@dataclass(frozen=True)
class Parked:
    """Where a launch's context waits for its workers, and the digest it must have."""

    path: str
    sha256: str


def park(context) -> Parked:
    """Write `context` (pickled) where this machine's workers can read it; EngineError
    (one line naming the folder) when the temp dir takes no write."""
    import cloudpickle  # Hydra's state holds resolvers that are local functions

    data = cloudpickle.dumps(context, protocol=pickle.HIGHEST_PROTOCOL)
    try:
        folder = own_folder("launch")
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
        path = os.path.join(folder, "context.pickle")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
    except OSError as e:
        raise EngineError(
            f"cannot write the launch's context into the temp dir {tempfile.gettempdir()} "
            f"({e.strerror or e}); free space there or point TMPDIR elsewhere"
        ) from None
    return Parked(path, hashlib.sha256(data).hexdigest())


def intact(parked: Parked) -> bool:
    """Whether the parked context is still there, as written."""
    try:
        unpark(parked, load=False)
    except (OSError, RuntimeError):
        return False
    return True


def unpark(parked: Parked, load=True):
    """The context `parked` (in a worker): read without following a link, verified."""
    fd = os.open(parked.path, os.O_RDONLY | os.O_NOFOLLOW)
    with os.fdopen(fd, "rb") as f:
        data = f.read()
    if hashlib.sha256(data).hexdigest() != parked.sha256:
        raise RuntimeError(f"{parked.path}: not the launch context that was written")
    return pickle.loads(data) if load else None
