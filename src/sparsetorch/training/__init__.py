"""Training sparse networks: masks learned (or fixed) while training.

Every method follows `torch.ao.pruning`'s verbs (see `base`): `prepare(model, optimizer)`, then
`step()` after each `optimizer.step()`, then `finish()`. Registered methods (`TRAINERS`):

- `gmp`: gradual magnitude pruning on the cubic schedule (Zhu & Gupta 2017);
- `granet`: gradual pruning with zero-cost neuroregeneration (Liu et al. 2021);
- `rigl`: drop by |w|, grow by |dL/dW| of the masked weight (Evci et al. 2020);
- `set`: drop by |w|, regrow at random (Mocanu et al. 2018);
- `random-pruning`: static random masks with uniform or ERK ratios (Liu et al. 2022);
- `imp`: iterative magnitude pruning with weight rewinding, its rounds inside one run (Frankle &
  Carbin 2019; Frankle et al. 2020);
- `snip`, `grasp`, `synflow`: pruning at initialization by connection sensitivity (Lee et al.
  2019), gradient signal preservation (Wang et al. 2020) and iterative synaptic flow (Tanaka et al.
  2020); masks made at `prepare` from calibration data (`pai`), fixed afterwards;
- `cts`: Concrete Ticket Search (Arora & Teuscher 2025): Concrete mask logits learned at `prepare`
  by the reverse KL to the dense network, density steered by GradBalance, the highest logits
  kept; masks fixed afterwards (`pai`);
- `sr-ste`: N:M from scratch, the sparse-refined straight-through estimator (Zhou et al. 2021);
- `bdwp`: N:M weights in the forward and the backward pass (Fang et al. 2023);
- `g2gnet`: block-modular ensemble masks with Hebbian regrowth (Konstantaropoulos et al. 2025);
- `turbo-vbi`: Turbo-VBI structured Bayesian pruning, a Markov neuron / fan-in support prior (Xia
  et al. 2023);
- `wgsef`: group envelope proximal regularizer reaching a preset row sparsity (Refael et al. 2022).

`sparse_ift.sparse_wide` / `iso_flop_method` give the Sparse Wide iso-FLOP transformation
(Thangarasa et al. 2023): widths times sqrt(1/(1-s)), trained sparse at the dense model's FLOPs.

`sparse_model_soups` (`soups`) is a driver rather than a registered method: IMP cycles whose
retraining runs share one mask and are averaged (Zimmer et al. 2023).

`fit` / `evaluate` (classification) and `fit_lm` / `evaluate_lm` (language models) run on the one
training substrate, `loop.train_steps`, whose `on_step` / `on_eval` callbacks are where sparse
methods, routers, monitors and paper reproductions hook in.
"""

from sparsetorch.training import (  # noqa: F401  (fill the registry)
    bdwp,
    cts,
    g2gnet,
    gmp,
    granet,
    grasp,
    imp,
    random_pruning,
    rigl,
    snip,
    sparse_evolutionary,
    sr_ste,
    synflow,
    turbo_vbi,
    wgsef,
)
from sparsetorch.training.base import TRAINERS, SparseTrainingMethod
from sparsetorch.training.config import ScheduledConfig, TrainingConfig
from sparsetorch.training.dst import DynamicSparseConfig, DynamicSparseMethod
from sparsetorch.training.fit import evaluate, fit
from sparsetorch.training.lm import evaluate_lm, fit_lm
from sparsetorch.training.loop import Loss, Step, TrainLog, as_callbacks, train_steps
from sparsetorch.training.nm import NMFromScratch
from sparsetorch.training.ops import (
    MaskUpdate,
    drop_and_grow,
    keep_highest,
    keep_top,  # deprecated alias of keep_top_among; warns when called
    keep_top_among,
    reset_optimizer_state,
)
from sparsetorch.training.pai import PruneAtInit
from sparsetorch.training.schedules import cosine_decay, cubic
from sparsetorch.training.soups import sparse_model_soups
from sparsetorch.training.sparse_ift import SparseWide, iso_flop_method, sparse_wide, width_multiplier

__all__ = [
    "TRAINERS",
    "DynamicSparseConfig",
    "DynamicSparseMethod",
    "Loss",
    "MaskUpdate",
    "NMFromScratch",
    "PruneAtInit",
    "ScheduledConfig",
    "SparseTrainingMethod",
    "SparseWide",
    "Step",
    "TrainLog",
    "TrainingConfig",
    "as_callbacks",
    "cosine_decay",
    "cubic",
    "drop_and_grow",
    "evaluate",
    "evaluate_lm",
    "fit",
    "fit_lm",
    "iso_flop_method",
    "keep_highest",
    "keep_top",
    "keep_top_among",
    "reset_optimizer_state",
    "sparse_model_soups",
    "sparse_wide",
    "train_steps",
    "width_multiplier",
]
