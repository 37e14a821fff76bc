"""SparseGPT: prune column by column, updating the not-yet-pruned weights to compensate (OBS).

Paper: Frantar & Alistarh 2023, "SparseGPT: Massive Language Models Can Be Accurately Pruned in
One-Shot" (reference: IST-DASLab/sparsegpt `SparseGPT.fasterprune`; llm-compressor
`SparseGPTModifier`, whose argument names `block_size` and `dampening_frac` we use). No paper key
of ours; it is a baseline of `icbs`.

Rule, on a layer's weight W (out, in) with calibration inputs X (tokens, in):

    H = X^T X (the reference's 2/n factor, like any positive factor, cancels in every ratio below,
        so `stats.xtx` is used, which is X^T X up to a power of two for extreme inputs);
    dead inputs (H_jj = 0): H_jj = 1 and W[:, j] = 0;
    H += lambda I, lambda = dampening_frac * mean(diag H);
    U = upper Cholesky factor of H^{-1}  (U^T U = H^{-1});
    for each block of `block_size` columns [i1, i2):
        unstructured: the block's mask is chosen once, over the whole rows x block slab (the
            reference's comparison group, neither per row nor per layer), pruning the weights of
            lowest saliency W_ij^2 / U_jj^2, from the weights as updated by earlier blocks;
        for each column j of the block, in order:
            N:M: at j % m == 0, each row prunes the m - n lowest W_ij^2 / U_jj^2 of columns
                j..j+m-1, from the weights as already updated by columns < j;
            q = W[:, j] with its pruned entries set to 0;  err = (W[:, j] - q) / U_jj;
            W[:, j:i2] -= err U[j, j:i2]  (the OBS update of the row's remaining weights);
        W[:, i2:] -= Err U[i1:i2, i2:]  (the lazy batched update of later blocks).

U_jj^2 = [(H_{j:, j:})^{-1}]_00 and U_jj U[j, j:] = [(H_{j:, j:})^{-1}]_{0, :}, so each column step
is exactly the OBS update for removing column j from the problem over columns j and later.

Deviations from the reference, with reasons:

- Exact counts. The reference thresholds the slab at its `int(numel * sparsity)`-th smallest
  saliency with `<=`, which prunes one weight more per block (more on ties). Here block b, covering
  columns [i1, i2), prunes exactly `n_pruned(rows * i2, s) - n_pruned(rows * i1, s)` weights (the
  count rounded over cumulative columns), so the layer prunes exactly `round(s * out * in)`; equal
  saliencies keep the earlier weight (row-major order in the slab, as `patterns.select`).
- Precision: fp64 throughout (the reference and llm-compressor use fp32 with TF32 off); the
  result is returned in the input's dtype. Layers here are small enough that accuracy wins.
- Cholesky failure: the reference raises and llm-compressor silently falls back to H^{-1} = I (no
  reconstruction). Here the factorization is retried with the damping multiplied by 10 up to
  `CHOLESKY_RETRIES` times (with a warning naming the layer); if it still fails, `ValueError`.
- N:M needs `block_size % m == 0` (the reference assumes it silently: a group crossing a block
  boundary would be cut); otherwise `ValueError`.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch
from torch import Tensor

from sparsetorch.methods import MethodConfig
from sparsetorch.patterns import NM, Pattern, Unstructured, n_pruned, parse_pattern
from sparsetorch.pruning.base import PRUNERS, LayerPrune
from sparsetorch.pruning.calibrated import CalibratedPruner, LayerJob
from sparsetorch.pruning.calibration import LayerStats

CHOLESKY_RETRIES = 3  # extra attempts, each with 10x the damping, before giving up
DTYPE = torch.float64


@dataclass(frozen=True)
class SparseGPTConfig(MethodConfig):
    """SparseGPT hyperparameters (llm-compressor names, paper defaults).

    Attributes:
        block_size: columns per lazy-update block; also the width of the unstructured mask's
            comparison slab (rows x block_size).
        dampening_frac: damping added to diag(H), as a fraction of its mean.
    """

    block_size: int = 128
    dampening_frac: float = 0.01

    def __post_init__(self) -> None:
        if not isinstance(self.block_size, int) or isinstance(self.block_size, bool) or self.block_size < 1:
            raise ValueError(f"block_size must be a positive integer, got {self.block_size!r}")
        if not isinstance(self.dampening_frac, int | float) or not 0.0 < self.dampening_frac < float("inf"):
            raise ValueError(f"dampening_frac must be a positive number, got {self.dampening_frac!r}")


def inverse_hessian_factor(h: Tensor, dampening_frac: float, *, name: str = "layer") -> Tensor:
    """Upper Cholesky factor U of (H + lambda I)^{-1}, lambda = dampening_frac * mean(diag H).

    `h` must already have its dead diagonal entries set. On failure the damping is multiplied by 10,
    up to `CHOLESKY_RETRIES` times, with a warning.

    Raises:
        ValueError: the factorization failed at every damping, naming the layer.
    """
    mean_diag = torch.diagonal(h).mean()
    frac = dampening_frac
    for attempt in range(CHOLESKY_RETRIES + 1):
        damped = h + frac * mean_diag * torch.eye(h.shape[0], dtype=h.dtype, device=h.device)
        lower, info = torch.linalg.cholesky_ex(damped)
        if info == 0 and torch.isfinite(lower).all():
            upper, info = torch.linalg.cholesky_ex(torch.cholesky_inverse(lower), upper=True)
            if info == 0 and torch.isfinite(upper).all():
                if attempt:
                    warnings.warn(
                        f"{name}: SparseGPT's Hessian needed dampening_frac={frac:g} "
                        f"(asked {dampening_frac:g}) to be positive definite",
                        RuntimeWarning,
                        stacklevel=2,
                    )
                return upper
        frac *= 10.0
    raise ValueError(
        f"{name}: SparseGPT's Hessian X^T X is not positive definite even with dampening_frac up to "
        f"{frac / 10:g} (asked {dampening_frac:g}); check the calibration inputs of this layer"
    )


def _lowest(scores: Tensor, count: int) -> Tensor:
    """Bool mask of the `count` lowest entries of a 1-D tensor; ties mark the later entry."""
    pruned = torch.zeros_like(scores, dtype=torch.bool)
    if count > 0:
        # sort the reversed vector stably: among equal scores the later entry comes first
        order = torch.sort(scores.flip(0), stable=True).indices[:count]
        pruned[scores.numel() - 1 - order] = True
    return pruned


def _lowest_per_row(scores: Tensor, count: int) -> Tensor:
    """Per row of a 2-D tensor, mark the `count` lowest entries; ties mark the later entry."""
    pruned = torch.zeros_like(scores, dtype=torch.bool)
    if count > 0:
        size = scores.shape[1]
        order = torch.sort(scores.flip(1), dim=1, stable=True).indices[:, :count]
        pruned.scatter_(1, size - 1 - order, True)
    return pruned


def sparsegpt_prune(
    weight: Tensor,
    xtx: Tensor,
    *,
    pattern: Pattern,
    sparsity: float,
    block_size: int = 128,
    dampening_frac: float = 0.01,
    name: str = "layer",
) -> LayerPrune:
    """SparseGPT on one `(out, in)` weight given `xtx = X^T X` `(in, in)`; see the module docstring.

    Returns the kept mask and the reconstructed weight (zero where pruned), in `weight`'s dtype.

    Raises:
        ValueError: a pattern other than unstructured or N:M; N:M with `block_size % m != 0` or
            `in % m != 0`; a Hessian that stays non-positive-definite.
    """
    pattern = parse_pattern(pattern)
    if not isinstance(pattern, Unstructured | NM):
        raise ValueError(f"{name}: sparsegpt supports unstructured and N:M patterns, not {pattern}")
    rows, cols = weight.shape
    if isinstance(pattern, NM):
        if block_size % pattern.m:
            raise ValueError(
                f"{name}: sparsegpt with pattern {pattern} needs block_size % {pattern.m} == 0, "
                f"got block_size={block_size}"
            )
        if cols % pattern.m:
            raise ValueError(f"{name}: input dimension {cols} is not divisible by m={pattern.m} of {pattern}")
    w = weight.detach().to(DTYPE).clone()
    h = xtx.detach().to(device=w.device, dtype=DTYPE).clone()
    dead = torch.diagonal(h) == 0
    h[dead, dead] = 1.0  # (bool, bool) indexing: the diagonal entries of dead inputs
    w[:, dead] = 0.0
    u = inverse_hessian_factor(h, dampening_frac, name=name)

    pruned = torch.zeros(rows, cols, dtype=torch.bool, device=w.device)
    for i1 in range(0, cols, block_size):
        i2 = min(i1 + block_size, cols)
        w1 = w[:, i1:i2].clone()  # (rows, count): this block, updated column by column
        u1 = u[i1:i2, i1:i2]
        d = torch.diagonal(u1)  # U_jj, (count,)
        err1 = torch.zeros_like(w1)
        if isinstance(pattern, Unstructured):
            count = n_pruned(rows * i2, sparsity) - n_pruned(rows * i1, sparsity)
            saliency = (w1**2 / d**2).reshape(-1)  # the rows x block slab, row-major
            pruned1 = _lowest(saliency, count).reshape(w1.shape)
        else:
            pruned1 = torch.zeros_like(w1, dtype=torch.bool)
        for i in range(i2 - i1):
            if isinstance(pattern, NM) and i % pattern.m == 0:
                group = w1[:, i : i + pattern.m] ** 2 / d[i : i + pattern.m] ** 2  # (rows, m)
                pruned1[:, i : i + pattern.m] = _lowest_per_row(group, pattern.m - pattern.n)
            col = w1[:, i]
            q = torch.where(pruned1[:, i], 0.0, col)
            err = (col - q) / d[i]
            w1[:, i:] -= err[:, None] * u1[i, i:][None, :]
            w1[:, i] = q  # equal up to rounding; exact zeros where pruned
            err1[:, i] = err
        w[:, i1:i2] = w1
        w[:, i2:] -= err1 @ u[i1:i2, i2:]
        pruned[:, i1:i2] = pruned1
    mask = ~pruned
    return LayerPrune(mask, torch.where(mask, w, 0.0).to(weight.dtype))


@PRUNERS.register("sparsegpt")
class SparseGPT(CalibratedPruner):
    """OBS column by column with lazy block updates; masks from w^2 / [H^{-1}]_jj."""

    name = "sparsegpt"
    Config = SparseGPTConfig
    needs_xtx = True

    def prune_matrix(self, weight: Tensor, stats: LayerStats, job: LayerJob) -> LayerPrune:
        return sparsegpt_prune(
            weight,
            stats.xtx,
            pattern=job.pattern,
            sparsity=job.sparsity,
            block_size=self.config.block_size,
            dampening_frac=self.config.dampening_frac,
            name=job.name,
        )
