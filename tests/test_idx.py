import gzip

import numpy as np
import pytest

from mlpsweep.data.idx import DatasetError, read_idx, write_idx


@pytest.mark.parametrize("name", ["a.idx", "a.idx.gz"])
@pytest.mark.parametrize("dtype", ["u1", "i1", "i2", "i4", "f4", "f8"])
def test_round_trip(tmp_path, name, dtype):
    a = (np.arange(2 * 3 * 4) - 7).astype(dtype).reshape(2, 3, 4)
    write_idx(tmp_path / name, a)
    b = read_idx(tmp_path / name)
    assert b.dtype == a.dtype and np.array_equal(a, b)


def test_one_dimensional_labels(tmp_path):
    write_idx(tmp_path / "l.gz", np.array([3, 1, 4], np.uint8))
    assert read_idx(tmp_path / "l.gz").tolist() == [3, 1, 4]


def raw_header(code=0x08, ndim=3, dims=(2, 2, 2)):
    import struct

    return struct.pack(f">BBBB{ndim}I", 0, 0, code, ndim, *dims)


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize(
    "payload, fault",
    [
        (b"\x12\x34\x08\x01\x00\x00\x00\x01\x07", "wrong magic number 12340801"),
        (raw_header(code=0x07) + bytes(8), "unknown IDX dtype code 0x07"),
        (raw_header() + bytes(5), "truncated"),
        (raw_header() + bytes(9), "trailing bytes"),
        (raw_header(dims=(1000000, 1000, 1000)) + bytes(8), "1000000 x 1000 x 1000 items"),
        (b"\x00\x00", "not even an IDX header"),
        (raw_header()[:10], "truncated header"),
    ],
)
def test_bad_files_fail_with_one_line_naming_file_and_fault(tmp_path, payload, fault, gz):
    path = tmp_path / ("bad.gz" if gz else "bad")
    path.write_bytes(gzip.compress(payload) if gz else payload)
    with pytest.raises(DatasetError) as err:
        read_idx(path)
    msg = str(err.value)
    assert str(path) in msg and fault in msg and "\n" not in msg


def test_huge_claim_in_gzip_is_refused_before_allocating(tmp_path):
    path = tmp_path / "huge.gz"
    path.write_bytes(gzip.compress(raw_header(ndim=1, dims=(10**9,)) + bytes(100)))
    with pytest.raises(DatasetError, match="impossible for a"):
        read_idx(path)


def test_corrupted_gzip_stream(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "c.gz"
    write_idx(path, rng.integers(0, 256, (50, 28, 28), dtype=np.uint8))
    data = bytearray(path.read_bytes())
    data[len(data) // 2 : len(data) // 2 + 16] = bytes(16)
    path.write_bytes(bytes(data))
    with pytest.raises(DatasetError, match="corrupted gzip stream|truncated"):
        read_idx(path)


def test_truncated_gzip_file(tmp_path):
    path = tmp_path / "t.gz"
    write_idx(path, np.random.default_rng(0).integers(0, 256, (50, 28, 28), dtype=np.uint8))
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(DatasetError, match="truncated"):
        read_idx(path)
