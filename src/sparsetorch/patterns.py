"""Sparsity patterns and `select`, the one place where masks are made from scores.

A pattern says which shapes of sparsity are allowed:

- `Unstructured()`: any element may be zero.
- `NM(n, m)`: **n kept of every m** consecutive weights along the *input* dimension (dim 1 of a
  Linear weight `(out, in)`; dim 1 of a Conv weight `(out, in, *kernel)`, grouped at each
  output channel and kernel position). This is the layout sparse tensor cores use: `NM(2, 4)` keeps
  2 of every 4, sparsity 0.5.
- `Block(h, w)`: whole `h x w` tiles of a 2-D weight are kept or dropped.
- `Channel(dim)`: whole slices along `dim` are kept or dropped (`Channel(0)`: output channels).

`select(scores, pattern, sparsity)` keeps the highest scores. Counts are exact: it prunes
`round(sparsity * size)` elements of each comparison group (the tensor, or each row with
`group="row"`), and equal scores are broken by position (the earlier element is kept), so ties
never make it keep more or fewer than asked. Structured patterns score a block or channel by the
sum of its elements' scores. `keep_top(scores, k, dim)` is that tie rule on its own, shared by every
top-k in the library.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

Group = Literal["tensor", "row"]


@dataclass(frozen=True)
class Unstructured:
    """Any element may be pruned."""

    def __str__(self) -> str:
        return "unstructured"


@dataclass(frozen=True)
class NM:
    """Keep `n` of every `m` consecutive weights along the input dimension (dim 1)."""

    n: int
    m: int

    def __post_init__(self) -> None:
        if not (isinstance(self.n, int) and isinstance(self.m, int)) or not 0 < self.n < self.m:
            raise ValueError(f"N:M pattern needs integers 0 < n < m, got n={self.n}, m={self.m}")

    @property
    def sparsity(self) -> float:
        return 1.0 - self.n / self.m

    def __str__(self) -> str:
        return f"{self.n}:{self.m}"


@dataclass(frozen=True)
class Block:
    """Keep or drop whole `h x w` tiles of a 2-D weight."""

    h: int
    w: int

    def __post_init__(self) -> None:
        if not (isinstance(self.h, int) and isinstance(self.w, int)) or self.h < 1 or self.w < 1:
            raise ValueError(f"Block pattern needs positive integer sizes, got {self.h}x{self.w}")

    def __str__(self) -> str:
        return f"block{self.h}x{self.w}"


@dataclass(frozen=True)
class Channel:
    """Keep or drop whole slices along `dim` (0: output channels / rows, 1: input channels)."""

    dim: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.dim, int) or self.dim < 0:
            raise ValueError(f"Channel pattern needs a non-negative dim, got {self.dim!r}")

    def __str__(self) -> str:
        return "channel" if self.dim == 0 else f"channel:{self.dim}"


Pattern = Unstructured | NM | Block | Channel

_NM = re.compile(r"^(\d+):(\d+)$")
_BLOCK = re.compile(r"^block(\d+)x(\d+)$")
_CHANNEL = re.compile(r"^channel(?::(\d+))?$")


def parse_pattern(spec: str | Pattern) -> Pattern:
    """Parse `"unstructured"`, `"2:4"`, `"block4x4"`, `"channel"` or `"channel:1"`; patterns pass through."""
    if isinstance(spec, Unstructured | NM | Block | Channel):
        return spec
    if not isinstance(spec, str):
        raise TypeError(f"pattern must be a string or a Pattern, got {type(spec).__name__}")
    s = spec.strip().lower()
    if s in ("unstructured", "dense", ""):
        return Unstructured()
    if m := _NM.match(s):
        return NM(int(m[1]), int(m[2]))
    if m := _BLOCK.match(s):
        return Block(int(m[1]), int(m[2]))
    if m := _CHANNEL.match(s):
        return Channel(int(m[1] or 0))
    raise ValueError(
        f"unknown sparsity pattern {spec!r}: expected 'unstructured', 'N:M' (e.g. '2:4'), "
        "'blockHxW' (e.g. 'block4x4') or 'channel[:dim]'"
    )


def check(shape: tuple[int, ...] | torch.Size, pattern: Pattern, *, name: str = "tensor") -> None:
    """Raise `ValueError` naming `name` if `pattern` cannot apply to a tensor of `shape`."""
    shape = tuple(shape)
    where = f"{name} of shape {shape}"
    if isinstance(pattern, Unstructured):
        if len(shape) == 0:
            raise ValueError(f"{where}: cannot prune a scalar")
    elif isinstance(pattern, NM):
        if len(shape) < 2:
            raise ValueError(f"{where}: N:M pattern {pattern} needs a weight of rank >= 2 (out, in, ...)")
        if shape[1] % pattern.m:
            raise ValueError(
                f"{where}: input dimension {shape[1]} is not divisible by m={pattern.m} of pattern {pattern}"
            )
    elif isinstance(pattern, Block):
        if len(shape) != 2:
            raise ValueError(f"{where}: block pattern {pattern} needs a 2-D weight")
        if shape[0] % pattern.h or shape[1] % pattern.w:
            raise ValueError(f"{where}: shape is not divisible by the {pattern.h}x{pattern.w} block")
    elif isinstance(pattern, Channel):
        if pattern.dim >= len(shape):
            raise ValueError(f"{where}: channel pattern on dim {pattern.dim} needs rank > {pattern.dim}")
    else:
        raise TypeError(f"unknown pattern type {type(pattern).__name__}")


def check_mask(mask: Tensor, pattern: Pattern, *, name: str) -> None:
    """Raise a ValueError naming `name` unless the bool `mask` obeys `pattern` (the one conformance
    check: loaders, savers and the kernels' `fits` all call it): the shape fits (`check`), at most n
    kept in each N:M group (along dim 1, conv masks included), whole blocks or whole channels kept
    or dropped."""
    check(mask.shape, pattern, name=name)
    why = None
    if isinstance(pattern, NM) and mask.numel():
        worst = int(mask.movedim(1, -1).reshape(-1, pattern.m).sum(-1).max())  # (groups, m)
        why = f"mask is not {pattern} (a group keeps {worst})" if worst > pattern.n else None
    elif isinstance(pattern, Block):
        tiles = mask.reshape(mask.shape[0] // pattern.h, pattern.h, mask.shape[1] // pattern.w, pattern.w)
        if not bool((tiles.all(3).all(1) == tiles.any(3).any(1)).all()):
            why = f"mask is not {pattern.h}x{pattern.w} block-structured (a tile is partly kept)"
    elif isinstance(pattern, Channel):
        slices = mask.movedim(pattern.dim, 0).reshape(mask.shape[pattern.dim], -1)
        if not bool((slices.all(1) == slices.any(1)).all()):
            why = f"mask is not {pattern} (a slice is partly kept)"
    if why is not None:
        raise ValueError(f"{name} breaks its recorded pattern {pattern}: {why}")


def n_pruned(size: int, sparsity: float) -> int:
    """How many of `size` elements a sparsity prunes: `round(sparsity * size)` (exact counts)."""
    return min(size, round(sparsity * size))


def select(
    scores: Tensor,
    pattern: Pattern | str = "unstructured",
    sparsity: float | None = None,
    *,
    group: Group = "tensor",
    name: str = "scores",
) -> Tensor:
    """Keep the highest `scores` under `pattern`, returning a bool mask (True = kept).

    Args:
        scores: importance of each weight; higher is kept. Same shape as the weight.
        pattern: a `Pattern` or its string form.
        sparsity: fraction of zeros, in [0, 1). For N:M it may be omitted; if given it must equal
            `1 - n/m`.
        group: comparison group for unstructured selection: the whole `"tensor"` or each `"row"`
            (dim 0 slice, as Wanda compares within an output row).
        name: what to call the tensor in error messages (e.g. its FQN).

    Raises:
        ValueError: sparsity outside [0, 1), a shape the pattern cannot tile, NaN scores, or a
            pattern that does not fit the tensor's rank.
    """
    pattern = parse_pattern(pattern)
    if isinstance(sparsity, bool):  # an int in Python, but `sparsity=False` is a mistake, not 0
        raise ValueError(f"{name}: sparsity must be a number in [0, 1), got {sparsity!r}")
    if isinstance(pattern, NM):
        if sparsity is not None and not math.isclose(sparsity, pattern.sparsity, abs_tol=1e-9):
            raise ValueError(
                f"{name}: pattern {pattern} keeps {pattern.n} of every {pattern.m}, "
                f"i.e. sparsity {pattern.sparsity:g}, but sparsity={sparsity!r} was asked"
            )
        sparsity = pattern.sparsity
    if sparsity is None or not isinstance(sparsity, int | float) or not 0.0 <= sparsity < 1.0:
        raise ValueError(f"{name}: sparsity must be a number in [0, 1), got {sparsity!r}")
    check(scores.shape, pattern, name=name)
    if group not in ("tensor", "row"):
        raise ValueError(f"{name}: group must be 'tensor' or 'row', got {group!r}")
    if torch.isnan(scores).any():
        raise ValueError(f"{name}: scores contain NaN ({int(torch.isnan(scores).sum())} elements)")
    scores = scores.detach().float()

    if isinstance(pattern, Unstructured):
        if group == "row" and scores.dim() >= 1:
            return _keep_top(scores.reshape(scores.shape[0], -1), sparsity).reshape(scores.shape)
        return _keep_top(scores.reshape(1, -1), sparsity).reshape(scores.shape)
    if isinstance(pattern, NM):
        # (out, in, *k) -> (out, *k, in) -> (..., in/m, m): groups of m consecutive inputs.
        moved = scores.movedim(1, -1)
        groups = moved.reshape(-1, pattern.m)
        keep = _keep_top(groups, pattern.sparsity)
        return keep.reshape(moved.shape).movedim(-1, 1)
    if isinstance(pattern, Block):
        rows, cols = scores.shape
        # (rows, cols) -> (rows/h, h, cols/w, w) -> block sums (rows/h, cols/w)
        tiles = scores.reshape(rows // pattern.h, pattern.h, cols // pattern.w, pattern.w).sum((1, 3))
        keep = _keep_top(tiles.reshape(1, -1), sparsity).reshape(tiles.shape)
        return keep.repeat_interleave(pattern.h, 0).repeat_interleave(pattern.w, 1)
    # Channel: one score per slice along `dim`.
    dims = [d for d in range(scores.dim()) if d != pattern.dim]
    slices = scores.sum(dims) if dims else scores
    keep = _keep_top(slices.reshape(1, -1), sparsity).reshape(-1)
    view = [1] * scores.dim()
    view[pattern.dim] = -1
    return keep.reshape(view).expand(scores.shape).clone()


def keep_top(scores: Tensor, k: int, dim: int = -1) -> Tensor:
    """Bool mask of the `k` highest `scores` in each slice along `dim`; ties keep the earlier element.

    The library's one top-k rule: `select`, the training methods' masks and k-WTA all use it, so
    each slice has exactly `k` True entries whatever the ties (k = 0 keeps none, k = n all).
    Scores must not be NaN: callers reject them (`select`) or map them to -inf (k-WTA).

    Raises:
        ValueError: `k` is not an integer in [0, n] for n = `scores.shape[dim]`.
    """
    if scores.dim() == 0:
        return keep_top(scores.reshape(1), k, dim=0).reshape(())
    n = scores.shape[dim]
    if isinstance(k, bool) or not isinstance(k, int) or not 0 <= k <= n:
        raise ValueError(f"k must be an integer in [0, {n}] (the size of dim {dim}), got {k!r}")
    s = scores.detach().movedim(dim, -1)
    if k in (0, n):
        return torch.full(s.shape, k == n, dtype=torch.bool, device=s.device).movedim(-1, dim)
    kth = s.topk(k, dim=-1, sorted=True).values[..., -1:]  # (..., 1): the k-th highest score
    above = s > kth
    tie = s == kth
    need = k - above.sum(-1, keepdim=True)  # how many tied entries still win
    keep = above | (tie & (tie.cumsum(-1) <= need))  # the first `need` ties in index order
    return keep.movedim(-1, dim)


def _keep_top(rows: Tensor, sparsity: float) -> Tensor:
    """Per row of a 2-D tensor, keep all but the `n_pruned` lowest."""
    return keep_top(rows, rows.shape[1] - n_pruned(rows.shape[1], sparsity), dim=1)
