"""Portable numba kernels: plain loops, correct on any CPU numba supports (x86-64, ARM, ...).

Why: the AVX-512 kernels (`_avx512.py`) use x86-only instructions. These kernels use no target
intrinsics (only generic LLVM bit counts), so LLVM vectorises them for whatever the host has.
They also serve the block-sparse and general N:M formats on every CPU.

SpMM kernels here work on `xt = x.T` (in, B) and write `yt` (out, B).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from sparsetorch.kernels.simd import ctz

_OPTS = {"fastmath": True, "cache": True, "nogil": True, "error_model": "numpy", "boundscheck": False}


@njit(parallel=True, **_OPTS)
def bitmask_spmv(bits, values, row_ptr, x, bias, y, nthreads):
    out = y.shape[0]
    chunks = bits.shape[0] // max(out, 1)
    for t in prange(nthreads):
        for r in range(t * out // nthreads, (t + 1) * out // nthreads):
            off = np.int64(row_ptr[r])
            s = np.float32(0.0)
            for c in range(chunks):
                m = np.uint32(bits[r * chunks + c])
                while m != 0:
                    s += values[off] * x[16 * c + ctz(m)]
                    off += 1
                    m &= m - np.uint32(1)
            y[r] = s + bias[r]


@njit(parallel=True, **_OPTS)
def csr_spmv(cols, values, row_ptr, x, bias, y, nthreads):
    out = y.shape[0]
    for t in prange(nthreads):
        for r in range(t * out // nthreads, (t + 1) * out // nthreads):
            s = np.float32(0.0)
            for j in range(row_ptr[r], row_ptr[r + 1]):
                s += values[j] * x[np.int64(cols[j])]
            y[r] = s + bias[r]


@njit(inline="always", **_OPTS)
def _nm_col(irow, j, n, m, bits, per):
    w = np.int64(irow[j // per]) & 0xFFFFFFFF
    return (j // n) * m + ((w >> (bits * (j % per))) & ((1 << bits) - 1))


@njit(parallel=True, **_OPTS)
def nm_spmv(values, index, n, m, bits, x, bias, y, nthreads):
    out, k = values.shape
    per = 32 // bits
    for t in prange(nthreads):
        for r in range(t * out // nthreads, (t + 1) * out // nthreads):
            s = np.float32(0.0)
            irow = index[r]
            for j in range(k):
                s += values[r, j] * x[_nm_col(irow, j, n, m, bits, per)]
            y[r] = s + bias[r]


@njit(parallel=True, **_OPTS)
def block_spmv(values, block_cols, row_ptr, x, bias, y, nthreads):
    _, bh, bw = values.shape
    rows = row_ptr.shape[0] - 1
    for t in prange(nthreads):
        acc = np.zeros(bh, dtype=np.float32)
        for br in range(t * rows // nthreads, (t + 1) * rows // nthreads):
            acc[:] = 0.0
            for b in range(row_ptr[br], row_ptr[br + 1]):
                c0 = np.int64(block_cols[b]) * bw
                for i in range(bh):
                    s = np.float32(0.0)
                    for jj in range(bw):
                        s += values[b, i, jj] * x[c0 + jj]
                    acc[i] += s
            for i in range(bh):
                y[br * bh + i] = acc[i] + bias[br * bh + i]


@njit(inline="always", **_OPTS)
def _axpy_rows(cols, values, j0, j1, xt, acc):
    """acc[0:B] = sum_j values[j] * xt[cols[j], 0:B]."""
    acc[:] = 0.0
    bsz = acc.shape[0]
    for j in range(j0, j1):
        v = values[j]
        row = xt[np.int64(cols[j])]
        for b in range(bsz):
            acc[b] += v * row[b]


@njit(parallel=True, **_OPTS)
def csr_spmm(cols, values, row_ptr, xt, yt, nthreads):
    out, bsz = yt.shape
    for t in prange(nthreads):
        acc = np.empty(bsz, dtype=np.float32)
        for r in range(t * out // nthreads, (t + 1) * out // nthreads):
            _axpy_rows(cols, values, row_ptr[r], row_ptr[r + 1], xt, acc)
            yt[r] = acc


@njit(parallel=True, **_OPTS)
def bitmask_spmm(bits, values, row_ptr, xt, yt, nthreads):
    out, bsz = yt.shape
    chunks = bits.shape[0] // max(out, 1)
    for t in prange(nthreads):
        acc = np.empty(bsz, dtype=np.float32)
        cbuf = np.empty(16 * chunks + 1, dtype=np.int32)
        for r in range(t * out // nthreads, (t + 1) * out // nthreads):
            k = 0
            for c in range(chunks):
                m = np.uint32(bits[r * chunks + c])
                while m != 0:
                    cbuf[k] = 16 * c + ctz(m)
                    k += 1
                    m &= m - np.uint32(1)
            off = np.int64(row_ptr[r])
            _axpy_rows(cbuf, values[off : off + k], 0, k, xt, acc)
            yt[r] = acc


@njit(parallel=True, **_OPTS)
def nm_spmm(values, index, n, m, bits, xt, yt, nthreads):
    out, bsz = yt.shape
    k = values.shape[1]
    per = 32 // bits
    for t in prange(nthreads):
        acc = np.empty(bsz, dtype=np.float32)
        cbuf = np.empty(k + 1, dtype=np.int32)
        for r in range(t * out // nthreads, (t + 1) * out // nthreads):
            irow = index[r]
            for j in range(k):
                cbuf[j] = _nm_col(irow, j, n, m, bits, per)
            _axpy_rows(cbuf, values[r], 0, k, xt, acc)
            yt[r] = acc


@njit(parallel=True, **_OPTS)
def block_spmm(values, block_cols, row_ptr, xt, yt, nthreads):
    _, bh, bw = values.shape
    rows = row_ptr.shape[0] - 1
    bsz = yt.shape[1]
    for t in prange(nthreads):
        acc = np.empty((bh, bsz), dtype=np.float32)
        for br in range(t * rows // nthreads, (t + 1) * rows // nthreads):
            acc[:] = 0.0
            for b in range(row_ptr[br], row_ptr[br + 1]):
                c0 = np.int64(block_cols[b]) * bw
                for jj in range(bw):
                    xrow = xt[c0 + jj]
                    for i in range(bh):
                        v = values[b, i, jj]
                        for q in range(bsz):
                            acc[i, q] += v * xrow[q]
            for i in range(bh):
                yt[br * bh + i] = acc[i]
