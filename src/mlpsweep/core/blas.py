"""`W -= A.T @ B` as one BLAS call, on the BLAS numpy itself calls, when that is exact.

An SGD step computes each weight gradient with a matrix product and then subtracts it
from the weights: numpy's `matmul` cannot accumulate into its output, so the gradient is
written to a buffer and read back by a separate pass over every weight. BLAS gemm
computes `C = alpha * A @ B + beta * C`: with alpha = -1 and beta = 1 it writes the
updated weights directly, and the gradient buffer and the update pass disappear. At
batch 10 those are most of what a step does besides its products.

The rounding is the same as matmul-then-subtract when the gemm sums each element's
products in one pass (its K dimension, the batch, fits one of OpenBLAS's blocks) and then
adds them to C once: `fl(W - fl(sum))` either way. Larger batches are summed in blocks
(into C, so the weights would take part in every partial sum), and a product with one
column goes to gemv, which accumulates differently. Rather than encode any library's
blocking, `exact_update` runs both ways once per shape on random data and compares them
bit for bit; callers use `gemm_update` only where it is exact, and their own products
otherwise.

Only numpy's bundled OpenBLAS (the scipy-openblas wheels, whose 64-bit-integer cblas
symbols are named by a suffix) is called: anything else (MKL, Accelerate, a distribution
build) keeps the matmul path. Found once per process, like the library itself.
"""

import ctypes
import functools
from pathlib import Path

import numpy as np

ROW_MAJOR, NO_TRANS, TRANS = 101, 111, 112
# ILP64 cblas entry points of numpy's wheels (numpy >= 2: scipy_ prefix; 1.x: none).
SYMBOLS = ("scipy_cblas_{}gemm64_", "cblas_{}gemm64_")
PREFIX = {np.dtype(np.float32): "s", np.dtype(np.float64): "d"}


@functools.cache
def blas_libraries():
    """threadpoolctl's controllers of the loaded BLAS libraries (finding them costs
    milliseconds, so once per process)."""
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController().select(user_api="blas")


@functools.cache
def numpy_blas():
    """threadpoolctl's controller of the BLAS numpy's own products call, or None where
    that cannot be told. scipy's wheels load a second OpenBLAS (another version) beside
    numpy's once scipy.linalg or scipy.stats is imported: numpy's is the one under
    numpy's package (its wheel's numpy.libs), or the only one loaded."""
    libs = blas_libraries().lib_controllers
    if len(libs) == 1:
        return libs[0]
    home = Path(np.__file__).resolve().parent
    homes = (home, home.parent / "numpy.libs")
    own = [
        lib for lib in libs if any(Path(lib.filepath).resolve().is_relative_to(h) for h in homes)
    ]
    return own[0] if len(own) == 1 else None


@functools.cache
def _gemm(prefix):
    """numpy's cblas_?gemm as a ctypes function, or None where it cannot be found."""
    lib = numpy_blas()
    if lib is None or lib.internal_api != "openblas":
        return None  # which library numpy calls would be a guess
    try:
        lib = ctypes.CDLL(lib.filepath)
    except OSError:
        return None
    for name in SYMBOLS:
        fn = getattr(lib, name.format(prefix), None)
        if fn is not None:
            fn.restype = None
            return fn
    return None


def _args(W, hT, d):
    """gemm's arguments for W -= hT @ d, as numpy passes them for `matmul(hT, d)` (row
    major, hT the transpose of a matrix of contiguous rows), with alpha -1 and beta 1."""
    h = hT.T
    scalar = ctypes.c_float if W.dtype == np.float32 else ctypes.c_double
    i64, item = ctypes.c_int64, W.itemsize
    m, k = hT.shape
    p = d.shape[1]
    return (
        ctypes.c_int(ROW_MAJOR), ctypes.c_int(TRANS), ctypes.c_int(NO_TRANS),
        i64(m), i64(p), i64(k), scalar(-1.0),
        ctypes.c_void_p(h.ctypes.data), i64(h.strides[0] // item),
        ctypes.c_void_p(d.ctypes.data), i64(d.strides[0] // item),
        scalar(1.0), ctypes.c_void_p(W.ctypes.data), i64(W.strides[0] // item),
    )  # fmt: skip


def _rows(a):
    """Whether `a` is a matrix of contiguous rows (C-contiguous, or rows of a wider
    C-contiguous array): what gemm takes with a leading dimension."""
    item = a.itemsize
    return a.strides[1] == item and a.strides[0] % item == 0 and a.strides[0] >= a.shape[1] * item


def _fits(W, hT, d):
    """The layouts `_args` describes: C-contiguous W, d and hT.T matrices of contiguous
    rows, one dtype, matching shapes."""
    return (
        W.dtype == hT.dtype == d.dtype
        and W.dtype in PREFIX
        and W.flags.c_contiguous
        and _rows(d)
        and _rows(hT.T)
        and W.shape == (hT.shape[0], d.shape[1])
        and hT.shape[1] == d.shape[0]
    )


def gemm_update(W, hT, d):
    """A function of no arguments doing `W -= hT @ d` in one gemm call, bound to these
    three arrays (they must outlive it), with exactly matmul-then-subtract's rounding;
    None where that cannot be had (see the module's docstring)."""
    if not _fits(W, hT, d):
        return None
    fn = _gemm(PREFIX[W.dtype])
    ld_h, ld_d = hT.strides[1] // hT.itemsize, d.strides[0] // d.itemsize
    shape = (W.shape[0], W.shape[1], d.shape[0], W.dtype.char)
    if fn is None or not exact_update(*shape, ld_h, ld_d):
        return None
    return functools.partial(fn, *_args(W, hT, d))


@functools.cache
def exact_update(m, p, k, dtype_char, ld_h=None, ld_d=None):
    """Whether gemm's `W -= h.T @ d` (W m x p, h k x m, their rows `ld_h` and `ld_d`
    apart) rounds exactly as `W - matmul(h.T, d)` here: both computed once on random
    numbers, compared bitwise."""
    fn = _gemm(PREFIX[np.dtype(dtype_char)])
    if fn is None:
        return False
    rng = np.random.default_rng(0)
    h, d, W = (
        rng.standard_normal(s).astype(dtype_char) for s in ((k, ld_h or m), (k, ld_d or p), (m, p))
    )
    h, d = h[:, :m], d[:, :p]
    expected = W - np.matmul(h.T, d)
    fn(*_args(W, h.T, d))
    return bool(np.array_equal(W, expected))
