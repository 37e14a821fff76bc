"""The speed tasks' structure: `minilm-latency` (MiniLM end to end) and `kernel-speed`'s module engines.

Nothing here asserts a time: the runs use tiny budgets and the checks are on what a run reports
(metrics present, the output error small, the methods and suites it is listed under).
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from sparsetorch.bench import load_suite
from sparsetorch.bench.spec import RunSpec
from sparsetorch.bench.tasks import TASKS
from sparsetorch.bench.tasks.latency import TOLERANCE, VARIANTS, _compiled
from sparsetorch.bench.tasks.speed import TorchCSRLinear

TINY = {"batch": 1, "seq_len": 16, "budget_s": 0.01}


def test_minilm_latency_is_declared_as_a_lower_is_better_exclusive_timing():
    task = TASKS.get("minilm-latency")
    assert (task.kind, task.metric, task.higher_is_better, task.exclusive) == ("speed", "ms", False, True)
    assert sorted(task.method_names().list()) == ["dense", "dense-compiled", "sparsetorch"]
    assert VARIANTS.list() == task.method_names().list()
    config = RunSpec("minilm-latency", "sparsetorch", 0.9, "unstructured", 0).config()
    assert config["budget"] == {"batch": 1, "seq_len": 128, "budget_s": 1.0}


def test_a_misspelled_method_or_budget_key_is_refused_with_a_hint():
    task = TASKS.get("minilm-latency")
    with pytest.raises(KeyError, match="did you mean 'sparsetorch'"):
        task.check(RunSpec("minilm-latency", "sparsetorh", 0.9, "unstructured", 0))
    with pytest.raises(ValueError, match="no budget key"):
        task.check(RunSpec("minilm-latency", "dense", 0.0, "unstructured", 0, budget={"seqlen": 64}))


def test_suites_list_the_latency_runs():
    def latency(name):
        return {
            (
                r.method,
                r.pattern if r.sparsity is None else r.sparsity,
                r.budget["batch"],
                r.budget["seq_len"],
            )
            for r in load_suite(name).runs
            if r.task == "minilm-latency"
        }

    assert latency("quick") == {("dense", 0.0, 1, 128), ("sparsetorch", 0.9, 1, 128)}
    variants = {
        (m, lv, b, 128) for m in ("dense-compiled", "sparsetorch") for lv in (0.9, "2:4") for b in (1, 32)
    }
    assert latency("standard") == variants | {("dense", 0.0, 1, 128), ("dense", 0.0, 32, 128)}


def test_a_failing_torch_compile_fails_the_run(monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("no C++ compiler")

    monkeypatch.setattr(torch, "compile", broken)
    with pytest.raises(RuntimeError, match=r"torch.compile failed.*no C\+\+ compiler"):
        _compiled(nn.Linear(4, 4), {"input": torch.randn(2, 4)})


@pytest.mark.data
@pytest.mark.slow
@pytest.mark.parametrize(
    ("method", "sparsity", "pattern"),
    [("dense", 0.0, "unstructured"), ("dense-compiled", 0.9, "unstructured"), ("sparsetorch", None, "2:4")],
)
def test_minilm_latency_run_reports_its_metrics(method, sparsity, pattern):
    task = TASKS.get("minilm-latency")
    spec = RunSpec("minilm-latency", method, sparsity, pattern, 0, budget=TINY)
    task.check(spec)
    metrics = task.run(spec)
    for key in ("ms", "speedup", "dense_ms", "max_abs_err", "compile_s", "achieved_sparsity", "threads"):
        assert key in metrics, key
    assert metrics["ms"] > 0 and metrics["dense_ms"] > 0 and metrics["threads"] >= 1
    assert 0.0 <= metrics["max_abs_err"] <= TOLERANCE
    if method == "dense":
        assert (
            metrics["max_abs_err"] == 0.0
            and metrics["compile_s"] == 0.0
            and metrics["ms"] == metrics["dense_ms"]
        )
    else:
        assert metrics["compile_s"] > 0
        assert metrics["achieved_sparsity"] == pytest.approx(0.9 if sparsity else 0.5, abs=0.01)
    if method == "sparsetorch":  # every pruned encoder Linear became a SparseLinear of some format
        assert sum(int(n) for n in (f.split(":")[1] for f in metrics["formats"].split(","))) == 36
        assert metrics["autotune_s"] > 0


def test_torch_csr_engine_is_a_linear_module():
    torch.manual_seed(0)
    layer = nn.Linear(24, 12)
    with torch.no_grad():
        layer.weight.mul_(torch.rand_like(layer.weight) > 0.7)
    engine = TorchCSRLinear(layer.weight, layer.bias)
    x = torch.randn(5, 24)
    with torch.no_grad():
        torch.testing.assert_close(engine(x), layer(x))


@pytest.mark.parametrize("method", ["dense", "torch-csr", "sparsetorch"])
def test_kernel_speed_times_each_engine_as_a_module_call(method):
    task = TASKS.get("kernel-speed")
    assert task.version >= 2  # the module-call timing is a new version of what the task measures
    budget = {"shape": "48x32", "batch": 2, "budget_s": 0.01}
    sparsity = 0.0 if method == "dense" else 0.9
    metrics = task.run(RunSpec("kernel-speed", method, sparsity, "unstructured", 0, budget=budget))
    assert {"speedup", "ms", "dense_ms", "format", "achieved_sparsity", "threads"} <= set(metrics)
    assert metrics["ms"] > 0 and metrics["dense_ms"] > 0
