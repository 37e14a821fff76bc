"""Cost of sparse training vs dense: masked step time and the share spent in mask updates.

For LeNet-5 and ResNet-20 on Fashion-MNIST, `sparsetorch.training.fit` runs the same number of
SGD steps (same data, batch, seed) with no method (dense), with static masks (`random-pruning`,
the cost of the mask parametrization alone) and with the dynamic methods `rigl`, `set` and
`granet` (default update interval: every 100 steps). Printed per row: ms per step, the ratio to
dense (target <= 1.15x for a masked step), and the share of time in mask updates (target <= 5%).
Methods run in `--repeats` interleaved rounds and the median is printed, with the spread.
Foreign CPU load during each run is measured from /proc/stat; above 0.25 cores the row is
flagged.

    python benchmarks/training_overhead.py [--steps 300] [--json out.json]
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
import statistics

import torch

from benchmarks._machine import LoadMeter
from sparsetorch.data import load_fashion_mnist
from sparsetorch.models import create_model
from sparsetorch.training import fit

METHODS = ("dense", "random-pruning", "rigl", "set", "granet")


def run(model_name: str, method: str, *, steps: int, batch: int, sparsity: float) -> dict:
    x, y = load_fashion_mnist("train").tensors
    n = steps * batch
    model = create_model(model_name, seed=0)
    chosen = None if method == "dense" else method
    if chosen is not None:
        from sparsetorch.discovery import create_method

        chosen = create_method(method, sparsity=sparsity, seed=0)
    with LoadMeter() as load:
        m = fit(model, chosen, (x[:n], y[:n]), epochs=1, batch_size=batch, seed=0, progress=False)
    return {
        "model": model_name,
        "method": method,
        "steps": m["steps"],
        "ms_per_step": 1e3 * m["seconds"] / m["steps"],
        "update_share": m["mask_update_seconds"] / m["seconds"],
        "updates": m["mask_updates"],
        "foreign_cores": load.foreign,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", default="lenet-5,resnet-20")
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--sparsity", type=float, default=0.9)
    p.add_argument("--repeats", type=int, default=3, help="rounds over all methods (median reported)")
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.steps} steps of {args.batch}, "
        f"median of {args.repeats} interleaved rounds"
    )
    print("| model | method | ms/step | vs dense | spread | mask-update share | updates | foreign load |")
    print("|---|---|---|---|---|---|---|---|")
    rows = []
    for model_name in args.models.split(","):
        run(model_name, "dense", steps=5, batch=args.batch, sparsity=args.sparsity)  # warm-up, discarded
        # Rounds interleave the methods: a drift of the machine's speed during the run (seen here:
        # the same dense run 8 -> 13 ms/step within minutes) then hits every method alike.
        runs: dict[str, list[dict]] = {m: [] for m in METHODS}
        for _ in range(args.repeats):
            for method in METHODS:
                runs[method].append(
                    run(model_name, method, steps=args.steps, batch=args.batch, sparsity=args.sparsity)
                )
        dense_ms = statistics.median(r["ms_per_step"] for r in runs["dense"])
        for method, results in runs.items():
            times = [r["ms_per_step"] for r in results]
            r = {
                **results[0],
                "ms_per_step": statistics.median(times),
                "ms_per_step_all": times,
                "update_share": statistics.median(r["update_share"] for r in results),
                "foreign_cores": max(r["foreign_cores"] for r in results),
            }
            r["vs_dense"] = r["ms_per_step"] / dense_ms
            rows.append(r)
            flag = " (unreliable)" if r["foreign_cores"] > 0.25 else ""
            print(
                f"| {model_name} | {method} | {r['ms_per_step']:.2f} | {r['vs_dense']:.3f}x | "
                f"{min(times):.2f}-{max(times):.2f} | {r['update_share']:.2%} | {r['updates']} | "
                f"{r['foreign_cores']:.2f}{flag} |"
            )
            sys.stdout.flush()
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
