"""Routing monitors: dead experts, routing entropy, routing fluctuation, load histogram.

All functions are pure; `RoutingMonitor` is a user-held accumulator fed with the `aux` dicts that
MoE layers return (no hooks, no globals), so a training loop can log per step or per window:

    monitor = RoutingMonitor(num_experts=8)
    y, aux = moe(x); monitor.update(aux, layer="blocks.0.moe")
    print(monitor.format()); monitor.reset()

Definitions (E experts):
- load: slots per expert (all k slots of a token count), int64.
- dead expert: an expert whose share of the slots is <= `threshold` (default 0: never chosen).
- load entropy: entropy (nats) of the load shares, `log E` when balanced.
- router entropy: mean over tokens of the entropy of `p_t` (the gate's `aux["entropy"]`); low
  means confident routing.
- routing fluctuation (graph-of-tokens-moe): the share of tokens whose set of experts differs
  between two checkpoints on the same inputs (`capture_routing` before and after).
"""

from __future__ import annotations

from collections import defaultdict

import torch
from torch import Tensor, nn

from sparsetorch.routing.gates import Gate
from sparsetorch.routing.losses import expert_load, routing_entropy

__all__ = [
    "RoutingMonitor",
    "capture_routing",
    "dead_experts",
    "load_entropy",
    "load_histogram",
    "routing_entropy",
    "routing_fluctuation",
]


def load_histogram(indices: Tensor, num_experts: int) -> Tensor:
    """Slots per expert (E,) int64 from routing indices (T, m); -1 slots are not counted."""
    return expert_load(indices, num_experts)


def dead_experts(load: Tensor, *, threshold: float = 0.0) -> Tensor:
    """Bool (E,): experts whose share of the slots is <= `threshold`."""
    if not 0.0 <= threshold < 1.0:
        raise ValueError(f"dead-expert threshold is a share of the slots in [0, 1), got {threshold}")
    share = load.double() / load.sum().clamp(min=1).double()
    return share <= threshold


def load_entropy(load: Tensor) -> Tensor:
    """Entropy (nats) of the load shares; `log E` when balanced, 0 when one expert takes all."""
    share = load.double() / load.sum().clamp(min=1).double()
    return -torch.special.xlogy(share, share).sum().float()


def routing_fluctuation(before: Tensor, after: Tensor, *, top1: bool = False) -> Tensor:
    """Share of tokens whose experts changed between two routings (T, m) of the same tokens.

    Compares expert *sets* (slot order ignored); with `top1`, compares only the first slot (the
    top expert of top-k gates).
    """
    if before.shape != after.shape or before.dim() != 2:
        raise ValueError(
            f"routings must have the same (tokens, slots) shape, got {tuple(before.shape)} and {tuple(after.shape)}"
        )
    if before.shape[0] == 0:
        return torch.zeros(())
    if top1:
        changed = before[:, 0] != after[:, 0]
    else:
        changed = (before.sort(-1).values != after.sort(-1).values).any(-1)
    return changed.float().mean()


@torch.no_grad()
def capture_routing(model: nn.Module, *args: object, **kwargs: object) -> dict[str, Tensor]:
    """Run `model(*args, **kwargs)` without gradient and return each gate's indices by FQN.

    A gate called more than once contributes its calls concatenated along tokens. The model's
    train/eval mode is left as it is (jitter and Sinkhorn behave by mode).
    """
    seen: dict[str, list[Tensor]] = defaultdict(list)
    handles = []
    for fqn, module in model.named_modules():
        if isinstance(module, Gate):

            def hook(_m: nn.Module, _inp: object, out: object, fqn: str = fqn) -> None:
                seen[fqn].append(out.indices.detach())  # type: ignore[attr-defined]

            handles.append(module.register_forward_hook(hook))
    try:
        model(*args, **kwargs)
    finally:
        for h in handles:
            h.remove()
    return {fqn: torch.cat(parts) for fqn, parts in seen.items()}


class RoutingMonitor:
    """Accumulates per-layer load, router entropy and drops over steps; see the module docstring.

    Values stay on their device until `summary` (one host sync there, none in `update`).
    """

    def __init__(self, num_experts: int, *, dead_threshold: float = 0.0) -> None:
        if num_experts < 1:
            raise ValueError(f"num_experts must be positive, got {num_experts}")
        dead_experts(torch.ones(1), threshold=dead_threshold)  # validate the threshold
        self.num_experts, self.dead_threshold = num_experts, dead_threshold
        self.reset()

    def reset(self) -> None:
        """Forget everything accumulated (start a new window)."""
        self._load: dict[str, Tensor] = {}
        self._entropy: dict[str, Tensor] = {}
        self._dropped: dict[str, Tensor] = {}
        self._steps: dict[str, int] = defaultdict(int)

    def update(self, aux: dict[str, Tensor], layer: str = "moe") -> None:
        """Add one step's aux values (from `MoE.forward` or a gate) for `layer`."""
        load = aux["load"].detach()
        if load.shape != (self.num_experts,):
            raise ValueError(f"aux['load'] must be ({self.num_experts},), got {tuple(load.shape)}")
        self._load[layer] = load + self._load[layer] if layer in self._load else load.clone()
        for key, store in (("entropy", self._entropy), ("dropped_slots", self._dropped)):
            if key in aux:
                value = aux[key].detach().double()
                store[layer] = value + store[layer] if layer in store else value
        self._steps[layer] += 1

    def histogram(self, layer: str = "moe") -> Tensor:
        """Accumulated slots per expert (E,) int64 for `layer`."""
        if layer not in self._load:
            raise KeyError(f"no routing recorded for layer {layer!r} (recorded: {sorted(self._load)})")
        return self._load[layer].cpu()

    def summary(self) -> dict[str, dict[str, float]]:
        """Per layer: dead_experts, load_entropy, max_load_ratio (max / mean load), router_entropy,
        dropped_fraction (the last two when the aux values had them)."""
        out: dict[str, dict[str, float]] = {}
        for layer, load in self._load.items():
            load = load.cpu()
            total = int(load.sum())
            row = {
                "steps": float(self._steps[layer]),
                "dead_experts": float(dead_experts(load, threshold=self.dead_threshold).sum()),
                "load_entropy": float(load_entropy(load)),
                "max_load_ratio": float(load.max()) * self.num_experts / max(total, 1),
            }
            if layer in self._entropy:
                row["router_entropy"] = float(self._entropy[layer]) / self._steps[layer]
            if layer in self._dropped:
                row["dropped_fraction"] = float(self._dropped[layer]) / max(total, 1)
            out[layer] = row
        return out

    def format(self, width: int = 30) -> str:
        """A text report: the summary and a bar per expert of each layer's load histogram."""
        lines = []
        for layer, row in self.summary().items():
            stats = ", ".join(f"{k}={v:.3g}" for k, v in row.items())
            lines.append(f"{layer}: {stats}")
            load = self.histogram(layer)
            top = max(int(load.max()), 1)
            for e, n in enumerate(load.tolist()):
                lines.append(f"  e{e:<3d} {'#' * round(width * n / top):<{width}} {n}")
        return "\n".join(lines)
