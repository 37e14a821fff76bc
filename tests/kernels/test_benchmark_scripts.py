"""The kernel benchmark scripts run end to end on a tiny layer, and their helpers do what they say."""

from __future__ import annotations

import json

import numpy as np
import pytest

from benchmarks import call_overhead, deepsparse_worker
from benchmarks import kernel_speed as kbench
from sparsetorch.kernels import ops


def test_deepsparse_matmul_model_computes_x_times_w_transposed(tmp_path):
    from onnx.reference import ReferenceEvaluator

    w = np.random.default_rng(0).standard_normal((5, 7), dtype=np.float32)
    w[w < 0.5] = 0.0
    path = tmp_path / "m.onnx"
    deepsparse_worker._matmul_model(w, str(path))
    x = np.random.default_rng(1).standard_normal((3, 7), dtype=np.float32)
    (y,) = ReferenceEvaluator(str(path)).run(None, {"x": x})
    np.testing.assert_allclose(y, x @ w.T, rtol=1e-5, atol=1e-6)


def test_missing_deepsparse_venv_is_a_clear_error(tmp_path):
    with pytest.raises(SystemExit, match=r"not found .*make deepsparse-venv"):
        kbench.deepsparse_rows(str(tmp_path / "nope"), "8x16", "0.9", 1, {1: 1.0}, 0.01)


def test_kernels_script_runs_on_a_tiny_layer(tmp_path, monkeypatch):
    monkeypatch.setattr(kbench, "read_bandwidth", lambda threads: 10.0)  # skip the 512 MiB sweep
    out = tmp_path / "k.json"
    args = ["--shapes", "48x40", "--sparsities", "0.9,2:4", "--batches", "1,8"]
    kbench.main([*args, "--threads", "1", "--budget", "0.01", "--json", str(out)])
    rows = json.loads(out.read_text())["rows"]
    cells = {(r["sparsity"], r["batch"], r["format"]) for r in rows}
    for s in ("0.9", "2:4"):
        for b in (1, 8):
            assert {(s, b, "dense"), (s, b, "ours:best"), (s, b, "torch_csr32")} <= cells
    assert ("0.9", 1, "ours:csr16") in cells and ("2:4", 8, "ours:nm2:4") in cells
    assert all(r["ms"] > 0 and r["speedup"] > 0 for r in rows)
    data = json.loads(out.read_text())
    if ops.available():  # ours ran on the best kernel table, beside every other one this CPU runs
        isas = ops.supported_isas()
        assert data["isa"] == isas[-1] and data["compared_isas"] == isas[:-1]
        assert {r["isa"] for r in rows if r["format"] == "ours:csr16"} == {isas[-1]}
        for other in isas[:-1]:
            assert ("0.9", 1, f"ours:csr16@{other}") in cells and ("2:4", 8, f"ours:nm2:4@{other}") in cells


@pytest.mark.skipif(not ops.available(), reason="the C++ operators are not built")
def test_kernels_script_picks_one_kernel_table(tmp_path, monkeypatch):
    monkeypatch.setattr(kbench, "read_bandwidth", lambda threads: 10.0)
    out = tmp_path / "k.json"
    args = [
        "--shapes",
        "48x40",
        "--sparsities",
        "0.9",
        "--batches",
        "8",
        "--threads",
        "1",
        "--budget",
        "0.01",
    ]
    kbench.main([*args, "--isa", "generic", "--compare", "none", "--json", str(out)])
    data = json.loads(out.read_text())
    assert data["isa"] == "generic" and data["compared_isas"] == []
    assert not any("@" in r["format"] for r in data["rows"])
    assert {r["isa"] for r in data["rows"] if r["format"].startswith("ours:")} == {"generic"}


def _overhead_rows(tmp_path, *extra: str) -> list[dict]:
    out = tmp_path / "o.json"
    call_overhead.main(
        ["--quick", "--threads", "1", "--runs", "1", "--run-ms", "1", *extra, "--json", str(out)]
    )
    return json.loads(out.read_text())["rows"]


@pytest.mark.skipif(not ops.available(), reason="the C++ operators are not built")
def test_call_overhead_script_times_every_wrapping_of_the_operator(tmp_path):
    rows = _overhead_rows(tmp_path, "--no-torch-compile")
    by_layer: dict[str, dict[str, dict]] = {}
    for r in rows:
        by_layer.setdefault(r["layer"], {})[r["case"]] = r
    assert set(by_layer) == set(call_overhead.LAYERS)
    for cases in by_layer.values():
        want = {
            call_overhead.BARE,
            "cpu.op_call(csr)",
            "cpu.Plan(csr)",
            "SparseLinear(csr) layer(x)",
            "F.linear (dense)",
            "nn.Linear (dense)",
            "torch.sparse.mm (CSR int32, no bias)",
        }
        assert want <= set(cases)
        assert not any("torch.compile" in c for c in cases)
        bare = cases[call_overhead.BARE]["us"]
        for r in cases.values():
            assert r["us"] > 0 and r["minus_bare_us"] == pytest.approx(r["us"] - bare)
            assert r["autotune_pick"] and r["threads"] == 1


@pytest.mark.slow
@pytest.mark.skipif(not ops.available(), reason="the C++ operators are not built")
def test_call_overhead_script_times_the_module_inside_torch_compile(tmp_path):
    cases = {(r["layer"], r["case"]) for r in _overhead_rows(tmp_path)}
    for layer in call_overhead.LAYERS:
        assert {(layer, "torch.compile(SparseLinear(csr))"), (layer, "torch.compile(nn.Linear)")} <= cases
