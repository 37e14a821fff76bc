"""The sparse search space: node keep-masks and layer-wise weight budgets of an over-parameterized MLP.

Shared by the architecture searches of `random-search-nas` (Farahani 2024, "Random Search as a
Baseline for Sparse Neural Network Architecture Search") and `dass` (Mousavi et al. 2022, "DASS:
Differentiable Architecture Search for Sparse neural networks").

The parent is the LeNet-300-100 family `in -> h1 -> h2 -> classes` (`create_model("lenet-300-100",
hidden=(h1, h2))`), over-parameterized by choosing wide `h1, h2`. Its weight matrices `fc1, fc2, fc3`
hold `N = in*h1 + h1*h2 + h2*classes` weights. A configuration at sparsity `s` is

- a node keep-mask `k_l` (bool, `(h_l,)`) per hidden layer: which units of the parent exist;
- a weight mask per layer whose nonzeros lie inside the *alive block* (rows = kept output units,
  columns = kept input units; inputs and classes are always kept);
- exactly `B = N - n_pruned(N, s)` nonzero weights in total, at least one per layer.

So `sparsity` is, as everywhere in sparsetorch, the fraction of zeros, here over all three weight
matrices of the parent (a removed node zeroes its whole row and column).

Sampling with an explicit `torch.Generator`:

1. node counts: one combination, uniformly at random, of the grid `max(1, round(f * h_l))`,
   `f in node_fractions`, among those whose alive blocks can hold `B` weights (`feasible`);
2. which nodes: a uniformly random subset of that size per hidden layer;
3. the budget split over layers: `"proportional"` gives every alive block the same density (the
   random-pruning "uniform" rule on the sub-network); `"random"` splits `B` by weights drawn from a
   flat Dirichlet; integer counts come from the largest-remainder method with each layer capped at
   its alive block, so the total is exactly `B`;
4. positions: that many uniformly random positions inside each alive block.

A space whose grid has no feasible combination, a sparsity outside `[0, 1)` or a budget of fewer
nonzeros than layers raises `ValueError` when the space is built.
"""

from __future__ import annotations

import importlib
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import product
from typing import Any

import torch
from torch import Tensor, nn

from sparsetorch.patterns import n_pruned

__all__ = ["SPLITS", "SparseConfig", "SparseMLPSpace", "split_budget"]

SPLITS = ("proportional", "random")
LAYERS = ("fc1", "fc2", "fc3")  # the weight-bearing modules of the LeNet-300-100 family, in order


def split_budget(total: int, weights: Sequence[float], caps: Sequence[int]) -> list[int]:
    """Integers `c_i <= caps[i]` summing to `total`, as close as possible to `total * w_i / sum(w)`.

    Water-filling: a layer whose proportional share exceeds its cap is fixed at the cap and the rest
    is shared again among the others; the remainder is rounded by the largest-remainder method.

    Raises:
        ValueError: a negative or non-finite weight, all weights zero, or `total` outside
            `[0, sum(caps)]`.
    """
    if len(weights) != len(caps) or not caps:
        raise ValueError(f"need one weight per cap, got {len(weights)} weights and {len(caps)} caps")
    if any(not math.isfinite(w) or w < 0 for w in weights) or not any(w > 0 for w in weights):
        raise ValueError(f"weights must be finite, non-negative and not all zero, got {list(weights)}")
    if not 0 <= total <= sum(caps):
        raise ValueError(f"cannot place {total} nonzeros in layers that hold {sum(caps)}")
    counts = [0] * len(caps)
    active = [i for i in range(len(caps)) if caps[i] > 0 and weights[i] > 0]
    remaining = total
    while True:
        wsum = sum(weights[i] for i in active)
        if not active or wsum == 0:
            break
        ideal = {i: remaining * weights[i] / wsum for i in active}
        over = [i for i in active if ideal[i] >= caps[i]]
        if not over:
            break
        for i in over:
            counts[i] = caps[i]
            remaining -= caps[i]
        active = [i for i in active if i not in over]
    if active:
        for i in active:
            counts[i] = math.floor(ideal[i])
        left = remaining - sum(counts[i] for i in active)
        # The fractional parts sum to `left` and each is < 1, so no +1 can overshoot a cap.
        order = sorted(active, key=lambda i: (-(ideal[i] - math.floor(ideal[i])), i))
        for i in order[:left]:
            counts[i] += 1
    if sum(counts) != total:  # zero-weight layers take what capped layers could not hold
        for i in range(len(caps)):
            take = min(caps[i] - counts[i], total - sum(counts))
            counts[i] += max(0, take)
    assert sum(counts) == total and all(0 <= c <= k for c, k in zip(counts, caps, strict=True))
    return counts


@dataclass(frozen=True, eq=False)
class SparseConfig:
    """One point of a `SparseMLPSpace`: node keep-masks and the weight masks they imply.

    Attributes:
        nodes: a bool keep-mask `(h_l,)` per hidden layer.
        masks: `{"fc1.weight": (h1, in), "fc2.weight": (h2, h1), "fc3.weight": (classes, h2)}`, bool.
    """

    nodes: tuple[Tensor, ...]
    masks: dict[str, Tensor] = field(repr=False)

    @property
    def widths(self) -> tuple[int, ...]:
        """Kept units per hidden layer."""
        return tuple(int(k.sum()) for k in self.nodes)

    @property
    def nonzeros(self) -> dict[str, int]:
        """Kept weights per layer."""
        return {f: int(m.sum()) for f, m in self.masks.items()}

    @property
    def numel(self) -> int:
        """Weights of the parent's masked layers."""
        return sum(m.numel() for m in self.masks.values())

    @property
    def sparsity(self) -> float:
        """Fraction of zeros over all masked weights of the parent."""
        return 1.0 - sum(self.nonzeros.values()) / self.numel

    @property
    def layer_sparsities(self) -> dict[str, float]:
        """Fraction of zeros of each weight matrix of the parent."""
        return {f: 1.0 - int(m.sum()) / m.numel() for f, m in self.masks.items()}

    def apply(self, model: nn.Module) -> nn.Module:
        """Attach the weight masks to `model` (a parent of the space), in place; returns it.

        Raises:
            KeyError / ValueError: the model has no such weights or their shapes differ (from
                `sparsetorch.masks.attach`, which checks every mask before attaching any).
        """
        from sparsetorch.masks import attach

        return attach(model, self.masks)


@dataclass(frozen=True)
class SparseMLPSpace:
    """Sparse sub-networks of an over-parameterized `in -> h1 -> h2 -> classes` MLP (module docstring).

    Args:
        sparsity: fraction of zero weights over the parent's three weight matrices, in `[0, 1)`.
        hidden: the parent's two hidden widths (2x LeNet-300-100 by default).
        in_features, num_classes: the parent's input size and classes (Fashion-MNIST: 784, 10).
        node_fractions: the grid of kept fractions per hidden layer; must not be empty.
        split: how the budget is split over layers, one of `SPLITS`.
    """

    sparsity: float = 0.9
    hidden: tuple[int, int] = (600, 200)
    in_features: int = 784
    num_classes: int = 10
    node_fractions: tuple[float, ...] = (0.25, 0.5, 0.75, 1.0)
    split: str = "proportional"

    def __post_init__(self) -> None:
        s = self.sparsity
        if isinstance(s, bool) or not isinstance(s, int | float) or not 0.0 <= s < 1.0:
            raise ValueError(f"sparsity must be a number in [0, 1), got {s!r}")
        object.__setattr__(self, "hidden", tuple(self.hidden))
        object.__setattr__(self, "node_fractions", tuple(self.node_fractions))
        if len(self.hidden) != 2 or any(not isinstance(h, int) or h < 1 for h in self.hidden):
            raise ValueError(f"hidden must be two positive integer widths, got {self.hidden!r}")
        if self.in_features < 1 or self.num_classes < 1:
            raise ValueError(
                f"in_features and num_classes must be positive, got {self.in_features}, {self.num_classes}"
            )
        if not self.node_fractions:
            raise ValueError("empty search space: node_fractions has no entries")
        if any(not isinstance(f, int | float) or not 0.0 < f <= 1.0 for f in self.node_fractions):
            raise ValueError(f"node_fractions must lie in (0, 1], got {self.node_fractions!r}")
        if self.split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {self.split!r}")
        if self.budget < len(LAYERS):
            raise ValueError(
                f"impossible sparsity {s:g}: it leaves {self.budget} nonzero weights of {self.numel}, "
                f"fewer than one per layer ({len(LAYERS)})"
            )
        if not self.feasible():
            largest = max(self.capacity(c) for c in self._grid())
            raise ValueError(
                f"impossible sparsity {s:g} for this space: it needs {self.budget} nonzero weights but "
                f"the largest node configuration on the grid {self.node_fractions} holds only {largest}"
            )

    # --- sizes ------------------------------------------------------------------------------

    @property
    def shapes(self) -> dict[str, tuple[int, int]]:
        """`{fqn: (out, in)}` of the parent's weight matrices."""
        h1, h2 = self.hidden
        dims = (self.in_features, h1, h2, self.num_classes)
        return {f"{name}.weight": (dims[i + 1], dims[i]) for i, name in enumerate(LAYERS)}

    @property
    def numel(self) -> int:
        """Weights of the parent's three matrices."""
        return sum(math.prod(s) for s in self.shapes.values())

    @property
    def budget(self) -> int:
        """Nonzero weights of every configuration: `numel - n_pruned(numel, sparsity)`."""
        return self.numel - n_pruned(self.numel, self.sparsity)

    def capacities(self, widths: Sequence[int]) -> list[int]:
        """Sizes of the alive blocks of fc1, fc2, fc3 when the hidden layers keep `widths` units."""
        dims = (self.in_features, *widths, self.num_classes)
        return [dims[i] * dims[i + 1] for i in range(len(LAYERS))]

    def capacity(self, widths: Sequence[int]) -> int:
        """Weights that can be nonzero when the hidden layers keep `widths` units."""
        return sum(self.capacities(widths))

    def _grid(self) -> list[tuple[int, ...]]:
        per_layer = [sorted({max(1, round(f * h)) for f in self.node_fractions}) for h in self.hidden]
        return list(product(*per_layer))

    def feasible(self) -> list[tuple[int, ...]]:
        """The node-count combinations of the grid whose alive blocks can hold the budget."""
        return [c for c in self._grid() if self.capacity(c) >= self.budget]

    # --- configurations ---------------------------------------------------------------------

    def model_config(self) -> dict[str, Any]:
        """`create_model("lenet-300-100", seed=..., **config)` overrides of the over-parameterized parent."""
        return {"in_features": self.in_features, "hidden": self.hidden, "num_classes": self.num_classes}

    def parent(self, *, seed: int) -> nn.Module:
        """Deprecated: `sparsetorch.create_model("lenet-300-100", seed=seed, **space.model_config())`.

        The search axis does not import the models layer above it (DESIGN.md, Layers)."""
        warnings.warn(
            "SparseMLPSpace.parent is deprecated: use sparsetorch.create_model("
            '"lenet-300-100", seed=seed, **space.model_config())',
            DeprecationWarning,
            stacklevel=2,
        )
        create_model = importlib.import_module("sparsetorch.models").create_model  # shim, not a dependency
        return create_model("lenet-300-100", seed=seed, **self.model_config())

    def full_nodes(self) -> tuple[Tensor, ...]:
        """Keep-masks with every hidden unit kept."""
        return tuple(torch.ones(h, dtype=torch.bool) for h in self.hidden)

    def sample(self, generator: torch.Generator) -> SparseConfig:
        """A random configuration (steps 1-4 of the module docstring), exactly at `sparsity`."""
        combos = self.feasible()
        widths = combos[int(torch.randint(len(combos), (1,), generator=generator))]
        nodes = []
        for h, k in zip(self.hidden, widths, strict=True):
            keep = torch.zeros(h, dtype=torch.bool)
            keep[torch.randperm(h, generator=generator)[:k]] = True
            nodes.append(keep)
        caps = self.capacities(widths)
        if self.split == "proportional":
            weights = [float(c) for c in caps]
        else:  # flat Dirichlet: Exp(1) draws, normalised by `split_budget`
            uniforms = torch.rand(len(caps), generator=generator, dtype=torch.float64).tolist()
            weights = [-math.log1p(-u) for u in uniforms]
        counts = self.split_counts(weights, caps)
        return self.build(nodes=tuple(nodes), counts=counts, generator=generator)

    def split_counts(self, weights: Sequence[float], caps: Sequence[int]) -> list[int]:
        """The budget split over layers by `weights`, at least one nonzero per layer, each within
        its cap (`split_budget` on what remains after the one per layer)."""
        rest = split_budget(self.budget - len(caps), weights, [c - 1 for c in caps])
        return [r + 1 for r in rest]

    def build(
        self, *, nodes: Sequence[Tensor], counts: Sequence[int], generator: torch.Generator
    ) -> SparseConfig:
        """The configuration with node keep-masks `nodes` and `counts[l]` nonzeros in layer `l`, at
        uniformly random positions inside each alive block.

        Raises:
            ValueError: masks of the wrong shape or with no kept unit, counts that do not sum to the
                budget, or a count larger than its alive block or below one.
        """
        nodes = tuple(torch.as_tensor(k).to(torch.bool).flatten() for k in nodes)
        if len(nodes) != len(self.hidden) or any(
            len(k) != h for k, h in zip(nodes, self.hidden, strict=True)
        ):
            raise ValueError(
                f"need one keep-mask per hidden layer of sizes {self.hidden}, got {[len(k) for k in nodes]}"
            )
        if any(not k.any() for k in nodes):
            raise ValueError("every hidden layer must keep at least one unit")
        counts = [int(c) for c in counts]
        caps = self.capacities([int(k.sum()) for k in nodes])
        if len(counts) != len(LAYERS) or sum(counts) != self.budget:
            raise ValueError(f"counts {counts} must be one per layer and sum to the budget {self.budget}")
        if any(not 1 <= c <= cap for c, cap in zip(counts, caps, strict=True)):
            raise ValueError(f"counts {counts} must each be between 1 and the alive block sizes {caps}")
        rows = (*nodes, torch.ones(self.num_classes, dtype=torch.bool))
        cols = (torch.ones(self.in_features, dtype=torch.bool), *nodes)
        masks = {}
        for (fqn, shape), r, c, n in zip(self.shapes.items(), rows, cols, counts, strict=True):
            alive_r, alive_c = r.nonzero().flatten(), c.nonzero().flatten()
            pick = torch.randperm(len(alive_r) * len(alive_c), generator=generator)[:n]
            mask = torch.zeros(shape, dtype=torch.bool)
            # flat index into the (rows x cols) alive block -> (row, col) of the full matrix
            mask[alive_r[pick // len(alive_c)], alive_c[pick % len(alive_c)]] = True
            masks[fqn] = mask
        return SparseConfig(nodes=nodes, masks=masks)
