"""k-winners-take-all (k-WTA) with duty-cycle boosting, 1-D and 2-D (local and global).

Reference: Ahmad & Scheinkman (2019), "How Can We Be So Dense? The Benefits of Using Highly Sparse
Representations"; semantics follow Numenta's `nupic.torch` `KWinners` / `KWinners2d` (re-exported
by nupic.research as `KWinners2dLocal`), re-implemented here.

Rule. For scores `s = x * b`, with boost factors `b_i = exp((k/n - d_i) * beta)` from the duty
cycle `d_i` (how often unit i was active, a running mean) and the boost strength `beta`, the output
keeps `x_i` for the k largest `s_i` and is 0 elsewhere. The *raw* x is output: boosting only picks
the winners. Winners get gradient 1, the rest 0. In training, after each forward,

    P = min(duty_cycle_period, samples seen),   d <- (d * (P - B) + count(y > 0)) / P,

for a batch of B samples, and `update_boost_strength()` (called once per epoch by the user)
multiplies beta by `boost_strength_factor`. In eval mode `k_inference = int(k * k_inference_factor)`
winners are kept and the duty cycle is frozen.

2-D inputs `(B, C, H, W)`: `local=True` picks the top k channels at every position; `local=False`
picks the top k of all C*H*W values of a sample. The duty cycle is per channel: the fraction of
the H*W positions where the channel is active, averaged over samples.

Deviations from nupic.torch, each for a reason:
- ties are deterministic: among equal scores the lowest index wins (flattened C*H*W order for
  global 2-D), so exactly k units win (nupic's `topk` order is unspecified, nupic.torch#38);
- the counters are buffers: `learning_iterations` is saved in `state_dict` (nupic keeps a Python
  int, so the duty-cycle warm-up restarts on resume), and so are `duty_cycle` and `boost_strength`;
- a batch larger than the period does not drive the duty cycle negative: the update becomes the
  batch mean (nupic multiplies by `P - B < 0`);
- `k` or `density` (the fraction kept; nupic's `percent_on`) may be given; k outside [1, n]
  raises instead of asserting; `k_inference = int(k * factor)` everywhere (nupic rounds
  `n * percent_on * factor` for 2-D);
- 1-D k-WTA acts on the last dimension of any `(..., n)` input (tokens count as samples), not only
  `(B, n)`; 2-D global recomputes n (and k from `density`) from each input's shape;
- boost factors use the training target density k/n also in eval (nupic uses the current k);
  the factor differs by a positive constant, which never changes the winners.
"""

from __future__ import annotations

import math
from typing import ClassVar

import torch
from torch import Tensor, nn

from sparsetorch.activations.base import ACTIVATIONS
from sparsetorch.patterns import keep_top

__all__ = [
    "KWinners",
    "KWinners2d",
    "KWinnersBase",
    "binary_entropy",
    "check_k",
    "kwinners",
    "kwinners2d",
    "topk_mask",
    "update_boost_strength",
]


def check_k(k: int, n: int, *, name: str = "k") -> int:
    """Return `k` if it is an integer in [1, n].

    Raises:
        ValueError: `k` is not an integer or lies outside [1, n].
    """
    if isinstance(k, bool) or not isinstance(k, int):
        raise ValueError(f"{name} must be an integer in [1, {n}], got {k!r}")
    if not 1 <= k <= n:
        raise ValueError(f"{name} must be in [1, n] = [1, {n}], got {k}")
    return k


def topk_mask(scores: Tensor, k: int, *, dim: int = -1) -> Tensor:
    """Bool mask of the `k` largest `scores` along `dim`; among equal scores the lowest index wins.

    Exactly k entries per slice are True. NaN scores count as -inf (they win only when fewer than
    k other entries exist).

    Raises:
        ValueError: `k` outside [1, n] for n = `scores.shape[dim]`.
    """
    n = scores.shape[dim] if scores.dim() else 1
    check_k(k, n)
    s = scores.detach()
    if s.is_floating_point():
        s = torch.nan_to_num(s, nan=-math.inf, posinf=math.inf, neginf=-math.inf)
    return keep_top(s, k, dim=dim)


def kwinners(x: Tensor, k: int, *, dim: int = -1, boost: Tensor | None = None, relu: bool = False) -> Tensor:
    """Keep `x` at the k largest `x * boost` along `dim`, zero elsewhere (gradient only to winners).

    Args:
        x: activations.
        k: winners per slice along `dim`, in [1, n].
        dim: the competing dimension.
        boost: positive factors broadcastable to `x` that rank the units (not applied to the output).
        relu: also drop winners whose boosted score is <= 0 (a fused ReLU; may leave < k active).
    """
    scores = x.detach() if boost is None else x.detach() * boost
    mask = topk_mask(scores, k, dim=dim)
    if relu:
        mask &= scores > 0
    return x.masked_fill(~mask, 0)


def kwinners2d(x: Tensor, k: int, *, local: bool, boost: Tensor | None = None, relu: bool = False) -> Tensor:
    """k-WTA on `(B, C, H, W)`: top k channels per position (`local`) or top k of C*H*W per sample.

    Ties go to the lowest channel (local) or the lowest flattened (c, h, w) index (global).
    """
    if x.dim() != 4:
        raise ValueError(f"kwinners2d expects (B, C, H, W), got shape {tuple(x.shape)}")
    if local:
        return kwinners(x, k, dim=1, boost=boost, relu=relu)
    bsz = x.shape[0]
    scores = x.detach() if boost is None else x.detach() * boost
    flat = scores.reshape(bsz, -1)  # (B, C*H*W)
    mask = topk_mask(flat, k, dim=1)
    if relu:
        mask &= flat > 0
    return x.masked_fill(~mask.view_as(x), 0)


def binary_entropy(p: Tensor) -> Tensor:
    """Sum over units of the binary entropy (bits) of each unit's firing probability `p`."""
    p = p.detach().double().clamp(0.0, 1.0)
    q = 1.0 - p
    h = -(torch.xlogy(p, p) + torch.xlogy(q, q)) / math.log(2.0)
    return h.sum()


class KWinnersBase(nn.Module):
    """Shared state of `KWinners` and `KWinners2d`: boosting, the duty cycle and its buffers.

    Buffers (all saved in `state_dict`): `duty_cycle`, `boost_strength` (scalar float) and
    `learning_iterations` (scalar int64, samples seen in training).
    """

    def __init__(
        self,
        *,
        duty_shape: tuple[int, ...],
        k_inference_factor: float,
        boost_strength: float,
        boost_strength_factor: float,
        duty_cycle_period: int,
        relu: bool,
    ) -> None:
        super().__init__()
        if not boost_strength >= 0.0:
            raise ValueError(f"boost_strength must be >= 0, got {boost_strength}")
        if not 0.0 <= boost_strength_factor <= 1.0:
            raise ValueError(f"boost_strength_factor must be in [0, 1], got {boost_strength_factor}")
        if not k_inference_factor > 0.0:
            raise ValueError(f"k_inference_factor must be > 0, got {k_inference_factor}")
        if (
            isinstance(duty_cycle_period, bool)
            or not isinstance(duty_cycle_period, int)
            or duty_cycle_period < 1
        ):
            raise ValueError(f"duty_cycle_period must be a positive integer, got {duty_cycle_period!r}")
        self.k_inference_factor = float(k_inference_factor)
        self.boost_strength_factor = float(boost_strength_factor)
        self.duty_cycle_period = duty_cycle_period
        self.relu = relu
        self.register_buffer("duty_cycle", torch.zeros(duty_shape))
        self.register_buffer("boost_strength", torch.tensor(float(boost_strength)))
        self.register_buffer("learning_iterations", torch.zeros((), dtype=torch.long))
        # A Python copy of the strength, so forward never syncs with the device to read it.
        self._boost = float(boost_strength)

    def _load_from_state_dict(self, *args, **kwargs) -> None:
        super()._load_from_state_dict(*args, **kwargs)
        self._boost = float(self.boost_strength)

    def update_boost_strength(self) -> None:
        """Multiply the boost strength by `boost_strength_factor` (nupic: once per epoch)."""
        self._boost *= self.boost_strength_factor
        self.boost_strength.fill_(self._boost)

    def boost_factors(self, target_density: float) -> Tensor:
        """`exp((target_density - duty_cycle) * boost_strength)`, shaped like `duty_cycle`."""
        return torch.exp((target_density - self.duty_cycle) * self._boost)

    @torch.no_grad()
    def _update_duty_cycle(self, counts: Tensor, batch: int) -> None:
        """d <- (d * max(P - B, 0) + counts) / max(P, B), P = min(period, samples seen)."""
        self.learning_iterations += batch
        period = self.learning_iterations.clamp(max=self.duty_cycle_period).to(self.duty_cycle.dtype)
        keep = (period - batch).clamp(min=0)
        denom = period.clamp(min=batch)
        self.duty_cycle.mul_(keep).add_(counts.reshape(self.duty_cycle.shape)).div_(denom)

    def entropy(self) -> Tensor:
        """Total binary entropy (bits) of the duty cycles (a measure of how evenly units fire)."""
        return binary_entropy(self.duty_cycle)


def _k_from(n: int, k: int | None, density: float | None) -> int:
    if (k is None) == (density is None):
        raise ValueError("give exactly one of k (winners) or density (fraction kept)")
    if density is not None:
        if not 0.0 < density <= 1.0:
            raise ValueError(f"density must be in (0, 1], got {density}")
        kk = round(n * density)
        if kk < 1:
            raise ValueError(f"density {density} of n={n} units rounds to k=0; k must be in [1, {n}]")
        return kk
    return check_k(k, n)


def _k_inference(k: int, factor: float, n: int) -> int:
    ki = int(k * factor)
    if not 1 <= ki <= n:
        raise ValueError(
            f"k_inference = int(k * k_inference_factor) = int({k} * {factor}) = {ki} must be in [1, n] = [1, {n}]"
        )
    return ki


@ACTIVATIONS.register("kwta")
class KWinners(KWinnersBase):
    """k-WTA over the last dimension of `(..., n)` inputs, with duty-cycle boosting.

    Args:
        n: units.
        k: winners in training (give `k` or `density`).
        density: fraction of units kept in training; k = round(n * density).
        k_inference_factor: eval mode keeps int(k * factor) winners (nupic default 1.5).
        boost_strength: beta >= 0; 0 disables boosting (nupic default 1.0).
        boost_strength_factor: beta multiplier applied by `update_boost_strength()` (default 0.9).
        duty_cycle_period: samples in the duty-cycle running mean (default 1000).
        relu: also zero winners with a non-positive score.

    Raises:
        ValueError: k (or k_inference) outside [1, n], or an invalid boosting setting.
    """

    paper: ClassVar[str] = ""  # Ahmad & Scheinkman 2019, not a seed paper

    def __init__(
        self,
        n: int,
        *,
        k: int | None = None,
        density: float | None = None,
        k_inference_factor: float = 1.5,
        boost_strength: float = 1.0,
        boost_strength_factor: float = 0.9,
        duty_cycle_period: int = 1000,
        relu: bool = False,
    ) -> None:
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"n must be a positive integer, got {n!r}")
        super().__init__(
            duty_shape=(n,),
            k_inference_factor=k_inference_factor,
            boost_strength=boost_strength,
            boost_strength_factor=boost_strength_factor,
            duty_cycle_period=duty_cycle_period,
            relu=relu,
        )
        self.n = n
        self.k = _k_from(n, k, density)
        self.k_inference = _k_inference(self.k, self.k_inference_factor, n)

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() == 0 or x.shape[-1] != self.n:
            raise ValueError(f"KWinners(n={self.n}) got an input of shape {tuple(x.shape)}")
        k = self.k if self.training else self.k_inference
        boost = self.boost_factors(self.k / self.n) if self._boost > 0 else None
        y = kwinners(x, k, boost=boost, relu=self.relu)
        if self.training:
            active = y.detach().reshape(-1, self.n) > 0  # (samples, n)
            self._update_duty_cycle(active.sum(0, dtype=self.duty_cycle.dtype), active.shape[0])
        return y

    def max_entropy(self) -> float:
        """Entropy (bits) of n units that each fire with probability k/n: the balanced optimum."""
        return float(binary_entropy(torch.full((self.n,), self.k / self.n)))

    def extra_repr(self) -> str:
        return (
            f"n={self.n}, k={self.k}, k_inference={self.k_inference}, boost_strength={self._boost}, "
            f"boost_strength_factor={self.boost_strength_factor}, duty_cycle_period={self.duty_cycle_period}"
            + (", relu=True" if self.relu else "")
        )


@ACTIVATIONS.register("kwta-2d")
class KWinners2d(KWinnersBase):
    """k-WTA on `(B, C, H, W)`: local (top k channels per position) or global (top k of C*H*W).

    Args:
        channels: C.
        k: winners in training (give `k` or `density`): per position if `local`, else per sample.
        density: fraction kept; k = round(C * density) (local) or round(C*H*W * density) (global,
            from each input's shape).
        local: compete across channels at each position instead of over the whole sample.
        k_inference_factor, boost_strength, boost_strength_factor, duty_cycle_period, relu: as in
            `KWinners`.

    Raises:
        ValueError: k (or k_inference) outside [1, n] (n = C, or C*H*W at the first forward).
    """

    paper: ClassVar[str] = ""

    def __init__(
        self,
        channels: int,
        *,
        k: int | None = None,
        density: float | None = None,
        local: bool = False,
        k_inference_factor: float = 1.5,
        boost_strength: float = 1.0,
        boost_strength_factor: float = 0.9,
        duty_cycle_period: int = 1000,
        relu: bool = False,
    ) -> None:
        if isinstance(channels, bool) or not isinstance(channels, int) or channels < 1:
            raise ValueError(f"channels must be a positive integer, got {channels!r}")
        super().__init__(
            duty_shape=(1, channels, 1, 1),
            k_inference_factor=k_inference_factor,
            boost_strength=boost_strength,
            boost_strength_factor=boost_strength_factor,
            duty_cycle_period=duty_cycle_period,
            relu=relu,
        )
        if (k is None) == (density is None):
            raise ValueError("give exactly one of k (winners) or density (fraction kept)")
        if density is not None and not 0.0 < density <= 1.0:
            raise ValueError(f"density must be in (0, 1], got {density}")
        self.channels = channels
        self.local = local
        self._k, self._density = k, density
        if local:
            self._ks(channels)  # validate now: n = C is known
        elif k is not None and (isinstance(k, bool) or not isinstance(k, int) or k < 1):
            raise ValueError(f"k must be an integer >= 1, got {k!r}")

    def _ks(self, n: int) -> tuple[int, int]:
        """(k, k_inference) for n competing units."""
        k = _k_from(n, self._k, self._density)
        return k, _k_inference(k, self.k_inference_factor, n)

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 4 or x.shape[1] != self.channels:
            raise ValueError(
                f"KWinners2d(channels={self.channels}) expects (B, C, H, W), got {tuple(x.shape)}"
            )
        n = self.channels if self.local else x[0].numel()
        k_train, k_eval = self._ks(n)
        k = k_train if self.training else k_eval
        boost = self.boost_factors(k_train / n) if self._boost > 0 else None
        y = kwinners2d(x, k, local=self.local, boost=boost, relu=self.relu)
        if self.training:
            positions = x.shape[2] * x.shape[3]
            counts = (y.detach() > 0).sum((0, 2, 3), dtype=self.duty_cycle.dtype) / positions
            self._update_duty_cycle(counts, x.shape[0])
        return y

    def extra_repr(self) -> str:
        k = f"k={self._k}" if self._k is not None else f"density={self._density}"
        return (
            f"channels={self.channels}, {k}, local={self.local}, k_inference_factor={self.k_inference_factor}, "
            f"boost_strength={self._boost}, boost_strength_factor={self.boost_strength_factor}, "
            f"duty_cycle_period={self.duty_cycle_period}" + (", relu=True" if self.relu else "")
        )


def update_boost_strength(model: nn.Module) -> None:
    """Call `update_boost_strength()` on every k-WTA module of `model` (nupic: once per epoch)."""
    for m in model.modules():
        if isinstance(m, KWinnersBase):
            m.update_boost_strength()
