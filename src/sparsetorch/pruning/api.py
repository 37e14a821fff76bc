"""`prune(model, method, sparsity, pattern, calibration=...)`: one-shot pruning of a model in place."""

from __future__ import annotations

import contextlib
import operator
import resource
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from sparsetorch import allocation
from sparsetorch.accounting import SparsityReport, report
from sparsetorch.masks import attach, named_weights, resolve_targets
from sparsetorch.patterns import (
    NM,
    Block,
    Channel,
    Pattern,
    Unstructured,
    check,
    n_pruned,
    parse_pattern,
    select,
)
from sparsetorch.pruning.base import PRUNERS, OneShotPruner
from sparsetorch.pruning.calibration import as_matrix, from_matrix
from sparsetorch.pruning.calibration_data import calibration_batches
from sparsetorch.pruning.sequential import LayerOutcome, Outcome, run_pruner


@dataclass(frozen=True)
class PruneReport:
    """What `prune` did: the method and config, per-layer error and time, the targets' accounting."""

    method: str
    config: dict[str, Any]
    pattern: str
    distribution: str
    target_sparsity: float
    seconds: float
    layers: list[LayerOutcome]
    calibration_bytes: int
    peak_rss_bytes: int
    report: SparsityReport

    @property
    def sparsity(self) -> float:
        return self.report.sparsity

    @property
    def mean_error(self) -> float | None:
        errors = [r.error for r in self.layers if r.error is not None]
        return sum(errors) / len(errors) if errors else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "config": self.config,
            "pattern": self.pattern,
            "distribution": self.distribution,
            "target_sparsity": self.target_sparsity,
            "seconds": self.seconds,
            "mean_error": self.mean_error,
            "calibration_bytes": self.calibration_bytes,
            "peak_rss_bytes": self.peak_rss_bytes,
            "pruning": [asdict(r) for r in self.layers],
            **self.report.to_dict(),
        }

    def __rich__(self):
        from rich.table import Table

        title = f"{self.method} · {self.pattern} · {self.distribution} · target {self.target_sparsity:.0%}"
        table = Table(title=title, header_style="bold")
        for name in ("layer", "shape", "sparsity", "rel. error ‖WX−W'X‖/‖WX‖", "seconds"):
            table.add_column(
                name, justify="left" if name in ("layer", "shape") else "right", no_wrap=name == "layer"
            )
        shapes = {r.fqn: r.shape for r in self.report.layers}
        for r in self.layers:
            error = "-" if r.error is None else f"{r.error:.4f}"
            shape = "x".join(map(str, shapes.get(r.fqn, ())))
            table.add_row(r.fqn, shape, f"{r.sparsity:.1%}", error, f"{r.seconds:.3f}")
        table.add_section()
        mean = "-" if self.mean_error is None else f"{self.mean_error:.4f} (mean)"
        table.add_row("total", "", f"{self.sparsity:.1%}", mean, f"{self.seconds:.2f}", style="bold")
        table.caption = (
            f"calibration memory {self.calibration_bytes / 1e6:.1f} MB (one block's activations + statistics) · "
            f"process peak RSS {self.peak_rss_bytes / 1e6:.0f} MB · "
            f"theoretical speedup: bytes {self.report.memory_speedup:.2f}x"
        )
        return table


def _layer_sparsities(
    pruner: OneShotPruner,
    shapes: dict[str, torch.Size],
    pattern: Pattern,
    sparsity: float,
    distribution: str,
    calibrated: bool,
) -> dict[str, float]:
    if distribution == "global":
        if calibrated or not pruner.supports_global:
            raise ValueError(
                f"global allocation needs every layer's scores at once; {pruner.name!r} "
                "with calibration prunes block by block: use 'uniform' or 'erk'"
            )
        return {}  # filled from the scores in `_global`
    if not isinstance(pattern, Unstructured) or pruner.group == "row":
        # N:M, blocks, channels and per-row methods count per group: the nominal sparsity each.
        per_layer = dict.fromkeys(shapes, sparsity)
    else:
        per_layer = allocation.ALLOCATIONS.get(distribution)(
            {f: tuple(s) for f, s in shapes.items()}, sparsity
        )
    _check_keeps_some(shapes, pattern, per_layer, pruner.group, sparsity)
    return per_layer


def _keep_groups(shape: torch.Size, pattern: Pattern, group: str) -> tuple[int, str] | None:
    """How many units one comparison group of a weight holds under `pattern`, and their name."""
    if isinstance(pattern, Unstructured):
        numel = shape.numel()
        return (numel // shape[0], "weight in each row") if group == "row" else (numel, "weight")
    if isinstance(pattern, Block):
        return (shape[0] // pattern.h) * (shape[1] // pattern.w), f"{pattern.h}x{pattern.w} block"
    if isinstance(pattern, Channel):
        return shape[pattern.dim], "channel" if pattern.dim == 0 else f"slice along dim {pattern.dim}"
    return None  # N:M keeps n >= 1 of every group by construction


def _check_keeps_some(
    shapes: dict[str, torch.Size], pattern: Pattern, per_layer: dict[str, float], group: str, asked: float
) -> None:
    """Refuse a sparsity that rounds to pruning a whole layer (or every weight of its rows)."""
    for fqn, sparsity in per_layer.items():
        units = _keep_groups(shapes[fqn], pattern, group)
        if units is not None and n_pruned(units[0], sparsity) >= units[0]:
            size, unit = units
            raise ValueError(
                f"sparsity={asked!r} with pattern {pattern} would prune every {unit} of {fqn} "
                f"({size} of them): a pruned layer keeps at least one; lower the sparsity "
                f"(this layer allows at most {(size - 1) / size:.6g})"
            )


def _global(model: nn.Module, pruner: OneShotPruner, fqns: list[str], sparsity: float, seed: int) -> Outcome:
    """Global allocation: one threshold over every layer's scores (no calibration)."""
    weights = {fqn: getattr(module, name) for fqn, module, name in named_weights(model) if fqn in fqns}
    generator = torch.Generator().manual_seed(seed)
    start = time.perf_counter()
    with torch.no_grad():
        scores = {
            f: from_matrix(pruner.scores(as_matrix(w.detach()).float(), None, generator=generator), w.shape)
            for f, w in weights.items()
        }
    per_layer = allocation.global_budget(scores, sparsity)
    _check_keeps_some({f: w.shape for f, w in weights.items()}, Unstructured(), per_layer, "tensor", sparsity)
    masks = {f: as_matrix(select(scores[f], "unstructured", per_layer[f], name=f)) for f in fqns}
    seconds = (time.perf_counter() - start) / len(fqns)
    layers = [LayerOutcome(f, 1.0 - masks[f].float().mean().item(), None, seconds) for f in fqns]
    return Outcome(masks, layers, 0)


def _checked_sparsity(
    pruner: OneShotPruner,
    method: str,
    pattern: Pattern,
    sparsity: float | None,
    distribution: str,
    calibration: Any,
) -> float:
    """The target sparsity (implied by N:M when None), once every argument is known to fit."""
    if isinstance(pattern, NM) and sparsity is None:
        sparsity = pattern.sparsity
    # bool is an int in Python, but `sparsity=False` is a mistake, not 0
    if isinstance(sparsity, bool) or not isinstance(sparsity, int | float) or not 0.0 <= sparsity < 1.0:
        raise ValueError(f"sparsity must be a number in [0, 1), got {sparsity!r}")
    if isinstance(pattern, NM) and abs(sparsity - pattern.sparsity) > 1e-9:
        raise ValueError(f"pattern {pattern} means sparsity {pattern.sparsity:g}, but sparsity={sparsity!r}")
    allocation.ALLOCATIONS.get(distribution)  # unknown names raise with "did you mean"
    if distribution != "uniform" and not isinstance(pattern, Unstructured):
        raise ValueError(
            f"distribution {distribution!r} applies to unstructured sparsity only, not {pattern}"
        )
    if not isinstance(pattern, pruner.patterns):
        kinds = ", ".join(t.__name__ for t in pruner.patterns)
        raise ValueError(f"method {method!r} supports the patterns {kinds}, not {pattern}")
    if pruner.needs_calibration and calibration is None:
        raise ValueError(f"method {method!r} needs calibration data: pass calibration=...")
    return float(sparsity)


def _checked_seed(seed: Any) -> int:
    """`seed` as an int: any integer (not a bool) in the range torch's generators accept."""
    if not isinstance(seed, bool):
        with contextlib.suppress(TypeError):
            seed = operator.index(seed)  # int, numpy and 0-d integer tensors
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an integer, got {seed!r}")
    if not -(2**63) <= seed < 2**64:
        raise ValueError(f"seed must be in [-2**63, 2**64), got {seed!r}")
    return seed


def _globs(label: str, value: Any) -> str | list[str] | None:
    """None, a glob, or a list of globs from any iterable of strings; anything else a TypeError."""
    if value is None or isinstance(value, str):
        return value
    try:
        globs = list(value)
    except TypeError:
        globs = None
    if globs is None or not all(isinstance(g, str) for g in globs):
        raise TypeError(f"{label} must be a glob string or a list of them, got {value!r}")
    return globs


def _target_shapes(
    model: nn.Module,
    pattern: Pattern,
    targets: str | Iterable[str] | None,
    ignore: str | Iterable[str] | None,
) -> tuple[list[str], dict[str, torch.Size]]:
    """The target FQNs and their weight shapes, each checked to tile under `pattern`."""
    targets, ignore = _globs("targets", targets), _globs("ignore", ignore)
    if targets == []:  # None means the default targets; an empty list means none, which is a mistake
        raise ValueError("targets=[] matches nothing: pass targets=None for the default targets")
    fqns = resolve_targets(model, targets, ignore, layers_only=True)
    if not fqns:
        raise ValueError(f"{type(model).__name__} has no target weights to prune")
    shapes = {fqn: getattr(m, name).shape for fqn, m, name in named_weights(model) if fqn in fqns}
    for fqn in fqns:
        check(shapes[fqn], pattern, name=fqn)
    return fqns, shapes


def prune(
    model: nn.Module,
    method: str = "magnitude",
    sparsity: float | None = 0.5,
    pattern: str | Pattern = "unstructured",
    *,
    calibration: Any = None,
    targets: str | Iterable[str] | None = None,
    ignore: str | Iterable[str] | None = None,
    distribution: str = "uniform",
    samples: int = 128,
    seq_len: int = 128,
    batch_size: int = 8,
    seed: int = 0,
    errors: bool = True,
    progress: bool = False,
    **config: Any,
) -> PruneReport:
    """Prune `model` in place with a one-shot method and return what was done.

    Args:
        model: the model; masks are attached to its targets (see `masks.resolve_targets`).
        method: a registered one-shot method (`sparsetorch.list_methods(kind="pruning")`).
        sparsity: fraction of zeros over the targets; implied (may be None) under N:M.
        pattern: `"unstructured"`, `"2:4"`, `"block4x4"`, `"channel"` or a `Pattern`.
        calibration: data for block-sequential calibration: a corpus name (`"stdlib-docstrings"`,
            `"shakespeare"`, `"fashion-mnist"`), a tensor, or an iterable of batches (a
            DataLoader, a list of token-id tensors or kwargs dicts). Required by methods that read
            activations; with any method it adds the per-layer reconstruction error.
        targets: FQN globs of the weights to prune (None: Linear/Conv weights but the head; an
            empty list is refused).
        ignore: FQN globs to leave dense.
        distribution: layer budgets for unstructured patterns: "uniform", "erk" or "global".
        samples, seq_len, batch_size: how a corpus name is cut into calibration batches.
        seed: seeds calibration sampling and random methods.
        errors: with calibration, report each layer's reconstruction error (costs an in x in
            accumulation per layer for methods that do not need it anyway).
        progress: show a progress bar over blocks.
        **config: the method's hyperparameters (its `Config` fields).

    Raises:
        ValueError: bad sparsity (a bool, outside [0, 1), or emptying a layer or its rows), pattern,
            distribution or calibration data; a target the pattern cannot tile; NaN/Inf weights or
            activations, or beyond float32; no targets.
        TypeError: a pattern not a string or `Pattern`; a seed not an integer.
        Whatever is raised, the model is left exactly as it was.
    """
    pruner: OneShotPruner = PRUNERS.get(method)(**config)
    pattern = parse_pattern(pattern)
    sparsity = _checked_sparsity(pruner, method, pattern, sparsity, distribution, calibration)
    seed = _checked_seed(seed)
    start = time.perf_counter()
    fqns, shapes = _target_shapes(model, pattern, targets, ignore)
    batches = None
    # Calibration is only worth its block passes if the method reads it or errors are wanted.
    if calibration is not None and (pruner.needs_calibration or errors):
        batches = calibration_batches(
            calibration, model, samples=samples, seq_len=seq_len, batch_size=batch_size, seed=seed
        )
    per_layer = _layer_sparsities(pruner, shapes, pattern, sparsity, distribution, batches is not None)
    if distribution == "global":
        outcome = _global(model, pruner, fqns, sparsity, seed)
    else:
        run = {"batches": batches, "seed": seed, "errors": errors, "progress": progress}
        outcome = run_pruner(model, pruner, fqns, pattern=pattern, sparsities=per_layer, **run)
    masks = {f: from_matrix(m, shapes[f]) for f, m in outcome.masks.items()}
    attach(model, masks, patterns=dict.fromkeys(fqns, pattern))
    return PruneReport(
        method=method,
        config=asdict(pruner.config),
        pattern=str(pattern),
        distribution=distribution,
        target_sparsity=sparsity,
        seconds=time.perf_counter() - start,
        layers=outcome.layers,
        calibration_bytes=outcome.calibration_bytes,
        peak_rss_bytes=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        report=report(model),
    )
