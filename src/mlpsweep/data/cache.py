"""Each full dataset is converted once from IDX into .npy files that workers open with
mmap_mode="r": the page cache then holds one copy of the images however many worker
processes train on them, and a warm load is a few header reads."""

import hashlib
import json
import os
import struct
from pathlib import Path

import numpy as np

from mlpsweep.data.dataset import fingerprint, make_dataset
from mlpsweep.data.idx import DatasetError, read_idx
from mlpsweep.data.sources import ROLES
from mlpsweep.records.files import guarded_mkdir, guarded_open, guarded_read, guarded_write

ARRAYS = ("x_train", "y_train", "x_test", "y_test")
MANIFEST = "manifest.json"
FORMAT = 2  # 2: with the IDX shapes, so the arrays verify against the published content


def arrays_from_idx(paths, num_classes):
    """(x_train, y_train, x_test, y_test) from the four IDX files, cross-checked, and
    the IDX shape of each."""
    raw = {role: read_idx(paths[role]) for role in ROLES}
    out, shapes = [], []
    for split in ("train", "test"):
        images, labels = raw[f"{split}_images"], raw[f"{split}_labels"]
        ipath, lpath = paths[f"{split}_images"], paths[f"{split}_labels"]
        if images.dtype != np.uint8 or images.ndim not in (2, 3):
            raise DatasetError(f"{ipath}: expected uint8 images, got {images.dtype} {images.shape}")
        if labels.ndim != 1 or labels.dtype != np.uint8:
            raise DatasetError(f"{lpath}: expected a uint8 label vector, got {labels.shape}")
        if len(images) != len(labels):
            raise DatasetError(
                f"{lpath}: image/label count mismatch: {len(images)} images in "
                f"{Path(ipath).name} but {len(labels)} labels"
            )
        if labels.size and labels.max() >= num_classes:
            raise DatasetError(
                f"{lpath}: labels outside 0-{num_classes - 1} (found {int(labels.max())})"
            )
        out += [images.reshape(len(images), -1), labels]
        shapes += [images.shape, labels.shape]
    return out, shapes


def load_cached(folder, source, data_dir=None):
    """The dataset from its .npy cache, or None when there is no complete, valid cache.
    Every file is read guarded (regular files only, no link below the data folder, size
    capped), and the arrays must hash to the published content of `source`'s files."""
    folder = Path(folder)
    root = folder.parent.parent  # the data folder: <root>/<name>/npy
    try:
        manifest = json.loads(guarded_read(folder / MANIFEST, "cache-manifest", root))
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
            return None
        arrays = [_load_npy(folder / f"{key}.npy", root) for key in ARRAYS]
        for key, a in zip(ARRAYS, arrays):
            if [list(a.shape), a.dtype.str] != manifest["arrays"][key]:
                return None
        fp = verified(folder, arrays, manifest["idx_shapes"], source, data_dir)
        if fp is None:
            return None  # changed since it was built: rebuilt from the verified source
        return make_dataset(source.name, *arrays, num_classes=source.num_classes, fp=fp)
    except (OSError, ValueError, KeyError, TypeError, RecursionError):
        return None


def _load_npy(path, root):
    """A read-only memmap of a .npy file opened guarded (np.load would follow a link)."""
    fmt = np.lib.format
    with guarded_open(path, "cache-array", root) as f:
        version = fmt.read_magic(f)
        read_header = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
        shape, fortran, dtype = read_header(f)
        if dtype.hasobject:
            raise ValueError("an object array")
        order = "F" if fortran else "C"
        return np.memmap(f, dtype=dtype, mode="r", offset=f.tell(), shape=shape, order=order)


# Bounded caches (a process sees a handful of dataset versions; the oldest entry goes):
# (folder, each file's inode, size, mtime, ctime) -> its fingerprint
_verified_cache: dict = {}
CACHE_ENTRIES = 16


def remember(cache: dict, key, value):
    """`value`, kept in `cache` under `key`; the oldest entries go past CACHE_ENTRIES."""
    cache[key] = value
    while len(cache) > CACHE_ENTRIES:
        cache.pop(next(iter(cache)))
    return value


def verified(folder: Path, arrays, idx_shapes, source, data_dir=None) -> str | None:
    """The arrays' fingerprint when each one is, byte for byte, the content of its
    source's published file (its IDX header and data hash to the published content
    checksum, or to that of the verified source file): never only to the cache's own
    manifest, which an edit of the arrays can rewrite too. None otherwise. Checked once
    per process and version of the files (a full hash is not free)."""
    stats = [os.stat(folder / f"{key}.npy", follow_symlinks=False) for key in ARRAYS]
    key = (str(folder), *((st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns) for st in stats))
    if key not in _verified_cache:
        expected = published_contents(source, data_dir)
        for role, key_, a in zip(ROLES, ARRAYS, arrays):
            dims = [int(d) for d in idx_shapes[key_]]
            if a.dtype != np.uint8 or int(np.prod(dims)) != a.size:
                return None
            header = struct.pack(f">BBBB{len(dims)}I", 0, 0, 0x08, len(dims), *dims)
            h = hashlib.sha256(header)
            h.update(np.ascontiguousarray(a).data)
            if h.hexdigest() != expected[role]:
                return None
        remember(_verified_cache, key, fingerprint(*arrays))
    return _verified_cache[key]


# A bounded cache: (source name, data dir, published hashes) -> role -> content sha256
_contents_cache: dict = {}


def published_contents(source, data_dir=None) -> dict:
    """role -> sha256 of the decompressed IDX bytes of `source`'s files: as published
    where known, else of the source files (located and verified against their published
    checksums, downloaded if they are gone)."""
    key = (source.name, str(data_dir), tuple(s.sha256 for s in source.files.values()))
    if key not in _contents_cache:
        out = {r: s.content_sha256 for r, s in source.files.items() if s.content_sha256}
        if len(out) < len(ROLES):
            from mlpsweep.data.fetch import locate, sha256_file

            paths = locate(source, data_dir)
            for role in ROLES:
                if role not in out:
                    with guarded_open(paths[role], "dataset") as f:
                        gzipped = f.read(2) == b"\x1f\x8b"
                    out[role] = sha256_file(paths[role], decompress=gzipped)
        remember(_contents_cache, key, out)
    return _contents_cache[key]


def build_cache(folder, source, arrays, idx_shapes, data_dir=None):
    """Write the .npy files, then the manifest last: its presence marks a complete cache.
    Guarded writes: nothing through a link below the data folder."""
    folder = Path(folder)
    root = folder.parent.parent
    root.mkdir(parents=True, exist_ok=True)
    guarded_mkdir(folder, root)
    for key, a in zip(ARRAYS, arrays):
        guarded_write(folder / f"{key}.npy", lambda f, a=a: np.save(f, a, allow_pickle=False), root)
    manifest = {
        "format": FORMAT,
        "arrays": {k: [list(a.shape), a.dtype.str] for k, a in zip(ARRAYS, arrays)},
        "idx_shapes": {k: list(shape) for k, shape in zip(ARRAYS, idx_shapes)},
    }
    guarded_write(folder / MANIFEST, json.dumps(manifest, indent=1).encode(), root)
    cached = load_cached(folder, source, data_dir)
    if cached is None:
        raise DatasetError(f"{folder}: the dataset cache just written does not read back")
    return cached
