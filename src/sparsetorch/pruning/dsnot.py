"""DSnoT: training-free prune-and-grow of an initial mask to cancel the expected output error.

Paper `dsnot`: Zhang et al. 2024, "Dynamic Sparse No Training: Training-Free Fine-tuning for Sparse
LLMs" (reference: zyxxmu/DSnoT, `lib/prune.py` `prune_DSnoT`, `lib/layerwrapper.py`).

Rule, per output row i, on top of an initial mask from `init` (Wanda or per-row magnitude, made
with `patterns.select` exactly as those methods make it):

    D_ij = W_ij * E[x_j]                          (contribution of weight j to the row's mean output)
    e_i  = sum over pruned j of D_ij              (expected reconstruction error of the row)
    g_ij = D_ij / Var[x_j]^p                      (growth score, p = pow_of_var_regrowing)

Then up to `max_cycle_time` times, all rows in parallel, each with its own stopping flag:

- grow: if e_i > 0 the pruned weight of largest g_ij > 0, else the pruned weight of most negative
  g_ij < 0 (growing j changes e_i by -D_ij, so it moves e_i toward zero; a low input variance makes
  the correction reliable across tokens);
- prune, unstructured: among the initially kept weights whose D_ij has the sign opposite to e_i
  (pruning j changes e_i by +D_ij), the one of lowest Wanda score |W_ij| * ||X_j|| (Wanda whatever
  `init` is, as the reference does); under N:M: the currently kept, initially kept weight of lowest
  `init` score in the grown weight's group of m inputs, whatever its sign, so that every group keeps
  exactly n;
- the swap is made only if |e_i| > update_threshold before it and, with the same-sign check, if
  sign(e_i after) == sign(e_i before any swap); otherwise row i stops for good.

Candidates come from the initial mask only (lists walked once from their best end; under N:M the
initially kept weights not yet pruned): a grown weight is never pruned again, a pruned one never
regrown. Every swap is one grow and one prune (in one group under N:M), so a row keeps its exact
count of zeros and N:M groups stay valid. No weight is updated: the result is W * mask. With the same-sign check,
unstructured, every swap lowers |e_i| strictly; under N:M the pruned weight's D_ij may have either
sign, so |e_i| may grow while keeping its sign; without the check, e_i may overshoot past zero.

Deviations from the reference, with reasons:

- `without_same_sign`: the reference declares `--without_same_sign` with argparse `type=bool,
  default=True`, so its unstructured branch never checks the sign (any string given is True too),
  while its N:M branch always checks it. `None` (default) reproduces exactly that; True or False
  forces one behaviour for both patterns.
- Scale of e: the reference's mean is the per-sequence *sum* of x_j (seqlen * E[x_j], 2048 tokens
  in its runs), so its `update_threshold` 0.1 is in those units. Our statistics have no sequences:
  e is in per-token units (E[x_j] over all calibration tokens) and the default 0.1 is applied to it,
  which stops a row earlier than the reference does (0.1 / seqlen would match it).
- Variance: the reference averages per-sequence variances (within-sequence only); we use the pooled
  variance over all tokens (`LayerStats.var`). A constant input (variance 0) gives g = +-inf, i.e.
  it is grown first (its correction is exact for every token); the reference divides by zero there.
- Small layers: the reference walks its sorted lists by index and, once a list runs out (never at
  LLM widths within 50 cycles), reads entries of the wrong sign, already-kept weights or past the
  end. Here each list holds only real candidates (pruned with g of the needed sign, kept with D of
  the needed sign) and a row whose list is exhausted stops; under N:M a group with no prunable
  weight left (possible only when n < m - n) stops the row too.
- Initial mask: the counts and tie-breaks of `patterns.select` (round(s * in) zeros per row, earlier
  input kept on ties) instead of the reference's int(s * in) and stable sort. `init="sparsegpt"`
  (also in the reference) is left out: its score needs the OBS inverse Hessian, which belongs with
  a SparseGPT pruner. The reference's unused `--pow_of_var_pruning` has no counterpart.
- The reference skips DSnoT on every `mlp.*` layer by default (`--skip_layer mlp`, checked in both
  its unstructured and N:M branches); we apply it to every target, and `prune(..., ignore=...)` or
  `targets=` chooses the layers instead.
- Only unstructured and N:M patterns are supported (block and channel masks have no per-weight swap).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from sparsetorch.methods import MethodConfig
from sparsetorch.patterns import NM, select
from sparsetorch.pruning.base import PRUNERS, LayerPrune
from sparsetorch.pruning.calibrated import CalibratedPruner, LayerJob
from sparsetorch.pruning.calibration import LayerStats, as_matrix, from_matrix
from sparsetorch.pruning.wanda import wanda_scores

Init = Literal["wanda", "magnitude"]


@dataclass(frozen=True)
class DSnoTConfig(MethodConfig):
    """DSnoT hyperparameters, with the reference's defaults.

    Attributes:
        init: the initial mask: "wanda" (|W| * ||X||) or "magnitude" (|W|), both per output row.
        max_cycle_time: most swaps per row.
        update_threshold: a row stops once |e| <= this (per-token units, see the module docstring).
        pow_of_var_regrowing: p in the growth score D / Var^p (0: no variance weighting).
        without_same_sign: skip the check that a swap keeps the sign of e. None: as the reference
            (skipped for unstructured, checked for N:M).
    """

    init: Init = "wanda"
    max_cycle_time: int = 50
    update_threshold: float = 0.1
    pow_of_var_regrowing: float = 1.0
    without_same_sign: bool | None = None

    def __post_init__(self) -> None:
        if self.init == "sparsegpt":
            raise ValueError("dsnot: init='sparsegpt' is not supported (use 'wanda' or 'magnitude')")
        if self.init not in ("wanda", "magnitude"):
            raise ValueError(f"dsnot: init must be 'wanda' or 'magnitude', got {self.init!r}")
        if isinstance(self.max_cycle_time, bool) or not isinstance(self.max_cycle_time, int):
            raise ValueError(f"dsnot: max_cycle_time must be an integer, got {self.max_cycle_time!r}")
        if self.max_cycle_time < 0:
            raise ValueError(f"dsnot: max_cycle_time must be >= 0, got {self.max_cycle_time}")
        for field in ("update_threshold", "pow_of_var_regrowing"):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                raise ValueError(f"dsnot: {field} must be a finite number, got {value!r}")
            if value < 0:
                raise ValueError(f"dsnot: {field} must be >= 0, got {value}")
        if self.without_same_sign not in (None, True, False):
            raise ValueError(
                f"dsnot: without_same_sign must be None, True or False, not {self.without_same_sign!r}"
            )


def _ordered(keys: Tensor, candidates: Tensor, *, descending: bool) -> tuple[Tensor, Tensor]:
    """Per row, the columns where `candidates` holds, best first by `keys`, and how many there are.

    Ascending order breaks ties by the earlier column; descending order is the ascending one read
    from the end (later column first on ties), as the reference reads its sorted list from both ends.
    Columns that are not candidates follow, in no useful order. Returns (rows, in) and (rows,).
    """
    order = torch.sort(keys, dim=1, stable=True).indices
    if descending:
        order = order.flip(1)
    is_candidate = candidates.gather(1, order)
    # A stable sort on "not a candidate" moves candidates to the front, keeping their order.
    front = torch.sort((~is_candidate).to(torch.int8), dim=1, stable=True).indices
    return order.gather(1, front), is_candidate.sum(1)


class _List:
    """A fixed candidate list per row, walked once from its front."""

    def __init__(self, keys: Tensor, candidates: Tensor, *, descending: bool) -> None:
        self.order, self.count = _ordered(keys, candidates, descending=descending)
        self.next = torch.zeros_like(self.count)

    def peek(self, rows: Tensor) -> tuple[Tensor, Tensor]:
        """The next column of each row (arbitrary where exhausted) and whether it exists."""
        at = self.next.clamp(max=self.order.shape[1] - 1)
        return self.order[rows, at], self.next < self.count

    def advance(self, used: Tensor) -> None:
        self.next += used.long()


class _BySign:
    """Two candidate lists: one walked while a row's e > 0, the other while e <= 0."""

    def __init__(self, while_up: _List, while_down: _List) -> None:
        self.while_up, self.while_down = while_up, while_down

    def pick(self, rows: Tensor, up: Tensor, grow: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Per row, the next column of the list its sign of e selects, and whether there is one."""
        col_a, has_a = self.while_up.peek(rows)
        col_b, has_b = self.while_down.peek(rows)
        return torch.where(up, col_a, col_b), torch.where(up, has_a, has_b)

    def advance(self, rows: Tensor, swap: Tensor, up: Tensor, chosen: Tensor) -> None:
        self.while_up.advance(swap & up)
        self.while_down.advance(swap & ~up)


def _grow_side(contrib: Tensor, var: Tensor, pruned: Tensor, power: float) -> _BySign:
    """The pruned weights by growth score g = D / Var^p: largest g > 0 first (e > 0), most negative
    g < 0 first (e <= 0)."""
    grow_keys = contrib / var.pow(power).reshape(1, -1) if power else contrib.clone()
    grow_keys = torch.where(contrib == 0, torch.zeros_like(grow_keys), grow_keys)  # no 0/0 NaN
    return _BySign(
        _List(grow_keys, pruned & (grow_keys > 0), descending=True),
        _List(grow_keys, pruned & (grow_keys < 0), descending=False),
    )


def _row_prune_side(weight: Tensor, kept: Tensor, contrib: Tensor, norm: Tensor) -> _BySign:
    """Unstructured: the initially kept weights whose D opposes e (D < 0 while e > 0, D > 0 while
    e <= 0), lowest Wanda score first."""
    wanda = wanda_scores(weight, norm)
    return _BySign(
        _List(wanda, kept & (contrib < 0), descending=False),
        _List(wanda, kept & (contrib > 0), descending=False),
    )


class _GroupPrune:
    """N:M: prune the still-kept, initially kept weight of lowest `init` score in the grown one's group."""

    def __init__(self, kept: Tensor, init_scores: Tensor, nm: NM) -> None:
        self.prunable = kept.clone()  # initially kept and not yet pruned by a swap
        self.init_scores = init_scores
        self.m = nm.m
        self.offsets = torch.arange(nm.m, device=kept.device)

    def pick(self, rows: Tensor, up: Tensor, grow: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Per row, the column to prune and whether the grown weight's group has one left."""
        assert grow is not None, "N:M prunes in the grown weight's group"
        # The grown weight's group of m inputs: (out,) start -> (out, m) columns.
        group = (grow - grow % self.m).reshape(-1, 1) + self.offsets
        allowed = self.prunable.gather(1, group)
        scores = torch.where(allowed, self.init_scores.gather(1, group), torch.inf)
        return group[rows, scores.argmin(1)], allowed.any(1)  # argmin: the earlier input on ties

    def advance(self, rows: Tensor, swap: Tensor, up: Tensor, chosen: Tensor) -> None:
        self.prunable[rows[swap], chosen[swap]] = False


def dsnot_mask(
    weight: Tensor,
    kept: Tensor,
    stats: LayerStats,
    *,
    init_scores: Tensor,
    nm: NM | None,
    config: DSnoTConfig,
) -> Tensor:
    """DSnoT's mask from an initial `kept` mask, for a weight matrix (out, in).

    Args:
        weight: the layer as an (out, in) matrix.
        kept: the initial mask (True = kept), made from `init_scores`.
        stats: the layer's input statistics (mean, variance, norm per input column).
        init_scores: the initial method's scores (out, in); N:M prunes by them within a group.
        nm: the N:M pattern, or None for unstructured.
        config: the hyperparameters.

    Returns:
        The bool mask (out, in), with each row's count of zeros (and each N:M group's) unchanged.
    """
    device = weight.device
    out = weight.shape[0]
    rows = torch.arange(out, device=device)
    # D[i, j] = W_ij E[x_j]: what weight j adds to row i's mean output (float64 for the bookkeeping).
    contrib = weight.to(torch.float64) * stats.mean.to(device, torch.float64).reshape(1, -1)
    pruned = ~kept
    error = (contrib * pruned).sum(1)  # e per row (out,)
    sign0 = torch.sign(error)
    same_sign = not (config.without_same_sign if config.without_same_sign is not None else nm is None)
    var = stats.var.to(device, torch.float64)
    grow_side = _grow_side(contrib, var, pruned, config.pow_of_var_regrowing)
    if nm is None:
        prune_side: _BySign | _GroupPrune = _row_prune_side(weight, kept, contrib, stats.norm.to(device))
    else:
        prune_side = _GroupPrune(kept, init_scores, nm)

    mask = kept.clone()
    active = torch.ones(out, dtype=torch.bool, device=device)
    for _ in range(config.max_cycle_time):
        if not active.any():
            break
        up = error > 0
        grow, possible = grow_side.pick(rows, up)
        prune, can_prune = prune_side.pick(rows, up, grow)
        possible &= can_prune
        after = (error + contrib[rows, prune]) - contrib[rows, grow]
        swap = active & possible & (error.abs() > config.update_threshold)
        if same_sign:
            swap &= torch.sign(after) == sign0
        mask[rows[swap], grow[swap]] = True
        mask[rows[swap], prune[swap]] = False
        error = torch.where(swap, after, error)
        grow_side.advance(rows, swap, up, grow)
        prune_side.advance(rows, swap, up, prune)
        active = swap  # a row that cannot or may not swap stops for good
    return mask


@PRUNERS.register("dsnot")
class DSnoT(CalibratedPruner):
    """Wanda (or magnitude) mask, then per-row swaps that cancel the expected output error."""

    name = "dsnot"
    paper = "dsnot"
    Config = DSnoTConfig
    group = "row"

    def prune_matrix(self, weight: Tensor, stats: LayerStats, job: LayerJob) -> LayerPrune:
        config: DSnoTConfig = self.config  # type: ignore[assignment]
        if config.init == "wanda":
            init_scores = wanda_scores(weight, stats.norm.to(weight.device))
        else:
            init_scores = weight.abs()
        kept = as_matrix(
            select(from_matrix(init_scores, job.shape), job.pattern, job.sparsity, group="row", name=job.name)
        )
        nm = job.pattern if isinstance(job.pattern, NM) else None
        mask = dsnot_mask(weight, kept, stats, init_scores=init_scores, nm=nm, config=config)
        return LayerPrune(mask, weight * mask)
