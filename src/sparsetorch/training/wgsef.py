"""WGSEF: the weighted group sparse envelope regularizer, trained by proximal gradient to a preset
group sparsity.

Paper key `wgsef`: Refael, Arbel and Huleihel 2022, "Learning k-Level Structured Sparse Neural
Networks Using Group Envelope Regularization" (arXiv 2212.12921).

Math, per target layer with groups G_1..G_m (its rows: output neurons, or filters of a Conv),
group norms nu_g(W) = ||W_g||_2, a group weight c (1, or 1/|G| with `group_weight="size"`) and
k = m - round(sparsity * m) groups to keep:

    sparse envelope   S_k(v) = conv( 1/2 ||v||^2 + indicator{ ||v||_0 <= k } ) = 1/2 ||v||_(k)^2,
                      the half squared k-support norm; on k-sparse v, S_k(v) = 1/2 ||v||^2
    WGSEF             E_k(W) = c * S_k(nu(W))
    regularizer       R_k(W) = E_k(W) - c/2 ||W||^2  >= 0,  = 0 exactly when at most k groups of W
                      are non-zero (the envelope gap: a distance-like penalty to k-group sparsity)
    objective         L(W) + lam * sum_layers R_k(W)

Proximal gradient: after each optimizer step (learning rate eta), every target is replaced by
`prox_{mu R_k}` with mu = eta * lam * c. The prox acts on the group norms and keeps directions:
W_g <- (t_g / nu_g) W_g, t = prox on the vector a = nu(W). For mu < 1,

    prox_{mu R_k}(a) = prox_{tau S_k}(a / (1 - mu)),   tau = mu / (1 - mu)

(complete the square: mu S - mu/2 |t|^2 + 1/2 |t - a|^2 = mu S + (1-mu)/2 |t - a/(1-mu)|^2 + const),
and prox_{tau S_k}(b), b sorted decreasing, has the closed form (from S_k's variational form
1/2 min { sum_i t_i^2 / theta_i : 0 < theta_i <= 1, sum theta_i <= k }): with an index split
r < l and a level c >= 0,

    t_i = b_i / (1 + tau)   i <= r          (theta_i = 1: the r largest, only rescaled)
    t_i = b_i - tau * c     r < i <= l      (theta_i = b_i / c - tau, soft-thresholded)
    t_i = 0                 i > l           (b_i <= tau * c: the group is zeroed)
    c   = sum_{r<i<=l} b_i / (k - r + tau (l - r))

where (r, l) is the split whose conditions b_r >= (1+tau) c > b_{r+1} and b_l > tau c >= b_{l+1}
hold (searched over all splits at once, O(m k) on tensors); when at most k groups are non-zero,
t = b / (1 + tau). In the composed prox the r largest groups come out unchanged (b/(1+tau) = a),
the middle ones shrink and the tail is zeroed. At mu >= 1 the prox is the projection onto k-group
-sparse weights (keep the k largest-norm groups), which is what the minimization gives at mu = 1
(min_t S(t) - <a, t> is attained at the top-k restriction of a, the gradient of S_k's conjugate).

Schedule: prox steps run from `start` to `end` (a fraction of training by default); at `end` the
masks are set to the k largest-norm groups of every layer (the mu = 1 projection) and fixed, so the
preset group sparsity holds exactly from then on. On k-group-sparse weights with fixed support R_k
is identically 0, so no prox is needed afterwards.

Assumptions and deviations (the paper's full text was not available):
- The paper minimizes "the neural network loss and the WGSEF" as a non-convex problem that
  reaches a preset sparsity at convergence. A convex envelope alone does not make iterates exactly
  k-sparse, so the regularizer is read as the envelope gap R_k = E_k - c/2 ||.||^2 (zero exactly
  on k-group-sparse points), whose prox has the closed form above. The final projection at `end`
  makes the preset sparsity exact in finite training.
- Weights are constant within a layer (all rows of a layer have the same size), so they only
  rescale lam per layer; the paper allows arbitrary per-group weights.
- Groups are rows (neurons / filters); biases are not part of a group, so a pruned neuron still
  emits its constant activation of the bias.
- Per-layer k (the same preset group sparsity in every target layer: "uniform"), not a global k.
- mu uses the learning rate of the parameter's optimizer group; with Adam this is a heuristic
  step size, not the exact proximal-gradient one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor

from sparsetorch.masks import stored
from sparsetorch.training.base import TRAINERS, SparseTrainingMethod
from sparsetorch.training.config import ScheduledConfig
from sparsetorch.training.ops import MaskUpdate, keep_top_among


@dataclass(frozen=True)
class WGSEFConfig(ScheduledConfig):
    """WGSEF hyperparameters.

    Attributes:
        sparsity: the preset group sparsity: the fraction of each target layer's rows zeroed.
        lam: regularization strength (>= 0; 0 gives plain magnitude group pruning at `end`).
        group_weight: "uniform" (c = 1) or "size" (c = 1 / row size).
        end: when the masks are fixed (step, or fraction of training).
    """

    sparsity: float = 0.5
    lam: float = 1.0
    group_weight: str = "uniform"
    end: int | float | None = 0.5

    def __post_init__(self) -> None:
        super().__post_init__()
        if isinstance(self.lam, bool) or not isinstance(self.lam, int | float) or not self.lam >= 0:
            raise ValueError(f"lam must be a non-negative number, got {self.lam!r}")
        if not math.isfinite(self.lam):
            raise ValueError(f"lam must be finite, got {self.lam!r}")
        if self.group_weight not in ("uniform", "size"):
            raise ValueError(f"group_weight must be 'uniform' or 'size', got {self.group_weight!r}")
        if self.end is None:
            raise ValueError("end must be set: the step (or fraction of training) where the masks are fixed")


def half_ksupport_squared(v: Tensor, k: int) -> Tensor:
    """S_k(v) = 1/2 ||v||_(k)^2, the sparse envelope of a vector (Argyriou et al. 2012, Prop. 2.1).

    With z = |v| sorted decreasing: the unique r in [0, k) with
    z_{k-r-1} > (1/(r+1)) sum_{i>=k-r} z_i >= z_{k-r} (z_0 = inf) gives
    ||v||_(k)^2 = sum_{i<k-r} z_i^2 + (1/(r+1)) (sum_{i>=k-r} z_i)^2.
    """
    z = v.detach().abs().double().flatten().sort(descending=True).values
    m = z.numel()
    if k >= m or int((z > 0).sum()) <= k:
        return 0.5 * (z**2).sum()
    for r in range(k):
        head, tail = z[: k - r - 1], z[k - r - 1 :]
        level = tail.sum() / (r + 1)
        upper = math.inf if k - r - 1 == 0 else float(z[k - r - 2])
        if upper > level >= z[k - r - 1]:
            return 0.5 * ((head**2).sum() + (r + 1) * level**2)
    raise AssertionError("no split satisfies the k-support conditions")  # unreachable for k >= 1


def prox_envelope(b: Tensor, k: int, tau: float) -> Tensor:
    """prox_{tau S_k}(b) for a non-negative vector b (any order), by the closed form above."""
    if tau < 0:
        raise ValueError(f"tau must be >= 0, got {tau}")
    b = b.double()
    m = b.numel()
    if tau == 0 or k >= m or int((b > 0).sum()) <= k:
        return b / (1 + tau)
    order = b.sort(descending=True, stable=True).indices
    s = b[order]
    cum = torch.cat([s.new_zeros(1), s.cumsum(0)])  # cum[j] = sum of the j largest
    r = torch.arange(k, dtype=torch.float64)[:, None]  # [k, 1]: groups kept unshrunk
    last = torch.arange(1, m + 1, dtype=torch.float64)[None, :]  # [1, m]: last non-zero (1-based)
    c = (cum[1:][None, :] - cum[:k][:, None]) / (k - r + tau * (last - r))  # [k, m]
    at = torch.cat([s.new_full((1,), math.inf), s, s.new_zeros(1)])  # at[i] = s_i 1-based, s_0 = inf
    ri, li = r.long(), last.long()
    ok = (
        (li > ri)
        & (at[ri] >= (1 + tau) * c)
        & ((1 + tau) * c >= at[ri + 1])
        & (at[li] >= tau * c)
        & (tau * c >= at[(li + 1).clamp(max=m + 1)])
    )
    out_sorted = torch.zeros_like(s)
    if ok.any():
        flat = int(ok.flatten().nonzero()[0])
        rr, ll = divmod(flat, m)
        ll += 1
        level = float(c[rr, ll - 1])
        out_sorted[:rr] = s[:rr] / (1 + tau)
        out_sorted[rr:ll] = s[rr:ll] - tau * level
    else:  # r = k, empty middle: the k largest rescaled, the rest zeroed
        out_sorted[:k] = s[:k] / (1 + tau)
    out = torch.empty_like(b)
    out[order] = out_sorted.clamp_min(0)
    return out


def prox_gap(a: Tensor, k: int, mu: float) -> Tensor:
    """prox_{mu (S_k - 1/2 ||.||^2)}(a) on non-negative group norms a; the top-k projection at mu >= 1."""
    if mu < 0:
        raise ValueError(f"mu must be >= 0, got {mu}")
    if mu == 0:
        return a.double().clone()
    if mu >= 1:
        return torch.where(
            keep_top_among(a, min(k, a.numel())), a.double(), a.new_zeros((), dtype=torch.float64)
        )
    return prox_envelope(a.double() / (1 - mu), k, mu / (1 - mu))


def prox_rows(weight: Tensor, k: int, mu: float) -> Tensor:
    """Apply `prox_gap` to the row norms of `weight` (rows = dim 0), keeping each row's direction."""
    rows = weight.detach().reshape(weight.shape[0], -1).double()  # [m, row size]
    norms = rows.norm(dim=1)
    target = prox_gap(norms, k, mu)
    scale = torch.where(norms > 0, target / norms.clamp_min(1e-300), torch.zeros_like(norms))
    return (rows * scale[:, None]).reshape(weight.shape).to(weight.dtype)


@TRAINERS.register("wgsef")
class WGSEF(SparseTrainingMethod):
    """Proximal steps of the group envelope gap until `end`, then the k largest rows fixed."""

    name = "wgsef"
    paper = "wgsef"
    Config = WGSEFConfig
    distributions: ClassVar[tuple[str, ...]] = ("uniform",)

    def __init__(self, config: WGSEFConfig | None = None, **overrides: Any) -> None:
        super().__init__(config, **overrides)
        self._keep: dict[str, int] = {}

    def check(self, shapes: dict[str, torch.Size]) -> None:
        if self.end is None:
            raise ValueError(f"{self.name}: end must be set")
        if self.total_steps is not None and self.end > self.total_steps:
            raise ValueError(
                f"{self.name}: end (step {self.end}) comes after training ({self.total_steps} steps)"
            )
        self._keep = {
            f: shape[0] - min(shape[0], round(self.config.sparsity * shape[0])) for f, shape in shapes.items()
        }

    def initial_masks(self, weights: dict[str, Tensor]) -> MaskUpdate:
        # Dense until `end`; the prox runs after every optimizer step in between.
        self.remove_at_finish(self.optimizer.register_step_post_hook(self._prox_hook))
        masks = {f: torch.ones_like(w, dtype=torch.bool) for f, w in weights.items()}
        return MaskUpdate(masks, dict.fromkeys(weights, 0), 0.0)

    def is_update_step(self, step: int) -> bool:
        return step == self.end

    def update_masks(
        self, step: int, weights: dict[str, Tensor], masks: dict[str, Tensor], grads: dict[str, Tensor]
    ) -> MaskUpdate:
        new, pruned = {}, {}
        for f, w in weights.items():
            norms = w.reshape(w.shape[0], -1).double().norm(dim=1)
            rows = keep_top_among(norms, self._keep[f])  # ties keep the earlier row
            new[f] = rows.reshape(-1, *([1] * (w.dim() - 1))).expand(w.shape).clone()
            pruned[f] = w.numel() - int(new[f].sum())
        total = sum(w.numel() for w in weights.values())
        return MaskUpdate(new, pruned, sum(pruned.values()) / total)

    def group_weight(self, weight: Tensor) -> float:
        """c: 1, or 1 / (row size) with `group_weight="size"`."""
        return 1.0 if self.config.group_weight == "uniform" else 1.0 / (weight.numel() // weight.shape[0])

    # --- internals --------------------------------------------------------------------------

    def _prox_hook(self, optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        step = self.step_count + 1  # the step just taken; `step()` has not counted it yet
        if self.finished or step <= self.start or step >= self.end or self.config.lam == 0:
            return
        lrs = {id(p): group["lr"] for group in optimizer.param_groups for p in group["params"]}
        with torch.no_grad():
            for f, (module, name) in self.owners.items():
                original = stored(module, name)
                mu = float(lrs[id(original)]) * self.config.lam * self.group_weight(original)
                original.copy_(prox_rows(original, self._keep[f], mu))
