"""DASS: a differentiable (DARTS-style) search over sparse operations, at small scale.

Paper key `dass`: Mousavi, Loni, Alibeigi and Daneshtalab 2022, "DASS: Differentiable Architecture
Search for Sparse neural networks" (arXiv 2207.06968). DASS adds parametric sparse operations
(`SparseConv`, `SparseLinear`) to a DARTS search space and evaluates the architecture objective on
the *sparse* weights, so the search prefers architectures that stay accurate once pruned.

Here the search space is the over-parameterized MLP of `sparsetorch.search.space` (all hidden
units kept) and the operations of layer `l` are `K` SparseLinear candidates sharing one weight
`W_l`, candidate `k` keeping the `n_lk` largest-magnitude weights, `n_lk = round(D * r_k * |W_l|)`
with `D = 1 - sparsity` and multipliers `r_k` (default 1/4 .. 4 times the uniform density). The
mixed operation (DARTS' continuous relaxation), by linearity of the layer:

    p_l = softmax(alpha_l),   o_l(x) = sum_k p_lk (W_l * M_lk) x = (W_l * sum_k p_lk M_lk) x,

with `M_lk` the magnitude masks, recomputed from `|W_l|` every `mask_interval` steps (a pruning
step between training phases, as DASS alternates them) and constant in the backward pass. Bi-level optimization, first-order DARTS, alternating one step of each:

    weights: W <- W - eta_w * grad_W  CE(train batch; W, alpha)            (SGD, momentum, cosine)
    arch:    alpha <- alpha - eta_a * grad_alpha [ CE(val batch; W, alpha)
                                                   + lambda * (E(alpha) / B - 1)^2 ]   (Adam)

where `E(alpha) = sum_l sum_k p_lk n_lk` is the expected number of nonzeros and `B` the budget of the
space. The first `warmup_steps` steps train the weights only (DASS pre-trains the supernet before
the architecture is updated). Discretization: in each layer take `k*_l = argmax_k alpha_lk`, then
rescale the chosen counts `n_{l,k*_l}` by the largest-remainder split (`SparseMLPSpace.split_counts`,
capped at the layer size) so that the total is exactly the budget. The result is the layer-wise
sparsity of the architecture; its weights are placed at random positions and trained from scratch
by the caller, as DARTS retrains the discretized architecture.

Deviations (all for a CPU-sized, exactly budgeted reproduction): the candidates differ in sparsity
level only (DASS mixes sparse and dense conv/linear/pooling ops of different kernel sizes in a
DARTS cell on CIFAR-10/ImageNet); the masks come from weight magnitude (DASS learns importance
scores with a pruning step between weight and architecture updates); the budget penalty `lambda`
is ours (DASS fixes one pruning ratio per op, which our budget-constrained discretization replaces);
the final weight positions are random rather than the supernet's. DARTS' optimizer defaults are
kept (weights SGD lr 0.025, momentum 0.9, wd 3e-4; architecture Adam lr 3e-4, betas (0.5, 0.999),
wd 1e-3; alpha initialised as 1e-3 * N(0, 1)); batch 64.

The weight steps run on `training.loop.train_steps`; the architecture step is its `on_step` callback
(a second optimizer stepped once per weight step), so the bilevel search has no loop of its own.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call

from sparsetorch._checks import check_int, check_number
from sparsetorch.methods import MethodConfig
from sparsetorch.search.base import SEARCHES, SearchOutcome, SparseSearch, fresh_copy
from sparsetorch.search.space import SparseMLPSpace
from sparsetorch.search.train import Data
from sparsetorch.training.loop import Loss, Step, epoch_batches, train_steps

__all__ = ["Dass", "DassConfig", "candidate_counts", "discretize", "magnitude_masks", "soft_mask"]


@dataclass(frozen=True)
class DassConfig(MethodConfig):
    """DASS search hyperparameters (DARTS' optimizer defaults; see the module docstring).

    Args:
        multipliers: candidate layer densities as multiples of the uniform density `1 - sparsity`.
        search_steps: weight steps of the search (each after warmup is followed by one alpha step).
        warmup_steps: first steps that train the weights only (< search_steps).
        batch_size: examples per weight and per architecture step.
        weight_lr, weight_momentum, weight_decay: SGD on the supernet weights (cosine to 0).
        arch_lr, arch_weight_decay: Adam (betas 0.5, 0.999) on the architecture parameters.
        budget_penalty: lambda of the expected-nonzeros term.
        mask_interval: steps between re-rankings of the candidates' magnitude masks.
        seed: seeds alpha's initialisation, the batch order and the final weight positions.
    """

    multipliers: tuple[float, ...] = (0.25, 0.5, 1.0, 2.0, 4.0)
    search_steps: int = 200
    warmup_steps: int = 50
    batch_size: int = 64
    weight_lr: float = 0.025
    weight_momentum: float = 0.9
    weight_decay: float = 3e-4
    arch_lr: float = 3e-4
    arch_weight_decay: float = 1e-3
    budget_penalty: float = 1.0
    mask_interval: int = 10
    seed: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "multipliers", tuple(self.multipliers))
        if not self.multipliers:
            raise ValueError("empty search space: multipliers has no candidate operations")
        for r in self.multipliers:
            check_number("multipliers", r, low=0)
        for label in ("search_steps", "batch_size", "mask_interval"):
            check_int(label, getattr(self, label))
        w = self.warmup_steps
        if isinstance(w, bool) or not isinstance(w, int) or not 0 <= w < self.search_steps:
            raise ValueError(
                f"warmup_steps must be an integer in [0, search_steps={self.search_steps}), got {w!r}: "
                "the search needs at least one architecture step"
            )
        for label in ("weight_lr", "arch_lr"):
            check_number(label, getattr(self, label), low=0)
        for label in ("weight_momentum", "weight_decay", "arch_weight_decay", "budget_penalty"):
            check_number(label, getattr(self, label), low=0, low_closed=True)
        check_int("seed", self.seed, minimum=0)


def candidate_counts(space: SparseMLPSpace, multipliers: tuple[float, ...]) -> dict[str, list[int]]:
    """`{fqn: [n_l1 .. n_lK]}`: nonzeros of each candidate op, `round(D * r_k * numel)` in `[1, numel]`."""
    density = space.budget / space.numel
    out = {}
    for fqn, shape in space.shapes.items():
        numel = math.prod(shape)
        out[fqn] = [min(numel, max(1, round(density * r * numel))) for r in multipliers]
    return out


def magnitude_masks(weight: Tensor, counts: list[int]) -> Tensor:
    """`(K, *weight.shape)` float masks, mask `k` keeping the `counts[k]` largest `|weight|`."""
    magnitude = weight.detach().abs()
    ranked = magnitude.flatten().topk(max(counts)).values  # descending
    # Ties at a threshold keep every tied weight (measure zero for trained float weights).
    return torch.stack([(magnitude >= ranked[c - 1]).to(weight.dtype) for c in counts])


def soft_mask(weight: Tensor, counts: list[int], probs: Tensor) -> Tensor:
    """`sum_k probs[k] * M_k` with `M_k` from `magnitude_masks` (constant in the backward pass)."""
    return torch.tensordot(probs, magnitude_masks(weight, counts), dims=1)


def discretize(space: SparseMLPSpace, alphas: dict[str, Tensor], counts: dict[str, list[int]]) -> list[int]:
    """Per-layer nonzeros: each layer's argmax candidate, rescaled to exactly the space's budget."""
    chosen = [float(counts[f][int(alphas[f].argmax())]) for f in space.shapes]
    caps = [math.prod(s) for s in space.shapes.values()]
    return space.split_counts(chosen, caps)


@SEARCHES.register("dass")
class Dass(SparseSearch):
    """Differentiable search of per-layer sparsity levels; see the module docstring."""

    name = "dass"
    paper = "dass"
    Config = DassConfig

    def _search(self, space: SparseMLPSpace, parent: nn.Module, train_data: Data, val: Data) -> SearchOutcome:
        if 1.0 not in space.node_fractions:
            raise ValueError(f"{self.name}: the space must allow keeping every unit (1.0 in node_fractions)")
        cfg = self.config
        gen = torch.Generator().manual_seed(cfg.seed)
        counts = candidate_counts(space, cfg.multipliers)
        net = fresh_copy(parent)
        alphas = {
            f: (1e-3 * torch.randn(len(cfg.multipliers), generator=gen)).requires_grad_()
            for f in space.shapes
        }
        w_opt = torch.optim.SGD(
            net.parameters(), lr=cfg.weight_lr, momentum=cfg.weight_momentum, weight_decay=cfg.weight_decay
        )
        w_sched = torch.optim.lr_scheduler.CosineAnnealingLR(w_opt, cfg.search_steps)
        arch = _ArchStep(self.config, space, net, alphas, counts, gen, val)
        net.train()
        # The weight steps run on the substrate; the architecture step (first-order DARTS: one Adam
        # step of alpha on a validation batch) is an `on_step` callback, so bilevel needs no own loop.
        train_steps(
            net,
            w_opt,
            epoch_batches(len(train_data[0]), cfg.batch_size, gen),
            arch.weight_loss(train_data),
            steps=cfg.search_steps,
            on_step=[lambda step: w_sched.step(), arch],
        )
        final = discretize(space, {f: a.detach() for f, a in alphas.items()}, counts)
        config = space.build(nodes=space.full_nodes(), counts=final, generator=gen)
        history = {
            "probabilities": {f: alphas[f].detach().softmax(0).tolist() for f in space.shapes},
            "candidate_counts": counts,
            "chosen_multipliers": [cfg.multipliers[int(alphas[f].argmax())] for f in space.shapes],
            "counts": final,
            "arch_steps": arch.steps,
            "expected_nonzeros_ratio": arch.expected,
        }
        return SearchOutcome(config=config, score=arch.score(final), history=history)


class _ArchStep:
    """The supernet's mixed operation, and the architecture step run after every weight step."""

    def __init__(
        self,
        cfg: DassConfig,
        space: SparseMLPSpace,
        net: nn.Module,
        alphas: dict[str, Tensor],
        counts: dict[str, list[int]],
        gen: torch.Generator,
        val: Data,
    ) -> None:
        self.cfg, self.space, self.net, self.alphas, self.counts, self.val = (
            cfg,
            space,
            net,
            alphas,
            counts,
            val,
        )
        self.fqns = list(space.shapes)
        self.params = dict(net.named_parameters())
        self.n = {f: torch.tensor(counts[f], dtype=torch.float32) for f in self.fqns}
        self.opt = torch.optim.Adam(
            list(alphas.values()), lr=cfg.arch_lr, betas=(0.5, 0.999), weight_decay=cfg.arch_weight_decay
        )
        self.val_batches = epoch_batches(len(val[0]), cfg.batch_size, gen)
        self.steps, self.expected = 0, []
        self.rerank()

    def rerank(self) -> None:
        """The pruning step: re-rank the candidates' magnitude masks from the current weights."""
        self.stacks = {f: magnitude_masks(self.params[f], self.counts[f]) for f in self.fqns}

    def forward(self, x: Tensor, probs: dict[str, Tensor], *, weights_fixed: bool = False) -> Tensor:
        w = {f: self.params[f].detach() if weights_fixed else self.params[f] for f in self.fqns}
        # (K,) . (K, out, in) -> (out, in): the mixed operation's effective mask
        masked = {f: w[f] * torch.tensordot(probs[f], self.stacks[f], dims=1) for f in self.fqns}
        return functional_call(self.net, masked, (x,))

    def weight_loss(self, data: Data):
        """The weight step's loss on a training batch, the architecture held fixed."""
        x, y = data

        def loss_fn(net: nn.Module, index: Tensor) -> Loss:
            probs = {f: self.alphas[f].detach().softmax(0) for f in self.fqns}
            return Loss(F.cross_entropy(self.forward(x[index], probs), y[index]))

        return loss_fn

    def __call__(self, step: Step) -> None:
        if step.index >= self.cfg.warmup_steps:  # after warmup: one alpha step on a validation batch
            index = next(self.val_batches)
            x, y = self.val[0][index], self.val[1][index]
            probs = {f: self.alphas[f].softmax(0) for f in self.fqns}
            nonzeros = sum((probs[f] * self.n[f]).sum() for f in self.fqns)
            loss = F.cross_entropy(self.forward(x, probs, weights_fixed=True), y)
            loss = loss + self.cfg.budget_penalty * (nonzeros / self.space.budget - 1.0) ** 2
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()
            self.steps += 1
            self.expected.append(float(nonzeros.detach()) / self.space.budget)
        if (step.index + 1) % self.cfg.mask_interval == 0:
            self.rerank()  # before the next weight step, as DASS alternates pruning and training

    @torch.no_grad()
    def score(self, final: list[int]) -> float:
        """Validation accuracy of the trained supernet with hard magnitude masks at the discretized counts."""
        params = self.params
        hard = {
            f: params[f] * soft_mask(params[f], [c], torch.ones(1))
            for f, c in zip(self.fqns, final, strict=True)
        }
        self.net.eval()
        logits = torch.cat([functional_call(self.net, hard, (xb,)) for xb in self.val[0].split(1000)])
        return float((logits.argmax(-1) == self.val[1]).float().mean())
