"""A launch's folders in the temp dir (its running marks, its parked context): one per
process and kind, named after this machine and process, and removed when that process
is gone (a sweep killed with kill -9 cannot remove its own).

"Gone" is judged only for folders of this host and PID namespace: a temp dir shared
with another machine (TMPDIR on NFS) or another container sees pids that mean nothing
here, and removing a live sweep's folder would break it.
"""

import hashlib
import os
import shutil
import socket
import tempfile
from pathlib import Path

from mlpsweep.records.claim import pid_exists


def here() -> str:
    """A short tag of this host and PID namespace."""
    try:
        namespace = os.readlink("/proc/self/ns/pid")
    except OSError:
        namespace = ""
    return hashlib.sha256(f"{socket.gethostname()}|{namespace}".encode()).hexdigest()[:8]


def own_folder(kind: str) -> Path:
    """A new folder (mode 0700) of this process for `kind`, after removing the folders
    of that kind left by gone processes of this host."""
    remove_orphans(kind)
    return Path(tempfile.mkdtemp(prefix=f"mlpsweep-{kind}-{here()}-{os.getpid()}-"))


def remove_orphans(kind: str) -> None:
    prefix = f"mlpsweep-{kind}-{here()}-"
    for folder in Path(tempfile.gettempdir()).glob(f"{prefix}*-*"):
        pid = folder.name[len(prefix) :].split("-", 1)[0]
        if pid.isdigit() and not folder.is_symlink() and not pid_exists(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)
