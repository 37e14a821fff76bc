"""iCBS: iterative Combinatorial Brain Surgeon, block coordinate descent over small blocks of weights.

Paper `icbs`: Rosenberg, Brubaker, Schuetz, Zhu, Kadıoğlu, Borujeni, Katzgraber 2024, "Scalable
iterative pruning of large language and vision models using block coordinate descent" (arXiv
2411.17796). It builds on the Combinatorial Brain Surgeon (Yu et al. 2022): choose which weights to
prune jointly, so that weights that cancel one another are taken into account, but solve that
combinatorial problem block by block, starting from a Wanda mask, trading compute for quality.
This is our own solver, written from the paper's description (its code is CC-BY-NC and needs a
compiled annealer; neither is used).

Objective, per layer with weight W (out, in), calibration inputs X and H = X^T X: the rows of W
are independent problems sharing H. Row r has original weights w and pruned weights w' (zero off
its mask); its loss is

    L_r = (w - w')^T H_d (w - w'),    H_d = H + lambda I  (update=True; lambda below)
                                      H_d = H             (update=False),

i.e. ||w X^T - w' X^T||^2 (plus lambda ||w - w'||^2). The layer objective is sum_r L_r. The
sparsity constraint is a fixed count of pruned weights per row (unstructured, the Wanda comparison
group) or per group of m consecutive inputs (N:M, n kept of every m).

Algorithm: start from the `init` mask (Wanda |W_ij| ||X_j||, or |W_ij|), with w' = w on it. Each
of `iterations` sweeps draws a random partition of the input columns (unstructured) or of the
m-groups (N:M) into blocks of `block_size` columns, from the passed generator, and visits every
block once. For a block B (the same columns in every row) and each row, everything outside B is
held fixed and the block subproblem is solved exactly by enumeration:

- update=True (default): minimize L_r over the set P of pruned weights in B (|P| fixed: the row's
  current count in B, or m - n per group under N:M) and over the values of the kept weights of B,
  which are re-adjusted optimally (OBS on the block). With A = H_d[B, B], Q = A^{-1},
  e = w - w' and c = H_d[B, not B] e[not B], the optimal unconstrained error is u0 = -Q c, and the
  cost of pruning P is, up to a constant, d_P^T (Q_PP)^{-1} d_P with d = w_B - u0; the new block
  error is e_B = u0 + Q[:, P] (Q_PP)^{-1} d_P (so e_P = w_P, w'_P = 0). Weights ARE updated.
- update=False: the CBS selection objective, a QUBO over the block's pruned indicators y: with the
  kept weights fixed at their original values (e_B = w_B * y), minimize y^T diag(w_B) A diag(w_B) y
  + 2 (w_B * c)^T y. Weights are NOT updated (w' = w on the mask, like Wanda), and L_r is exactly
  the reconstruction error, so this mode is directly comparable with Wanda.

The current choice is always feasible, so no block step, and no sweep, increases the objective:
the result is never worse than the initial mask and improves (weakly) with `iterations` for a
fixed seed (a run of t sweeps is a prefix of a run of t + 1). lambda = dampening_frac *
mean(diag H), as in SparseGPT: it makes A invertible (dead inputs, fewer tokens than inputs) and
keeps the re-adjusted weights from drifting along directions the calibration data do not see.

Deviations from the paper, with reasons:

- Blocks are random column sets shared by all rows, visited in full sweeps, and solved exactly by
  enumeration (unstructured: at most C(16, 8) = 12870 candidates, as `block_size <= 16`; N:M:
  C(m, m - n) per group, e.g. 6^2 = 36 for 2:4 at the default block of 8, capped at 2^16), not
  by a (quantum-amenable) annealer. Sharing the columns shares A, Q and (Q_PP)^{-1} across rows, so a
  block is a few batched tensor operations; the exact solve is what makes the descent monotone.
- update=True re-adjusts the kept weights of each block (OBS), which the QUBO form of the paper's
  block problem does not; update=False is the selection-only (QUBO) objective.
- Math in fp64; the weight is returned in the input's dtype.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from functools import lru_cache
from typing import NamedTuple

import torch
from torch import Tensor

from sparsetorch.methods import MethodConfig
from sparsetorch.patterns import NM, Pattern, select
from sparsetorch.pruning.base import PRUNERS, LayerPrune
from sparsetorch.pruning.calibrated import CalibratedPruner, LayerJob
from sparsetorch.pruning.calibration import LayerStats, as_matrix, from_matrix
from sparsetorch.pruning.wanda import wanda_scores

DTYPE = torch.float64
MAX_BLOCK = 16
MAX_CANDIDATES = 1 << 16  # candidate masks enumerated per block (C(16, 8) = 12870 unstructured)
_CHUNK = 1 << 22  # elements of (rows, candidates, k) held at once


@dataclass(frozen=True)
class ICBSConfig(MethodConfig):
    """iCBS hyperparameters (our defaults: the paper's annealer settings do not apply here).

    Attributes:
        iterations: sweeps of block coordinate descent over the whole layer (quality/time knob);
            0 returns the initial mask.
        block_size: weights of a row per block (whole m-groups under N:M: `max(1, block_size //
            m)` groups); the block problem is enumerated exactly, so at most 16.
        init: the starting mask, "wanda" (|W| ||X||, per row) or "magnitude" (|W|, per row).
        update: re-adjust the kept weights of each block (OBS); False selects masks only.
        dampening_frac: damping of H, as a fraction of mean(diag H), when `update` is True.
    """

    iterations: int = 5
    block_size: int = 8
    init: str = "wanda"
    update: bool = True
    dampening_frac: float = 0.01

    def __post_init__(self) -> None:
        if not isinstance(self.iterations, int) or isinstance(self.iterations, bool) or self.iterations < 0:
            raise ValueError(f"iterations must be a non-negative integer, got {self.iterations!r}")
        if (
            not isinstance(self.block_size, int)
            or isinstance(self.block_size, bool)
            or not (2 <= self.block_size <= MAX_BLOCK)
        ):
            raise ValueError(f"block_size must be an integer in [2, {MAX_BLOCK}], got {self.block_size!r}")
        if self.init not in ("wanda", "magnitude"):
            raise ValueError(f"init must be 'wanda' or 'magnitude', got {self.init!r}")
        if not isinstance(self.update, bool):
            raise ValueError(f"update must be a bool, got {self.update!r}")
        if not isinstance(self.dampening_frac, int | float) or not 0.0 < self.dampening_frac < float("inf"):
            raise ValueError(f"dampening_frac must be a positive number, got {self.dampening_frac!r}")


class ICBSResult(NamedTuple):
    """Mask and weight `(out, in)`, and the objective sum_r L_r before and after each sweep."""

    mask: Tensor
    weight: Tensor
    losses: list[float]


# --- candidate sets ------------------------------------------------------------------------------


@lru_cache(maxsize=256)
def _subsets(size: int, k: int) -> Tensor:
    """All k-subsets of range(size) as an index tensor (candidates, k), in lexicographic order."""
    if k == 0:
        return torch.zeros(1, 0, dtype=torch.long)
    return torch.tensor(list(itertools.combinations(range(size), k)), dtype=torch.long)


@lru_cache(maxsize=64)
def _nm_subsets(groups: int, m: int, drop: int) -> Tensor:
    """Pruned positions of a block of `groups` m-groups, `drop` per group: (candidates, groups*drop)."""
    per_group = list(itertools.combinations(range(m), drop))
    rows = [
        [g * m + j for g, choice in enumerate(choices) for j in choice]
        for choices in itertools.product(per_group, repeat=groups)
    ]
    return torch.tensor(rows, dtype=torch.long)


def _blocks(cols: int, pattern: Pattern, block_size: int, generator: torch.Generator) -> list[Tensor]:
    """A random partition of the columns into blocks (whole m-groups under N:M), each sorted."""
    if isinstance(pattern, NM):
        per_block = max(1, block_size // pattern.m)
        order = torch.randperm(cols // pattern.m, generator=generator)
        chunks = order.split(per_block)
        # group g -> columns g*m .. g*m+m-1, kept group by group (the layout `_nm_subsets` assumes)
        return [(c.sort().values[:, None] * pattern.m + torch.arange(pattern.m)).reshape(-1) for c in chunks]
    return [c.sort().values for c in torch.randperm(cols, generator=generator).split(block_size)]


# --- the block step ------------------------------------------------------------------------------


def _best(cost_fn, rows: int, candidates: Tensor, k: int) -> Tensor:
    """Per row, the index of the lowest-cost candidate; `cost_fn(row_slice, candidates)` -> (r, S)."""
    step = max(1, _CHUNK // max(1, candidates.shape[0] * max(k, 1)))
    return torch.cat(
        [cost_fn(slice(i, min(i + step, rows)), candidates).argmin(1) for i in range(0, rows, step)]
    )


def _solve_update(w_b: Tensor, c: Tensor, q: Tensor, candidates: Tensor) -> tuple[Tensor, Tensor]:
    """Exact block step with OBS re-adjustment for rows sharing a pruned count.

    Args:
        w_b: original weights of the block (r, b); c: H_d[B, not B] e[not B] per row (r, b);
        q: (H_d[B, B])^{-1} (b, b); candidates: pruned sets (S, k).

    Returns:
        The new error e_B = w_B - w'_B (r, b) and the pruned indicator (r, b).
    """
    u0 = -c @ q  # q symmetric: the unconstrained optimum of the block error
    d = w_b - u0
    k = candidates.shape[1]
    pruned = torch.zeros_like(w_b, dtype=torch.bool)
    if k == 0:
        return u0, pruned
    m_inv = torch.linalg.inv(q[candidates[:, :, None], candidates[:, None, :]])  # (S, k, k)

    def cost(rs: slice, cand: Tensor) -> Tensor:
        d_p = d[rs][:, cand]  # (r, S, k)
        return torch.einsum("rsk,skl,rsl->rs", d_p, m_inv, d_p)

    best = _best(cost, w_b.shape[0], candidates, k)
    chosen = candidates[best]  # (r, k)
    d_p = d.gather(1, chosen)
    coef = torch.einsum("rkl,rl->rk", m_inv[best], d_p)
    e_b = u0 + torch.einsum("rk,rkn->rn", coef, q[chosen])  # u0 + Q[:, P] (Q_PP)^{-1} d_P
    pruned.scatter_(1, chosen, True)
    e_b = torch.where(pruned, w_b, e_b)  # exact zeros of w' where pruned
    return e_b, pruned


def _solve_select(w_b: Tensor, c: Tensor, a: Tensor, candidates: Tensor) -> tuple[Tensor, Tensor]:
    """Exact block step of the selection-only (QUBO) objective; kept weights stay w."""
    k = candidates.shape[1]
    pruned = torch.zeros_like(w_b, dtype=torch.bool)
    if k:
        a_pp = a[candidates[:, :, None], candidates[:, None, :]]  # (S, k, k)

        def cost(rs: slice, cand: Tensor) -> Tensor:
            w_p = w_b[rs][:, cand]  # (r, S, k)
            return torch.einsum("rsk,skl,rsl->rs", w_p, a_pp, w_p) + 2 * (w_p * c[rs][:, cand]).sum(-1)

        pruned.scatter_(1, candidates[_best(cost, w_b.shape[0], candidates, k)], True)
    return torch.where(pruned, w_b, 0.0), pruned


def _objective(e: Tensor, h: Tensor) -> float:
    return float((e @ h * e).sum())


def icbs_search(
    weight: Tensor,
    xtx: Tensor,
    init_mask: Tensor,
    *,
    pattern: Pattern,
    iterations: int = 5,
    block_size: int = 8,
    update: bool = True,
    dampening_frac: float = 0.01,
    generator: torch.Generator,
    name: str = "layer",
) -> ICBSResult:
    """Block coordinate descent from `init_mask` (out, in); see the module docstring.

    The pruned count of every row (unstructured) or m-group (N:M) of `init_mask` is kept.

    Raises:
        ValueError: an N:M block with more than `MAX_CANDIDATES` choices, or a block of H that is
            not positive definite (possible only for a crafted `xtx`).
    """
    if isinstance(pattern, NM):
        per_block = max(1, block_size // pattern.m)
        choices = math.comb(pattern.m, pattern.m - pattern.n) ** per_block
        if choices > MAX_CANDIDATES:
            raise ValueError(
                f"{name}: icbs blocks of {per_block} group(s) of {pattern} have {choices} candidate masks "
                f"(at most {MAX_CANDIDATES} are enumerated); use a smaller block_size or m"
            )
    w = weight.detach().to(DTYPE)
    h = xtx.detach().to(device=w.device, dtype=DTYPE)
    cols = w.shape[1]
    if update:
        mean_diag = torch.diagonal(h).mean()
        lam = dampening_frac * mean_diag if mean_diag > 0 else h.new_tensor(1.0)
        h = h + lam * torch.eye(cols, dtype=DTYPE, device=w.device)
    mask = init_mask.to(device=w.device, dtype=torch.bool).clone()
    e = torch.where(mask, 0.0, w)  # w - w', with w' = w on the initial mask
    losses = [_objective(e, h)]
    for _ in range(iterations):
        g = e @ h  # refreshed each sweep; updated incrementally below
        for b in _blocks(cols, pattern, block_size, generator):
            b = b.to(w.device)
            a = h[b][:, b]
            w_b, e_b = w[:, b], e[:, b]
            c = g[:, b] - e_b @ a
            if update:
                lower, info = torch.linalg.cholesky_ex(a)
                if info != 0:
                    raise ValueError(f"{name}: icbs found a block of X^T X that is not positive definite")
                q = torch.cholesky_inverse(lower)
            new_e = torch.empty_like(e_b)
            new_pruned = torch.empty_like(e_b, dtype=torch.bool)
            if isinstance(pattern, NM):
                groups = b.numel() // pattern.m
                groups_of_rows = [(slice(None), _nm_subsets(groups, pattern.m, pattern.m - pattern.n))]
            else:
                counts = (~mask[:, b]).sum(1)
                groups_of_rows = [
                    (torch.nonzero(counts == k).reshape(-1), _subsets(b.numel(), int(k)))
                    for k in counts.unique()
                ]
            for rs, candidates in groups_of_rows:
                candidates = candidates.to(w.device)
                if update:
                    new_e[rs], new_pruned[rs] = _solve_update(w_b[rs], c[rs], q, candidates)
                else:
                    new_e[rs], new_pruned[rs] = _solve_select(w_b[rs], c[rs], a, candidates)
            g += (new_e - e_b) @ h[b]
            e[:, b] = new_e
            mask[:, b] = ~new_pruned
        losses.append(_objective(e, h))
    pruned_weight = torch.where(mask, w - e, 0.0)
    return ICBSResult(mask, pruned_weight.to(weight.dtype), losses)


def initial_mask(
    weight: Tensor, stats: LayerStats, *, init: str, pattern: Pattern, sparsity: float, shape, name: str
) -> Tensor:
    """The starting mask (out, in): Wanda's or magnitude's, compared within each row (or m-group)."""
    scores = wanda_scores(weight, stats.norm.to(weight.device)) if init == "wanda" else weight.abs()
    return as_matrix(select(from_matrix(scores, shape), pattern, sparsity, group="row", name=name))


@PRUNERS.register("icbs")
class ICBS(CalibratedPruner):
    """Block coordinate descent on the CBS objective from a Wanda mask, blocks solved exactly."""

    name = "icbs"
    paper = "icbs"
    Config = ICBSConfig
    needs_xtx = True
    group = "row"

    def prune_matrix(self, weight: Tensor, stats: LayerStats, job: LayerJob) -> LayerPrune:
        cfg = self.config
        pattern, name = job.pattern, job.name
        init = initial_mask(
            weight, stats, init=cfg.init, pattern=pattern, sparsity=job.sparsity, shape=job.shape, name=name
        )
        result = icbs_search(
            weight,
            stats.xtx,
            init,
            pattern=pattern,
            iterations=cfg.iterations,
            block_size=cfg.block_size,
            update=cfg.update,
            dampening_frac=cfg.dampening_frac,
            generator=job.generator,
            name=name,
        )
        return LayerPrune(result.mask, result.weight)
