"""What a user sees after any operation: per-layer and total sparsity, FLOPs, bytes, speedup bounds.

`report(model, example_input=None)` inspects the target weights (the masked ones, or the default
targets when nothing is masked) and returns a `SparsityReport`:

- per layer: FQN, shape, pattern, params, nonzeros, sparsity and, given an example input, dense
  and effective FLOPs (a multiply-add counts 2; effective = dense x density, what a kernel that
  skips zeros would do);
- storage of the targets in four formats (values in the weight's dtype):
  dense `numel * b`; CSR `nnz * (b + 4) + (rows + 1) * 4` (int32 column indices and row
  pointers over the `(out, -1)` view); bitmask `ceil(numel / 8) + nnz * b`; N:M-packed
  `numel * n/m * b + numel * n/m * ceil(log2 m) / 8` (only for layers masked under `NM(n, m)`);
- theoretical speedups: FLOPs `dense / effective`, and bytes `dense / smallest format` (the bound
  for a memory-bound batch-1 matrix-vector product).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from sparsetorch.masks import PRUNABLE, get_masks, named_weights, patterns_of, resolve_targets
from sparsetorch.patterns import NM

FORMATS = ("dense", "csr", "bitmask", "nm")


@dataclass(frozen=True)
class LayerRecord:
    """Accounting for one target weight."""

    fqn: str
    shape: tuple[int, ...]
    pattern: str
    params: int
    nonzeros: int
    bytes: dict[str, int | None]
    dense_flops: int | None = None
    effective_flops: int | None = None

    @property
    def sparsity(self) -> float:
        return 1.0 - self.nonzeros / self.params if self.params else 0.0


@dataclass(frozen=True)
class SparsityReport:
    """Per-layer and total accounting of a model's target weights."""

    layers: list[LayerRecord]
    model_params: int
    notes: list[str] = field(default_factory=list)

    @property
    def params(self) -> int:
        return sum(r.params for r in self.layers)

    @property
    def nonzeros(self) -> int:
        return sum(r.nonzeros for r in self.layers)

    @property
    def sparsity(self) -> float:
        """Overall fraction of zeros over the target weights."""
        return 1.0 - self.nonzeros / self.params if self.params else 0.0

    @property
    def bytes(self) -> dict[str, int | None]:
        """Total bytes of the targets per format; a format is None unless every layer supports it."""
        out: dict[str, int | None] = {}
        for fmt in FORMATS:
            values = [r.bytes[fmt] for r in self.layers]
            out[fmt] = None if not values or any(v is None for v in values) else sum(values)
        return out

    @property
    def dense_flops(self) -> int | None:
        values = [r.dense_flops for r in self.layers]
        return None if not values or None in values else sum(values)

    @property
    def effective_flops(self) -> int | None:
        values = [r.effective_flops for r in self.layers]
        return None if not values or None in values else sum(values)

    @property
    def flop_speedup(self) -> float | None:
        """Theoretical speedup from skipped multiply-adds, dense / effective FLOPs."""
        if self.dense_flops is None:
            return None
        return self.dense_flops / max(self.effective_flops or 0, 1)

    @property
    def memory_speedup(self) -> float:
        """Theoretical speedup of a bandwidth-bound product: dense bytes / smallest format."""
        dense = sum(r.bytes["dense"] or 0 for r in self.layers)
        return dense / max(sum(_best(r.bytes) for r in self.layers), 1)

    def to_dict(self) -> dict[str, Any]:
        return {
            "sparsity": self.sparsity,
            "params": self.params,
            "nonzeros": self.nonzeros,
            "model_params": self.model_params,
            "bytes": self.bytes,
            "dense_flops": self.dense_flops,
            "effective_flops": self.effective_flops,
            "flop_speedup": self.flop_speedup,
            "memory_speedup": self.memory_speedup,
            "layers": [{**asdict(r), "sparsity": r.sparsity} for r in self.layers],
            "notes": self.notes,
        }

    def to_json(self, **kwargs: Any) -> str:
        return json.dumps(self.to_dict(), **kwargs)

    def table(self, title: str | None = None):
        """A `rich.table.Table`: one row per layer, a total row, the speedup bounds as caption.

        The pattern gets a column only when layers differ; otherwise it joins the caption.
        """
        from rich.table import Table

        patterns = sorted({r.pattern for r in self.layers})
        show_pattern = len(patterns) > 1
        columns = [
            "layer",
            "shape",
            *(["pattern"] * show_pattern),
            "params",
            "nonzeros",
            "sparsity",
            "smallest",
        ]
        if self.dense_flops is not None:
            columns.append("MFLOP eff/dense")
        table = Table(title=title, header_style="bold")
        for name in columns:
            left = name in ("layer", "shape", "pattern")
            table.add_column(name, justify="left" if left else "right", no_wrap=name == "layer")

        def row(name: str, shape: str, pattern: str, records: list[LayerRecord]) -> list[str]:
            params, nnz = sum(r.params for r in records), sum(r.nonzeros for r in records)
            cells = [name, shape, *([pattern] * show_pattern), f"{params:,}", f"{nnz:,}"]
            cells += [f"{1 - nnz / max(params, 1):.1%}", _fmt_bytes(sum(_best(r.bytes) for r in records))]
            if self.dense_flops is not None:
                dense, eff = (
                    sum(r.dense_flops or 0 for r in records),
                    sum(r.effective_flops or 0 for r in records),
                )
                cells.append(f"{eff / 1e6:.2f} / {dense / 1e6:.2f}")
            return cells

        for r in self.layers:
            table.add_row(*row(r.fqn, "x".join(map(str, r.shape)), r.pattern, [r]))
        table.add_section()
        table.add_row(*row("total", "", "", self.layers), style="bold")
        speed = f"theoretical speedup: bytes {self.memory_speedup:.2f}x"
        if self.flop_speedup is not None:
            speed += f", FLOPs {self.flop_speedup:.2f}x"
        table.caption = speed if show_pattern or not patterns else f"pattern {patterns[0]} · {speed}"
        return table

    def __rich__(self):
        return self.table()


def _best(sizes: dict[str, int | None]) -> int:
    return min(v for v in sizes.values() if v is not None)


def _fmt_bytes(value: int) -> str:
    for unit, scale in (("MB", 1e6), ("kB", 1e3)):
        if value >= scale:
            return f"{value / scale:.1f} {unit}"
    return f"{value} B"


def storage_bytes(weight: Tensor, pattern: object = None) -> dict[str, int | None]:
    """Bytes of `weight` in dense, CSR, bitmask and (under an N:M pattern) N:M-packed form."""
    numel, b = weight.numel(), weight.element_size()
    nnz = int(torch.count_nonzero(weight))
    rows = weight.shape[0] if weight.dim() >= 1 else 1
    sizes: dict[str, int | None] = {
        "dense": numel * b,
        "csr": nnz * (b + 4) + (rows + 1) * 4,
        "bitmask": math.ceil(numel / 8) + nnz * b,
        "nm": None,
    }
    if isinstance(pattern, NM):
        kept = numel * pattern.n // pattern.m
        sizes["nm"] = kept * b + math.ceil(kept * math.ceil(math.log2(pattern.m)) / 8)
    return sizes


def _flops(model: nn.Module, example_input: Any, fqns: list[str]) -> dict[str, int]:
    """Dense FLOPs (2 per multiply-add) of each target's module on `example_input`."""
    modules = {fqn.rpartition(".")[0]: fqn for fqn in fqns}
    flops: dict[str, int] = {}
    hooks = []

    def hook_for(fqn: str):
        def hook(module: nn.Module, args: tuple, output: Tensor) -> None:
            if isinstance(module, nn.Linear):
                flops[fqn] = flops.get(fqn, 0) + 2 * module.in_features * output.numel()
            elif isinstance(module, nn.modules.conv._ConvNd):
                per_out = module.in_channels // module.groups * math.prod(module.kernel_size)
                flops[fqn] = flops.get(fqn, 0) + 2 * per_out * output.numel()

        return hook

    for name, module in model.named_modules():
        if name in modules and isinstance(module, PRUNABLE):
            hooks.append(module.register_forward_hook(hook_for(modules[name])))
    try:
        with torch.no_grad():
            if isinstance(example_input, dict):
                model(**example_input)
            elif isinstance(example_input, tuple | list):
                model(*example_input)
            else:
                model(example_input)
    finally:
        for h in hooks:
            h.remove()
    return flops


def report(model: nn.Module, example_input: Any = None) -> SparsityReport:
    """Account for the model's target weights (masked ones, else the default targets).

    Args:
        model: any `nn.Module`, masked or not.
        example_input: optional input (tensor, tuple of args, or dict of kwargs) for one forward
            pass that measures FLOPs per layer.
    """
    attached = get_masks(model)
    patterns = patterns_of(model)
    fqns = list(attached) if attached else resolve_targets(model)
    weights = {fqn: getattr(module, name) for fqn, module, name in named_weights(model)}
    flops = _flops(model, example_input, fqns) if example_input is not None else {}
    layers = []
    for fqn in fqns:
        weight = weights[fqn].detach()
        nnz = int(torch.count_nonzero(weight))
        pattern = patterns.get(fqn)
        label = (
            str(pattern) if pattern is not None else ("dense" if nnz == weight.numel() else "unstructured")
        )
        dense = flops.get(fqn)
        layers.append(
            LayerRecord(
                fqn=fqn,
                shape=tuple(weight.shape),
                pattern=label,
                params=weight.numel(),
                nonzeros=nnz,
                bytes=storage_bytes(weight, pattern),
                dense_flops=dense,
                effective_flops=None if dense is None else round(dense * nnz / max(weight.numel(), 1)),
            )
        )
    notes = [] if attached else ["no masks attached: showing the default targets"]
    model_params = sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())
    return SparsityReport(layers=layers, model_params=model_params, notes=notes)
