"""Files under a sweep or cache folder, as the harness reads and writes them: the one
guarded read and the one guarded write. No other code opens those files.

The guarded read (`guarded_read`, `guarded_open`) takes a regular file only: no symbolic
link at any level below its root (the sweep or cache folder), opened without blocking
(a FIFO is refused, never waited on) and at most the size cap of its kind (a link to
/dev/zero, a huge sparse file, a folder: refused). Anything else is an UnsafeFile, an
OSError whose message is one line naming the path and what is wrong with it.

The guarded write (`guarded_write`, `guarded_mkdir`) refuses a symbolic link at any level
below the root (a `runs/` or `report/` linked elsewhere is never written through), writes
each file through a temporary file and a rename (readers see the old file or the new one
whole), and never creates the root itself (a sweep folder deleted mid-sweep is said, not
silently made again). Both walk the path from the root with directory file descriptors
(openat), so a link swapped in between the check and the use is not followed either.
"""

import contextlib
import errno
import hashlib
import os
import stat
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

PathLike = str | os.PathLike  # a path as the records layer accepts one

_UMASK = os.umask(0)  # read once: results are 0666 & ~umask, as open() would make them
os.umask(_UMASK)

KiB, MiB, GiB = 1 << 10, 1 << 20, 1 << 30
LIMITS = {  # kind of file -> the largest such file can be (larger: refused, never read)
    "claim": 64 * KiB,
    "metrics": 4 * MiB,
    "config": 4 * MiB,
    "manifest": 256 * MiB,  # sweep.json (tens of thousands of runs)
    "log": 256 * MiB,
    "history": GiB,
    "checkpoint": 8 * GiB,
    "cache-manifest": MiB,
    "cache-array": 8 * GiB,
    "dataset": GiB,  # a dataset's source file (IDX, gzip)
    "table": 4 * GiB,  # a report's tables (runs.parquet, histories.parquet, CSV)
}
_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


class UnsafeFile(OSError):
    """A file (or a folder on its path) the guarded read or write refuses; str() is one
    line naming the path."""

    def __init__(self, path: PathLike, what: str):
        super().__init__(errno.EPERM, what, str(path))

    def __str__(self) -> str:
        return f"{self.filename}: {self.strerror}"


def _kind_of(mode: int) -> str:
    for test, name in (
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISDIR, "a folder"),
        (stat.S_ISLNK, "a symbolic link"),
        (stat.S_ISCHR, "a device"),
        (stat.S_ISBLK, "a device"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return name
    return "not a regular file"


def _parts(path: Path, root: Path) -> list[str]:
    """The names of `path` below `root`; UnsafeFile if it is not below it."""
    try:
        rel = path.relative_to(root)
    except ValueError:
        raise UnsafeFile(path, f"outside its folder {root}") from None
    parts = list(rel.parts)
    if not parts or any(p in ("..", ".", "") for p in parts):
        raise UnsafeFile(path, f"not a file name below {root}")
    return parts


def _open_dir(name: str, dir_fd: int, path: Path, create: bool) -> int:
    """The fd of folder `name` in `dir_fd`, never through a symbolic link; made if
    `create` and missing."""
    try:
        return os.open(name, _DIR, dir_fd=dir_fd)
    except FileNotFoundError:
        if not create:
            raise
        with contextlib.suppress(FileExistsError):  # another process made it meanwhile
            os.mkdir(name, 0o777, dir_fd=dir_fd)
        return _open_dir(name, dir_fd, path, create=False)
    except OSError as e:
        if e.errno in (errno.ELOOP, errno.ENOTDIR):
            try:
                mode = os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode
            except OSError:
                mode = 0
            what = "a symbolic link" if stat.S_ISLNK(mode) else _kind_of(mode)
            raise UnsafeFile(path, f"{what} where a folder should be (not followed)") from None
        raise


@contextlib.contextmanager
def _folder(path: Path, root: Path, create: bool) -> Iterator[int]:
    """An fd of folder `path` (at or below `root`), walked from `root` with no symbolic
    link below it. The root must exist: it is never made here."""
    root = Path(root)
    try:
        fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise FileNotFoundError(errno.ENOENT, "the folder is gone", str(root)) from None
    try:
        if Path(path) != root:
            parts = _parts(Path(path), root)
            for i, name in enumerate(parts):
                sub = _open_dir(name, fd, root.joinpath(*parts[: i + 1]), create)
                os.close(fd)
                fd = sub
        yield fd
    finally:
        os.close(fd)


def _root_of(path: Path, root: PathLike | None) -> Path:
    return Path(path).parent if root is None else Path(root)


@contextlib.contextmanager
def guarded_open(path: PathLike, kind: str, root: PathLike | None = None) -> Iterator[BinaryIO]:
    """The open binary file `path` of the given kind (see LIMITS), below `root` (default:
    its own folder) with no symbolic link on the way; UnsafeFile when it is not a regular
    file of at most its kind's size. FileNotFoundError when it (or a folder) is missing."""
    path = Path(path)
    limit = LIMITS[kind]
    with _folder(path.parent, _root_of(path, root), create=False) as dir_fd:
        try:
            fd = os.open(path.name, _FILE, dir_fd=dir_fd)
        except OSError as e:
            if e.errno == errno.ELOOP:
                raise UnsafeFile(path, "a symbolic link (not followed)") from None
            if e.errno == errno.ENXIO:
                raise UnsafeFile(path, "a socket or FIFO, not a regular file") from None
            raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise UnsafeFile(path, f"{_kind_of(st.st_mode)}, not a regular file")
        if st.st_size > limit:
            raise UnsafeFile(path, f"{st.st_size} bytes, more than a {kind} file can be ({limit})")
        os.set_blocking(fd, True)
        f = os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
    with f:
        yield f


def guarded_read(path: PathLike, kind: str, root: PathLike | None = None) -> bytes:
    """The bytes of the regular file `path` (see guarded_open)."""
    with guarded_open(path, kind, root) as f:
        data = f.read(LIMITS[kind] + 1)
    if len(data) > LIMITS[kind]:  # it grew after it was looked at
        raise UnsafeFile(path, f"more than a {kind} file can be ({LIMITS[kind]} bytes)")
    return data


def guarded_mkdir(path: PathLike, root: PathLike, exclusive: bool = False) -> Path:
    """Make folder `path` and the folders between it and `root` (which must exist), none
    through a symbolic link. `exclusive`: FileExistsError if `path` exists already (where
    sharing a folder with another command would lose data)."""
    path, root = Path(path), Path(root)
    if path == root:
        if exclusive:
            raise FileExistsError(errno.EEXIST, "exists already", str(path))
        with _folder(root, root, create=False):
            return path
    with _folder(path.parent, root, create=True) as dir_fd:
        if exclusive:
            os.mkdir(path.name, 0o777, dir_fd=dir_fd)
        else:
            os.close(_open_dir(path.name, dir_fd, path, create=True))
    return path


def guarded_write(
    path: PathLike,
    data: bytes | Callable[[BinaryIO], object],
    root: PathLike | None = None,
    durable: bool = True,
) -> None:
    """Write `path` below `root` (default: its own folder), never through a symbolic link
    at any level below `root`: through a temporary file in the same folder, then a rename,
    so readers see the old file or the whole new one. `data` is the bytes, or a function
    that writes them to an open binary file. `durable` also fsyncs the data first, so that
    a power cut cannot leave the new name pointing at lost blocks. The folders between
    `root` and `path` are made as needed; `root` itself never is."""
    path = Path(path)
    with _folder(path.parent, _root_of(path, root), create=True) as dir_fd:
        tmp = f".{path.name}.{uuid.uuid4().hex[:8]}.tmp"
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(tmp, flags, 0o666 & ~_UMASK, dir_fd=dir_fd)
        try:
            with os.fdopen(fd, "wb") as f:
                if callable(data):
                    data(f)
                else:
                    f.write(data)
                if durable:
                    f.flush()
                    os.fsync(f.fileno())
            os.replace(tmp, path.name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp, dir_fd=dir_fd)
            raise


def guarded_create(path: PathLike, data: bytes, root: PathLike | None = None) -> None:
    """Create `path` below `root` exclusively (FileExistsError if anything, even a
    dangling link, has its name) and write `data` to it; the folders between are made as
    needed, none through a link. Claims and locks are made this way."""
    path = Path(path)
    with _folder(path.parent, _root_of(path, root), create=True) as dir_fd:
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(path.name, flags, 0o666 & ~_UMASK, dir_fd=dir_fd)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def guarded_exists(path: PathLike) -> bool:
    """Whether anything (a file, a link, a FIFO) has `path`'s name: what is there is
    the guarded read's to judge."""
    return os.path.lexists(path)


def atomic_write(
    path: PathLike,
    write: Callable[[BinaryIO], object],
    durable: bool = True,
    root: PathLike | None = None,
) -> None:
    """guarded_write with a writing function (the older name)."""
    guarded_write(path, write, root=root, durable=durable)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def regular(path: PathLike) -> PathLike:
    """`path` if it is a regular file (no symbolic link, FIFO or device), else OSError."""
    st = os.lstat(path)
    if not stat.S_ISREG(st.st_mode):
        raise UnsafeFile(path, f"{_kind_of(st.st_mode)}, not a regular file")
    return path


def read_regular(path: PathLike, limit: int) -> bytes:
    """The bytes of a regular file of at most `limit` bytes, opened without following a
    link or blocking on a FIFO (guarded_read with an explicit cap)."""
    fd = os.open(path, _FILE)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_size > limit:
            raise UnsafeFile(path, "not a record's file")
        with os.fdopen(fd, "rb", closefd=False) as f:
            return f.read(limit + 1)
    finally:
        os.close(fd)
