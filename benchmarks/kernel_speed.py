"""Sparse linear kernels vs dense: speedup and fraction of the bandwidth bound, per format and ISA.

Why this script: speed claims need the ratio against dense `F.linear` measured in the same run,
under a known load. For each (shape, batch, sparsity, threads) it times dense, our formats (the
C++ operators `torch.ops.sparsetorch.*`), torch CSR with int32 indices and scipy CSR (if
installed), and prints a table and optionally a JSON file.

- batch 1 is timed cold: before every repetition each candidate's own arrays (dense weight,
  compressed format, CSR arrays) are `clflush`ed from every cache level (x86-64; elsewhere a
  64 MiB buffer is swept), so the weights come from DRAM, as they do for a model larger than the
  L3; batch 8 and 64 are timed hot;
- ours is timed as a compiled `SparseLinear` runs it: the format's operator with its tensors bound
  once (`cpu.op_call(fmt)`), called as `op(x, bias)`;
- kernel tables: ours runs with the best table this CPU has (`ops.use_isa("best")`: AVX-512, AVX2
  or portable), or the one `--isa` names; `--compare` adds rows `ours:FORMAT@ISA` for the other
  tables (default: every other one this CPU runs), and a table of their time over the main one's,
  so the AVX-512 vs portable ratio is in the report. The table is switched before each timed call,
  outside the timing;
- "bw" is the fraction of the bandwidth bound reached at batch 1: (bytes read / measured read
  bandwidth of this machine) / measured time;
- /proc/stat is read around every group: if other processes kept more than 0.25 cores busy, the
  group is flagged as unreliable (and the numbers are reported with that load);
- `--deepsparse VENV` adds DeepSparse 1.8.0 (end of life; `make deepsparse-venv` builds its
  venv) on the same weights. It runs in its own process (`deepsparse_worker.py`), so its ratio
  is against this process's dense time for the same cell, measured up to a minute apart, and its
  batch-1 time follows a 64 MiB sweep rather than a flush of its own buffers.

    python benchmarks/kernel_speed.py --quick
    python benchmarks/kernel_speed.py --shapes 4096x4096,1536x384 --threads 1,2 --json out.json
    python benchmarks/kernel_speed.py --quick --isa generic --compare none
    python benchmarks/kernel_speed.py --shapes 4096x4096 --deepsparse .venv-deepsparse
"""

from __future__ import annotations

import os
import sys

# Run as `python benchmarks/NAME.py`: the repo root, not this folder, heads sys.path, so siblings import
# as `benchmarks.*` and no module here can shadow an installed package of the same name.
if not __package__:
    sys.path[0] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

import argparse
import contextlib
import json
import platform
import tempfile
from dataclasses import asdict, dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F

from benchmarks import deepsparse_worker
from benchmarks._machine import LoadMeter, make_cold, read_bandwidth
from sparsetorch.kernels import cpu, ops
from sparsetorch.kernels import formats as fm
from sparsetorch.kernels.timing import time_interleaved
from sparsetorch.patterns import NM, select

SHAPES = ["4096x4096", "11008x4096", "1536x384", "384x1536"]
SPARSITIES = ["0.5", "0.7", "0.9", "0.95", "0.99", "2:4"]
BATCHES = [1, 8, 64]


@dataclass(frozen=True)
class Row:
    shape: str
    batch: int
    sparsity: str
    threads: int
    format: str
    ms: float
    speedup: float
    bytes_ratio: float
    bw_fraction: float | None
    foreign_cores: float
    picked: str = ""  # for "ours:best": the format that was fastest at this batch
    isa: str = ""  # for ours: the kernel table it ran with


def resolve_isas(isa: str, compare: str) -> tuple[str, list[str]]:
    """(the main kernel table, the others to compare with it) from `--isa` and `--compare`."""
    here = ops.supported_isas()
    if not here:
        print(f"WARNING: {ops.unavailable_reason()}; ours runs on pure torch", file=sys.stderr)
        return "torch", []
    if isa == "best":
        with ops.use_isa("best"):
            isa = ops.isa()
    if isa not in here:
        raise SystemExit(f"--isa {isa}: this CPU runs {', '.join(here)}")
    if compare == "all":
        others = [i for i in here if i != isa]
    elif compare == "none":
        others = []
    else:
        others = [i for i in compare.split(",") if i and i != isa]
        bad = [i for i in others if i not in here]
        if bad:
            raise SystemExit(f"--compare {compare}: this CPU runs {', '.join(here)}, not {', '.join(bad)}")
    return isa, others


def make_layer(out: int, inp: int, sparsity: str, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(out, inp, generator=g)
    if sparsity == "2:4":
        mask = select(torch.rand(out, inp, generator=g), NM(2, 4))
    else:
        mask = torch.rand(out, inp, generator=g) >= float(sparsity)
    return torch.where(mask, w, 0.0), mask


def our_formats(w: torch.Tensor, mask: torch.Tensor, sparsity: str) -> dict[str, fm.Format]:
    out = {"bitmask": fm.Bitmask.from_dense(w, mask), "csr16": fm.CSR.from_dense(w, mask)}
    if sparsity == "2:4":
        out = {"nm2:4": fm.NMPacked.from_dense(w, mask)}
    return out


def run_group(shape: str, batch: int, sparsity: str, threads: int, bw: dict[int, float], args) -> list[Row]:
    out, inp = (int(v) for v in shape.split("x"))
    w, mask = make_layer(out, inp, sparsity)
    x = torch.randn(batch, inp)
    cold = batch == 1
    dense_bytes = 4 * out * inp
    rows: list[Row] = []
    torch.set_num_threads(threads)
    ref = F.linear(x, w)
    cands: dict[str, tuple[object, int]] = {}
    weights: dict[str, tuple[torch.Tensor, ...]] = {}  # what each candidate reads, to evict when cold
    isa_of: dict[str, str] = {}  # ours: the kernel table each runs with
    for name, f in our_formats(w, mask, sparsity).items():
        if args.isa == "torch":  # no C++ operators: the pure-torch fallback
            plan = cpu.Plan(f, "torch")
            torch.testing.assert_close(plan(x), ref, rtol=1e-3, atol=1e-3)
            cands[f"ours:{name}"] = (lambda plan=plan: plan(x), f.nbytes)
            weights[f"ours:{name}"], isa_of[f"ours:{name}"] = tuple(f.tensors().values()), "torch"
            continue
        op = cpu.op_call(f)  # bound once, as a compiled `SparseLinear` keeps it
        for isa in (args.isa, *args.others):
            key = f"ours:{name}" + ("" if isa == args.isa else f"@{isa}")
            with ops.use_isa(isa):
                torch.testing.assert_close(op(x, None), ref, rtol=1e-3, atol=1e-3)
            cands[key] = (lambda op=op: op(x, None), f.nbytes)
            weights[key], isa_of[key] = tuple(f.tensors().values()), isa
    nnz = int(mask.sum())
    csr = cpu.torch_csr(fm.CSR.from_dense(w, mask, index_bits=32))  # int32 indices: torch's fastest CSR
    xt = x.t().contiguous()
    cands["torch_csr32"] = (lambda: torch.sparse.mm(csr, xt), 8 * nnz + 4 * (out + 1))
    weights["torch_csr32"] = (csr.crow_indices(), csr.col_indices(), csr.values())
    try:
        import scipy.sparse as sp

        s = sp.csr_matrix(w.numpy())
        s.indices = s.indices.astype(np.int32)
        xtn = xt.numpy()
        cands["scipy_csr"] = (lambda: s @ xtn, 8 * nnz + 4 * (out + 1))
        weights["scipy_csr"] = tuple(torch.from_numpy(a) for a in (s.indptr, s.indices, s.data))
    except ImportError:
        pass
    evictors = {k: before_call(isa_of.get(k), make_cold(*weights[k]) if cold else None) for k in cands}
    with LoadMeter() as load, ops.use_isa(args.isa) if args.isa != "torch" else contextlib.nullcontext():
        timed = time_interleaved(
            {"dense": (lambda: F.linear(x, w), make_cold(w) if cold else None)}
            | {k: (fn, evictors[k]) for k, (fn, _) in cands.items()},
            budget_s=args.budget,
            max_reps=40,
        )
    t_dense = timed.pop("dense")
    bound_bw = bw[threads] * 1e9
    rows.append(
        Row(
            shape,
            batch,
            sparsity,
            threads,
            "dense",
            t_dense,
            1.0,
            1.0,
            (dense_bytes / bound_bw * 1e3) / t_dense if cold else None,
            load.foreign,
        )
    )
    for k, ms in timed.items():
        nbytes = cands[k][1]
        frac = (nbytes / bound_bw * 1e3) / ms if cold else None
        row = Row(
            shape, batch, sparsity, threads, k, ms, t_dense / ms, nbytes / dense_bytes, frac, load.foreign
        )
        rows.append(replace(row, isa=isa_of.get(k, "")))
    ours = [r for r in rows if r.format.startswith("ours:") and "@" not in r.format]
    best = min(ours, key=lambda r: r.ms)
    rows.append(
        Row(
            shape,
            batch,
            sparsity,
            threads,
            "ours:best",
            best.ms,
            best.speedup,
            best.bytes_ratio,
            best.bw_fraction,
            load.foreign,
            best.format.removeprefix("ours:"),
            best.isa,
        )
    )
    if load.foreign > 0.25:
        print(
            f"WARNING: {load.foreign:.2f} cores of foreign load during {shape} B={batch} s={sparsity} "
            f"t={threads}: timings unreliable",
            file=sys.stderr,
        )
    return rows


def before_call(isa: str | None, evict):
    """What runs untimed before each call of a candidate: switch to its kernel table (so candidates
    on different tables interleave without a switch inside the timing), then empty the caches."""
    if isa in (None, "torch") and evict is None:
        return None
    set_isa = torch.ops.sparsetorch.set_isa if isa not in (None, "torch") else None

    def hook() -> None:
        if set_isa is not None:
            set_isa(isa)
        if evict is not None:
            evict()

    return hook


def cuda_bench(args) -> list[dict]:
    """2:4 (cuSPARSELt / CUTLASS) and BSR on CUDA vs dense `F.linear` in the same dtype (GPU only).

    Uses `sparsetorch.kernels.cuda.CudaSparseLinear`, i.e. exactly what `compile` installs, timed
    with CUDA events (median of 20 after 3 warm-ups).
    """
    results: list[dict] = []
    if not torch.cuda.is_available():
        print("--cuda: no CUDA device; skipped", file=sys.stderr)
        return results
    from sparsetorch.kernels import cuda

    print(f"\n### CUDA: {torch.cuda.get_device_name()} (torch {torch.__version__})\n")
    print("| shape (out x in) | dtype | layout | batch | dense ms | sparse ms | speedup |")
    print("|---|---|---|---|---|---|---|")
    gen = torch.Generator().manual_seed(0)
    for shape in ("4096x4096", "11008x4096", "4096x11008", "8192x8192", "16384x16384"):
        out, inp = (int(v) for v in shape.split("x"))
        w = torch.randn(out, inp, generator=gen)
        cases = [("2:4", torch.float16), ("2:4", torch.bfloat16), ("bsr32x32@90%", torch.float16)]
        for layout, dtype in cases:
            if layout == "2:4":
                mask = select(w.abs(), NM(2, 4))
                kw = {"layout": "2:4"}
            else:
                tiles = torch.rand(out // 32, inp // 32, generator=gen) >= 0.9  # keep 10% of tiles
                mask = tiles.repeat_interleave(32, 0).repeat_interleave(32, 1)
                kw = {"layout": "bsr", "block": (32, 32)}
            wd = w.to("cuda", dtype)
            try:
                layer = cuda.CudaSparseLinear.from_linear(wd, mask, None, **kw)
            except (ValueError, RuntimeError, TypeError) as e:
                print(f"| {shape} | {dtype} | {layout} | - | refused: {e} |")
                continue
            for batch in (16, 128, 1024, 4096, 16384):
                try:
                    t = cuda.time_layer(wd * mask.to("cuda", dtype), None, layer, batch)
                except (RuntimeError, ValueError) as e:
                    print(f"| {shape} | {dtype} | {layout} | {batch} | failed: {str(e)[:80]} |")
                    continue
                dt = str(dtype).removeprefix("torch.")
                results.append(
                    {
                        "shape": shape,
                        "dtype": dt,
                        "layout": layout,
                        "batch": batch,
                        "dense_ms": t.dense_ms,
                        "sparse_ms": t.sparse_ms,
                        "speedup": t.speedup,
                    }
                )
                print(
                    f"| {shape} | {dt} | {layout} | {batch} | {t.dense_ms:.4f} | {t.sparse_ms:.4f} | "
                    f"{t.speedup:.2f}x |"
                )
            del layer, wd
            torch.cuda.empty_cache()
    return results


def deepsparse_rows(
    venv: str, shape: str, sparsity: str, threads: int, dense_ms: dict[int, float], budget: float
) -> list[Row]:
    """DeepSparse on this cell's weights, timed by `deepsparse_worker.py` in the DeepSparse venv."""
    out, inp = (int(v) for v in shape.split("x"))
    w, _ = make_layer(out, inp, sparsity)
    batches = ",".join(map(str, sorted(dense_ms)))
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "w.npy")
        np.save(path, w.numpy())
        try:
            ms = deepsparse_worker.run(
                venv, "linear", path, "--batches", batches, threads=threads, budget=budget
            )
        except RuntimeError as e:
            print(f"WARNING: DeepSparse failed on {shape} s={sparsity}: {e}", file=sys.stderr)
            return []
    return [
        Row(
            shape,
            b,
            sparsity,
            threads,
            "deepsparse",
            ms[str(b)],
            dense_ms[b] / ms[str(b)],
            float("nan"),
            None,
            0.0,
        )
        for b in sorted(dense_ms)
    ]


def print_table(rows: list[Row]) -> None:
    groups: dict[tuple, list[Row]] = {}
    for r in rows:
        groups.setdefault((r.shape, r.threads), []).append(r)
    for (shape, threads), rs in groups.items():
        print(f"\n### {shape} (out x in), {threads} thread(s)\n")
        batches = sorted({r.batch for r in rs})
        fmts = sorted(
            dict.fromkeys(r.format for r in rs), key=lambda f: (f == "ours:best", f == "deepsparse")
        )
        print(
            "| sparsity | format | bytes vs dense | "
            + " | ".join(
                f"B={b}{' cold' if b == 1 else ''}: ms (x dense){' [bw]' if b == 1 else ''}" for b in batches
            )
            + " | foreign load |"
        )
        print("|---|---|---|" + "---|" * len(batches) + "---|")
        for s in dict.fromkeys(r.sparsity for r in rs):
            for f in fmts:
                cells, byts, load = [], None, 0.0
                for b in batches:
                    m = [r for r in rs if r.sparsity == s and r.format == f and r.batch == b]
                    if not m:
                        cells.append("")
                        continue
                    r = m[0]
                    byts, load = r.bytes_ratio, max(load, r.foreign_cores)
                    bwc = f" [{r.bw_fraction:.0%}]" if r.bw_fraction is not None else ""
                    picked = (
                        f" {r.picked} ({r.bytes_ratio:.3f})" if r.picked else ""
                    )  # best differs per batch
                    cells.append(f"{r.ms:.3f} ({r.speedup:.2f}x){bwc}{picked}")
                if byts is None:
                    continue
                name = f"**{f}**" if f in ("dense", "ours:best") else f
                shown = "per cell" if f == "ours:best" else "n/a" if f == "deepsparse" else f"{byts:.3f}"
                print(f"| {s} | {name} | {shown} | " + " | ".join(cells) + f" | {load:.2f} |")
        print_isa_table(rs, batches)


def print_isa_table(rs: list[Row], batches: list[int]) -> None:
    """Each other kernel table's time over the main table's, per format and batch (>1: the main one
    is faster), e.g. how much AVX-512 buys over the portable build."""
    others = list(dict.fromkeys(r.format.partition("@")[2] for r in rs if "@" in r.format))
    main = next((r.isa for r in rs if r.format.startswith("ours:") and "@" not in r.format), "")
    if not others:
        return
    print(
        f"\n{main} vs {', '.join(others)}: time with the other table / time with {main} (>1: {main} faster)\n"
    )
    print("| sparsity | format | " + " | ".join(f"B={b}" for b in batches) + " |")
    print("|---|---|" + "---|" * len(batches))
    ms = {(r.sparsity, r.format, r.batch): r.ms for r in rs}
    for s in dict.fromkeys(r.sparsity for r in rs):
        fmts = dict.fromkeys(
            r.format for r in rs if r.sparsity == s and r.format.startswith("ours:") and "@" in r.format
        )
        for f in dict.fromkeys(f.partition("@")[0] for f in fmts):
            cells = []
            for b in batches:
                base = ms.get((s, f, b))
                keys = [(o, (s, f"{f}@{o}", b)) for o in others]
                cells.append(
                    ", ".join(f"{o} {ms[k] / base:.2f}x" for o, k in keys if k in ms) if base else ""
                )
            print(f"| {s} | {f} | " + " | ".join(cells) + " |")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="a fast subset: 1536x384 and 4096x4096, 90%% and 2:4")
    p.add_argument("--shapes", default=",".join(SHAPES))
    p.add_argument("--sparsities", default=",".join(SPARSITIES))
    p.add_argument("--batches", default=",".join(map(str, BATCHES)))
    p.add_argument("--threads", default="1,2", help="comma-separated thread counts")
    p.add_argument("--budget", type=float, default=0.4, help="seconds of repetitions per measurement")
    p.add_argument("--json", default=None, help="write all rows to this JSON file")
    p.add_argument(
        "--isa",
        default="best",
        choices=["best", *ops.ISAS],
        help="kernel table of the ours rows (default: the best this CPU runs)",
    )
    p.add_argument(
        "--compare",
        default="all",
        metavar="ISAS",
        help="other kernel tables to time beside it: all (default: every other one this CPU runs), none, "
        "or a comma-separated list",
    )
    p.add_argument("--cuda", action="store_true", help="also run the CUDA 2:4 / BSR paths (needs a GPU)")
    p.add_argument("--cuda-only", action="store_true", help="run only the CUDA paths")
    p.add_argument(
        "--deepsparse", default=None, metavar="VENV", help="also time DeepSparse 1.8.0 from this venv"
    )
    args = p.parse_args(argv)
    if args.cuda_only:
        args.cuda, args.shapes = True, ""
    if args.quick:
        args.shapes, args.sparsities, args.budget = "1536x384,4096x4096", "0.9,2:4", 0.2
    shapes = [s for s in args.shapes.split(",") if s]
    sparsities = args.sparsities.split(",")
    batches = [int(b) for b in args.batches.split(",")]
    threads = [int(t) for t in args.threads.split(",")]
    args.isa, args.others = resolve_isas(args.isa, args.compare)
    print(
        f"torch {torch.__version__}, backend {cpu.backend()}, kernel table {args.isa} "
        f"(compared with: {', '.join(args.others) or 'none'}; this CPU runs {', '.join(ops.supported_isas()) or 'none'}), "
        f"cpu {cpu.cpu_name()}, {platform.machine()}, {os.cpu_count()} cpus"
    )
    bw = {t: read_bandwidth(t) for t in threads} if shapes else {}
    print("read bandwidth (GB/s): " + ", ".join(f"{t} thread(s) {v:.1f}" for t, v in bw.items()))
    rows: list[Row] = []
    for shape in shapes:
        for t in threads:
            for s in sparsities:
                cell = [r for b in batches for r in run_group(shape, b, s, t, bw, args)]
                rows += cell
                if args.deepsparse:
                    dense_ms = {r.batch: r.ms for r in cell if r.format == "dense"}
                    rows += deepsparse_rows(args.deepsparse, shape, s, t, dense_ms, args.budget)
            print_table([r for r in rows if r.shape == shape and r.threads == t])
            sys.stdout.flush()
    cuda = cuda_bench(args) if args.cuda else []
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {
                    "bandwidth_GBs": bw,
                    "rows": [asdict(r) for r in rows],
                    "cuda": cuda,
                    "cpu": cpu.cpu_name(),
                    "isa": args.isa,
                    "compared_isas": args.others,
                    "torch": torch.__version__,
                },
                f,
                indent=1,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
