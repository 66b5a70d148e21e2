"""Each full dataset is converted once from IDX into .npy files that workers open with
mmap_mode="r": the page cache then holds one copy of the images however many worker
processes train on them, and a warm load is a few header reads."""

import json
import os
from pathlib import Path

import numpy as np

from mlpsweep.data.dataset import fingerprint, make_dataset
from mlpsweep.data.idx import DatasetError, read_idx
from mlpsweep.data.sources import ROLES
from mlpsweep.records.files import atomic_write

ARRAYS = ("x_train", "y_train", "x_test", "y_test")
MANIFEST = "manifest.json"
FORMAT = 1


def arrays_from_idx(paths, num_classes):
    """(x_train, y_train, x_test, y_test) from the four IDX files, cross-checked."""
    raw = {role: read_idx(paths[role]) for role in ROLES}
    out = []
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
    return out


def load_cached(folder, name, num_classes):
    """The dataset from its .npy cache, or None when there is no complete, valid cache."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
        if manifest.get("format") != FORMAT:
            return None
        arrays = []
        for key in ARRAYS:
            a = np.load(folder / f"{key}.npy", mmap_mode="r", allow_pickle=False)
            if [list(a.shape), a.dtype.str] != manifest["arrays"][key]:
                return None
            arrays.append(a)
        if not verified(folder, arrays, manifest["fingerprint"]):
            return None  # changed since it was built: rebuilt from the verified source
    except (OSError, ValueError, KeyError):
        return None
    return make_dataset(name, *arrays, num_classes=num_classes, fp=manifest["fingerprint"])


_verified = set()  # (folder, each file's inode, size and mtime) whose content matched


def verified(folder: Path, arrays: dict, expected: str) -> bool:
    """Whether the cached arrays hash to the fingerprint they were built with: checked
    once per process and version of the files (a full hash of the full datasets is not
    free), so a damaged or edited cache never counts."""
    stats = [os.stat(folder / f"{key}.npy") for key in ARRAYS]
    key = (str(folder), *((st.st_ino, st.st_size, st.st_mtime_ns) for st in stats))
    if key not in _verified:
        if fingerprint(*arrays) != expected:
            return False
        _verified.add(key)
    return True


def build_cache(folder, name, arrays, num_classes):
    """Write the .npy files, then the manifest last: its presence marks a complete cache."""
    folder.mkdir(parents=True, exist_ok=True)
    for key, a in zip(ARRAYS, arrays):
        atomic_write(folder / f"{key}.npy", lambda f, a=a: np.save(f, a, allow_pickle=False))
    manifest = {
        "format": FORMAT,
        "fingerprint": fingerprint(*arrays),
        "arrays": {k: [list(a.shape), a.dtype.str] for k, a in zip(ARRAYS, arrays)},
    }
    atomic_write(folder / MANIFEST, lambda f: f.write(json.dumps(manifest, indent=1).encode()))
    return load_cached(folder, name, num_classes)
