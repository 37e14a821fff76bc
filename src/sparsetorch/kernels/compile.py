"""`compile`: swap masked Linear layers for `SparseLinear`; `decompile`; compact save / load.

Why in place: like `prune`, `compile` edits the model it is given (returning it), so references a
user holds to submodules stay valid and no second copy of a large model is made.

Per layer, `formats="auto"` builds the candidate formats that fit the mask (bitmask and CSR
always; N:M under an N:M pattern; block under a block pattern whose mask really is blocked),
measures them against dense `F.linear` (`autotune.choose`, cached on disk), and keeps the layer
dense (still as a `SparseLinear` of format `dense`, which runs `F.linear` and remembers its
mask) when no format beats dense at every requested batch size. Masked Conv layers are left as
they are (their masks still apply).

Compact checkpoints (`save_compiled` / `load_compiled`) live in `checkpoint.py` and are
re-exported here.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Iterable, Mapping

import torch
from torch import Tensor, nn

from sparsetorch.kernels import autotune
from sparsetorch.kernels.autotune import Candidate
from sparsetorch.kernels.checkpoint import COMPILED_KEY, load_compiled, save_compiled
from sparsetorch.kernels.formats import Dense, Format
from sparsetorch.kernels.module import SparseLinear, check_threads, guard_casts
from sparsetorch.kernels.swap import format_for, set_submodule, sparse_layers
from sparsetorch.kernels.validate import fits
from sparsetorch.masks import attach, get_masks, patterns_of, weights_by_fqn
from sparsetorch.masks import squash as squash_masks
from sparsetorch.patterns import NM, Block, Pattern, parse_pattern

__all__ = [
    "COMPILED_KEY",
    "auto_candidates",
    "compile",
    "compression",
    "decompile",
    "load_compiled",
    "parse_format",
    "save_compiled",
    "sparse_layers",
    "squash",
    "to_dense",
]


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
    example_inputs: tuple | None = None,
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
        example_inputs: positional inputs of `model` (a tuple). When given, the whole model is
            timed after the per-layer choice against the same model with every layer dense, and
            layers go back to dense (weakest first) until the model is faster than dense
            (`autotune.check_model`; the outcome is `model.sparsetorch_check`). One layer timed
            alone can win while the model loses.

    Raises:
        ValueError: a requested format that does not fit a layer's mask, or a layer not on the CPU;
            `threads` not an integer >= 1. The model is unchanged when anything is raised.
        TypeError: a layer that is not float32; `formats` neither a string nor a mapping of strings.
    """
    threads = check_threads(threads)
    _check_formats(formats)
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
    plan: list[tuple[str, SparseLinear]] = []
    for fqn, mask in attached.items():
        module, name = lookup[fqn]
        if isinstance(module, nn.Linear) and name == "weight":
            spec = format_for(formats, fqn)
            tune = {"batches": batches, "threads": threads, "use_cache": use_cache}
            plan.append((fqn.rpartition(".")[0], _sparse(fqn, module, mask, patterns.get(fqn), spec, **tune)))
    dense_layers = {}
    if example_inputs is not None:
        if not isinstance(example_inputs, tuple):
            raise TypeError(
                f"example_inputs must be a tuple of the model's inputs, got {type(example_inputs).__name__}"
            )
        dense_layers = {fqn: _dense_twin(sp) for fqn, sp in plan}
    for module_fqn, sparse in plan:
        set_submodule(model, module_fqn, sparse)
    guard_casts(model)
    if example_inputs is not None:
        dense_model = copy.deepcopy(model)
        for fqn, twin in dense_layers.items():
            set_submodule(dense_model, fqn, twin)
        layers = {fqn: (sp, dense_layers[fqn]) for fqn, sp in plan}
        model.sparsetorch_check = autotune.check_model(
            model, dense_model, layers, example_inputs, set_layer=set_submodule
        )
    return model


def _dense_twin(sparse: SparseLinear) -> SparseLinear:
    """The layer kept dense (format `dense`, `F.linear` on the masked weight), sharing nothing."""
    fmt = sparse.fmt
    twin = SparseLinear(Dense.from_dense(fmt.to_dense(), fmt.mask()), sparse.bias, pattern=sparse.pattern)
    twin.autotune = getattr(sparse, "autotune", None)
    return twin


def _sparse(
    fqn: str,
    module: nn.Linear,
    mask: Tensor,
    pattern: Pattern | None,
    spec: str,
    *,
    batches: list[int],
    threads: int | None,
    use_cache: bool,
) -> SparseLinear:
    """The `SparseLinear` for one masked Linear: format `spec`, or the measured best for `"auto"`."""
    weight = module.weight.detach()
    if weight.device.type != "cpu":
        raise ValueError(f"sparsetorch.compile runs on CPU; layer {fqn!r} is on {weight.device}")
    if weight.dtype != torch.float32:
        raise TypeError(f"sparsetorch.compile needs float32 layers; {fqn!r} is {weight.dtype}")
    choice = None
    if spec == "auto":
        cands = [autotune.DENSE, *auto_candidates(mask, pattern)]
        choice = autotune.choose(
            weight, mask, cands, batches=batches, threads=threads, pattern=str(pattern), use_cache=use_cache
        )
        cand = choice.candidate
    else:
        cand = parse_format(spec, pattern)
        why = fits(cand.fmt, mask, pattern, **dict(cand.options))
        if why is not None:
            raise ValueError(f"format {cand.label!r} does not fit layer {fqn!r}: {why}")
    sparse = SparseLinear(
        cand.build(weight, mask), module.bias, threads=threads, pattern=str(pattern or "unstructured")
    )
    sparse.autotune = choice
    return sparse


def _check_formats(formats: object) -> None:
    """`formats` is a string or a `{glob: format}` mapping of strings (or `Candidate`s)."""
    if isinstance(formats, str):
        return
    if not isinstance(formats, Mapping):
        raise TypeError(
            f"formats must be 'auto', a format name or a {{glob: format}} mapping, got {type(formats).__name__}"
        )
    for glob, spec in formats.items():
        if not isinstance(glob, str) or not isinstance(spec, str | Candidate):
            raise TypeError(f"formats must map glob strings to format names, got {glob!r}: {spec!r}")


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
    guard_casts(model)  # no SparseLinear left: casts are plain again
    return model


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
