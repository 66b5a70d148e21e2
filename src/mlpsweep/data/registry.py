"""load_dataset(name) -> Dataset, for every dataset the harness knows."""

from importlib import resources

import numpy as np

from mlpsweep.data.cache import arrays_from_idx, build_cache, load_cached
from mlpsweep.data.dataset import Dataset, make_dataset
from mlpsweep.data.fetch import data_root, locate
from mlpsweep.data.idx import DatasetError
from mlpsweep.data.sources import SOURCES

EMBEDDED = "mnist_5k"
DATASETS = (EMBEDDED, *SOURCES)


def load_embedded():
    """The 5,000-image MNIST subset shipped in the package (see data/PROVENANCE.md)."""
    with resources.files("mlpsweep.data").joinpath("mnist_5k.npz").open("rb") as f:
        with np.load(f, allow_pickle=False) as d:
            arrays = [d[k] for k in ("train_images", "train_labels", "test_images", "test_labels")]
    return make_dataset(EMBEDDED, *arrays)


def load_dataset(name: str = EMBEDDED, data_dir=None, source=None) -> Dataset:
    """The dataset `name`: the embedded subset, or a full one from its .npy cache
    (converted on first use from verified IDX files, found locally or downloaded).
    `source` overrides the registry's file list and mirrors (tests use it)."""
    if name == EMBEDDED and source is None:
        return load_embedded()
    source = source or SOURCES.get(name)
    if source is None:
        raise DatasetError(f"dataset={name!r}: must be one of {', '.join(DATASETS)}")
    folder = data_root(data_dir) / source.name / "npy"
    cached = load_cached(folder, source, data_dir)
    if cached is not None:
        return cached
    paths = locate(source, data_dir)
    arrays, shapes = arrays_from_idx(paths, source.num_classes)
    return build_cache(folder, source, arrays, shapes, data_dir)
