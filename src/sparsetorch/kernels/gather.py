"""Numba kernels of the activation-sparse FFN (`activations.gather`); import only when numba is installed.

Why these loops (batch 1 to a few rows is bound by the bytes read, so every loop streams
its weights once; see docs/kernels.md):

- `gather_matmul`: y = bias + sum over active j of h[:, j] * Wt[j, :], with Wt = W.T stored
  row-major (in, out), so the weights of one active input unit are one contiguous row. Rows are
  taken 4 at a time (one pass over the output per 4 rows: 4 independent load streams, a quarter
  of the accumulator traffic). Threads split the *active rows* (each streams whole rows into its
  own partial output; partials are added at the end), which keeps every stream long even when the
  output is short (384 floats for MiniLM). Software prefetch of the rows ahead was measured (cold
  weights, 1536x384 to 11008x4096, 50% and 90%): no gain, up to 10% loss, so there is none.
- `dense_act`: the dense first layer h = act(W x + b) as a GEMV, 4 rows of W at a time (4 weight
  streams sharing each load of x), with the ReLU / threshold fused. Threads split the rows of W.
- `ffn_relu`: both in one call (one dispatch instead of two: the per-call overhead is a visible
  share of a MiniLM-sized FFN).

The entry points are serial functions that call a `parallel=True` part only when the weights read
reach `min_work` floats: a thread-pool launch costs ~15-20 us here, more than a whole MiniLM-sized
product at 90% sparsity, and the active count is only known inside the kernel.

Vectors use `sparsetorch.kernels.simd` (`f32x16`, generic LLVM vector IR: correct on any CPU numba
targets; no x86-only instruction is used here).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from sparsetorch.kernels.simd import vbcast, vfma, vhsum, vload, vstore, vzero

_OPTS = {"fastmath": True, "cache": True, "nogil": True, "error_model": "numpy", "boundscheck": False}
GROUP = 4  # rows summed per pass over the output


@njit(inline="always", **_OPTS)
def _axpy4(acc, w, r0, r1, r2, r3, v0, v1, v2, v3, out):
    """acc[0:out] += v0 * w[r0:] + v1 * w[r1:] + v2 * w[r2:] + v3 * w[r3:] (one pass over acc)."""
    b0 = vbcast(v0)
    b1 = vbcast(v1)
    b2 = vbcast(v2)
    b3 = vbcast(v3)
    o = 0
    while o + 16 <= out:
        a = vload(acc, o)
        a = vfma(vload(w, r0 + o), b0, a)
        a = vfma(vload(w, r1 + o), b1, a)
        a = vfma(vload(w, r2 + o), b2, a)
        a = vfma(vload(w, r3 + o), b3, a)
        vstore(acc, o, a)
        o += 16
    while o < out:
        acc[o] += v0 * w[r0 + o] + v1 * w[r1 + o] + v2 * w[r2 + o] + v3 * w[r3 + o]
        o += 1


@njit(inline="always", **_OPTS)
def _axpy1(acc, w, r0, v0, out):
    b0 = vbcast(v0)
    o = 0
    while o + 16 <= out:
        vstore(acc, o, vfma(vload(w, r0 + o), b0, vload(acc, o)))
        o += 16
    while o < out:
        acc[o] += v0 * w[r0 + o]
        o += 1


@njit(**_OPTS)
def active_union(h):
    """(idx, n): the columns j where any row of h (B, in) is nonzero, in increasing order."""
    bsz, hid = h.shape
    idx = np.empty(hid + 1, dtype=np.int64)
    n = 0
    if bsz == 1:
        h0 = h[0]
        for j in range(hid):  # branch-free: a data-dependent branch mispredicts at random sparsity
            idx[n] = j
            n += h0[j] != 0.0
        return idx, n
    for j in range(hid):
        for b in range(bsz):
            if h[b, j] != 0.0:
                idx[n] = j
                n += 1
                break
    return idx, n


@njit(inline="always", **_OPTS)
def _gather_range(h, w, out, idx, i0, i1, acc):
    """acc (B, out) += sum over active rows idx[i0:i1] of h[:, j] * Wt[j, :]."""
    bsz = h.shape[0]
    i = i0
    while i + GROUP <= i1:
        j0, j1, j2, j3 = idx[i], idx[i + 1], idx[i + 2], idx[i + 3]
        for b in range(bsz):
            _axpy4(
                acc[b], w, j0 * out, j1 * out, j2 * out, j3 * out, h[b, j0], h[b, j1], h[b, j2], h[b, j3], out
            )
        i += GROUP
    while i < i1:
        j0 = idx[i]
        for b in range(bsz):
            _axpy1(acc[b], w, j0 * out, h[b, j0], out)
        i += 1


@njit(inline="always", **_OPTS)
def _act(s, threshold, relu):
    return np.float32(0.0) if relu and not s > threshold else s


@njit(inline="always", **_OPTS)
def _dense_rows(w, inp, x, bias, threshold, relu, h, r0, r1):
    """h[:, r0:r1] = act(x @ W[r0:r1].T + bias[r0:r1]); act: z if z > threshold else 0 (when relu).

    Four rows at a time: four concurrent weight streams (more memory-level parallelism than one;
    measured faster than one row with software prefetch) sharing each load of x.
    """
    bsz = x.shape[0]
    r = r0
    while r + 4 <= r1:
        q0 = r * inp
        q1 = q0 + inp
        q2 = q1 + inp
        q3 = q2 + inp
        for b in range(bsz):
            xb = x[b]
            a0 = vzero()
            a1 = vzero()
            a2 = vzero()
            a3 = vzero()
            c = 0
            while c + 16 <= inp:
                xv = vload(xb, c)
                a0 = vfma(vload(w, q0 + c), xv, a0)
                a1 = vfma(vload(w, q1 + c), xv, a1)
                a2 = vfma(vload(w, q2 + c), xv, a2)
                a3 = vfma(vload(w, q3 + c), xv, a3)
                c += 16
            s0 = vhsum(a0)
            s1 = vhsum(a1)
            s2 = vhsum(a2)
            s3 = vhsum(a3)
            while c < inp:
                s0 += w[q0 + c] * xb[c]
                s1 += w[q1 + c] * xb[c]
                s2 += w[q2 + c] * xb[c]
                s3 += w[q3 + c] * xb[c]
                c += 1
            h[b, r] = _act(s0 + bias[r], threshold, relu)
            h[b, r + 1] = _act(s1 + bias[r + 1], threshold, relu)
            h[b, r + 2] = _act(s2 + bias[r + 2], threshold, relu)
            h[b, r + 3] = _act(s3 + bias[r + 3], threshold, relu)
        r += 4
    while r < r1:
        q0 = r * inp
        for b in range(bsz):
            xb = x[b]
            a0 = vzero()
            c = 0
            while c + 16 <= inp:
                a0 = vfma(vload(w, q0 + c), vload(xb, c), a0)
                c += 16
            s0 = vhsum(a0)
            while c < inp:
                s0 += w[q0 + c] * xb[c]
                c += 1
            h[b, r] = _act(s0 + bias[r], threshold, relu)
        r += 1


@njit(parallel=True, **_OPTS)
def _gather_parallel(h, w, out, bias, idx, n, nthreads):
    bsz = h.shape[0]
    y = np.empty((bsz, out), dtype=np.float32)
    part = np.zeros((nthreads - 1, bsz, out), dtype=np.float32)  # partial sums of threads 1..
    for b in range(bsz):
        y[b, :] = bias
    for t in prange(nthreads):
        acc = y if t == 0 else part[t - 1]  # thread 0 sums into y directly
        _gather_range(h, w, out, idx, t * n // nthreads, (t + 1) * n // nthreads, acc)
    for t in range(nthreads - 1):
        y += part[t]
    return y


@njit(**_OPTS)
def _gather(h, w, out, bias, idx, n, nthreads, min_work):
    """Serial, or split over threads when the rows actually read are worth a thread-pool launch."""
    if nthreads > 1 and n * out * h.shape[0] >= min_work:
        return _gather_parallel(h, w, out, bias, idx, n, nthreads)
    y = np.empty((h.shape[0], out), dtype=np.float32)
    for b in range(h.shape[0]):
        y[b, :] = bias
    _gather_range(h, w, out, idx, 0, n, y)
    return y


@njit(**_OPTS)
def gather_matmul(h, w, out, bias, nthreads, min_work):
    """y (B, out) = bias + h (B, in) @ Wt over active rows; w is Wt (in, out) flattened, bias (out,).

    Uses `nthreads` threads when at least `min_work` weight floats are read, else one.
    """
    idx, n = active_union(h)
    return _gather(h, w, out, bias, idx, n, nthreads, min_work)


@njit(parallel=True, **_OPTS)
def _dense_parallel(w, inp, x, bias, threshold, relu, h, nthreads):
    hid = bias.shape[0]
    for t in prange(nthreads):
        _dense_rows(w, inp, x, bias, threshold, relu, h, t * hid // nthreads, (t + 1) * hid // nthreads)


@njit(**_OPTS)
def dense_act(w, inp, x, bias, threshold, relu, nthreads, min_work):
    """h (B, hid) = act(x (B, inp) @ W.T + bias); w is W (hid, inp) flattened, bias (hid,).

    With `relu`, h = z where z > threshold, else 0 (threshold >= 0; 0 is plain ReLU). Uses
    `nthreads` threads when W has at least `min_work` floats, else one.
    """
    hid = bias.shape[0]
    h = np.empty((x.shape[0], hid), dtype=np.float32)
    if nthreads > 1 and hid * inp * x.shape[0] >= min_work:
        _dense_parallel(w, inp, x, bias, threshold, relu, h, nthreads)
    else:
        _dense_rows(w, inp, x, bias, threshold, relu, h, 0, hid)
    return h


@njit(**_OPTS)
def ffn_relu(w1, inp, x, b1, threshold, w2, out, b2, nthreads, min_work):
    """(y, h): h = relu_threshold(x @ W1.T + b1), y = b2 + h @ W2.T over the active rows of W2.T."""
    h = dense_act(w1, inp, x, b1, threshold, True, nthreads, min_work)
    idx, n = active_union(h)
    return _gather(h, w2, out, b2, idx, n, nthreads, min_work), h
