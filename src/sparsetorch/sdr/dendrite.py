"""Active dendrites: the paper's pattern-detecting neuron, and the context-gated dendritic layer.

`DendriticNeuron` is the model of `sdr-dendrites` (Ahmad & Hawkins 2016). Each dendritic segment
D_i is a set of synapses onto n cells; it spikes when D_i . A >= theta (Eq. 1), and the neuron
recognizes A when any segment spikes (Eq. 7). A segment learns a pattern by subsampling s of its
active bits; with `patterns_per_segment = m > 1` one segment holds the union of m such subsamples
(the union property).

`ActiveDendrites` is the trainable layer of Numenta's dendritic networks ("Avoiding catastrophe:
active dendrites enable multi-task learning in dynamic environments", Iyer et al. 2022; reference
code: numenta/nupic.research, `frameworks/dendrites`, `DendriticAbsoluteMaxGate1d`). Unit i computes
a feed-forward y_i = w_i . x + b_i and J segment activations d_ij = u_ij . c from a context c. The
absolute-max gate picks j* = argmax_j |d_ij| and outputs y_i * sigmoid(d_ij*), keeping the sign of
d_ij*: a strongly negative segment can shut the unit off. Only the winning segment receives a
gradient. Ties go to the lowest segment index (`torch.argmax` returns the first maximum). The
parameters are dense; sparsify them with `sparsetorch.masks` like any other weights (the
feed-forward part is an `nn.Linear`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, NamedTuple

import torch
from torch import Tensor, nn

from sparsetorch.sdr.sdr import SDR, check_count

__all__ = [
    "ActiveDendrites",
    "DendriteOutput",
    "DendriticNeuron",
    "Gate",
    "absolute_max_gate",
    "max_bias",
    "max_gate",
]

Gate = Literal["absolute_max", "max", "bias"]


# -- the paper's neuron ------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class DendriticNeuron:
    """A neuron with dendritic segments; `synapses` is a bool tensor (segments, n).

    Raises:
        ValueError: `synapses` is not a 2-D bool tensor, or theta is outside [1, s] for the
            segment with the fewest synapses s (such a segment could never spike).
    """

    synapses: Tensor
    theta: int

    def __post_init__(self) -> None:
        if (
            not isinstance(self.synapses, Tensor)
            or self.synapses.dtype != torch.bool
            or self.synapses.ndim != 2
        ):
            raise ValueError("synapses must be a bool tensor of shape (segments, n)")
        if self.synapses.shape[0] < 1 or self.synapses.shape[1] < 1:
            raise ValueError(
                f"a neuron needs at least one segment and one cell, got {tuple(self.synapses.shape)}"
            )
        fewest = int(self.synapses.sum(-1).min())
        theta = check_count(
            "theta",
            self.theta,
            low=1,
            high=fewest,
            high_name=f"s={fewest} synapses on a segment: it could never spike",
        )
        object.__setattr__(self, "theta", theta)

    @property
    def n(self) -> int:
        return self.synapses.shape[1]

    @property
    def segments(self) -> int:
        return self.synapses.shape[0]

    @classmethod
    def learn(
        cls,
        patterns: SDR,
        *,
        synapses: int,
        theta: int,
        generator: torch.Generator,
        patterns_per_segment: int = 1,
    ) -> DendriticNeuron:
        """One segment per `patterns_per_segment` stored patterns, s = `synapses` of each pattern's bits.

        Args:
            patterns: a batch of P SDRs, shape (P, n); P must be a multiple of `patterns_per_segment`.
            synapses: s, the bits each segment subsamples from each of its patterns.
            theta: the segments' spiking threshold.
            patterns_per_segment: m; m > 1 puts the union of m subsamples on one segment.

        Raises:
            ValueError: patterns is not a (P, n) batch, P is not a multiple of m, or s exceeds a
                pattern's active bits.
        """
        if patterns.dense.ndim != 2:
            raise ValueError(f"patterns must be a batch of shape (P, n), got {tuple(patterns.dense.shape)}")
        m = check_count("patterns_per_segment", patterns_per_segment, low=1)
        count = patterns.dense.shape[0]
        if count == 0 or count % m:
            raise ValueError(f"{count} patterns cannot be split into segments of {m} patterns each")
        sampled = patterns.subsample(synapses, generator=generator).dense  # (P, n)
        return cls(sampled.reshape(count // m, m, patterns.n).any(1), theta)

    def overlaps(self, x: SDR) -> Tensor:
        """D_i . x for every segment, shape (*batch, segments) (long)."""
        if x.n != self.n:
            raise ValueError(f"input has n={x.n} bits, the neuron's segments see n={self.n}")
        # counts are sums of 0/1 products: exact in float32 below 2^24 cells
        dense = x.dense.to(torch.float32)
        return (dense @ self.synapses.to(dense.device, torch.float32).T).round_().long()

    def segment_spikes(self, x: SDR) -> Tensor:
        """Which segments reach theta (Eq. 1), shape (*batch, segments) (bool)."""
        return self.overlaps(x) >= self.theta

    def __call__(self, x: SDR) -> Tensor:
        """Whether any segment spikes: the neuron recognizes x (Eq. 7), shape `x.batch_shape` (bool)."""
        return self.segment_spikes(x).any(-1)


# -- the dendritic gates (functional) ----------------------------------------------------------


class DendriteOutput(NamedTuple):
    """A gated output and the winning segment per unit."""

    values: Tensor
    winners: Tensor


def _check_gate_shapes(y: Tensor, activations: Tensor) -> None:
    if activations.ndim != y.ndim + 1 or activations.shape[:-1] != y.shape:
        raise ValueError(
            f"segment activations must have shape (*y.shape, segments) = {(*y.shape, 'J')}, "
            f"got {tuple(activations.shape)}"
        )
    if activations.shape[-1] < 1:
        raise ValueError("segment activations need at least one segment")


def _gather(activations: Tensor, winners: Tensor) -> Tensor:
    return activations.gather(-1, winners.unsqueeze(-1)).squeeze(-1)


def absolute_max_gate(y: Tensor, activations: Tensor) -> DendriteOutput:
    """y * sigmoid(d_j*) with j* = argmax_j |d_j|, the sign of d_j* kept.

    Args:
        y: feed-forward outputs, shape (..., units).
        activations: segment activations d, shape (..., units, segments).
    """
    _check_gate_shapes(y, activations)
    winners = activations.abs().argmax(-1)
    return DendriteOutput(y * torch.sigmoid(_gather(activations, winners)), winners)


def max_gate(y: Tensor, activations: Tensor) -> DendriteOutput:
    """y * sigmoid(max_j d_j) (Numenta's plain gate)."""
    _check_gate_shapes(y, activations)
    winners = activations.argmax(-1)
    return DendriteOutput(y * torch.sigmoid(_gather(activations, winners)), winners)


def max_bias(y: Tensor, activations: Tensor) -> DendriteOutput:
    """y + max_j d_j (Numenta's dendritic bias)."""
    _check_gate_shapes(y, activations)
    winners = activations.argmax(-1)
    return DendriteOutput(y + _gather(activations, winners), winners)


_GATES = {"absolute_max": absolute_max_gate, "max": max_gate, "bias": max_bias}


# -- the layer ---------------------------------------------------------------------------------


class ActiveDendrites(nn.Module):
    """Feed-forward units modulated by dendritic segments that read a context vector.

    out_i = y_i * sigmoid(d_ij*), y = W x + b, d_ij = u_ij . c, j* = argmax_j |d_ij| (the default
    ``gate="absolute_max"``; ``"max"`` and ``"bias"`` are Numenta's other two variants).

    Args:
        in_features: size of x.
        out_features: number of units.
        segments: J, segments per unit.
        context_features: size of the context c.
        bias: whether the feed-forward part has a bias.
        gate: how segments modulate the units.
        generator: draws the initial weights (U(+-1/sqrt(fan_in)) for both parts, as Numenta's and
            torch's Linear defaults); None uses torch's global generator.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        *,
        segments: int,
        context_features: int,
        bias: bool = True,
        gate: Gate = "absolute_max",
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        in_features = check_count("in_features", in_features, low=1)
        out_features = check_count("out_features", out_features, low=1)
        self.segments = check_count("segments", segments, low=1)
        self.context_features = check_count("context_features", context_features, low=1)
        if gate not in _GATES:
            raise ValueError(f"gate must be one of {', '.join(map(repr, _GATES))}, got {gate!r}")
        self.gate = gate
        self.linear = nn.Linear(in_features, out_features, bias=bias)
        self.segment_weight = nn.Parameter(torch.empty(out_features, self.segments, self.context_features))
        self.reset_parameters(generator=generator)

    def reset_parameters(self, *, generator: torch.Generator | None = None) -> None:
        with torch.no_grad():
            bound = 1.0 / math.sqrt(self.linear.in_features)
            self.linear.weight.uniform_(-bound, bound, generator=generator)
            if self.linear.bias is not None:
                self.linear.bias.uniform_(-bound, bound, generator=generator)
            self.segment_weight.uniform_(
                -1.0 / math.sqrt(self.context_features),
                1.0 / math.sqrt(self.context_features),
                generator=generator,
            )

    def segment_activations(self, context: Tensor) -> Tensor:
        """d = u . c for every unit and segment, shape (..., out_features, segments)."""
        if context.shape[-1] != self.context_features:
            raise ValueError(f"context has {context.shape[-1]} features, expected {self.context_features}")
        return torch.einsum("...c,usc->...us", context, self.segment_weight)

    def gated(self, x: Tensor, context: Tensor) -> DendriteOutput:
        """The gated output and each unit's winning segment."""
        y = self.linear(x)
        activations = self.segment_activations(context)
        if activations.shape[:-1] != y.shape:
            raise ValueError(
                f"x and context must share their leading dimensions, got {tuple(x.shape[:-1])} "
                f"and {tuple(context.shape[:-1])}"
            )
        return _GATES[self.gate](y, activations)

    def forward(self, x: Tensor, context: Tensor) -> Tensor:
        return self.gated(x, context).values

    def extra_repr(self) -> str:
        return (
            f"in_features={self.linear.in_features}, out_features={self.linear.out_features}, "
            f"segments={self.segments}, context_features={self.context_features}, gate={self.gate!r}"
        )
