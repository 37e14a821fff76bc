"""MoE dispatch speed and memory: dropless vs a per-expert masked loop vs the GShard dense einsum.

For each E (experts), k (experts per token) and T (tokens) one MoE layer forward (router + dispatch +
experts + combine, fp32, GELU FFN experts of width h) is timed in four ways, on the same tokens,
router and expert weights:

- `dense`: a dense FFN with the same *active* parameters per token (d -> k*h -> d), the baseline;
- `dropless`: `sparsetorch.routing.dispatch.dropless` (sort slots by expert, one matmul per expert
  over contiguous slices, scatter back; nothing dropped);
- `loop`: a per-expert masked loop (`nonzero(indices == e)`, gather, expert, `index_add_`);
- `gshard`: GShard / mesh-tensorflow dense dispatch: one-hot dispatch and combine tensors (T, E, C)
  with Tutel's capacity `C = k * int(cf * ceil(T / E))` (cf = 1.25, so overflow slots drop), then
  `einsum("tec,td->ecd")`, a batched expert matmul, and `einsum("tec,ecd->td")`.

Printed per row: tokens/s, the throughput ratio to the dense FFN (target >= 0.8x for dropless), and
the peak memory allocated during one forward beyond its inputs and weights. On CPU that peak is
tracked by a `TorchDispatchMode` that adds up the storages created by aten ops and releases them when
their last tensor dies (tracemalloc does not see ATen's allocator); on CUDA it is
`torch.cuda.max_memory_allocated`. Dropless memory grows as O(T*k*(d+h)), GShard's as O(T*E*C) =
O(k*cf*T^2) for its one-hot tensors (also printed as `onehot MiB`). Outputs are checked: dropless
equals the loop, and GShard equals `capacity_dispatch` at the same capacity.

The sweep stops starting new rows after `--time-limit` seconds (default 150), so a run stays under
about three minutes; GShard rows whose one-hot tensors would exceed `--max-onehot-mib` are skipped.

    python benchmarks/moe.py [--threads 1] [--json out.json]
    python benchmarks/moe.py --cuda [--json gpu.json]     # the same sweep on the GPU, if present
    python benchmarks/moe.py --quick                      # E=8,64; k=2; T=512,2048
"""

from __future__ import annotations

import os
import sys

# Run as `python benchmarks/NAME.py`: the repo root, not this folder, heads sys.path, so siblings import
# as `benchmarks.*` and no module here can shadow an installed package of the same name.
if not __package__:
    sys.path[0] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

import argparse
import json
import math
import statistics
import time
import weakref
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from sparsetorch.routing.dispatch import capacity, capacity_dispatch, dropless, slot_locations
from sparsetorch.routing.gates import top_k_gating
from sparsetorch.routing.moe import Experts

IMPLS = ("dense", "dropless", "loop", "gshard")
CF = 1.25


class PeakTensorMemory(TorchDispatchMode):
    """Peak bytes of storages created by aten ops inside the block (pre-existing storages excluded)."""

    def __enter__(self) -> PeakTensorMemory:
        self.current = self.peak = 0
        self._live: dict[int, list[int]] = {}  # storage data_ptr -> [live tensors, nbytes]
        return super().__enter__()

    def _release(self, ptr: int) -> None:
        entry = self._live.get(ptr)
        if entry is not None:
            entry[0] -= 1
            if entry[0] == 0:
                self.current -= entry[1]
                del self._live[ptr]

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        inputs = {
            t.untyped_storage().data_ptr() for t in tree_leaves((args, kwargs)) if isinstance(t, Tensor)
        }
        for t in tree_leaves(out):
            if not isinstance(t, Tensor):
                continue
            storage = t.untyped_storage()
            ptr, nbytes = storage.data_ptr(), storage.nbytes()
            entry = self._live.get(ptr)
            if entry is None:
                if nbytes == 0 or ptr in inputs:  # a view or in-place result of a pre-existing tensor
                    continue
                entry = self._live[ptr] = [0, nbytes]
                self.current += nbytes
                self.peak = max(self.peak, self.current)
            entry[0] += 1
            weakref.finalize(t, self._release, ptr)
        return out


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_call(fn: Callable[[], object], device: torch.device, *, budget: float) -> float:
    """Median seconds per call: 2 warm-up calls, then repeats until `budget` seconds (3 at least)."""
    for _ in range(2):
        fn()
    _sync(device)
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < 3 or (time.perf_counter() - start < budget and len(times) < 200):
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def peak_memory(fn: Callable[[], object], device: torch.device) -> int:
    """Bytes allocated at the peak of one call beyond what was allocated before it."""
    if device.type == "cuda":
        _sync(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        out = fn()
        _sync(device)
        peak = torch.cuda.max_memory_allocated(device) - before
        del out
        return peak
    with PeakTensorMemory() as tracker:
        out = fn()
    del out
    return tracker.peak


# --- the four implementations ------------------------------------------------------------------------


def masked_loop(x: Tensor, indices: Tensor, weights: Tensor, experts: Experts) -> Tensor:
    """Per-expert masked loop: each expert finds its slots with `nonzero` and adds its outputs."""
    y = torch.zeros_like(x)
    for e in range(experts.num_experts):
        token, slot = (indices == e).nonzero(as_tuple=True)
        if token.numel():
            out = experts.expert(e, x[token]) * weights[token, slot, None]
            y.index_add_(0, token, out)
    return y


def gshard_einsum(x: Tensor, indices: Tensor, weights: Tensor, experts: Experts, *, cf: float) -> Tensor:
    """GShard dense dispatch: one-hot (T, E, C) dispatch and combine tensors, einsums, batched experts."""
    num_tokens, k = indices.shape
    num_experts = experts.num_experts
    loc = slot_locations(indices, num_experts)  # (T, k), first choices queued before second ones
    cap = capacity(num_tokens, num_experts, k, cf, max_load=0)
    keep = loc < cap
    combine = x.new_zeros(num_tokens, num_experts, cap)  # (T, E, C)
    tok = torch.arange(num_tokens, device=x.device)[:, None].expand(-1, k)
    combine[tok[keep], indices[keep], loc[keep]] = weights[keep].to(x.dtype)
    dispatch = (combine > 0).to(x.dtype)  # (T, E, C) one-hot
    expert_in = torch.einsum("tec,td->ecd", dispatch, x)  # (E, C, d)
    return torch.einsum("tec,ecd->td", combine, experts.batched(expert_in))


def _onehot_mib(num_tokens: int, num_experts: int, k: int, itemsize: int) -> float:
    cap = capacity(num_tokens, num_experts, k, CF, max_load=0)
    return 2 * num_tokens * num_experts * cap * itemsize / 2**20  # dispatch + combine


def bench_row(
    *, num_experts: int, k: int, num_tokens: int, dim: int, hidden: int, device: torch.device,
    budget: float, backward: bool, max_onehot_mib: float, seed: int = 0,
) -> dict:  # fmt: skip
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(num_tokens, dim, generator=gen).to(device)
    router = (0.02 * torch.randn(num_experts, dim, generator=gen)).to(device)
    experts = Experts(num_experts, dim, hidden)
    experts.reset_parameters(gen)
    experts = experts.to(device)
    dense1 = torch.nn.Linear(dim, k * hidden).to(device)
    dense2 = torch.nn.Linear(k * hidden, dim).to(device)

    def route(inp: Tensor):
        return top_k_gating(F.linear(inp.float(), router), k, check_finite=False)

    def run_dense(inp: Tensor) -> Tensor:
        return dense2(F.gelu(dense1(inp)))

    def run_dropless(inp: Tensor) -> Tensor:
        r = route(inp)
        return dropless(inp, r.indices, r.weights, experts)[0]

    def run_loop(inp: Tensor) -> Tensor:
        r = route(inp)
        return masked_loop(inp, r.indices, r.weights, experts)

    def run_gshard(inp: Tensor) -> Tensor:
        r = route(inp)
        return gshard_einsum(inp, r.indices, r.weights, experts, cf=CF)

    fns = {"dense": run_dense, "dropless": run_dropless, "loop": run_loop, "gshard": run_gshard}
    onehot = _onehot_mib(num_tokens, num_experts, k, x.element_size())
    row: dict = {
        "device": device.type, "E": num_experts, "k": k, "T": num_tokens, "d": dim, "h": hidden,
        "capacity": capacity(num_tokens, num_experts, k, CF, max_load=0), "onehot_mib": onehot,
    }  # fmt: skip

    with torch.no_grad():  # correctness: dropless == loop, gshard == capacity_dispatch
        r = route(x)
        y_drop = dropless(x, r.indices, r.weights, experts)[0]
        row["dropless_matches_loop"] = bool(
            torch.allclose(y_drop, masked_loop(x, r.indices, r.weights, experts), atol=1e-4, rtol=1e-4)
        )
        if onehot <= max_onehot_mib:
            y_cap, aux = capacity_dispatch(x, r.indices, r.weights, experts, capacity_factor=CF)
            y_gs = gshard_einsum(x, r.indices, r.weights, experts, cf=CF)
            row["gshard_matches_capacity"] = bool(torch.allclose(y_gs, y_cap, atol=1e-4, rtol=1e-4))
            row["gshard_dropped_fraction"] = float(aux["dropped_fraction"])

    for name, fn in fns.items():
        if name == "gshard" and onehot > max_onehot_mib:
            row[f"{name}_skipped"] = (
                f"one-hot tensors {onehot:.0f} MiB > --max-onehot-mib {max_onehot_mib:.0f}"
            )
            continue
        if backward:
            inp = x.clone().requires_grad_(True)

            def call(fn=fn, inp=inp) -> Tensor:
                out = fn(inp)
                out.sum().backward()
                return out

        else:

            def call(fn=fn) -> Tensor:
                with torch.no_grad():
                    return fn(x)

        with torch.no_grad():
            row[f"{name}_peak_mib"] = peak_memory(lambda fn=fn: fn(x), device) / 2**20
        seconds = time_call(call, device, budget=budget)
        row[f"{name}_ms"] = 1e3 * seconds
        row[f"{name}_tokens_per_s"] = num_tokens / seconds
    for name in IMPLS[1:]:
        if f"{name}_ms" in row:
            row[f"{name}_vs_dense"] = row["dense_ms"] / row[f"{name}_ms"]
    return row


def _fmt(row: dict, key: str, spec: str) -> str:
    value = row.get(key)
    return "-" if value is None else format(value, spec)


def print_table(rows: list[dict]) -> None:
    head = (
        f"{'dev':<4} {'E':>3} {'k':>2} {'T':>5} | {'dense tok/s':>11} | "
        + " | ".join(f"{n + ' tok/s':>13} {'x dense':>7}" for n in IMPLS[1:])
        + " | peak MiB: "
        + " ".join(f"{n:>8}" for n in IMPLS)
        + f" | {'onehot':>7} ok"
    )
    print(head)
    print("-" * len(head))
    for r in rows:
        parts = [
            f"{r['device']:<4} {r['E']:>3} {r['k']:>2} {r['T']:>5} | {_fmt(r, 'dense_tokens_per_s', '11.3g')} |"
        ]
        parts.append(
            " | ".join(
                f"{_fmt(r, n + '_tokens_per_s', '13.3g')} {_fmt(r, n + '_vs_dense', '7.2f')}"
                for n in IMPLS[1:]
            )
        )
        parts.append("| peak MiB: " + " ".join(f"{_fmt(r, n + '_peak_mib', '8.2f')}" for n in IMPLS))
        ok = r["dropless_matches_loop"] and r.get("gshard_matches_capacity", True)
        parts.append(f"| {r['onehot_mib']:7.1f} {'yes' if ok else 'NO'}")
        print(" ".join(parts))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--experts", default="8,64")
    p.add_argument("--k", default="1,2")
    p.add_argument("--tokens", default="512,2048,8192")
    p.add_argument("--dim", type=int, default=128)
    p.add_argument("--hidden", type=int, default=512, help="expert width h (dense baseline: k*h)")
    p.add_argument("--budget", type=float, default=0.3, help="seconds of repeats per measurement")
    p.add_argument("--time-limit", type=float, default=150.0, help="start no new row after this many seconds")
    p.add_argument("--max-onehot-mib", type=float, default=2048.0, help="skip GShard above this one-hot size")
    p.add_argument("--backward", action="store_true", help="time forward + backward (memory stays forward)")
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads (CPU)")
    p.add_argument("--cuda", action="store_true", help="run on the GPU (skips cleanly when there is none)")
    p.add_argument("--quick", action="store_true", help="E=8,64; k=2; T=512,2048")
    p.add_argument("--json", default=None, help="write the rows to this JSON file")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.cuda and not torch.cuda.is_available():
        print("--cuda: no CUDA device available; nothing to run")
        if args.json:
            with open(args.json, "w") as f:
                json.dump({"skipped": "no CUDA device", "torch": torch.__version__, "rows": []}, f, indent=1)
        return 0
    device = torch.device("cuda" if args.cuda else "cpu")
    experts_list = [int(v) for v in args.experts.split(",")]
    ks = [2] if args.quick else [int(v) for v in args.k.split(",")]
    tokens = [512, 2048] if args.quick else [int(v) for v in args.tokens.split(",")]
    name = (
        torch.cuda.get_device_name(device) if device.type == "cuda" else f"{torch.get_num_threads()} threads"
    )
    print(
        f"torch {torch.__version__}, {device.type} ({name}); d={args.dim}, h={args.hidden}, fp32, "
        f"{'forward+backward' if args.backward else 'forward'}; GShard cf={CF}"
    )
    rows: list[dict] = []
    start = time.perf_counter()
    skipped: list[str] = []
    for num_experts in experts_list:
        for k in ks:
            for num_tokens in tokens:
                if time.perf_counter() - start > args.time_limit:
                    skipped.append(f"E={num_experts} k={k} T={num_tokens}")
                    continue
                if k > num_experts:
                    continue
                try:
                    row = bench_row(
                        num_experts=num_experts, k=k, num_tokens=num_tokens, dim=args.dim, hidden=args.hidden,
                        device=device, budget=args.budget, backward=args.backward,
                        max_onehot_mib=args.max_onehot_mib,
                    )  # fmt: skip
                except (torch.cuda.OutOfMemoryError, MemoryError, RuntimeError) as e:  # report, keep going
                    if isinstance(e, RuntimeError) and "memory" not in str(e).lower():
                        raise
                    row = {
                        "device": device.type,
                        "E": num_experts,
                        "k": k,
                        "T": num_tokens,
                        "error": str(e)[:200],
                    }
                    print(f"E={num_experts} k={k} T={num_tokens}: out of memory, skipped", file=sys.stderr)
                    if device.type == "cuda":
                        torch.cuda.empty_cache()
                    rows.append(row)
                    continue
                rows.append(row)
                print(
                    f"  E={num_experts:<3} k={k} T={num_tokens:<5} dropless {row['dropless_vs_dense']:.2f}x dense, "
                    f"loop {row['loop_vs_dense']:.2f}x, gshard "
                    + (f"{row['gshard_vs_dense']:.2f}x" if "gshard_vs_dense" in row else "skipped")
                    + f"  ({time.perf_counter() - start:.0f} s)",
                    flush=True,
                )
    print()
    print_table([r for r in rows if "error" not in r])
    done = [r for r in rows if "dropless_vs_dense" in r]
    if done:
        ratios = [r["dropless_vs_dense"] for r in done]
        geo = math.exp(statistics.fmean(math.log(v) for v in ratios))
        print(
            f"\ndropless throughput vs dense FFN (same active params): geometric mean {geo:.2f}x, "
            f"min {min(ratios):.2f}x; target >= 0.8x met in {sum(v >= 0.8 for v in ratios)}/{len(ratios)} rows"
        )
    if skipped:
        print(f"time limit {args.time_limit:.0f} s reached; not run: {', '.join(skipped)}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {"torch": torch.__version__, "device": device.type, "device_name": name, "dim": args.dim,
                 "hidden": args.hidden, "backward": args.backward, "cf": CF, "rows": rows, "not_run": skipped},
                f, indent=1,
            )  # fmt: skip
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
