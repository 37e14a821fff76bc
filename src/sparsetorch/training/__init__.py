"""Training sparse networks: masks learned (or fixed) while training.

Every method follows `torch.ao.pruning`'s verbs (see `base`): `prepare(model, optimizer)`, then
`step()` after each `optimizer.step()`, then `squash()`. Registered methods (`TRAINERS`):

- `gmp`: gradual magnitude pruning on the cubic schedule (Zhu & Gupta 2017);
- `granet`: gradual pruning with zero-cost neuroregeneration (Liu et al. 2021);
- `rigl`: drop by |w|, grow by |dL/dW| of the masked weight (Evci et al. 2020);
- `set`: drop by |w|, regrow at random (Mocanu et al. 2018);
- `random-pruning`: static random masks with uniform or ERK ratios (Liu et al. 2022).

`fit` and `evaluate` are a minimal loop for the bench and the paper reproductions.
"""

from sparsetorch.training import gmp, granet, random_pruning, rigl, set_  # noqa: F401  (fill the registry)
from sparsetorch.training.base import TRAINERS, SparseTrainingMethod
from sparsetorch.training.config import ScheduledConfig, TrainingConfig
from sparsetorch.training.dst import DynamicSparseConfig, DynamicSparseMethod
from sparsetorch.training.fit import evaluate, fit
from sparsetorch.training.ops import MaskUpdate, drop_and_grow, keep_top, reset_optimizer_state
from sparsetorch.training.schedules import cosine_decay, cubic

__all__ = [
    "TRAINERS",
    "DynamicSparseConfig",
    "DynamicSparseMethod",
    "MaskUpdate",
    "ScheduledConfig",
    "SparseTrainingMethod",
    "TrainingConfig",
    "cosine_decay",
    "cubic",
    "drop_and_grow",
    "evaluate",
    "fit",
    "keep_top",
    "reset_optimizer_state",
]
