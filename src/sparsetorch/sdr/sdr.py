"""Sparse distributed representations (SDRs): binary vectors with few active bits, on torch bool tensors.

Paper `sdr-dendrites` (Ahmad & Hawkins 2016, "How do neurons operate on sparse distributed
representations?"). An SDR of size n with a active bits is x in {0, 1}^n with |x| = a, a << n.
The algebra the paper builds on:

- overlap(x, y) = x . y = |x AND y|; a segment D matches a pattern A when D . A >= theta (Eq. 1);
- union(x_1, ..., x_M) = x_1 OR ... OR x_M (Eq. 10), so |union| <= sum |x_i|;
- subsample(x, k): k of x's active bits, uniformly at random (a segment's s synapses);
- add_noise(x, v): v active bits move to v random inactive bits, so |x| is unchanged (the paper's
  noise model for false negatives).

An `SDR` holds a bool tensor `dense` of shape (*batch, n); every operation is batched over the
leading dimensions. Randomness always comes from an explicit `torch.Generator`; draws happen on the
generator's device.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["SDR", "random_sdr"]


def check_count(name: str, value: int, *, low: int, high: int | None = None, high_name: str = "") -> int:
    """`value` as an int in [low, high]; a clear error otherwise."""
    if isinstance(value, bool):
        raise TypeError(f"{name} must be an integer, got the bool {value!r}")
    try:
        value = operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an integer, got {value!r}") from None
    if value < low:
        raise ValueError(f"{name} must be >= {low}, got {value}")
    if high is not None and value > high:
        raise ValueError(f"{name}={value} exceeds {high_name or high}")
    return value


@dataclass(frozen=True, eq=False)
class SDR:
    """A batch of binary vectors: `dense` is a bool tensor of shape (*batch, n).

    Build one with `SDR.from_dense` (any 0/1 tensor), `SDR.from_indices` or `random_sdr`.
    """

    dense: Tensor

    def __post_init__(self) -> None:
        if not isinstance(self.dense, Tensor):
            raise TypeError(f"SDR.dense must be a torch.Tensor, got {type(self.dense).__name__}")
        if self.dense.dtype != torch.bool:
            raise ValueError(f"SDR.dense must be a bool tensor, got {self.dense.dtype}; use SDR.from_dense")
        if self.dense.ndim < 1 or self.dense.shape[-1] < 1:
            raise ValueError(f"an SDR needs at least one bit, got shape {tuple(self.dense.shape)}")

    # -- construction ---------------------------------------------------------------------------

    @classmethod
    def from_dense(cls, x: Tensor) -> SDR:
        """An SDR from a tensor whose entries are all 0 or 1 (bool, integer or float).

        Raises:
            ValueError: an entry is neither 0 nor 1 (NaN included).
        """
        if not isinstance(x, Tensor):
            x = torch.as_tensor(x)
        if x.dtype != torch.bool:
            binary = (x == 0) | (x == 1)
            if not bool(binary.all()):
                bad = x[~binary].flatten()[:3].tolist()
                raise ValueError(f"SDR input must be binary (0 or 1), found values such as {bad}")
            x = x != 0
        return cls(x)

    @classmethod
    def from_indices(cls, indices: Tensor, n: int) -> SDR:
        """An SDR of size `n` whose active bits are `indices`, shape (*batch, k) (k may be 0).

        Raises:
            ValueError: an index outside [0, n), or an index repeated within one SDR.
        """
        n = check_count("n", n, low=1)
        indices = torch.as_tensor(indices)
        if indices.dtype.is_floating_point or indices.dtype == torch.bool:
            raise ValueError(f"indices must be an integer tensor, got {indices.dtype}")
        if indices.ndim == 0:
            raise ValueError("indices must have at least one dimension: (*batch, k)")
        indices = indices.long()
        if indices.numel() and (int(indices.min()) < 0 or int(indices.max()) >= n):
            raise ValueError(
                f"indices must lie in [0, {n}), got range [{int(indices.min())}, {int(indices.max())}]"
            )
        dense = torch.zeros((*indices.shape[:-1], n), dtype=torch.bool, device=indices.device)
        dense.scatter_(-1, indices, True)
        if not torch.equal(
            dense.sum(-1), torch.full(indices.shape[:-1], indices.shape[-1], device=dense.device)
        ):
            raise ValueError("indices repeat within an SDR; each active bit must be listed once")
        return cls(dense)

    # -- shape and statistics ------------------------------------------------------------------

    @property
    def n(self) -> int:
        """Number of bits."""
        return self.dense.shape[-1]

    @property
    def batch_shape(self) -> torch.Size:
        return self.dense.shape[:-1]

    @property
    def active(self) -> Tensor:
        """Number of active bits |x|, shape `batch_shape` (long)."""
        return self.dense.sum(-1)

    @property
    def density(self) -> Tensor:
        """Fraction of active bits |x| / n, shape `batch_shape`."""
        return self.active.double() / self.n

    @property
    def sparsity(self) -> Tensor:
        """Fraction of inactive bits 1 - |x| / n (sparsity is always the fraction of zeros)."""
        return 1.0 - self.density

    def indices(self) -> Tensor:
        """Sorted active positions, shape (*batch, a); every SDR in the batch must have the same a.

        Raises:
            ValueError: the SDRs in the batch differ in their number of active bits.
        """
        counts = self.active.flatten()
        if counts.numel() and not bool((counts == counts[0]).all()):
            raise ValueError("indices() needs the same number of active bits in every SDR of the batch")
        a = int(counts[0]) if counts.numel() else 0
        # a stable sort of the bits by "inactive first" puts active positions last, in order
        order = torch.sort(self.dense.to(torch.uint8), dim=-1, stable=True).indices
        return order[..., self.n - a :]

    def __getitem__(self, index: int | slice | Tensor | tuple) -> SDR:
        """Index the batch dimensions (never the bits)."""
        if self.dense.ndim == 1:
            raise IndexError("a single SDR has no batch dimension to index")
        index = index if isinstance(index, tuple) else (index,)
        return SDR(self.dense[(*index, Ellipsis)])

    def to(self, device: torch.device | str) -> SDR:
        return SDR(self.dense.to(device))

    def __repr__(self) -> str:
        counts = self.active
        a = (
            int(counts.flatten()[0])
            if counts.numel() and bool((counts == counts.flatten()[0]).all())
            else None
        )
        active = f"a={a}" if a is not None else "a=mixed"
        return f"SDR(batch={tuple(self.batch_shape)}, n={self.n}, {active})"

    # -- algebra -------------------------------------------------------------------------------

    def _other(self, other: SDR) -> Tensor:
        if not isinstance(other, SDR):
            raise TypeError(f"expected an SDR, got {type(other).__name__}")
        if other.n != self.n:
            raise ValueError(f"SDR sizes differ: n={self.n} and n={other.n}")
        return other.dense

    def overlap(self, other: SDR) -> Tensor:
        """|x AND y|, the binary dot product (Eq. 1), broadcast over the batch dimensions (long)."""
        return (self.dense & self._other(other)).sum(-1)

    def union(self, *others: SDR) -> SDR:
        """x OR y OR ... (Eq. 10), broadcast over the batch dimensions."""
        dense = self.dense
        for other in others:
            dense = dense | self._other(other)
        return SDR(dense)

    def intersection(self, *others: SDR) -> SDR:
        """x AND y AND ..., broadcast over the batch dimensions."""
        dense = self.dense
        for other in others:
            dense = dense & self._other(other)
        return SDR(dense)

    __or__ = union
    __and__ = intersection

    def union_along(self, dim: int = 0) -> SDR:
        """The union of the SDRs along batch dimension `dim` (e.g. M stored patterns -> one SDR)."""
        if self.dense.ndim < 2:
            raise ValueError("union_along needs a batch of SDRs")
        batch_dims = self.dense.ndim - 1
        if not -batch_dims <= dim < batch_dims:
            raise ValueError(
                f"dim={dim} is not a batch dimension of an SDR batch of shape {tuple(self.batch_shape)}"
            )
        return SDR(self.dense.any(dim % batch_dims))

    def subsample(self, k: int, *, generator: torch.Generator) -> SDR:
        """k of each SDR's active bits, chosen uniformly at random (a segment's s synapses).

        Raises:
            ValueError: k < 0, or an SDR has fewer than k active bits.
        """
        k = check_count("k", k, low=0)
        fewest = int(self.active.min()) if self.active.numel() else 0
        if k > fewest:
            raise ValueError(f"cannot subsample k={k} bits from an SDR with only {fewest} active bits")
        return SDR(self._pick(self.dense, k, generator))

    def add_noise(self, bits: int, *, generator: torch.Generator) -> SDR:
        """Move `bits` active bits to `bits` random inactive positions; |x| stays the same.

        This is the paper's noise model: v of the a active cells are replaced by other cells.

        Raises:
            ValueError: bits < 0, or more bits than an SDR has active (or inactive) bits.
        """
        bits = check_count("bits", bits, low=0)
        active = self.active
        fewest_on = int(active.min()) if active.numel() else 0
        fewest_off = self.n - (int(active.max()) if active.numel() else 0)
        if bits > fewest_on or bits > fewest_off:
            raise ValueError(
                f"cannot move {bits} bits: an SDR has only {fewest_on} active and {fewest_off} inactive bits"
            )
        removed = self._pick(self.dense, bits, generator)
        added = self._pick(~self.dense, bits, generator)
        return SDR((self.dense & ~removed) | added)

    @staticmethod
    def _pick(candidates: Tensor, k: int, generator: torch.Generator) -> Tensor:
        """A bool tensor with k of each row's True entries, uniformly at random."""
        out = torch.zeros_like(candidates)
        if k == 0:
            return out
        # uniform keys on candidates, -1 elsewhere: the top k keys are a uniform k-subset
        keys = torch.rand(candidates.shape, generator=generator, device=generator.device)
        keys = keys.to(candidates.device).masked_fill_(~candidates, -1.0)
        return out.scatter_(-1, keys.topk(k, dim=-1).indices, True)


def random_sdr(
    n: int, a: int, *, generator: torch.Generator, batch: tuple[int, ...] | torch.Size = ()
) -> SDR:
    """SDRs of size n with exactly a active bits, uniform over all C(n, a) patterns.

    Returns an `SDR` whose `dense` has shape (*batch, n), on the generator's device.

    Raises:
        ValueError: a outside [0, n] or n < 1.
    """
    n = check_count("n", n, low=1)
    a = check_count("a", a, low=0, high=n, high_name=f"n={n} (a pattern cannot have more active bits than n)")
    batch = tuple(check_count("batch size", b, low=0) for b in batch)
    candidates = torch.ones((*batch, n), dtype=torch.bool, device=generator.device)
    return SDR(SDR._pick(candidates, a, generator))
