"""CUDA execution of masked Linear layers: 2:4 through cuSPARSELt / CUTLASS, blocks through BSR.

Why a separate path: on a GPU the speed of a sparse product comes from the vendor's kernels, not
from ours. torch ships two that turn sparsity into time:

- 2:4 semi-structured (`torch.sparse.to_sparse_semi_structured`): the sparse tensor cores of
  Ampere and newer, float16 / bfloat16, 2 kept of every 4 consecutive inputs (our `NM(2, 4)`);
- block-sparse rows (`Tensor.to_sparse_bsr`): whole `h x w` tiles skipped, by cuSPARSE or torch's
  Triton kernels.

`compile(model)` swaps each masked CUDA `nn.Linear` whose mask fits one of these for a
`CudaSparseLinear`. With `formats="auto"` it times the sparse product against dense `F.linear`
at the stated batch (CUDA events, median of repetitions) and keeps the layer dense when sparse
is not faster, so compiling never makes a layer slower at that batch.

Deviations / limits (stated, not hidden):
- inference only: the sparse weight is a buffer, not a parameter; train with masks
  (`sparsetorch.masks`) and compile afterwards;
- 2:4 needs float16 or bfloat16 weights and sizes the vendor kernels accept (torch checks them;
  the error is passed on naming the layer); torch pads the batch dimension itself;
- kept weights that are exactly zero are remembered in the mask held on the CPU, so `decompile`
  gives back the same mask.
"""

from __future__ import annotations

import statistics
import warnings
from collections.abc import Mapping
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sparsetorch.kernels.swap import format_for, set_submodule
from sparsetorch.kernels.validate import fits
from sparsetorch.masks import attach, get_masks, patterns_of, weights_by_fqn
from sparsetorch.patterns import NM, Block, Pattern

HALF = (torch.float16, torch.bfloat16)


class Timing(NamedTuple):
    """Median milliseconds of dense `F.linear` and of the sparse layer, at one batch."""

    batch: int
    dense_ms: float
    sparse_ms: float

    @property
    def speedup(self) -> float:
        return self.dense_ms / self.sparse_ms


def _check_2to4(weight: Tensor, mask: Tensor, fqn: str) -> None:
    if weight.dtype not in HALF:
        raise TypeError(
            f"2:4 on CUDA runs in float16 or bfloat16; layer {fqn!r} is {weight.dtype} (call model.half())"
        )
    why = fits("nm", mask, n=2, m=4)
    if why is not None:
        raise ValueError(f"format '2:4' does not fit layer {fqn!r}: {why}")


def _check_bsr(mask: Tensor, block: tuple[int, int], fqn: str) -> None:
    why = fits("block", mask, bh=block[0], bw=block[1])
    if why is not None:
        raise ValueError(f"format 'bsr{block[0]}x{block[1]}' does not fit layer {fqn!r}: {why}")


class CudaSparseLinear(nn.Module):
    """`y = x W^T + b` with `W` held as a torch sparse CUDA tensor (2:4 or BSR); inference only.

    Build with `CudaSparseLinear.from_linear(linear_weight, mask, bias, layout=...)`; `weight` is
    the masked (effective) weight on a CUDA device.
    """

    def __init__(
        self, sparse_weight: Tensor, bias: Tensor | None, *, mask: Tensor, layout: str, pattern: str
    ) -> None:
        super().__init__()
        self.out_features, self.in_features = mask.shape
        self.layout, self.pattern = layout, pattern
        # Kept as plain attributes: a torch sparse tensor cannot be a registered buffer of every layout.
        self.sparse_weight = sparse_weight
        self.mask = mask.detach().to("cpu", torch.bool)
        self.register_buffer("bias", None if bias is None else bias.detach().clone())
        self.timing: Timing | None = None

    @classmethod
    def from_linear(
        cls,
        weight: Tensor,
        mask: Tensor,
        bias: Tensor | None,
        *,
        layout: str,
        block: tuple[int, int] = (16, 16),
        fqn: str = "layer",
        pattern: str = "",
    ) -> CudaSparseLinear:
        if weight.device.type != "cuda":
            raise ValueError(f"sparsetorch.kernels.cuda needs CUDA layers; {fqn!r} is on {weight.device}")
        w = (weight.detach() * mask.to(weight.device, weight.dtype)).contiguous()
        if layout == "2:4":
            _check_2to4(w, mask, fqn)
            from torch.sparse import to_sparse_semi_structured

            try:
                sparse = to_sparse_semi_structured(w)
            except (RuntimeError, ValueError) as e:
                raise ValueError(f"2:4 kernels refuse layer {fqn!r} of shape {tuple(w.shape)}: {e}") from e
            return cls(sparse, bias, mask=mask, layout=layout, pattern=pattern or "2:4")
        if layout == "bsr":
            _check_bsr(mask, block, fqn)
            sparse = w.to_sparse_bsr(block)
            return cls(sparse, bias, mask=mask, layout=f"bsr{block[0]}x{block[1]}", pattern=pattern)
        raise ValueError(f"unknown CUDA layout {layout!r}: expected '2:4' or 'bsr'")

    def forward(self, x: Tensor) -> Tensor:
        lead = x.shape[:-1]
        x2 = x.reshape(-1, self.in_features)  # (tokens, in)
        if self.layout == "2:4":
            y = F.linear(x2, self.sparse_weight, self.bias)
        else:
            # BSR @ dense: (out, in) @ (in, tokens) -> (out, tokens)
            y = (self.sparse_weight @ x2.t()).t()
            if self.bias is not None:
                y = y + self.bias
        return y.reshape(*lead, self.out_features)

    def dense_weight(self) -> Tensor:
        return self.sparse_weight.to_dense()

    def extra_repr(self) -> str:
        t = f", speedup={self.timing.speedup:.2f}x@B={self.timing.batch}" if self.timing else ""
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, layout={self.layout}, "
            f"bias={self.bias is not None}{t}"
        )


def _median_ms(fn, *, reps: int = 20, warmup: int = 3) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


def time_layer(linear_weight: Tensor, bias: Tensor | None, sparse: CudaSparseLinear, batch: int) -> Timing:
    """Median ms of dense `F.linear` vs `sparse` on one random `(batch, in)` input."""
    gen = torch.Generator(device=linear_weight.device).manual_seed(0)
    x = torch.randn(
        batch, sparse.in_features, device=linear_weight.device, dtype=linear_weight.dtype, generator=gen
    )
    with torch.no_grad():
        dense = _median_ms(lambda: F.linear(x, linear_weight, bias))
        ours = _median_ms(lambda: sparse(x))
    return Timing(batch, dense, ours)


def _layout_for(spec: str, pattern: Pattern | None) -> tuple[str, tuple[int, int]] | None:
    s = spec.strip().lower()
    if s == "dense":
        return None
    if s in ("2:4", "nm"):
        return "2:4", (0, 0)
    if s.startswith("bsr") or s.startswith("block"):
        rest = s.removeprefix("bsr").removeprefix("block")
        if rest:
            h, _, w = rest.partition("x")
            return "bsr", (int(h), int(w))
        if not isinstance(pattern, Block):
            raise ValueError("format 'bsr' needs a block pattern on the mask, or sizes: e.g. 'bsr16x16'")
        return "bsr", (pattern.h, pattern.w)
    raise ValueError(f"unknown CUDA format {spec!r}: expected 'auto', '2:4', 'bsr', 'bsrHxW' or 'dense'")


def _auto_layout(weight: Tensor, mask: Tensor, pattern: Pattern | None) -> tuple[str, tuple[int, int]] | None:
    if isinstance(pattern, NM) and (pattern.n, pattern.m) == (2, 4):
        return ("2:4", (0, 0)) if weight.dtype in HALF and fits("nm", mask, n=2, m=4) is None else None
    if isinstance(pattern, Block) and fits("block", mask, bh=pattern.h, bw=pattern.w) is None:
        return "bsr", (pattern.h, pattern.w)
    return None


def compile(model: nn.Module, *, formats: str | Mapping[str, str] = "auto", batch: int = 4096) -> nn.Module:
    """Swap masked CUDA `nn.Linear` layers for `CudaSparseLinear`, in place; returns `model`.

    Args:
        model: a masked model already on a CUDA device (2:4 also needs `.half()` / `.bfloat16()`).
        formats: `"auto"` (2:4 for 2:4 masks in half precision, BSR for block masks; kept only
            where measured faster than dense at `batch`), one format for every layer (`"2:4"`,
            `"bsr"`, `"bsr16x16"`, `"dense"`), or `{fqn glob: format}`.
        batch: the number of rows (tokens) the timing of `"auto"` uses.

    Raises:
        ValueError: a format that does not fit a layer's mask or shape, or a layer not on CUDA.
        TypeError: 2:4 asked for on a float32 layer.
    """
    attached = get_masks(model)
    if not attached:
        warnings.warn(
            "sparsetorch.compile: the model has no masks attached; nothing to compile", stacklevel=2
        )
        return model
    patterns, lookup = patterns_of(model), weights_by_fqn(model)
    plan: list[tuple[str, CudaSparseLinear]] = []
    for fqn, mask in attached.items():
        module, name = lookup[fqn]
        if not isinstance(module, nn.Linear) or name != "weight":
            continue
        weight = module.weight.detach()
        if weight.device.type != "cuda":
            raise ValueError(
                f"sparsetorch.kernels.cuda.compile needs CUDA layers; {fqn!r} is on {weight.device}"
            )
        spec, pattern = format_for(formats, fqn), patterns.get(fqn)
        layout = _auto_layout(weight, mask, pattern) if spec == "auto" else _layout_for(spec, pattern)
        if layout is None:
            continue
        sparse = CudaSparseLinear.from_linear(
            weight, mask, module.bias, layout=layout[0], block=layout[1], fqn=fqn, pattern=str(pattern or "")
        )
        if spec == "auto":
            sparse.timing = time_layer(weight, module.bias, sparse, batch)
            if sparse.timing.speedup <= 1.0:
                continue
        plan.append((fqn.rpartition(".")[0], sparse))
    # Swap only after every layer was built and checked: an error leaves the model as it was.
    for module_fqn, sparse in plan:
        set_submodule(model, module_fqn, sparse)
    return model


def cuda_layers(model: nn.Module) -> dict[str, CudaSparseLinear]:
    """`{module fqn: CudaSparseLinear}` of a CUDA-compiled model."""
    return {n: m for n, m in model.named_modules() if isinstance(m, CudaSparseLinear)}


def decompile(model: nn.Module) -> nn.Module:
    """Replace every `CudaSparseLinear` by a masked `nn.Linear` on the same device, in place."""
    new_masks: dict[str, Tensor] = {}
    new_patterns: dict[str, str] = {}
    for fqn, sparse in cuda_layers(model).items():
        weight = sparse.dense_weight()
        linear = nn.Linear(
            sparse.in_features,
            sparse.out_features,
            bias=sparse.bias is not None,
            device=weight.device,
            dtype=weight.dtype,
        )
        with torch.no_grad():
            linear.weight.copy_(weight)
            if sparse.bias is not None:
                linear.bias.copy_(sparse.bias)
        set_submodule(model, fqn, linear)
        new_masks[f"{fqn}.weight"] = sparse.mask
        if sparse.pattern:
            new_patterns[f"{fqn}.weight"] = sparse.pattern
    if new_masks:
        attach(model, new_masks, patterns=new_patterns)
    return model
