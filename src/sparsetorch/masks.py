"""Masks as `torch.nn.utils.parametrize` parametrizations: attach, read, squash, save, load.

A masked weight stays a plain `nn.Module` parameter: `module.weight` is computed as
`where(mask, original, 0)`, so the original's gradient is zero where the mask is off and masked
weights stay zero whatever the optimizer does (weight decay included). The mask is a bool buffer
of the parametrization, so it saves and loads with `state_dict()`.

Parameters are named by their FQN as `named_parameters()` gives them *before* masking
(`"0.weight"`, `"encoder.layer.3.intermediate.dense.weight"`), whether or not a mask is attached.

Checkpoints are safetensors files: plain tensors under their FQNs, masks under `"__mask__/" + fqn`,
and a JSON header (format, version, patterns, model name and config, a checksum of the tensors).
Loading never unpickles, and follows the loader principle of `sparsetorch._checks`.
"""

from __future__ import annotations

import fnmatch
import importlib
import json
import os
import sys
import types
import warnings
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize

from sparsetorch._checks import build_checked, check_state_fits
from sparsetorch._io import DIGEST_KEY, FORMAT, FORMAT_VERSION, atomic_path, tensor_digest
from sparsetorch._io import read_checkpoint as read_checkpoint  # re-exported: kernels.compile reads it here
from sparsetorch.patterns import NM, Block, Channel, Pattern, Unstructured, check, parse_pattern

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
        weight = getattr(module, name)
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


# --- checkpoints ------------------------------------------------------------------------------


def plain_state(model: nn.Module) -> dict[str, Tensor]:
    """state_dict under plain FQNs: parametrized weights as their (masked) original tensor."""
    state = {}
    for key, value in model.state_dict().items():
        if ".parametrizations." in f".{key}":
            owner, _, rest = key.partition("parametrizations.")
            name, _, leaf = rest.partition(".")
            if leaf != "original":
                continue  # mask buffers are written separately
            key = f"{owner}{name}"
        state[key] = value
    return state


def save(model: nn.Module, path: str | os.PathLike, *, metadata: dict[str, str] | None = None) -> Path:
    """Write `model` (weights, buffers and masks) to a safetensors file, atomically, with a checksum."""
    from safetensors.torch import save_file

    path = Path(path)
    tensors = {k: v.detach().contiguous().cpu() for k, v in plain_state(model).items()}
    for fqn, mask in get_masks(model).items():
        tensors[MASK_PREFIX + fqn] = mask.detach().contiguous().cpu()
    spec = getattr(model, "sparsetorch_spec", None) or {}
    header = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "patterns": json.dumps({k: str(v) for k, v in patterns_of(model).items()}),
        "model": str(spec.get("name", "")),
        "model_config": json.dumps(spec.get("config", {})),
        **(metadata or {}),
        DIGEST_KEY: tensor_digest(tensors),
    }
    with atomic_path(path) as tmp:  # an interrupted save never leaves a partial file
        save_file(tensors, tmp, metadata=header)
    return path


def load(
    path: str | os.PathLike,
    model: nn.Module | None = None,
    *,
    build: Callable[..., nn.Module] | None = None,
) -> nn.Module:
    """Load a checkpoint written by `save` into `model`, attaching its masks.

    With `model=None` the model the header names is rebuilt by `build(name, **config)`
    (`sparsetorch.load` passes `create_model`; the core does not import the models layer), checked
    against the file first (`_checks.build_checked`). Everything is checked before the model is
    touched, and the change is a transaction: a bad file leaves the model exactly as it was.

    Raises:
        FileNotFoundError: no such file.
        ValueError: a corrupt file or header, missing/unexpected tensors, shape or dtype mismatches,
            non-bool masks or masks that break their recorded pattern, a config that does not fit.
    """
    where = f"checkpoint {str(path)!r}"
    tensors, metadata = read_checkpoint(path)
    patterns = _header_patterns(metadata, where)
    if model is None:
        model = _rebuild(metadata, tensors, build=build, where=where)
    mask_tensors, plain = _check_fit(model, tensors, patterns, where=where)
    replace_state(model, mask_tensors, plain, {k: patterns.get(k, Unstructured()) for k in mask_tensors})
    return model


def _header_patterns(metadata: dict[str, str], where: str) -> dict[str, Pattern]:
    """The header's `patterns`, a JSON object `{mask FQN: pattern string}`, parsed."""
    try:
        raw = json.loads(metadata.get("patterns") or "{}")
        if not isinstance(raw, dict):
            raise TypeError(f"expected a JSON object, got {type(raw).__name__}")
        return {fqn: parse_pattern(spec) for fqn, spec in raw.items()}
    except (json.JSONDecodeError, TypeError, ValueError) as err:
        raise ValueError(f"{where} has a corrupt 'patterns' header: {err}") from err


def _rebuild(metadata: dict[str, str], tensors: dict[str, Tensor], *, build: Callable | None, where: str):
    """The model the header names, checked against the file's plain tensors (`_checks.build_checked`)."""
    if build is None:
        warnings.warn(
            "sparsetorch.masks.load(path) without a model is deprecated: call sparsetorch.load(path), "
            "which rebuilds the registered model",
            DeprecationWarning,
            stacklevel=3,
        )
        # A run-time lookup through the public face: the core does not import the models layer.
        build = importlib.import_module("sparsetorch").create_model
    shapes = {k: tuple(v.shape) for k, v in tensors.items() if not k.startswith(MASK_PREFIX)}
    config = metadata.get("model_config") or "{}"
    return build_checked(build, metadata.get("model", ""), config, shapes=shapes, where=where)


def _check_fit(
    model: nn.Module, tensors: dict[str, Tensor], patterns: dict[str, Pattern], *, where: str
) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """(masks, plain tensors) of the file once checked against `model`: the same tensor names,
    shapes and dtypes (floats may differ in precision), bool masks of stored weights that obey
    their recorded pattern."""
    mask_tensors = {k[len(MASK_PREFIX) :]: v for k, v in tensors.items() if k.startswith(MASK_PREFIX)}
    plain = {k: v for k, v in tensors.items() if not k.startswith(MASK_PREFIX)}
    check_state_fits(plain, plain_state(model), owner=type(model).__name__, where=where)
    weights = weights_by_fqn(model)
    for fqn in set(patterns) - set(mask_tensors):
        raise ValueError(f"{where}: its 'patterns' header names {fqn!r}, which has no mask")
    for fqn, mask in mask_tensors.items():
        if mask.dtype != torch.bool:
            raise ValueError(f"{where}: mask for {fqn!r} is {mask.dtype}, expected bool")
        if fqn not in weights or mask.shape != plain[fqn].shape:
            raise ValueError(f"{where}: mask for {fqn!r} matches no weight of its shape")
        check_mask(mask, patterns.get(fqn, Unstructured()), name=f"{where}: mask for {fqn!r}")
    return mask_tensors, plain


def check_mask(mask: Tensor, pattern: Pattern, *, name: str) -> None:
    """Raise a ValueError naming `name` unless the bool mask obeys `pattern`: at most n kept in each
    N:M group (along dim 1), whole blocks or whole channels kept or dropped."""
    check(mask.shape, pattern, name=name)
    ok = True
    if isinstance(pattern, NM):
        ok = bool((mask.movedim(1, -1).reshape(-1, pattern.m).sum(-1) <= pattern.n).all())  # (groups, m)
    elif isinstance(pattern, Block):
        tiles = mask.reshape(mask.shape[0] // pattern.h, pattern.h, mask.shape[1] // pattern.w, pattern.w)
        ok = bool((tiles.all(3).all(1) == tiles.any(3).any(1)).all())
    elif isinstance(pattern, Channel):
        slices = mask.movedim(pattern.dim, 0).reshape(mask.shape[pattern.dim], -1)
        ok = bool((slices.all(1) == slices.any(1)).all())
    if not ok:
        raise ValueError(f"{name} breaks its recorded pattern {pattern}")


def replace_state(model: nn.Module, new: dict[str, Tensor], plain: dict[str, Tensor], patterns: dict) -> None:
    """Swap in checked masks `new` (with their patterns) and plain tensors, as a transaction: on
    any error (an interrupt too) the model's old masks, patterns and tensors are put back."""
    old_masks, old_patterns = {k: v.clone() for k, v in get_masks(model).items()}, patterns_of(model)
    old_plain = {k: v.detach().clone() for k, v in plain_state(model).items()}
    try:
        _set_state(model, new, plain, patterns)
    except BaseException:
        _set_state(model, old_masks, old_plain, old_patterns)
        raise


def _set_state(
    model: nn.Module, mask_tensors: dict[str, Tensor], plain: dict[str, Tensor], patterns: dict[str, Pattern]
) -> None:
    for fqn, module, name in list(named_weights(model)):  # masks the file does not have go
        if mask_of(module, name) is not None and fqn not in mask_tensors:
            parametrize.remove_parametrizations(module, name, leave_parametrized=True)
    attach(model, mask_tensors, patterns=patterns)
    copy_plain_state(model, plain)


def copy_plain_state(model: nn.Module, plain: dict[str, Tensor]) -> None:
    """Copy tensors keyed by plain FQNs (see `plain_state`) into the model's weights and buffers."""
    lookup = weights_by_fqn(model)
    with torch.no_grad():
        for key, value in plain.items():
            if key in lookup:
                module, name = lookup[key]
                target = (
                    module.parametrizations[name].original if mask_of(module, name) else getattr(module, name)
                )
            else:  # a buffer
                owner, _, name = key.rpartition(".")
                target = model.get_submodule(owner).get_buffer(name) if owner else model.get_buffer(name)
            target.copy_(value)


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
