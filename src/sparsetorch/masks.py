"""Masks as `torch.nn.utils.parametrize` parametrizations: attach, read, squash, save, load.

A masked weight stays a plain `nn.Module` parameter: `module.weight` is computed as
`where(mask, original, 0)`, so the original's gradient is zero where the mask is off and masked
weights stay zero whatever the optimizer does (weight decay included). The mask is a bool buffer
of the parametrization, so it saves and loads with `state_dict()`.

Parameters are named by their FQN as `named_parameters()` gives them *before* masking
(`"0.weight"`, `"encoder.layer.3.intermediate.dense.weight"`), whether or not a mask is attached.

Checkpoints (`save`, `load`) live in `sparsetorch.checkpoint`, which builds on this module; their
names are kept here too.
"""

from __future__ import annotations

import fnmatch
import importlib
import sys
import types
import warnings
from collections.abc import Iterable, Iterator

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize

from sparsetorch._io import read_checkpoint as read_checkpoint  # re-exported: kernels.compile reads it here
from sparsetorch.patterns import Pattern, Unstructured, parse_pattern
from sparsetorch.patterns import check_mask as check_mask  # re-exported: its old home

MASK_PREFIX = "__mask__/"

PRUNABLE = (nn.Linear, nn.modules.conv._ConvNd)
# Final classifiers / heads never pruned by default (matched against module FQNs).
HEAD_GLOBS = ("lm_head", "*.lm_head", "classifier", "*.classifier", "*classifier.*", "*pooler*", "score")


class Mask(nn.Module):
    """Parametrization `w -> where(mask, w, 0)` with the mask as a bool buffer.

    Args:
        mask: bool tensor of the weight's shape (True = kept).
        pattern: the pattern the mask was made under, kept for reports and checkpoints.
    """

    def __init__(self, mask: Tensor, pattern: Pattern | str = "unstructured") -> None:
        super().__init__()
        self.register_buffer("mask", mask.detach().to(torch.bool).clone())
        self.pattern = parse_pattern(pattern)

    def forward(self, weight: Tensor) -> Tensor:
        return torch.where(self.mask, weight, weight.new_zeros(()))

    def extra_repr(self) -> str:
        return f"pattern={self.pattern}, sparsity={1 - self.mask.float().mean().item():.4f}"


# --- naming -----------------------------------------------------------------------------------


def named_weights(model: nn.Module) -> Iterator[tuple[str, nn.Module, str]]:
    """(fqn, owning module, tensor name) for every parameter, masked or not, under its plain FQN."""
    for mod_fqn, module in model.named_modules():
        if isinstance(module, parametrize.ParametrizationList) or ".parametrizations." in f".{mod_fqn}.":
            continue
        names = list(module._parameters)
        if parametrize.is_parametrized(module):
            names += list(module.parametrizations.keys())
        for name in names:
            if module._parameters.get(name, True) is None:
                continue
            yield (f"{mod_fqn}.{name}" if mod_fqn else name), module, name


def mask_of(module: nn.Module, name: str) -> Mask | None:
    """The `Mask` parametrization on `module.<name>`, if any (a subclass counts)."""
    if not parametrize.is_parametrized(module, name):
        return None
    return next((p for p in module.parametrizations[name] if isinstance(p, Mask)), None)


def head_fqns(model: nn.Module) -> set[str]:
    """Module FQNs of the final classifier / LM head, excluded from default targets.

    A model may declare them: `classifier_fqn` (a module FQN, or None for a headless model) plus
    `extra_exclude` (more module FQNs, e.g. a BERT pooler). Otherwise modules named like a head
    (`lm_head`, `classifier`, `pooler`, `score`) count, and if none does, the last prunable module.
    """
    if hasattr(model, "classifier_fqn") or hasattr(model, "extra_exclude"):
        declared = getattr(model, "classifier_fqn", None)
        return {declared} - {None} | set(getattr(model, "extra_exclude", ()))
    modules = [(n, m) for n, m in model.named_modules() if isinstance(m, PRUNABLE)]
    named = {n for n, _ in modules if any(fnmatch.fnmatchcase(n, g) for g in HEAD_GLOBS)}
    if named or not modules:
        return named
    return {modules[-1][0]}


def _as_globs(globs: str | Iterable[str] | None) -> list[str]:
    if globs is None:
        return []
    return [globs] if isinstance(globs, str) else list(globs)


def _matches(fqn: str, globs: list[str], *, module_selects: str | None = None) -> bool:
    """`fqn` matches a glob, or its module does (and the tensor is named `module_selects`, if set)."""
    module_fqn, _, name = fqn.rpartition(".")
    by_module = module_selects is None or name == module_selects
    return any(
        fnmatch.fnmatchcase(fqn, g) or (by_module and fnmatch.fnmatchcase(module_fqn, g)) for g in globs
    )


def resolve_targets(
    model: nn.Module,
    targets: str | Iterable[str] | None = None,
    ignore: str | Iterable[str] | None = None,
    *,
    layers_only: bool = False,
) -> list[str]:
    """Parameter FQNs selected by `targets` globs minus `ignore` globs.

    A glob matches a parameter FQN (`"*.weight"`) or a module FQN (`"encoder.*.dense"`), which
    selects that module's weight (and, in `ignore`, all of its parameters).
    By default: the weights of Linear and Conv modules, never embeddings, norms, biases or the
    final classifier / LM head.

    With `layers_only`, explicit globs select only Linear/Conv weights (so `"encoder.layer.0.*"`
    means that block's layers, not its biases and norms).

    Raises:
        ValueError: explicit targets that match nothing.
    """
    wanted, skipped = _as_globs(targets), _as_globs(ignore)
    if wanted:
        found = [
            fqn
            for fqn, module, name in named_weights(model)
            if _matches(fqn, wanted, module_selects="weight")
            and (not layers_only or (name == "weight" and isinstance(module, PRUNABLE)))
        ]
        if not found:
            raise ValueError(f"targets {wanted} match no parameter of {type(model).__name__}")
    else:
        heads = head_fqns(model)
        found = [
            fqn
            for fqn, module, name in named_weights(model)
            if name == "weight" and isinstance(module, PRUNABLE) and fqn.rpartition(".")[0] not in heads
        ]
    return [fqn for fqn in found if not _matches(fqn, skipped)]


def weights_by_fqn(model: nn.Module) -> dict[str, tuple[nn.Module, str]]:
    """`{parameter FQN: (owning module, tensor name)}`, as `named_weights` lists them."""
    return {fqn: (module, name) for fqn, module, name in named_weights(model)}


# --- attach / read / squash -------------------------------------------------------------------


def attach(
    model: nn.Module,
    masks: dict[str, Tensor],
    *,
    patterns: dict[str, Pattern | str] | None = None,
) -> nn.Module:
    """Attach (or update) bool masks on the parameters named by `masks`' FQN keys.

    Every mask is checked before any is attached, so on error the model is unchanged. The
    original weight is zeroed where the mask is off, so that the stored tensor equals the
    effective one and later growth starts from zero.

    Raises:
        KeyError: an FQN that names no parameter.
        ValueError: a mask of the wrong shape or with non-boolean values.
    """
    lookup = weights_by_fqn(model)
    patterns = {k: parse_pattern(v) for k, v in (patterns or {}).items()}
    prepared: list[tuple[nn.Module, str, Tensor, Pattern]] = []
    for fqn, mask in masks.items():
        if fqn not in lookup:
            raise KeyError(f"no parameter {fqn!r} in {type(model).__name__}")
        module, name = lookup[fqn]
        weight = stored(module, name)  # its shape and device, without running a parametrization
        if tuple(mask.shape) != tuple(weight.shape):
            raise ValueError(
                f"mask for {fqn!r} has shape {tuple(mask.shape)}, weight has {tuple(weight.shape)}"
            )
        if mask.dtype != torch.bool:
            if not ((mask == 0) | (mask == 1)).all():
                raise ValueError(f"mask for {fqn!r} must be boolean (or 0/1), got other values")
            mask = mask.to(torch.bool)
        existing = mask_of(module, name)
        pattern = patterns.get(fqn, existing.pattern if existing else Unstructured())
        prepared.append((module, name, mask.to(weight.device), pattern))

    for module, name, mask, pattern in prepared:
        existing = mask_of(module, name)
        if existing is None:
            parametrize.register_parametrization(module, name, Mask(mask, pattern), unsafe=True)
        else:
            existing.mask.copy_(mask)
            existing.pattern = pattern
        with torch.no_grad():
            original = module.parametrizations[name].original
            original.masked_fill_(~mask, 0.0)
    return model


def get_masks(model: nn.Module) -> dict[str, Tensor]:
    """The attached masks, `{parameter FQN: bool mask}` (the buffers themselves, not copies)."""
    out = {}
    for fqn, module, name in named_weights(model):
        mask = mask_of(module, name)
        if mask is not None:
            out[fqn] = mask.mask
    return out


def patterns_of(model: nn.Module) -> dict[str, Pattern]:
    """The pattern recorded with each attached mask, `{parameter FQN: pattern}`."""
    out = {}
    for fqn, module, name in named_weights(model):
        mask = mask_of(module, name)
        if mask is not None:
            out[fqn] = mask.pattern
    return out


def stored(module: nn.Module, name: str) -> Tensor:
    """The stored tensor of `module.<name>`: `parametrizations.<name>.original` if masked, else the
    parameter itself (what an optimizer steps)."""
    if parametrize.is_parametrized(module, name):
        return module.parametrizations[name].original
    return getattr(module, name)


def squash(model: nn.Module) -> nn.Module:
    """Bake masks into the weights and remove the parametrizations: a plain dense model again."""
    for _, module, name in list(named_weights(model)):
        if mask_of(module, name) is not None:
            parametrize.remove_parametrizations(module, name, leave_parametrized=True)
    return model


# --- checkpoints live in `sparsetorch.checkpoint`; their names stay here --------------------------

_CHECKPOINT_NAMES = ("save", "load", "plain_state", "replace_state", "copy_plain_state")


def __getattr__(name: str) -> object:
    """`masks.save`, `masks.load`, ...: looked up at run time in `sparsetorch.checkpoint`, which
    imports this module (so this one cannot import it at its top)."""
    if name in _CHECKPOINT_NAMES:
        return getattr(importlib.import_module("sparsetorch.checkpoint"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# --- deprecated names (one release) -----------------------------------------------------------


def masks(model: nn.Module) -> dict[str, Tensor]:
    """Deprecated alias of `get_masks` (the name `sparsetorch.masks` is this module)."""
    warnings.warn(
        "sparsetorch.masks.masks(model) is deprecated: use sparsetorch.get_masks(model)",
        DeprecationWarning,
        stacklevel=2,
    )
    return get_masks(model)


class _CallableModule(types.ModuleType):
    """This module, callable for one release: `sparsetorch.masks(model)` was a function."""

    def __call__(self, model: nn.Module) -> dict[str, Tensor]:
        warnings.warn(
            "sparsetorch.masks(model) is deprecated: use sparsetorch.get_masks(model) "
            "(sparsetorch.masks is the module)",
            DeprecationWarning,
            stacklevel=2,
        )
        return get_masks(model)


sys.modules[__name__].__class__ = _CallableModule
