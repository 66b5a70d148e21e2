"""The in-memory form every dataset takes, and its content fingerprint."""

import hashlib
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Dataset:
    name: str
    x_train: np.ndarray  # (n, input_size) uint8, maybe a read-only memmap
    y_train: np.ndarray  # (n,) uint8 class indices
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int
    fingerprint: str  # sha256 of the four arrays' shapes, dtypes and bytes

    @property
    def input_size(self) -> int:
        return self.x_train.shape[1]

    @property
    def train_size(self) -> int:
        return len(self.y_train)


def fingerprint(*arrays: np.ndarray) -> str:
    """A content hash: equal for equal data whatever file or format it came from."""
    h = hashlib.sha256()
    for a in arrays:
        h.update(f"{a.dtype.str}{a.shape};".encode())
        h.update(np.ascontiguousarray(a).data)
    return h.hexdigest()


def make_dataset(name, x_train, y_train, x_test, y_test, num_classes=10, fp=None):
    arrays = (x_train, y_train, x_test, y_test)
    for split, y in (("train", y_train), ("test", y_test)):
        if y.size and (int(y.max()) >= num_classes or int(y.min()) < 0):
            from mlpsweep.data.idx import DatasetError

            raise DatasetError(
                f"dataset={name}: {split} labels outside 0-{num_classes - 1} "
                f"(found {int(y.min())}..{int(y.max())}): not a {num_classes}-class dataset"
            )
    return Dataset(name, *arrays, num_classes=num_classes, fingerprint=fp or fingerprint(*arrays))
