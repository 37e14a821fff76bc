"""Wanda: prune by weight magnitude times input-feature norm, within each output row.

Paper: Sun, Liu, Bair, Kolter 2023, "A Simple and Effective Pruning Approach for Large Language
Models" (reference: locuslab/wanda `prune_wanda`, `WrappedGPT`). No paper key of ours; it is the
starting point of `dsnot` and the baseline of `icbs`.

Rule: S_ij = |W_ij| * ||X_j||_2, with ||X_j||_2 the norm of input feature j over all calibration
tokens (squares summed in fp64, so huge inputs cannot overflow). The comparison group is each
output row: row i keeps its `in - round(sparsity * in)` highest scores. Under N:M, each group of m
consecutive inputs of a row keeps its n highest scores (n kept of every m).

Deviations: the reference scales ||X_j||^2 by 1/n_samples; a per-layer constant does not change
any per-row ranking, so it is omitted. Ties keep the earlier input (the reference's stable sort
prunes the earlier one); with continuous activations ties do not occur.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from sparsetorch.methods import MethodConfig
from sparsetorch.pruning.base import PRUNERS, OneShotPruner
from sparsetorch.pruning.calibration import LayerStats


@dataclass(frozen=True)
class WandaConfig(MethodConfig):
    """Wanda has no hyperparameters beyond sparsity and pattern."""


def wanda_scores(weight: Tensor, norm: Tensor) -> Tensor:
    """|W_ij| * ||X_j||_2 for a weight (out, in) and input norms (in,)."""
    return weight.abs() * norm.reshape(1, -1)


@PRUNERS.register("wanda")
class Wanda(OneShotPruner):
    """score = |W| * ||X||, compared within each output row."""

    name = "wanda"
    Config = WandaConfig
    needs_calibration = True
    group = "row"
    supports_global = False

    def scores(self, weight: Tensor, stats: LayerStats | None, *, generator: torch.Generator) -> Tensor:
        assert stats is not None, "wanda needs calibration statistics"
        return wanda_scores(weight, stats.norm)
