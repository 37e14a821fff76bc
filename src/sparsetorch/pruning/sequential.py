"""Run a one-shot pruner over a model's targets: directly, or block by block on calibration data.

Transactional: target weights are snapshotted before they are first written, and restored if
anything raises, so a failed run leaves the model exactly as it was. Masks are attached by the
caller, all at once, only after every layer succeeded.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize

from sparsetorch.patterns import Pattern
from sparsetorch.pruning.base import LayerPrune, OneShotPruner
from sparsetorch.pruning.calibration import (
    LayerStats,
    as_matrix,
    block_output,
    capture_block_inputs,
    find_blocks,
    gather_stats,
    reconstruction_error,
    run_model,
)


@dataclass(frozen=True)
class LayerOutcome:
    """One pruned layer: achieved sparsity, relative reconstruction error ||WX-W'X||/||WX|| and time."""

    fqn: str
    sparsity: float
    error: float | None
    seconds: float


@dataclass(frozen=True)
class Outcome:
    masks: dict[str, Tensor]  # (out, in) matrices
    layers: list[LayerOutcome]
    calibration_bytes: int  # peak bytes of block activations + statistics held at once


def _module(model: nn.Module, fqn: str) -> nn.Module:
    owner, _, name = fqn.rpartition(".")
    if name != "weight":
        raise ValueError(f"{fqn}: one-shot pruning targets layer weights (*.weight), not {name!r}")
    module = model.get_submodule(owner)
    if not isinstance(module, nn.Linear | nn.Conv2d):
        raise ValueError(
            f"{fqn}: one-shot pruning supports Linear and Conv2d weights, not {type(module).__name__}"
        )
    return module


def _storage(module: nn.Module) -> Tensor:
    """The tensor that holds the weight: the parametrization's original when masked."""
    if parametrize.is_parametrized(module, "weight"):
        return module.parametrizations.weight.original
    return module.weight


@contextmanager
def _transaction(modules: dict[str, nn.Module]):
    """Snapshot weights on first write; restore all of them if the body raises."""
    saved: dict[str, Tensor] = {}

    def write(fqn: str, weight: Tensor) -> None:
        storage = _storage(modules[fqn])
        saved.setdefault(fqn, storage.detach().clone())
        storage.data.copy_(weight.reshape(storage.shape).to(storage.dtype))

    try:
        yield write
    except BaseException:
        with torch.no_grad():
            for fqn, tensor in saved.items():
                _storage(modules[fqn]).data.copy_(tensor)
        raise


@contextmanager
def _eval_mode(model: nn.Module):
    modes = {m: m.training for m in model.modules()}
    model.eval()
    try:
        yield
    finally:
        for m, mode in modes.items():
            m.training = mode


class _Runner:
    """Prunes layers one at a time with a fixed pruner, pattern and per-layer sparsity."""

    def __init__(
        self, pruner: OneShotPruner, pattern: Pattern, sparsities: dict[str, float], seed: int, write
    ):
        self.pruner, self.pattern, self.sparsities, self.write = pruner, pattern, sparsities, write
        self.generator = torch.Generator().manual_seed(seed)
        self.masks: dict[str, Tensor] = {}
        self.layers: list[LayerOutcome] = []

    def __call__(self, fqn: str, module: nn.Module, stats: LayerStats | None) -> None:
        start = time.perf_counter()
        weight = as_matrix(module.weight.detach()).float()
        result: LayerPrune = self.pruner.prune_layer(
            weight,
            stats,
            pattern=self.pattern,
            sparsity=self.sparsities[fqn],
            shape=module.weight.shape,
            name=fqn,
            generator=self.generator,
        )
        mask = result.mask.to(torch.bool)
        new = torch.where(mask, result.weight, 0.0)
        if not torch.isfinite(new).all():
            raise ValueError(f"{fqn}: {self.pruner.name} produced non-finite weights")
        error = (
            reconstruction_error(weight, new, stats) if stats is not None and stats.xtx is not None else None
        )
        self.write(fqn, new)  # `weight` may alias the storage: the error is computed first
        self.masks[fqn] = mask
        sparsity = 1.0 - mask.float().mean().item()
        self.layers.append(LayerOutcome(fqn, sparsity, error, time.perf_counter() - start))


def run_pruner(
    model: nn.Module,
    pruner: OneShotPruner,
    fqns: list[str],
    *,
    pattern: Pattern,
    sparsities: dict[str, float],
    batches: list[Any] | None,
    seed: int = 0,
    errors: bool = True,
    progress: bool = False,
) -> Outcome:
    """Prune every target with `pruner`; block-sequentially when `batches` are given."""
    modules = {fqn: _module(model, fqn) for fqn in fqns}
    for fqn, module in modules.items():
        if not torch.isfinite(module.weight).all():
            raise ValueError(f"{fqn}: weight contains NaN or Inf")
    with torch.no_grad(), _eval_mode(model), _transaction(modules) as write:
        runner = _Runner(pruner, pattern, sparsities, seed, write)
        if batches is None:
            for fqn, module in modules.items():
                runner(fqn, module, None)
            return Outcome(runner.masks, runner.layers, 0)
        xtx = errors or pruner.needs_xtx
        peak = _sequential(model, modules, batches, runner, xtx=xtx, progress=progress)
        return Outcome(runner.masks, runner.layers, peak)


def _sequential(
    model: nn.Module,
    modules: dict[str, nn.Module],
    batches: list[Any],
    runner: _Runner,
    *,
    xtx: bool,
    progress: bool,
) -> int:
    from rich.progress import Progress

    _, blocks = find_blocks(model, modules)
    block_of = {}
    for i, block in enumerate(blocks):
        inside = {id(m) for m in block.modules()}
        block_of.update({fqn: i for fqn, m in modules.items() if id(m) in inside})
    rest = [fqn for fqn in modules if fqn not in block_of]
    last = max(block_of.values(), default=-1)
    peak = 0
    with Progress(disable=not progress, transient=True) as bar:
        task = bar.add_task("pruning blocks", total=last + 1 + bool(rest))
        if last >= 0:
            inputs = capture_block_inputs(model, blocks[0], batches)
            for i in range(last + 1):
                block, targets = blocks[i], {f: modules[f] for f in modules if block_of.get(f) == i}
                if targets:
                    stats = gather_stats(targets, (block_output(block, inp) for inp in inputs), xtx=xtx)
                    unique = {id(s): s for s in stats.values()}.values()
                    held = 2 * sum(inp.nbytes() for inp in inputs) + sum(s.nbytes() for s in unique)
                    peak = max(peak, held)
                    for fqn, module in targets.items():
                        runner(fqn, module, stats.pop(fqn))
                if i < last:  # the pruned block's outputs are the next block's inputs
                    inputs = [inp.with_hidden(block_output(block, inp)) for inp in inputs]
                bar.advance(task)
        if rest:  # targets outside the block list, on the whole (already pruned) model
            targets = {f: modules[f] for f in rest}
            stats = gather_stats(
                targets, (run_model(model, b, index=i) for i, b in enumerate(batches)), xtx=xtx
            )
            peak = max(peak, sum(s.nbytes() for s in stats.values()))
            for fqn, module in targets.items():
                runner(fqn, module, stats.pop(fqn))
            bar.advance(task)
    return peak
