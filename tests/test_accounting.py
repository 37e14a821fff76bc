"""The report: counts, bytes per format, FLOPs with an example input, JSON and table."""

import json
import math

import torch
from rich.console import Console
from torch import nn

import sparsetorch as st
from sparsetorch.accounting import storage_bytes
from sparsetorch.patterns import NM


def mlp():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 2))


def test_unpruned_model_reports_default_targets_dense():
    rep = st.report(mlp())
    assert [r.fqn for r in rep.layers] == ["0.weight", "2.weight"]
    assert rep.sparsity == 0.0 and rep.params == 8 * 16 + 16 * 8
    assert rep.layers[0].pattern == "dense"
    assert rep.model_params == sum(p.numel() for p in mlp().parameters())


def test_counts_after_pruning():
    model = mlp()
    st.prune(model, "magnitude", 0.75)
    rep = st.report(model)
    assert rep.nonzeros == 64 and rep.sparsity == 0.75
    assert all(r.sparsity == 0.75 for r in rep.layers)


def test_storage_bytes_by_hand():
    w = torch.zeros(4, 8)
    w[0, :3] = 1.0  # 3 nonzeros
    b = storage_bytes(w)
    assert b == {"dense": 128, "csr": 3 * 8 + 5 * 4, "bitmask": 4 + 12, "nm": None}
    w24 = torch.ones(4, 8)
    w24[:, 1::2] = 0  # a valid 2:4 layout, 16 kept
    assert storage_bytes(w24, NM(2, 4))["nm"] == 16 * 4 + math.ceil(16 * 2 / 8)


def test_flops_with_example_input_linear_and_conv():
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.Flatten(), nn.Linear(4 * 5 * 5, 10), nn.Linear(10, 2)
    )
    rep = st.report(model, torch.randn(2, 1, 5, 5))
    conv, fc = rep.layers
    assert conv.dense_flops == 2 * (1 * 9) * (2 * 4 * 5 * 5)
    assert fc.dense_flops == 2 * 100 * 10 * 2
    st.prune(model, "magnitude", 0.5)
    rep = st.report(model, torch.randn(2, 1, 5, 5))
    assert rep.effective_flops == rep.dense_flops // 2
    assert rep.flop_speedup == 2.0


def test_json_and_table_render():
    model = mlp()
    st.prune(model, "magnitude", pattern="2:4")
    rep = st.report(model, torch.randn(1, 8))
    data = json.loads(rep.to_json())
    assert data["sparsity"] == 0.5 and data["layers"][0]["pattern"] == "2:4"
    assert data["bytes"]["nm"] < data["bytes"]["dense"]
    console = Console(record=True, width=160)
    console.print(rep)
    text = console.export_text()
    assert "0.weight" in text and "50.0%" in text and "theoretical speedup" in text
