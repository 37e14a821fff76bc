"""`compile`: swap masked Linear layers for `SparseLinear`; `decompile`; compact save / load.

Why in place: like `prune`, `compile` edits the model it is given (returning it), so references a
user holds to submodules stay valid and no second copy of a large model is made.

Per layer, `formats="auto"` builds the candidate formats that fit the mask (bitmask and CSR
always; N:M under an N:M pattern; block under a block pattern whose mask really is blocked),
measures them against dense `F.linear` (`autotune.choose`, cached on disk), and keeps the layer
dense (still as a `SparseLinear` of format `dense`, which runs `F.linear` and remembers its
mask) when no format beats dense at every requested batch size. Masked Conv layers are left as
they are (their masks still apply).

Compact checkpoints (`save_compiled` / `load_compiled`) are safetensors files holding the
compressed tensors under `<module fqn>.<field>`, the rest of the model as plain tensors and
masks (as `masks.save` writes them), and a JSON header describing each compressed layer.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize

from sparsetorch._io import atomic_path
from sparsetorch.kernels import autotune
from sparsetorch.kernels.autotune import Candidate
from sparsetorch.kernels.formats import Format
from sparsetorch.kernels.module import SparseLinear
from sparsetorch.kernels.swap import format_for, set_submodule
from sparsetorch.kernels.validate import fits, from_tensors
from sparsetorch.masks import (
    FORMAT,
    FORMAT_VERSION,
    MASK_PREFIX,
    attach,
    copy_plain_state,
    get_masks,
    mask_of,
    named_weights,
    patterns_of,
    plain_state,
    read_checkpoint,
    weights_by_fqn,
)
from sparsetorch.masks import squash as squash_masks
from sparsetorch.patterns import NM, Block, Pattern, parse_pattern

COMPILED_KEY = "sparsetorch_compiled"


def parse_format(spec: str | Candidate, pattern: Pattern | None = None) -> Candidate:
    """`"bitmask"`, `"csr"`, `"csr16"`, `"csr32"`, `"nm"` / `"2:4"` / `"nm4:8"`, `"block"` /
    `"block4x16"`, `"dense"` -> a `Candidate`. `"nm"` and `"block"` take their sizes from `pattern`."""
    if isinstance(spec, Candidate):
        return spec
    s = str(spec).strip().lower()
    if s in ("bitmask", "dense"):
        return Candidate(s)
    if s == "csr":
        return Candidate("csr")
    if s in ("csr16", "csr32"):
        return Candidate("csr", (("index_bits", int(s[3:])),))
    if s == "nm" or ":" in s:
        if s == "nm":
            if not isinstance(pattern, NM):
                raise ValueError("format 'nm' needs an N:M pattern on the mask, or sizes: e.g. '2:4'")
            n, m = pattern.n, pattern.m
        else:
            p = parse_pattern(s.removeprefix("nm"))
            if not isinstance(p, NM):
                raise ValueError(f"cannot read N:M sizes from format {spec!r}")
            n, m = p.n, p.m
        return Candidate("nm", (("m", m), ("n", n)))
    if s.startswith("block"):
        if s == "block":
            if not isinstance(pattern, Block):
                raise ValueError(
                    "format 'block' needs a block pattern on the mask, or sizes: e.g. 'block4x16'"
                )
            h, w = pattern.h, pattern.w
        else:
            p = parse_pattern(s)
            h, w = p.h, p.w  # type: ignore[union-attr]
        return Candidate("block", (("bh", h), ("bw", w)))
    raise ValueError(
        f"unknown sparse format {spec!r}: expected 'auto', 'bitmask', 'csr', 'csr16', 'csr32', 'nm', 'N:M', "
        "'block', 'blockHxW' or 'dense'"
    )


def auto_candidates(mask: Tensor, pattern: Pattern | None) -> list[Candidate]:
    """Formats worth measuring for a mask: bitmask, CSR, and N:M / block when the pattern has them."""
    cands = [Candidate("bitmask"), Candidate("csr")]
    if isinstance(pattern, NM):
        c = Candidate("nm", (("m", pattern.m), ("n", pattern.n)))
        if fits("nm", mask, n=pattern.n, m=pattern.m) is None:
            cands.append(c)
    if isinstance(pattern, Block) and fits("block", mask, bh=pattern.h, bw=pattern.w) is None:
        cands.append(Candidate("block", (("bh", pattern.h), ("bw", pattern.w))))
    return cands


def compile(
    model: nn.Module,
    *,
    formats: str | Mapping[str, str] = "auto",
    threads: int | None = None,
    batch: int | Iterable[int] | None = None,
    use_cache: bool = True,
) -> nn.Module:
    """Swap every masked `nn.Linear` of `model` for a `SparseLinear`, in place; returns `model`.

    Args:
        model: a model with masks attached (`sparsetorch.prune`, `masks.attach`).
        formats: `"auto"` (measure and pick per layer), one format for every layer (`"bitmask"`,
            `"csr"`, `"2:4"`, `"block4x16"`, `"dense"`, ...), or `{fqn glob: format}`.
        threads: kernel threads (None: `torch.get_num_threads()` at each call).
        batch: the batch sizes (rows of the 2-D input) the model will run at; `"auto"` keeps a
            sparse format only if it beats dense at every one of them. Default (1, 64)
            on the CPU; on CUDA the largest given (default 4096) is timed.
        use_cache: read and write the autotune cache (`autotune.cache_path()`).

    Raises:
        ValueError: a requested format that does not fit a layer's mask, or a layer not on the CPU.
        TypeError: a layer that is not float32.
    """
    attached = get_masks(model)
    if not attached:
        warnings.warn(
            "sparsetorch.compile: the model has no masks attached; nothing to compile", stacklevel=2
        )
        return model
    if any(m.device.type == "cuda" for m in attached.values()):
        from sparsetorch.kernels import cuda

        cuda_batch = {} if batch is None else {"batch": batch if isinstance(batch, int) else max(batch)}
        return cuda.compile(model, formats=formats, **cuda_batch)
    patterns = patterns_of(model)
    batches = [1, 64] if batch is None else [batch] if isinstance(batch, int) else list(batch)
    lookup = weights_by_fqn(model)
    plan: list[tuple[str, nn.Linear, SparseLinear]] = []
    for fqn, mask in attached.items():
        module, name = lookup[fqn]
        if not isinstance(module, nn.Linear) or name != "weight":
            continue
        weight = module.weight.detach()
        if weight.device.type != "cpu":
            raise ValueError(f"sparsetorch.compile runs on CPU; layer {fqn!r} is on {weight.device}")
        if weight.dtype != torch.float32:
            raise TypeError(f"sparsetorch.compile needs float32 layers; {fqn!r} is {weight.dtype}")
        pattern = patterns.get(fqn)
        spec = format_for(formats, fqn)
        if spec == "auto":
            cands = [autotune.DENSE, *auto_candidates(mask, pattern)]
            choice = autotune.choose(
                weight,
                mask,
                cands,
                batches=batches,
                threads=threads,
                pattern=str(pattern),
                use_cache=use_cache,
            )
            cand = choice.candidate
        else:
            cand = parse_format(spec, pattern)
            why = fits(cand.fmt, mask, pattern, **dict(cand.options))
            if why is not None:
                raise ValueError(f"format {cand.label!r} does not fit layer {fqn!r}: {why}")
            choice = None
        fmt = cand.build(weight, mask)
        sparse = SparseLinear(fmt, module.bias, threads=threads, pattern=str(pattern or "unstructured"))
        sparse.autotune = choice
        plan.append((fqn.rpartition(".")[0], module, sparse))
    for module_fqn, _, sparse in plan:
        set_submodule(model, module_fqn, sparse)
    return model


def sparse_layers(model: nn.Module) -> dict[str, SparseLinear]:
    """`{module fqn: SparseLinear}` of a compiled model."""
    return {n: m for n, m in model.named_modules() if isinstance(m, SparseLinear)}


def decompile(model: nn.Module) -> nn.Module:
    """Replace every `SparseLinear` by an `nn.Linear` with its mask attached, in place; returns `model`.

    The result is the plain masked model (`squash` it for a plain dense one); its outputs equal
    the compiled model's. CUDA layers (`kernels.cuda`) are decompiled too.
    """
    from sparsetorch.kernels import cuda

    cuda.decompile(model)
    new_masks: dict[str, Tensor] = {}
    new_patterns: dict[str, str] = {}
    for fqn, sparse in sparse_layers(model).items():
        fmt = sparse.fmt
        linear = nn.Linear(sparse.in_features, sparse.out_features, bias=sparse.bias is not None)
        with torch.no_grad():
            linear.weight.copy_(fmt.to_dense())
            if sparse.bias is not None:
                linear.bias.copy_(sparse.bias)
        set_submodule(model, fqn, linear)
        new_masks[f"{fqn}.weight"] = fmt.mask()
        new_patterns[f"{fqn}.weight"] = sparse.pattern
    if new_masks:
        attach(model, new_masks, patterns=new_patterns)
    return model


# --- compact checkpoints ------------------------------------------------------------------------


def save_compiled(
    model: nn.Module, path: str | os.PathLike, *, metadata: dict[str, str] | None = None
) -> Path:
    """Write a compiled model to safetensors: compressed tensors as stored, never pickled."""
    from safetensors.torch import save_file

    path = Path(path)
    layers = sparse_layers(model)
    tensors: dict[str, Tensor] = {}
    for key, value in plain_state(model).items():
        tensors[key] = value.detach().contiguous().cpu().clone()
    for fqn, mask in get_masks(model).items():
        tensors[MASK_PREFIX + fqn] = mask.detach().contiguous().cpu()
    header = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "patterns": json.dumps({k: str(v) for k, v in patterns_of(model).items()}),
        COMPILED_KEY: json.dumps(
            {
                fqn: {"meta": m.meta, "pattern": m.pattern, "bias": m.bias is not None, "fields": m._fields}
                for fqn, m in layers.items()
            }
        ),
        **(metadata or {}),
    }
    with atomic_path(path) as tmp:
        save_file(tensors, tmp, metadata=header)
    return path


def load_compiled(path: str | os.PathLike, model: nn.Module, *, threads: int | None = None) -> nn.Module:
    """Load a `save_compiled` file into `model` (the same architecture, compiled or not), in place.

    Everything is read and checked before the model is touched.

    Raises:
        FileNotFoundError: no such file.
        ValueError: a corrupt or truncated file, a file that is not a compiled checkpoint, or one
            that does not fit `model`.
    """
    tensors, metadata = read_checkpoint(path)
    where = f"checkpoint {str(path)!r}"
    try:
        layers = json.loads(metadata[COMPILED_KEY])
        pattern_map = json.loads(metadata.get("patterns") or "{}")
        if not isinstance(layers, dict):
            raise TypeError("layers")
    except (KeyError, TypeError, json.JSONDecodeError) as err:
        raise ValueError(
            f"{where} is not a compiled sparsetorch checkpoint (bad '{COMPILED_KEY}' header)"
        ) from err
    built, used = _build_layers(layers, tensors, model, where=where, threads=threads)
    rest = {k: v for k, v in tensors.items() if k not in used}
    mask_tensors = {k[len(MASK_PREFIX) :]: v for k, v in rest.items() if k.startswith(MASK_PREFIX)}
    plain = {k: v for k, v in rest.items() if not k.startswith(MASK_PREFIX)}
    _check_rest(model, built, plain, mask_tensors, where=where)

    for fqn, sparse in built.items():
        set_submodule(model, fqn, sparse)
    # Non-compiled masks: drop the old ones, attach the file's, copy the plain tensors.
    for fqn, module, name in list(named_weights(model)):
        if mask_of(module, name) is not None and fqn not in mask_tensors:
            parametrize.remove_parametrizations(module, name, leave_parametrized=True)
    if mask_tensors:
        attach(model, mask_tensors, patterns={k: pattern_map.get(k, "unstructured") for k in mask_tensors})
    copy_plain_state(model, plain)
    return model


def _build_layers(
    layers: dict, tensors: dict[str, Tensor], model: nn.Module, *, where: str, threads: int | None
) -> tuple[dict[str, SparseLinear], set[str]]:
    """The `SparseLinear` of each compressed layer in the header, checked against `model`, and the
    tensor keys they consumed."""
    built: dict[str, SparseLinear] = {}
    used: set[str] = set()
    for fqn, info in layers.items():
        try:
            meta, fields = dict(info["meta"]), list(info["fields"])
            found = {f: tensors[f"{fqn}.{f}"] for f in fields}
            fmt = from_tensors(meta, found)
            bias = tensors[f"{fqn}.bias"] if info["bias"] else None
        except (KeyError, TypeError, ValueError, RuntimeError) as err:
            raise ValueError(f"{where}: compressed layer {fqn!r} is corrupt or incomplete: {err}") from err
        if bias is not None and tuple(bias.shape) != (fmt.shape[0],):
            raise ValueError(f"{where}: bias of {fqn!r} has shape {tuple(bias.shape)}")
        try:
            target = model.get_submodule(fqn)
        except AttributeError as err:
            raise ValueError(f"{where}: model has no module {fqn!r}") from err
        if (
            not isinstance(target, nn.Linear | SparseLinear)
            or (target.out_features, target.in_features) != fmt.shape
        ):
            raise ValueError(f"{where}: module {fqn!r} is not a Linear of shape {fmt.shape}")
        built[fqn] = SparseLinear(
            fmt, bias, threads=threads, pattern=str(info.get("pattern", "unstructured"))
        )
        used |= {f"{fqn}.{f}" for f in fields} | ({f"{fqn}.bias"} if bias is not None else set())
    return built, used


def _check_rest(
    model: nn.Module,
    built: dict[str, SparseLinear],
    plain: dict[str, Tensor],
    mask_tensors: dict[str, Tensor],
    *,
    where: str,
) -> None:
    """The file's tensors outside the compressed layers fit what `model` holds once they are swapped in."""
    skip = {f"{fqn}." for fqn in built}
    expected = {k: v for k, v in plain_state(model).items() if not any(k.startswith(s) for s in skip)}
    for fqn in built:  # a Linear being replaced no longer holds weight/bias
        expected.pop(f"{fqn}.weight", None)
        expected.pop(f"{fqn}.bias", None)
    missing, unexpected = sorted(set(expected) - set(plain)), sorted(set(plain) - set(expected))
    if missing or unexpected:
        raise ValueError(
            f"{where} does not fit {type(model).__name__}: missing {missing[:5]}, unexpected {unexpected[:5]}"
        )
    for k, v in plain.items():
        if v.shape != expected[k].shape:
            raise ValueError(
                f"{where}: {k!r} has shape {tuple(v.shape)}, model expects {tuple(expected[k].shape)}"
            )
    for fqn, m in mask_tensors.items():
        if m.dtype != torch.bool or fqn not in plain or m.shape != plain[fqn].shape:
            raise ValueError(f"{where}: mask for {fqn!r} is not a bool mask of a stored weight")


def compression(model: nn.Module) -> dict[str, dict[str, object]]:
    """Per compiled layer: format, bytes, dense bytes and the measured speedups (if autotuned)."""
    out: dict[str, dict[str, object]] = {}
    for fqn, m in sparse_layers(model).items():
        fmt: Format = m.fmt
        choice = getattr(m, "autotune", None)
        out[fqn] = {
            "format": m.format_name if m.format_name != "nm" else f"nm{fmt.n}:{fmt.m}",  # type: ignore[attr-defined]
            "shape": fmt.shape,
            "bytes": fmt.nbytes,
            "dense_bytes": 4 * fmt.shape[0] * fmt.shape[1],
            "speedup": {r: choice.speedup(r) for r in choice.ms} if choice else None,
        }
    return out


def to_dense(model: nn.Module) -> nn.Module:
    """A plain dense model, in place: `decompile`, then bake the masks into the weights (`masks.squash`)."""
    return squash_masks(decompile(model))


def squash(model: nn.Module) -> nn.Module:
    """Deprecated alias of `to_dense` (`squash` means `masks.squash`: bake masks into weights)."""
    warnings.warn(
        "sparsetorch.kernels.squash is deprecated: use sparsetorch.kernels.to_dense",
        DeprecationWarning,
        stacklevel=2,
    )
    return to_dense(model)
