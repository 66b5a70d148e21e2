"""IDX files (the MNIST format), raw or gzipped, read with every claim checked first.

The header is validated (magic, dtype code, dimension count) and the data size it
claims is compared with what the file really holds *before* anything is allocated, so a
corrupt or hostile header ("10^12 images") fails with one line instead of a MemoryError.
"""

import contextlib
import gzip
import math
import os
import struct
import zlib

import numpy as np

GZIP_MAGIC = b"\x1f\x8b"
# dtype code -> big-endian numpy dtype (the IDX spec)
IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
# DEFLATE cannot expand data more than ~1032:1, so a gzip file of c bytes never holds more.
MAX_GZIP_RATIO = 1100


class DatasetError(Exception):
    """Bad dataset input. The message is one line naming the file and the fault."""


def read_idx(path):
    """The array stored in the IDX file at `path` (native byte order)."""
    from mlpsweep.records.files import guarded_open

    path = os.fspath(path)
    with contextlib.ExitStack() as opened:
        try:
            raw = opened.enter_context(guarded_open(path, "dataset"))
        except FileNotFoundError:
            raise
        except OSError as e:  # a link, a FIFO, a folder, too large: one line
            raise DatasetError(str(e)) from None
        gzipped = raw.read(2) == GZIP_MAGIC
        size = os.fstat(raw.fileno()).st_size
        if gzipped:
            raw.seek(-4, os.SEEK_END) if size >= 22 else raw.seek(0)
            stored_size = struct.unpack("<I", raw.read(4))[0] if size >= 22 else None
        raw.seek(0)
        stream = gzip.GzipFile(fileobj=raw, mode="rb") if gzipped else raw
        try:
            return _read(path, stream, size, gzipped, stored_size if gzipped else None)
        except (EOFError, zlib.error, gzip.BadGzipFile, OSError) as e:
            fault = "truncated gzip stream" if isinstance(e, EOFError) else "corrupted gzip stream"
            raise DatasetError(f"{path}: {fault} ({e})") from None


def _read(path, stream, file_size, gzipped, stored_size):
    head = stream.read(4)
    if len(head) < 4:
        raise DatasetError(f"{path}: truncated: {len(head)} bytes, not even an IDX header")
    if head[:2] != b"\x00\x00":
        raise DatasetError(f"{path}: wrong magic number {head.hex()} (an IDX file starts 0000)")
    code, ndim = head[2], head[3]
    if code not in IDX_DTYPES:
        raise DatasetError(f"{path}: unknown IDX dtype code 0x{code:02x}")
    if not 1 <= ndim <= 8:
        raise DatasetError(f"{path}: implausible dimension count {ndim}")
    dims_raw = stream.read(4 * ndim)
    if len(dims_raw) < 4 * ndim:
        raise DatasetError(f"{path}: truncated header ({ndim} dimensions announced)")
    dims = struct.unpack(f">{ndim}I", dims_raw)
    dtype = np.dtype(IDX_DTYPES[code])
    header = 4 + 4 * ndim
    claimed = math.prod(dims) * dtype.itemsize
    what = f"header claims {' x '.join(map(str, dims))} items ({claimed:,} bytes)"
    if gzipped and claimed + header > MAX_GZIP_RATIO * file_size:
        raise DatasetError(f"{path}: {what}, impossible for a {file_size:,}-byte gzip file")
    # The data really present: the file's length, or the gzip trailer's size (mod 2^32).
    if gzipped and stored_size is not None:
        actual = (stored_size - header) % 2**32
        consistent = (claimed + header) % 2**32 == stored_size
    else:
        actual = file_size - header
        consistent = gzipped or actual == claimed
    if not consistent:
        fault = "truncated" if actual < claimed else "trailing bytes"
        raise DatasetError(f"{path}: {fault}: {what} but the file holds {actual:,}")
    data = np.empty(claimed, dtype=np.uint8)
    view, got = memoryview(data), 0
    while got < claimed:
        n = stream.readinto(view[got:])
        if not n:
            raise DatasetError(f"{path}: truncated: {what} but the data ends after {got:,}")
        got += n
    if stream.read(1):
        raise DatasetError(f"{path}: trailing bytes after the {claimed:,} the header claims")
    return data.view(dtype).reshape(dims).astype(dtype.newbyteorder("="), copy=False)


def write_idx(path, array, compress=None):
    """Write `array` as an IDX file (gzipped when the name ends in .gz or compress=True)."""
    codes = {np.dtype(v).newbyteorder("="): k for k, v in IDX_DTYPES.items()}
    array = np.asarray(array)
    code = codes[array.dtype.newbyteorder("=")]
    payload = (
        struct.pack(f">BBBB{array.ndim}I", 0, 0, code, array.ndim, *array.shape)
        + array.astype(np.dtype(IDX_DTYPES[code]), copy=False).tobytes()
    )
    compress = str(path).endswith(".gz") if compress is None else compress
    with open(path, "wb") as f:
        f.write(gzip.compress(payload, mtime=0) if compress else payload)
