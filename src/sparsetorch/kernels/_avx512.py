"""AVX-512 numba kernels: SpMV (batch 1) and SpMM (batch > 1) for every format.

Why these shapes of loop (measured in `shared/reference/perf.md`):

- batch 1 is bound by bytes, so each kernel streams its compact format once, decodes it with one
  SIMD instruction per 16 or 32 columns (`vexpandps` for the bitmask, `vpermt2ps` for 2:4),
  keeps 4 independent accumulators and prefetches the value stream explicitly;
- batch > 1 is bound by FLOPs, so X is packed once per call into tile-major panels
  `(tiles, in, T)` (T = 16 or 64 batch columns) and each stored weight is broadcast and FMA'd
  against one panel row held in 1 or 4 zmm registers, with two weights in flight (8 accumulators);
- threads split output rows into equal contiguous ranges (`prange` over the thread count).

Every kernel writes `yt`, the output transposed per tile: `yt[tile, row, 0:T]`.
Only import this module after checking the CPU has AVX-512 (see `cpu.py`).
"""

from __future__ import annotations

import numba
import numpy as np
from numba import njit, prange

from sparsetorch.kernels.simd import (
    popcount,
    prefetch,
    vadd,
    vbcast,
    vcompress_cols,
    vexpand,
    vfma,
    vhsum,
    vload,
    vpermt2_24,
    vstore,
    vzero,
)

_OPTS = {"fastmath": True, "cache": True, "nogil": True, "error_model": "numpy", "boundscheck": False}
PF_VALUES = 1024  # prefetch distance in the value stream (floats, 4 KiB ahead: ~100 ns of DRAM latency)
PF_BITS = 512  # prefetch distance in the bitmask stream (uint16 chunks, 1 KiB ahead)


# --- batch 1 -------------------------------------------------------------------------------------


@njit(parallel=True, **_OPTS)
def bitmask_spmv(bits, values, row_ptr, x, y, nthreads):
    """y[r] = sum over kept (r, c) of w * x[c]; bits (out * chunks,) uint16, x padded to 16 * chunks."""
    out = y.shape[0]
    chunks = bits.shape[0] // max(out, 1)
    for t in prange(nthreads):
        r0 = t * out // nthreads
        r1 = (t + 1) * out // nthreads
        for r in range(r0, r1):
            off = np.int64(row_ptr[r])
            base = r * chunks
            a0 = vzero()
            a1 = vzero()
            a2 = vzero()
            a3 = vzero()
            c = 0
            while c + 4 <= chunks:
                prefetch(values, off + PF_VALUES)
                prefetch(bits, base + c + PF_BITS)
                m0 = bits[base + c]
                m1 = bits[base + c + 1]
                m2 = bits[base + c + 2]
                m3 = bits[base + c + 3]
                o1 = off + popcount(m0)
                o2 = o1 + popcount(m1)
                o3 = o2 + popcount(m2)
                a0 = vfma(vexpand(values, off, m0), vload(x, 16 * c), a0)
                a1 = vfma(vexpand(values, o1, m1), vload(x, 16 * c + 16), a1)
                a2 = vfma(vexpand(values, o2, m2), vload(x, 16 * c + 32), a2)
                a3 = vfma(vexpand(values, o3, m3), vload(x, 16 * c + 48), a3)
                off = o3 + popcount(m3)
                c += 4
            while c < chunks:
                m0 = bits[base + c]
                a0 = vfma(vexpand(values, off, m0), vload(x, 16 * c), a0)
                off += popcount(m0)
                c += 1
            y[r] = vhsum(vadd(vadd(a0, a1), vadd(a2, a3)))


@njit(parallel=True, **_OPTS)
def csr_spmv(cols, values, row_ptr, x, y, nthreads):
    """CSR (uint16 or int32 columns) times a vector; scalar loop with 4 accumulators."""
    out = y.shape[0]
    for t in prange(nthreads):
        r0 = t * out // nthreads
        r1 = (t + 1) * out // nthreads
        for r in range(r0, r1):
            j = np.int64(row_ptr[r])
            end = np.int64(row_ptr[r + 1])
            s0 = np.float32(0.0)
            s1 = np.float32(0.0)
            s2 = np.float32(0.0)
            s3 = np.float32(0.0)
            while j + 4 <= end:
                prefetch(values, j + PF_VALUES)
                prefetch(cols, j + 2 * PF_VALUES)
                s0 += values[j] * x[np.int64(cols[j])]
                s1 += values[j + 1] * x[np.int64(cols[j + 1])]
                s2 += values[j + 2] * x[np.int64(cols[j + 2])]
                s3 += values[j + 3] * x[np.int64(cols[j + 3])]
                j += 4
            while j < end:
                s0 += values[j] * x[np.int64(cols[j])]
                j += 1
            y[r] = (s0 + s1) + (s2 + s3)


@njit(parallel=True, **_OPTS)
def nm24_spmv(values, index, x, y, nthreads):
    """2:4 times a vector: 16 values per `vpermt2ps` over 32 columns; values (out, k), index (out, w)."""
    out, k = values.shape
    full = k // 16
    for t in prange(nthreads):
        r0 = t * out // nthreads
        r1 = (t + 1) * out // nthreads
        for r in range(r0, r1):
            vrow = values[r]
            irow = index[r]
            a0 = vzero()
            a1 = vzero()
            a2 = vzero()
            a3 = vzero()
            g = 0
            while g + 4 <= full:
                prefetch(vrow, 16 * g + PF_VALUES)
                a0 = vfma(vload(vrow, 16 * g), vpermt2_24(x, 32 * g, irow[g]), a0)
                a1 = vfma(vload(vrow, 16 * g + 16), vpermt2_24(x, 32 * g + 32, irow[g + 1]), a1)
                a2 = vfma(vload(vrow, 16 * g + 32), vpermt2_24(x, 32 * g + 64, irow[g + 2]), a2)
                a3 = vfma(vload(vrow, 16 * g + 48), vpermt2_24(x, 32 * g + 96, irow[g + 3]), a3)
                g += 4
            while g < full:
                a0 = vfma(vload(vrow, 16 * g), vpermt2_24(x, 32 * g, irow[g]), a0)
                g += 1
            s = vhsum(vadd(vadd(a0, a1), vadd(a2, a3)))
            for j in range(16 * full, k):  # tail: fewer than 16 values
                w = np.int64(irow[j // 16])
                pos = (w >> (2 * (j % 16))) & 3
                s += vrow[j] * x[(j // 2) * 4 + pos]
            y[r] = s


# --- batch > 1: panels -----------------------------------------------------------------------------


@njit(parallel=True, **_OPTS)
def pack_panels(x, xp, nthreads):
    """x (B, in) -> xp (tiles, in_pad, T): xp[t, c, j] = x[t * T + j, c] (zero beyond)."""
    b, inp = x.shape
    tiles, _, tw = xp.shape
    for t in prange(nthreads):
        c0 = t * inp // nthreads
        c1 = (t + 1) * inp // nthreads
        for tile in range(tiles):
            for j in range(tw):
                row = tile * tw + j
                if row < b:
                    for c in range(c0, c1):
                        xp[tile, c, j] = x[row, c]


@njit(inline="always", **_OPTS)
def _row64(cols, values, j, end, xp, tile, yt, r, coff):
    """yt[tile, r, 0:64] = sum_j values[j] * xp[tile, cols[j] + coff, 0:64] over j in [j, end)."""
    flat = xp[tile].ravel()
    a0 = vzero()
    a1 = vzero()
    a2 = vzero()
    a3 = vzero()
    b0 = vzero()
    b1 = vzero()
    b2 = vzero()
    b3 = vzero()
    while j + 2 <= end:
        v = vbcast(values[j])
        p = (np.int64(cols[j]) + coff) * 64
        w = vbcast(values[j + 1])
        q = (np.int64(cols[j + 1]) + coff) * 64
        a0 = vfma(v, vload(flat, p), a0)
        a1 = vfma(v, vload(flat, p + 16), a1)
        a2 = vfma(v, vload(flat, p + 32), a2)
        a3 = vfma(v, vload(flat, p + 48), a3)
        b0 = vfma(w, vload(flat, q), b0)
        b1 = vfma(w, vload(flat, q + 16), b1)
        b2 = vfma(w, vload(flat, q + 32), b2)
        b3 = vfma(w, vload(flat, q + 48), b3)
        j += 2
    if j < end:
        v = vbcast(values[j])
        p = (np.int64(cols[j]) + coff) * 64
        a0 = vfma(v, vload(flat, p), a0)
        a1 = vfma(v, vload(flat, p + 16), a1)
        a2 = vfma(v, vload(flat, p + 32), a2)
        a3 = vfma(v, vload(flat, p + 48), a3)
    out = yt[tile, r]
    vstore(out, 0, vadd(a0, b0))
    vstore(out, 16, vadd(a1, b1))
    vstore(out, 32, vadd(a2, b2))
    vstore(out, 48, vadd(a3, b3))


@njit(inline="always", **_OPTS)
def _row16(cols, values, j, end, xp, tile, yt, r, coff):
    """As `_row64` for 16-wide panels, with four weights in flight."""
    flat = xp[tile].ravel()
    a0 = vzero()
    a1 = vzero()
    a2 = vzero()
    a3 = vzero()
    while j + 4 <= end:
        a0 = vfma(vbcast(values[j]), vload(flat, (np.int64(cols[j]) + coff) * 16), a0)
        a1 = vfma(vbcast(values[j + 1]), vload(flat, (np.int64(cols[j + 1]) + coff) * 16), a1)
        a2 = vfma(vbcast(values[j + 2]), vload(flat, (np.int64(cols[j + 2]) + coff) * 16), a2)
        a3 = vfma(vbcast(values[j + 3]), vload(flat, (np.int64(cols[j + 3]) + coff) * 16), a3)
        j += 4
    while j < end:
        a0 = vfma(vbcast(values[j]), vload(flat, (np.int64(cols[j]) + coff) * 16), a0)
        j += 1
    vstore(yt[tile, r], 0, vadd(vadd(a0, a1), vadd(a2, a3)))


@njit(parallel=True, **_OPTS)
def csr_spmm(cols, values, row_ptr, xp, yt, nthreads):
    """CSR times packed panels; yt (tiles, out, T)."""
    tiles, out, tw = yt.shape
    for t in prange(nthreads):
        r0 = t * out // nthreads
        r1 = (t + 1) * out // nthreads
        for tile in range(tiles):
            for r in range(r0, r1):
                if tw == 64:
                    _row64(cols, values, np.int64(row_ptr[r]), np.int64(row_ptr[r + 1]), xp, tile, yt, r, 0)
                else:
                    _row16(cols, values, np.int64(row_ptr[r]), np.int64(row_ptr[r + 1]), xp, tile, yt, r, 0)


@njit(inline="always", **_OPTS)
def _decode_bitmask_row(bits, base, chunks, cbuf):
    """Column index of each kept weight of one row into cbuf; returns the count."""
    k = np.int64(0)
    for c in range(chunks):
        m = bits[base + c]
        vcompress_cols(cbuf, k, 16 * c, m)
        k += popcount(m)
    return k


@njit(parallel=True, **_OPTS)
def bitmask_spmm(bits, values, row_ptr, xp, yt, nthreads):
    """Bitmask times packed panels: decode each row's columns once, then the CSR micro-kernel."""
    tiles, out, tw = yt.shape
    chunks = bits.shape[0] // max(out, 1)
    for t in prange(nthreads):
        r0 = t * out // nthreads
        r1 = (t + 1) * out // nthreads
        cbuf = np.empty(16 * chunks + 16, dtype=np.int32)
        for r in range(r0, r1):
            off = np.int64(row_ptr[r])
            k = _decode_bitmask_row(bits, r * chunks, chunks, cbuf)
            vrow = values[off : off + k + 16]
            for tile in range(tiles):
                if tw == 64:
                    _row64(cbuf, vrow, 0, k, xp, tile, yt, r, 0)
                else:
                    _row16(cbuf, vrow, 0, k, xp, tile, yt, r, 0)


@njit(inline="always", **_OPTS)
def _decode_nm_row(irow, k, n, m, bits, per, lowmask, cbuf):
    """Column of each stored value of one N:M row: group start + position, without divisions."""
    if n == 2 and m == 4:  # 2:4: 16 two-bit positions per word, value i of a word in group i // 2
        for q in range(irow.shape[0]):
            w = np.int64(irow[q]) & 0xFFFFFFFF
            for i in range(16):
                cbuf[16 * q + i] = 32 * q + 4 * (i >> 1) + ((w >> (2 * i)) & 3)
        return
    g = 0
    cnt = 0
    j = 0
    for q in range(irow.shape[0]):
        w = np.int64(irow[q]) & 0xFFFFFFFF
        for i in range(per):
            if j >= k:
                break
            cbuf[j] = g + ((w >> (bits * i)) & lowmask)
            j += 1
            cnt += 1
            if cnt == n:
                cnt = 0
                g += m


@njit(parallel=True, **_OPTS)
def nm_spmm(values, index, n, m, bits, xp, yt, nthreads):
    """N:M packed times panels: decode each row's columns (group * m + position), then CSR."""
    tiles, out, tw = yt.shape
    k = values.shape[1]
    per = 32 // bits
    lowmask = (1 << bits) - 1
    for t in prange(nthreads):
        r0 = t * out // nthreads
        r1 = (t + 1) * out // nthreads
        cbuf = np.empty(k + 16, dtype=np.int32)
        for r in range(r0, r1):
            _decode_nm_row(index[r], k, n, m, bits, per, lowmask, cbuf)
            vrow = values[r]
            for tile in range(tiles):
                if tw == 64:
                    _row64(cbuf, vrow, 0, k, xp, tile, yt, r, 0)
                else:
                    _row16(cbuf, vrow, 0, k, xp, tile, yt, r, 0)


def num_threads() -> int:
    return numba.get_num_threads()
