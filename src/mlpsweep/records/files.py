"""Files as the records layer writes and reads them: atomically written, and read only
when they are regular files (never through a symbolic link, never blocking on a FIFO,
never larger than a record's file can be)."""

import errno
import hashlib
import os
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

PathLike = str | os.PathLike  # a path as the records layer accepts one

_UMASK = os.umask(0)  # read once: mkstemp makes 0600 files, results should be 0666 & ~umask
os.umask(_UMASK)


def atomic_write(path: PathLike, write: Callable[[BinaryIO], object], durable: bool = True) -> None:
    """Write through a temporary file in the same folder, then rename: readers see the
    old file or the whole new one, never a partial one. `write(f)` writes to the open
    binary file. `durable` also fsyncs the data first, so that a power cut cannot leave
    the new name pointing at lost blocks."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_UMASK)
        with os.fdopen(fd, "wb") as f:
            write(f)
            if durable:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def regular(path: PathLike) -> PathLike:
    """`path` if it is a regular file (no symbolic link, FIFO or device), else OSError."""
    st = os.lstat(path)
    if not stat.S_ISREG(st.st_mode):
        raise OSError(errno.EINVAL, "not a regular file", str(path))
    return path


def read_regular(path: PathLike, limit: int) -> bytes:
    """The bytes of a regular file of at most `limit` bytes, opened without following a
    link or blocking on a FIFO."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_size > limit:
            raise OSError(errno.EINVAL, "not a record's file", str(path))
        with os.fdopen(fd, "rb", closefd=False) as f:
            return f.read(limit + 1)
    finally:
        os.close(fd)
