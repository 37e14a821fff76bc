"""Measured per-layer format choice, cached on disk.

Why measure: which format wins depends on the layer shape, the batch size, the sparsity, the
CPU and the thread count, and the differences are large (a format can be 8x faster than dense at
batch 1 and 2x slower at batch 64). So `compile` times each candidate format against dense
`F.linear` on the layer itself, and keeps dense when no candidate wins.

Each candidate is timed at every batch size the model will run at (rows of the 2-D input), not
at a stand-in for its range: LeNet's layers at 32 rows had been timed at 64. Results are cached as
JSON in `sparsetorch.data.cache_dir() / "autotune" / "<cpu>.json"`, one entry per key
`shape | batch rows | sparsity bucket | pattern | threads | backend (with the kernel table) | version`, so the same layer
shape is measured once per machine. A corrupt cache file is ignored (and
rewritten), never an error.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from sparsetorch._io import atomic_path
from sparsetorch.kernels import cpu, ops
from sparsetorch.kernels.formats import Format
from sparsetorch.kernels.timing import time_alternating, time_interleaved
from sparsetorch.kernels.validate import build

KERNEL_VERSION = "4"  # bump when kernels or the way they are timed change enough to invalidate measurements
MARGIN = 1.05  # a sparse format must beat dense by 5 % at every batch size (timing noise)


@dataclass(frozen=True)
class Candidate:
    """A format name with its build options, e.g. `Candidate("nm", (("m", 4), ("n", 2)))`."""

    fmt: str
    options: tuple[tuple[str, int], ...] = ()

    @property
    def label(self) -> str:
        opts = dict(self.options)
        if self.fmt == "nm":
            return f"nm{opts.get('n', 2)}:{opts.get('m', 4)}"
        if self.fmt == "block":
            return f"block{opts.get('bh', 4)}x{opts.get('bw', 16)}"
        if self.fmt == "csr" and "index_bits" in opts:
            return f"csr{opts['index_bits']}"
        return self.fmt

    def build(self, weight: Tensor, mask: Tensor) -> Format:
        return build(self.fmt, weight, mask, **dict(self.options))


DENSE = Candidate("dense")


def sparsity_bucket(sparsity: float) -> str:
    """5 % buckets below 90 % sparsity, 1 % buckets above (where speed changes fast)."""
    pct = 100 * sparsity
    step = 5 if pct < 90 else 1
    return f"{int(math.floor(pct / step + 1e-9) * step)}"


def cache_path() -> Path:
    from sparsetorch.data import cache_dir

    slug = re.sub(r"[^A-Za-z0-9]+", "-", cpu.cpu_name()).strip("-").lower() or "cpu"
    return cache_dir() / "autotune" / f"{slug}.json"


def key(shape: tuple[int, int], batch: int, sparsity: float, pattern: str, threads: int, backend: str) -> str:
    return f"{shape[0]}x{shape[1]}|b{batch}|s{sparsity_bucket(sparsity)}|{pattern}|t{threads}|{backend}|v{KERNEL_VERSION}"


def _read(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
        return data if isinstance(data, dict) and isinstance(data.get("entries"), dict) else {"entries": {}}
    except (OSError, ValueError):
        return {"entries": {}}


def _write(path: Path, data: dict) -> None:
    with atomic_path(path) as tmp, open(tmp, "w") as f:
        json.dump(data, f, indent=1, sort_keys=True)


@dataclass(frozen=True)
class Choice:
    """The outcome for one layer: the chosen candidate and the timings behind it."""

    candidate: Candidate
    ms: dict[int, dict[str, float]] = field(default_factory=dict)  # batch rows -> label -> ms
    cached: bool = False

    def speedup(self, batch: int) -> float | None:
        t = self.ms.get(batch, {})
        return t["dense"] / t[self.candidate.label] if "dense" in t and self.candidate.label in t else None


def measure(
    weight: Tensor, candidates: Sequence[tuple[Candidate, Format]], batch: int, threads: int
) -> dict[str, float]:
    """ms per call of dense `F.linear` and of each built candidate at one batch size, as each costs
    a model with torch ops before and after the layer (`timing.time_alternating`): a candidate is
    charged for what it does to the torch op after it (caches, the thread pool's state). (Timed one
    after the other, dense, first, paid the process's warm-up.)"""
    x = torch.randn(batch, weight.shape[1], generator=torch.Generator().manual_seed(0))
    fns = {"dense": lambda: F.linear(x, weight)}
    for cand, fmt in candidates:
        if cand.fmt != "dense":
            plan = cpu.Plan(fmt, cpu.backend())  # built once, as `SparseLinear` keeps it
            fns[cand.label] = lambda plan=plan: plan(x, threads=threads)
    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with torch.no_grad():
            return time_alternating(fns, base="dense")
    finally:
        torch.set_num_threads(old)


def choose(
    weight: Tensor,
    mask: Tensor,
    candidates: Sequence[Candidate],
    *,
    batches: Sequence[int] = (1, 64),
    threads: int | None = None,
    pattern: str = "unstructured",
    use_cache: bool = True,
) -> Choice:
    """Pick the candidate with the best geometric-mean speedup over `batches` that beats dense by
    `MARGIN` at every one of them; dense if none does. Measurements are cached per batch size."""
    threads = threads or torch.get_num_threads()
    backend = cpu.backend()
    if backend == "cpp":  # the kernel table too: AVX-512 and portable kernels differ by up to 20x
        backend = f"cpp-{ops.isa()}"
    shape = (int(weight.shape[0]), int(weight.shape[1]))
    sparsity = 1.0 - float(mask.float().mean()) if mask.numel() else 0.0
    sizes = sorted({int(b) for b in batches})
    if not sizes or sizes[0] < 1:
        raise ValueError(f"batch sizes must be >= 1, got {list(batches)}")
    path = cache_path()
    data = _read(path) if use_cache else {"entries": {}}
    dense_weight = torch.where(mask, weight, 0.0).contiguous()
    built: list[tuple[Candidate, Format]] | None = None
    ms: dict[int, dict[str, float]] = {}
    cached = True
    for size in sizes:
        k = key(shape, size, sparsity, pattern, threads, backend)
        entry = data["entries"].get(k)
        if entry is None or not all(c.label in entry for c in candidates if c.fmt != "dense"):
            cached = False
            if built is None:
                built = [(c, c.build(weight, mask)) for c in candidates]
            entry = {**(entry or {}), **measure(dense_weight, built, size, threads)}
            data["entries"][k] = entry
        ms[size] = {label: float(v) for label, v in entry.items()}
    if use_cache and not cached:
        _write(path, data)

    best, best_score = DENSE, 0.0
    for cand in candidates:
        if cand.fmt == "dense":
            continue
        ratios = [ms[b]["dense"] / ms[b][cand.label] for b in sizes]
        if min(ratios) < MARGIN:
            continue
        score = math.exp(sum(math.log(x) for x in ratios) / len(ratios))
        if score > best_score:
            best, best_score = cand, score
    return Choice(candidate=best, ms=ms, cached=cached)


@dataclass
class ModelCheck:
    """The whole-model check of `compile(..., example_inputs=...)`: ms of the model as compiled and
    with every sparse layer dense, and the layers turned back to dense to get there."""

    sparse_ms: float
    dense_ms: float
    reverted: list[str] = field(default_factory=list)

    @property
    def speedup(self) -> float:
        return self.dense_ms / self.sparse_ms


def check_model(
    model: torch.nn.Module,
    dense_model: torch.nn.Module,
    layers: dict[str, tuple[torch.nn.Module, torch.nn.Module]],
    example_inputs: tuple,
    *,
    set_layer,
    max_rounds: int = 8,
) -> ModelCheck:
    """Time the whole compiled `model` against `dense_model` (the same with every layer dense),
    interleaved, and turn layers of `model` back to dense (the smallest measured per-layer speedup
    first, in growing steps) until it beats dense by `MARGIN` or nothing sparse is left.

    Why the whole model: a layer timed alone can win while the model loses (what it does to the
    ops around it: caches, threads, fusion). `layers` maps a module FQN to its (sparse, dense)
    modules; `set_layer(model, fqn, module)` swaps one in. Runs under `torch.no_grad()`.
    """
    order = sorted(
        (n for n, (sp, _) in layers.items() if sp.format_name != "dense"), key=lambda n: _score(layers[n][0])
    )
    reverted: list[str] = []
    with torch.no_grad():
        for round_ in range(max_rounds + 1):
            ms = time_interleaved(
                {"dense": lambda: dense_model(*example_inputs), "sparse": lambda: model(*example_inputs)}
            )
            if ms["sparse"] * MARGIN <= ms["dense"] or len(reverted) == len(order) or round_ == max_rounds:
                break
            step = max(1, len(order) // max_rounds) * (round_ + 1)
            for name in order[len(reverted) : len(reverted) + step]:
                set_layer(model, name, layers[name][1])
                reverted.append(name)
        if ms["sparse"] * MARGIN > ms["dense"]:  # still not faster: dense everywhere
            for name in order[len(reverted) :]:
                set_layer(model, name, layers[name][1])
                reverted.append(name)
    return ModelCheck(sparse_ms=ms["sparse"], dense_ms=ms["dense"], reverted=reverted)


def _score(layer: torch.nn.Module) -> float:
    """A layer's measured geometric-mean speedup over dense (1 when not autotuned)."""
    choice = getattr(layer, "autotune", None)
    ratios = [r for b in (choice.ms if choice else {}) if (r := choice.speedup(b))]
    return math.exp(sum(math.log(r) for r in ratios) / len(ratios)) if ratios else 1.0
