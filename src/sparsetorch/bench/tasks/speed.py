"""`kernel-speed`: the measured speed of the sparse execution path on one layer.

A layer of the budget's shape (default 1536 x 384, MiniLM's FFN) is initialised from the seed and
pruned by magnitude to the run's sparsity and pattern. The "methods" here are execution engines,
each one an `nn.Module` called the same way, `module(x)` on a `(batch, in)` input under
`torch.no_grad()`, returning `(batch, out)` with the bias added:

- `sparsetorch`: the `SparseLinear` that `sparsetorch.kernels.compile` (with `formats="auto"`,
  chosen in this run) puts in place of the masked layer, called by itself (not inside a container);
- `torch-csr`: a small module whose forward is `torch.sparse.mm` on a CSR tensor with int32
  indices (the best stock CPU path) plus the bias;
- `dense`: an `nn.Linear` holding the masked weight (`F.linear`).

Why one kind of call: until task version 2, `sparsetorch` was timed through a module call (an
`nn.Sequential` around the layer) while `torch-csr` was a bare `torch.sparse.mm` on a pre-transposed
input (no transposes, no bias) and `dense` a bare `F.linear`, so each engine paid a different
Python overhead, which at batch 1 is a large part of a call. Now every engine pays one module call.

Each run times its engine and the dense `nn.Linear` in the same process (interleaved rounds,
median of repetitions at `batch` rows, hot) and reports `speedup = dense_ms / ms`. The task is
`exclusive`: the runner measures it alone, after the parallel pool, so other runs do not share
the cores.
"""

from __future__ import annotations

import copy
import warnings
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from sparsetorch.bench.tasks.base import TASKS, RunSpec, Task
from sparsetorch.registry import Registry

ENGINES: Registry[str] = Registry("kernel-speed engine")
for _name in ("sparsetorch", "torch-csr", "dense"):
    ENGINES.register(_name, _name)


class TorchCSRLinear(nn.Module):
    """`y = x W^T + b` through `torch.sparse.mm` on W as a CSR tensor with int32 indices."""

    def __init__(self, weight: Tensor, bias: Tensor | None) -> None:
        super().__init__()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # torch's "beta state" notice
            csr = weight.detach().to_sparse_csr()
            self.csr = torch.sparse_csr_tensor(
                csr.crow_indices().int(), csr.col_indices().int(), csr.values(), csr.shape
            )
        self.bias = None if bias is None else bias.detach().clone()

    def forward(self, x: Tensor) -> Tensor:
        y = torch.sparse.mm(self.csr, x.t()).t()
        return y if self.bias is None else y + self.bias


def _linear(weight: Tensor, bias: Tensor | None) -> nn.Linear:
    """An `nn.Linear` holding copies of `weight` and `bias`."""
    out, inp = weight.shape
    layer = nn.Linear(inp, out, bias=bias is not None)
    with torch.no_grad():
        layer.weight.copy_(weight)
        if bias is not None:
            layer.bias.copy_(bias)
    return layer


class KernelSpeed(Task):
    name = "kernel-speed"
    version = 2  # 2: every engine timed as a module call, module(x) (was: bare ops for torch-csr, dense)
    kind = "speed"
    metric = "speedup"
    description = "one masked Linear layer: speed of an execution engine (a module call) vs dense nn.Linear"
    default_budget: ClassVar[dict[str, Any]] = {"shape": "1536x384", "batch": 1, "budget_s": 0.3}
    exclusive = True

    def method_names(self) -> Registry:
        return ENGINES

    @torch.no_grad()  # inference: no autograd records in the timed calls
    def run(self, spec: RunSpec) -> dict[str, Any]:
        from sparsetorch.kernels import compile, sparse_layers
        from sparsetorch.kernels.timing import time_interleaved
        from sparsetorch.masks import attach
        from sparsetorch.patterns import select

        b = self.budget(spec)
        out, inp = (int(v) for v in str(b["shape"]).lower().split("x"))
        gen = torch.Generator().manual_seed(spec.seed)
        layer = nn.Linear(inp, out)
        layer.weight.copy_(torch.randn(out, inp, generator=gen) / inp**0.5)
        x = torch.randn(int(b["batch"]), inp, generator=gen)
        level = 0.0 if spec.sparsity is None and spec.pattern == "unstructured" else spec.sparsity
        mask = select(layer.weight.abs(), spec.pattern, level)
        masked = layer.weight.detach() * mask
        dense = _linear(masked, layer.bias)  # the baseline: F.linear on the masked weight
        if spec.method == "dense":
            engine, fmt = _linear(masked, layer.bias), "dense"
        elif spec.method == "torch-csr":
            engine, fmt = TorchCSRLinear(masked, layer.bias), "torch-csr32"
        else:
            holder = nn.Sequential(copy.deepcopy(layer))
            attach(holder, {"0.weight": mask}, patterns={"0.weight": spec.pattern})
            compile(holder, batch=int(b["batch"]), use_cache=False)  # choose in this run, on this load
            (engine,) = sparse_layers(holder).values()  # the SparseLinear itself, called directly
            fmt = engine.format_name
        for module in (dense, engine):
            module.eval()
        # dense and the engine in interleaved rounds: the machine's drift hits both alike
        calls = {"dense": lambda: dense(x), "engine": lambda: engine(x)}
        ms_of = time_interleaved(calls, budget_s=float(b["budget_s"]), max_reps=200)
        dense_ms, ms = ms_of["dense"], ms_of["engine"]
        return {
            "speedup": dense_ms / ms,
            "ms": ms,
            "dense_ms": dense_ms,
            "format": fmt,
            "achieved_sparsity": 1.0 - float(mask.float().mean()),
            "threads": torch.get_num_threads(),
        }


TASKS.register("kernel-speed", KernelSpeed())
