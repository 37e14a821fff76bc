"""Checks and conversions for the compressed formats: does a format fit a mask, build, validate.

Why separate from `formats.py`: `validate` is what stands between a checkpoint file and a kernel
that trusts its indices, so it checks every size and index range a kernel relies on; keeping it
apart keeps the format definitions short.
"""

from __future__ import annotations

from dataclasses import fields

import torch
from torch import Tensor

from sparsetorch._checks import check_int
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
from sparsetorch.kernels.invariants import CHECKS, Need, check_row_ptr
from sparsetorch.patterns import NM, Block, Pattern, check_mask

MAX_DIM = 2**31 - 1  # the kernels index rows, columns and stored values with int32


def fits(fmt: str, mask: Tensor, pattern: Pattern | None = None, **options: int) -> str | None:
    """Why format `fmt` cannot hold `mask` exactly, or None when it can.

    `pattern` (the mask's recorded pattern) supplies N:M and block sizes when `options` don't; the
    structure itself is checked by `patterns.check_mask`, the one conformance check.
    """
    if fmt in ("dense", "bitmask", "csr"):
        return None
    if fmt == "nm":
        n = options.get("n", pattern.n if isinstance(pattern, NM) else 2)
        m = options.get("m", pattern.m if isinstance(pattern, NM) else 4)
        return conforms(mask, NM(n, m))
    if fmt == "block":
        bh = options.get("bh", pattern.h if isinstance(pattern, Block) else 4)
        bw = options.get("bw", pattern.w if isinstance(pattern, Block) else 16)
        return conforms(mask, Block(bh, bw))
    raise ValueError(f"unknown format {fmt!r}; known: {', '.join(FORMATS)}")


def build(fmt: str, weight: Tensor, mask: Tensor | None = None, **options: int) -> Format:
    """Build format `fmt` (`"bitmask"`, `"csr"`, `"nm"`, `"block"`, `"dense"`) from a weight and mask."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; known: {', '.join(FORMATS)}")
    return FORMATS[fmt].from_dense(weight, mask, **options)


def from_tensors(meta: dict, tensors: dict[str, Tensor]) -> Format:
    """Rebuild a format from `meta()` and `tensors()` (a checkpoint), validating everything.

    The header is read strictly (integers only, exactly the format's fields), then `validate`
    checks every size, dtype and index invariant before any kernel sees the tensors.

    Raises:
        ValueError: unknown format, missing or unexpected fields, inconsistent sizes or indices.
    """
    name = meta.get("format")
    if not isinstance(name, str) or name not in FORMATS:
        raise ValueError(f"unknown format {name!r} in checkpoint")
    cls = FORMATS[name]
    shape = meta.get("shape")
    if not isinstance(shape, list | tuple) or len(shape) != 2:
        raise ValueError(f"{name} format needs a 2-D shape, got {shape!r}")
    kwargs: dict = {
        "shape": tuple(
            check_int(f"{name} format field 'shape'", s, minimum=0, maximum=MAX_DIM) for s in shape
        )
    }
    tensor_fields = {f.name for f in fields(cls) if f.name != "shape" and f.type == "Tensor"}
    if set(tensors) != tensor_fields:
        raise ValueError(
            f"{name} format stores {sorted(tensor_fields)}, the checkpoint has {sorted(tensors)}"
        )
    for f in fields(cls):
        if f.name in tensors:
            kwargs[f.name] = tensors[f.name]
        elif f.name != "shape":
            if f.name not in meta:
                raise ValueError(f"{name} format is missing {f.name!r}")
            kwargs[f.name] = check_int(
                f"{name} format field {f.name!r}", meta[f.name], minimum=0, maximum=MAX_DIM
            )
    fmt = cls(**kwargs)
    validate(fmt)
    return fmt


def validate(fmt: Format) -> None:
    """Check every size, dtype and index invariant a kernel relies on (see `invariants`).

    Raises:
        ValueError: naming the format, its shape and the first broken invariant.
    """

    def need(cond: bool, what: str) -> None:
        if not cond:
            raise ValueError(f"corrupt {fmt.name} format for shape {fmt.shape}: {what}")

    for k, t in fmt.tensors().items():
        need(isinstance(t, Tensor), f"{k} must be a tensor")
        need(t.device.type == "cpu" and t.is_contiguous(), f"{k} must be a contiguous CPU tensor")
    _check_sizes(fmt, need)
    CHECKS[type(fmt)](fmt, need)


def _check_sizes(fmt: Format, need: Need) -> None:
    """Exact shapes and dtypes of every stored tensor, from the declared shape and row pointers."""
    out, inp = fmt.shape
    if isinstance(fmt, Dense):
        need(fmt.weight.dtype == torch.float32 and tuple(fmt.weight.shape) == (out, inp), "weight shape")
        need(fmt.mask_bits.dtype == torch.uint8, "mask_bits dtype")
        need(tuple(fmt.mask_bits.shape) == (-(-out * inp // 8),), "mask size")
    elif isinstance(fmt, Bitmask):
        check_row_ptr(fmt.row_ptr, out, need)
        need(tuple(fmt.bits.shape) == (out, -(-inp // CHUNK)) and fmt.bits.dtype == torch.int16, "bits")
        need(fmt.values.dtype == torch.float32, "values dtype")
        need(tuple(fmt.values.shape) == (int(fmt.row_ptr[-1]) + PAD,), "values size")
    elif isinstance(fmt, CSR):
        need(fmt.index_bits in (16, 32), "index_bits")
        need(fmt.index_bits == 32 or inp <= 65536, "16-bit columns for more than 65536 inputs")
        check_row_ptr(fmt.row_ptr, out, need)
        want = torch.int16 if fmt.index_bits == 16 else torch.int32
        need(fmt.cols.dtype == want and tuple(fmt.cols.shape) == (int(fmt.row_ptr[-1]),), "cols")
        need(fmt.values.dtype == torch.float32, "values dtype")
        need(tuple(fmt.values.shape) == (fmt.cols.numel() + PAD,), "values size")
    elif isinstance(fmt, NMPacked):
        need(0 < fmt.n < fmt.m <= 256, "N:M sizes need 0 < n < m <= 256")
        need(inp % fmt.m == 0, "in not divisible by m")
        k = inp // fmt.m * fmt.n
        need(tuple(fmt.values.shape) == (out, k) and fmt.values.dtype == torch.float32, "values shape")
        words = -(-k // (32 // fmt.bits))
        need(tuple(fmt.index.shape) == (out, words) and fmt.index.dtype == torch.int32, "index")
    elif isinstance(fmt, BlockSparse):
        need(fmt.bh > 0 and fmt.bw > 0 and out % fmt.bh == 0 and inp % fmt.bw == 0, "block size")
        check_row_ptr(fmt.row_ptr, out // fmt.bh, need)
        nb = int(fmt.row_ptr[-1])
        need(tuple(fmt.values.shape) == (nb, fmt.bh, fmt.bw) and fmt.values.dtype == torch.float32, "values")
        need(fmt.block_cols.dtype == torch.int32 and tuple(fmt.block_cols.shape) == (nb,), "block_cols")


def conforms(mask: Tensor, pattern: Pattern) -> str | None:
    """Why `mask` breaks its recorded `pattern` (`patterns.check_mask`), or None when it keeps to it."""
    try:
        check_mask(mask, pattern, name="mask")
    except ValueError as err:
        return str(err)
    return None
