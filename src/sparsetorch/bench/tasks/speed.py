"""`kernel-speed`: the measured speed of the sparse execution path on one layer.

A layer of the budget's shape (default 1536 x 384, MiniLM's FFN) is initialised from the seed and
pruned by magnitude to the run's sparsity and pattern. The "methods" here are execution engines:

- `sparsetorch`: `sparsetorch.kernels.compile` with `formats="auto"` (measured, cached choice);
- `torch-csr`: `torch.sparse.mm` on a CSR tensor with int32 indices (the best stock CPU path);
- `dense`: `F.linear` on the dense weight.

Each run times its engine and dense `F.linear` in the same process (median of repetitions at
`batch` rows, hot) and reports `speedup = dense_ms / ms`. The task is `exclusive`: the runner
measures it alone, after the parallel pool, so other runs do not share the cores.
"""

from __future__ import annotations

import warnings
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from sparsetorch.bench.tasks.base import TASKS, RunSpec, Task
from sparsetorch.registry import Registry

ENGINES: Registry[str] = Registry("kernel-speed engine")
for _name in ("sparsetorch", "torch-csr", "dense"):
    ENGINES.register(_name, _name)


class KernelSpeed(Task):
    name = "kernel-speed"
    kind = "speed"
    metric = "speedup"
    description = "one masked Linear layer: speed of an execution engine vs dense F.linear, same process"
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
        with torch.no_grad():
            layer.weight.copy_(torch.randn(out, inp, generator=gen) / inp**0.5)
        weight = layer.weight.detach().clone()
        x = torch.randn(int(b["batch"]), inp, generator=gen)
        level = 0.0 if spec.sparsity is None and spec.pattern == "unstructured" else spec.sparsity
        mask = select(weight.abs(), spec.pattern, level)
        masked = weight * mask
        dense = lambda: F.linear(x, masked, layer.bias)  # noqa: E731
        fmt = "dense"
        if spec.method == "dense":
            fn = dense
        elif spec.method == "torch-csr":
            warnings.filterwarnings("ignore", message=".*[Ss]parse.*")  # torch's beta-state notices
            csr = masked.to_sparse_csr()
            csr = torch.sparse_csr_tensor(
                csr.crow_indices().int(), csr.col_indices().int(), csr.values(), csr.shape
            )
            xt = x.t().contiguous()
            fn = lambda: torch.sparse.mm(csr, xt)  # noqa: E731
            fmt = "torch-csr32"
        else:
            model = nn.Sequential(layer)
            attach(model, {"0.weight": mask}, patterns={"0.weight": spec.pattern})
            compile(model, batch=int(b["batch"]), use_cache=False)  # choose in this run, on this load
            fmt = next(iter(sparse_layers(model).values())).format_name
            fn = lambda: model(x)  # noqa: E731
        # dense and the engine in interleaved rounds: the machine's drift hits both alike
        ms_of = time_interleaved({"dense": dense, "engine": fn}, budget_s=float(b["budget_s"]), max_reps=200)
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
