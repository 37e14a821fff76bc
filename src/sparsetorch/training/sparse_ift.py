"""Sparse-IFT, Sparse Wide: widen the hidden layers and sparsify, at the dense model's FLOPs.

Paper key `sparse-ift`: Thangarasa, Saxena, Gupta and Lie 2023, "Sparse Iso-FLOP Transformations
for Maximizing Training Efficiency" (reference code CerebrasResearch/Sparse-IFT). Sparse Wide is
the simplest member of the family: one hyperparameter, the sparsity `s`.

Rule, for a fully connected network `in -> h_1 -> ... -> h_L -> out` (LeNet-300-100: 784 -> 300
-> 100 -> 10) and sparsity `s`:

    k       = sqrt(1 / (1 - s))                  width multiplier: (1 - s) * k**2 = 1
    h'_i    = round(k * h_i)                     every hidden width, never the input or output
    nnz_l   = in_l * out_l                       layer l keeps as many weights as the dense layer

A layer widened on both sides (a hidden-to-hidden layer) has `k**2` times the weights and keeps
the fraction `1 / k**2 = 1 - s` of them: its FLOPs are `(1 - s) * k**2 * F_l = F_l`, the paper's
per-layer iso-FLOP condition. A layer widened on one side only (the first layer, whose input is
fixed, and the classifier, whose output is fixed) has `k` times the weights and keeps `1 / k =
sqrt(1 - s)` of them (sparsity `1 - sqrt(1 - s)`), so it is iso-FLOP too. Fixing `nnz_l` to the
dense layer's weight count, rather than `(1 - s)` of the rounded wide layer, makes every layer's
FLOPs equal the dense layer's exactly despite the rounding of the widths (the per-layer sparsity
is then `1 - in_l * out_l / (in'_l * out'_l)`, within rounding of `s` or `1 - sqrt(1 - s)`).

The sparse wide model is trained with a sparse training method whose masks keep these per-layer
counts: dynamic sparse training (`"rigl"`, the paper's choice, or `"set"`), or static random
masks (`"random-pruning"`, the paper's "static sparsity" baseline). Its initial masks are uniformly
random with exactly `nnz_l` ones per layer; RigL and SET then move weights within each layer, so
the count, and hence the FLOPs, never change.

    wide = sparse_wide(0.75)                       # k = 2: 784 -> 600 -> 200 -> 10
    model = create_model("lenet-300-100", seed=0, **wide.model_config())   # the wide, still dense model
    method = wide.method("rigl", seed=0)           # an unprepared RigL with the iso-FLOP budgets
    fit(model, method, data, epochs=5)

Deviations and assumptions:
- The reference code (ResNets) keeps the stem and the classifier dense and still widens the
  channels next to them, which costs a little extra FLOPs there (negligible for a ResNet, where
  those layers are small). For an MLP the first layer holds most of the FLOPs (88% in
  LeNet-300-100), so here the boundary layers are sparsified to stay iso-FLOP, as above.
- Biases (and, in the reference, BatchNorm) are not counted: FLOPs are the multiply-adds of the
  weights, as `sparsetorch.accounting.report` measures them.
- Iso-FLOP is per forward pass. RigL's growth step reads one dense gradient every `update_every`
  steps (the paper's accounting adds it); static and SET training are iso-FLOP throughout.
- Only LeNet-style MLPs (a chain of Linear layers `fc1 ... fc{L+1}`) are transformed here; the
  Sparse Parallel, Factorized and Doped members of the family are not provided.
"""

from __future__ import annotations

import importlib
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from sparsetorch.training.ops import MaskUpdate, random_masks
from sparsetorch.training.random_pruning import RandomPruning
from sparsetorch.training.rigl import RigL
from sparsetorch.training.sparse_evolutionary import SET

__all__ = ["METHODS", "SparseWide", "iso_flop_method", "sparse_wide", "width_multiplier"]


def width_multiplier(sparsity: float) -> float:
    """`k = sqrt(1 / (1 - s))`, the Sparse Wide width multiplier, so that `(1 - s) * k**2 = 1`.

    Raises:
        ValueError: `sparsity` outside [0, 1).
    """
    if isinstance(sparsity, bool) or not isinstance(sparsity, int | float) or not 0.0 <= sparsity < 1.0:
        raise ValueError(f"sparsity must be a number in [0, 1), got {sparsity!r}")
    return math.sqrt(1.0 / (1.0 - sparsity))


@dataclass(frozen=True)
class SparseWide:
    """A Sparse Wide transformation of an MLP: widths, per-layer weight budgets, and how to train it.

    Attributes:
        sparsity: the transformation's `s`.
        width_multiplier: `k = sqrt(1 / (1 - s))`.
        dense_hidden: the dense model's hidden widths.
        hidden: the widened hidden widths, `round(k * h)`.
        in_features, num_classes: the input and output sizes (never widened).
        fqns: the weight FQNs of the layers, first to last (`fc1.weight` ...).
        shapes: `{fqn: (out, in)}` of the wide layers.
        nonzeros: `{fqn: in * out}` of the dense layers, the weights each wide layer keeps.
    """

    sparsity: float
    width_multiplier: float
    dense_hidden: tuple[int, ...]
    hidden: tuple[int, ...]
    in_features: int
    num_classes: int
    fqns: tuple[str, ...]
    shapes: dict[str, tuple[int, int]]
    nonzeros: dict[str, int]

    @property
    def pruned(self) -> dict[str, int]:
        """`{fqn: zeros}` of each wide layer."""
        return {f: self.shapes[f][0] * self.shapes[f][1] - self.nonzeros[f] for f in self.fqns}

    @property
    def layer_sparsity(self) -> dict[str, float]:
        """`{fqn: fraction of zeros}` of each wide layer."""
        return {f: z / (self.shapes[f][0] * self.shapes[f][1]) for f, z in self.pruned.items()}

    @property
    def target_sparsity(self) -> float:
        """The fraction of zeros over all the wide layers' weights (what the method's masks reach)."""
        total = sum(o * i for o, i in self.shapes.values())
        return sum(self.pruned.values()) / total

    def model_config(self) -> dict[str, Any]:
        """`create_model("lenet-300-100", **config)` overrides of the wide model."""
        return {"in_features": self.in_features, "hidden": self.hidden, "num_classes": self.num_classes}

    def create_model(self, seed: int = 0) -> nn.Module:
        """Deprecated: `sparsetorch.create_model("lenet-300-100", seed=seed, **wide.model_config())`.

        The training axis does not import the models layer above it (DESIGN.md, Layers)."""
        warnings.warn(
            "SparseWide.create_model is deprecated: use sparsetorch.create_model("
            '"lenet-300-100", seed=seed, **wide.model_config())',
            DeprecationWarning,
            stacklevel=2,
        )
        create_model = importlib.import_module("sparsetorch.models").create_model  # shim, not a dependency
        return create_model("lenet-300-100", seed=seed, **self.model_config())

    def method(self, name: str = "rigl", **config: Any):
        """An unprepared training method `name` ("rigl", "set", "random-pruning") whose masks keep
        the iso-FLOP budgets on every layer (see `iso_flop_method`)."""
        return iso_flop_method(self, name, **config)


def sparse_wide(
    sparsity: float,
    hidden: Sequence[int] = (300, 100),
    *,
    in_features: int = 784,
    num_classes: int = 10,
) -> SparseWide:
    """The Sparse Wide transformation of the MLP `in_features -> *hidden -> num_classes` at `sparsity`.

    Raises:
        ValueError: `sparsity` outside [0, 1), or a non-positive width.
    """
    k = width_multiplier(sparsity)
    dense_hidden = tuple(int(h) for h in hidden)
    if not dense_hidden or min(dense_hidden) < 1 or in_features < 1 or num_classes < 1:
        raise ValueError(
            f"widths must be positive, got in_features={in_features}, hidden={hidden}, "
            f"num_classes={num_classes}"
        )
    wide_hidden = tuple(max(h, round(k * h)) for h in dense_hidden)
    dense_chain = (in_features, *dense_hidden, num_classes)
    wide_chain = (in_features, *wide_hidden, num_classes)
    fqns = tuple(f"fc{i + 1}.weight" for i in range(len(dense_chain) - 1))
    shapes = {f: (wide_chain[i + 1], wide_chain[i]) for i, f in enumerate(fqns)}  # (out, in)
    nonzeros = {f: dense_chain[i + 1] * dense_chain[i] for i, f in enumerate(fqns)}
    return SparseWide(
        sparsity=float(sparsity),
        width_multiplier=k,
        dense_hidden=dense_hidden,
        hidden=wide_hidden,
        in_features=in_features,
        num_classes=num_classes,
        fqns=fqns,
        shapes=shapes,
        nonzeros=nonzeros,
    )


class _IsoFlopBudgets:
    """Mixin: targets every layer of the transformation, with random initial masks that keep
    exactly `wide.nonzeros[fqn]` weights per layer (methods that move weights within a layer keep
    the counts afterwards)."""

    def __init__(self, wide: SparseWide, **config: Any) -> None:
        if "sparsity" in config:
            raise ValueError(
                "the sparse wide transformation sets the sparsity of the masks "
                f"({wide.target_sparsity:.6g}); choose it with sparse_wide(sparsity=...)"
            )
        if config.get("distribution", "uniform") not in ("uniform", "erk"):
            raise ValueError("the per-layer budgets come from the transformation; leave distribution alone")
        super().__init__(sparsity=wide.target_sparsity, **config)
        self.wide = wide

    def prepare(self, model: nn.Module, optimizer: torch.optim.Optimizer, targets=None, ignore=None, **kw):
        if targets is not None or ignore is not None:
            raise ValueError("the sparse wide transformation targets every layer it widened; pass no targets")
        return super().prepare(model, optimizer, list(self.wide.fqns), **kw)

    def initial_masks(self, weights: dict[str, Tensor]) -> MaskUpdate:
        shapes = {f: tuple(w.shape) for f, w in weights.items()}
        if shapes != {f: tuple(s) for f, s in self.wide.shapes.items()}:
            raise ValueError(
                f"{self.name}: the model's layers {shapes} are not the sparse wide shapes "
                f"{self.wide.shapes}; build the model with SparseWide.create_model"
            )
        pruned = self.wide.pruned
        devices = {f: w.device for f, w in weights.items()}
        masks = random_masks(shapes, pruned, generator=self.generator, device=devices)
        return MaskUpdate(masks, pruned, self.config.sparsity)


class SparseWideRigL(_IsoFlopBudgets, RigL):
    """RigL on a sparse wide model (the paper's dynamic sparse training)."""


class SparseWideSET(_IsoFlopBudgets, SET):
    """SET on a sparse wide model."""


class SparseWideStatic(_IsoFlopBudgets, RandomPruning):
    """Static random masks on a sparse wide model."""


METHODS: dict[str, type] = {
    "rigl": SparseWideRigL,
    "set": SparseWideSET,
    "random-pruning": SparseWideStatic,
}


def iso_flop_method(wide: SparseWide, name: str = "rigl", **config: Any):
    """An unprepared training method `name` for the sparse wide model of `wide`.

    `config` overrides the method's paper defaults (except `sparsity`, set by the transformation).
    `prepare` targets every layer of the transformation, the classifier included.

    Raises:
        KeyError: a method other than "rigl", "set" or "random-pruning" (the ones whose masks keep
            per-layer counts).
    """
    if name not in METHODS:
        raise KeyError(f"sparse wide training supports {sorted(METHODS)}, not {name!r}")
    return METHODS[name](wide, **config)
