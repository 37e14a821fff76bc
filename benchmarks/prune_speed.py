"""One-shot pruning speed: sparsetorch's methods on real models, and side by side with llm-compressor.

Measured per model, method and pattern (50 % unstructured and 2:4):

- wall time of `sparsetorch.prune` with `errors=False` and `errors=True` (the per-layer reconstruction
  error costs an in x in X^T X accumulation per layer for methods that do not need it);
- mean relative reconstruction error ||WX - W'X|| / ||WX|| over the pruned layers (errors on);
- calibration memory (`PruneReport.calibration_bytes`) and the peak resident set size *of that run*
  (VmHWM reset before each run; the table shows the peak and its rise over the RSS before the run);
- quality: all-MiniLM-L6-v2's sentence-embedding cosine fidelity to the dense model on held-out
  docstring sentences; the Shakespeare GPT's perplexity on held-out test text.

MiniLM (real weights, `load_minilm`) is calibrated on stdlib docstrings, the tiny byte-level GPT
(`pretrained("gpt-tiny")`) on Shakespeare: windows drawn once per model (`text_windows`, seed 0,
`--samples` x `--seq-len`), the very same token ids for every method and for llm-compressor.

llm-compressor (`--llmcompressor VENV`, default /tmp/llmc if it exists): its `oneshot` with
`WandaPruningModifier` / `SparseGPTModifier` runs in that OTHER venv's python (`_llmcompressor_worker.py`,
a subprocess; llm-compressor is never imported here) on the same MiniLM weights and token ids in the same
batches. The comparison shows both times (theirs / ours: > 1 means sparsetorch is faster), both pruned
models' embedding fidelity, and the fraction of equal mask entries (all layers, and block 0, whose
inputs are identical in both libraries). Whether our Wanda masks follow the reference rule is a
correctness question, answered by `tests/pruning/test_wanda_reference.py`, not measured here. An
untimed warm-up call precedes the timed runs on both sides.

Every group of numbers is printed with the torch thread count and the cores other processes kept busy
meanwhile (/proc/stat; a warning above a quarter of a core). On a small shared machine `--threads 1`
avoids OpenMP oversubscription; the worker gets the same thread count.

    python benchmarks/prune_speed.py                        # everything (tens of minutes: icbs)
    python benchmarks/prune_speed.py --threads 1 --json /tmp/prune_speed.json
    python benchmarks/prune_speed.py --quick --json /tmp/prune_speed.json
    python benchmarks/prune_speed.py --models minilm --methods wanda,sparsegpt --llmcompressor none
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
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.table import Table
from torch import Tensor, nn

import sparsetorch as st
from benchmarks._llmcompressor_worker import compare, run_llmcompressor
from benchmarks._machine import WARN_CORES, LoadMeter, idle_load, peak_rss, reset_peak_rss
from sparsetorch.evaluation import embedding_agreement, lm_perplexity
from sparsetorch.pruning.calibration_data import text_windows

METHODS = ("magnitude", "wanda", "sparsegpt", "dsnot", "icbs")
PATTERNS = ("unstructured", "2:4")
LLMC_METHODS = ("wanda", "sparsegpt")  # the methods llm-compressor has one-shot modifiers for
console = Console(width=None if sys.stdout.isatty() else 220)


# --- machine state and tables --------------------------------------------------------------------


def load_note(foreign: float) -> str:
    return f"[red]{foreign:.2f}[/red]" if foreign > WARN_CORES else f"{foreign:.2f}"


def warn_load(foreign: float, what: str) -> None:
    if foreign > WARN_CORES:
        console.print(
            f"[yellow]warning: other processes kept {foreign:.2f} of {os.cpu_count()} cores busy during "
            f"{what}: its times are inflated[/yellow]"
        )


def new_table(title: str, heads: list[str]) -> Table:
    """A table whose method and pattern columns are left-aligned and every number right-aligned."""
    table = Table(title=title, header_style="bold")
    for h in heads:
        table.add_column(h, justify="left" if h in ("method", "pattern") else "right")
    return table


def pair(a: float, b: float, fmt: str) -> str:
    """ "a / b" in one format: ours / theirs, or errors off / on."""
    return f"{fmt.format(a)} / {fmt.format(b)}"


# --- sparsetorch runs ----------------------------------------------------------------------------


def _sparsity(pattern: str) -> float | None:
    return None if ":" in pattern else 0.5


def run_ours(
    dense: nn.Module, windows: Tensor, method: str, pattern: str, *, errors: bool, batch_size: int
) -> tuple[nn.Module, dict[str, Any]]:
    """One timed `sparsetorch.prune` on a copy of `dense`: the pruned copy and its measurements."""
    model, sparsity = copy.deepcopy(dense), _sparsity(pattern)
    rss0 = reset_peak_rss()
    with LoadMeter() as load:
        rep = st.prune(
            model, method, sparsity, pattern, calibration=windows, errors=errors, batch_size=batch_size
        )
    return model, {
        "method": method,
        "pattern": pattern,
        "errors": errors,
        "seconds": rep.seconds,
        "mean_error": rep.mean_error,
        "sparsity": rep.sparsity,
        "calibration_bytes": rep.calibration_bytes,
        "rss_before_bytes": rss0,
        "peak_rss_bytes": peak_rss(),
        "process_peak_rss_bytes": rep.peak_rss_bytes,
        "foreign_cores": load.foreign,
        "layers": [{"fqn": r.fqn, "error": r.error, "seconds": r.seconds} for r in rep.layers],
    }


def result_row(name: str, off: dict[str, Any], on: dict[str, Any], same: bool, quality: dict) -> dict:
    """The JSON row of one method x pattern from its errors-off and errors-on runs."""
    row = {"model": name, "method": off["method"], "pattern": off["pattern"]}
    for when, run in (("off", off), ("on", on)):
        row[f"seconds_errors_{when}"] = run["seconds"]
    row |= {"mean_error": on["mean_error"], "sparsity": on["sparsity"]}
    for when, run in (("off", off), ("on", on)):
        row[f"calibration_bytes_errors_{when}"] = run["calibration_bytes"]
    row["peak_rss_bytes"] = max(off["peak_rss_bytes"], on["peak_rss_bytes"])
    for when, run in (("off", off), ("on", on)):
        row[f"rss_rise_bytes_errors_{when}"] = run["peak_rss_bytes"] - run["rss_before_bytes"]
    row["foreign_cores"] = max(off["foreign_cores"], on["foreign_cores"])
    return row | {"same_masks_errors_on_off": same, **quality, "runs": {"errors_off": off, "errors_on": on}}


def time_model(
    name: str, dense: nn.Module, windows: Tensor, args: argparse.Namespace, *, quality, keep: set
) -> tuple[list[dict[str, Any]], dict[tuple[str, str], dict[str, Any]]]:
    """Time every method x pattern with errors off and on; `quality(model)` -> dict for the errors-off model.

    Returns the rows and, for (method, pattern) in `keep`, our masks and effective weights.
    """
    rows, kept, bs = [], {}, args.batch_size
    # One-time costs of the first prune call (lazy imports, first kernels) stay out of the timed runs.
    st.prune(copy.deepcopy(dense), "wanda", 0.5, calibration=windows[:bs], batch_size=bs)
    for method in args.methods:
        for pattern in args.patterns:
            off_model, off = run_ours(dense, windows, method, pattern, errors=False, batch_size=bs)
            off_masks = {f: m.clone() for f, m in st.get_masks(off_model).items()}
            on_model, on = run_ours(dense, windows, method, pattern, errors=True, batch_size=bs)
            same = all(torch.equal(off_masks[f], m) for f, m in st.get_masks(on_model).items())
            del on_model
            quality_row = quality(off_model)
            if (method, pattern) in keep:
                measured = ("seconds", "sparsity", "peak_rss_bytes", "rss_before_bytes", "foreign_cores")
                get = off_model.get_submodule
                weights = {f: get(f.removesuffix(".weight")).weight.detach().clone() for f in off_masks}
                kept[(method, pattern)] = {"masks": off_masks, "weights": weights, **quality_row}
                kept[(method, pattern)] |= {k: off[k] for k in measured}
            del off_model
            row = result_row(name, off, on, same, quality_row)
            rows.append(row)
            q = ", ".join(f"{k} {v:.4f}" for k, v in quality_row.items() if isinstance(v, float))
            console.print(
                f"  {name} {method:9s} {pattern:12s} {off['seconds']:7.2f} s (errors off) "
                f"{on['seconds']:7.2f} s (on)  {q}  foreign {row['foreign_cores']:.2f} cores"
            )
            warn_load(row["foreign_cores"], f"{name} {method} {pattern}")
    return rows, kept


def ours_table(title: str, rows: list[dict[str, Any]], quality_cols: list[tuple[str, str, str]]) -> Table:
    heads = "method|pattern|time s\nerrors off|time s\nerrors on|errors\ncost|mean rel.\nerror|sparsity"
    heads += "|calib. MB\noff / on|peak RSS MB\n(rise off / on)"
    table = new_table(title, [*heads.split("|"), *[c[1] for c in quality_cols], "foreign\ncores"])
    for r in rows:
        off, on = r["seconds_errors_off"], r["seconds_errors_on"]
        cells = [r["method"], r["pattern"], f"{off:.2f}", f"{on:.2f}", f"{on / off:.2f}x"]
        cells += ["-" if r["mean_error"] is None else f"{r['mean_error']:.4f}", f"{r['sparsity']:.1%}"]
        calib = [r[f"calibration_bytes_errors_{w}"] / 1e6 for w in ("off", "on")]
        rise = pair(r["rss_rise_bytes_errors_off"] / 1e6, r["rss_rise_bytes_errors_on"] / 1e6, "{:.0f}")
        cells += [pair(*calib, "{:.1f}"), f"{r['peak_rss_bytes'] / 1e6:.0f} ({rise})"]
        cells += [fmt.format(r[key]) for key, _, fmt in quality_cols]
        table.add_row(*cells, load_note(r["foreign_cores"]))
    same = sum(r["same_masks_errors_on_off"] for r in rows)
    table.caption = (
        f"masks identical with errors off and on: {same} of {len(rows)} settings. calib. MB = "
        "PruneReport.calibration_bytes (one block's activations + statistics); RSS rise = VmHWM during the "
        "run minus RSS before it"
    )
    return table


# --- llm-compressor ------------------------------------------------------------------------------


def comparison_table(rows: list[dict[str, Any]], threads: int, our_batch: int) -> Table:
    heads = "method|pattern|ours s|theirs s|theirs /\nours|cosine\nours|cosine\ntheirs|"
    heads += "top-1 NN\nours / theirs|sparsity\nours / theirs|mask agreement\nall / block 0|kept-weight\nrel. diff|"
    heads += "RSS rise MB\nours / theirs|foreign cores\nours / theirs"
    title = f"all-MiniLM-L6-v2: sparsetorch vs llm-compressor oneshot (same token ids, batch {our_batch}, "
    table = new_table(f"{title}{threads} torch threads)", heads.split("|"))
    for r in rows:
        theirs, ours = r["theirs"], r.get("ours")
        if "error" in theirs or ours is None:
            why = theirs.get("error", "no sparsetorch run for this config")
            table.add_row(r["method"], r["pattern"], "-", f"[red]failed: {why[:80]}[/red]", *["-"] * 9)
            continue
        q, diff, mask = r["their_quality"], r["kept_weight_rel_diff"], r["mask"]
        cells = [r["method"], r["pattern"], f"{ours['seconds']:.2f}", f"{theirs['seconds']:.2f}"]
        ratio = theirs["seconds"] / ours["seconds"]
        cells += [f"{ratio:.1f}x", f"{ours['cosine']:.4f}", f"{q['cosine']:.4f}"]
        cells.append(pair(ours["top1_agreement"], q["top1_agreement"], "{:.3f}"))
        cells.append(pair(ours["sparsity"], r["their_sparsity"], "{:.2%}"))
        cells.append(pair(mask["agreement"], mask["block0_agreement"], "{:.3%}"))
        cells.append("-" if diff is None else f"{diff:.2e}")
        rises = [(x["peak_rss_bytes"] - x["rss_before_bytes"]) / 1e6 for x in (ours, theirs)]
        cells.append(pair(*rises, "{:.0f}"))
        cells.append(pair(ours["foreign_cores"], theirs.get("foreign_cores", float("nan")), "{:.2f}"))
        table.add_row(*cells)
    return table


def report_llmcompressor(llmc: dict[str, Any], threads: int, batch_size: int) -> None:
    """Print the worker's one-time costs, SparseGPT fallbacks, the comparison table and load warnings."""
    warm = llmc.get("warmup_seconds")
    warm_note = "" if warm is None else f", first-call warm-up (1 batch) {warm:.1f} s"
    load_s = sum(r.get("load_seconds", 0) for r in llmc["runs"]) / len(llmc["runs"])
    console.print(
        f"llm-compressor {llmc['llmcompressor_version']} (torch {llmc['torch_version']}, "
        f"{llmc['torch_threads']} threads): import {llmc['import_seconds']:.1f} s, model load "
        f"~{load_s:.2f} s per run{warm_note} (none counted in the times below); other processes busy on "
        f"{llmc['foreign_cores_whole_worker']:.2f} cores during the worker"
    )
    for run in llmc["runs"]:
        if run.get("hessian_fallbacks"):
            console.print(
                f"[yellow]llm-compressor {run['method']} {run['pattern']}: Cholesky failed on "
                f"{run['hessian_fallbacks']} layer(s) and fell back to Hinv = I[/yellow]"
            )
    console.print(comparison_table(llmc["comparisons"], threads, batch_size))
    for r in llmc["comparisons"]:
        warn_load(r["theirs"].get("foreign_cores", 0.0), f"llm-compressor {r['method']} {r['pattern']}")


# --- main ----------------------------------------------------------------------------------------


def csv(value: str) -> list[str]:
    return value.split(",")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    default_venv = "/tmp/llmc" if os.path.isdir("/tmp/llmc") else "none"
    add = parser.add_argument
    add("--quick", action="store_true", help="magnitude, wanda, sparsegpt; 32 samples")
    add("--json", type=Path, help="write every number here")
    add(
        "--llmcompressor",
        default=default_venv,
        help=f"venv with llm-compressor (default {default_venv}); 'none' skips it",
    )
    add("--samples", type=int, help="calibration windows (default 128; 32 with --quick)")
    add("--seq-len", type=int, default=128, help="tokens per window (default 128)")
    add("--batch-size", type=int, default=8, help="calibration batch size, both libraries")
    add("--models", default="minilm,gpt", type=csv, help="comma list of minilm, gpt")
    add("--methods", type=csv, help=f"comma list (default {','.join(METHODS)})")
    add("--patterns", default=",".join(PATTERNS), type=csv)
    add("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    add("--sentences", type=int, help="held-out MiniLM sentences (default 512; 128 quick)")
    add("--eval-chars", type=int, help="GPT test characters (default 100000; 20000 quick)")
    args = parser.parse_args()
    args.methods = args.methods or (["magnitude", "wanda", "sparsegpt"] if args.quick else list(METHODS))
    args.samples = args.samples or (32 if args.quick else 128)
    args.eval_chars = args.eval_chars or (20_000 if args.quick else 100_000)
    args.sentences = args.sentences or (128 if args.quick else 512)
    unknown = set(args.methods) - set(METHODS) or set(args.patterns) - set(PATTERNS)
    unknown = unknown or set(args.models) - {"minilm", "gpt"}
    if unknown:
        parser.error(f"unknown choice(s): {', '.join(sorted(unknown))}")
    return args


def environment(args: argparse.Namespace) -> dict[str, Any]:
    """Set the thread count, print and return the machine's state before any measurement."""
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    env = {"torch": torch.__version__, "torch_threads": threads, "cpu_count": os.cpu_count()}
    env["foreign_cores_idle_1s"] = idle_load()
    env |= {k: getattr(args, k) for k in ("samples", "seq_len", "batch_size", "sentences")}
    env |= {"gpt_eval_chars": args.eval_chars, "methods": args.methods, "patterns": args.patterns}
    env["argv"] = sys.argv
    console.print(
        f"torch {torch.__version__}, {threads} torch threads, {os.cpu_count()} CPUs; other processes busy "
        f"on {env['foreign_cores_idle_1s']:.2f} cores (1 s idle reading of /proc/stat); calibration "
        f"{args.samples} x {args.seq_len} tokens, batch {args.batch_size}"
    )
    warn_load(env["foreign_cores_idle_1s"], "the idle reading")
    if threads > 1 and env["foreign_cores_idle_1s"] > 0.5:  # a descheduled OpenMP thread stalls every op
        console.print(
            f"[yellow]hint: other processes are busy: --threads 1 is steadier than {threads}[/yellow]"
        )
    return env


def bench_minilm(args: argparse.Namespace, out: dict[str, Any]) -> None:
    from sparsetorch.data import docstring_sentences
    from sparsetorch.models.hf import embed, load_minilm

    dense, tokenizer = load_minilm()
    texts = docstring_sentences("test", n=args.sentences)
    dense_emb = embed(dense, tokenizer, texts)
    windows = text_windows(dense, "stdlib-docstrings", samples=args.samples, seq_len=args.seq_len, seed=0)

    def quality(model: nn.Module) -> dict[str, Any]:
        return embedding_agreement(dense_emb, embed(model, tokenizer, texts))

    configs = [(m, p) for m in LLMC_METHODS if m in args.methods for p in args.patterns]
    console.rule(f"all-MiniLM-L6-v2 · sparsetorch · stdlib-docstrings {tuple(windows.shape)}")
    rows, kept = time_model("minilm", dense, windows, args, quality=quality, keep=set(configs))
    out["sparsetorch"] += rows
    title = (
        f"all-MiniLM-L6-v2 (22.7M params, 36 Linear) · sparsetorch.prune · {torch.get_num_threads()} torch"
    )
    cols = [("cosine", "cosine\nvs dense", "{:.4f}"), ("top1_agreement", "top-1 NN\nagreement", "{:.3f}")]
    console.print(ours_table(f"{title} threads", rows, cols))
    bench_llmcompressor(args, out, dense=dense, windows=windows, kept=kept, configs=configs, quality=quality)


def bench_llmcompressor(
    args: argparse.Namespace,
    out: dict[str, Any],
    *,
    dense: nn.Module,
    windows: Tensor,
    kept: dict[tuple[str, str], dict[str, Any]],
    configs: list[tuple[str, str]],
    quality: Callable[[nn.Module], dict[str, Any]],
) -> None:
    """The same configs through llm-compressor's `oneshot` in its own venv, compared with ours."""
    from sparsetorch.models.hf import minilm_path

    venv = Path(args.llmcompressor) if args.llmcompressor != "none" else None
    if venv is None:
        return console.print("llm-compressor comparison skipped (--llmcompressor none)")
    if not (venv / "bin" / "python").is_file():
        return console.print(
            f"llm-compressor comparison skipped: no python in {venv} (pass --llmcompressor VENV)"
        )
    if not configs:
        return console.print("llm-compressor comparison skipped: neither wanda nor sparsegpt selected")
    console.rule("all-MiniLM-L6-v2 · llm-compressor oneshot (subprocess, other venv)")
    with tempfile.TemporaryDirectory(prefix="prune_speed_") as tmp:
        llmc = run_llmcompressor(
            venv, str(minilm_path()), windows, configs, batch_size=args.batch_size, workdir=Path(tmp)
        )
        if "error" in llmc:
            console.print(f"[red]llm-compressor worker failed: {llmc['error']}[/red]")
            console.print("\n".join(llmc["log_tail"]))
        else:
            for run in llmc["runs"]:
                if "error" in run:
                    console.print(
                        f"[red]llm-compressor {run['method']} {run['pattern']}: {run['error']}[/red]"
                    )
                    console.print(run["traceback"])
            llmc["comparisons"] = compare(dense, kept, llmc, quality)
    out["llmcompressor"] = llmc
    if "comparisons" in llmc:
        report_llmcompressor(llmc, torch.get_num_threads(), args.batch_size)


def bench_gpt(args: argparse.Namespace, out: dict[str, Any]) -> None:
    from sparsetorch.data import load_shakespeare
    from sparsetorch.models.gpt import encode
    from sparsetorch.models.pretrained import pretrained

    dense = pretrained("gpt-tiny")
    dense.eval()
    seq_len = min(args.seq_len, dense.config.block_size)  # no longer windows than its positions
    test_ids = encode(load_shakespeare("test")[: args.eval_chars])
    windows = text_windows(dense, "shakespeare", samples=args.samples, seq_len=seq_len, seed=0)

    def quality(model: nn.Module) -> dict[str, Any]:
        with torch.inference_mode():
            return lm_perplexity(model, test_ids, seq_len=seq_len)

    dense_ppl = quality(dense)["perplexity"]
    console.rule(f"tiny GPT · sparsetorch · shakespeare {tuple(windows.shape)}")
    rows, _ = time_model("gpt", dense, windows, args, quality=quality, keep=set())
    out["sparsetorch"] += rows
    out["gpt_dense_perplexity"] = dense_ppl
    n_params = sum(p.numel() for p in dense.parameters())
    title = (
        f"tiny GPT ({n_params / 1e6:.2f}M params) · sparsetorch.prune · {torch.get_num_threads()} torch threads"
        f" · dense test perplexity {dense_ppl:.3f} ({args.eval_chars:,} chars)"
    )
    console.print(ours_table(title, rows, [("perplexity", "test\nperplexity", "{:.3f}")]))


def main() -> int:
    args = parse_args()
    env = environment(args)
    out: dict[str, Any] = {"env": env, "sparsetorch": [], "llmcompressor": None}
    if "minilm" in args.models:
        bench_minilm(args, out)
    if "gpt" in args.models:
        bench_gpt(args, out)
    env["foreign_cores_idle_1s_end"] = idle_load()
    console.print(
        f"other processes busy on {env['foreign_cores_idle_1s_end']:.2f} cores at the end (1 s reading)"
    )
    if args.json:
        args.json.write_text(json.dumps(out, indent=2, default=str))
        console.print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
