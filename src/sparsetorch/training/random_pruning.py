"""Random pruning at initialization: static random masks with pre-chosen layer-wise ratios.

Paper key `random-pruning`: Liu, Chen, Chen, Shen, Mocanu, Wang and Pechenizkiy 2022, "The
Unreasonable Effectiveness of Random Pruning: Return of the Most Naive Baseline for Sparse
Training" (reference code VITA-Group/Random_Pruning, `--sparse-init ERK --fix`).

Rule: at `prepare`, each target layer `l` keeps a uniformly random subset of exactly
`(1 - s_l) * n_l` weights, where the layer sparsities `s_l` come from `distribution` ("erk", the
paper's recommended ratios, or "uniform") at overall `sparsity`; the masks never change. With an
N:M pattern (`pattern="2:4"`, `sparsity=0.5`) every group of m inputs keeps n random weights.

Defaults: `sparsity=0.9`, `distribution="erk"`, `seed=0`.

Deviation: the reference samples Bernoulli masks (`rand < density`), so its realised sparsity is
only close to the target; here counts are exact. ERK+ and the hard-coded-layer "uniform+" variants
are not provided (keep a layer dense with `ignore=`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

from torch import Tensor

from sparsetorch.patterns import NM, Unstructured, parse_pattern
from sparsetorch.training.base import TRAINERS, SparseTrainingMethod
from sparsetorch.training.config import TrainingConfig
from sparsetorch.training.ops import MaskUpdate, allocate, random_masks


@dataclass(frozen=True)
class RandomPruningConfig(TrainingConfig):
    """Static random masks; an N:M pattern implies `sparsity = 1 - n/m` and uniform budgets."""

    distribution: str = "erk"

    def __post_init__(self) -> None:
        super().__post_init__()
        pattern = parse_pattern(self.pattern)
        if isinstance(pattern, NM):
            if not math.isclose(self.sparsity, pattern.sparsity, abs_tol=1e-9):
                raise ValueError(
                    f"pattern {pattern} keeps {pattern.n} of every {pattern.m}, i.e. sparsity "
                    f"{pattern.sparsity:g}; pass sparsity={pattern.sparsity:g}, not {self.sparsity:g}"
                )
            if self.distribution != "uniform":
                raise ValueError(
                    f"pattern {pattern} fixes every layer's sparsity; pass distribution='uniform', "
                    f"not {self.distribution!r}"
                )


@TRAINERS.register("random-pruning")
class RandomPruning(SparseTrainingMethod):
    """Random masks at `prepare`; `step` never changes them."""

    name = "random-pruning"
    paper = "random-pruning"
    Config = RandomPruningConfig
    patterns: ClassVar[tuple[type, ...]] = (Unstructured, NM)

    def initial_masks(self, weights: dict[str, Tensor]) -> MaskUpdate:
        shapes = {f: tuple(w.shape) for f, w in weights.items()}
        if isinstance(self.pattern, NM):  # exactly m - n zeros in every group of m
            pruned = {
                f: math.prod(s) * (self.pattern.m - self.pattern.n) // self.pattern.m
                for f, s in shapes.items()
            }
        else:
            pruned = allocate(self.config.distribution, shapes, self.config.sparsity)
        devices = {f: w.device for f, w in weights.items()}
        masks = random_masks(shapes, pruned, generator=self.generator, pattern=self.pattern, device=devices)
        return MaskUpdate(masks, pruned, self.config.sparsity)
