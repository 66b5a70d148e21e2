"""Find a dataset's files locally, or download them with pooch; verify them either way."""

import gzip
import hashlib
import os
import sys
from pathlib import Path

from mlpsweep.data.idx import DatasetError

ENV_DATA_DIR = "MLPSWEEP_DATA_DIR"


def data_root(data_dir=None):
    """The data directory: `data_dir` (a config key), else $MLPSWEEP_DATA_DIR, else the
    user cache dir (~/.cache/mlpsweep on Linux)."""
    if data_dir:
        return data_folder(data_dir, f"dataset.data_dir={data_dir}")
    if os.environ.get(ENV_DATA_DIR):
        return data_folder(os.environ[ENV_DATA_DIR], f"{ENV_DATA_DIR}={os.environ[ENV_DATA_DIR]}")
    import platformdirs  # what pooch.os_cache uses, without importing pooch and requests

    return Path(platformdirs.user_cache_dir("mlpsweep"))


def data_folder(value, named) -> Path:
    """`value` as a data folder, or ValueError in one line saying what is wrong with it:
    a ~user that does not exist (it would be a folder named "~user" here), or a path
    that is, or lies under, something other than a folder."""
    user = str(value).split("/")[0]
    try:
        path = Path(str(value)).expanduser()
    except RuntimeError:  # pathlib: no such user, or no home
        path = Path(str(value))
    if str(path).startswith("~"):
        raise ValueError(f"{named}: no home folder for {user}; name the folder in full")
    for part in (path, *path.parents):
        if part.is_symlink() or part.exists():
            if not part.is_dir():
                what = "is" if part == path else f"lies under {part}, which is"
                raise ValueError(
                    f"{named}: {what} not a folder; name a folder (or leave it out: "
                    f"{ENV_DATA_DIR} or the user cache folder)"
                )
            break
    return path


def sha256_file(path, decompress=False):
    from mlpsweep.records.files import guarded_open

    h = hashlib.sha256()
    with guarded_open(path, "dataset") as raw:  # a regular file: no link, FIFO or device
        f = gzip.GzipFile(fileobj=raw, mode="rb") if decompress else raw
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def is_genuine(path, spec):
    """The published file itself, or (when its content hash is known) any compression
    of the same bytes, as Debian's re-compressed Fashion-MNIST."""
    if sha256_file(path) == spec.sha256:
        return True
    if spec.content_sha256 is None:
        return False
    from mlpsweep.records.files import guarded_open

    with guarded_open(path, "dataset") as f:
        gzipped = f.read(2) == b"\x1f\x8b"
    try:
        return sha256_file(path, decompress=gzipped) == spec.content_sha256
    except (OSError, EOFError) as e:
        raise DatasetError(f"{path}: corrupted gzip stream ({e})") from None


def locate(source, data_dir=None):
    """role -> verified path of each of `source`'s files: from the data directory, a
    system directory, or downloaded into the data directory. Files that verified stay
    cached, so an interrupted fetch resumes where it stopped."""
    folder = data_root(data_dir) / source.name
    found = {}
    for role, spec in source.files.items():
        candidates = [
            folder / spec.filename,
            *(Path(d) / spec.filename for d in source.system_dirs),
        ]
        path = next((p for p in candidates if p.is_file()), None)
        if path is None:
            path = download(source, spec, folder)
        elif not is_genuine(path, spec):
            raise DatasetError(
                f"{path}: checksum mismatch: not the published {spec.filename} "
                "(delete it to download a fresh copy)"
            )
        found[role] = path
    return found


def download(source, spec, folder):
    """Fetch one file from the first mirror that delivers it intact. pooch downloads to
    a temporary file and keeps it only when the hash matches."""
    import pooch
    import requests

    pooch.get_logger().setLevel("WARNING")  # our own error says it all when a mirror fails
    folder.mkdir(parents=True, exist_ok=True)
    faults = []
    for mirror in source.mirrors:
        url = mirror + spec.filename
        try:
            path = pooch.retrieve(
                url,
                known_hash=f"sha256:{spec.sha256}",
                fname=spec.filename,
                path=folder,
                progressbar=sys.stderr.isatty(),
            )
            return Path(path)
        except ValueError as e:  # pooch's hash mismatch: the download was discarded
            faults.append(f"{url}: checksum mismatch ({str(e).splitlines()[0][:120]})")
        except (requests.RequestException, OSError) as e:
            faults.append(f"{url}: {type(e).__name__}")
    names = ", ".join(s.filename for s in source.files.values())
    raise DatasetError(
        f"dataset={source.name}: could not download {spec.filename} ({'; '.join(faults)}). "
        f"With no network, put {names} into {folder} (or point data_dir= or "
        f"${ENV_DATA_DIR} at a folder holding a {source.name}/ folder with them)"
    )
