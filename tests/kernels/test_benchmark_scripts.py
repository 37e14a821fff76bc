"""The kernel benchmark scripts run end to end on a tiny layer, and their helpers do what they say."""

from __future__ import annotations

import json

import numpy as np
import pytest

from benchmarks import deepsparse_worker
from benchmarks import kernel_speed as kbench


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
