"""End-to-end latency and weight memory: dense vs sparsetorch-compiled models, eager and torch.compile.

Why: kernel speedups only matter if they survive a whole model (attention, norms, activations,
small layers and per-call overhead included). Models: LeNet-300-100 (MNIST-sized MLP) and
all-MiniLM-L6-v2 (a BERT encoder, loaded offline with `sparsetorch.models.hf.load_minilm()`).
Inputs: LeNet batch 1 and 32; MiniLM 1x128 and 32x128 tokens.

Variants of one input, all timed in interleaved rounds (`sparsetorch.kernels.timing.time_interleaved`)
so the machine's drift hits them alike:

- `dense`: the model in eager mode (the baseline of every ratio);
- `dense + torch.compile`: `torch.compile(model)` (Inductor, static shapes);
- `sparsetorch 90%` / `sparsetorch 2:4`: magnitude-pruned, then `sparsetorch.kernels.compile(batch=rows)`
  (each masked Linear becomes a `SparseLinear`, one C++ operator call, with the format autotuned
  for the rows it is timed at; `auto` keeps a layer dense where no sparse format wins there);
- `sparsetorch ... + torch.compile`: `torch.compile(st_model)`, the operators traced as opaque
  custom ops and the rest of the model compiled around them.

Every variant's output is checked against its reference: the dense eager model for the dense ones,
the masked dense model (pruned, not compiled; not timed) for the sparse ones; the run fails when
one of ours differs by more than 1e-3 of the reference's largest value. Foreign CPU load (from /proc/stat)
is printed with every group of numbers.

With `--deepsparse VENV`, DeepSparse 1.8.0 (end of life; `make deepsparse-venv`) also runs ONNX
exports (opset 14) of the dense and masked models, with the masks squashed into the weights. It
runs in its own process (`deepsparse_worker.py`), so its ratio is against this process's dense
time measured a few seconds apart; its output is compared with the reference's (a difference is
flagged MISMATCH and warned about, not a failure: at 1 thread and batch 32 its pruned LeNet
differed by up to 0.1). Each of our
variants is then also given as DeepSparse's time over ours on the same weights (>1: ours faster).

    python benchmarks/end_to_end.py --quick        # both models, short timings
    python benchmarks/end_to_end.py --models lenet --threads 1 --json e2e.json
    python benchmarks/end_to_end.py --models minilm --deepsparse .venv-deepsparse
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
import tempfile
import time
import warnings

import numpy as np
import torch

import sparsetorch as st
from benchmarks import deepsparse_worker
from benchmarks._machine import LoadMeter
from sparsetorch.kernels import compile as sparse_compile
from sparsetorch.kernels import sparse_layers
from sparsetorch.kernels.timing import time_interleaved
from sparsetorch.masks import squash

PRUNINGS = [("90%", {"sparsity": 0.9}), ("2:4", {"sparsity": None, "pattern": "2:4"})]
TOLERANCE = 1e-3  # max abs difference from the reference, relative to the reference's largest value


def linear_bytes(model: torch.nn.Module) -> int:
    """Bytes of the Linear weights as stored (dense fp32, or the compressed format)."""
    total = 0
    for m in model.modules():
        if isinstance(m, torch.nn.Linear):
            total += m.weight.numel() * 4
    total += sum(m.nbytes for m in sparse_layers(model).values())
    return total


def variants(make, prune_cfgs, rows: int, threads: int, *, with_torch_compile: bool):
    """The models of one input: `{name: (model, reference name)}` and the masked references
    `{pruning: model}` (timed models are eval; the torch.compile ones compile at their first call)."""
    dense = make().eval()
    models = {"dense": (dense, "dense")}
    if with_torch_compile:
        models["dense + torch.compile"] = (torch.compile(dense, dynamic=False), "dense")
    masked = {}
    for name, kwargs in prune_cfgs:
        model = copy.deepcopy(dense)
        st.prune(model, "magnitude", **kwargs)
        masked[name] = model.eval()
        compiled = sparse_compile(copy.deepcopy(model), batch=rows, threads=threads).eval()
        models[f"sparsetorch {name}"] = (compiled, name)
        if with_torch_compile:
            models[f"sparsetorch {name} + torch.compile"] = (torch.compile(compiled, dynamic=False), name)
    return models, masked


def first_output(out):
    return out.last_hidden_state if hasattr(out, "last_hidden_state") else out


def format_counts(model: torch.nn.Module) -> dict[str, int]:
    formats: dict[str, int] = {}
    for m in sparse_layers(model).values():
        key = m.format_name if m.format_name != "nm" else f"nm{m.meta['n']}:{m.meta['m']}"
        formats[key] = formats.get(key, 0) + 1
    return formats


def run_model(label, make, inputs, prune_cfgs, args) -> list[dict]:
    rows_out = []
    threads, budget = args.threads, args.budget
    for batch_label, (inp, rows) in inputs.items():
        torch.set_num_threads(threads)
        torch._dynamo.reset()  # each input compiles its own models: no recompile limit across inputs
        models, masked = variants(make, prune_cfgs, rows, threads, with_torch_compile=args.torch_compile)
        t0 = time.perf_counter()
        with torch.inference_mode():
            refs = {"dense": first_output(models["dense"][0](*inp))}
            refs |= {name: first_output(m(*inp)) for name, m in masked.items()}
            outs = {name: first_output(m(*inp)) for name, (m, _) in models.items()}  # torch.compile runs here
            setup_s = time.perf_counter() - t0
            with LoadMeter() as load:  # all variants in rounds: the machine's drift hits them alike
                timed = time_interleaved(
                    {name: (lambda m=model, a=inp: m(*a)) for name, (model, _) in models.items()},
                    budget_s=budget,
                    max_reps=30,
                )
        if load.foreign > 0.25:
            print(
                f"WARNING: {load.foreign:.2f} cores of foreign load during {label} {batch_label}: timings unreliable",
                file=sys.stderr,
            )
        group = []
        for name, (model, ref_name) in models.items():
            ref = refs[ref_name]
            err = (outs[name] - ref).abs().max().item()
            group.append(
                {
                    "model": label,
                    "batch": batch_label,
                    "variant": name,
                    "ms": timed[name],
                    "speedup": timed["dense"] / timed[name],
                    "vs_deepsparse": None,
                    "linear_MB": linear_bytes(model) / 1e6,
                    "reference": "dense" if ref_name == "dense" else f"masked {ref_name}",
                    "max_abs_err": err,
                    "ok": err <= TOLERANCE * max(1.0, ref.abs().max().item()),
                    "formats": format_counts(model),
                    "threads": threads,
                    "foreign_cores": load.foreign,
                }
            )
        if args.deepsparse:
            ds = {"dense": deepsparse_row(args, label, batch_label, "dense", models["dense"][0], inp, refs)}
            ds |= {
                name: deepsparse_row(args, label, batch_label, name, m, inp, refs)
                for name, m in masked.items()
            }
            for row in ds.values():
                row["speedup"] = timed["dense"] / row["ms"]
            for row, (_, ref_name) in zip(group, models.values(), strict=True):
                row["vs_deepsparse"] = ds[ref_name]["ms"] / row["ms"]
            group += list(ds.values())
        for row in group:
            print_row(row)
        print(
            f"({label} {batch_label}: models built, compiled and checked in {setup_s:.0f} s)", file=sys.stderr
        )
        sys.stdout.flush()
        rows_out += group
    return rows_out


def print_row(row: dict) -> None:
    vs_ds = f"{row['vs_deepsparse']:.2f}x" if row["vs_deepsparse"] is not None else ""
    mb = f"{row['linear_MB']:.2f}" if row["linear_MB"] is not None else ""
    load = f"{row['foreign_cores']:.2f}" if row["foreign_cores"] is not None else "own process"
    check = "" if row["ok"] else " MISMATCH"
    print(
        f"| {row['model']} | {row['batch']} | {row['variant']} | {row['ms']:.3f} | {row['speedup']:.2f}x | "
        f"{vs_ds} | {mb} | {row['formats'] or ''} | {row['max_abs_err']:.1e} vs {row['reference']}{check} | "
        f"{load} |"
    )


class _FirstOutput(torch.nn.Module):
    """The model's first output as a plain tensor (what ONNX export needs)."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, *args):
        out = self.model(*args)
        return out.last_hidden_state if hasattr(out, "last_hidden_state") else out


def deepsparse_row(args, label, batch_label, name, model, inp, refs) -> dict:
    """DeepSparse 1.8.0 on an ONNX export of `model` (masks squashed into the weights), timed in
    its own venv by `deepsparse_worker.py`; its output is checked against the reference `refs[name]`."""
    plain = squash(copy.deepcopy(model)).eval()
    ref = refs[name]
    with tempfile.TemporaryDirectory() as tmp:
        onnx_path, in_path, out_path = (os.path.join(tmp, f) for f in ("m.onnx", "in.npz", "y.npy"))
        names = [f"in{i}" for i in range(len(inp))]
        # opset 14: the first with scaled_dot_product_attention; the TorchScript exporter (deprecated,
        # but it needs no onnxscript)
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            torch.onnx.export(
                _FirstOutput(plain), inp, onnx_path, dynamo=False, opset_version=14, input_names=names
            )
        np.savez(in_path, **{n: a.numpy() for n, a in zip(names, inp, strict=True)})
        try:
            result = deepsparse_worker.run(
                args.deepsparse,
                "onnx",
                onnx_path,
                "--inputs",
                in_path,
                "--output",
                out_path,
                threads=args.threads,
                budget=args.budget,
            )
        except RuntimeError as e:
            raise SystemExit(f"DeepSparse failed on {label} {name}: {e}") from e
        err = float(np.abs(np.load(out_path) - ref.numpy()).max())
    return {
        "model": label,
        "batch": batch_label,
        "variant": f"deepsparse {name}",
        "ms": next(iter(result.values())),
        "speedup": None,  # set by the caller: this process's dense time over it
        "vs_deepsparse": None,
        "linear_MB": None,
        "reference": "dense" if name == "dense" else f"masked {name}",
        "max_abs_err": err,
        "ok": err <= TOLERANCE * max(1.0, ref.abs().max().item()),
        "formats": {},
        "threads": args.threads,
        "foreign_cores": None,
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", default="lenet,minilm")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--budget", type=float, default=1.0, help="seconds of repetitions per measurement")
    p.add_argument("--quick", action="store_true", help="short timings (--budget 0.3)")
    p.add_argument(
        "--no-torch-compile",
        dest="torch_compile",
        action="store_false",
        help="leave out the torch.compile variants (they take ~10 s each to compile)",
    )
    p.add_argument("--json", default=None)
    p.add_argument(
        "--deepsparse",
        default=None,
        metavar="VENV",
        help="also time DeepSparse 1.8.0 (from this venv) on ONNX exports of the dense and pruned models",
    )
    args = p.parse_args(argv)
    if args.quick:
        args.budget = 0.3
    print(f"torch {torch.__version__}, {args.threads} thread(s)")
    print(
        "| model | input | variant | ms | x dense eager | x DeepSparse (its ms / ours, same weights) | "
        "Linear weights MB | compiled formats | max abs err vs reference | foreign load (cores) |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    rows = []
    if "lenet" in args.models:
        make = lambda: st.create_model("lenet-300-100", seed=0)  # noqa: E731
        g = torch.Generator().manual_seed(0)
        inputs = {
            "1": ((torch.randn(1, 784, generator=g),), 1),
            "32": ((torch.randn(32, 784, generator=g),), 32),
        }
        rows += run_model("LeNet-300-100", make, inputs, PRUNINGS, args)
    if "minilm" in args.models:
        from sparsetorch.models.hf import load_minilm

        model, tok = load_minilm()
        make = lambda: copy.deepcopy(model)  # noqa: E731
        texts = ["Sparse kernels turn pruning into measured speed on ordinary CPUs."] * 32

        def enc(n):
            e = tok(texts[:n], padding="max_length", max_length=128, truncation=True, return_tensors="pt")
            return (e["input_ids"], e["attention_mask"])

        inputs = {"1x128": (enc(1), 128), "32x128": (enc(32), 32 * 128)}
        rows += run_model("all-MiniLM-L6-v2", make, inputs, PRUNINGS, args)
    if not args.deepsparse:
        print("DeepSparse: not run (pass --deepsparse VENV; `make deepsparse-venv` builds one)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)

    def names(deepsparse: bool) -> list[str]:
        return [
            f"{r['model']} {r['batch']} {r['variant']}"
            for r in rows
            if not r["ok"] and r["variant"].startswith("deepsparse ") == deepsparse
        ]

    if names(True):  # DeepSparse's own numerics: reported, not a failure of ours
        print(
            f"WARNING: DeepSparse's output differs from the reference: {', '.join(names(True))}",
            file=sys.stderr,
        )
    bad = names(False)
    if bad:
        print(
            f"outputs differ from their reference by more than {TOLERANCE:g}: {', '.join(bad)}",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    t0 = time.time()
    rc = main()
    print(f"total {time.time() - t0:.0f} s", file=sys.stderr)
    raise SystemExit(rc)
