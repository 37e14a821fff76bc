"""The sparse-training method base: masks learned while training, with `torch.ao.pruning`'s verbs.

Every training method is used the same way::

    m = TRAINERS.get("rigl")(sparsity=0.9)          # or sparsetorch.create_method("rigl", ...)
    m.prepare(model, optimizer, total_steps=steps)  # attaches masks to the targets
    for x, y in batches:
        loss_fn(model(x), y).backward()
        optimizer.step()
        m.step()                                    # after optimizer.step()
        optimizer.zero_grad()
    m.finish()                                      # plain weights again

Conventions every method inherits:

- **Masks** go through `sparsetorch.masks.attach`: the effective weight is `where(mask, original,
  0)`, so masked weights are zero whatever the optimizer does, and masks save and load with the
  model's `state_dict()`. Pruned positions of `original` and of its optimizer state are zeroed at
  every mask update, so `original` itself stays exactly zero where the mask is off.
- **Steps** count optimizer steps, seen through an optimizer step hook: with gradient accumulation
  call `m.step()` after the `optimizer.step()` that ends the accumulation (calling it after every
  micro-batch is harmless: calls with no optimizer step in between count nothing). A skipped
  optimizer step (AMP overflow) is not counted.
- **Growth gradient**: methods that grow (`grows = True`) read dL/dW of the *effective* (masked)
  weight, which is dense, not the gradient of `original`, which is zero where the mask is off. A
  forward hook on each `Mask` parametrization registers a tensor hook on its output (the effective
  weight) during the backward passes that precede an update step; the gradients of all
  micro-batches (and of every use of the weight in a forward pass) are summed, as `.grad` would be.
- **Grown weights** start at `grown_values` (0 by default, RigL and SET) and their optimizer state
  is zeroed (SGD momentum; Adam/AdamW `exp_avg`, `exp_avg_sq`, `max_exp_avg_sq`).
- **Exact sparsity**: after every mask update the achieved zeros of each layer and in total are
  compared with the method's targets; a mismatch raises `RuntimeError`.
- **DDP** (`torch.distributed` initialized, world size > 1): at an update the growth gradients are
  averaged over ranks (all-reduce), every rank computes the new masks, and rank 0's masks are
  broadcast as the authoritative copy, so masks are identical on all ranks even if seeds or
  floating-point rounding differ. Call `prepare` on the unwrapped model before wrapping it in DDP.

A subclass implements at most these hooks: `check`, `initial_masks`, `is_update_step`,
`update_masks`, `grown_values`, `parametrization`; it sets class flags (`grows`, `trains_pruned`)
instead of overriding the base's internals, and reads its state through `owners`,
`effective_weights()`, `finished` and `remove_at_finish(handle)`.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Iterable
from typing import Any, ClassVar

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize

from sparsetorch.masks import Mask, attach, mask_of, resolve_targets, stored, weights_by_fqn
from sparsetorch.methods import Method, MethodConfig, method_registry
from sparsetorch.patterns import Pattern, Unstructured, check, n_pruned, parse_pattern
from sparsetorch.training.config import ScheduledConfig, TrainingConfig
from sparsetorch.training.distributed import all_reduce_mean, broadcast_masks
from sparsetorch.training.ops import MaskUpdate, reset_optimizer_state
from sparsetorch.training.schedules import resolve_step

TRAINERS = method_registry("training")


class SparseTrainingMethod(Method):
    """Base of the methods that learn masks while training (see the module docstring).

    Class attributes:
        patterns: pattern types the method supports.
        distributions: the `distribution` values it accepts.
        grows: it reads the gradient of the effective weight at update steps.
        trains_pruned: pruned weights keep their stored values and optimizer state and go on
            training through a straight-through mask (`parametrization`); a mask update swaps the
            mask buffers in place (SR-STE, BDWP). Otherwise pruned weights and their optimizer
            state are zeroed at every update and grown ones start at `grown_values`.
    """

    Config: ClassVar[type[MethodConfig]] = TrainingConfig
    patterns: ClassVar[tuple[type, ...]] = (Unstructured,)
    distributions: ClassVar[tuple[str, ...]] = ("uniform", "erk")
    grows: ClassVar[bool] = False
    trains_pruned: ClassVar[bool] = False

    def __init__(self, config: MethodConfig | None = None, **overrides: Any) -> None:
        super().__init__(config, **overrides)
        if self.config.distribution not in self.distributions:
            raise ValueError(
                f"{self.name}: distribution {self.config.distribution!r} is not supported; "
                f"choose one of {list(self.distributions)}"
            )
        self.pattern: Pattern = parse_pattern(self.config.pattern)
        self.model: nn.Module | None = None
        self.optimizer: torch.optim.Optimizer | None = None
        self.targets: list[str] = []
        self.total_steps: int | None = None
        self.start: int = 0
        self.end: int | None = None
        self.step_count = 0
        self.generator = torch.Generator().manual_seed(self.config.seed)
        self.stats = {"updates": 0, "update_seconds": 0.0}
        # {target fqn: (owning module, tensor name)}, set by `prepare`.
        self.owners: dict[str, tuple[nn.Module, str]] = {}
        self._grads: dict[str, Tensor] = {}
        self._capturing = False
        self._handles: list[Any] = []
        self._optimizer_steps = 0
        self._seen_steps = 0
        self._finished = False

    # --- hooks ------------------------------------------------------------------------------

    def check(self, shapes: dict[str, torch.Size]) -> None:
        """Extra validation once targets and the schedule are known (raise `ValueError`)."""

    def initial_masks(self, weights: dict[str, Tensor]) -> MaskUpdate:
        """The masks attached by `prepare`, from the (effective) weights."""
        raise NotImplementedError

    def is_update_step(self, step: int) -> bool:
        """Whether masks are updated after optimizer step `step` (1, 2, ...)."""
        return False

    def update_masks(
        self, step: int, weights: dict[str, Tensor], masks: dict[str, Tensor], grads: dict[str, Tensor]
    ) -> MaskUpdate:
        """New masks at update step `step` from the effective weights, the current masks and (for
        methods that grow) the summed dL/dW of the effective weights since the last optimizer step."""
        raise NotImplementedError

    def grown_values(self, fqn: str, weight: Tensor, grown: Tensor) -> Tensor:
        """Values of newly grown weights (read where `grown`); zero, the RigL/SET rule."""
        return torch.zeros_like(weight)

    def parametrization(self, fqn: str, mask: Tensor) -> Mask:
        """The mask parametrization put on target `fqn` when `trains_pruned` (a straight-through one)."""
        return Mask(mask, self.pattern)

    # --- lifecycle --------------------------------------------------------------------------

    def prepare(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        targets: str | Iterable[str] | None = None,
        ignore: str | Iterable[str] | None = None,
        *,
        total_steps: int | None = None,
    ) -> nn.Module:
        """Attach the initial masks to the targets of `model` and start counting optimizer steps.

        Args:
            model: the model (unwrapped from DDP if wrapped; prepare before wrapping).
            optimizer: the optimizer of the model; its parameter groups must hold every target.
            targets, ignore: FQN globs (see `sparsetorch.masks.resolve_targets`); by default the
                Linear/Conv weights except the final classifier.
            total_steps: optimizer steps of the whole training, needed by schedules given as
                fractions of training and checked against those given as steps.

        Raises:
            RuntimeError: already prepared.
            ValueError: no targets, an optimizer that does not cover them, an incompatible pattern,
                or a schedule that ends after training.
        """
        if self.model is not None:
            raise RuntimeError(f"{self.name}: prepare() was already called; create a new method instance")
        if isinstance(model, nn.parallel.DistributedDataParallel):
            model = model.module
        fqns = resolve_targets(model, targets, ignore)
        if not fqns:
            raise ValueError(f"{self.name}: no target weights in {type(model).__name__}")
        lookup = weights_by_fqn(model)
        modules = {f: lookup[f] for f in fqns}
        params = {f: stored(*modules[f]) for f in fqns}
        covered = {id(p) for group in optimizer.param_groups for p in group["params"]}
        missing = [f for f in fqns if id(params[f]) not in covered]
        if missing:
            raise ValueError(
                f"{self.name}: the optimizer's parameter groups do not hold the target weights {missing[:5]}"
                f"{' ...' if len(missing) > 5 else ''}; build it from model.parameters() (the same "
                "parameter objects remain after prepare) or pass targets=/ignore= to match it"
            )
        if not isinstance(self.pattern, self.patterns):
            allowed = ", ".join(t.__name__ for t in self.patterns)
            raise ValueError(
                f"{self.name}: pattern {str(self.pattern)!r} is incompatible with this method "
                f"(supported: {allowed}); for N:M from scratch use 'sr-ste'"
            )
        shapes = {f: params[f].shape for f in fqns}
        for f in fqns:
            check(shapes[f], self.pattern, name=f)
        if total_steps is not None and (
            isinstance(total_steps, bool) or not isinstance(total_steps, int) or total_steps < 1
        ):
            raise ValueError(f"{self.name}: total_steps must be a positive integer, got {total_steps!r}")
        config = self.config
        if isinstance(config, ScheduledConfig):
            self.start = resolve_step(config.start, total_steps, name=self.name, label="start") or 0
            self.end = resolve_step(config.end, total_steps, name=self.name, label="end")
            if self.end is not None and self.end <= self.start:
                raise ValueError(
                    f"{self.name}: the schedule ends (step {self.end}) before it starts ({self.start})"
                )
        self.total_steps = total_steps
        self.targets, self.owners = fqns, modules
        self.check(shapes)

        self.model, self.optimizer = model, optimizer
        self._set_masks(self.initial_masks(self.effective_weights()), step=0)
        if self.grows:
            for f in fqns:
                module, name = modules[f]
                self.remove_at_finish(mask_of(module, name).register_forward_hook(self._capture_hook(f)))
        self.remove_at_finish(optimizer.register_step_post_hook(self._count_optimizer_step))
        self._capturing = self.grows and self.is_update_step(1)
        return model

    def step(self) -> bool:
        """Count the optimizer step just taken and update the masks if it is an update step.

        Returns:
            True if the masks were updated.

        Raises:
            RuntimeError: called before `prepare` or after `finish`, more than one optimizer step
                since the last call, a missing growth gradient, or a sparsity that misses its target.
        """
        if self.model is None:
            raise RuntimeError(f"{self.name}: step() called before prepare(model, optimizer)")
        if self._finished:
            raise RuntimeError(f"{self.name}: step() called after finish(); the masks are gone")
        taken = self._optimizer_steps - self._seen_steps
        if taken == 0:
            return False  # no optimizer step since the last call (a micro-batch, or a skipped step)
        if taken > 1:
            raise RuntimeError(
                f"{self.name}: {taken} optimizer steps since the last step() call; call step() once "
                "after every optimizer.step() so that no mask update is missed"
            )
        self._seen_steps = self._optimizer_steps
        self.step_count += 1
        updated = False
        if self.is_update_step(self.step_count):
            grads = self._grads
            if self.grows:
                lost = [f for f in self.targets if f not in grads]
                if lost:
                    raise RuntimeError(
                        f"{self.name}: no gradient of the effective weights {lost[:3]} was seen before "
                        f"update step {self.step_count}; run loss.backward() through the model before "
                        "optimizer.step()"
                    )
                all_reduce_mean(grads, self.targets)
            began = time.perf_counter()
            with torch.no_grad():
                current = {f: m.clone() for f, m in self.masks.items()}
                update = self.update_masks(self.step_count, self.effective_weights(), current, grads)
            self._set_masks(update, step=self.step_count)
            self.stats["updates"] += 1
            self.stats["update_seconds"] += time.perf_counter() - began
            updated = True
        self._grads = {}
        self._capturing = self.grows and self.is_update_step(self.step_count + 1)
        return updated

    def finish(self) -> nn.Module:
        """End training: bake the masks into the targets' weights (`masks.squash` on the targets),
        remove the parametrizations and the hooks; returns the model."""
        if self.model is None:
            raise RuntimeError(f"{self.name}: finish() called before prepare(model, optimizer)")
        self._remove_hooks()
        for module, name in self.owners.values():
            if mask_of(module, name) is not None:
                parametrize.remove_parametrizations(module, name, leave_parametrized=True)
        self._finished = True
        return self.model

    def squash(self) -> nn.Module:
        """Deprecated alias of `finish` (`squash` means `masks.squash`)."""
        warnings.warn(
            f"{type(self).__name__}.squash() is deprecated: call finish()", DeprecationWarning, stacklevel=2
        )
        return self.finish()

    @property
    def finished(self) -> bool:
        """Whether `finish` was called (the masks are baked in and gone)."""
        return self._finished

    def remove_at_finish(self, handle: Any) -> None:
        """Keep a hook handle (module, tensor or optimizer hook) to remove at `finish`."""
        self._handles.append(handle)

    def effective_weights(self) -> dict[str, Tensor]:
        """`{fqn: the effective (masked) weight}` of the targets, detached."""
        with torch.no_grad():
            return {f: getattr(module, name).detach() for f, (module, name) in self.owners.items()}

    # --- state ------------------------------------------------------------------------------

    @property
    def masks(self) -> dict[str, Tensor]:
        """`{fqn: bool mask}` of the targets (the live buffers); empty after `finish`."""
        if self._finished:
            return {}
        return {f: mask_of(module, name).mask for f, (module, name) in self.owners.items()}

    @property
    def sparsity(self) -> float:
        """Achieved fraction of zeros over the targets."""
        masks = self.masks
        total = sum(m.numel() for m in masks.values())
        return 1.0 - sum(int(m.sum()) for m in masks.values()) / total if total else 0.0

    def lr_position(self, step: int) -> tuple[int, int]:
        """Where optimizer step `step` (0-based) sits on the run's learning-rate schedule, as
        `(position, length)`: the whole run by default. `fit` anneals by it; IMP restarts the schedule
        at every phase, as open_lth."""
        if self.total_steps is None:
            raise ValueError(f"{self.name}: lr_position needs prepare(..., total_steps=N)")
        return step, self.total_steps

    def state_dict(self) -> dict[str, Any]:
        """The method's own state (the masks live in the model's state_dict)."""
        return {
            "name": self.name,
            "step": self.step_count,
            "total_steps": self.total_steps,
            "generator": self.generator.get_state(),
            "stats": dict(self.stats),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Resume from `state_dict()`, after `prepare` on a model whose masks were loaded."""
        if self.model is None:
            raise RuntimeError(f"{self.name}: load_state_dict() needs prepare(model, optimizer) first")
        if state.get("name") != self.name:
            raise ValueError(f"{self.name}: state is of method {state.get('name')!r}")
        self.step_count = int(state["step"])
        self.generator.set_state(state["generator"])
        self.stats = dict(state["stats"])
        self._seen_steps = self._optimizer_steps
        self._capturing = self.grows and self.is_update_step(self.step_count + 1)

    # --- internals --------------------------------------------------------------------------

    def _set_masks(self, update: MaskUpdate, *, step: int) -> None:
        """Put `update.masks` on the targets (identical on every rank), then check the sparsity."""
        new = {f: update.masks[f].to(torch.bool) for f in self.targets}
        broadcast_masks(new, self.targets)
        if self.trains_pruned:
            self._swap_masks(new)
        else:
            self._attach_masks(new)
        self._check_sparsity(update, step)

    def _attach_masks(self, new: dict[str, Tensor]) -> None:
        """Attach the masks, initialise grown weights, reset the optimizer state of grown and pruned ones."""
        old = {}
        for f, (module, name) in self.owners.items():
            existing = mask_of(module, name)
            old[f] = existing.mask.clone() if existing is not None else torch.ones_like(new[f])
        attach(self.model, new, patterns=dict.fromkeys(self.targets, self.pattern))
        with torch.no_grad():
            for f, (module, name) in self.owners.items():
                grown = new[f] & ~old[f]
                original = stored(module, name)
                if grown.any():
                    values = self.grown_values(f, original.detach(), grown)
                    original.copy_(torch.where(grown, values.to(original.dtype), original))
                reset_optimizer_state(self.optimizer, original, grown | ~new[f])

    def _swap_masks(self, new: dict[str, Tensor]) -> None:
        """`trains_pruned`: swap the mask buffers in place; stored weights and optimizer state stay."""
        for f, (module, name) in self.owners.items():
            existing = mask_of(module, name)
            if existing is None:
                mask = new[f].to(getattr(module, name).device)
                parametrize.register_parametrization(module, name, self.parametrization(f, mask), unsafe=True)
            else:
                existing.mask.copy_(new[f])

    def _check_sparsity(self, update: MaskUpdate, step: int) -> None:
        masks = self.masks
        where = f"{self.name}: after the mask update at step {step}"
        for f, mask in masks.items():
            zeros = mask.numel() - int(mask.sum())
            if zeros != update.pruned[f]:
                raise RuntimeError(f"{where}, {f} has {zeros} zeros, its target is {update.pruned[f]}")
        total = sum(m.numel() for m in masks.values())
        zeros = sum(m.numel() - int(m.sum()) for m in masks.values())
        if zeros != n_pruned(total, update.sparsity):
            raise RuntimeError(
                f"{where}, the targets hold {zeros} zeros, sparsity {update.sparsity:g} needs "
                f"{n_pruned(total, update.sparsity)}"
            )

    def _capture_hook(self, fqn: str):
        def on_forward(module: nn.Module, inputs: Any, effective: Tensor) -> None:
            if self._capturing and effective.requires_grad:
                effective.register_hook(lambda grad: self._store(fqn, grad))

        return on_forward

    def _store(self, fqn: str, grad: Tensor) -> None:
        if fqn in self._grads:
            self._grads[fqn] += grad.detach()
        else:
            self._grads[fqn] = grad.detach().clone()

    def _count_optimizer_step(self, optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        self._optimizer_steps += 1

    def _remove_hooks(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []
        self._capturing = False
        self._grads = {}
