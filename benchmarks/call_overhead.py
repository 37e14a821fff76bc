"""Per-call overhead of a sparse layer at batch 1: the bare C++ operator vs everything that wraps it.

Why: at batch 1 a pruned MiniLM FFN layer (384 -> 1536, 90 % sparse) computes for a few
microseconds, so a few microseconds of Python around each call decide whether the sparse model is
faster. This script times, hot (weights in cache), under `torch.no_grad()`:

- `op csr_linear (bare)`: `torch.ops.sparsetorch.csr_linear.default(x, cols, values, row_ptr, bias)`
  with the layer's own tensors, the floor of every path below; and the bare operator of the format
  `sparsetorch.kernels.compile` autotunes for this layer at batch 1, if it is another one;
- `cpu.op_call(csr)`: the operator with its tensors bound (`(x, bias) -> y`, what the module keeps);
- `cpu.Plan(csr)`: `plan(x, bias=bias)`;
- `SparseLinear(csr) layer(x)`: the module a compiled model holds (and the autotuned one's);
- `torch.compile(SparseLinear)`: the module inside `torch.compile` (guards + the compiled graph);
- dense: `F.linear(x, w, b)`, `nn.Linear` and `torch.compile(nn.Linear)` on the masked weight;
- `torch.sparse.mm` on torch's CSR with int32 indices (no bias; the input transposed beforehand).

Each number is the median over `--runs` runs of the per-call time of a loop of many calls (the
count chosen so that one run lasts `--run-ms`); the runs of all cases are interleaved, so the
machine's drift hits them alike; the fastest run is shown too (the least disturbed by other
processes on a shared machine). The column "- bare op" is the case minus the bare `csr_linear`
call: the cost of the wrapping. A 16 x 16 layer (26 weights) does almost no work, so its times
are the dispatch cost itself. "python loop" is the loop with a call of a no-op builtin, the
harness's own share of every number.

    python benchmarks/call_overhead.py --quick
    python benchmarks/call_overhead.py --threads 1,2 --runs 9 --json overhead.json
"""

from __future__ import annotations

import os
import sys

# Run as `python benchmarks/NAME.py`: the repo root, not this folder, heads sys.path, so siblings import
# as `benchmarks.*` and no module here can shadow an installed package of the same name.
if not __package__:
    sys.path[0] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

import argparse
import copy
import json
import statistics
import time
import warnings
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from benchmarks._machine import LoadMeter
from sparsetorch.kernels import compile as sparse_compile
from sparsetorch.kernels import cpu, ops
from sparsetorch.kernels.formats import CSR
from sparsetorch.masks import attach

LAYERS = {"384->1536 (MiniLM FFN)": (1536, 384), "16->16 (dispatch only)": (16, 16)}
BARE = "op csr_linear (bare)"

Loop = Callable[[int], None]


def loop(fn: Callable, *args, **kwargs) -> Loop:
    """`n` calls of `fn(*args, **kwargs)`."""

    def run(n: int) -> None:
        for _ in range(n):
            fn(*args, **kwargs)

    return run


def magnitude_layer(out: int, inp: int, sparsity: float, seed: int = 0) -> nn.Sequential:
    """`Sequential(Linear(inp, out))` with a magnitude mask keeping the largest `1 - sparsity` weights."""
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(inp, out))
    w = model[0].weight.detach()
    keep = max(1, round((1 - sparsity) * w.numel()))
    mask = torch.zeros(w.numel(), dtype=torch.bool)
    mask[w.abs().flatten().topk(keep).indices] = True
    attach(model, {"0.weight": mask.view_as(w)})
    return model


def bare_op(layer) -> tuple[Callable, tuple]:
    """The operator of a `SparseLinear` and its arguments after `x`: the module's own tensors, its
    bias and integer options, matched to the operator's schema by name."""
    op = getattr(torch.ops.sparsetorch, f"{layer.format_name}_linear").default
    consts = {"bias": layer.bias, "in_features": layer.in_features, **layer.meta}
    names = [a.name for a in op._schema.arguments][1:]  # after x
    return op, tuple(consts[n] if n in consts else getattr(layer, n) for n in names)


def cases(out: int, inp: int, sparsity: float, *, with_compile: bool) -> tuple[dict[str, Loop], str]:
    """The timed loops of one layer, and the format autotune picks for it at batch 1."""
    masked = magnitude_layer(out, inp, sparsity)
    lin = masked[0]
    w = lin.weight.detach().clone()  # the masked weight (attach zeroes the pruned entries)
    bias = lin.bias.detach().clone()
    dense = nn.Linear(inp, out)
    with torch.no_grad():
        dense.weight.copy_(w)
        dense.bias.copy_(bias)
    layer = sparse_compile(copy.deepcopy(masked), formats="csr", batch=1)[0]
    auto = sparse_compile(copy.deepcopy(masked), batch=1)[0]
    picked = auto.format_name if auto.format_name != "nm" else f"nm{auto.meta['n']}:{auto.meta['m']}"
    x = torch.randn(1, inp)
    fmt = layer.fmt
    op, op_args = bare_op(layer)
    plan, call = cpu.Plan(fmt, "cpp"), cpu.op_call(fmt)
    csr = cpu.torch_csr(CSR.from_dense(w, w != 0, index_bits=32))  # int32 indices: torch's fastest CSR
    xt = x.t().contiguous()
    ref = F.linear(x, w, bias)
    torch.testing.assert_close(op(x, *op_args), ref, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(layer(x), ref, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(auto(x), ref, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(torch.sparse.mm(csr, xt).t() + bias, ref, rtol=1e-4, atol=1e-4)

    out_cases: dict[str, Loop] = {"python loop": loop(id, x), BARE: loop(op, x, *op_args)}
    if auto.format_name not in ("csr", "dense"):
        auto_op, auto_args = bare_op(auto)
        out_cases[f"op {picked} (bare, autotune's pick)"] = loop(auto_op, x, *auto_args)
    out_cases["cpu.op_call(csr)"] = loop(call, x, bias)
    out_cases["cpu.Plan(csr)"] = loop(plan, x, bias=bias)
    out_cases["SparseLinear(csr) layer(x)"] = loop(layer, x)
    if auto.format_name != "csr":
        out_cases[f"SparseLinear({picked}, autotune's pick) layer(x)"] = loop(auto, x)
    if with_compile:
        compiled = torch.compile(layer, dynamic=False)
        torch.testing.assert_close(compiled(x), ref, rtol=1e-4, atol=1e-4)
        out_cases["torch.compile(SparseLinear(csr))"] = loop(compiled, x)
    out_cases["F.linear (dense)"] = loop(F.linear, x, w, bias)
    out_cases["nn.Linear (dense)"] = loop(dense, x)
    if with_compile:
        compiled_dense = torch.compile(dense, dynamic=False)
        compiled_dense(x)
        out_cases["torch.compile(nn.Linear)"] = loop(compiled_dense, x)
    out_cases["torch.sparse.mm (CSR int32, no bias)"] = loop(torch.sparse.mm, csr, xt)
    return out_cases, picked


def time_cases(loops: dict[str, Loop], *, runs: int, run_s: float) -> dict[str, tuple[float, float]]:
    """(median, min) microseconds per call of each loop over `runs` interleaved runs of about `run_s`
    seconds (the min: the run least disturbed by other processes)."""
    counts = {}
    for name, fn in loops.items():
        fn(20)  # warm-up: compiles, fills caches, starts thread pools
        n, t = 16, 0.0
        while t < run_s / 8:  # about an eighth of a run, then scale
            n *= 2
            t0 = time.perf_counter()
            fn(n)
            t = time.perf_counter() - t0
        counts[name] = max(16, int(n * run_s / t))
    per_call: dict[str, list[float]] = {k: [] for k in loops}
    for _ in range(runs):
        for name, fn in loops.items():
            t0 = time.perf_counter()
            fn(counts[name])
            per_call[name].append((time.perf_counter() - t0) / counts[name])
    return {k: (1e6 * statistics.median(v), 1e6 * min(v)) for k, v in per_call.items()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--threads", default="1,2", help="comma-separated thread counts")
    p.add_argument("--sparsity", type=float, default=0.9)
    p.add_argument("--runs", type=int, default=7, help="runs per case (the median is reported)")
    p.add_argument("--run-ms", type=float, default=50.0, help="length of one run of one case")
    p.add_argument("--quick", action="store_true", help="--runs 3 --run-ms 10")
    p.add_argument("--no-torch-compile", dest="torch_compile", action="store_false")
    p.add_argument("--json", default=None, help="write all rows to this JSON file")
    args = p.parse_args(argv)
    if args.quick:
        args.runs, args.run_ms = 3, 10.0
    if not ops.available():
        raise SystemExit(f"call_overhead needs the C++ operators: {ops.unavailable_reason()}")
    threads = [int(t) for t in args.threads.split(",")]
    print(
        f"torch {torch.__version__}, kernel table {ops.isa()}, cpu {cpu.cpu_name()}, {os.cpu_count()} cpus; "
        f"batch 1, {args.sparsity:.0%} magnitude-pruned, hot, torch.no_grad(); "
        f"median of {args.runs} runs of ~{args.run_ms:g} ms"
    )
    rows = []
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # torch.sparse "beta" notices
        for label, (out, inp) in LAYERS.items():
            loops, picked = cases(out, inp, args.sparsity, with_compile=args.torch_compile)
            for t in threads:
                torch.set_num_threads(t)
                with LoadMeter() as load:
                    us = time_cases(loops, runs=args.runs, run_s=args.run_ms / 1e3)
                print(
                    f"\n### {label}, {t} thread(s), autotune picks {picked} at batch 1 "
                    f"(foreign load {load.foreign:.2f} cores)\n"
                )
                if load.foreign > 0.25:
                    print(
                        f"WARNING: {load.foreign:.2f} cores of foreign load: timings unreliable",
                        file=sys.stderr,
                    )
                print("| case | us per call (median) | - bare op (us) | min of the runs (us) |")
                print("|---|---|---|---|")
                for name, (v, low) in us.items():
                    diff = v - us[BARE][0]
                    shown = "" if name in (BARE, "python loop") else f"{diff:+.2f}"
                    print(f"| {name} | {v:.2f} | {shown} | {low:.2f} |")
                    rows.append(
                        {
                            "layer": label,
                            "shape": [out, inp],
                            "threads": t,
                            "case": name,
                            "us": v,
                            "min_us": low,
                            "minus_bare_us": diff,
                            "autotune_pick": picked,
                            "foreign_cores": load.foreign,
                        }
                    )
                sys.stdout.flush()
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {"isa": ops.isa(), "cpu": cpu.cpu_name(), "torch": torch.__version__, "rows": rows},
                f,
                indent=1,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
