"""Datasets: the embedded MNIST subset, and full MNIST / Fashion-MNIST from IDX files."""

from mlpsweep.data.dataset import Dataset, fingerprint, make_dataset
from mlpsweep.data.registry import DATASETS, load_dataset

__all__ = ["DATASETS", "Dataset", "fingerprint", "load_dataset", "make_dataset"]
