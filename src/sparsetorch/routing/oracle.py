"""Oracle routing: how well could a MoE model answer if each sample's last token took its best experts?

Used by `roma` (Li, Li & Zhou 2025, "Routing Manifold Alignment Improves Generalization of
Mixture-of-Experts LLMs") to measure the gap between a model's routers and optimal routing. The model
answers by the logits of candidate tokens at the last position (a multiple-choice answer letter, a class
token); `answer_logits` reads them.

Oracle rule: for each sample, every top-k expert set of the E experts is forced on the last token in the
given MoE layers (the same set in each of them; all other tokens keep their router's routing), with the
combine weights the gate would give that set (its `mode`; "topk_softmax" by default). A sample is
oracle-correct when any forced set, or the router's own routing, answers correctly, so

    oracle accuracy >= router accuracy,   gap = oracle accuracy - router accuracy >= 0.

Forcing the router's own top-k reproduces the router's output exactly, so forcing changes nothing but
the chosen experts.

Deviation from the paper: its oracle optimizes each sample's routing weights by gradient descent on the
true label; this one searches the C(E, k) forced sets exhaustively (exact and deterministic for small E;
`max_candidates` refuses a search that would be too large). Layers must be dropless at eval.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import NamedTuple

import torch
from torch import Tensor, nn

from sparsetorch.routing.gates import LinearGate, slot_weights
from sparsetorch.routing.moe import MoE

__all__ = [
    "OracleResult",
    "answer_logits",
    "check_answer_data",
    "forced_last_token",
    "last_moe_layers",
    "layer_input",
    "oracle_routing",
    "resolve_moe_layers",
]


def last_moe_layers(model: nn.Module, n: int) -> tuple[str, ...]:
    """FQNs of the last `n` MoE layers of `model` in module order, e.g. ("blocks.3.moe",).

    Raises:
        ValueError: the model has no MoE layer, or fewer than `n`.
    """
    layers = [fqn for fqn, m in model.named_modules() if isinstance(m, MoE)]
    if not layers:
        raise ValueError(f"{type(model).__name__} has no MoE layers (sparsetorch.routing.MoE), so no router")
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= len(layers):
        raise ValueError(f"asked for the last {n} MoE layers, the model has {len(layers)}")
    return tuple(layers[-n:])


def resolve_moe_layers(model: nn.Module, layers: Sequence[str]) -> list[MoE]:
    """The MoE modules named `layers`, each with a learned linear router.

    Raises:
        ValueError: the model has no MoE layers, a name is not one of them, or a gate is not a
            `LinearGate` (hash, random and oracle gates have no router to read or tune).
    """
    found = {fqn: m for fqn, m in model.named_modules() if isinstance(m, MoE)}
    if not found:
        raise ValueError(f"{type(model).__name__} has no MoE layers (sparsetorch.routing.MoE), so no router")
    if isinstance(layers, str) or not layers:
        raise ValueError(f"layers must be a non-empty sequence of MoE layer names, got {layers!r}")
    unknown = [name for name in layers if name not in found]
    if unknown:
        raise ValueError(f"not MoE layers of the model: {unknown}; its MoE layers are {list(found)}")
    for name in layers:
        if not isinstance(found[name].gate, LinearGate):
            raise ValueError(
                f"layer {name!r} has a {type(found[name].gate).__name__}, which has no learned router "
                "(LinearGate)"
            )
    return [found[name] for name in layers]


def layer_input(args: tuple, kwargs: dict) -> Tensor:
    """The (batch, seq, dim) input of a MoE layer from a forward hook's arguments."""
    x = args[0] if args else kwargs.get("x")
    if not isinstance(x, Tensor) or x.dim() != 3:
        shape = tuple(x.shape) if isinstance(x, Tensor) else None
        raise ValueError(f"the last token is read from MoE inputs (batch, seq, dim); got {shape}")
    return x


def answer_logits(model: nn.Module, idx: Tensor, answer_ids: Tensor | None = None) -> Tensor:
    """Logits (B, C) of the candidate answer tokens `answer_ids` (C,) at the last position of `idx` (B, S).

    The model's forward returns logits (B, S, V) or an object with `.logits` (`MoEGPTOutput`); without
    `answer_ids` all V logits are candidates.
    """
    out = model(idx)
    logits = out.logits if hasattr(out, "logits") else out
    last = logits[:, -1]  # (B, V)
    return last if answer_ids is None else last[:, answer_ids]


def check_answer_data(inputs: Tensor, targets: Tensor) -> None:
    """Raise ValueError unless `inputs` are token ids (N, S), N >= 1, and `targets` answer indices (N,)."""
    if not isinstance(inputs, Tensor) or inputs.dim() != 2 or inputs.dtype not in (torch.int64, torch.int32):
        got = f"{inputs.dtype} {tuple(inputs.shape)}" if isinstance(inputs, Tensor) else type(inputs).__name__
        raise ValueError(f"inputs must be token ids (samples, seq), got {got}")
    if inputs.shape[0] == 0:
        raise ValueError("no samples given")
    if not isinstance(targets, Tensor) or targets.shape != (inputs.shape[0],):
        got = tuple(targets.shape) if isinstance(targets, Tensor) else type(targets).__name__
        raise ValueError(f"targets must be ({inputs.shape[0]},) answer indices, got {got}")


@contextmanager
def forced_last_token(model: nn.Module, layers: Sequence[str], experts: Tensor) -> Iterator[None]:
    """Inside the block, route the last token of every sample to `experts` in the MoE `layers`.

    Args:
        experts: (k,) one expert set for the whole batch, or (B, k) one per sample; k is each gate's k.
            Combine weights follow the gate's rule over the forced set; other tokens are unchanged.

    Raises:
        ValueError: bad expert ids, a k different from a gate's, or a layer that drops tokens at eval.
    """
    mods = resolve_moe_layers(model, layers)
    if experts.dim() not in (1, 2) or experts.dtype not in (torch.int64, torch.int32):
        raise ValueError(
            f"experts must be int (k,) or (batch, k), got {experts.dtype} {tuple(experts.shape)}"
        )
    for name, moe in zip(layers, mods, strict=True):
        if experts.shape[-1] != moe.k:
            raise ValueError(
                f"layer {name!r} routes to k={moe.k} experts, forced sets have {experts.shape[-1]}"
            )
        if experts.numel() and (int(experts.min()) < 0 or int(experts.max()) >= moe.num_experts):
            raise ValueError(f"forced experts must be in [0, {moe.num_experts}) for layer {name!r}")
        if moe.eval_capacity_factor is not None:
            raise ValueError(f"layer {name!r} may drop tokens at eval; forced routing needs dropless layers")

    def hook(module: MoE, args: tuple, kwargs: dict, output: tuple[Tensor, dict]) -> tuple:
        x_last = layer_input(args, kwargs)[:, -1]  # (B, d)
        chosen = experts.long().to(x_last.device).expand(x_last.shape[0], -1)  # (B, k)
        w = slot_weights(module.gate.logits(x_last), chosen, getattr(module.gate, "mode", "topk_softmax"))
        y_last = torch.zeros(x_last.shape, dtype=torch.float32, device=x_last.device)
        for e in range(module.num_experts):
            rows, slots = torch.nonzero(chosen == e, as_tuple=True)
            if rows.numel():
                out = module.experts.expert(e, x_last[rows].float())  # (n, d)
                y_last = y_last.index_add(0, rows, w[rows, slots, None] * out)
        y, aux = output
        y = y.clone()
        y[:, -1] = y_last.to(y.dtype)  # the MoE output excludes the residual, so this replaces it whole
        return y, aux

    handles = [moe.register_forward_hook(hook, with_kwargs=True) for moe in mods]
    try:
        yield
    finally:
        for h in handles:
            h.remove()


class OracleResult(NamedTuple):
    """Per sample: the router answers right (N,), some routing answers right (N,), and the first forced
    expert set (N, k) that does (-1 where none does)."""

    router_correct: Tensor
    oracle_correct: Tensor
    best_experts: Tensor

    @property
    def router_accuracy(self) -> float:
        return float(self.router_correct.float().mean())

    @property
    def oracle_accuracy(self) -> float:
        return float(self.oracle_correct.float().mean())

    @property
    def gap(self) -> float:
        """Oracle accuracy minus router accuracy (>= 0)."""
        return self.oracle_accuracy - self.router_accuracy


@torch.no_grad()
def oracle_routing(
    model: nn.Module,
    inputs: Tensor,
    targets: Tensor,
    *,
    layers: Sequence[str],
    answer_ids: Tensor | None = None,
    batch_size: int = 256,
    max_candidates: int = 1024,
) -> OracleResult:
    """Router and oracle correctness of each sample (see the module docstring); the model runs in eval mode.

    Args:
        inputs: token ids (N, S); targets: (N,) index of the right answer among the candidates.
        layers: MoE layers whose last-token routing the oracle sets (sharing one (E, k)).
        answer_ids: candidate answer tokens (C,); None for all logits.

    Raises:
        ValueError: bad data, unknown layers, layers with different E or k, or more than
            `max_candidates` expert sets to try.
    """
    check_answer_data(inputs, targets)
    mods = resolve_moe_layers(model, layers)
    shapes = {(m.num_experts, m.k) for m in mods}
    if len(shapes) != 1:
        raise ValueError(f"forced sets are shared across layers, which need one (E, k); got {sorted(shapes)}")
    ((num_experts, k),) = shapes
    if math.comb(num_experts, k) > max_candidates:
        raise ValueError(
            f"{math.comb(num_experts, k)} sets of {k} of {num_experts} experts exceed max_candidates={max_candidates}"
        )
    candidates = torch.tensor(list(itertools.combinations(range(num_experts), k)), dtype=torch.int64)
    was_training = model.training
    model.eval()
    router, oracle, best = [], [], []
    try:
        for start in range(0, len(inputs), batch_size):
            idx, y = inputs[start : start + batch_size], targets[start : start + batch_size]
            right = answer_logits(model, idx, answer_ids).argmax(-1) == y
            found = torch.full((len(idx), k), -1, dtype=torch.int64)
            hit = torch.zeros(len(idx), dtype=torch.bool)
            for experts in candidates:
                with forced_last_token(model, layers, experts):
                    ok = answer_logits(model, idx, answer_ids).argmax(-1) == y
                found[ok & ~hit] = experts
                hit |= ok
            router.append(right)
            oracle.append(right | hit)
            best.append(found)
    finally:
        model.train(was_training)
    return OracleResult(torch.cat(router), torch.cat(oracle), torch.cat(best))
