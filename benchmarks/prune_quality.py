"""Quality and time of every one-shot method on real models: MiniLM fidelity, tiny-GPT perplexity.

    python benchmarks/prune_quality.py [--models minilm gpt] [--methods ...] [--levels 0.5 0.7 2:4]
                                       [--samples 128] [--json results.json]

Each row prunes a fresh copy of the dense model (calibration: stdlib docstrings for MiniLM,
Shakespeare train works for the GPT) and evaluates on held-out data (docstring sentences of the
test split; the test works). Prints one table per model and the orderings the papers claim.
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
import time

import torch
from rich.console import Console
from rich.table import Table

from sparsetorch.papers.pruning_experiments import gpt_runs, grid, minilm_runs

METHODS = ["magnitude", "random", "wanda", "sparsegpt", "dsnot", "icbs"]


def table(title: str, rows: list[dict], metric: str) -> Table:
    out = Table(title=title, header_style="bold")
    for name in ("setting", metric, "mean layer error", "seconds"):
        out.add_column(name, justify="left" if name == "setting" else "right")
    for row in rows:
        error = row.get("mean_error")
        out.add_row(
            row["setting"],
            f"{row[metric]:.4f}",
            "-" if error is None else f"{error:.4f}",
            "-" if "seconds" not in row else f"{row['seconds']:.1f}",
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--models", nargs="+", default=["minilm", "gpt"], choices=["minilm", "gpt"])
    parser.add_argument("--methods", nargs="+", default=METHODS)
    parser.add_argument("--levels", nargs="+", default=["0.5", "0.7", "2:4"])
    parser.add_argument("--samples", type=int, default=128)
    parser.add_argument("--eval-chars", type=int, default=None, help="GPT: evaluate on this many test chars")
    parser.add_argument("--minilm-samples", type=int, default=None, help="calibration samples for MiniLM")
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--json", default=None, help="write all rows to this file")
    args = parser.parse_args()
    levels = [lv if ":" in lv else float(lv) for lv in args.levels]
    settings = grid(args.methods, levels)
    console = Console(width=140)
    console.print(f"torch threads: {torch.get_num_threads()}, samples {args.samples} x {args.seq_len} tokens")
    results = {}
    start = time.perf_counter()

    def show(row: dict) -> None:
        metric = "cosine" if "cosine" in row else "perplexity"
        console.print(
            f"  {row['setting']}: {metric} {row[metric]:.4f}, error {row['mean_error']:.4f}, "
            f"{row['seconds']:.1f} s",
            highlight=False,
        )

    if "gpt" in args.models:
        rows = gpt_runs(
            settings, samples=args.samples, seq_len=args.seq_len, eval_chars=args.eval_chars, on_row=show
        )
        results["gpt"] = rows
        console.print(table("tiny GPT: perplexity on held-out Shakespeare works", rows, "perplexity"))
    if "minilm" in args.models:
        samples = args.minilm_samples or args.samples
        rows = minilm_runs(settings, samples=samples, seq_len=args.seq_len, on_row=show)
        results["minilm"] = rows
        title = f"all-MiniLM-L6-v2 ({samples} calibration windows): embedding cosine to dense (held-out sentences)"
        console.print(table(title, rows, "cosine"))
    console.print(f"total {time.perf_counter() - start:.0f} s")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2, default=str)


if __name__ == "__main__":
    main()
