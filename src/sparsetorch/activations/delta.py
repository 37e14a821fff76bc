"""Delta Activation Layer: temporal activation sparsity from quantized frame-to-frame differences.

Paper: `delta-activation` -- Yousefzadeh & Sifalakis (2021), "Training for temporal sparsity in deep
neural networks, application in video processing".

For a stream of activations a_1, a_2, ... (one per frame), with quantization step delta:

    q(a)     = delta * round(a / delta)                     (uniform quantizer)
    Delta_t  = q(a_t) - q(a_{t-1}),     q(a_0) := 0          (so Delta_1 = q(a_1))
    q(a_t)   = sum_{tau <= t} Delta_tau                      (exact reconstruction by accumulation)

The layer emits Delta_t: only its nonzero entries are propagated, and the next linear layer keeps an
accumulator y_t = y_{t-1} + W Delta_t = W q(a_t), so it multiplies only nonzero deltas (temporal
sparsity cast into spatial sparsity). Training promotes zero deltas with an L1 penalty

    L = task_loss + lambda * mean_t |Delta_t|

and learns through the quantizer with the straight-through estimator (d q(a) / d a := 1). Since
W q(a_t) equals the accumulated output exactly, training feeds q(a_t) forward (`DeltaActivation`
returns it together with Delta and the penalty); `DeltaActivation.step` is the streaming form that
carries the previous quantization level as state.

Exactness: deltas are computed on the integer levels n_t = round(a_t / delta) and scaled once, so
the accumulated sum of Delta equals q(a_t) exactly whenever delta is a power of two (every partial
sum is then a representable float), up to one rounding per step otherwise.

Deviations: the paper's Keras layer also offers spatial sparsification heuristics during training
(e.g. a ReLU threshold); here the network's ReLU provides the spatial zeros and the quantization
step is fixed, not learned.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, NamedTuple

import torch
from torch import Tensor, nn

from sparsetorch.activations.base import ACTIVATIONS

__all__ = [
    "DeltaActivation",
    "DeltaConfig",
    "DeltaOutput",
    "accumulate",
    "delta_sparsity",
    "quantize",
    "temporal_delta",
]


@dataclass(frozen=True)
class DeltaConfig:
    """Delta-layer hyperparameters.

    Args:
        step: the quantization step delta (> 0); a power of two makes accumulation exact.
        l1: the L1 weight lambda on the deltas.
        time_dim: the time (frame) dimension of the inputs.
    """

    step: float = 1.0 / 16
    l1: float = 1e-2
    time_dim: int = 1

    def __post_init__(self) -> None:
        if not self.step > 0:
            raise ValueError(f"step must be positive, got {self.step}")
        if self.l1 < 0:
            raise ValueError(f"l1 must be >= 0, got {self.l1}")


def _ste(x: Tensor, y: Tensor) -> Tensor:
    """y in the forward pass, gradient of x in the backward pass (straight-through)."""
    return x + (y - x).detach()


def quantize(a: Tensor, step: float) -> Tensor:
    """`step * round(a / step)` with a straight-through gradient."""
    return _ste(a, torch.round(a / step) * step)


def temporal_delta(a: Tensor, step: float, *, time_dim: int = 1) -> Tensor:
    """`Delta_t = q(a_t) - q(a_{t-1})` along `time_dim`, with q(a_0) = 0 (straight-through gradients)."""
    levels = torch.round(a / step)
    prev = torch.cat(
        [torch.zeros_like(levels.narrow(time_dim, 0, 1)), levels.narrow(time_dim, 0, a.shape[time_dim] - 1)],
        time_dim,
    )
    exact = (levels - prev) * step
    # gradient as if Delta = a_t - a_{t-1}
    a_prev = torch.cat(
        [torch.zeros_like(a.narrow(time_dim, 0, 1)), a.narrow(time_dim, 0, a.shape[time_dim] - 1)], time_dim
    )
    return _ste(a - a_prev, exact)


def accumulate(deltas: Tensor, *, time_dim: int = 1) -> Tensor:
    """The running sum of deltas along `time_dim`: reconstructs q(a_t)."""
    return deltas.cumsum(time_dim)


def delta_sparsity(deltas: Tensor) -> float:
    """Fraction of exact zeros in `deltas`."""
    return float((deltas == 0).float().mean())


class DeltaOutput(NamedTuple):
    """What a `DeltaActivation` returns.

    Attributes:
        value: q(a), what the next layer effectively sees (= accumulated deltas).
        delta: the temporal deltas, the operands a delta-inference engine multiplies.
        penalty: lambda * mean |delta| (a 0-d tensor, to add to the loss).
    """

    value: Tensor
    delta: Tensor
    penalty: Tensor


@ACTIVATIONS.register("delta")
class DeltaActivation(nn.Module):
    """The Delta Activation Layer over a (B, T, ...) stream (time along `config.time_dim`).

    Raises:
        TypeError: `config` is not a `DeltaConfig`.
    """

    paper: ClassVar[str] = "delta-activation"

    def __init__(self, config: DeltaConfig = DeltaConfig()) -> None:
        if not isinstance(config, DeltaConfig):
            raise TypeError(f"config must be a DeltaConfig, got {type(config).__name__}")
        super().__init__()
        self.config = config

    def forward(self, a: Tensor) -> DeltaOutput:
        c = self.config
        delta = temporal_delta(a, c.step, time_dim=c.time_dim)
        return DeltaOutput(quantize(a, c.step), delta, c.l1 * delta.abs().mean())

    @torch.no_grad()
    def step(self, a_t: Tensor, state: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Streaming form for one frame: `(Delta_t, levels_t)` from a_t and the previous levels."""
        levels = torch.round(a_t / self.config.step)
        prev = torch.zeros_like(levels) if state is None else state
        return (levels - prev) * self.config.step, levels

    def extra_repr(self) -> str:
        return f"step={self.config.step}, l1={self.config.l1}, time_dim={self.config.time_dim}"
