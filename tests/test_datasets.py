import hashlib
import http.server
import os
import threading
from pathlib import Path

import numpy as np
import pytest

from mlpsweep.data import load_dataset
from mlpsweep.data.idx import DatasetError, write_idx
from mlpsweep.data.sources import FileSpec, Source

FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
NAMES = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}


def test_embedded_subset(mnist_5k):
    d = mnist_5k
    assert d.x_train.shape == (4000, 784) and d.x_test.shape == (1000, 784)
    assert d.x_train.dtype == np.uint8 and d.y_train.dtype == np.uint8
    assert np.bincount(d.y_train).tolist() == [400] * 10
    assert np.bincount(d.y_test).tolist() == [100] * 10
    assert d.num_classes == 10 and d.input_size == 784
    # The content fingerprint of ../shared/data/mnist_5k.npz (sha256 aba0622b...).
    assert d.fingerprint.startswith("5511a0eb163fc32b")


def test_unknown_dataset():
    with pytest.raises(DatasetError, match="dataset='cifar': must be one of mnist_5k, mnist"):
        load_dataset("cifar")


def make_idx_files(folder, n_train=30, n_test=10, seed=0):
    rng = np.random.default_rng(seed)
    arrays = {
        "train_images": rng.integers(0, 256, (n_train, 4, 4), dtype=np.uint8),
        "train_labels": rng.integers(0, 10, n_train).astype(np.uint8),
        "test_images": rng.integers(0, 256, (n_test, 4, 4), dtype=np.uint8),
        "test_labels": rng.integers(0, 10, n_test).astype(np.uint8),
    }
    folder.mkdir(parents=True, exist_ok=True)
    for role, a in arrays.items():
        write_idx(folder / NAMES[role], a)
    return arrays


def source_for(folder, mirrors=("http://127.0.0.1:9/",), name="toy"):
    files = {
        role: FileSpec(fname, hashlib.sha256((folder / fname).read_bytes()).hexdigest())
        for role, fname in NAMES.items()
    }
    return Source(name=name, files=files, mirrors=tuple(mirrors))


class FileServer:
    """A real HTTP server on 127.0.0.1 serving a dict of path -> bytes, counting requests."""

    def __init__(self, files):
        self.files, self.requests = dict(files), []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                outer.requests.append(self.path)
                body = outer.files.get(self.path.lstrip("/"))
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def served(tmp_path):
    origin = tmp_path / "origin"
    arrays = make_idx_files(origin)
    server = FileServer({f: (origin / f).read_bytes() for f in NAMES.values()})
    yield origin, arrays, server
    server.close()


def test_fetch_verifies_caches_and_loads(tmp_path, served):
    origin, arrays, server = served
    src = source_for(origin, [server.url])
    d = load_dataset("toy", data_dir=tmp_path / "data", source=src)
    assert np.array_equal(d.x_train, arrays["train_images"].reshape(30, 16))
    assert np.array_equal(d.y_test, arrays["test_labels"])
    assert isinstance(d.x_train, np.memmap)  # from the .npy cache, shared between workers
    assert sorted(server.requests) == sorted("/" + f for f in NAMES.values())
    again = load_dataset("toy", data_dir=tmp_path / "data", source=src)
    assert again.fingerprint == d.fingerprint and len(server.requests) == 4  # no refetch


def test_corrupted_download_is_rejected_not_cached_and_resumed(tmp_path, served):
    origin, arrays, server = served
    src = source_for(origin, [server.url])
    good = server.files["t10k-images-idx3-ubyte.gz"]
    server.files["t10k-images-idx3-ubyte.gz"] = good[:-40] + bytes(40)
    data = tmp_path / "data"
    with pytest.raises(DatasetError) as err:
        load_dataset("toy", data_dir=data, source=src)
    assert "checksum mismatch" in str(err.value) and "\n" not in str(err.value)
    assert not (data / "toy" / "t10k-images-idx3-ubyte.gz").exists()
    assert not (data / "toy" / "npy").exists()
    fetched_before = len(server.requests)
    server.files["t10k-images-idx3-ubyte.gz"] = good
    d = load_dataset("toy", data_dir=data, source=src)
    assert np.array_equal(d.x_test, arrays["test_images"].reshape(10, 16))
    # Files that had verified were kept: the retry fetched only what was missing.
    retried = server.requests[fetched_before:]
    assert "/t10k-images-idx3-ubyte.gz" in retried
    assert "/train-images-idx3-ubyte.gz" not in retried


def test_falls_back_to_the_next_mirror(tmp_path, served):
    origin, arrays, server = served
    d = load_dataset(
        "toy",
        data_dir=tmp_path / "d",
        source=source_for(origin, ["http://127.0.0.1:9/", server.url]),
    )
    assert d.x_train.shape == (30, 16)


def test_no_network_gives_one_line_saying_what_to_put_where(tmp_path, served):
    origin, _, _ = served
    with pytest.raises(DatasetError) as err:
        load_dataset("toy", data_dir=tmp_path / "d", source=source_for(origin))
    msg = str(err.value)
    assert "\n" not in msg and "could not download" in msg
    assert str(tmp_path / "d" / "toy") in msg and "train-labels-idx1-ubyte.gz" in msg


def test_local_files_are_used_and_verified(tmp_path):
    data = tmp_path / "data"
    make_idx_files(data / "toy")
    src = source_for(data / "toy")  # unreachable mirror: must not be needed
    assert load_dataset("toy", data_dir=data, source=src).x_train.shape == (30, 16)
    make_idx_files(tmp_path / "other", seed=1)
    os.replace(tmp_path / "other" / NAMES["train_labels"], data / "toy" / NAMES["train_labels"])
    import shutil

    shutil.rmtree(data / "toy" / "npy")
    with pytest.raises(DatasetError, match="checksum mismatch: not the published"):
        load_dataset("toy", data_dir=data, source=src)


def test_data_dir_from_environment(tmp_path, monkeypatch):
    make_idx_files(tmp_path / "env" / "toy")
    monkeypatch.setenv("MLPSWEEP_DATA_DIR", str(tmp_path / "env"))
    assert load_dataset("toy", source=source_for(tmp_path / "env" / "toy")).y_train.shape == (30,)


@pytest.mark.parametrize(
    "fault, match",
    [
        ("count", "image/label count mismatch: 30 images"),
        ("labels", "labels outside 0-9 \\(found 12\\)"),
    ],
)
def test_inconsistent_files(tmp_path, fault, match):
    folder = tmp_path / "toy"
    arrays = make_idx_files(folder)
    if fault == "count":
        write_idx(folder / NAMES["train_labels"], arrays["train_labels"][:-1])
    else:
        bad = arrays["train_labels"].copy()
        bad[3] = 12
        write_idx(folder / NAMES["train_labels"], bad)
    with pytest.raises(DatasetError, match=match):
        load_dataset("toy", data_dir=tmp_path, source=source_for(folder))


def test_broken_cache_is_rebuilt_not_used(tmp_path):
    data = tmp_path / "data"
    arrays = make_idx_files(data / "toy")
    src = source_for(data / "toy")
    load_dataset("toy", data_dir=data, source=src)
    npy = data / "toy" / "npy" / "x_train.npy"
    npy.write_bytes(npy.read_bytes()[:-50])  # a half-written file
    d = load_dataset("toy", data_dir=data, source=src)
    assert np.array_equal(d.x_train, arrays["train_images"].reshape(30, 16))


@pytest.mark.skipif(
    not FASHION_DIR.is_dir() and not os.environ.get("CI"),
    reason="Debian's dataset-fashion-mnist is not installed",
)
def test_fashion_mnist_from_debian_package(tmp_path):
    d = load_dataset("fashion_mnist", data_dir=tmp_path)
    assert d.x_train.shape == (60000, 784) and d.x_test.shape == (10000, 784)
    assert np.bincount(d.y_train).tolist() == [6000] * 10
    assert not any(tmp_path.glob("fashion_mnist/*.gz"))  # nothing downloaded or copied
    warm = load_dataset("fashion_mnist", data_dir=tmp_path)
    assert warm.fingerprint == d.fingerprint and isinstance(warm.x_train, np.memmap)


def test_a_tampered_cache_is_caught_by_content_and_rebuilt(tmp_path):
    """Every label overwritten with 7, shapes and dtype intact (what a shape check
    passes): the content hash fails, the cache is rebuilt from the verified files, and
    the fingerprint (so the run ids) stays that of the real data."""
    from mlpsweep.data import cache

    data = tmp_path / "data"
    arrays = make_idx_files(data / "toy")
    src = source_for(data / "toy")
    first = load_dataset("toy", data_dir=data, source=src)
    y = data / "toy" / "npy" / "y_train.npy"
    np.save(y, np.full_like(np.load(y), 7), allow_pickle=False)
    again = load_dataset("toy", data_dir=data, source=src)
    assert np.array_equal(again.y_train, arrays["train_labels"])
    assert again.fingerprint == first.fingerprint
    assert len(cache._verified_cache) >= 1  # an unchanged cache is hashed once per process


def test_the_dataset_caches_of_a_process_are_bounded():
    from mlpsweep.data.cache import CACHE_ENTRIES, remember

    cache: dict = {}
    for i in range(CACHE_ENTRIES + 5):
        assert remember(cache, i, str(i)) == str(i)
    assert len(cache) == CACHE_ENTRIES and min(cache) == 5  # the oldest went
    assert cache[CACHE_ENTRIES + 4] == str(CACHE_ENTRIES + 4)
