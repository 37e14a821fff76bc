"""`minilm-latency`: end-to-end inference latency of the pretrained all-MiniLM-L6-v2 encoder.

The model and its tokenizer come from `models.hf.load_minilm` (offline, as `minilm-prune` loads
them). The input is `batch` sequences of `seq_len` tokens of real text: windows of the held-out
(test) split of the stdlib docstrings corpus, drawn from the run's seed with
`pruning.calibration_data.text_windows` (the helper that cuts `minilm-prune`'s calibration
windows), each framed by `[CLS] ... [SEP]`, attention mask all ones. The "methods" are execution
variants of the same model, each called as `model(input_ids=..., attention_mask=...)` under
`torch.no_grad()`:

- `dense`: the pretrained model, eager (the run's level must be dense: sparsity 0);
- `dense-compiled`: the model pruned by magnitude to the run's sparsity / pattern (nothing is
  pruned at sparsity 0), masks baked into the weights, run dense through `torch.compile`: what
  the compiler alone gives the same weights;
- `sparsetorch`: the same pruned model through `sparsetorch.kernels.compile(model, batch=rows)`
  (`rows = batch * seq_len`, the rows each Linear sees; formats measured in this run, cache not
  read), then `torch.compile` on top.

`torch.compile` runs with `fullgraph=True, dynamic=False`: one graph for the whole model at the
run's input shape (the sparse layers enter it as opaque custom operators).

Every run also times the dense eager model with the run's weights (the pruned ones, masks baked
in: the same arithmetic as the masked model, no mask multiply) in the same process, interleaved
with the variant (`kernels.timing.time_interleaved`), so that `speedup = dense_ms / ms` compares
two calls under one machine state. Metrics: `ms` (primary, lower is better), `speedup`,
`dense_ms`, `max_abs_err` (of the variant's last hidden state against the dense eager model's on
the same input; a run fails above 1e-3), `compile_s` (the first, compiling call of
`torch.compile`, before timing; 0 for `dense`), `autotune_s` (`kernels.compile`'s format choice;
`sparsetorch` only), `formats` (layer count per chosen format), `achieved_sparsity` and
`threads`. A `torch.compile` that raises fails the run: there is no eager fallback timed in its
place. Like `kernel-speed`, the task is `exclusive` (timed alone, after the parallel pool).
"""

from __future__ import annotations

import collections
import copy
import time
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from sparsetorch.bench.tasks.base import DENSE, TASKS, RunSpec, Task
from sparsetorch.registry import Registry

TOLERANCE = 1e-3  # max |variant - dense eager| over the last hidden state

VARIANTS: Registry[str] = Registry("minilm-latency method")
for _name in (DENSE, "dense-compiled", "sparsetorch"):
    VARIANTS.register(_name, _name)


def token_windows(model: nn.Module, tokenizer: Any, batch: int, seq_len: int, seed: int) -> Tensor:
    """`(batch, seq_len)` token ids: `[CLS]` + a held-out docstring window + `[SEP]`, seeded."""
    from sparsetorch.pruning.calibration_data import text_windows

    if seq_len < 3:
        raise ValueError(f"seq_len must be >= 3 ([CLS], a token, [SEP]), got {seq_len}")
    body = text_windows(
        model, "stdlib-docstrings", split="test", samples=batch, seq_len=seq_len - 2, seed=seed
    )
    cls = torch.full((batch, 1), int(tokenizer.cls_token_id), dtype=body.dtype)
    sep = torch.full((batch, 1), int(tokenizer.sep_token_id), dtype=body.dtype)
    return torch.cat([cls, body, sep], dim=1)


def _compiled(model: nn.Module, inputs: dict[str, Tensor]) -> tuple[nn.Module, float]:
    """`torch.compile(model)` as one whole graph, and the seconds of its first (compiling) call.

    `fullgraph=True`: a graph break would leave part of the model eager and still be timed as
    "compiled"; here it fails the run instead.
    """
    from sparsetorch.kernels import cpu

    cpu.backend()  # chosen lazily on first use, by a lookup that tracing cannot follow: choose it now
    start = time.perf_counter()
    try:
        compiled = torch.compile(model, dynamic=False, fullgraph=True)
        compiled(**inputs)
    except Exception as e:
        raise RuntimeError(
            f"minilm-latency: torch.compile failed on this machine ({type(e).__name__}: {e}); "
            "the run is failed rather than timed eager in its place (Inductor on the CPU needs a C++ compiler)"
        ) from e
    return compiled, time.perf_counter() - start


class MiniLMLatency(Task):
    name = "minilm-latency"
    kind = "speed"
    metric = "ms"
    higher_is_better = False
    description = (
        "all-MiniLM-L6-v2 end to end: latency of an execution variant (eager, torch.compile, sparse "
        "kernels + torch.compile) at batch x seq_len tokens, vs the dense eager model in the same run"
    )
    default_budget: ClassVar[dict[str, Any]] = {"batch": 1, "seq_len": 128, "budget_s": 1.0}
    exclusive = True

    def method_names(self) -> Registry:
        return VARIANTS

    @torch.no_grad()  # inference: no autograd records in the timed (and compiled) calls
    def run(self, spec: RunSpec) -> dict[str, Any]:
        from sparsetorch.accounting import report
        from sparsetorch.checkpoint import plain_state
        from sparsetorch.kernels import compile as sparse_compile
        from sparsetorch.kernels import sparse_layers
        from sparsetorch.kernels.timing import time_interleaved
        from sparsetorch.models.hf import load_minilm
        from sparsetorch.pruning import prune

        b = self.budget(spec)
        batch, seq_len = int(b["batch"]), int(b["seq_len"])
        model, tokenizer = load_minilm()
        ids = token_windows(model, tokenizer, batch, seq_len, spec.seed)
        inputs = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
        level = 0.0 if spec.sparsity is None and spec.pattern == "unstructured" else spec.sparsity
        pruned = spec.method != DENSE and not (level == 0.0 and spec.pattern == "unstructured")
        sparse = pruned and spec.method == "sparsetorch"  # with nothing pruned, no SparseLinear to place
        # The dense eager baseline: a plain copy taken before pruning, given the pruned weights after
        # (a deep copy of a parametrized model shares its parametrization classes with the model).
        eager = copy.deepcopy(model) if pruned else model
        extra: dict[str, Any] = {}
        achieved = 0.0
        if pruned:
            prune(model, "magnitude", spec.sparsity, spec.pattern, seed=spec.seed)
            eager.load_state_dict(plain_state(model))  # masks baked in: the same arithmetic, no multiply
            achieved = report(model).sparsity
        if sparse:
            start = time.perf_counter()
            sparse_compile(model, batch=batch * seq_len, use_cache=False)  # chosen in this run
            extra["autotune_s"] = time.perf_counter() - start
            counts = collections.Counter(m.format_name for m in sparse_layers(model).values())
            extra["formats"] = ",".join(f"{k}:{v}" for k, v in sorted(counts.items()))
        eager.eval()
        reference = eager(**inputs).last_hidden_state
        if spec.method == DENSE:
            engine, compile_s = eager, 0.0
        else:  # torch.compile returns a wrapper; `eager` itself stays eager
            engine, compile_s = _compiled(model if sparse else eager, inputs)
        err = float((engine(**inputs).last_hidden_state - reference).abs().max())
        if not err <= TOLERANCE:  # NaN fails too
            raise RuntimeError(
                f"minilm-latency: {spec.method} output differs from the dense eager model by {err:.3g} "
                f"(max abs over the last hidden state; tolerance {TOLERANCE:g})"
            )
        budget_s = float(b["budget_s"])
        if engine is eager:  # one candidate: the variant is the baseline
            dense_ms = ms = time_interleaved(
                {"dense": lambda: eager(**inputs)}, budget_s=budget_s, min_reps=4
            )["dense"]
        else:  # dense eager and the variant in interleaved rounds: the machine's drift hits both alike
            calls = {"dense": lambda: eager(**inputs), "engine": lambda: engine(**inputs)}
            ms_of = time_interleaved(calls, budget_s=budget_s, min_reps=4, max_reps=100)
            dense_ms, ms = ms_of["dense"], ms_of["engine"]
        return {
            "ms": ms,
            "speedup": dense_ms / ms,
            "dense_ms": dense_ms,
            "max_abs_err": err,
            "compile_s": compile_s,
            **extra,
            "achieved_sparsity": achieved,
            "threads": torch.get_num_threads(),
        }


TASKS.register("minilm-latency", MiniLMLatency())
