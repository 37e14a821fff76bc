"""AVX-512 numba kernels: SpMV (batch 1) and SpMM (batch > 1) for every format.

Why these shapes of loop (each was measured; the numbers are in docs/kernels.md):

- batch 1 is bound by bytes, so each kernel streams its compact format once, decodes it with one
  SIMD instruction per 16 or 32 columns (`vexpandps` for the bitmask, `vgatherdps` for CSR,
  `vpermt2ps` for 2:4) and keeps 4 independent accumulators; the bitmask kernel prefetches its
  value stream explicitly (whose position depends on the bits), the others leave it to hardware;
- batch > 2 is bound by FLOPs: one parallel region per product packs X into tile-major panels
  `(tiles, in, T)` (T = 8, 16 or 64 batch columns; 16x16 blocks transposed in registers) and
  broadcasts each stored weight against one panel row (`_acc64` / `_acc16` / `_acc8`). Input
  columns are walked in blocks whose panel rows fit in L2 (`cpu.spmm_block_cols`), each block
  adding into a one-tile output buffer that is transposed into y, bias added, while still in L2
  (at 90%, 4096x4096, batch 64 the blocked kernel took 2.5-2.8 ms against 3.2-3.4 ms for one pass
  over a 1 MiB panel re-read from L3). `_split` says how threads share the work;
- batch 1-2 kernels split output rows into equal contiguous ranges (`prange` over the thread count).

Only import this module after checking the CPU has AVX-512 (see `cpu.py`).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from sparsetorch.kernels.simd import (
    popcount,
    prefetch,
    transpose16,
    transpose16_bias,
    vadd,
    vbcast,
    vbcast2,
    vfma,
    vhsum,
    vload,
    vload2x8,
    vstore,
    vstore8_halves,
    vzero,
)
from sparsetorch.kernels.simd_x86 import vcompress_cols, vdecode24, vexpand, vgather, vpermt2_24

_OPTS = {"fastmath": True, "cache": True, "nogil": True, "error_model": "numpy", "boundscheck": False}
PF_VALUES = 1024  # prefetch distance in the value stream (floats, 4 KiB ahead: ~100 ns of DRAM latency)
PF_BITS = 512  # prefetch distance in the bitmask stream (uint16 chunks, 1 KiB ahead)


# --- batch 1 -------------------------------------------------------------------------------------


@njit(parallel=True, **_OPTS)
def bitmask_spmv(bits, values, row_ptr, x, bias, y, nthreads):
    """y[r] = bias[r] + sum over kept (r, c) of w * x[c]; bits (out * chunks,) uint16, x padded to 16 * chunks."""
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
            y[r] = vhsum(vadd(vadd(a0, a1), vadd(a2, a3))) + bias[r]


@njit(parallel=True, **_OPTS)
def csr_spmv(cols, values, row_ptr, x, bias, y, nthreads):
    """CSR (uint16 or int32 columns) times a vector: one `vgatherdps` per 16 stored values."""
    out = y.shape[0]
    for t in prange(nthreads):
        r0 = t * out // nthreads
        r1 = (t + 1) * out // nthreads
        for r in range(r0, r1):
            j = np.int64(row_ptr[r])
            end = np.int64(row_ptr[r + 1])
            a0 = vzero()
            a1 = vzero()
            a2 = vzero()
            a3 = vzero()
            while j + 64 <= end:
                a0 = vfma(vload(values, j), vgather(x, cols, j), a0)
                a1 = vfma(vload(values, j + 16), vgather(x, cols, j + 16), a1)
                a2 = vfma(vload(values, j + 32), vgather(x, cols, j + 32), a2)
                a3 = vfma(vload(values, j + 48), vgather(x, cols, j + 48), a3)
                j += 64
            while j + 16 <= end:
                a0 = vfma(vload(values, j), vgather(x, cols, j), a0)
                j += 16
            s = vhsum(vadd(vadd(a0, a1), vadd(a2, a3)))
            while j < end:  # tail: fewer than 16 values
                s += values[j] * x[np.int64(cols[j])]
                j += 1
            y[r] = s + bias[r]


@njit(parallel=True, **_OPTS)
def nm24_spmv(values, index, x, bias, y, nthreads):
    """2:4 times a vector: 16 values per `vpermt2ps` over 32 columns; values (out, k), index (out, w).

    No software prefetch: the rows are long unit-stride streams, and the hardware prefetcher alone
    was 1.05-1.26x faster than one `prefetcht0` per 4 lines or per line (4096x4096, 1 and 2 threads).
    """
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
            y[r] = s + bias[r]


# --- batch > 1: panels, column blocks ---------------------------------------------------------------


@njit(inline="always", **_OPTS)
def _pack(x, xp, k0, k1):
    """Tiles [k0, k1) of x (B, in) C-contiguous -> xp (tiles, in, T): xp[t, c, j] = x[t * T + j, c],
    zero past the batch.

    16 x 16 blocks transposed in registers (`transpose16`); ragged edges element by element.
    """
    b, inp = x.shape
    tiles, _, tw = xp.shape
    xf = x.ravel()
    pf = xp.ravel()
    for r in range(k0 * tw, min(k1 * tw, b), 16):  # batch rows outer: loads walk along x's rows
        tile = r // tw
        for c0 in range(0, inp, 16):
            c1 = min(c0 + 16, inp)
            dst = tile * inp * tw + c0 * tw + (r - tile * tw)
            if r + 16 <= b and c1 - c0 == 16:
                transpose16(xf, r * inp + c0, inp, pf, dst, tw)
            else:
                for j in range(min(16, b - r)):
                    for c in range(c0, c1):
                        pf[dst + (c - c0) * tw + j] = xf[(r + j) * inp + c]
    if k1 == tiles:
        for row in range(b, tiles * tw):  # padding rows of the last tile
            for c in range(inp):
                xp[tiles - 1, c, row - (tiles - 1) * tw] = 0.0


@njit(inline="always", **_OPTS)
def _unpack(yt, bias, y, r0, r1, tile):
    """Output features [r0, r1) of one tile's yt (out, T) -> y rows tile * T ..., plus bias."""
    out, tw = yt.shape
    b = y.shape[0]
    tf = yt.ravel()
    yf = y.ravel()
    for row in range(tile * tw, min(tile * tw + tw, b), 16):  # stores walk along y's rows
        for f0 in range(r0, r1, 16):
            f1 = min(f0 + 16, r1)
            src = f0 * tw + (row - tile * tw)
            if row + 16 <= b and f1 - f0 == 16:
                transpose16_bias(tf, src, tw, yf, row * out + f0, out, bias, f0)
            else:
                for j in range(min(16, b - row)):
                    for r in range(f0, f1):
                        yf[(row + j) * out + r] = tf[src + (r - f0) * tw + j] + bias[r]


@njit(inline="always", **_OPTS)
def _split(t, out, tiles, nthreads):
    """Thread t's share: rows [r0, r1), tiles [k0, k1), and which panel copy (xp) and output tile
    buffer (yt) it uses.

    With at least one tile per thread, threads split the tiles: each packs, computes and unpacks
    only its own batch rows, in its own one-tile output buffer (stays in L2), from one shared
    panel array. Otherwise they split the output rows at multiples of 16 (whole `_unpack` blocks),
    each packing all of x into its own copy (no hand-off between cores) and writing its rows of
    one shared output buffer.
    """
    t = np.int64(t)  # prange indices may be unsigned: int64 | uint64 would unify to float64
    if tiles >= nthreads:
        return np.int64(0), np.int64(out), t * tiles // nthreads, (t + 1) * tiles // nthreads, np.int64(0), t
    nblk = (out + 15) // 16
    r0 = np.int64(min(out, 16 * (t * nblk // nthreads)))
    r1 = np.int64(min(out, 16 * ((t + 1) * nblk // nthreads)))
    return r0, r1, np.int64(0), np.int64(tiles), t, np.int64(0)


@njit(inline="always", **_OPTS)
def _acc64(cols, values, j, end, flat, out, first):
    """out[0:64] (+)= sum_j values[j] * flat[cols[j] * 64 : +64] over j in [j, end); store if `first`."""
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
        p = np.int64(cols[j]) * 64
        w = vbcast(values[j + 1])
        q = np.int64(cols[j + 1]) * 64
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
        p = np.int64(cols[j]) * 64
        a0 = vfma(v, vload(flat, p), a0)
        a1 = vfma(v, vload(flat, p + 16), a1)
        a2 = vfma(v, vload(flat, p + 32), a2)
        a3 = vfma(v, vload(flat, p + 48), a3)
    a0 = vadd(a0, b0)
    a1 = vadd(a1, b1)
    a2 = vadd(a2, b2)
    a3 = vadd(a3, b3)
    if not first:
        a0 = vadd(a0, vload(out, 0))
        a1 = vadd(a1, vload(out, 16))
        a2 = vadd(a2, vload(out, 32))
        a3 = vadd(a3, vload(out, 48))
    vstore(out, 0, a0)
    vstore(out, 16, a1)
    vstore(out, 32, a2)
    vstore(out, 48, a3)


@njit(inline="always", **_OPTS)
def _acc16(cols, values, j, end, flat, out, first):
    """As `_acc64` for 16-wide panels, with four weights in flight."""
    a0 = vzero()
    a1 = vzero()
    a2 = vzero()
    a3 = vzero()
    while j + 4 <= end:
        a0 = vfma(vbcast(values[j]), vload(flat, np.int64(cols[j]) * 16), a0)
        a1 = vfma(vbcast(values[j + 1]), vload(flat, np.int64(cols[j + 1]) * 16), a1)
        a2 = vfma(vbcast(values[j + 2]), vload(flat, np.int64(cols[j + 2]) * 16), a2)
        a3 = vfma(vbcast(values[j + 3]), vload(flat, np.int64(cols[j + 3]) * 16), a3)
        j += 4
    while j < end:
        a0 = vfma(vbcast(values[j]), vload(flat, np.int64(cols[j]) * 16), a0)
        j += 1
    acc = vadd(vadd(a0, a1), vadd(a2, a3))
    vstore(out, 0, acc if first else vadd(acc, vload(out, 0)))


@njit(inline="always", **_OPTS)
def _acc8(cols, values, j, end, flat, out, first):
    """As `_acc64` for 8-wide panels (batch <= 8): two weights per zmm (one in each half), 8 in flight."""
    a0 = vzero()
    a1 = vzero()
    a2 = vzero()
    a3 = vzero()
    while j + 8 <= end:
        a0 = vfma(vbcast2(values[j], values[j + 1]), vload2x8(flat, cols[j] * 8, cols[j + 1] * 8), a0)
        a1 = vfma(vbcast2(values[j + 2], values[j + 3]), vload2x8(flat, cols[j + 2] * 8, cols[j + 3] * 8), a1)
        a2 = vfma(vbcast2(values[j + 4], values[j + 5]), vload2x8(flat, cols[j + 4] * 8, cols[j + 5] * 8), a2)
        a3 = vfma(vbcast2(values[j + 6], values[j + 7]), vload2x8(flat, cols[j + 6] * 8, cols[j + 7] * 8), a3)
        j += 8
    while j + 2 <= end:
        a0 = vfma(vbcast2(values[j], values[j + 1]), vload2x8(flat, cols[j] * 8, cols[j + 1] * 8), a0)
        j += 2
    if j < end:  # odd count: the last weight in the low half, zero weight in the high half
        p = np.int64(cols[j]) * 8
        a1 = vfma(vbcast2(values[j], np.float32(0.0)), vload2x8(flat, p, p), a1)
    vstore8_halves(out, 0, vadd(vadd(a0, a1), vadd(a2, a3)), not first)


@njit(inline="always", **_OPTS)
def _acc(cols, values, j, end, flat, out, first, tw):
    if tw == 64:
        _acc64(cols, values, j, end, flat, out, first)
    elif tw == 16:
        _acc16(cols, values, j, end, flat, out, first)
    else:
        _acc8(cols, values, j, end, flat, out, first)


@njit(parallel=True, **_OPTS)
def csr_spmm(cols, values, bptr, cb, x, xp, yt, bias, y, nthreads):
    """y = x @ W.T + bias for CSR W; bptr (out, blocks + 1) value offsets of each column block.

    One parallel region: each thread packs its share of x (`_split`), computes its part of `yt`
    column block by column block, and unpacks it into y; xp is (1 or nthreads, tiles, in, T).
    """
    tiles, out, tw = xp.shape[1], yt.shape[1], yt.shape[2]
    nb = bptr.shape[1] - 1
    for t in prange(nthreads):
        r0, r1, k0, k1, xi, yi = _split(t, out, tiles, nthreads)
        _pack(x, xp[xi], k0, k1)
        for tile in range(k0, k1):
            flat = xp[xi, tile].ravel()
            for b in range(nb):
                for r in range(r0, r1):
                    _acc(
                        cols,
                        values,
                        np.int64(bptr[r, b]),
                        np.int64(bptr[r, b + 1]),
                        flat,
                        yt[yi, r],
                        b == 0,
                        tw,
                    )
            _unpack(yt[yi], bias, y, r0, r1, tile)


@njit(parallel=True, **_OPTS)
def bitmask_spmm(bits, values, bptr, cb, x, xp, yt, bias, y, nthreads):
    """As `csr_spmm` for a bitmask: per (row, column block), decode the kept columns, then `_acc`."""
    tiles, out, tw = xp.shape[1], yt.shape[1], yt.shape[2]
    chunks = bits.shape[0] // max(out, 1)
    nb = bptr.shape[1] - 1
    per_block = cb // 16
    for t in prange(nthreads):
        r0, r1, k0, k1, xi, yi = _split(t, out, tiles, nthreads)
        _pack(x, xp[xi], k0, k1)
        cbuf = np.empty(cb + 16, dtype=np.int32)
        for tile in range(k0, k1):
            flat = xp[xi, tile].ravel()
            for b in range(nb):
                c0 = b * per_block
                c1 = min(c0 + per_block, chunks)
                for r in range(r0, r1):
                    k = np.int64(0)
                    for c in range(c0, c1):
                        m = bits[r * chunks + c]
                        vcompress_cols(cbuf, k, 16 * c, m)
                        k += popcount(m)
                    off = np.int64(bptr[r, b])
                    _acc(cbuf, values[off : off + k], 0, k, flat, yt[yi, r], b == 0, tw)
            _unpack(yt[yi], bias, y, r0, r1, tile)


@njit(inline="always", **_OPTS)
def _decode_nm(irow, w0, c0, k, n, m, bits, per, lowmask, cbuf):
    """Columns of `k` stored values of one N:M row, from index word `w0` (group start at column `c0`)."""
    if n == 2 and m == 4:  # 2:4: 16 two-bit positions per word, value i of a word in group i // 2
        for q in range((k + 15) // 16):
            vdecode24(cbuf, 16 * q, c0 + 32 * q, irow[w0 + q])
        return
    g = c0
    cnt = 0
    for j in range(k):
        w = np.int64(irow[w0 + j // per]) & 0xFFFFFFFF
        cbuf[j] = g + ((w >> (bits * (j % per))) & lowmask)
        cnt += 1
        if cnt == n:
            cnt = 0
            g += m


@njit(parallel=True, **_OPTS)
def nm_spmm(values, index, n, m, bits, cb, x, xp, yt, bias, y, nthreads):
    """As `csr_spmm` for N:M packed: per (row, column block), decode columns (group * m + position).

    `cb` is a multiple of `m * (32 // bits)`, so every block starts on a group and an index word.
    """
    tiles, out, tw = xp.shape[1], yt.shape[1], yt.shape[2]
    inp = x.shape[1]
    per = 32 // bits
    lowmask = (1 << bits) - 1
    nb = (inp + cb - 1) // cb
    for t in prange(nthreads):
        r0, r1, k0, k1, xi, yi = _split(t, out, tiles, nthreads)
        _pack(x, xp[xi], k0, k1)
        cbuf = np.empty(cb + 16, dtype=np.int32)
        for tile in range(k0, k1):
            flat = xp[xi, tile].ravel()
            for b in range(nb):
                c0 = b * cb
                j0 = c0 // m * n
                k = min(cb, inp - c0) // m * n
                for r in range(r0, r1):
                    _decode_nm(index[r], j0 // per, c0, k, n, m, bits, per, lowmask, cbuf)
                    _acc(cbuf, values[r, j0 : j0 + k], 0, k, flat, yt[yi, r], b == 0, tw)
            _unpack(yt[yi], bias, y, r0, r1, tile)
