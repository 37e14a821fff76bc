"""One-shot pruning speed: sparsetorch's methods on real models, and side by side with llm-compressor.

What is measured, per model, method and pattern (50 % unstructured and 2:4):

- wall time of `sparsetorch.prune` with `errors=False` and with `errors=True` (the per-layer
  reconstruction error costs an in x in X^T X accumulation per layer for methods that do not need it);
- mean relative reconstruction error ||WX - W'X|| / ||WX|| over the pruned layers (errors on);
- calibration memory (`PruneReport.calibration_bytes`: one block's activations and statistics) and
  the peak resident set size *of that run*: VmHWM is reset (/proc/self/clear_refs) before each run,
  and the table shows the peak and its rise over the RSS just before the run.
  (`PruneReport.peak_rss_bytes` is the process lifetime's peak, `ru_maxrss`, kept in the JSON);
- quality: all-MiniLM-L6-v2's sentence-embedding cosine fidelity to the dense model on held-out
  docstring sentences; the Shakespeare GPT's perplexity on held-out test text.

Models and calibration: all-MiniLM-L6-v2 (real weights, `load_minilm`) calibrated on stdlib docstrings,
the tiny byte-level GPT (`pretrained("gpt-tiny")`) on Shakespeare. The calibration windows are drawn
once per model (`text_windows`, seed 0, `--samples` x `--seq-len`) and the very same token-id tensor is
passed to every method (and to llm-compressor), exactly what `prune(calibration="<corpus>")` would draw.

llm-compressor (`--llmcompressor VENV`, default /tmp/llmc if it exists): its `oneshot` with
`WandaPruningModifier` / `SparseGPTModifier` runs in that OTHER virtual environment's python
(`_llmcompressor_worker.py`, a subprocess; llm-compressor is never imported here and is not a
sparsetorch dependency) on the same MiniLM weights and the same token ids in the same batches. The
comparison table shows both times (theirs / ours: > 1 means sparsetorch is faster), the embedding
fidelity of both pruned models, and the fraction of equal mask entries (all layers, and block 0, whose
inputs are identical in both libraries). For Wanda the disagreements are split into (a) tie rule:
llm-compressor's selection rule applied to *our* statistics vs our mask, and (b) statistics: their mask
vs their rule on our statistics, block by block, with how close those entries are to the cut of their
row or 4-group (relative score margin; 0 = an exact fp32 tie). One flip in block 0 changes that block's
pruned output and hence every later block's statistics, so differences grow with depth. A warm-up
call, untimed, precedes the timed runs on both sides (llm-compressor's first `oneshot` of a process
costs seconds more; the worker reports it).

Every group of numbers is printed with the torch thread count and a /proc/stat reading of the cores
other processes kept busy meanwhile (the machine may be shared: a warning is printed when another
process used more than a quarter of a core). On a small shared machine, `--threads 1` avoids OpenMP
oversubscription, which otherwise slows every small parallel op several-fold; the worker gets the
same thread count.

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
import subprocess
import tempfile
from functools import partial
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.table import Table
from torch import Tensor, nn

import sparsetorch as st
from benchmarks._machine import WARN_CORES, LoadMeter, idle_load, peak_rss, reset_peak_rss
from sparsetorch.evaluation import embedding_agreement, lm_perplexity
from sparsetorch.patterns import select
from sparsetorch.pruning.calibration_data import text_windows

METHODS = ("magnitude", "wanda", "sparsegpt", "dsnot", "icbs")
PATTERNS = ("unstructured", "2:4")
LLMC_METHODS = ("wanda", "sparsegpt")  # the methods llm-compressor has one-shot modifiers for
console = Console(width=None if sys.stdout.isatty() else 220)


# --- machine state -------------------------------------------------------------------------------


def load_note(foreign: float) -> str:
    return f"[red]{foreign:.2f}[/red]" if foreign > WARN_CORES else f"{foreign:.2f}"


def warn_load(foreign: float, what: str) -> None:
    if foreign > WARN_CORES:
        console.print(
            f"[yellow]warning: other processes kept {foreign:.2f} of {os.cpu_count()} cores busy during "
            f"{what}: its times are inflated[/yellow]"
        )


# --- sparsetorch runs ----------------------------------------------------------------------------


def _sparsity(pattern: str) -> float | None:
    return None if ":" in pattern else 0.5


def _effective(model: nn.Module, fqn: str) -> Tensor:
    owner, _, name = fqn.rpartition(".")
    return getattr(model.get_submodule(owner), name).detach().clone()


def run_ours(
    dense: nn.Module, windows: Tensor, method: str, pattern: str, *, errors: bool, batch_size: int
) -> tuple[nn.Module, dict[str, Any]]:
    model = copy.deepcopy(dense)
    rss0 = reset_peak_rss()
    with LoadMeter() as load:
        rep = st.prune(
            model,
            method,
            _sparsity(pattern),
            pattern,
            calibration=windows,
            errors=errors,
            batch_size=batch_size,
        )
    row = {
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
    return model, row


def time_model(
    name: str,
    dense: nn.Module,
    windows: Tensor,
    methods: list[str],
    patterns: list[str],
    *,
    batch_size: int,
    quality,
    keep: set[tuple[str, str]],
) -> tuple[list[dict[str, Any]], dict[tuple[str, str], dict[str, Any]]]:
    """Time every method x pattern with errors off and on; `quality(model)` -> dict for the errors-off model.

    Returns the rows and, for (method, pattern) in `keep`, our masks and effective weights.
    """
    rows, kept = [], {}
    # One-time costs of the first prune call (lazy imports, first kernels) stay out of the timed runs.
    st.prune(copy.deepcopy(dense), "wanda", 0.5, calibration=windows[:batch_size], batch_size=batch_size)
    for method in methods:
        for pattern in patterns:
            off_model, off = run_ours(dense, windows, method, pattern, errors=False, batch_size=batch_size)
            off_masks = {f: m.clone() for f, m in st.masks(off_model).items()}
            on_model, on = run_ours(dense, windows, method, pattern, errors=True, batch_size=batch_size)
            same = all(torch.equal(off_masks[f], m) for f, m in st.masks(on_model).items())
            del on_model
            quality_row = quality(off_model)
            if (method, pattern) in keep:
                kept[(method, pattern)] = {
                    "masks": off_masks,
                    "weights": {f: _effective(off_model, f) for f in off_masks},
                    "seconds": off["seconds"],
                    "sparsity": off["sparsity"],
                    "peak_rss_bytes": off["peak_rss_bytes"],
                    "rss_before_bytes": off["rss_before_bytes"],
                    "foreign_cores": off["foreign_cores"],
                    **quality_row,
                }
            del off_model
            row = {
                "model": name,
                "method": method,
                "pattern": pattern,
                "seconds_errors_off": off["seconds"],
                "seconds_errors_on": on["seconds"],
                "mean_error": on["mean_error"],
                "sparsity": on["sparsity"],
                "calibration_bytes_errors_off": off["calibration_bytes"],
                "calibration_bytes_errors_on": on["calibration_bytes"],
                "peak_rss_bytes": max(off["peak_rss_bytes"], on["peak_rss_bytes"]),
                "rss_rise_bytes_errors_off": off["peak_rss_bytes"] - off["rss_before_bytes"],
                "rss_rise_bytes_errors_on": on["peak_rss_bytes"] - on["rss_before_bytes"],
                "foreign_cores": max(off["foreign_cores"], on["foreign_cores"]),
                "same_masks_errors_on_off": same,
                **quality_row,
                "runs": {"errors_off": off, "errors_on": on},
            }
            rows.append(row)
            q = ", ".join(f"{k} {v:.4f}" for k, v in quality_row.items() if isinstance(v, float))
            console.print(
                f"  {name} {method:9s} {pattern:12s} {off['seconds']:7.2f} s (errors off) "
                f"{on['seconds']:7.2f} s (on)  {q}  foreign {row['foreign_cores']:.2f} cores"
            )
            warn_load(row["foreign_cores"], f"{name} {method} {pattern}")
    return rows, kept


def ours_table(title: str, rows: list[dict[str, Any]], quality_cols: list[tuple[str, str, str]]) -> Table:
    table = Table(title=title, header_style="bold")
    heads = [
        "method",
        "pattern",
        "time s\nerrors off",
        "time s\nerrors on",
        "errors\ncost",
        "mean rel.\nerror",
        "sparsity",
        "calib. MB\noff / on",
        "peak RSS MB\n(rise off / on)",
        *[c[1] for c in quality_cols],
        "foreign\ncores",
    ]
    for h in heads:
        table.add_column(h, justify="left" if h in ("method", "pattern") else "right")
    for r in rows:
        err = "-" if r["mean_error"] is None else f"{r['mean_error']:.4f}"
        table.add_row(
            r["method"],
            r["pattern"],
            f"{r['seconds_errors_off']:.2f}",
            f"{r['seconds_errors_on']:.2f}",
            f"{r['seconds_errors_on'] / r['seconds_errors_off']:.2f}x",
            err,
            f"{r['sparsity']:.1%}",
            f"{r['calibration_bytes_errors_off'] / 1e6:.1f} / {r['calibration_bytes_errors_on'] / 1e6:.1f}",
            f"{r['peak_rss_bytes'] / 1e6:.0f} ({r['rss_rise_bytes_errors_off'] / 1e6:.0f} / "
            f"{r['rss_rise_bytes_errors_on'] / 1e6:.0f})",
            *[fmt.format(r[key]) for key, _, fmt in quality_cols],
            load_note(r["foreign_cores"]),
        )
    same = sum(r["same_masks_errors_on_off"] for r in rows)
    table.caption = (
        f"masks identical with errors off and on: {same} of {len(rows)} settings. calib. MB = "
        "PruneReport.calibration_bytes (one block's activations + statistics); RSS rise = VmHWM during the "
        "run minus RSS before it"
    )
    return table


# --- llm-compressor ------------------------------------------------------------------------------


def run_llmcompressor(
    venv: Path,
    model_dir: str,
    windows: Tensor,
    configs: list[tuple[str, str]],
    *,
    batch_size: int,
    workdir: Path,
) -> dict[str, Any]:
    """Run `_llmcompressor_worker.py` with the other venv's python; return its results.json (+ log, load)."""
    from safetensors.torch import save_file

    python = venv / "bin" / "python"
    ids_path = workdir / "calibration_ids.safetensors"
    save_file({"input_ids": windows.contiguous()}, str(ids_path))
    out_dir = workdir / "llmcompressor"
    log_path = workdir / "llmcompressor.log"
    cmd = [
        str(python),
        os.path.join(os.path.dirname(os.path.abspath(__file__)), "_llmcompressor_worker.py"),
        "--model-dir",
        model_dir,
        "--ids",
        str(ids_path),
        "--out-dir",
        str(out_dir),
        "--configs",
        ",".join(f"{m}:{p}" for m, p in configs),
        "--batch-size",
        str(batch_size),
        "--threads",
        str(torch.get_num_threads()),
    ]
    console.print(f"  running: {' '.join(cmd)}  (log: {log_path})")
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
    return results


def mask_agreement(ours: dict[str, Tensor], theirs: dict[str, Tensor]) -> dict[str, Any]:
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


def wanda_statistics(dense: nn.Module, windows: Tensor, pattern: str, batch_size: int):
    """Our Wanda run again (untimed), recording each layer's ||X_j||^2 exactly as sparsetorch accumulates
    it (fp32 squares summed in fp64) on the inputs its block-sequential pass feeds to the dense layer."""
    model = copy.deepcopy(dense)
    sq: dict[str, Tensor] = {}

    def hook(module: nn.Module, args: tuple, fqn: str) -> None:
        if float((module.weight == 0).float().mean()) > 0.25:
            return  # the propagation pass through the already-pruned block
        x = args[0].detach().float().reshape(-1, args[0].shape[-1])
        sq[fqn] = sq.get(fqn, 0) + x.pow(2).sum(0, dtype=torch.float64)

    handles = [
        m.register_forward_pre_hook(partial(hook, fqn=f"{n}.weight"))
        for n, m in model.named_modules()
        if isinstance(m, nn.Linear) and n.startswith("encoder.")
    ]
    try:
        st.prune(
            model,
            "wanda",
            _sparsity(pattern),
            pattern,
            calibration=windows,
            errors=False,
            batch_size=batch_size,
        )
    finally:
        for h in handles:
            h.remove()
    return {f: v.sqrt().float() for f, v in sq.items()}, {f: m.clone() for f, m in st.masks(model).items()}


def their_wanda_rule(scores: Tensor, pattern: str) -> Tensor:
    """llm-compressor's wanda_sparsify selection (kept mask): per row, a stable ascending sort prunes the
    first int(in * 0.5); under N:M, per group of m columns, topk(n, largest=False) is pruned."""
    pruned = torch.zeros_like(scores, dtype=torch.bool)
    if ":" in pattern:
        n, m = (int(v) for v in pattern.split(":"))
        groups = scores.reshape(scores.shape[0], -1, m)
        # llm-compressor reads "N:M" as N *pruned* per M (sparsetorch: N kept); the same for 2:4
        idx = torch.topk(groups, n, dim=-1, largest=False).indices
        pruned = torch.zeros_like(groups, dtype=torch.bool).scatter_(-1, idx, True).reshape(scores.shape)
    else:
        order = torch.sort(scores, dim=-1, stable=True).indices[:, : int(scores.shape[1] * 0.5)]
        pruned.scatter_(1, order, True)
    return ~pruned


def _cut(scores: Tensor, pattern: str) -> tuple[Tensor, Tensor, Tensor]:
    """Per entry: the last pruned and the first kept score of its comparison group (its row, or its group
    of m under N:M), and the cut between them (their midpoint)."""
    if ":" in pattern:
        m = int(pattern.split(":")[1])
        groups = scores.reshape(scores.shape[0], -1, m).sort(dim=-1).values
        lo, hi = groups[..., m // 2 - 1], groups[..., m // 2]
        lo, hi = lo.repeat_interleave(m, dim=-1), hi.repeat_interleave(m, dim=-1)
    else:
        srt = scores.sort(dim=-1).values
        k = int(scores.shape[1] * 0.5)
        lo, hi = srt[:, k - 1 : k].expand_as(scores), srt[:, k : k + 1].expand_as(scores)
    return lo, hi, (lo + hi) / 2


def wanda_diagnosis(
    dense: nn.Module, windows: Tensor, pattern: str, batch_size: int, theirs: dict[str, Tensor]
) -> dict[str, Any]:
    """Split the Wanda mask differences into tie-rule and statistics differences, block by block."""
    norms, ours = wanda_statistics(dense, windows, pattern, batch_size)
    reproduced = tie = total = tied_cuts = 0
    blocks: dict[int, dict[str, Any]] = {}
    for fqn, our_mask in ours.items():
        w = dense.get_parameter(fqn).detach().float()
        scores = w.abs() * norms[fqn].reshape(1, -1)
        mine = select(scores, pattern, _sparsity(pattern), group="row")
        reproduced += int((mine == our_mask).sum())
        rule = their_wanda_rule(scores, pattern)
        tie += int((rule != our_mask).sum())
        total += our_mask.numel()
        lo, hi, cut = _cut(scores, pattern)
        group = 4 if ":" in pattern else scores.shape[1]  # entries per comparison group
        tied_cuts += int((lo == hi).sum()) // group
        flips = rule != theirs[fqn]
        block = int(fqn.split(".layer.")[1].split(".")[0])
        entry = blocks.setdefault(block, {"block": block, "differing": 0, "margins": []})
        entry["differing"] += int(flips.sum())
        entry["margins"].append(((scores - cut).abs() / cut.clamp_min(1e-30))[flips])
    by_block = []
    for b in sorted(blocks):
        margin = torch.cat(blocks[b]["margins"])
        by_block.append(
            {
                "block": b,
                "differing": blocks[b]["differing"],
                "exact_ties": int((margin == 0).sum()),
                "margin_median": float(margin.median()) if len(margin) else None,
                "margin_max": float(margin.max()) if len(margin) else None,
            }
        )
    return {
        "entries": total,
        "our_rule_reproduces_our_mask": reproduced / total,
        "tie_rule_differences": tie,
        "statistics_differences": sum(b["differing"] for b in by_block),
        "groups_with_exact_tie_at_cut": tied_cuts,
        "by_block": by_block,
    }


def compare(
    dense: nn.Module,
    tokenizer,
    texts: list[str],
    dense_emb: Tensor,
    windows: Tensor,
    kept: dict[tuple[str, str], dict[str, Any]],
    llmc: dict[str, Any],
    batch_size: int,
) -> list[dict[str, Any]]:
    from safetensors.torch import load_file

    from sparsetorch.models.hf import embed

    rows = []
    for run in llmc.get("runs", []):
        key = (run["method"], run["pattern"])
        ours = kept.get(key)
        row: dict[str, Any] = {"method": key[0], "pattern": key[1], "theirs": {k: v for k, v in run.items()}}
        rows.append(row)
        if ours is not None:
            row["ours"] = {k: v for k, v in ours.items() if k not in ("masks", "weights")}
        if "error" in run or ours is None:
            continue
        weights = load_file(run["file"])
        model = copy.deepcopy(dense)
        missing, unexpected = model.load_state_dict(weights, strict=False)
        if unexpected or any(
            k.endswith(".weight") and "dense" in k and "LayerNorm" not in k for k in missing
        ):
            raise RuntimeError(f"llm-compressor weights do not match the model: {unexpected or missing}")
        theirs_masks = {f: weights[f] != 0 for f in ours["masks"]}
        zero_dense = sum(int((dense.get_parameter(f) == 0).sum()) for f in ours["masks"])
        nz = sum(int(m.sum()) for m in theirs_masks.values())
        row["their_sparsity"] = 1 - nz / sum(m.numel() for m in theirs_masks.values())
        row["dense_exact_zeros"] = zero_dense
        row["their_quality"] = embedding_agreement(dense_emb, embed(model, tokenizer, texts))
        row["mask"] = mask_agreement(ours["masks"], theirs_masks)
        kept_both = {f: ours["masks"][f] & theirs_masks[f] for f in theirs_masks}
        num = sum(float((ours["weights"][f] - weights[f])[kept_both[f]].pow(2).sum()) for f in kept_both)
        den = sum(float(ours["weights"][f][kept_both[f]].pow(2).sum()) for f in kept_both)
        row["kept_weight_rel_diff"] = (num / den) ** 0.5 if den > 0 else None
        if key[0] == "wanda":
            row["wanda_diagnosis"] = wanda_diagnosis(dense, windows, key[1], batch_size, theirs_masks)
        del model
    return rows


def comparison_table(rows: list[dict[str, Any]], threads: int, our_batch: int) -> Table:
    table = Table(
        title=f"all-MiniLM-L6-v2: sparsetorch vs llm-compressor oneshot (same token ids, batch {our_batch}, "
        f"{threads} torch threads)",
        header_style="bold",
    )
    for h in (
        "method",
        "pattern",
        "ours s",
        "theirs s",
        "theirs /\nours",
        "cosine\nours",
        "cosine\ntheirs",
        "top-1 NN\nours / theirs",
        "sparsity\nours / theirs",
        "mask agreement\nall / block 0",
        "kept-weight\nrel. diff",
        "RSS rise MB\nours / theirs",
        "foreign cores\nours / theirs",
    ):
        table.add_column(h, justify="left" if h in ("method", "pattern") else "right")
    for r in rows:
        theirs, ours = r["theirs"], r.get("ours")
        if "error" in theirs or ours is None:
            why = theirs.get("error", "no sparsetorch run for this config")
            table.add_row(r["method"], r["pattern"], "-", f"[red]failed: {why[:80]}[/red]", *["-"] * 9)
            continue
        q = r["their_quality"]
        our_rise = (ours["peak_rss_bytes"] - ours["rss_before_bytes"]) / 1e6
        their_rise = (theirs["peak_rss_bytes"] - theirs["rss_before_bytes"]) / 1e6
        table.add_row(
            r["method"],
            r["pattern"],
            f"{ours['seconds']:.2f}",
            f"{theirs['seconds']:.2f}",
            f"{theirs['seconds'] / ours['seconds']:.1f}x",
            f"{ours['cosine']:.4f}",
            f"{q['cosine']:.4f}",
            f"{ours['top1_agreement']:.3f} / {q['top1_agreement']:.3f}",
            f"{ours['sparsity']:.2%} / {r['their_sparsity']:.2%}",
            f"{r['mask']['agreement']:.3%} / {r['mask']['block0_agreement']:.3%}",
            "-" if r["kept_weight_rel_diff"] is None else f"{r['kept_weight_rel_diff']:.2e}",
            f"{our_rise:.0f} / {their_rise:.0f}",
            f"{ours['foreign_cores']:.2f} / {theirs.get('foreign_cores', float('nan')):.2f}",
        )
    return table


def diagnosis_table(rows: list[dict[str, Any]]) -> Table | None:
    rows = [r for r in rows if "wanda_diagnosis" in r]
    if not rows:
        return None
    table = Table(
        title="Wanda: where sparsetorch's and llm-compressor's masks differ, and why", header_style="bold"
    )
    blocks = max(len(r["wanda_diagnosis"]["by_block"]) for r in rows)
    heads = [
        "pattern",
        "differing\nentries",
        "(a) tie rule:\ntheir rule on our\nstats vs our mask",
        "(b) statistics:\ntheir mask\nvs (a)",
        "exact ties\nat a cut",
        *[f"block {b}\n(margin median, max)" for b in range(blocks)],
    ]
    for h in heads:
        table.add_column(h, justify="left" if h == "pattern" else "right")
    for r in rows:
        d, m = r["wanda_diagnosis"], r["mask"]
        cells = []
        for b in d["by_block"]:
            med = (
                ""
                if b["margin_median"] is None
                else f" ({b['margin_median']:.0e}, max {b['margin_max']:.0e})"
            )
            ties = f", {b['exact_ties']} tied" if b["exact_ties"] else ""
            cells.append(f"{b['differing']:,}{ties}{med}")
        table.add_row(
            r["pattern"],
            f"{m['differing_entries']:,} of {m['entries']:,}",
            f"{d['tie_rule_differences']:,}",
            f"{d['statistics_differences']:,}",
            f"{d['groups_with_exact_tie_at_cut']:,}",
            *cells,
        )
    table.caption = (
        "(a) llm-compressor's selection rule (stable sort / topk, prune the lowest) applied to sparsetorch's "
        "own statistics, vs sparsetorch's mask: tie-breaking differences only. (b) llm-compressor's mask vs "
        "(a): entries its statistics put on the other side of the cut. Margin = |score - cut| / cut of those "
        "entries under our statistics (0 = an exact fp32 tie). Block 0 sees identical inputs in both "
        "libraries; every flip there changes that block's pruned output and so every later block's "
        "statistics, which is why differences (and margins) grow with depth."
    )
    return table


# --- main ----------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="magnitude, wanda, sparsegpt; 32 samples")
    parser.add_argument("--json", type=Path, help="write every number here")
    default_venv = "/tmp/llmc" if os.path.isdir("/tmp/llmc") else "none"
    parser.add_argument(
        "--llmcompressor",
        default=default_venv,
        help=f"virtual environment with llm-compressor (default {default_venv}); 'none' skips it",
    )
    parser.add_argument("--samples", type=int, help="calibration windows (default 128; 32 with --quick)")
    parser.add_argument("--seq-len", type=int, default=128, help="tokens per window (default 128)")
    parser.add_argument("--batch-size", type=int, default=8, help="calibration batch size, both libraries")
    parser.add_argument("--models", default="minilm,gpt", help="comma list of minilm, gpt")
    parser.add_argument("--methods", help=f"comma list (default {','.join(METHODS)})")
    parser.add_argument("--patterns", default=",".join(PATTERNS))
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--sentences", type=int, help="held-out MiniLM sentences (default 512; 128 quick)")
    parser.add_argument("--eval-chars", type=int, help="GPT test characters (default 100000; 20000 quick)")
    args = parser.parse_args()

    samples = args.samples or (32 if args.quick else 128)
    methods = (args.methods or ("magnitude,wanda,sparsegpt" if args.quick else ",".join(METHODS))).split(",")
    patterns = args.patterns.split(",")
    models = args.models.split(",")
    eval_chars = args.eval_chars or (20_000 if args.quick else 100_000)
    sentences = args.sentences or (128 if args.quick else 512)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    unknown = set(methods) - set(METHODS) or set(patterns) - set(PATTERNS) or set(models) - {"minilm", "gpt"}
    if unknown:
        parser.error(f"unknown choice(s): {', '.join(sorted(unknown))}")

    env = {
        "torch": torch.__version__,
        "torch_threads": threads,
        "cpu_count": os.cpu_count(),
        "foreign_cores_idle_1s": idle_load(),
        "samples": samples,
        "seq_len": args.seq_len,
        "batch_size": args.batch_size,
        "sentences": sentences,
        "gpt_eval_chars": eval_chars,
        "methods": methods,
        "patterns": patterns,
        "argv": sys.argv,
    }
    console.print(
        f"torch {torch.__version__}, {threads} torch threads, {os.cpu_count()} CPUs; other processes busy "
        f"on {env['foreign_cores_idle_1s']:.2f} cores (1 s idle reading of /proc/stat); calibration "
        f"{samples} x {args.seq_len} tokens, batch {args.batch_size}"
    )
    warn_load(env["foreign_cores_idle_1s"], "the idle reading")
    if threads > 1 and env["foreign_cores_idle_1s"] > 0.5:
        console.print(
            f"[yellow]hint: with other processes busy, {threads} OpenMP threads oversubscribe the cores and "
            "every parallel op waits on a descheduled thread (small reductions run several times slower): "
            "--threads 1 gives steadier numbers[/yellow]"
        )
    out: dict[str, Any] = {"env": env, "sparsetorch": [], "llmcompressor": None}

    if "minilm" in models:
        from sparsetorch.data import docstring_sentences
        from sparsetorch.models.hf import embed, load_minilm, minilm_path

        dense, tokenizer = load_minilm()
        texts = docstring_sentences("test", n=sentences)
        dense_emb = embed(dense, tokenizer, texts)
        windows = text_windows(dense, "stdlib-docstrings", samples=samples, seq_len=args.seq_len, seed=0)

        def minilm_quality(model: nn.Module) -> dict[str, Any]:
            return embedding_agreement(dense_emb, embed(model, tokenizer, texts))

        llmc_configs = [(m, p) for m in LLMC_METHODS if m in methods for p in patterns]
        console.rule(f"all-MiniLM-L6-v2 · sparsetorch · stdlib-docstrings {tuple(windows.shape)}")
        rows, kept = time_model(
            "minilm",
            dense,
            windows,
            methods,
            patterns,
            batch_size=args.batch_size,
            quality=minilm_quality,
            keep=set(llmc_configs),
        )
        out["sparsetorch"] += rows
        console.print(
            ours_table(
                f"all-MiniLM-L6-v2 (22.7M params, 36 Linear) · sparsetorch.prune · {threads} torch threads",
                rows,
                [
                    ("cosine", "cosine\nvs dense", "{:.4f}"),
                    ("top1_agreement", "top-1 NN\nagreement", "{:.3f}"),
                ],
            )
        )

        venv = Path(args.llmcompressor) if args.llmcompressor != "none" else None
        if venv is None:
            console.print("llm-compressor comparison skipped (--llmcompressor none)")
        elif not (venv / "bin" / "python").is_file():
            console.print(
                f"llm-compressor comparison skipped: no python in {venv} (pass --llmcompressor VENV)"
            )
        elif not llmc_configs:
            console.print("llm-compressor comparison skipped: neither wanda nor sparsegpt selected")
        else:
            console.rule("all-MiniLM-L6-v2 · llm-compressor oneshot (subprocess, other venv)")
            with tempfile.TemporaryDirectory(prefix="prune_speed_") as tmp:
                llmc = run_llmcompressor(
                    venv,
                    str(minilm_path()),
                    windows,
                    llmc_configs,
                    batch_size=args.batch_size,
                    workdir=Path(tmp),
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
                    llmc["comparisons"] = compare(
                        dense, tokenizer, texts, dense_emb, windows, kept, llmc, args.batch_size
                    )
                    llmc["log_text"] = Path(llmc["log"]).read_text(errors="replace")[-20000:]
            out["llmcompressor"] = llmc
            if "comparisons" in llmc:
                warm = llmc.get("warmup_seconds")
                warm_note = "" if warm is None else f", first-call warm-up (1 batch) {warm:.1f} s"
                console.print(
                    f"llm-compressor {llmc['llmcompressor_version']} (torch {llmc['torch_version']}, "
                    f"{llmc['torch_threads']} threads): import {llmc['import_seconds']:.1f} s, model load "
                    f"~{sum(r.get('load_seconds', 0) for r in llmc['runs']) / len(llmc['runs']):.2f} s per run "
                    f"{warm_note}"
                    " (none counted in the times below); other processes busy on "
                    f"{llmc['foreign_cores_whole_worker']:.2f} cores during the worker"
                )
                for run in llmc["runs"]:
                    if run.get("hessian_fallbacks"):
                        console.print(
                            f"[yellow]llm-compressor {run['method']} {run['pattern']}: Cholesky failed on "
                            f"{run['hessian_fallbacks']} layer(s) and fell back to Hinv = I[/yellow]"
                        )
                console.print(comparison_table(llmc["comparisons"], threads, args.batch_size))
                table = diagnosis_table(llmc["comparisons"])
                if table is not None:
                    console.print(table)
                for r in llmc["comparisons"]:
                    warn_load(
                        r["theirs"].get("foreign_cores", 0.0), f"llm-compressor {r['method']} {r['pattern']}"
                    )

    if "gpt" in models:
        from sparsetorch.data import load_shakespeare
        from sparsetorch.models.gpt import encode
        from sparsetorch.models.pretrained import pretrained

        dense = pretrained("gpt-tiny")
        dense.eval()
        seq_len = min(args.seq_len, dense.config.block_size)  # no longer windows than its positions
        test_ids = encode(load_shakespeare("test")[:eval_chars])
        windows = text_windows(dense, "shakespeare", samples=samples, seq_len=seq_len, seed=0)

        def gpt_quality(model: nn.Module) -> dict[str, Any]:
            with torch.inference_mode():
                return lm_perplexity(model, test_ids, seq_len=seq_len)

        dense_ppl = gpt_quality(dense)["perplexity"]
        console.rule(f"tiny GPT · sparsetorch · shakespeare {tuple(windows.shape)}")
        rows, _ = time_model(
            "gpt",
            dense,
            windows,
            methods,
            patterns,
            batch_size=args.batch_size,
            quality=gpt_quality,
            keep=set(),
        )
        out["sparsetorch"] += rows
        out["gpt_dense_perplexity"] = dense_ppl
        n_params = sum(p.numel() for p in dense.parameters())
        console.print(
            ours_table(
                f"tiny GPT ({n_params / 1e6:.2f}M params) · sparsetorch.prune · {threads} torch threads · "
                f"dense test perplexity {dense_ppl:.3f} ({eval_chars:,} chars)",
                rows,
                [("perplexity", "test\nperplexity", "{:.3f}")],
            )
        )

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
