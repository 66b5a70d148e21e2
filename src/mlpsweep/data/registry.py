"""load_dataset(name) -> Dataset, for every dataset the harness knows."""

from importlib import resources

import numpy as np

from mlpsweep.data.dataset import make_dataset

DATASETS = ("mnist_5k",)


def load_embedded():
    """The 5,000-image MNIST subset shipped in the package: no network, ~1 MB."""
    with resources.files("mlpsweep.data").joinpath("mnist_5k.npz").open("rb") as f:
        with np.load(f, allow_pickle=False) as d:
            arrays = [d[k] for k in ("train_images", "train_labels", "test_images", "test_labels")]
    return make_dataset("mnist_5k", *arrays)


def load_dataset(name="mnist_5k", **options):
    if name == "mnist_5k":
        return load_embedded()
    raise ValueError(f"dataset={name!r}: must be one of {', '.join(DATASETS)}")
