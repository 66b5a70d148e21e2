"""The in-memory form every dataset takes, and its content fingerprint."""

import functools
import hashlib
from dataclasses import dataclass

import numpy as np

from mlpsweep.core.batches import train_inputs

# The largest float32 copy of a train set kept for training (full MNIST's is 188 MB).
FLOAT32_COPY_MAX_BYTES = 256 * 2**20


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

    @functools.cached_property
    def train_inputs(self) -> np.ndarray | None:
        """The uint8 train images as training reads them (core.batches.train_inputs),
        made on first use and kept with this object. The app keeps one Dataset per
        dataset and process, so a worker's jobs share it, and a training step gathers
        its batch from it instead of converting the batch. None for other dtypes, and
        above FLOAT32_COPY_MAX_BYTES: steps then convert their own batches."""
        if self.x_train.dtype != np.uint8 or self.x_train.size * 4 > FLOAT32_COPY_MAX_BYTES:
            return None
        return train_inputs(self.x_train)


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
