"""End-to-end latency and weight memory: dense vs pruned (90 % / 2:4) and compiled models.

Why: kernel speedups only matter if they survive a whole model (attention, norms, activations,
small layers and per-call overhead included). Models: LeNet-300-100 (MNIST-sized MLP) and
all-MiniLM-L6-v2 (a BERT encoder, loaded offline with `sparsetorch.models.hf.load_minilm()`).
Inputs: batch 1 (x 128 tokens for MiniLM) and batch 32. Each pruned model is compiled for the
batch it is timed at (`sparsetorch.kernels.compile(batch=rows)`), so `auto` keeps a layer dense
where no sparse format wins at that batch. All variants of one input are timed in interleaved
rounds (`sparsetorch.kernels.timing.time_interleaved`), so the machine's drift hits them alike. Foreign CPU load
(from /proc/stat) is printed with every group of numbers.

With `--deepsparse VENV`, DeepSparse 1.8.0 (end of life; `make deepsparse-venv`) also runs ONNX
exports (opset 14) of the dense and masked models, with the masks squashed into the weights. It
runs in its own process (`deepsparse_worker.py`), so its ratio is against this process's dense
time measured a few seconds apart; its output is compared with the masked model's.

    python benchmarks/end_to_end.py                # both models
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


def linear_bytes(model: torch.nn.Module) -> int:
    """Bytes of the Linear weights as stored (dense fp32, or the compressed format)."""
    total = 0
    for m in model.modules():
        if isinstance(m, torch.nn.Linear):
            total += m.weight.numel() * 4
    total += sum(m.nbytes for m in sparse_layers(model).values())
    return total


def variants(make, prune_cfgs, rows: int, threads: int):
    """(name, model) for dense, then each pruning config pruned+masked and pruned+compiled."""
    dense = make()
    yield "dense", dense
    for name, kwargs in prune_cfgs:
        model = copy.deepcopy(dense)
        st.prune(model, "magnitude", **kwargs)
        yield f"{name} masked", model
        compiled = sparse_compile(copy.deepcopy(model), batch=rows, threads=threads)
        yield f"{name} compiled", compiled


def run_model(label, make, inputs, prune_cfgs, threads, budget, deepsparse=None):
    rows_out = []
    for batch_label, (args, rows) in inputs.items():
        torch.set_num_threads(threads)
        models = dict(variants(make, prune_cfgs, rows, threads))
        outs, ref_out = {}, None
        with torch.inference_mode():
            for name, model in models.items():
                model.eval()
                out = model(*args)
                outs[name] = out.last_hidden_state if hasattr(out, "last_hidden_state") else out
            with LoadMeter() as load:  # all variants in rounds: the machine's drift hits them alike
                timed = time_interleaved(
                    {name: (lambda m=model, a=args: m(*a)) for name, model in models.items()},
                    budget_s=budget,
                    max_reps=30,
                )
        base = timed["dense"]
        for name, model in models.items():
            ms = timed[name]
            if name.endswith("masked"):
                ref_out = outs[name]
            err = (outs[name] - ref_out).abs().max().item() if name.endswith("compiled") else 0.0
            formats = {}
            for m in sparse_layers(model).values():
                key = m.format_name if m.format_name != "nm" else f"nm{m.meta['n']}:{m.meta['m']}"
                formats[key] = formats.get(key, 0) + 1
            row = {
                "model": label,
                "batch": batch_label,
                "variant": name,
                "ms": ms,
                "speedup": base / ms,
                "linear_MB": linear_bytes(model) / 1e6,
                "max_abs_err_vs_masked": err,
                "formats": formats,
                "threads": threads,
                "foreign_cores": load.foreign,
            }
            rows_out.append(row)
            print(
                f"| {label} | {batch_label} | {name} | {ms:.3f} | {base / ms:.2f}x | {row['linear_MB']:.2f} | "
                f"{formats or ''} | {err:.1e} | {load.foreign:.2f} |"
            )
            sys.stdout.flush()
        if deepsparse:
            for name, model in models.items():
                if name == "dense" or name.endswith("masked"):
                    rows_out.append(
                        deepsparse_row(
                            deepsparse,
                            label,
                            batch_label,
                            name,
                            model,
                            args,
                            outs[name],
                            base,
                            threads,
                            budget,
                        )
                    )
    return rows_out


class _FirstOutput(torch.nn.Module):
    """The model's first output as a plain tensor (what ONNX export needs)."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, *args):
        out = self.model(*args)
        return out.last_hidden_state if hasattr(out, "last_hidden_state") else out


def deepsparse_row(venv, label, batch_label, name, model, args, ref_out, base, threads, budget) -> dict:
    """DeepSparse 1.8.0 on an ONNX export of `model` (masks squashed into the weights), timed in
    its own venv by `deepsparse_worker.py`; its output is checked against ours."""
    plain = squash(copy.deepcopy(model)).eval()
    with tempfile.TemporaryDirectory() as tmp:
        onnx_path, in_path, out_path = (os.path.join(tmp, f) for f in ("m.onnx", "in.npz", "y.npy"))
        names = [f"in{i}" for i in range(len(args))]
        # opset 14: the first with scaled_dot_product_attention; the TorchScript exporter (deprecated,
        # but it needs no onnxscript)
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            torch.onnx.export(
                _FirstOutput(plain), args, onnx_path, dynamo=False, opset_version=14, input_names=names
            )
        np.savez(in_path, **{n: a.numpy() for n, a in zip(names, args, strict=True)})
        try:
            result = deepsparse_worker.run(
                venv,
                "onnx",
                onnx_path,
                "--inputs",
                in_path,
                "--output",
                out_path,
                threads=threads,
                budget=budget,
            )
        except RuntimeError as e:
            raise SystemExit(f"DeepSparse failed on {label} {name}: {e}") from e
        ms = next(iter(result.values()))
        err = float(np.abs(np.load(out_path) - ref_out.numpy()).max())
    row = {
        "model": label,
        "batch": batch_label,
        "variant": f"deepsparse {name.removesuffix(' masked')}",
        "ms": ms,
        "speedup": base / ms,
        "linear_MB": None,
        "max_abs_err_vs_masked": err,
        "formats": {},
        "threads": threads,
        "foreign_cores": None,
    }
    print(
        f"| {label} | {batch_label} | {row['variant']} | {ms:.3f} | {base / ms:.2f}x |  |  | {err:.1e} | own process |"
    )
    sys.stdout.flush()
    return row


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", default="lenet,minilm")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--budget", type=float, default=1.0, help="seconds of repetitions per measurement")
    p.add_argument("--json", default=None)
    p.add_argument(
        "--deepsparse",
        default=None,
        metavar="VENV",
        help="also time DeepSparse 1.8.0 (from this venv) on ONNX exports of the dense and pruned models",
    )
    args = p.parse_args(argv)
    print(
        "| model | batch | variant | ms | speedup vs dense | Linear weights MB | compiled formats | "
        "max err vs masked | foreign load (cores) |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    prune_cfgs = [("90%", {"sparsity": 0.9}), ("2:4", {"sparsity": None, "pattern": "2:4"})]
    rows = []
    if "lenet" in args.models:
        make = lambda: st.create_model("lenet-300-100", seed=0)  # noqa: E731
        inputs = {"1": ((torch.randn(1, 784),), 1), "32": ((torch.randn(32, 784),), 32)}
        rows += run_model(
            "LeNet-300-100", make, inputs, prune_cfgs, args.threads, args.budget, args.deepsparse
        )
    if "minilm" in args.models:
        from sparsetorch.models.hf import load_minilm

        model, tok = load_minilm()
        make = lambda: copy.deepcopy(model)  # noqa: E731
        texts = ["Sparse kernels turn pruning into measured speed on ordinary CPUs."] * 32

        def enc(n):
            e = tok(texts[:n], padding="max_length", max_length=128, truncation=True, return_tensors="pt")
            return (e["input_ids"], e["attention_mask"])

        inputs = {"1x128": (enc(1), 128), "32x128": (enc(32), 32 * 128)}
        rows += run_model(
            "all-MiniLM-L6-v2", make, inputs, prune_cfgs, args.threads, args.budget, args.deepsparse
        )
    if not args.deepsparse:
        print("DeepSparse: not run (pass --deepsparse VENV; `make deepsparse-venv` builds one)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    return 0


if __name__ == "__main__":
    t0 = time.time()
    rc = main()
    print(f"total {time.time() - t0:.0f} s", file=sys.stderr)
    raise SystemExit(rc)
