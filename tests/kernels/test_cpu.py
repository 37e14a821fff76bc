"""Every kernel equals the dense masked reference, on every backend and kernel table (ISA), at batch 1 to 100."""

from __future__ import annotations

import contextlib

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from sparsetorch.kernels import cpu, ops
from sparsetorch.kernels import formats as F
from tests.kernels.kernels_testutil import random_layer

BATCHES = [1, 2, 3, 8, 17, 64, 100]
# (backend, kernel table): the torch fallback, and the C++ operators on every table this CPU runs
ENGINES = [("torch", None)] + [("cpp", isa) for isa in ops.supported_isas()]


def _engine(backend: str, isa: str | None):
    stack = contextlib.ExitStack()
    stack.enter_context(cpu.use_backend(backend))
    if isa is not None:
        stack.enter_context(ops.use_isa(isa))
    return stack


def _reference(weight, mask, x):
    return x @ torch.where(mask, weight, 0.0).T


def _check(fmt, weight, mask, batch, seed=0):
    x = torch.randn(batch, fmt.shape[1], generator=torch.Generator().manual_seed(seed))
    ref = _reference(weight, mask, x)
    for backend, isa in ENGINES:
        with _engine(backend, isa):
            y = cpu.linear(fmt, x)
        torch.testing.assert_close(
            y, ref, rtol=1e-4, atol=1e-4, msg=lambda m, b=backend, i=isa: f"{fmt.name}/{b}/{i}: {m}"
        )


@settings(max_examples=20, deadline=None)
@given(
    out=st.integers(1, 70),
    inp=st.integers(1, 130),
    batch=st.sampled_from(BATCHES),
    sparsity=st.sampled_from([0.0, 0.5, 0.9, 0.99, 1.0]),
)
def test_unstructured_kernels_match_reference(out, inp, batch, sparsity):
    weight, mask = random_layer(out, inp, sparsity=sparsity)
    for fmt in (
        F.Bitmask.from_dense(weight, mask),
        F.CSR.from_dense(weight, mask),
        F.Dense.from_dense(weight, mask),
    ):
        _check(fmt, weight, mask, batch)


def test_csr32_kernels_match_reference():
    weight, mask = random_layer(33, 77, sparsity=0.7)
    for batch in BATCHES:
        _check(F.CSR.from_dense(weight, mask, index_bits=32), weight, mask, batch)


@settings(max_examples=15, deadline=None)
@given(
    out=st.integers(1, 50),
    groups=st.integers(1, 40),
    nm=st.sampled_from([(2, 4), (1, 4), (4, 8), (2, 8)]),
    batch=st.sampled_from(BATCHES),
)
def test_nm_kernels_match_reference(out, groups, nm, batch):
    n, m = nm
    weight, mask = random_layer(out, groups * m, kind="nm", n=n, m=m)
    _check(F.NMPacked.from_dense(weight, mask, n=n, m=m), weight, mask, batch)


def test_spmm_column_blocks_and_long_rows_match_reference():
    """Several input-column blocks of the batched kernels (1024 columns per block at 64-wide panels,
    4096 at 16-wide; the last block partial), rows long enough for every unrolled loop."""
    weight, mask = random_layer(37, 4200, sparsity=0.7)
    fmts = [
        F.Bitmask.from_dense(weight, mask),
        *(F.CSR.from_dense(weight, mask, index_bits=b) for b in (16, 32)),
    ]
    for fmt in fmts:
        for batch in (1, 16, 64, 100):
            _check(fmt, weight, mask, batch)
        x = torch.randn(200, 4200)  # 4 tiles: threads split tiles, not rows
        for threads in (1, 2):
            torch.testing.assert_close(
                cpu.linear(fmt, x, threads=threads), _reference(weight, mask, x), rtol=1e-4, atol=1e-4
            )
    for n, m in [(2, 4), (1, 4), (4, 8), (2, 8), (1, 16)]:
        weight, mask = random_layer(21, 2176, kind="nm", n=n, m=m)
        for batch in (8, 64):
            _check(F.NMPacked.from_dense(weight, mask, n=n, m=m), weight, mask, batch)


def test_bias_is_fused_and_checked():
    weight, mask = random_layer(37, 45, sparsity=0.6)
    bias = torch.randn(37)
    plans = {
        name: cpu.Plan(F.CSR.from_dense(weight, mask), name)
        for name in cpu.BACKENDS
        if name != "cpp" or ops.available()
    }
    for batch in (1, 3, 16, 17, 64, 100):
        x = torch.randn(batch, 45)
        ref = _reference(weight, mask, x) + bias
        for name, plan in plans.items():
            y = plan(x, bias=bias)
            assert y.is_contiguous()
            torch.testing.assert_close(y, ref, rtol=1e-4, atol=1e-4, msg=lambda m, n=name: f"{n}: {m}")
    with pytest.raises(ValueError, match=r"bias must be a float32 CPU tensor of shape \(37,\)"):
        plans["torch"](torch.randn(2, 45), bias=torch.randn(36))


@pytest.mark.parametrize(("bh", "bw"), [(4, 16), (2, 3), (1, 1)])
@pytest.mark.parametrize("batch", [1, 8, 64])
def test_block_kernels_match_reference(bh, bw, batch):
    weight, mask = random_layer(5 * bh, 9 * bw, kind="block", bh=bh, bw=bw, sparsity=0.5)
    _check(F.BlockSparse.from_dense(weight, mask, bh=bh, bw=bw), weight, mask, batch)


def test_large_layer_uses_all_threads_and_matches():
    weight, mask = random_layer(300, 1000, sparsity=0.9)
    x = torch.randn(64, 1000)
    ref = _reference(weight, mask, x)
    for fmt in (F.Bitmask.from_dense(weight, mask), F.CSR.from_dense(weight, mask)):
        for threads in (1, 2):
            torch.testing.assert_close(cpu.linear(fmt, x, threads=threads), ref, rtol=1e-4, atol=1e-4)
            torch.testing.assert_close(cpu.linear(fmt, x[:1], threads=threads), ref[:1], rtol=1e-4, atol=1e-4)


def test_leading_dims_and_empty_batch():
    weight, mask = random_layer(12, 20)
    fmt = F.Bitmask.from_dense(weight, mask)
    x = torch.randn(2, 3, 20)
    torch.testing.assert_close(cpu.linear(fmt, x), _reference(weight, mask, x), rtol=1e-4, atol=1e-4)
    assert cpu.linear(fmt, torch.randn(0, 20)).shape == (0, 12)  # like nn.Linear: empty in, empty out
    xt = torch.randn(20, 5).t()  # not contiguous: copied, as nn.Linear would accept it
    torch.testing.assert_close(cpu.linear(fmt, xt), _reference(weight, mask, xt), rtol=1e-4, atol=1e-4)


def test_fallback_equals_fast_path_without_the_extension(monkeypatch):
    weight, mask = random_layer(40, 48, kind="nm")
    fmt = F.NMPacked.from_dense(weight, mask)
    x = torch.randn(5, 48)
    fast = cpu.linear(fmt, x)
    monkeypatch.setattr(ops, "available", lambda: False)
    monkeypatch.setattr(ops, "unavailable_reason", lambda: "sparsetorch._C is not built (test)")
    monkeypatch.setattr(ops, "warn_unavailable", lambda: None)
    assert cpu.default_backend() == "torch"
    torch.testing.assert_close(cpu.linear(fmt, x, backend_name="torch"), fast, rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match=r"not available.*not built"), cpu.use_backend("cpp"):
        pass


def test_env_var_forces_backend(monkeypatch):
    monkeypatch.setenv("SPARSETORCH_KERNELS", "torch")
    cpu.reset_default()
    try:
        assert cpu.backend() == "torch"
    finally:
        cpu.reset_default()
    monkeypatch.setenv("SPARSETORCH_KERNELS", "gpu")
    with pytest.raises(ValueError, match="SPARSETORCH_KERNELS"):
        cpu.default_backend()
    monkeypatch.setenv("SPARSETORCH_KERNELS", "numba")  # an earlier version's backend: say what replaced it
    with pytest.raises(ValueError, match="replaced by the C\\+\\+ operators"):
        cpu.default_backend()


def test_bad_inputs_raise_clear_errors():
    weight, mask = random_layer(8, 16)
    fmt = F.CSR.from_dense(weight, mask)
    with pytest.raises(TypeError, match="float32"):
        cpu.linear(fmt, torch.randn(2, 16, dtype=torch.float64))
    with pytest.raises(ValueError, match="features"):
        cpu.linear(fmt, torch.randn(2, 15))
    with pytest.raises(ValueError, match="CPU"):
        cpu.linear(fmt, torch.empty(2, 16, device="meta"), backend_name="torch")
    if ops.available():  # the operators infer shapes on meta tensors, as torch's own ops do
        assert cpu.linear(fmt, torch.empty(2, 16, device="meta")).shape == (2, 8)
    with pytest.raises(TypeError, match="Tensor"):
        cpu.linear(fmt, [[0.0] * 16])
    with pytest.raises(ValueError, match="unknown kernel backend"), cpu.use_backend("cuda"):
        pass
    with pytest.raises(ValueError, match="threads"):
        cpu.linear(fmt, torch.randn(1, 16), threads=0)


def test_cpu_detection_reports_something():
    assert isinstance(cpu.cpu_name(), str) and cpu.cpu_name()
    assert cpu.default_backend() in cpu.BACKENDS


def test_a_process_without_the_extension_warns_once_and_runs_on_torch():
    """No `sparsetorch._C` (no compiler at install time): a clear warning, then correct pure-torch layers."""
    import subprocess
    import sys

    code = (
        "import sys, warnings; sys.modules['sparsetorch._C'] = None\n"
        "import torch, sparsetorch as st\n"
        "from sparsetorch.kernels import compile, cpu, ops\n"
        "with warnings.catch_warnings(record=True) as w:\n"
        "    warnings.simplefilter('always')\n"
        "    assert cpu.backend() == 'torch' and not ops.available()\n"
        "assert any('pure-torch fallback' in str(x.message) and 'not built' in str(x.message) for x in w), w\n"
        "m = st.create_model('lenet-300-100', seed=0); st.prune(m, 'magnitude', sparsity=0.9)\n"
        "x = torch.randn(3, 1, 28, 28); ref = m(x)\n"
        "compile(m, formats='csr', use_cache=False)\n"
        "torch.testing.assert_close(m(x), ref, rtol=1e-4, atol=1e-4)\n"
        "print('ok')\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0 and res.stdout.strip().endswith("ok"), res.stderr[-3000:]
