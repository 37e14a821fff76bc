"""Checkpoints of masked models: `save` and `load` (safetensors), and the state swap they share.

A file holds plain tensors under their FQNs, masks under `"__mask__/" + fqn`, and a JSON header
(format, version, patterns, model name and config, a checksum of the tensors). Loading never
unpickles, and follows the loader principle of `sparsetorch._checks`: everything is checked before
the model is touched, and the change is a transaction (`replace_state`). `sparsetorch.masks` keeps
these names too (`masks.save`, `masks.load`).
"""

from __future__ import annotations

import importlib
import json
import os
import warnings
from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize

from sparsetorch._checks import build_checked, check_state_fits
from sparsetorch._io import atomic_path, checkpoint_header, read_checkpoint
from sparsetorch.masks import (
    MASK_PREFIX,
    attach,
    get_masks,
    mask_of,
    named_weights,
    patterns_of,
    stored,
    weights_by_fqn,
)
from sparsetorch.patterns import Pattern, Unstructured, check_mask, parse_pattern


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
    """Write `model` (weights, buffers and masks) to a safetensors file, atomically, with a checksum.

    Raises:
        ValueError: a mask that breaks its recorded pattern (a file `load` would refuse), a reserved
            key in `metadata`, a dtype safetensors cannot store; nothing is written then.
    """
    from safetensors.torch import save_file

    path = Path(path)
    tensors = {k: v.detach().contiguous().cpu() for k, v in plain_state(model).items()}
    patterns = patterns_of(model)
    for fqn, mask in get_masks(model).items():
        check_mask(mask, patterns[fqn], name=f"mask for {fqn!r}")
        tensors[MASK_PREFIX + fqn] = mask.detach().contiguous().cpu()
    spec = getattr(model, "sparsetorch_spec", None) or {}
    fields = {
        "patterns": json.dumps({k: str(v) for k, v in patterns.items()}),
        "model": str(spec.get("name", "")),
        "model_config": json.dumps(spec.get("config", {})),
    }
    header = checkpoint_header(tensors, fields=fields, metadata=metadata)
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
    fresh = model is None  # a model built here has nothing to roll back to
    if model is None:
        model = _rebuild(metadata, tensors, build=build, where=where)
    mask_tensors, plain = _check_fit(model, tensors, patterns, where=where)
    found = {k: patterns.get(k, Unstructured()) for k in mask_tensors}
    replace_state(model, mask_tensors, plain, found, rollback=not fresh)
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
    for fqn in sorted(set(patterns) - set(mask_tensors)):
        raise ValueError(f"{where}: its 'patterns' header names {fqn!r}, which has no mask")
    for fqn, mask in mask_tensors.items():
        if mask.dtype != torch.bool:
            raise ValueError(f"{where}: mask for {fqn!r} is {mask.dtype}, expected bool")
        if fqn not in weights or mask.shape != plain[fqn].shape:
            raise ValueError(f"{where}: mask for {fqn!r} matches no weight of its shape")
        check_mask(mask, patterns.get(fqn, Unstructured()), name=f"{where}: mask for {fqn!r}")
    return mask_tensors, plain


def replace_state(
    model: nn.Module,
    new: dict[str, Tensor],
    plain: dict[str, Tensor],
    patterns: dict,
    *,
    rollback: bool = True,
    modules: Callable[[], Callable[[], None]] | None = None,
) -> None:
    """Swap in checked masks `new` (with their patterns) and plain tensors, as a transaction: on
    any error (an interrupt too) the model's old masks, patterns and tensors are put back.

    Why no snapshot: each tensor's storage is swapped (`target.data = copy`), the old storages kept
    only until the swap is done, so parameters stay the same objects and a load clones nothing.
    The copies are owned (a file's tensors may be memory-mapped). `modules`, if given, first makes
    structural changes (a compiled loader swaps layers in) and returns how to undo them. With
    `rollback=False` (a model the loader built itself) nothing is kept.
    """
    recorded = patterns_of(model)
    old = {fqn: (m, mask_of(m, n), recorded.get(fqn)) for fqn, m, n in named_weights(model)}
    swapped: list[tuple[Tensor, Tensor]] | None = [] if rollback else None
    undo: Callable[[], None] | None = None
    try:
        undo = modules() if modules is not None else None
        _set_state(model, new, plain, patterns, swapped)
    except BaseException:
        if swapped is not None:
            _restore(model, old, swapped)
            if undo is not None:
                undo()
        raise


def _swap(target: Tensor, value: Tensor, swapped: list[tuple[Tensor, Tensor]] | None) -> None:
    """`target.data =` an owned copy of `value` in target's dtype and device; the old storage kept
    in `swapped` (unless None)."""
    if swapped is not None:
        swapped.append((target, target.data))
    target.data = value.detach().to(dtype=target.dtype, device=target.device, copy=True)


def _set_state(
    model: nn.Module,
    mask_tensors: dict[str, Tensor],
    plain: dict[str, Tensor],
    patterns: dict[str, Pattern],
    swapped: list[tuple[Tensor, Tensor]] | None,
) -> None:
    lookup = weights_by_fqn(model)
    for key, value in plain.items():  # storages first, so that `attach` zeroes the new ones
        _swap(_target(model, key, lookup), value, swapped)
    for fqn, module, name in list(named_weights(model)):
        mask = mask_of(module, name)
        if mask is not None and fqn not in mask_tensors:  # masks the file does not have go
            parametrize.remove_parametrizations(module, name, leave_parametrized=True)
        elif mask is not None:  # kept: its buffer swapped, so that the old one can come back
            _swap(mask.mask, mask_tensors[fqn], swapped)
    attach(model, mask_tensors, patterns=patterns)


def _restore(model: nn.Module, old: dict, swapped: list[tuple[Tensor, Tensor]]) -> None:
    """Put back the masks (the same `Mask` modules), patterns and storages recorded before a swap."""
    for fqn, module, name in list(named_weights(model)):
        owner, mask, pattern = old.get(fqn, (None, None, None))
        if owner is not module:  # a module swapped in: its old one comes back as it was
            continue
        current = mask_of(module, name)
        if current is not None and current is not mask:
            parametrize.remove_parametrizations(module, name, leave_parametrized=True)
        if mask is not None and mask_of(module, name) is None:
            parametrize.register_parametrization(module, name, mask, unsafe=True)
        if mask is not None:
            mask.pattern = pattern
    for target, data in reversed(swapped):
        target.data = data


def _target(model: nn.Module, key: str, lookup: dict[str, tuple[nn.Module, str]]) -> Tensor:
    """The tensor a plain FQN (see `plain_state`) names: a stored weight (`lookup`, from
    `weights_by_fqn`) or a buffer."""
    if key in lookup:
        return stored(*lookup[key])
    owner, _, name = key.rpartition(".")
    return model.get_submodule(owner).get_buffer(name) if owner else model.get_buffer(name)


def copy_plain_state(model: nn.Module, plain: dict[str, Tensor]) -> None:
    """Copy tensors keyed by plain FQNs (see `plain_state`) into the model's weights and buffers."""
    lookup = weights_by_fqn(model)
    with torch.no_grad():
        for key, value in plain.items():
            _target(model, key, lookup).copy_(value)
