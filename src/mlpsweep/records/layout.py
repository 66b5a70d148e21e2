"""Where results go: fresh, exclusive folders that stay inside the results root.

Two commands started in the same second must never share a folder (the second would
overwrite the first and both would print the same path), so a folder is created with
an exclusive mkdir; when its name is taken, the next free `<name>_2`, `<name>_3`, ...
is created instead. Nothing is ever written into a folder another command made.
"""

import datetime
import re
import unicodedata
from pathlib import Path

from mlpsweep.records.files import PathLike

STAMP_FORMAT = "%Y-%m-%d_%H-%M-%S"
SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
MAX_NAME = 100  # characters: a folder name (most filesystems stop at 255 bytes)


class LayoutError(ValueError):
    """A name that would put results outside their root; one line."""


def check_name(name: str, what: str, root: PathLike) -> str:
    """`name` as a plain folder name (letters, digits, . _ -), else LayoutError."""
    name = str(name)
    if len(name) > MAX_NAME:
        raise LayoutError(
            f"{what}: {len(name)} characters, longer than a folder name may be here "
            f"(at most {MAX_NAME}); e.g. {what}={plain_name(name)}"
        )
    if not SAFE_NAME.fullmatch(name) or name in (".", ".."):
        plain = plain_name(name)
        hint = f" (e.g. {what}={plain})" if plain else ""
        raise LayoutError(
            f"{what}={name!r}: must be a plain folder name (letters, digits, . _ -), "
            f"as it names {root}/<{what}>/{hint}"
        )
    return name


def plain_name(name: str) -> str:
    """`name` as the nearest plain folder name ('étude' -> 'etude', 'a/b' -> 'a_b'), or ""
    where nothing of it is left."""
    ascii_ = unicodedata.normalize("NFKD", str(name)).encode("ascii", "ignore").decode()
    plain = re.sub(r"[^A-Za-z0-9._-]+", "_", ascii_.strip()).lstrip("._-")[:MAX_NAME]
    return plain if SAFE_NAME.fullmatch(plain) else ""


def fresh_dir(parent: PathLike, name: str | None = None) -> Path:
    """Create and return a new folder `parent`/`name` (default: the time, to the
    second) that no other command has: exclusive mkdir, `_2`, `_3`, ... on a clash."""
    parent = Path(parent)
    name = name or datetime.datetime.now().strftime(STAMP_FORMAT)
    parent.mkdir(parents=True, exist_ok=True)
    for n in range(1, 10_000):
        path = parent / (name if n == 1 else f"{name}_{n}")
        try:
            path.mkdir()
        except FileExistsError:
            continue
        return path
    raise LayoutError(f"{parent}: no free folder name for {name}")


def remove_if_empty(path: PathLike, up_to: PathLike, keep: tuple = ()) -> None:
    """Delete `path` if it holds nothing but the names in `keep` (what a refused command
    made), then its parents below `up_to` (kept) while they are empty."""
    path = Path(path)
    if not path.is_dir() or not {p.name for p in path.iterdir()} <= set(keep):
        return
    for p in path.iterdir():
        p.unlink()
    path.rmdir()
    stop = Path(up_to).resolve()
    for parent in path.resolve().parents:
        if parent == stop or stop not in parent.parents or any(parent.iterdir()):
            break
        parent.rmdir()


HYDRA_OWN = {"multirun.yaml", ".hydra"}  # what Hydra writes into a sweep folder itself


def foreign_folder(folder: PathLike, marker: str) -> str | None:
    """Why `folder` is not one a sweep may write into, or None: a sweep writes into a
    new (or empty) folder, or one holding its `marker` (sweep.json: a sweep of ours),
    never into a user's folder of other files (their summary.csv, report.html, ...)."""
    folder = Path(folder)
    if folder.is_symlink() and not folder.is_dir():
        return f"{folder}: a symbolic link to nothing, not a folder"
    if not folder.exists():
        return None
    if not folder.is_dir():
        return f"{folder}: exists and is not a folder"
    names = {p.name for p in folder.iterdir()}
    if names <= HYDRA_OWN or marker in names:
        return None
    shown = ", ".join(sorted(names - HYDRA_OWN)[:3]) + (", ..." if len(names) > 4 else "")
    return (
        f"hydra.sweep.dir={folder}: holds files that are not a sweep's ({shown}); a sweep "
        "never writes into a folder it did not make: name a new folder, or leave "
        "hydra.sweep.dir out for a fresh one"
    )
