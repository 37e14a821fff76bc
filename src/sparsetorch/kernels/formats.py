"""Compressed weight formats for sparse execution: bitmask, CSR, N:M packed, block-sparse, dense.

Why several: at batch 1 a sparse product is bound by the bytes it reads, and the most compact
format depends on the sparsity (measured with `benchmarks/kernel_speed.py`; numbers in docs/kernels.md):
a bitmask (1 bit per weight + fp32 values) for 50-90 %, CSR with 16-bit column indices at >= 95 %,
2-bit positions for 2:4, whole tiles for block-sparse masks. Every format is a frozen dataclass of CPU tensors for a 2-D weight
`(out, in)`, built from a dense weight and its mask (`from_dense`), with an exact byte count
(`nbytes`, every stored tensor) and a lossless way back (`to_dense`, `mask`).

Stored values follow one order per format, and `positions()` gives the flat index
(`row * in + col`) of each, so a gradient w.r.t. the stored values is `dW.flatten()[positions]`.

Unsigned indices are kept in signed torch tensors of the same width (torch has few uint16/uint32
ops) and reinterpreted by the kernels: CSR int16 columns and bitmask chunks are uint16, N:M index
words are uint32.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import ClassVar

import numpy as np
import torch
from torch import Tensor

from sparsetorch.patterns import NM

CHUNK = 16  # bitmask chunk: 16 columns, one uint16, one zmm of fp32
PAD = 16  # values are padded by 16 zeros so a kernel may load 16 floats at any stored offset


def _check_weight(weight: Tensor, mask: Tensor | None) -> Tensor:
    if not isinstance(weight, Tensor) or weight.dim() != 2:
        raise ValueError(
            f"sparse formats need a 2-D weight (out, in), got {getattr(weight, 'shape', weight)}"
        )
    if weight.dtype != torch.float32:
        raise TypeError(f"sparse formats store float32 weights, got {weight.dtype}")
    if weight.device.type != "cpu":
        raise ValueError(f"sparse formats are built on CPU tensors, got a weight on {weight.device}")
    if mask is None:
        return weight != 0
    if tuple(mask.shape) != tuple(weight.shape):
        raise ValueError(f"mask shape {tuple(mask.shape)} does not match weight shape {tuple(weight.shape)}")
    return mask.to(device="cpu", dtype=torch.bool)


def _u16_to_i16(a: np.ndarray) -> Tensor:
    return torch.from_numpy(np.ascontiguousarray(a.astype(np.uint16)).view(np.int16))


_POP8 = np.array([bin(i).count("1") for i in range(256)], dtype=np.int64)


def _popcount16(a: np.ndarray) -> np.ndarray:
    """Set bits of each uint16 (numpy < 2 has no `bitwise_count`)."""
    return _POP8[a & 0xFF] + _POP8[a >> 8]


def _row_ptr(counts: Tensor) -> Tensor:
    ptr = torch.zeros(counts.numel() + 1, dtype=torch.int64)
    torch.cumsum(counts, 0, out=ptr[1:])
    if ptr[-1] >= 2**31:
        raise ValueError("more than 2**31 stored values: split the layer")
    return ptr.to(torch.int32)


def _padded(values: Tensor) -> Tensor:
    return torch.cat([values.to(torch.float32), values.new_zeros(PAD, dtype=torch.float32)]).contiguous()


@dataclass(frozen=True)
class Format:
    """Base of the compressed formats: shape, byte count, dense/mask round trip."""

    name: ClassVar[str] = "format"
    shape: tuple[int, int]

    def tensors(self) -> dict[str, Tensor]:
        """The stored tensors by field name (what `nbytes` counts and checkpoints hold)."""
        return {
            f.name: getattr(self, f.name) for f in fields(self) if isinstance(getattr(self, f.name), Tensor)
        }

    @property
    def nbytes(self) -> int:
        """Exact bytes of every stored tensor (padding included)."""
        return sum(t.numel() * t.element_size() for t in self.tensors().values())

    @property
    def nnz(self) -> int:
        """Number of stored values (kept weights, plus explicit zeros a format must store)."""
        return int(self.positions().numel())

    def positions(self) -> Tensor:
        """Flat index `row * in + col` of each stored value, in storage order (int64)."""
        raise NotImplementedError

    def stored_values(self) -> Tensor:
        """The stored values (without padding), flat, in the order of `positions()`."""
        raise NotImplementedError

    def to_dense(self) -> Tensor:
        """The dense `(out, in)` float32 weight, zero where nothing is stored."""
        out, inp = self.shape
        dense = torch.zeros(out * inp, dtype=torch.float32)
        dense[self.positions()] = self.stored_values()
        return dense.view(out, inp)

    def mask(self) -> Tensor:
        """The bool mask the format was built from."""
        out, inp = self.shape
        m = torch.zeros(out * inp, dtype=torch.bool)
        m[self.positions()] = True
        return m.view(out, inp)

    def meta(self) -> dict[str, int | str]:
        """The non-tensor fields, JSON-serialisable (for checkpoints)."""
        return {
            "format": self.name,
            **{f.name: getattr(self, f.name) for f in fields(self) if f.name not in self.tensors()},
        }


@dataclass(frozen=True)
class Dense(Format):
    """The masked weight kept dense (when no sparse kernel beats `F.linear`), with its mask bits."""

    name: ClassVar[str] = "dense"
    weight: Tensor  # (out, in) fp32, zero where masked
    mask_bits: Tensor  # (ceil(out * in / 8),) uint8, numpy little-endian bit order

    @classmethod
    def from_dense(cls, weight: Tensor, mask: Tensor | None = None) -> Dense:
        mask = _check_weight(weight, mask)
        bits = np.packbits(mask.flatten().numpy(), bitorder="little")
        w = torch.where(mask, weight.detach(), 0.0).contiguous()
        return cls(shape=tuple(weight.shape), weight=w, mask_bits=torch.from_numpy(bits))

    def mask(self) -> Tensor:
        out, inp = self.shape
        bits = np.unpackbits(self.mask_bits.numpy(), count=out * inp, bitorder="little")
        return torch.from_numpy(bits.astype(bool)).view(out, inp)

    def positions(self) -> Tensor:
        return torch.arange(self.shape[0] * self.shape[1])

    def stored_values(self) -> Tensor:
        return self.weight.flatten()

    @property
    def nnz(self) -> int:
        return self.shape[0] * self.shape[1]


@dataclass(frozen=True)
class Bitmask(Format):
    """One bit per weight plus the kept values, row-major; decoded with `vexpandps`.

    Chunk `c` of row `r` covers columns `16c .. 16c + 15`; bit `b` of `bits[r, c]` says column
    `16c + b` is kept. Bytes: `out * ceil(in / 16) * 2 + 4 * nnz + 4 * (out + 1)` (+64 padding).
    """

    name: ClassVar[str] = "bitmask"
    bits: Tensor  # (out, ceil(in / 16)) int16 holding uint16 chunk masks
    values: Tensor  # (nnz + 16,) fp32, kept weights row-major, zero padded
    row_ptr: Tensor  # (out + 1,) int32, offset of each row's first value

    @classmethod
    def from_dense(cls, weight: Tensor, mask: Tensor | None = None) -> Bitmask:
        mask = _check_weight(weight, mask)
        out, inp = weight.shape
        chunks = math.ceil(inp / CHUNK)
        m = torch.zeros(out, chunks * CHUNK, dtype=torch.bool)
        m[:, :inp] = mask
        m = m.view(out, chunks, CHUNK).numpy()  # (out, chunks, 16)
        bits = (m.astype(np.uint32) << np.arange(CHUNK, dtype=np.uint32)).sum(-1)
        values = weight.detach()[mask]
        return cls(
            shape=(out, inp),
            bits=_u16_to_i16(bits),
            values=_padded(values),
            row_ptr=_row_ptr(mask.sum(1)),
        )

    def mask(self) -> Tensor:
        out, inp = self.shape
        b = self.bits.numpy().view(np.uint16).astype(np.uint32)[..., None]  # (out, chunks, 1)
        m = ((b >> np.arange(CHUNK, dtype=np.uint32)) & 1).astype(bool).reshape(out, -1)[:, :inp]
        return torch.from_numpy(np.ascontiguousarray(m))

    def chunk_counts(self) -> Tensor:
        """(out, chunks) int64: kept weights in each 16-column chunk."""
        return torch.from_numpy(_popcount16(self.bits.numpy().view(np.uint16)))

    def positions(self) -> Tensor:
        return self.mask().flatten().nonzero().flatten()

    def stored_values(self) -> Tensor:
        return self.values[: int(self.row_ptr[-1])]

    @property
    def nnz(self) -> int:
        return int(self.row_ptr[-1])


@dataclass(frozen=True)
class CSR(Format):
    """Compressed sparse rows with 16-bit (unsigned) or 32-bit column indices.

    16-bit indices hold any column of a layer with `in <= 65536` (all common layers); wider layers
    use 32-bit ones. Bytes: `(4 + index_bits / 8) * nnz + 4 * (out + 1)` (+64 padding).
    """

    name: ClassVar[str] = "csr"
    index_bits: int
    cols: Tensor  # (nnz,) int16 (as uint16) or int32
    values: Tensor  # (nnz + 16,) fp32, zero padded
    row_ptr: Tensor  # (out + 1,) int32

    @classmethod
    def from_dense(cls, weight: Tensor, mask: Tensor | None = None, *, index_bits: int | None = None) -> CSR:
        mask = _check_weight(weight, mask)
        out, inp = weight.shape
        if index_bits is None:
            index_bits = 16 if inp <= 65536 else 32
        if index_bits not in (16, 32):
            raise ValueError(f"CSR index_bits must be 16 or 32, got {index_bits}")
        if index_bits == 16 and inp > 65536:
            raise ValueError(f"CSR with 16-bit indices needs in <= 65536 columns, the layer has {inp}")
        rows, cols = mask.nonzero(as_tuple=True)
        col_t = _u16_to_i16(cols.numpy()) if index_bits == 16 else cols.to(torch.int32)
        return cls(
            shape=(out, inp),
            index_bits=index_bits,
            cols=col_t.contiguous(),
            values=_padded(weight.detach()[rows, cols]),
            row_ptr=_row_ptr(mask.sum(1)),
        )

    def col_index(self) -> Tensor:
        """Column indices as int64."""
        if self.index_bits == 16:
            return torch.from_numpy(self.cols.numpy().view(np.uint16).astype(np.int64))
        return self.cols.to(torch.int64)

    def row_index(self) -> Tensor:
        counts = (self.row_ptr[1:] - self.row_ptr[:-1]).to(torch.int64)
        return torch.repeat_interleave(torch.arange(self.shape[0]), counts)

    def positions(self) -> Tensor:
        return self.row_index() * self.shape[1] + self.col_index()

    def stored_values(self) -> Tensor:
        return self.values[: self.cols.numel()]

    @property
    def nnz(self) -> int:
        return int(self.cols.numel())


def nm_index_bits(m: int) -> int:
    """Bits per stored N:M position: 2 for m <= 4, 4 for m <= 16, 8 for m <= 256 (word aligned)."""
    for bits in (2, 4, 8):
        if m <= 1 << bits:
            return bits
    raise ValueError(f"N:M with m={m} > 256 is not supported")


@dataclass(frozen=True)
class NMPacked(Format):
    """N:M packed: `n` values per group of `m` columns plus each value's position in its group.

    Positions take 2 bits for 2:4, 4 bits for 4:8 or 2:8, packed LSB-first into uint32 words, each
    row starting a new word. Groups with fewer than `n` kept weights store explicit zeros, listed
    in `pad` so that `mask()` is exact. Bytes: `4 * out * in * n / m` + the index words.
    """

    name: ClassVar[str] = "nm"
    n: int
    m: int
    values: Tensor  # (out, in * n / m) fp32, sorted by column within each group
    index: Tensor  # (out, words) int32 holding uint32 words of `bits`-bit positions
    pad: Tensor  # (p,) int64 flat indices into `values` of padding zeros (usually empty)

    @property
    def bits(self) -> int:
        return nm_index_bits(self.m)

    @classmethod
    def from_dense(cls, weight: Tensor, mask: Tensor | None = None, *, n: int = 2, m: int = 4) -> NMPacked:
        mask = _check_weight(weight, mask)
        NM(n, m)  # validates 0 < n < m
        out, inp = weight.shape
        if inp % m:
            raise ValueError(f"{n}:{m} format needs the input dimension {inp} to be divisible by {m}")
        groups = mask.view(out, inp // m, m)  # (out, G, m)
        worst = int(groups.sum(-1).max()) if groups.numel() else 0
        if worst > n:
            raise ValueError(
                f"mask is not {n}:{m}: a group of {m} columns keeps {worst} weights (at most {n} allowed)"
            )
        ar = torch.arange(m)
        key = groups.to(torch.int64) * (m + 1) + (m - ar)  # kept first, then the earliest columns
        pos = key.topk(n, dim=-1).indices.sort(dim=-1).values  # (out, G, n)
        is_pad = ~groups.gather(-1, pos)
        vals = weight.detach().view(out, inp // m, m).gather(-1, pos).masked_fill(is_pad, 0.0)
        bits = nm_index_bits(m)
        per = 32 // bits
        k = inp // m * n
        words = math.ceil(k / per) if k else 0
        flat = torch.zeros(out, words * per, dtype=torch.int64)
        flat[:, :k] = pos.reshape(out, k)
        shifts = torch.arange(per, dtype=torch.int64) * bits
        packed = (flat.view(out, words, per) << shifts).sum(-1).numpy().astype(np.uint32)
        return cls(
            shape=(out, inp),
            n=n,
            m=m,
            values=vals.reshape(out, k).contiguous(),
            index=torch.from_numpy(np.ascontiguousarray(packed).view(np.int32)),
            pad=is_pad.reshape(-1).nonzero().flatten(),
        )

    def columns(self) -> Tensor:
        """(out, in * n / m) int64 column of every stored value."""
        out, inp = self.shape
        bits = self.bits
        per = 32 // bits
        k = inp // self.m * self.n
        words = self.index.numpy().view(np.uint32).astype(np.int64)[..., None]  # (out, words, 1)
        pos = (words >> (np.arange(per) * bits)) & ((1 << bits) - 1)
        pos = torch.from_numpy(pos.reshape(out, -1)[:, :k])
        group = torch.arange(k) // self.n
        return group * self.m + pos

    def positions(self) -> Tensor:
        rows = torch.arange(self.shape[0]).unsqueeze(1) * self.shape[1]
        return (rows + self.columns()).flatten()

    def stored_values(self) -> Tensor:
        return self.values.flatten()

    def mask(self) -> Tensor:
        m = torch.zeros(self.shape[0] * self.shape[1], dtype=torch.bool)
        pos = self.positions()
        keep = torch.ones(pos.numel(), dtype=torch.bool)
        keep[self.pad] = False
        m[pos[keep]] = True
        return m.view(self.shape)


@dataclass(frozen=True)
class BlockSparse(Format):
    """Block-sparse rows (BSR): dense `bh x bw` tiles where the mask keeps any weight.

    Only exact for block-structured masks (every tile all kept or all pruned); `from_dense`
    refuses other masks unless `allow_partial=True`, in which case pruned weights inside a kept
    tile are stored as zeros and `mask()` returns the tile-expanded mask.
    """

    name: ClassVar[str] = "block"
    bh: int
    bw: int
    values: Tensor  # (blocks, bh, bw) fp32
    block_cols: Tensor  # (blocks,) int32, tile column of each block
    row_ptr: Tensor  # (out / bh + 1,) int32, first block of each tile row

    @classmethod
    def from_dense(
        cls,
        weight: Tensor,
        mask: Tensor | None = None,
        *,
        bh: int = 4,
        bw: int = 16,
        allow_partial: bool = False,
    ) -> BlockSparse:
        mask = _check_weight(weight, mask)
        out, inp = weight.shape
        if out % bh or inp % bw:
            raise ValueError(f"block {bh}x{bw} format needs a weight shape divisible by it, got {(out, inp)}")
        tiles = mask.view(out // bh, bh, inp // bw, bw).permute(0, 2, 1, 3)  # (R, C, bh, bw)
        kept = tiles.any(-1).any(-1)  # (R, C)
        if not allow_partial and bool((tiles.all(-1).all(-1) != kept).any()):
            raise ValueError(
                f"mask is not {bh}x{bw} block-structured (a tile is partly kept): use another format"
            )
        w = torch.where(mask, weight.detach(), 0.0).view(out // bh, bh, inp // bw, bw).permute(0, 2, 1, 3)
        r, c = kept.nonzero(as_tuple=True)
        return cls(
            shape=(out, inp),
            bh=bh,
            bw=bw,
            values=w[r, c].contiguous(),
            block_cols=c.to(torch.int32),
            row_ptr=_row_ptr(kept.sum(1)),
        )

    def positions(self) -> Tensor:
        out, inp = self.shape
        counts = (self.row_ptr[1:] - self.row_ptr[:-1]).to(torch.int64)
        r = torch.repeat_interleave(torch.arange(out // self.bh), counts)
        c = self.block_cols.to(torch.int64)
        rr = r[:, None, None] * self.bh + torch.arange(self.bh)[None, :, None]  # (blocks, bh, 1)
        cc = c[:, None, None] * self.bw + torch.arange(self.bw)[None, None, :]  # (blocks, 1, bw)
        return (rr * inp + cc).flatten()

    def stored_values(self) -> Tensor:
        return self.values.flatten()


FORMATS: dict[str, type[Format]] = {f.name: f for f in (Dense, Bitmask, CSR, NMPacked, BlockSparse)}

# Checks and conversions (`fits`, `build`, `from_tensors`, `validate`) live in `validate.py`, which
# imports this file: this file stays the format definitions and imports nothing of the package above it.
__all__ = [
    "CSR",
    "FORMATS",
    "Bitmask",
    "BlockSparse",
    "Dense",
    "Format",
    "NMPacked",
    "nm_index_bits",
]
