"""RoMA: router-only fine-tuning with a routing-manifold regularizer.

Paper `roma`: Li, Li & Zhou (2025), "Routing Manifold Alignment Improves Generalization of
Mixture-of-Experts LLMs" (arXiv 2511.07419). Routers of MoE LLMs leave a 10-20% accuracy gap to the best
routing of each sample (`sparsetorch.routing.oracle` measures it); fine-tuning only the routers, with a
regularizer that pulls each sample's routing weights toward those of its *successful* neighbours in a
task-embedding space, narrows it.

The rule, for a model answering by the logits of candidate tokens at the last position:

- routing of sample i: `r_i` = the router probabilities `softmax(l)` (over all E experts) of its last
  token in each of the L tuned MoE layers, concatenated, shape (L * E,);
- successful set S: the training samples the model answers correctly *before* fine-tuning, with their
  task embeddings `z_j` (all-MiniLM-L6-v2 for text) and their routing `r_j`, both frozen;
- neighbours: `N(i)` = the k members of S with the largest cosine similarity `c_ij = cos(z_i, z_j)`;
- affinity: `a_ij = exp(-(1 - c_ij)^2 / (2 sigma^2))`, `W_ij = a_ij / sum_{l in N(i)} a_il`;
- regularizer over a batch B: `R = (1/|B|) sum_i sum_{j in N(i)} W_ij ||r_i - r_j||^2`
  (`reduction="sum"` drops the 1/|B|);
- objective: `L = L_task + lambda(t) R`, `lambda(t) = lambda * min(1, (t + 1) / T_lambda)`, `L_task` the
  cross-entropy over the answer candidates; only the gate weights of the last `tuned_layers` MoE layers
  are trainable (AdamW with a linear learning-rate warmup).

`RomaConfig` holds the defaults of the authors' released code (`finetune_roma.py` of tianyi-lab/RoMA,
read through a public mirror): k = 5, sigma = 0.4, lambda = 0.8, lr 7e-5, weight decay 0.01, 3 epochs of
batch 32, 2000 warmup steps for the learning rate and for lambda, routers of the last 5 MoE layers.
`lam = 0` is the baseline "router-only fine-tuning on the task loss alone".

Deviations, with reasons:
- The paper's text was not available to us in full; the form above (Gaussian kernel on the cosine
  distance, normalized over the k neighbours, mean over the batch, a sample in S being its own nearest
  neighbour, k capped at |S|) follows the authors' released code. That code reads the batch's `r_i` from
  stored routing files, which leaves the regularizer without gradient; here `r_i` comes from the live
  routers, as the paper describes.
- Fine-tuning runs the model in eval mode, so frozen parts behave as at inference (no dropout).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sparsetorch._checks import check_int, check_number
from sparsetorch.routing.moe import MoE
from sparsetorch.routing.oracle import (
    answer_logits,
    check_answer_data,
    last_moe_layers,
    layer_input,
    resolve_moe_layers,
)
from sparsetorch.training.loop import Loss, Step, epoch_batches, train_steps

__all__ = [
    "RomaConfig",
    "SuccessfulSet",
    "finetune_routers",
    "freeze_except_routers",
    "manifold_regularizer",
    "neighbour_weights",
    "router_probs",
    "successful_set",
]


@dataclass(frozen=True, kw_only=True)
class RomaConfig:
    """Hyperparameters of RoMA router fine-tuning (defaults: the authors' released code).

    Args:
        lam: weight lambda of the manifold regularizer (0: task loss only, the baseline).
        k: neighbours per sample in the successful set (capped at its size).
        sigma: width of the Gaussian kernel on the cosine distance `1 - cos`.
        lr: AdamW learning rate of the router weights.
        weight_decay: AdamW weight decay.
        epochs: passes over the fine-tuning set.
        batch_size: samples per step.
        warmup_steps: linear learning-rate warmup (0: none).
        lam_warmup_steps: linear warmup of lambda (0: none).
        tuned_layers: routers of the last `tuned_layers` MoE layers are fine-tuned.
        seed: seeds the batch order.
    """

    lam: float = 0.8
    k: int = 5
    sigma: float = 0.4
    lr: float = 7e-5
    weight_decay: float = 0.01
    epochs: int = 3
    batch_size: int = 32
    warmup_steps: int = 2000
    lam_warmup_steps: int = 2000
    tuned_layers: int = 5
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("lam", "weight_decay"):
            check_number(name, getattr(self, name), low=0, low_closed=True)
        for name in ("sigma", "lr"):
            check_number(name, getattr(self, name), low=0)
        for name in ("k", "epochs", "batch_size", "tuned_layers"):
            check_int(name, getattr(self, name))
        for name in ("warmup_steps", "lam_warmup_steps"):
            check_int(name, getattr(self, name), minimum=0)


# --- the manifold regularizer (pure) ----------------------------------------------------------------


def _check_matrix(name: str, t: Tensor) -> None:
    if not isinstance(t, Tensor) or t.dim() != 2:
        shape = tuple(t.shape) if isinstance(t, Tensor) else type(t).__name__
        raise ValueError(f"{name} must be a 2-d tensor (rows, features), got {shape}")
    if not bool(torch.isfinite(t).all()):
        raise ValueError(f"{name} contains NaN or inf values")


def neighbour_weights(
    queries: Tensor, reference: Tensor, *, k: int, sigma: float, exclude: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    """The k cosine-nearest reference rows of each query and their normalized Gaussian affinities.

    Args:
        queries: task embeddings (B, d) of the batch.
        reference: task embeddings (N, d) of the successful set.
        k: neighbours per query, 1 <= k <= N (N - 1 when `exclude` is given).
        sigma: kernel width; `a = exp(-(1 - cos)^2 / (2 sigma^2))`.
        exclude: optional (B,) int64 reference row each query may not pick (e.g. its own), -1 for none.

    Returns:
        `indices` (B, k) int64 into the reference rows, by decreasing similarity, and `weights` (B, k)
        summing to 1 per query. No gradient flows (the graph is fixed by the embeddings).

    Raises:
        ValueError: non-2-d or non-finite embeddings, different widths, an empty reference set, k out of
            range, or sigma <= 0.
    """
    _check_matrix("query embeddings", queries)
    _check_matrix("reference embeddings", reference)
    num_ref = reference.shape[0]
    if num_ref == 0:
        raise ValueError("the reference (successful) set is empty: no sample to align with")
    if queries.shape[1] != reference.shape[1]:
        raise ValueError(
            f"query and reference embeddings differ in width: {queries.shape[1]} vs {reference.shape[1]}"
        )
    if not math.isfinite(sigma) or sigma <= 0:
        raise ValueError(f"sigma must be a positive number, got {sigma}")
    available = num_ref - (exclude is not None)
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= available:
        raise ValueError(
            f"k={k} neighbours requested but the reference set offers {available} per query; "
            "use 1 <= k <= reference size" + (" - 1 (own row excluded)" if exclude is not None else "")
        )
    if exclude is not None and exclude.shape != (queries.shape[0],):
        raise ValueError(f"exclude must be ({queries.shape[0]},), got {tuple(exclude.shape)}")
    with torch.no_grad():
        sim = F.normalize(queries.float(), dim=-1) @ F.normalize(reference.float(), dim=-1).T  # (B, N)
        if exclude is not None:
            rows = torch.nonzero(exclude >= 0).flatten()
            sim[rows, exclude[rows].long()] = float("-inf")
        top = torch.topk(sim, k, dim=-1)
        affinity = torch.exp(-((1.0 - top.values) ** 2) / (2.0 * sigma**2))
        weights = affinity / affinity.sum(-1, keepdim=True)
    return top.indices, weights


def manifold_regularizer(
    routing: Tensor,
    embeddings: Tensor,
    ref_embeddings: Tensor,
    ref_routing: Tensor,
    *,
    k: int,
    sigma: float,
    exclude: Tensor | None = None,
    reduction: Literal["mean", "sum"] = "mean",
) -> Tensor:
    """RoMA's `R = (1/B) sum_i sum_{j in N(i)} W_ij ||r_i - r_j||^2` (see the module docstring).

    Args:
        routing: routing weights `r_i` (B, R) of the batch (gradients flow through them).
        embeddings: task embeddings `z_i` (B, d) of the batch.
        ref_embeddings: task embeddings (N, d) of the successful set.
        ref_routing: routing weights (N, R) of the successful set (treated as constants).
        k, sigma, exclude: as in `neighbour_weights`.
        reduction: "mean" over the batch (the authors' code) or "sum".

    Raises:
        ValueError: mismatched shapes, an empty reference set, k larger than the reference set,
            NaN / inf values, or an unknown reduction.
    """
    if reduction not in ("mean", "sum"):
        raise ValueError(f"reduction must be 'mean' or 'sum', got {reduction!r}")
    _check_matrix("routing weights", routing)
    _check_matrix("reference routing weights", ref_routing)
    _check_matrix("embeddings", embeddings)
    if routing.shape[0] != embeddings.shape[0]:
        raise ValueError(
            f"routing has {routing.shape[0]} rows, embeddings {embeddings.shape[0]}: one per sample"
        )
    if ref_routing.shape[0] != ref_embeddings.shape[0]:
        raise ValueError(
            f"reference routing has {ref_routing.shape[0]} rows, reference embeddings {ref_embeddings.shape[0]}"
        )
    if routing.shape[1] != ref_routing.shape[1]:
        raise ValueError(
            f"routing width {routing.shape[1]} differs from the reference's {ref_routing.shape[1]}"
        )
    indices, weights = neighbour_weights(embeddings, ref_embeddings, k=k, sigma=sigma, exclude=exclude)
    neighbours = ref_routing.detach().to(routing.dtype)[indices]  # (B, k, R)
    dist = ((routing[:, None, :] - neighbours) ** 2).sum(-1)  # (B, k) squared distances
    total = (weights.to(dist.dtype) * dist).sum()
    return total / routing.shape[0] if reduction == "mean" else total


# --- routers: freezing and reading them --------------------------------------------------------------


def freeze_except_routers(model: nn.Module, layers: Sequence[str]) -> list[nn.Parameter]:
    """Freeze every parameter of `model` except the gate weights of the MoE `layers`; return those.

    Raises:
        ValueError: the model has no MoE layers, a name is not one of them, or a gate has no learned
            router; the model is left untouched then.
    """
    params = [p for moe in resolve_moe_layers(model, layers) for p in moe.gate.parameters()]
    for p in model.parameters():
        p.requires_grad_(False)
    for p in params:
        p.requires_grad_(True)
    return params


@contextmanager
def router_probs(model: nn.Module, layers: Sequence[str]) -> Iterator[dict[str, Tensor]]:
    """Inside the block, each forward stores the last token's router probabilities per layer.

    Yields a dict refilled by every forward: `{fqn: softmax(l) (B, E) of the last token}`, computed from
    the layer's input with the gate's own weights, so gradients reach the router. Hooks go on exit.
    """
    mods = resolve_moe_layers(model, layers)
    store: dict[str, Tensor] = {}

    def hook_for(name: str):
        def hook(module: MoE, args: tuple, kwargs: dict, output: object) -> None:
            x_last = layer_input(args, kwargs)[:, -1]  # (B, d)
            store[name] = torch.softmax(module.gate.logits(x_last), dim=-1)  # (B, E)

        return hook

    handles = [
        moe.register_forward_hook(hook_for(n), with_kwargs=True) for n, moe in zip(layers, mods, strict=True)
    ]
    try:
        yield store
    finally:
        for h in handles:
            h.remove()


def _concat(store: dict[str, Tensor], layers: Sequence[str]) -> Tensor:
    return torch.cat([store[name] for name in layers], dim=-1)  # (B, L * E)


class SuccessfulSet(NamedTuple):
    """The samples a model answers correctly: task embeddings (N, d), routing (N, L*E), rows (N,)."""

    embeddings: Tensor
    routing: Tensor
    rows: Tensor


@torch.no_grad()
def successful_set(
    model: nn.Module,
    inputs: Tensor,
    targets: Tensor,
    embeddings: Tensor,
    *,
    layers: Sequence[str],
    answer_ids: Tensor | None = None,
    batch_size: int = 256,
) -> SuccessfulSet:
    """The samples `model` answers correctly, with their embeddings and frozen routing weights.

    Args:
        inputs: token ids (N, S); targets: (N,) index of the right answer among the candidates.
        embeddings: task embeddings (N, d) of the samples.
        layers: the MoE layers whose last-token routing forms `r` (the layers to tune).
    """
    check_answer_data(inputs, targets)
    _check_matrix("embeddings", embeddings)
    if embeddings.shape[0] != inputs.shape[0]:
        raise ValueError(f"{embeddings.shape[0]} embeddings for {inputs.shape[0]} samples")
    was_training = model.training
    model.eval()
    correct, routing = [], []
    try:
        with router_probs(model, layers) as store:
            for start in range(0, len(inputs), batch_size):
                logits = answer_logits(model, inputs[start : start + batch_size], answer_ids)
                correct.append(logits.argmax(-1) == targets[start : start + batch_size])
                routing.append(_concat(store, layers))
    finally:
        model.train(was_training)
    rows = torch.nonzero(torch.cat(correct)).flatten()
    return SuccessfulSet(embeddings[rows], torch.cat(routing)[rows], rows)


# --- router-only fine-tuning ---------------------------------------------------------------------------


def finetune_routers(
    model: nn.Module,
    inputs: Tensor,
    targets: Tensor,
    *,
    config: RomaConfig,
    answer_ids: Tensor | None = None,
    embeddings: Tensor | None = None,
    reference: SuccessfulSet | None = None,
) -> list[dict[str, float]]:
    """Fine-tune only the routers of the last `config.tuned_layers` MoE layers (RoMA; baseline at lam=0).

    Loss per step: cross-entropy of the answer candidates + `lambda(t) * manifold_regularizer` of the
    batch's last-token routing against `reference` (built by `successful_set` from the same layers).
    Parameters other than those routers keep their values; `requires_grad` flags and the train/eval
    mode are restored afterwards.

    Args:
        inputs: token ids (N, S); targets: (N,) answer indices.
        embeddings: task embeddings (N, d) of `inputs`; needed when `config.lam > 0`.
        reference: the successful set; needed when `config.lam > 0`.

    Returns:
        One dict per step: task loss, regularizer, lambda, learning rate.

    Raises:
        ValueError: bad data, a model without MoE layers (or fewer than `tuned_layers`), a missing
            embedding or reference set when lam > 0, or a reference of the wrong width. Raised before
            the model is touched.
    """
    if not isinstance(config, RomaConfig):
        raise TypeError(f"config must be a RomaConfig, got {type(config).__name__}")
    check_answer_data(inputs, targets)
    layers = last_moe_layers(model, config.tuned_layers)
    k = _checked_neighbours(config, resolve_moe_layers(model, layers), inputs, embeddings, reference)
    flags = {p: p.requires_grad for p in model.parameters()}
    was_training = model.training
    params = freeze_except_routers(model, layers)
    history: list[dict[str, float]] = []

    def ramp(step: int, warmup: int) -> float:
        return min(1.0, (step + 1) / warmup) if warmup else 1.0

    def loss_fn(model: nn.Module, batch: Tensor, *, step: int) -> Loss:
        task = F.cross_entropy(answer_logits(model, inputs[batch], answer_ids), targets[batch])
        reg = torch.zeros(())
        if config.lam > 0:
            assert embeddings is not None and reference is not None
            routing = _concat(store, layers)
            reg = manifold_regularizer(
                routing, embeddings[batch], reference.embeddings, reference.routing, k=k, sigma=config.sigma
            )
        lam = config.lam * ramp(step, config.lam_warmup_steps)
        return Loss(task + lam * reg, parts={"task": task.detach(), "reg": reg.detach()})

    def record(step: Step) -> None:
        lam, lr = config.lam * ramp(step.index, config.lam_warmup_steps), step.optimizer.param_groups[0]["lr"]
        history.append({"task": step.parts["task"], "reg": step.parts["reg"], "lam": lam, "lr": lr})

    model.eval()
    try:
        with router_probs(model, layers) as store:
            train_steps(
                model,
                torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay),
                epoch_batches(len(inputs), config.batch_size, torch.Generator().manual_seed(config.seed)),
                loss_fn,
                steps=config.epochs * math.ceil(len(inputs) / config.batch_size),
                lr_at=lambda step: config.lr * ramp(step, config.warmup_steps),
                on_step=record,
            )
    finally:
        for p, flag in flags.items():
            p.requires_grad_(flag)
        model.train(was_training)
    return history


def _checked_neighbours(
    config: RomaConfig,
    mods: Sequence[MoE],
    inputs: Tensor,
    embeddings: Tensor | None,
    reference: SuccessfulSet | None,
) -> int:
    """The neighbour count k (capped at |S|, as the authors' code), after checking the RoMA inputs.

    Raises:
        ValueError: a missing or ill-shaped embedding or reference set when `config.lam > 0`.
    """
    if config.lam <= 0:
        return config.k
    if embeddings is None or reference is None:
        raise ValueError("lam > 0 needs the samples' embeddings and a successful (reference) set")
    _check_matrix("embeddings", embeddings)
    if embeddings.shape[0] != inputs.shape[0]:
        raise ValueError(f"{embeddings.shape[0]} embeddings for {inputs.shape[0]} samples")
    width = sum(m.num_experts for m in mods)
    if reference.routing.shape[1] != width:
        raise ValueError(
            f"reference routing has width {reference.routing.shape[1]}, the {len(mods)} tuned layers "
            f"give {width}; build it with successful_set on the same layers"
        )
    if reference.routing.shape[0] == 0:
        raise ValueError("the successful (reference) set is empty: the model answers no sample correctly")
    _check_matrix("reference routing weights", reference.routing)
    k = min(config.k, reference.routing.shape[0])
    # checks shapes and finiteness once, before the model changes
    neighbour_weights(embeddings[:1], reference.embeddings, k=k, sigma=config.sigma)
    return k
