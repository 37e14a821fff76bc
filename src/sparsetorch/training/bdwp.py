"""BDWP: bidirectional N:M weight pruning, N:M weights in both the forward and the backward pass.

Paper key `bdwp`: Fang, Sun, Zhou and Wang 2023, "Efficient N:M Sparse DNN Training Using
Algorithm, Architecture, and Dataflow Co-Design" (arXiv 2309.13015; no public code found).

A layer's training step has three products: the forward pass `Y = X W^T`, the backward pass
`dX = dY W` and the weight update `dW = dY^T X`. SR-STE makes only the first one sparse. BDWP
prunes the weights N:M in both passes that read them, each along its own reduction dimension:

    W_F = N:M of |W| along the input dim  (groups of m inputs, per output)   forward:  Y  = X W_F^T
    W_B = N:M of |W| along the output dim (groups of m outputs, per input)   backward: dX = dY W_B
    dW  = dY^T X   (dense)                                                    update as SR-STE:
    W  <- W - lr * (dW + lambda_w * (~mask_F) * W)

Both masks come from the dense weights and are recomputed after every optimizer step. `W_F`'s mask
is the method's mask (`masks`, the sparsity it reaches, what `finish` bakes in); `W_B`'s is a
second buffer of the parametrization (`backward_mask`). For a Conv weight `(out, in, *k)` the
groups run along `in` (forward) and `out` (backward) at every kernel position.

Defaults: `pattern="2:8"` (sparsity 0.75, the paper's headline setting), `decay=2e-4`, "uniform".

Assumptions and deviations (the full paper text and code were not available to us, only the
abstract): the weight update follows SR-STE's sparse-refined rule with SR-STE's `lambda_w`
(the paper builds on SR-STE and shares an author; set `decay=0` for the plain straight-through
update); both masks are magnitude N:M of the dense weights, recomputed every step. The backward
pass is simulated: the module computes `dY W_F` as usual and a hook adds `dY (W_B - W_F)`, which
costs one extra input-gradient product and a copy of the layer output, and changes the result only
by rounding. The accelerator (SAT) and its dataflow are out of scope: there is no speedup here,
only the training semantics.
Supported layers: Linear and Conv1d/2d/3d, whose output dimension must be divisible by m.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils import parametrize

from sparsetorch.masks import Mask, mask_of, stored
from sparsetorch.patterns import NM, Pattern, check
from sparsetorch.training.base import TRAINERS
from sparsetorch.training.nm import NMConfig, NMFromScratch, StraightThroughMask, nm_mask
from sparsetorch.training.ops import MaskUpdate


@dataclass(frozen=True)
class BDWPConfig(NMConfig):
    """BDWP's defaults: 2:8, SR-STE's refinement."""

    pattern: str = "2:8"


class BidirectionalMask(StraightThroughMask):
    """The forward mask (`mask`) plus the mask of the weights the backward pass reads."""

    def __init__(self, mask: Tensor, pattern: Pattern, backward_mask: Tensor) -> None:
        super().__init__(mask, pattern)
        self.register_buffer("backward_mask", backward_mask.detach().to(torch.bool).clone())


def backward_nm_mask(weight: Tensor, pattern: NM) -> Tensor:
    """N:M of |w| along the output dimension: `(out, in, *k) -> (in, out, *k)`, select, back."""
    return nm_mask(weight.transpose(0, 1), pattern).transpose(0, 1)


class _InputGradient(torch.autograd.Function):
    """Identity on the layer output; in the backward pass adds `dY (W_B - W_F)` to dX."""

    @staticmethod
    def forward(ctx: Any, output: Tensor, inputs: Tensor, delta: Tensor, op: Callable) -> Tensor:
        ctx.save_for_backward(inputs, delta)
        ctx.op = op
        return output.clone()  # a copy, not a view: a following in-place op (ReLU) stays legal

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, Tensor | None, None, None]:
        inputs, delta = ctx.saved_tensors
        correction = None
        if ctx.needs_input_grad[1]:
            with torch.enable_grad():
                x = inputs.detach().requires_grad_()
                (correction,) = torch.autograd.grad(ctx.op(x, delta), x, grad)
        return grad, correction, None, None


def _operator(module: nn.Module) -> Callable[[Tensor, Tensor], Tensor]:
    """The layer's product with a given weight, without bias: `x -> x W^T` or the convolution."""
    if isinstance(module, nn.Linear):
        return F.linear
    if isinstance(module, nn.Conv1d | nn.Conv2d | nn.Conv3d):
        return lambda x, w: module._conv_forward(x, w, None)
    raise TypeError(f"BDWP supports Linear and Conv1d/2d/3d layers, not {type(module).__name__}")


@TRAINERS.register("bdwp")
class BDWP(NMFromScratch):
    """N:M weights in the forward pass (along inputs) and in the backward pass (along outputs)."""

    name = "bdwp"
    paper = "bdwp"
    Config = BDWPConfig

    def check(self, shapes: dict[str, torch.Size]) -> None:
        super().check(shapes)
        for f, (module, name) in self.owners.items():
            if name != "weight" or not isinstance(module, nn.Linear | nn.Conv1d | nn.Conv2d | nn.Conv3d):
                raise ValueError(
                    f"{self.name}: target {f} is incompatible: BDWP prunes the weights of Linear and "
                    f"Conv1d/2d/3d layers, not {type(module).__name__}.{name}"
                )
            # The backward pass groups m consecutive outputs: the transposed weight must tile.
            check((shapes[f][1], shapes[f][0], *shapes[f][2:]), self.pattern, name=f"{f} (transposed)")

    def parametrization(self, fqn: str, mask: Tensor) -> Mask:
        module, name = self.owners[fqn]
        return BidirectionalMask(mask, self.pattern, backward_nm_mask(stored(module, name), self.pattern))

    def update_masks(
        self, step: int, weights: dict[str, Tensor], masks: dict[str, Tensor], grads: dict[str, Tensor]
    ) -> MaskUpdate:
        """The forward N:M masks (`NMFromScratch`); the backward masks are recomputed here too, from
        the same dense weights (they depend on nothing else)."""
        for module, name in self.owners.values():
            mask_of(module, name).backward_mask.copy_(backward_nm_mask(stored(module, name), self.pattern))
        return super().update_masks(step, weights, masks, grads)

    def prepare(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        targets: str | Iterable[str] | None = None,
        ignore: str | Iterable[str] | None = None,
        *,
        total_steps: int | None = None,
    ) -> nn.Module:
        """`NMFromScratch.prepare`, plus the forward hooks that make the backward pass read `W_B`."""
        model = super().prepare(model, optimizer, targets, ignore, total_steps=total_steps)
        for module, name in self.owners.values():
            self.remove_at_finish(module.register_forward_hook(self._backward_hook(module, name)))
        return model

    def _backward_hook(self, module: nn.Module, name: str):
        op = _operator(module)

        def on_forward(layer: nn.Module, inputs: tuple[Tensor, ...], output: Tensor) -> Tensor:
            x = inputs[0]
            if not (torch.is_grad_enabled() and isinstance(x, Tensor) and x.requires_grad):
                return output  # no input gradient is computed: nothing to change
            if not parametrize.is_parametrized(layer, name):
                return output
            mask = mask_of(layer, name)
            with torch.no_grad():
                original = layer.parametrizations[name].original
                zero = original.new_zeros(())
                delta = torch.where(mask.backward_mask, original, zero) - torch.where(
                    mask.mask, original, zero
                )
            return _InputGradient.apply(output, x, delta, op)

        return on_forward
