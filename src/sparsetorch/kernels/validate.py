"""Checks and conversions for the compressed formats: does a format fit a mask, build, validate.

Why separate from `formats.py`: `validate` is what stands between a checkpoint file and a kernel
that trusts its indices, so it checks every size and index range a kernel relies on; keeping it
apart keeps the format definitions short.
"""

from __future__ import annotations

import math
from dataclasses import fields

import numpy as np
import torch
from torch import Tensor

from sparsetorch.kernels.formats import (
    CHUNK,
    CSR,
    FORMATS,
    PAD,
    Bitmask,
    BlockSparse,
    Dense,
    Format,
    NMPacked,
)
from sparsetorch.patterns import NM, Block, Pattern


def fits(fmt: str, mask: Tensor, pattern: Pattern | None = None, **options: int) -> str | None:
    """Why format `fmt` cannot hold `mask` exactly, or None when it can.

    `pattern` (the mask's recorded pattern) supplies N:M and block sizes when `options` don't.
    """
    out, inp = mask.shape
    if fmt in ("dense", "bitmask", "csr"):
        return None
    if fmt == "nm":
        n = options.get("n", pattern.n if isinstance(pattern, NM) else 2)
        m = options.get("m", pattern.m if isinstance(pattern, NM) else 4)
        if inp % m:
            return f"input dimension {inp} is not divisible by m={m}"
        worst = int(mask.view(out, inp // m, m).sum(-1).max()) if mask.numel() else 0
        return None if worst <= n else f"mask is not {n}:{m} (a group keeps {worst})"
    if fmt == "block":
        bh = options.get("bh", pattern.h if isinstance(pattern, Block) else 4)
        bw = options.get("bw", pattern.w if isinstance(pattern, Block) else 16)
        if out % bh or inp % bw:
            return f"shape {(out, inp)} is not divisible by the {bh}x{bw} block"
        tiles = mask.view(out // bh, bh, inp // bw, bw)
        partial = (tiles.any(3).any(1) != tiles.all(3).all(1)).any()
        return f"mask is not {bh}x{bw} block-structured" if bool(partial) else None
    raise ValueError(f"unknown format {fmt!r}; known: {', '.join(FORMATS)}")


def build(fmt: str, weight: Tensor, mask: Tensor | None = None, **options: int) -> Format:
    """Build format `fmt` (`"bitmask"`, `"csr"`, `"nm"`, `"block"`, `"dense"`) from a weight and mask."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; known: {', '.join(FORMATS)}")
    return FORMATS[fmt].from_dense(weight, mask, **options)


def from_tensors(meta: dict, tensors: dict[str, Tensor]) -> Format:
    """Rebuild a format from `meta()` and `tensors()` (a checkpoint), validating shapes.

    Raises:
        ValueError: unknown format, missing tensors or inconsistent sizes.
    """
    name = meta.get("format")
    if name not in FORMATS:
        raise ValueError(f"unknown format {name!r} in checkpoint")
    cls = FORMATS[name]
    kwargs: dict = {}
    for f in fields(cls):
        if f.name == "shape":
            kwargs["shape"] = tuple(int(s) for s in meta["shape"])
        elif f.name in tensors:
            kwargs[f.name] = tensors[f.name]
        elif f.name in meta:
            kwargs[f.name] = int(meta[f.name])
        else:
            raise ValueError(f"{name} format is missing {f.name!r}")
    fmt = cls(**kwargs)
    validate(fmt)
    return fmt


def validate(fmt: Format) -> None:
    """Check internal consistency (sizes, index ranges) so kernels never read out of bounds."""
    out, inp = fmt.shape

    def need(cond: bool, what: str) -> None:
        if not cond:
            raise ValueError(f"corrupt {fmt.name} format for shape {fmt.shape}: {what}")

    for k, t in fmt.tensors().items():
        need(t.device.type == "cpu" and t.is_contiguous(), f"{k} must be a contiguous CPU tensor")
    if isinstance(fmt, Bitmask | CSR | BlockSparse):
        rows = out if not isinstance(fmt, BlockSparse) else out // max(fmt.bh, 1)
        need(fmt.row_ptr.dtype == torch.int32 and fmt.row_ptr.numel() == rows + 1, "row_ptr size")
        need(int(fmt.row_ptr[0]) == 0 and bool((fmt.row_ptr[1:] >= fmt.row_ptr[:-1]).all()), "row_ptr order")
    if isinstance(fmt, Dense):
        need(fmt.weight.dtype == torch.float32 and tuple(fmt.weight.shape) == (out, inp), "weight shape")
        need(fmt.mask_bits.numel() == math.ceil(out * inp / 8), "mask size")
    elif isinstance(fmt, Bitmask):
        need(tuple(fmt.bits.shape) == (out, math.ceil(inp / CHUNK)) and fmt.bits.dtype == torch.int16, "bits")
        need(fmt.values.dtype == torch.float32, "values dtype")
        need(fmt.values.numel() == int(fmt.row_ptr[-1]) + PAD, "values size")
        counts = fmt.chunk_counts().sum(1)
        need(torch.equal(counts, (fmt.row_ptr[1:] - fmt.row_ptr[:-1]).to(torch.int64)), "row counts")
        if inp % CHUNK and out:
            tail = fmt.bits.numpy().view(np.uint16)[:, -1] >> (inp % CHUNK)
            need(not tail.any(), "bits beyond the last column")
    elif isinstance(fmt, CSR):
        need(fmt.index_bits in (16, 32), "index_bits")
        want = torch.int16 if fmt.index_bits == 16 else torch.int32
        need(fmt.cols.dtype == want and fmt.cols.numel() == int(fmt.row_ptr[-1]), "cols")
        need(
            fmt.values.dtype == torch.float32 and fmt.values.numel() == fmt.cols.numel() + PAD, "values size"
        )
        if fmt.cols.numel():
            c = fmt.col_index()
            need(int(c.min()) >= 0 and int(c.max()) < inp, "column index out of range")
    elif isinstance(fmt, NMPacked):
        NM(fmt.n, fmt.m)
        need(inp % fmt.m == 0, "in not divisible by m")
        k = inp // fmt.m * fmt.n
        per = 32 // fmt.bits
        need(tuple(fmt.values.shape) == (out, k) and fmt.values.dtype == torch.float32, "values shape")
        need(tuple(fmt.index.shape) == (out, math.ceil(k / per)) and fmt.index.dtype == torch.int32, "index")
        if fmt.values.numel():
            cols = fmt.columns()
            need(int(cols.max()) < inp, "position out of range")
        need(
            fmt.pad.dtype == torch.int64 and bool(((fmt.pad >= 0) & (fmt.pad < max(out * k, 1))).all()), "pad"
        )
    elif isinstance(fmt, BlockSparse):
        need(fmt.bh > 0 and fmt.bw > 0 and out % fmt.bh == 0 and inp % fmt.bw == 0, "block size")
        nb = int(fmt.row_ptr[-1])
        need(tuple(fmt.values.shape) == (nb, fmt.bh, fmt.bw) and fmt.values.dtype == torch.float32, "values")
        need(fmt.block_cols.dtype == torch.int32 and fmt.block_cols.numel() == nb, "block_cols")
        if nb:
            need(int(fmt.block_cols.min()) >= 0 and int(fmt.block_cols.max()) < inp // fmt.bw, "block col")
