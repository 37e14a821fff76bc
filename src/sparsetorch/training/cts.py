"""CTS: Concrete Ticket Search, a subnetwork learned near initialization by a relaxed mask.

Paper key `cts`: Arora and Teuscher 2025, "Winning the Lottery by Preserving Network Training
Dynamics with Concrete Ticket Search" (arXiv 2512.07142; the authors' research code is
tanayarora09/TLAB, `search/concrete.py` `FrozenConcrete` and `KldLogit`, `models/LotteryLayers.py`).

Rule, once at `prepare` on calibration inputs (see `pai`), with the weights w frozen:

    alpha_j = log(d / (1 - d))                 for every target weight j, d = 1 - sparsity
    for t = 1 .. T:                            (T = `iterations`, minibatches x of the calibration data)
        u_j ~ U(0, 1);  z_j = sigmoid((log(u_j / (1 - u_j)) + alpha_j) / tau)   (binary Concrete)
        D   = KL(p_sparse || p_dense)          (CTS-KL: the reverse KL, batch mean)
              p_dense = softmax(f(x; w)),  p_sparse = softmax(f(x; z * w))
        g   = dD/dalpha                        (the task gradient)
        s   = sigmoid(alpha);  K = slack * d * n        (the expected-density budget)
        h   = 100 / K * s * (1 - s)            (the gradient of the penalty 100 * (sum(s) / K - 1))
        GradBalance:  lambda* = 0 if sum(s) < K, else ||g|| / ||h||
                      lambda  = lambda* at t = 1, else (1 - beta) * lambda + beta * lambda*
        alpha <- Adam step on g + lambda * h   (learning rate x 0.1 after `decay_at` of the steps)
    mask = keep the (1 - sparsity) * n highest alpha over all targets (one global threshold)

GradBalance sets the sparsity force to the size of the task gradient whenever the expected number
of kept weights exceeds the budget, so no penalty coefficient has to be tuned; below the budget the
force decays (exponential average, beta = `smoothing`). The masks never change after `prepare`.

Defaults (the reference's): `temperature=2/3`, `slack=1.1`, `smoothing=0.01`, Adam with `lr=0.1`
(the reference's training learning rate), the divergence scaled by 100, `decay_at=0.88`,
`distribution="global"`, `objective="reverse-kl"`; `iterations=2000` minibatches of
`batch_size=512` (the reference's short search: 20 CIFAR-10 epochs of 98 batches of 512).

Deviations and assumptions:

- The search runs for a fixed number of minibatches drawn (epoch by epoch, from `generator`) from
  the calibration data given to `prepare`/`calibrate`, not for a fraction of the training epochs
  over the full training set: pass as much data as the search should see.
- The reference (checked against its code, the paper's text was not available) computes
  `lambda* = 0` below the budget in a branch that refers to an unset variable; the reading here
  (no force below the budget, the average decays towards 0) is what that branch intends.
- Dropout is off during the search (the reference runs the model in eval mode); batch norm uses
  batch statistics (the reference's batch norms do not track running statistics). Both passes run on
  a deep copy of the model, so its weights, buffers, gradients and the global RNG are untouched.
- The final classifier stays dense by default, as for `snip` (pass `targets=` to include it); the
  reference masks every layer. Exact counts (ties keep the earlier weight) instead of the
  reference's `>= k-th value`, which keeps ties at the threshold.
- `objective="kl"` (the forward KL, KL(p_dense || p_sparse)) is offered for comparison; the paper
  reports the reverse KL as the more effective member of its family of objectives.
- `sparsity=0` keeps everything without a search (the initial logit would be infinite).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call

from sparsetorch._checks import check_int, check_number
from sparsetorch.training.base import TRAINERS
from sparsetorch.training.loop import Loss, Step, train_steps
from sparsetorch.training.ops import MaskUpdate, keep_highest
from sparsetorch.training.pai import PaIConfig, PruneAtInit

OBJECTIVES = ("reverse-kl", "kl")
_LOSS_SCALE = 100.0  # the reference's scale of the divergence; keeps Adam's steps clear of its eps
_PENALTY_SCALE = 100.0  # the reference's scale of the density penalty 100 * (sum(s) / K - 1)
_LR_DECAY = 0.1  # the learning rate is multiplied by this once, after `decay_at` of the search


@dataclass(frozen=True)
class CTSConfig(PaIConfig):
    """Concrete Ticket Search's hyperparameters (the reference's defaults).

    Attributes:
        iterations: minibatch steps of the mask search.
        batch_size: calibration examples per step (the whole calibration set if it is smaller).
        lr: Adam learning rate of the mask logits.
        temperature: temperature `tau` of the binary Concrete relaxation.
        slack: the budget is `slack` times the kept count of the target sparsity (GradBalance).
        smoothing: rate `beta` of GradBalance's exponential average of lambda.
        decay_at: fraction of the steps after which the learning rate is multiplied by 0.1.
        objective: "reverse-kl" (CTS-KL, KL(sparse || dense)) or "kl" (KL(dense || sparse)).
    """

    iterations: int = 2000
    batch_size: int = 512
    lr: float = 0.1
    temperature: float = 2.0 / 3.0
    slack: float = 1.1
    smoothing: float = 0.01
    decay_at: float = 0.88
    objective: str = "reverse-kl"

    def __post_init__(self) -> None:
        super().__post_init__()
        check_int("iterations", self.iterations)
        check_int("batch_size", self.batch_size)
        check_number("lr", self.lr, low=0)
        check_number("temperature", self.temperature, low=0)
        check_number("slack", self.slack, low=1, low_closed=True)
        check_number("smoothing", self.smoothing, low=0, high=1)
        check_number("decay_at", self.decay_at, low=0, high=1)
        if self.objective not in OBJECTIVES:
            raise ValueError(f"objective must be one of {list(OBJECTIVES)}, got {self.objective!r}")


def concrete_gates(
    logits: dict[str, Tensor], *, temperature: float, generator: torch.Generator
) -> dict[str, Tensor]:
    """One binary Concrete sample `sigmoid((log(u / (1 - u)) + alpha) / tau)` per logit.

    The uniforms are drawn on the CPU from `generator`, layer by layer, so the same seed gives the
    same gates on any device; the sample is differentiable in the logits.
    """
    gates = {}
    for f, alpha in logits.items():
        u = torch.rand(alpha.shape, generator=generator).clamp_(min=1e-10)  # [0, 1): guard 0 only
        noise = (u.log() - (-u).log1p()).to(device=alpha.device, dtype=alpha.dtype)
        gates[f] = torch.sigmoid((noise + alpha) / temperature)
    return gates


def divergence(sparse: Tensor, dense: Tensor, *, objective: str = "reverse-kl") -> Tensor:
    """Batch-mean KL divergence between the softmax outputs of two networks' logits.

    "reverse-kl": KL(p_sparse || p_dense) = mean_i sum_c p_s (log p_s - log p_d); "kl" swaps them.
    """
    if objective not in OBJECTIVES:
        raise ValueError(f"objective must be one of {list(OBJECTIVES)}, got {objective!r}")
    log_s, log_d = F.log_softmax(sparse, dim=-1), F.log_softmax(dense, dim=-1)
    if objective == "kl":
        log_s, log_d = log_d, log_s
    return (log_s.exp() * (log_s - log_d)).sum(-1).mean()


def grad_balance(
    task: dict[str, Tensor], logits: dict[str, Tensor], *, budget: float, lam: float | None, smoothing: float
) -> tuple[dict[str, Tensor], float]:
    """GradBalance: the combined gradient `g + lambda * h` of the logits and the new lambda.

    `h` is the gradient of the density penalty `100 * (sum(sigmoid(alpha)) / budget - 1)`. Above the
    budget the target lambda makes `||lambda * h|| = ||g||`; below it, the target is 0. `lam` is the
    running lambda (None before the first step, which takes the target as is).
    """
    with torch.no_grad():
        s = {f: torch.sigmoid(a) for f, a in logits.items()}
        h = {f: (_PENALTY_SCALE / budget) * p * (1 - p) for f, p in s.items()}
        expected = sum(float(p.double().sum()) for p in s.values())
        if expected < budget:
            target = 0.0
        else:
            g_norm = math.sqrt(sum(float(g.double().square().sum()) for g in task.values()))
            h_norm = math.sqrt(sum(float(v.double().square().sum()) for v in h.values()))
            target = g_norm / h_norm if h_norm > 0 else 0.0
        lam = target if lam is None else (1 - smoothing) * lam + smoothing * target
        return {f: task[f] + lam * h[f] for f in task}, lam


def _check_inputs(model: nn.Module, inputs: Tensor) -> None:
    """Refuse non-finite calibration inputs and inputs the model cannot take (one trial example).

    Raises:
        ValueError: naming the problem, before any mask is made.
    """
    if inputs.is_floating_point() and not bool(torch.isfinite(inputs).all()):
        raise ValueError("cts: the calibration inputs contain NaN or inf")
    model.eval()  # the scratch copy: eval mode lets batch norm take a single example
    try:
        with torch.no_grad():
            model(inputs[:1])
    except (RuntimeError, ValueError, IndexError) as error:
        raise ValueError(
            f"cts: the calibration inputs of shape {tuple(inputs.shape)} do not fit the model: {error}"
        ) from error


def _search_mode(model: nn.Module) -> None:
    """Dropout off, batch norm on batch statistics (the reference's untracked batch norms)."""
    model.eval()
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.train()


def _calibration_batches(inputs: Tensor, batch: int, generator: torch.Generator) -> Iterator[Tensor]:
    """Batches of `batch` calibration inputs in seeded epochs; an epoch's incomplete tail is skipped."""
    order, cursor = torch.randperm(len(inputs), generator=generator), 0
    while True:
        if cursor + batch > len(inputs):  # a new epoch over the calibration data
            order, cursor = torch.randperm(len(inputs), generator=generator), 0
        yield inputs[order[cursor : cursor + batch].to(inputs.device)]
        cursor += batch


def concrete_ticket_search(
    model: nn.Module,
    params: dict[str, Tensor],
    inputs: Tensor,
    *,
    sparsity: float,
    distribution: str,
    config: CTSConfig,
    generator: torch.Generator,
) -> tuple[MaskUpdate, dict[str, list[float]]]:
    """Learn Concrete mask logits of `params` (tensors of `model`, a scratch copy) and keep the
    highest at `sparsity`; returns the masks and the search history (`expected_density`, `lambda`,
    `loss` per step)."""
    history: dict[str, list[float]] = {"expected_density": [], "lambda": [], "loss": []}
    if sparsity == 0.0:
        ones = {f: torch.ones_like(w, dtype=torch.float32) for f, w in params.items()}
        return keep_highest(ones, sparsity, distribution), history
    _search_mode(model)
    weights = {f: w.detach() for f, w in params.items()}
    n = sum(w.numel() for w in weights.values())
    density = 1.0 - sparsity
    budget = config.slack * density * n
    start = math.log(density / sparsity)  # sigmoid(start) = density: the expected mask is on budget
    logits = {
        f: torch.full(w.shape, start, dtype=torch.float32, device=w.device, requires_grad=True)
        for f, w in weights.items()
    }
    optimizer = torch.optim.Adam(logits.values(), lr=config.lr)
    decay_step = math.ceil(config.decay_at * config.iterations)
    lam: list[float | None] = [None]

    def loss_fn(model: nn.Module, x: Tensor) -> Loss:
        with torch.no_grad():
            dense = model(x)
        gates = concrete_gates(logits, temperature=config.temperature, generator=generator)
        sparse = functional_call(
            model, {f: weights[f] * gates[f].to(weights[f].dtype) for f in weights}, (x,)
        )
        return Loss(_LOSS_SCALE * divergence(sparse.float(), dense.float(), objective=config.objective))

    def balance(model: nn.Module) -> None:  # GradBalance: the budget term written into the logits' grads
        task = {f: torch.zeros_like(a) if a.grad is None else a.grad for f, a in logits.items()}
        grads, lam[0] = grad_balance(task, logits, budget=budget, lam=lam[0], smoothing=config.smoothing)
        for f, alpha in logits.items():
            alpha.grad = grads[f]

    def record(step: Step) -> None:
        t = step.index + 1
        if t == decay_step and t < config.iterations:
            for group in optimizer.param_groups:
                group["lr"] *= _LR_DECAY
        with torch.no_grad():
            expected = sum(float(torch.sigmoid(a).double().sum()) for a in logits.values())
        history["expected_density"].append(expected / n)
        history["lambda"].append(lam[0])
        history["loss"].append(step.loss / _LOSS_SCALE)

    batches = _calibration_batches(inputs, min(config.batch_size, len(inputs)), generator)
    # Only the logits learn: frozen parameters get no `.grad` from the loop's backward pass.
    flags = {p: p.requires_grad for p in model.parameters()}
    for p in flags:
        p.requires_grad_(False)
    try:
        train_steps(
            model, optimizer, batches, loss_fn, steps=config.iterations, on_grads=balance, on_step=record
        )
    finally:
        for p, flag in flags.items():
            p.requires_grad_(flag)
    if not all(bool(torch.isfinite(a).all()) for a in logits.values()):
        raise RuntimeError("cts: the mask logits diverged (non-finite); lower lr or check the model")
    scores = {f: a.detach().float() for f, a in logits.items()}
    return keep_highest(scores, sparsity, distribution), history


@TRAINERS.register("cts")
class ConcreteTicketSearch(PruneAtInit):
    """Concrete mask logits learned on calibration inputs by the reverse KL to the dense network,
    density steered by GradBalance, the highest logits kept (one global threshold), fixed masks.

    After `prepare`, `history` holds the search's expected density, lambda and divergence per step.
    """

    name = "cts"
    paper = "cts"
    Config = CTSConfig
    needs_labels = False  # the objective compares the network with itself: labels are not used

    def __init__(self, config: CTSConfig | None = None, **overrides: Any) -> None:
        super().__init__(config, **overrides)
        self.history: dict[str, list[float]] = {}

    def select(
        self, model: nn.Module, params: dict[str, Tensor], inputs: Tensor, labels: Tensor | None
    ) -> MaskUpdate:
        _check_inputs(model, inputs)
        config = self.config
        update, self.history = concrete_ticket_search(
            model,
            params,
            inputs,
            sparsity=config.sparsity,
            distribution=config.distribution,
            config=config,
            generator=self.generator,
        )
        return update
