"""llm-compressor side of `prune_speed.py`: prune all-MiniLM-L6-v2 with `oneshot`, and read the result back.

Two halves that share one protocol (the command line, the output files and `results.json`'s keys):

- run as a script with the python of a SEPARATE virtual environment that has llm-compressor
  installed (`main`); it never imports sparsetorch (llm-compressor is not, and must not become, a
  sparsetorch dependency):

      /tmp/llmc/bin/python benchmarks/_llmcompressor_worker.py --model-dir DIR --ids ids.safetensors \
          --out-dir OUT [--configs wanda:unstructured,sparsegpt:2:4] [--threads 2]

- imported by `prune_speed.py` in sparsetorch's venv: `run_llmcompressor` starts the script and reads
  its results, `compare` sets llm-compressor's pruned weights against ours.

A warm-up `oneshot` (Wanda, one batch) runs first, untimed in the runs: the first call of a process
pays one-time costs (reported as `warmup_seconds`); `--no-warmup` skips it.

Inputs: the model directory (`sparsetorch.models.hf.minilm_path()`) and a safetensors file whose
`input_ids` (samples, seq_len) int64 tensor holds the calibration windows that sparsetorch calibrates
on, so that both libraries see the same token ids in the same batches (no special tokens, attention
over every position: sparsetorch calls the model on bare `input_ids`, the same as an all-ones mask).

For each config `METHOD:PATTERN` (METHOD `wanda` or `sparsegpt`; PATTERN `unstructured` or `2:4`):
a fresh `AutoModel` is loaded, `oneshot(model, dataset=DataLoader, recipe=[Modifier(...)])` prunes
it (sparsity 0.5, `mask_structure` "0:0" or "2:4", targets Linear, the unused pooler ignored as
sparsetorch ignores it, sequential targets `BertLayer`: the encoder layers, as sparsetorch's
`blocks_fqn`), the wall time of the `oneshot` call is measured, and the pruned Linear weights are
written to OUT/<method>_<pattern>.safetensors. OUT/results.json lists per config the seconds, the
file, or the error (type, message, traceback) when llm-compressor fails: failures are reported,
never papered over.

Only the standard library is imported at module level: each half imports what it uses.
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
import resource
import subprocess
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchmarks._machine import LoadMeter, peak_rss, reset_peak_rss

if TYPE_CHECKING:
    from torch import Tensor, nn

IGNORE = ["re:.*pooler.*"]  # the unused pooler, as sparsetorch's MiniLM excludes it


# --- in llm-compressor's venv --------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model-dir", required=True)
    parser.add_argument("--ids", required=True, help="safetensors file with an int64 `input_ids` tensor")
    parser.add_argument("--out-dir", required=True)
    configs = "wanda:unstructured,wanda:2:4,sparsegpt:unstructured,sparsegpt:2:4"
    parser.add_argument("--configs", default=configs)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--sparsity", type=float, default=0.5)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--sequential-targets", default="BertLayer")
    parser.add_argument(
        "--no-warmup", dest="warmup", action="store_false", help="time the process's first oneshot call too"
    )
    return parser.parse_args()


def load_model(model_dir: str):
    from transformers import AutoModel

    model = AutoModel.from_pretrained(model_dir, local_files_only=True, use_safetensors=True)
    return model.eval()


def loader(samples: list[dict], batch_size: int):
    import torch
    from torch.utils.data import DataLoader

    def collate(items: list[dict]) -> dict:
        return {k: torch.stack([it[k] for it in items]) for k in items[0]}

    return DataLoader(samples, batch_size=batch_size, shuffle=False, collate_fn=collate)


def warmup(args: argparse.Namespace, samples: list[dict]) -> float:
    """One untimed Wanda `oneshot` on one batch: the process's one-time costs (lazy imports, the first
    torch.fx trace of the model's code), kept out of the timed runs."""
    from llmcompressor import oneshot
    from llmcompressor.modifiers.pruning import WandaPruningModifier

    model = load_model(args.model_dir)
    recipe = [WandaPruningModifier(sparsity=args.sparsity, targets=["Linear"], ignore=IGNORE)]
    t = time.perf_counter()
    oneshot(
        model=model,
        dataset=loader(samples[: args.batch_size], args.batch_size),
        recipe=recipe,
        sequential_targets=[args.sequential_targets],
        pipeline="sequential",
    )
    return time.perf_counter() - t


def prune_config(args: argparse.Namespace, samples: list[dict], method: str, pattern: str, run: dict) -> None:
    """Prune a fresh model with one config; record time, load and memory in `run`; save its weights."""
    import torch
    from llmcompressor import oneshot
    from llmcompressor.modifiers.pruning import SparseGPTModifier, WandaPruningModifier
    from safetensors.torch import save_file

    t = time.perf_counter()
    model = load_model(args.model_dir)
    run["load_seconds"] = time.perf_counter() - t
    modifier = {"wanda": WandaPruningModifier, "sparsegpt": SparseGPTModifier}[method](
        sparsity=args.sparsity,
        mask_structure="0:0" if pattern == "unstructured" else pattern,
        targets=["Linear"],
        ignore=IGNORE,
    )
    dataset = loader(samples, args.batch_size)
    rss_before = reset_peak_rss()
    with LoadMeter() as load:
        t = time.perf_counter()
        oneshot(
            model=model,
            dataset=dataset,
            recipe=[modifier],
            num_calibration_samples=len(samples),
            max_seq_length=int(samples[0]["input_ids"].shape[0]),
            sequential_targets=[args.sequential_targets],
            pipeline="sequential",
        )
        run["seconds"] = time.perf_counter() - t
    run |= {"foreign_cores": load.foreign, "rss_before_bytes": rss_before, "peak_rss_bytes": peak_rss()}
    run["process_peak_rss_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    weights = {
        f"{name}.weight": module.weight.detach().contiguous().clone()
        for name, module in model.named_modules()
        if isinstance(module, torch.nn.Linear)
    }
    run["file"] = os.path.join(args.out_dir, f"{method}_{pattern.replace(':', 'of')}.safetensors")
    save_file(weights, run["file"])


def run_config(args: argparse.Namespace, samples: list[dict], config: str) -> dict:
    """One config's entry in results.json: its numbers, or its error with the full traceback."""
    from loguru import logger

    method, _, pattern = config.partition(":")
    run: dict = {"method": method, "pattern": pattern}
    warnings: list[str] = []
    sink = logger.add(lambda msg, w=warnings: w.append(str(msg).strip()), level="WARNING")
    try:
        prune_config(args, samples, method, pattern, run)
    except Exception as err:  # reported to the caller as data, with the full traceback
        run["error"] = f"{type(err).__name__}: {err}"
        run["traceback"] = traceback.format_exc()
        print(f"[worker] {config} failed: {run['error']}", file=sys.stderr)
    finally:
        logger.remove(sink)
        run["warnings"] = warnings
        # SparseGPT's silent fallback to Hinv = I (block-wise magnitude pruning, no reconstruction)
        run["hessian_fallbacks"] = sum("Failed to invert hessian" in w for w in warnings)
    return run


def main() -> int:
    args = parse_args()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    t0 = time.perf_counter()
    import llmcompressor
    import torch
    from safetensors.torch import load_file

    import_seconds = time.perf_counter() - t0
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    os.makedirs(args.out_dir, exist_ok=True)
    ids = load_file(args.ids)["input_ids"].long()
    samples = [{"input_ids": row, "attention_mask": torch.ones_like(row)} for row in ids]
    results: dict = {
        "llmcompressor_version": getattr(llmcompressor, "__version__", "?"),
        "torch_version": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "import_seconds": import_seconds,
        "samples": int(ids.shape[0]),
        "seq_len": int(ids.shape[1]),
        "batch_size": args.batch_size,
    }
    if args.warmup:
        try:
            results["warmup_seconds"] = warmup(args, samples)
        except Exception as err:
            results["warmup_error"] = f"{type(err).__name__}: {err}"
    results["runs"] = [run_config(args, samples, config) for config in args.configs.split(",")]
    with open(os.path.join(args.out_dir, "results.json"), "w") as f:
        json.dump(results, f, indent=2)
    return 0


# --- in sparsetorch's venv -----------------------------------------------------------------------


def run_llmcompressor(
    venv: Path,
    model_dir: str,
    windows: Tensor,
    configs: list[tuple[str, str]],
    *,
    batch_size: int,
    workdir: Path,
) -> dict[str, Any]:
    """Run this script with the other venv's python; return its results.json (+ log, load, command)."""
    import torch
    from safetensors.torch import save_file

    ids_path, out_dir, log_path = (
        workdir / n for n in ("ids.safetensors", "llmcompressor", "llmcompressor.log")
    )
    save_file({"input_ids": windows.contiguous()}, str(ids_path))
    cmd = [str(venv / "bin" / "python"), os.path.abspath(__file__), "--model-dir", model_dir]
    cmd += ["--ids", str(ids_path), "--out-dir", str(out_dir), "--batch-size", str(batch_size)]
    cmd += ["--configs", ",".join(f"{m}:{p}" for m, p in configs), "--threads", str(torch.get_num_threads())]
    print(f"  running: {' '.join(cmd)}  (log: {log_path})")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    with open(log_path, "w") as log, LoadMeter(children=True) as load:
        proc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, check=False)
    results_path = out_dir / "results.json"
    if proc.returncode != 0 or not results_path.is_file():
        tail = log_path.read_text(errors="replace").splitlines()[-25:]
        return {
            "error": f"worker exited with status {proc.returncode}",
            "log": str(log_path),
            "log_tail": tail,
        }
    results = json.loads(results_path.read_text())
    results.update(log=str(log_path), foreign_cores_whole_worker=load.foreign, command=cmd)
    results["log_text"] = log_path.read_text(errors="replace")[-20000:]
    return results


def mask_agreement(ours: dict[str, Tensor], theirs: dict[str, Tensor]) -> dict[str, Any]:
    """Fraction of equal mask entries: all layers, block 0 (identical inputs in both libraries), worst."""
    equal = sum(int((ours[f] == theirs[f]).sum()) for f in ours)
    total = sum(ours[f].numel() for f in ours)
    per_layer = {f: float((ours[f] == theirs[f]).float().mean()) for f in ours}
    block0 = [v for f, v in per_layer.items() if ".layer.0." in f]
    return {
        "agreement": equal / total,
        "differing_entries": total - equal,
        "entries": total,
        "block0_agreement": sum(block0) / len(block0) if block0 else None,
        "worst_layer": min(per_layer, key=per_layer.get),
        "worst_layer_agreement": min(per_layer.values()),
        "per_layer": per_layer,
    }


def compare_run(dense: nn.Module, ours: dict[str, Any], run: dict[str, Any], quality: Callable) -> dict:
    """Their pruned weights against ours: sparsity, quality, mask agreement, kept-weight difference."""
    from safetensors.torch import load_file

    weights = load_file(run["file"])
    model = copy.deepcopy(dense)
    missing, unexpected = model.load_state_dict(weights, strict=False)
    if unexpected or any(k.endswith(".weight") and "dense" in k and "LayerNorm" not in k for k in missing):
        raise RuntimeError(f"llm-compressor weights do not match the model: {unexpected or missing}")
    theirs = {f: weights[f] != 0 for f in ours["masks"]}
    nonzero = sum(int(m.sum()) for m in theirs.values())
    both = {f: ours["masks"][f] & theirs[f] for f in theirs}
    num = sum(float((ours["weights"][f] - weights[f])[both[f]].pow(2).sum()) for f in both)
    den = sum(float(ours["weights"][f][both[f]].pow(2).sum()) for f in both)
    return {
        "their_sparsity": 1 - nonzero / sum(m.numel() for m in theirs.values()),
        "their_quality": quality(model),
        "mask": mask_agreement(ours["masks"], theirs),
        "kept_weight_rel_diff": (num / den) ** 0.5 if den > 0 else None,
    }


def compare(dense: nn.Module, kept: dict, llmc: dict[str, Any], quality: Callable) -> list[dict[str, Any]]:
    """One row per llm-compressor run: their numbers, ours (`kept[(method, pattern)]`) and the comparison."""
    rows = []
    for run in llmc.get("runs", []):
        ours = kept.get((run["method"], run["pattern"]))
        row: dict[str, Any] = {"method": run["method"], "pattern": run["pattern"], "theirs": dict(run)}
        if ours is not None:
            row["ours"] = {k: v for k, v in ours.items() if k not in ("masks", "weights")}
            if "error" not in run:
                row.update(compare_run(dense, ours, run, quality))
        rows.append(row)
    return rows


if __name__ == "__main__":
    sys.exit(main())
