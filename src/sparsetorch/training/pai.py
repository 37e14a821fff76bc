"""Pruning at initialization (PaI): score every target weight once at `prepare`, keep the best, then
train with fixed masks. The shared base of `snip`, `grasp` and `synflow`.

Rule: at `prepare`, before any training step,

    S_l = score(model, calibration data)                  # one score per target weight
    mask = keep the highest S over the targets at `sparsity`

with one threshold over all targets (`distribution="global"`, the three papers' choice) or
per-layer budgets ("uniform", "erk"). The masks never change afterwards: `step` only counts steps.

Scores are computed on a deep copy of the model, so the model's weights, gradients, buffers (batch-
norm statistics) and the global RNG are untouched by the scoring passes.

Calibration data: SNIP and GraSP need a labelled batch, SynFlow only the input shape. Pass it to
`prepare(model, optimizer, ..., data=(inputs, labels))`, or, for loops that call `prepare`
themselves (`sparsetorch.training.fit`), store it first with `method.calibrate((inputs, labels))`.
The batch is used in one forward pass (pass as many examples as the paper: SNIP one minibatch,
GraSP ten per class) and is dropped once the masks are made.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, ClassVar, Self

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize

from sparsetorch.masks import named_weights
from sparsetorch.training.base import SparseTrainingMethod
from sparsetorch.training.config import TrainingConfig
from sparsetorch.training.ops import MaskUpdate, keep_highest

Calibration = Tensor | tuple[Tensor, Tensor] | list[Tensor] | torch.utils.data.TensorDataset


@dataclass(frozen=True)
class PaIConfig(TrainingConfig):
    """Pruning at initialization: one global threshold by default (SNIP, GraSP, SynFlow)."""

    distribution: str = "global"


def as_batch(data: Calibration, *, name: str, labels: bool) -> tuple[Tensor, Tensor | None]:
    """`(inputs, labels)` from a tensor of inputs, an `(inputs, labels)` pair or a `TensorDataset`.

    Raises:
        TypeError: anything else.
        ValueError: no examples, inputs and labels of different lengths, or missing labels when
            `labels` is required.
    """
    tensors = getattr(data, "tensors", data)
    if isinstance(tensors, Tensor):
        x, y = tensors, None
    elif (
        isinstance(tensors, tuple | list)
        and len(tensors) >= 1
        and all(isinstance(t, Tensor) for t in tensors[:2])
    ):
        x, y = tensors[0], (tensors[1] if len(tensors) > 1 else None)
    else:
        raise TypeError(
            f"{name}: calibration data must be an inputs tensor, an (inputs, labels) pair or a "
            f"TensorDataset, got {type(data).__name__}"
        )
    if x.dim() == 0 or len(x) == 0:
        raise ValueError(f"{name}: the calibration data holds no examples")
    if labels and y is None:
        raise ValueError(f"{name}: scoring needs labels; pass data=(inputs, labels)")
    if y is not None and len(y) != len(x):
        raise ValueError(f"{name}: {len(x)} calibration inputs but {len(y)} labels")
    return x, y


class PruneAtInit(SparseTrainingMethod):
    """Masks from `scores` at `prepare`, fixed afterwards (see the module docstring).

    Subclasses implement `scores(model, params, inputs, labels)`, or `select` for an iterative rule.

    Class attributes:
        needs_labels: the score needs labelled calibration data (SNIP, GraSP); SynFlow does not.
    """

    Config = PaIConfig
    distributions: ClassVar[tuple[str, ...]] = ("global", "uniform", "erk")
    needs_labels: ClassVar[bool] = True

    def __init__(self, config: PaIConfig | None = None, **overrides: Any) -> None:
        super().__init__(config, **overrides)
        self._calibration: tuple[Tensor, Tensor | None] | None = None

    def scores(
        self, model: nn.Module, params: dict[str, Tensor], inputs: Tensor, labels: Tensor | None
    ) -> dict[str, Tensor]:
        """`{fqn: score}` of the target weights, higher kept, computed on `model` (a scratch copy
        whose target parameters are `params`)."""
        raise NotImplementedError

    def check(self, shapes: dict[str, torch.Size]) -> None:
        masked = [f for f, (module, name) in self.owners.items() if parametrize.is_parametrized(module, name)]
        if masked:
            raise ValueError(
                f"{self.name}: targets {masked[:3]} are already parametrized (already masked?); pruning "
                "at initialization scores plain weights: prepare it on a model without masks"
            )

    def calibrate(self, data: Calibration) -> Self:
        """Store the calibration batch that the next `prepare` scores with; returns the method.

        Raises:
            RuntimeError: already prepared (the masks are made at `prepare`).
        """
        if self.model is not None:
            raise RuntimeError(
                f"{self.name}: calibrate() after prepare() changes nothing; the masks are made"
            )
        self._calibration = as_batch(data, name=self.name, labels=self.needs_labels)
        return self

    def prepare(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        targets: str | Iterable[str] | None = None,
        ignore: str | Iterable[str] | None = None,
        *,
        total_steps: int | None = None,
        data: Calibration | None = None,
    ) -> nn.Module:
        """`SparseTrainingMethod.prepare`, scoring on `data` (or the batch given to `calibrate`).

        Raises:
            ValueError: no calibration data, besides the base's errors.
        """
        if self.model is None:
            if data is not None:
                self.calibrate(data)
            if self._calibration is None:
                raise ValueError(
                    f"{self.name}: pruning at initialization needs calibration data: pass "
                    "prepare(model, optimizer, data=(inputs, labels)) or call calibrate(data) first"
                )
        try:
            return super().prepare(model, optimizer, targets, ignore, total_steps=total_steps)
        finally:
            self._calibration = None  # the masks are made (or prepare failed): do not hold the batch

    def select(
        self, model: nn.Module, params: dict[str, Tensor], inputs: Tensor, labels: Tensor | None
    ) -> MaskUpdate:
        """The masks: the highest `scores` at `sparsity` (iterative methods override this)."""
        scores = self.scores(model, params, inputs, labels)
        return keep_highest(
            {f: scores[f].detach().float() for f in params}, self.config.sparsity, self.config.distribution
        )

    def initial_masks(self, weights: dict[str, Tensor]) -> MaskUpdate:
        scratch = copy.deepcopy(self.model)
        lookup = {f: (module, name) for f, module, name in named_weights(scratch)}
        params = {f: getattr(*lookup[f]) for f in self.targets}  # plain parameters (see `check`)
        device = next(iter(params.values())).device
        inputs, labels = self._calibration
        inputs = inputs.to(device)
        labels = labels.to(device) if labels is not None else None
        with torch.random.fork_rng(devices=[]):  # dropout in the scoring pass draws from a forked RNG
            update = self.select(scratch, params, inputs, labels)
        return MaskUpdate(
            {f: m.to(weights[f].device) for f, m in update.masks.items()}, update.pruned, update.sparsity
        )
