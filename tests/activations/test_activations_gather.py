"""The activation-sparse FFN path equals the dense computation on the same active set."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from sparsetorch.activations.gather import (
    GATHER_MAX_BATCH,
    GatherLinear,
    SparseFFN,
    active_rows,
    dense_activation,
    gather_linear,
)
from sparsetorch.activations.topk import TopK
from sparsetorch.kernels import cpu
from sparsetorch.kernels.ops import available as _cpp_available

# "cpp" runs the numba gather kernels (numba installed); "torch" the index_select fallback
BACKENDS = ["torch"] + (["cpp"] if cpu.has_numba() and "cpp" in cpu.BACKENDS and _cpp_available() else [])
TOL = {"rtol": 1e-4, "atol": 1e-4}


def _case(batch: int, inp: int, out: int, sparsity: float, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    h = torch.randn(batch, inp, generator=g)
    h[torch.rand(batch, inp, generator=g) < sparsity] = 0.0
    w = torch.randn(out, inp, generator=g)
    b = torch.randn(out, generator=g)
    return h, w, b


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(("inp", "out"), [(1, 1), (7, 5), (33, 17), (130, 100), (17, 1), (1, 40), (515, 47)])
def test_gather_equals_dense_on_same_active_set(backend, inp, out):
    for batch in (1, 2, 3, GATHER_MAX_BATCH, GATHER_MAX_BATCH + 1):
        for sparsity in (0.0, 0.5, 0.93, 1.0):
            h, w, b = _case(batch, inp, out, sparsity, seed=batch)
            ref = F.linear(h, w, b)
            with cpu.use_backend(backend):
                for threads in (1, 2):
                    y = gather_linear(h, w.t().contiguous(), b, threads=threads)
                    torch.testing.assert_close(y, ref, **TOL)
                torch.testing.assert_close(gather_linear(h, w.t().contiguous()), F.linear(h, w), **TOL)


@pytest.mark.parametrize("backend", BACKENDS)
def test_zero_active_gives_bias_and_all_active_gives_dense(backend):
    h, w, b = _case(1, 300, 70, 0.0)
    with cpu.use_backend(backend):
        torch.testing.assert_close(
            gather_linear(torch.zeros(1, 300), w.t().contiguous(), b), b[None], rtol=0, atol=0
        )
        assert gather_linear(torch.zeros(1, 300), w.t().contiguous()).abs().sum() == 0
        torch.testing.assert_close(gather_linear(h, w.t().contiguous(), b), F.linear(h, w, b), **TOL)
        # the same active set chosen by top-k: dense product of the top-k vector
        hk = TopK(9, relu=False)(h)
        torch.testing.assert_close(gather_linear(hk, w.t().contiguous(), b), F.linear(hk, w, b), **TOL)


def test_large_parallel_case_and_leading_dims():
    h, w, b = _case(2, 3000, 600, 0.8)
    wt = w.t().contiguous()
    torch.testing.assert_close(gather_linear(h, wt, b, threads=2), F.linear(h, w, b), **TOL)
    h3 = h.view(2, 1, 3000)
    assert gather_linear(h3, wt, b).shape == (2, 1, 600)
    assert active_rows(h).tolist() == h.ne(0).any(0).nonzero().flatten().tolist()


def test_gather_linear_module_and_gradient_through_torch_path():
    lin = nn.Linear(40, 24)
    g = GatherLinear.from_linear(lin)
    x = torch.relu(torch.randn(1, 40, requires_grad=True))
    torch.testing.assert_close(g(x.detach()), lin(x.detach()), **TOL)
    xg = x.detach().clone().requires_grad_(True)
    g(xg).sum().backward()
    xr = x.detach().clone().requires_grad_(True)
    lin(xr).sum().backward()
    torch.testing.assert_close(xg.grad, xr.grad, **TOL)
    back = g.to_linear()
    torch.testing.assert_close(back.weight, lin.weight.detach())
    torch.testing.assert_close(back.bias, lin.bias.detach())


@pytest.mark.parametrize("backend", BACKENDS)
def test_sparse_ffn_equals_dense_ffn(backend):
    torch.manual_seed(0)
    fc1, fc2 = nn.Linear(72, 301), nn.Linear(301, 40)
    x = torch.randn(3, 72)
    with cpu.use_backend(backend), torch.no_grad():
        torch.testing.assert_close(SparseFFN(fc1, fc2)(x[:1]), fc2(torch.relu(fc1(x[:1]))), **TOL)
        z = fc1(x)
        cut = SparseFFN(fc1, fc2, threshold=0.3)
        torch.testing.assert_close(cut.hidden(x), z * (z > 0.3), **TOL)
        torch.testing.assert_close(cut(x), fc2(z * (z > 0.3)), **TOL)
        topk = SparseFFN(fc1, fc2, activation=TopK(20))
        torch.testing.assert_close(topk(x), fc2(TopK(20)(z)), **TOL)
        torch.testing.assert_close(dense_activation(x, fc1.weight, fc1.bias), torch.relu(z), **TOL)


def test_errors():
    with pytest.raises(ValueError, match="features"):
        gather_linear(torch.zeros(1, 5), torch.zeros(4, 3))
    with pytest.raises(ValueError, match="bias"):
        gather_linear(torch.zeros(1, 4), torch.zeros(4, 3), torch.zeros(2))
    with pytest.raises(ValueError, match="outputs"):
        SparseFFN(nn.Linear(4, 8), nn.Linear(7, 4))
    with pytest.raises(ValueError, match="threshold"):
        SparseFFN(nn.Linear(4, 8), nn.Linear(8, 4), threshold=-0.1)


def test_correct_without_numba_installed():
    code = (
        "import sys; sys.modules['numba'] = None; sys.modules['llvmlite'] = None\n"
        "import torch, torch.nn.functional as F\n"
        "from sparsetorch.kernels import cpu\n"
        "from sparsetorch.activations.gather import gather_linear, SparseFFN\n"
        "assert not cpu.has_numba()\n"
        "g = torch.Generator().manual_seed(0)\n"
        "h = torch.relu(torch.randn(1, 257, generator=g)); w = torch.randn(31, 257, generator=g)\n"
        "torch.testing.assert_close(gather_linear(h, w.t().contiguous()), F.linear(h, w), rtol=1e-4, atol=1e-4)\n"
        "fc1, fc2 = torch.nn.Linear(16, 64), torch.nn.Linear(64, 16); x = torch.randn(1, 16)\n"
        "with torch.no_grad():\n"
        "    torch.testing.assert_close(SparseFFN(fc1, fc2)(x), fc2(torch.relu(fc1(x))), rtol=1e-4, atol=1e-4)\n"
        "print('ok')\n"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("SPARSETORCH_KERNELS", None)
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert res.returncode == 0 and res.stdout.strip() == "ok", res.stderr[-2000:]


def test_parallel_ffn_kernels_equal_dense():
    # big enough (> PARALLEL_MIN_FLOATS weights) for the two-thread kernels; odd sizes for the tails
    g = torch.Generator().manual_seed(5)
    fc1, fc2 = nn.Linear(257, 1101), nn.Linear(1101, 203)
    with torch.no_grad():
        for p in (*fc1.parameters(), *fc2.parameters()):
            p.copy_(torch.randn(p.shape, generator=g) * 0.05)
        x = torch.randn(3, 257, generator=g)
        z = fc1(x)
        for threads in (1, 2):
            ffn = SparseFFN(fc1, fc2, threshold=0.05, threads=threads)
            torch.testing.assert_close(ffn(x[:1]), fc2(z[:1] * (z[:1] > 0.05)), **TOL)
            torch.testing.assert_close(ffn(x), fc2(z * (z > 0.05)), **TOL)
            h = dense_activation(x, fc1.weight, fc1.bias, threads=threads)
            torch.testing.assert_close(h, torch.relu(z), **TOL)
