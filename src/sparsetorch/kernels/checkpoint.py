"""Compact checkpoints of compiled models: `save_compiled` and `load_compiled`.

A safetensors file holds the compressed tensors under `<module fqn>.<field>`, the rest of the
model as plain tensors and masks (as `masks.save` writes them), and a JSON header describing each
compressed layer (format fields, bias, pattern).

Why loading is in three phases: a checkpoint is untrusted input and its indices drive kernels
that do not bounds-check. `load_compiled` (1) reads and validates everything, header first and
against the model's own shapes before any size from the file is trusted, then every index
invariant (`validate`), dtype, mask and pattern; (2) only then builds the new modules; (3) swaps
them in as one transaction, putting the model back as it was if anything is raised.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from sparsetorch._checks import check_state_fits
from sparsetorch._io import atomic_path, checkpoint_header
from sparsetorch.checkpoint import plain_state, replace_state
from sparsetorch.kernels.formats import Format
from sparsetorch.kernels.module import SparseLinear, check_threads, guard_casts
from sparsetorch.kernels.swap import set_submodule, sparse_layers
from sparsetorch.kernels.validate import conforms, from_tensors
from sparsetorch.masks import MASK_PREFIX, get_masks, patterns_of, read_checkpoint
from sparsetorch.patterns import Pattern, Unstructured, check_mask, parse_pattern

COMPILED_KEY = "sparsetorch_compiled"


def save_compiled(
    model: nn.Module, path: str | os.PathLike, *, metadata: dict[str, str] | None = None
) -> Path:
    """Write a compiled model to safetensors: compressed tensors as stored, never pickled."""
    from safetensors.torch import save_file

    path = Path(path)
    layers = sparse_layers(model)
    tensors = {k: v.detach().contiguous().cpu().clone() for k, v in plain_state(model).items()}
    patterns = patterns_of(model)
    for fqn, mask in get_masks(model).items():  # refused here, not by the loader later
        check_mask(mask, patterns[fqn], name=f"mask for {fqn!r}")
        tensors[MASK_PREFIX + fqn] = mask.detach().contiguous().cpu()
    compiled = {
        fqn: {"meta": m.meta, "pattern": m.pattern, "bias": m.bias is not None, "fields": m._fields}
        for fqn, m in layers.items()
    }
    fields = {
        "patterns": json.dumps({k: str(v) for k, v in patterns.items()}),
        COMPILED_KEY: json.dumps(compiled),
    }
    header = checkpoint_header(tensors, fields=fields, metadata=metadata)
    with atomic_path(path) as tmp:
        save_file(tensors, tmp, metadata=header)
    return path


@dataclass(frozen=True)
class _Layer:
    """One compressed layer of a checkpoint, validated: what `SparseLinear` is built from."""

    fmt: Format
    bias: Tensor | None
    pattern: Pattern


def load_compiled(path: str | os.PathLike, model: nn.Module, *, threads: int | None = None) -> nn.Module:
    """Load a `save_compiled` file into `model` (the same architecture, compiled or not), in place.

    Everything is read and checked before the model is touched, and the model is left exactly
    as it was if anything is raised.

    Raises:
        FileNotFoundError: no such file.
        ValueError: a corrupt or truncated file (bad header, sizes, dtypes or index invariants:
            duplicate or unsorted columns, repeated N:M positions, ...), a file that is not a
            compiled checkpoint, or one that does not fit `model`; a bad `threads`.
    """
    threads = check_threads(threads)
    tensors, metadata = read_checkpoint(path)
    where = f"checkpoint {str(path)!r}"
    header, pattern_map = _read_header(metadata, where=where)
    layers = {fqn: _read_layer(fqn, info, tensors, model, where=where) for fqn, info in header.items()}
    used = {f"{fqn}.{f}" for fqn, info in header.items() for f in info["fields"]}
    used |= {f"{fqn}.bias" for fqn, layer in layers.items() if layer.bias is not None}
    rest = {k: v for k, v in tensors.items() if k not in used}
    mask_tensors = {k[len(MASK_PREFIX) :]: v for k, v in rest.items() if k.startswith(MASK_PREFIX)}
    plain = {k: v for k, v in rest.items() if not k.startswith(MASK_PREFIX)}
    _check_rest(model, set(layers), plain, mask_tensors, where=where)
    patterns = {
        k: _pattern(pattern_map.get(k, "unstructured"), k, mask_tensors[k], where) for k in mask_tensors
    }

    built = {
        fqn: SparseLinear(layer.fmt, layer.bias, threads=threads, pattern=str(layer.pattern))
        for fqn, layer in layers.items()
    }
    replace_state(model, mask_tensors, plain, patterns, modules=lambda: _swap_modules(model, built))
    return model


def _read_header(metadata: dict[str, str], *, where: str) -> tuple[dict[str, dict], dict[str, object]]:
    """The compiled-layers header, each entry checked for its keys and their types."""
    try:
        layers = json.loads(metadata[COMPILED_KEY])
        pattern_map = json.loads(metadata.get("patterns") or "{}")
    except (KeyError, TypeError, json.JSONDecodeError) as err:
        raise ValueError(
            f"{where} is not a compiled sparsetorch checkpoint (bad '{COMPILED_KEY}' header)"
        ) from err
    if not isinstance(layers, dict) or not isinstance(pattern_map, dict):
        raise ValueError(f"{where} is not a compiled sparsetorch checkpoint (bad '{COMPILED_KEY}' header)")
    for fqn, info in layers.items():
        ok = (
            fqn
            and isinstance(info, dict)
            and isinstance(info.get("meta"), dict)
            and isinstance(info.get("fields"), list)
            and all(isinstance(f, str) for f in info["fields"])
            and isinstance(info.get("bias"), bool)
            and isinstance(info.get("pattern", "unstructured"), str)
        )
        if not ok:
            raise ValueError(f"{where}: header entry of compressed layer {fqn!r} is malformed: {info!r:.200}")
    return layers, pattern_map


def _read_layer(fqn: str, info: dict, tensors: dict[str, Tensor], model: nn.Module, *, where: str) -> _Layer:
    """One compressed layer: its shape checked against `model` first, then every tensor and index."""
    try:
        target = model.get_submodule(fqn)
    except AttributeError as err:
        raise ValueError(f"{where}: model has no module {fqn!r}") from err
    shape = (getattr(target, "out_features", None), getattr(target, "in_features", None))
    if not isinstance(target, nn.Linear | SparseLinear) or info["meta"].get("shape") != list(shape):
        raise ValueError(
            f"{where}: module {fqn!r} is not a Linear of shape {info['meta'].get('shape')!r:.60}"
        )
    try:
        fmt = from_tensors(info["meta"], {f: tensors[f"{fqn}.{f}"] for f in info["fields"]})
        bias = tensors[f"{fqn}.bias"] if info["bias"] else None
    except (KeyError, TypeError, ValueError, RuntimeError) as err:
        raise ValueError(f"{where}: compressed layer {fqn!r} is corrupt or incomplete: {err}") from err
    if bias is not None and (tuple(bias.shape) != (fmt.shape[0],) or bias.dtype != torch.float32):
        raise ValueError(f"{where}: bias of {fqn!r} is {bias.dtype} of shape {tuple(bias.shape)}")
    pattern = info.get("pattern", "unstructured")
    return _Layer(fmt, bias, _pattern(pattern, fqn, None if pattern == "unstructured" else fmt, where))


def _pattern(spec: object, fqn: str, mask: Tensor | Format | None, where: str) -> Pattern:
    """The recorded pattern of `fqn`, parsed and checked against its mask (if one is given)."""
    try:
        pattern = parse_pattern(spec)  # type: ignore[arg-type]
    except (TypeError, ValueError) as err:
        raise ValueError(f"{where}: pattern of {fqn!r} is not a pattern: {err}") from err
    if mask is None or isinstance(pattern, Unstructured):
        return pattern
    why = conforms(mask.mask() if isinstance(mask, Format) else mask, pattern)
    if why is not None:
        raise ValueError(f"{where}: the mask of {fqn!r} contradicts its recorded pattern {pattern}: {why}")
    return pattern


def _check_rest(
    model: nn.Module,
    built: set[str],
    plain: dict[str, Tensor],
    mask_tensors: dict[str, Tensor],
    *,
    where: str,
) -> None:
    """The file's tensors outside the compressed layers fit what `model` holds once they are swapped in:
    the same names, shapes and dtypes, and bool masks (bytes 0 or 1) of stored weights."""
    skip = {f"{fqn}." for fqn in built}
    expected = {k: v for k, v in plain_state(model).items() if not any(k.startswith(s) for s in skip)}
    for fqn in built:  # a Linear being replaced no longer holds weight/bias
        expected.pop(f"{fqn}.weight", None)
        expected.pop(f"{fqn}.bias", None)
    check_state_fits(plain, expected, owner=type(model).__name__, where=where)
    for fqn, m in mask_tensors.items():  # bool bytes were checked by `read_checkpoint`
        if m.dtype != torch.bool or fqn not in plain or m.shape != plain[fqn].shape:
            raise ValueError(f"{where}: mask for {fqn!r} is not a bool mask of a stored weight")


def _swap_modules(model: nn.Module, built: dict[str, SparseLinear]):
    """Swap the built layers in (cast guards updated); return how to swap the old ones back."""
    old = {fqn: model.get_submodule(fqn) for fqn in built}

    def undo() -> None:
        for fqn, module in old.items():
            set_submodule(model, fqn, module)
        guard_casts(model)

    for fqn, sparse in built.items():
        set_submodule(model, fqn, sparse)
    guard_casts(model)
    return undo
