"""Entropy-triggered two-stage routing: a router schedule from coverage to specialization.

Paper `magnet`: "Modality-Guided Mixture of Graph Experts with Entropy-Triggered Routing for
Multimodal Recommendation" (2026). Only its routing regime is implemented here: a two-stage
entropy-weighting mechanism that monitors routing entropy and moves training from an early
coverage-oriented regime to a later specialization-oriented one. The paper's multimodal
recommendation model (dual-view interaction/content graphs, modality-role experts) is out of scope.

Rule. Each phase sets three knobs of every MoE in a model:

- router temperature `tau`: logits become `l / tau` (applied by scaling the gate input `x / tau`,
  exact for the linear routers here, which have no bias);
- `balance_coef` of each `MoE` (the weight of its balance loss in `aux["loss"]`);
- `entropy_coef` `lambda`: `extra_loss(aux) = lambda * mean_layers H(p)`, with H the mean per-token
  router entropy; lambda < 0 rewards spread routing, lambda > 0 rewards confident routing.

Coverage (default tau = 2, balance 5e-2, lambda = -1e-2) spreads tokens over all experts;
specialization (tau = 1, balance 1e-3, lambda = +1e-2) lets each token commit to its experts.
Trigger: each `step(aux)` updates an exponential moving average (`ema`) of the utilization entropy
`U = H(load shares) / log E` (1 when every expert gets the same share of slots), averaged over MoE
layers. After `min_steps`, once `U_ema >= trigger` for `patience` consecutive steps, the schedule
switches to specialization for good (at the latest after `max_coverage_steps`).

Usage, with any model holding `MoE` layers (the schedule is a user-held object: no globals):

    schedule = EntropyTriggeredSchedule(num_experts=8).attach(model)
    out = model(x); loss = task + out.aux_loss + schedule.extra_loss(out.aux)
    loss.backward(); opt.step(); schedule.step(out.aux)

Deviations: the paper's exact entropy weighting and trigger were not available here (only its
abstract); the temperature / balance / entropy-bonus phases and the utilization-entropy trigger with
patience are our reading of "coverage-oriented" and "specialization-oriented".
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import Tensor, nn

from sparsetorch.routing.gates import LinearGate
from sparsetorch.routing.moe import MoE
from sparsetorch.routing.monitor import load_entropy

__all__ = ["EntropyTriggeredSchedule", "MagnetConfig", "RouterPhase", "utilization"]

PhaseName = Literal["coverage", "specialization"]


@dataclass(frozen=True)
class RouterPhase:
    """The router knobs of one phase: temperature (> 0), balance_coef (>= 0), entropy_coef."""

    temperature: float
    balance_coef: float
    entropy_coef: float

    def __post_init__(self) -> None:
        if not (math.isfinite(self.temperature) and self.temperature > 0):
            raise ValueError(f"phase temperature must be a positive number, got {self.temperature}")
        if not (math.isfinite(self.balance_coef) and self.balance_coef >= 0):
            raise ValueError(f"phase balance_coef must be >= 0, got {self.balance_coef}")
        if not math.isfinite(self.entropy_coef):
            raise ValueError(f"phase entropy_coef must be finite, got {self.entropy_coef}")


@dataclass(frozen=True)
class MagnetConfig:
    """Phases and trigger of the schedule (see the module docstring)."""

    coverage: RouterPhase = field(default_factory=lambda: RouterPhase(2.0, 5e-2, -1e-2))
    specialization: RouterPhase = field(default_factory=lambda: RouterPhase(1.0, 1e-3, 1e-2))
    trigger: float = 0.95
    patience: int = 10
    ema: float = 0.9
    min_steps: int = 0
    max_coverage_steps: int | None = None

    def __post_init__(self) -> None:
        if not 0.0 < self.trigger <= 1.0:
            raise ValueError(f"trigger is a normalized utilization entropy in (0, 1], got {self.trigger}")
        if not 0.0 <= self.ema < 1.0:
            raise ValueError(f"ema must be in [0, 1), got {self.ema}")
        if self.patience < 1 or self.min_steps < 0:
            raise ValueError(
                f"patience must be >= 1 and min_steps >= 0, got {self.patience}, {self.min_steps}"
            )
        if self.max_coverage_steps is not None and self.max_coverage_steps < 0:
            raise ValueError(f"max_coverage_steps must be >= 0 or None, got {self.max_coverage_steps}")


def utilization(load: Tensor) -> float:
    """Normalized utilization entropy `H(load shares) / log E` in [0, 1] (1: perfectly balanced)."""
    num_experts = load.numel()
    if num_experts <= 1:
        return 1.0
    return float(load_entropy(load.detach().cpu())) / math.log(num_experts)


def _layers(aux: Mapping) -> dict[str, Mapping[str, Tensor]]:
    """One MoE's aux dict, or a {layer: aux} dict (MoEGPT), as {layer: aux}."""
    if "load" in aux:
        return {"moe": aux}
    if not aux or not all(isinstance(v, Mapping) and "load" in v for v in aux.values()):
        raise ValueError("aux must be a MoE's aux dict or a {layer: aux} dict of them, each with 'load'")
    return dict(aux)


class EntropyTriggeredSchedule:
    """Two-stage router schedule; see the module docstring.

    Attributes:
        phase: "coverage" or "specialization".
        switched_at: the step at which specialization began (None before).
        history: one dict per `step`: step, phase (0 coverage, 1 specialization), utilization,
            utilization_ema, router_entropy, confidence (`1 - H(p) / log E`), temperature.
    """

    def __init__(self, num_experts: int, config: MagnetConfig | None = None) -> None:
        if num_experts < 1:
            raise ValueError(f"num_experts must be positive, got {num_experts}")
        self.num_experts = num_experts
        self.config = config or MagnetConfig()
        self.phase: PhaseName = "coverage"
        self.switched_at: int | None = None
        self.history: list[dict[str, float]] = []
        self._steps = 0
        self._ema: float | None = None
        self._above = 0
        self._moes: list[MoE] = []
        self._handles: list[torch.utils.hooks.RemovableHandle] = []

    @property
    def current(self) -> RouterPhase:
        """The knobs of the current phase."""
        return self.config.coverage if self.phase == "coverage" else self.config.specialization

    def attach(self, model: nn.Module) -> EntropyTriggeredSchedule:
        """Apply the schedule to every `MoE` in `model` (temperature hooks on their linear gates)."""
        self.detach()
        self._moes = [m for m in model.modules() if isinstance(m, MoE)]
        if not self._moes:
            raise ValueError("the model holds no MoE layer to schedule")
        for moe in self._moes:
            if moe.num_experts != self.num_experts:
                raise ValueError(f"schedule is for {self.num_experts} experts, a MoE has {moe.num_experts}")
            if isinstance(moe.gate, LinearGate):
                self._handles.append(moe.gate.register_forward_pre_hook(self._scale_input, with_kwargs=True))
        self._apply()
        return self

    def detach(self) -> None:
        """Remove the temperature hooks (balance coefficients stay as last set)."""
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def _scale_input(self, _gate: nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
        tau = self.current.temperature
        if tau == 1.0:
            return args, kwargs
        return (args[0] / tau, *args[1:]), kwargs

    def _apply(self) -> None:
        for moe in self._moes:
            moe.balance_coef = self.current.balance_coef

    def extra_loss(self, aux: Mapping) -> Tensor:
        """`entropy_coef * mean over layers of aux["entropy"]` (0 when no layer reports entropy)."""
        layers = _layers(aux)
        values = [v["entropy"] for v in layers.values() if "entropy" in v]
        if not values:
            return torch.zeros(())
        return self.current.entropy_coef * torch.stack([v.float() for v in values]).mean()

    def step(self, aux: Mapping) -> dict[str, float]:
        """Record one training step's routing, and switch phase when the trigger fires."""
        layers = _layers(aux)
        cfg = self.config
        util = sum(utilization(v["load"]) for v in layers.values()) / len(layers)
        self._ema = util if self._ema is None else cfg.ema * self._ema + (1 - cfg.ema) * util
        entropies = [float(v["entropy"].detach()) for v in layers.values() if "entropy" in v]
        router_entropy = sum(entropies) / len(entropies) if entropies else float("nan")
        row = {
            "step": float(self._steps),
            "phase": 0.0 if self.phase == "coverage" else 1.0,
            "utilization": util,
            "utilization_ema": self._ema,
            "router_entropy": router_entropy,
            "confidence": 1.0 - router_entropy / math.log(self.num_experts) if self.num_experts > 1 else 1.0,
            "temperature": self.current.temperature,
        }
        self.history.append(row)
        self._steps += 1
        if self.phase == "coverage":
            self._above = self._above + 1 if self._ema >= cfg.trigger else 0
            ready = self._steps >= cfg.min_steps and self._above >= cfg.patience
            late = cfg.max_coverage_steps is not None and self._steps >= cfg.max_coverage_steps
            if ready or late:
                self.phase, self.switched_at = "specialization", self._steps
                self._apply()
        return row
