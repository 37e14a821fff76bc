"""Transcoders: a wide, sparsely-activating MLP trained to imitate a dense MLP sublayer.

Paper `transcoders` (Dunefsky, Chlenski & Nanda 2024, "Transcoders Find Interpretable LLM Feature
Circuits"); reference code jacobdunefsky/transcoder_circuits (`sae_training/`, `train_transcoder.py`).

A transcoder reads an MLP sublayer's *input* x and predicts that MLP's *output* y = MLP(x) (an
SAE would reconstruct its own input):

    f(x)  = ReLU(W_enc (x - b_in) + b_enc)            features, width m = expansion * d_in
    y^(x) = W_dec f(x) + b_out                        each feature writes one unit-norm direction

    L = mean_{t, j} (y^_tj - y_tj)^2 / ||y_t||_2  +  lambda * mean_t sum_i f_ti

The squared error of token t is divided by the norm of its target (the reference code's MSE; the
paper writes the plain squared error), so lambda does not depend on the scale of the MLP output.
The L1 term is the plain sum of activations: the decoder vectors are kept at unit norm instead
(renormalized before every step, and the gradient component parallel to each decoder vector is
removed before the optimizer step), so the L1 penalty cannot be dodged by shrinking f and growing
W_dec. `b_in` (subtracted from the input) and `b_out` start at the mean input and mean output.

Training (reference defaults, `TranscoderTrainConfig`): Adam lr 4e-4, batches of 4096 tokens, linear warmup
over 5000 steps then constant, 60M tokens (14,648 steps), lambda 1.4e-4, 32x expansion, ghost grads
for dead features. A feature is *dead* when it has not fired on any token of the last
`dead_window` steps (`DeadFeatureTracker`; the reference masks ghost grads by the same count,
5000 steps, and logs as dead the features whose firing frequency over 1000 steps is below 1e-8,
i.e. that never fired on those 4M tokens). Ghost grads: for dead features only, exp(pre-activation) is
decoded, rescaled to half the norm of the current residual y - y^, and trained to predict that
residual; the term is rescaled to the size of the MSE, so it pulls dead features towards
directions the live ones miss without changing the model's output. An SAE is the same model
trained with the inputs as targets (`train_transcoder(y, y)`); its `b_in` and `b_out` stay untied,
where the reference's SAE mode ties them.

Around a model (`sparsetorch.sdr.mlp_hooks`, re-exported here): `collect_mlp_io` records (input,
output) pairs of one MLP sublayer through forward hooks (real tokens only, padding dropped);
`substitute_mlp` replaces the sublayer's output by any function of its input (a transcoder, or
`constant_output` for zero / mean ablation) inside a `with` block and removes its hooks on exit,
even on error. For all-MiniLM-L6-v2 the MLP of layer L is `minilm_mlp(L)`.

Deviations: ghost grads fit the residual of the *target* (y - y^); the reference computes
`x - sae_out` with the input x even in transcoder mode, which for a transcoder compares unrelated
spaces. The per-token norm in the MSE is clamped at 1e-8 so an all-zero target cannot divide by
zero (targets near zero still weigh heavily, as in the reference: MLP outputs never vanish). A feature counts as dead after `dead_window` silent steps (the reference uses "more than").
Substitution runs the original MLP and overwrites its output through a hook (rather than swapping
modules), which leaves the model's modules untouched; it costs one dense MLP per forward.

Conventions: tokens are rows, x (N, d_in), y (N, d_out); W_enc is (d_in, m) and W_dec is (m, d_out),
so a feature's decoder vector is a row here (a column of the paper's W_dec).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sparsetorch._checks import check_int, check_number
from sparsetorch.sdr.mlp_hooks import collect_mlp_io, constant_output, minilm_mlp, substitute_mlp
from sparsetorch.training.fit import progress_bar
from sparsetorch.training.loop import Loss, Step, epoch_batches, train_steps

__all__ = [
    "DeadFeatureTracker",
    "Transcoder",
    "TranscoderConfig",
    "TranscoderLoss",
    "TranscoderTrainConfig",
    "TranscoderTrainResult",
    "collect_mlp_io",
    "constant_output",
    "ghost_grad_loss",
    "minilm_mlp",
    "substitute_mlp",
    "train_transcoder",
    "transcoder_loss",
    "transcoder_metrics",
]

_EPS = 1e-8


@dataclass(frozen=True, kw_only=True)
class TranscoderConfig:
    """Shape and loss of a transcoder (reference defaults: 32x expansion, lambda 1.4e-4).

    Args:
        d_in: width of the MLP input.
        d_out: width of the MLP output (None: same as `d_in`).
        expansion: number of features per input dimension (width m = expansion * d_in).
        l1_coefficient: lambda, the weight of the L1 penalty on the features.
        normalize_mse: divide each token's squared error by the norm of its target (reference code).
    """

    d_in: int
    d_out: int | None = None
    expansion: int = 32
    l1_coefficient: float = 1.4e-4
    normalize_mse: bool = True

    def __post_init__(self) -> None:
        check_int("d_in", self.d_in)
        d_out = self.d_in if self.d_out is None else self.d_out
        object.__setattr__(self, "d_out", check_int("d_out", d_out))
        check_int("expansion", self.expansion)
        check_number("l1_coefficient", self.l1_coefficient, low=0)

    @property
    def width(self) -> int:
        return self.expansion * self.d_in


@dataclass(frozen=True, kw_only=True)
class TranscoderTrainConfig:
    """How a transcoder is trained (reference defaults: 60M tokens in batches of 4096).

    Args:
        steps: optimizer steps.
        batch_size: tokens per step (drawn without replacement, reshuffled every pass).
        lr: Adam learning rate after warmup.
        warmup_steps: linear warmup length (0: none); the rate then stays constant.
        dead_window: a feature that fires on no token for this many steps is dead.
        ghost_grads: add the ghost-grad loss for dead features.
        seed: seeds the initialization and the batch order.
    """

    steps: int = 14_648
    batch_size: int = 4096
    lr: float = 4e-4
    warmup_steps: int = 5000
    dead_window: int = 5000
    ghost_grads: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        check_int("steps", self.steps)
        check_int("batch_size", self.batch_size)
        check_number("lr", self.lr, low=0)
        check_int("dead_window", self.dead_window)
        check_int("warmup_steps", self.warmup_steps, minimum=0)


class Transcoder(nn.Module):
    """f = ReLU(W_enc (x - b_in) + b_enc), y^ = W_dec f + b_out, with unit-norm decoder vectors.

    Args:
        config: widths and loss.
        generator: draws the initial weights (None: a generator seeded with 0, so that building a
            transcoder never draws from the global RNG).
    """

    def __init__(self, config: TranscoderConfig, *, generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.config = config
        generator = generator if generator is not None else torch.Generator().manual_seed(0)
        d_in, d_out, m = config.d_in, config.d_out, config.width
        assert d_out is not None  # set by TranscoderConfig.__post_init__
        # Kaiming-uniform on the (d_in, m) and (m, d_out) tensors, as in the reference code.
        self.W_enc = nn.Parameter(nn.init.kaiming_uniform_(torch.empty(d_in, m), generator=generator))
        self.b_enc = nn.Parameter(torch.zeros(m))
        self.W_dec = nn.Parameter(nn.init.kaiming_uniform_(torch.empty(m, d_out), generator=generator))
        self.b_in = nn.Parameter(torch.zeros(d_in))
        self.b_out = nn.Parameter(torch.zeros(d_out))
        self.normalize_decoder_()

    def pre_activations(self, x: Tensor) -> Tensor:
        """W_enc (x - b_in) + b_enc for x of shape (..., d_in) -> (..., m)."""
        if x.shape[-1] != self.config.d_in:
            raise ValueError(
                f"transcoder expects inputs with last dim d_in={self.config.d_in}, got {tuple(x.shape)}"
            )
        return (x - self.b_in) @ self.W_enc + self.b_enc

    def encode(self, x: Tensor) -> Tensor:
        """The feature activations f(x) >= 0, shape (..., m)."""
        return F.relu(self.pre_activations(x))

    def decode(self, features: Tensor) -> Tensor:
        """W_dec f + b_out, shape (..., d_out)."""
        return features @ self.W_dec + self.b_out

    def forward(self, x: Tensor) -> Tensor:
        return self.decode(self.encode(x))

    @torch.no_grad()
    def normalize_decoder_(self) -> None:
        """Scale every feature's decoder vector (row of W_dec) to unit norm."""
        self.W_dec.div_(self.W_dec.norm(dim=1, keepdim=True).clamp(min=_EPS))

    @torch.no_grad()
    def remove_parallel_decoder_grad_(self) -> None:
        """Drop the gradient component along each decoder vector: steps then stay near the unit sphere."""
        if self.W_dec.grad is not None:
            g, w = self.W_dec.grad, self.W_dec
            g.sub_((g * w).sum(dim=1, keepdim=True) * w)

    @torch.no_grad()
    def init_biases_(self, x: Tensor, y: Tensor) -> None:
        """b_in <- mean input, b_out <- mean output (the reference's `b_dec_init_method="mean"`)."""
        self.b_in.copy_(x.mean(0))
        self.b_out.copy_(y.mean(0))


# -- losses ---------------------------------------------------------------------------------------


class TranscoderLoss(NamedTuple):
    """total = mse + l1 (+ ghost); each a scalar tensor, l1 already multiplied by lambda."""

    total: Tensor
    mse: Tensor
    l1: Tensor
    ghost: Tensor


def _squared_error(pred: Tensor, target: Tensor, normalize: bool) -> Tensor:
    # Per element (N, d_out); divided by ||y_t|| per token when normalized (reference code).
    err = (pred - target) ** 2
    return err / target.norm(dim=-1, keepdim=True).clamp(min=_EPS) if normalize else err


def transcoder_loss(
    output: Tensor, features: Tensor, target: Tensor, *, l1_coefficient: float, normalize_mse: bool = True
) -> TranscoderLoss:
    """mean_{t,j} (y^ - y)^2 / ||y_t|| + lambda mean_t sum_i |f_ti| (ghost term zero)."""
    if output.shape != target.shape:
        raise ValueError(f"output {tuple(output.shape)} and target {tuple(target.shape)} differ in shape")
    mse = _squared_error(output, target, normalize_mse).mean()
    l1 = l1_coefficient * features.abs().sum(dim=-1).mean()
    return TranscoderLoss(mse + l1, mse, l1, torch.zeros((), dtype=mse.dtype))


def ghost_grad_loss(
    pre: Tensor, W_dec: Tensor, dead: Tensor, output: Tensor, target: Tensor, *, normalize_mse: bool = True
) -> Tensor:
    """The ghost-grad term: dead features, through exp(pre), fit the residual y - y^ (see module doc)."""
    residual = target - output  # (N, d_out)
    ghost = torch.exp(pre[:, dead]) @ W_dec[dead]  # (N, d_out), only dead features
    scale = residual.norm(dim=-1) / (1e-6 + 2 * ghost.norm(dim=-1))  # half the residual's norm
    ghost = ghost * scale[:, None].detach()
    ghost_err = _squared_error(ghost, residual.detach(), normalize_mse)
    mse_err = _squared_error(output, target, normalize_mse)
    # Rescaled per element to the size of the main MSE, so the term never dominates the loss.
    return ((mse_err / (ghost_err + 1e-6)).detach() * ghost_err).mean()


# -- dead features --------------------------------------------------------------------------------


@dataclass
class DeadFeatureTracker:
    """Counts, per feature, the steps since it last fired; dead = silent for >= `window` steps."""

    width: int
    window: int
    steps_since_fired: Tensor = field(init=False)

    def __post_init__(self) -> None:
        check_int("width", self.width)
        check_int("window", self.window)
        self.steps_since_fired = torch.zeros(self.width, dtype=torch.long)

    def update(self, features: Tensor) -> None:
        """Record one step's activations (N, width)."""
        if features.ndim != 2 or features.shape[1] != self.width:
            raise ValueError(f"features must be (N, {self.width}), got {tuple(features.shape)}")
        fired = (features > 0).any(dim=0)
        self.steps_since_fired += 1
        self.steps_since_fired[fired] = 0

    @property
    def dead(self) -> Tensor:
        """Bool mask (width,) of features that have not fired over the last `window` steps."""
        return self.steps_since_fired >= self.window

    @property
    def dead_fraction(self) -> float:
        return float(self.dead.float().mean())


# -- training -------------------------------------------------------------------------------------


class TranscoderTrainResult(NamedTuple):
    """The trained transcoder (eval mode), the tracker at the end, and per-step curves."""

    transcoder: Transcoder
    tracker: DeadFeatureTracker
    history: dict[str, list[float]]


def _check_pairs(inputs: Tensor, targets: Tensor) -> None:
    if inputs.ndim != 2 or targets.ndim != 2:
        raise ValueError(
            f"inputs and targets must be (N, d), got {tuple(inputs.shape)} and {tuple(targets.shape)}"
        )
    if len(inputs) == 0:
        raise ValueError("no training data: inputs and targets are empty")
    if len(inputs) != len(targets):
        raise ValueError(f"{len(inputs)} inputs but {len(targets)} targets")
    if not (torch.isfinite(inputs).all() and torch.isfinite(targets).all()):
        raise ValueError("inputs or targets contain NaN or infinite values")


def train_transcoder(
    inputs: Tensor,
    targets: Tensor,
    *,
    config: TranscoderConfig | None = None,
    train: TranscoderTrainConfig | None = None,
    progress: bool = False,
) -> TranscoderTrainResult:
    """Train a transcoder mapping `inputs` (N, d_in) to `targets` (N, d_out).

    Args:
        config: shape and loss (default: reference defaults at the data's widths).
        train: schedule and seed (default: `TranscoderTrainConfig()`).
        progress: show a `rich` progress bar.

    Raises:
        ValueError: empty, non-finite or mismatched data, or widths that disagree with `config`.
    """
    _check_pairs(inputs, targets)
    config = config or TranscoderConfig(d_in=inputs.shape[1], d_out=targets.shape[1])
    train = train or TranscoderTrainConfig()
    if (inputs.shape[1], targets.shape[1]) != (config.d_in, config.d_out):
        raise ValueError(
            f"data widths (d_in={inputs.shape[1]}, d_out={targets.shape[1]}) do not match the config "
            f"(d_in={config.d_in}, d_out={config.d_out})"
        )
    inputs, targets = inputs.float(), targets.float()
    gen = torch.Generator().manual_seed(train.seed)
    tc = Transcoder(config, generator=gen)
    tc.init_biases_(inputs, targets)
    opt = torch.optim.Adam(tc.parameters(), lr=train.lr)
    warm = max(train.warmup_steps, 1)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / warm))
    tracker = DeadFeatureTracker(width=config.width, window=train.dead_window)
    history: dict[str, list[float]] = {k: [] for k in ("loss", "mse", "l1", "ghost", "l0", "dead_fraction")}

    def loss_fn(tc: Transcoder, idx: Tensor) -> Loss:
        x, y = inputs[idx], targets[idx]
        tc.normalize_decoder_()
        pre = tc.pre_activations(x)
        f = F.relu(pre)
        out = tc.decode(f)
        parts = transcoder_loss(
            out, f, y, l1_coefficient=config.l1_coefficient, normalize_mse=config.normalize_mse
        )
        ghost, dead = parts.ghost, tracker.dead  # dead before this step's update
        if train.ghost_grads and bool(dead.any()):
            ghost = ghost_grad_loss(pre, tc.W_dec, dead, out, y, normalize_mse=config.normalize_mse)
        return Loss(parts.total + ghost, (f.detach(), parts, ghost))

    def record(step: Step) -> None:
        sched.step()
        f, parts, ghost = step.output
        tracker.update(f)
        l0 = (f > 0).sum(-1).float().mean()
        values = (parts.total + ghost, parts.mse, parts.l1, ghost, l0, tracker.dead_fraction)
        for key, value in zip(history, values, strict=True):
            history[key].append(float(torch.as_tensor(value).detach()))
        bar.update(task, advance=1, status=f"mse {history['mse'][-1]:.4f} L0 {history['l0'][-1]:.1f}")

    tc.train()
    with progress_bar(progress, "{task.fields[status]}") as bar:
        task = bar.add_task("training transcoder", total=train.steps, status="")
        batches = epoch_batches(len(inputs), train.batch_size, gen)
        train_steps(
            tc,
            opt,
            batches,
            loss_fn,
            steps=train.steps,
            on_grads=lambda tc: tc.remove_parallel_decoder_grad_(),  # after the backward pass
            on_step=record,
        )
    tc.normalize_decoder_()
    return TranscoderTrainResult(tc.eval(), tracker, history)


@torch.no_grad()
def transcoder_metrics(transcoder: Transcoder, inputs: Tensor, targets: Tensor) -> dict[str, float]:
    """Faithfulness and sparsity on held-out pairs.

    - `fve`: fraction of the variance of y explained, 1 - sum ||y - y^||^2 / sum ||y - mean(y)||^2;
    - `l0`: mean number of active features per token; `density` = l0 / width;
    - `never_active_fraction`: features that fire on none of these tokens.
    """
    _check_pairs(inputs, targets)
    f = transcoder.encode(inputs.float())
    out = transcoder.decode(f)
    y = targets.float()
    fve = 1 - ((y - out) ** 2).sum() / ((y - y.mean(0)) ** 2).sum().clamp(min=_EPS)
    l0 = (f > 0).sum(-1).float().mean()
    return {
        "fve": float(fve),
        "l0": float(l0),
        "density": float(l0) / transcoder.config.width,
        "never_active_fraction": float((~(f > 0).any(0)).float().mean()),
    }
