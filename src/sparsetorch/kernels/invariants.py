"""The index invariants of each compressed format, checked vectorised (no Python loop over rows).

Why these and not only index ranges: a kernel sums every stored value it is given, while
`to_dense` / `decompile` write each position once (the last write wins). A checkpoint that stores
one position twice therefore loads into a model whose sparse forward differs from its own dense
meaning, silently. Each format must hold exactly the structure `from_dense` builds:

- CSR: columns in range and strictly increasing within each row (so unique);
- bitmask: row counts equal to the set bits, no bit past the last column;
- N:M: every position below `m`, strictly increasing within each group (so distinct), zero
  padding bits past the last position, `pad` entries in range and their values zero;
- block: tile columns in range and strictly increasing within each tile row;
- dense: the weight zero wherever the mask bits are off, no mask bit past the last weight;
- every row pointer starts at 0, never decreases and ends at the number of stored entries.

Each check raises `ValueError` through `need(ok, what)`, which names the format and the problem.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor

from sparsetorch.kernels.formats import CSR, Bitmask, BlockSparse, Dense, Format, NMPacked

Need = Callable[[bool, str], None]


def check_row_ptr(row_ptr: Tensor, rows: int, need: Need) -> None:
    """A row pointer of `rows + 1` int32 entries, starting at 0, never decreasing."""
    need(row_ptr.dtype == torch.int32 and tuple(row_ptr.shape) == (rows + 1,), "row_ptr size")
    need(int(row_ptr[0]) == 0, "row_ptr must start at 0")
    need(bool((row_ptr[1:] >= row_ptr[:-1]).all()), "row_ptr must never decrease")


def increasing_within(keys: Tensor, counts: Tensor) -> bool:
    """Whether `keys` (int64, stored order) strictly increase within each segment of `counts`."""
    if keys.numel() < 2:
        return True
    segment = torch.repeat_interleave(torch.arange(counts.numel()), counts)
    return bool(((keys[1:] > keys[:-1]) | (segment[1:] != segment[:-1])).all())


def _counts(row_ptr: Tensor) -> Tensor:
    return (row_ptr[1:] - row_ptr[:-1]).to(torch.int64)


def check_csr(fmt: CSR, need: Need) -> None:
    """Columns in range and strictly increasing within each row."""
    if not fmt.cols.numel():
        return
    cols = fmt.col_index()
    need(int(cols.min()) >= 0 and int(cols.max()) < fmt.shape[1], "column index out of range")
    need(increasing_within(cols, _counts(fmt.row_ptr)), "columns must strictly increase within each row")


def check_bitmask(fmt: Bitmask, need: Need) -> None:
    """Set bits per row equal the row pointer's counts; no bit past the last column."""
    out, inp = fmt.shape
    need(torch.equal(fmt.chunk_counts().sum(1), _counts(fmt.row_ptr)), "row counts")
    if inp % 16 and out:
        tail = fmt.bits.numpy().view(np.uint16)[:, -1] >> (inp % 16)
        need(not tail.any(), "bits beyond the last column")


def _nm_positions(fmt: NMPacked) -> tuple[np.ndarray, np.ndarray]:
    """(out, words * per) every decoded position, and the (out, k) ones in use."""
    out, inp = fmt.shape
    per = 32 // fmt.bits
    words = fmt.index.numpy().view(np.uint32).astype(np.int64)[..., None]
    every = ((words >> (np.arange(per) * fmt.bits)) & ((1 << fmt.bits) - 1)).reshape(out, -1)
    return every, every[:, : inp // fmt.m * fmt.n]


def check_nm(fmt: NMPacked, need: Need) -> None:
    """Positions below `m` and strictly increasing within each group; unused bits and padding zero."""
    out = fmt.shape[0]
    every, pos = _nm_positions(fmt)
    k = pos.shape[1]
    need(not every[:, k:].any(), "index bits beyond the last position")
    need(not (pos >= fmt.m).any(), f"position outside its group of {fmt.m}")
    groups = pos.reshape(out, k // fmt.n, fmt.n)
    need(bool((groups[..., 1:] > groups[..., :-1]).all()), "positions must strictly increase within a group")
    pad = fmt.pad
    need(pad.dtype == torch.int64 and pad.dim() == 1, "pad must be a 1-D int64 tensor")
    if pad.numel():
        need(int(pad.min()) >= 0 and int(pad.max()) < out * k, "pad index out of range")
        need(not bool(fmt.values.view(-1)[pad].any()), "padding values must be zero")


def check_block(fmt: BlockSparse, need: Need) -> None:
    """Tile columns in range and strictly increasing within each tile row."""
    if not fmt.block_cols.numel():
        return
    cols = fmt.block_cols.to(torch.int64)
    need(int(cols.min()) >= 0 and int(cols.max()) < fmt.shape[1] // fmt.bw, "block col out of range")
    need(increasing_within(cols, _counts(fmt.row_ptr)), "block columns must strictly increase within a row")


def check_dense(fmt: Dense, need: Need) -> None:
    """The weight is zero where the mask is off; no mask bit past the last weight."""
    out, inp = fmt.shape
    bits = fmt.mask_bits.numpy()
    if (out * inp) % 8 and bits.size:
        need(not bits[-1] >> ((out * inp) % 8), "mask bits beyond the last weight")
    need(not bool(fmt.weight.masked_select(~fmt.mask()).any()), "weight is not zero where masked")


CHECKS: dict[type[Format], Callable[..., None]] = {
    CSR: check_csr,
    Bitmask: check_bitmask,
    NMPacked: check_nm,
    BlockSparse: check_block,
    Dense: check_dense,
}
