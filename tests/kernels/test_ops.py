"""The C++ custom operators: registration (`opcheck`), gradients, `torch.compile`, bad input, one thread pool."""

from __future__ import annotations

import copy
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as Fn
from torch import nn

import sparsetorch as st
from sparsetorch.kernels import compile, decompile, ops, sparse_layers
from sparsetorch.kernels import formats as F
from tests.kernels.kernels_testutil import random_layer

pytestmark = pytest.mark.skipif(not ops.available(), reason="the C++ extension is not built")


def _formats(out: int, inp: int, *, seed: int = 0) -> list[tuple[F.Format, torch.Tensor, torch.Tensor]]:
    """(format, weight, mask) for every format at an odd size (block and N:M at their own shapes)."""
    w, m = random_layer(out, inp, sparsity=0.7, seed=seed)  # row 1 empty
    cases = [(F.Bitmask.from_dense(w, m), w, m), (F.CSR.from_dense(w, m), w, m)]
    cases.append((F.CSR.from_dense(w, m, index_bits=32), w, m))
    w, m = random_layer(out, 4 * inp, kind="nm", n=2, m=4, seed=seed)
    cases.append((F.NMPacked.from_dense(w, m, n=2, m=4), w, m))
    w, m = random_layer(out, 8 * inp, kind="nm", n=1, m=8, seed=seed)
    cases.append((F.NMPacked.from_dense(w, m, n=1, m=8), w, m))
    w, m = random_layer(2 * out, 3 * inp, kind="block", bh=2, bw=3, sparsity=0.5, seed=seed)
    cases.append((F.BlockSparse.from_dense(w, m, bh=2, bw=3), w, m))
    return cases


def _op_args(fmt: F.Format, x: torch.Tensor, bias: torch.Tensor | None, values: torch.Tensor | None = None):
    """(op, args) of `fmt`'s operator, in its schema's order, with `values` in place of the format's."""
    op, head, tail = ops.op_args(fmt)
    if values is not None:
        head = tuple(
            values if f == "values" else t for f, t in zip(ops.OP_FIELDS[fmt.name], head, strict=True)
        )
    return op, (x, *head, bias, *tail)


@pytest.mark.parametrize("batch", [(1,), (3,), (2, 5), (65,)])
@pytest.mark.parametrize("grad", [False, True])
def test_opcheck_every_format(batch, grad):
    """Schema, fake kernel, autograd registration and dynamic-shape AOT dispatch of every operator."""
    g = torch.Generator().manual_seed(1)
    for fmt, _, _ in _formats(7, 13):
        x = torch.randn(*batch, fmt.shape[1], generator=g).requires_grad_(grad)
        values = fmt.values.clone().requires_grad_(grad)
        for bias in (None, torch.randn(fmt.shape[0], generator=g).requires_grad_(grad)):
            op, args = _op_args(fmt, x, bias, values)
            torch.library.opcheck(op, args)


def test_outputs_and_gradients_equal_the_dense_masked_layer():
    g = torch.Generator().manual_seed(2)
    for fmt, w, m in _formats(9, 21):
        dense_w = torch.where(m, w, 0.0).requires_grad_(True)
        values = fmt.values.clone().requires_grad_(True)
        bias = torch.randn(fmt.shape[0], generator=g, requires_grad=True)
        for rows in (1, 4, 70):
            x = torch.randn(rows, fmt.shape[1], generator=g, requires_grad=True)
            x_ref = x.detach().clone().requires_grad_(True)
            op, args = _op_args(fmt, x, bias, values)
            y = op(*args)
            ref = Fn.linear(x_ref, dense_w, bias)
            torch.testing.assert_close(y, ref, rtol=1e-4, atol=1e-4)
            gy = torch.randn_like(y)
            gx, gv, gb = torch.autograd.grad(y, (x, values, bias), gy)
            rx, rw, rb = torch.autograd.grad(ref, (x_ref, dense_w, bias), gy)
            torch.testing.assert_close(gx, rx, rtol=1e-4, atol=1e-4)
            torch.testing.assert_close(gb, rb, rtol=1e-4, atol=1e-4)
            pos = ops.positions(fmt)
            kept = pos >= 0
            # the value gradient is the masked dense gradient read at the stored positions, 0 on padding
            torch.testing.assert_close(
                gv.flatten()[kept], (rw * m).flatten()[pos[kept]], rtol=1e-4, atol=1e-4
            )
            assert not gv.flatten()[~kept].any()


def test_positions_agree_with_the_formats():
    for fmt, _, _ in _formats(6, 10):
        pos = ops.positions(fmt)
        assert pos.numel() == fmt.values.numel()
        stored = pos[pos >= 0]
        expected = fmt.positions()
        if isinstance(fmt, F.NMPacked) and fmt.pad.numel():
            keep = torch.ones(expected.numel(), dtype=torch.bool)
            keep[fmt.pad] = False
            expected = expected[keep]
        torch.testing.assert_close(stored, expected)


def test_every_kernel_table_gives_the_same_answer():
    isas = ops.supported_isas()
    assert "generic" in isas
    g = torch.Generator().manual_seed(3)
    for fmt, _, _ in _formats(33, 13):
        xin = torch.randn(17, fmt.shape[1], generator=g)
        outs = {}
        for isa in isas:
            with ops.use_isa(isa):
                assert ops.isa() == isa
                outs[isa] = (ops.linear(fmt, xin), ops.linear(fmt, xin[:1]))
        for isa in isas:
            for a, b in zip(outs[isa], outs["generic"], strict=True):
                torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="not available on this CPU"), ops.use_isa("sse9"):
        pass


def test_bad_inputs_raise_clear_errors_naming_the_problem():
    fmt = F.CSR.from_dense(*random_layer(8, 16))
    op = torch.ops.sparsetorch.csr_linear.default
    good = (fmt.cols, fmt.values, fmt.row_ptr, None, 16)
    with pytest.raises(TypeError, match=r"dtype Double.*float32"):
        op(torch.randn(2, 16, dtype=torch.float64), *good)
    with pytest.raises(ValueError, match=r"shape \[2, 15\].*expects 16 features"):
        op(torch.randn(2, 15), *good)
    with pytest.raises(ValueError, match="not contiguous"):
        op(torch.randn(16, 2).t(), *good)
    with pytest.raises(ValueError, match=r"bias must be a contiguous CPU tensor of shape \(8\)"):
        op(torch.randn(2, 16), fmt.cols, fmt.values, fmt.row_ptr, torch.randn(7), 16)
    with pytest.raises(ValueError, match="row_ptr says"):
        op(torch.randn(2, 16), fmt.cols[:-1], fmt.values, fmt.row_ptr, None, 16)
    with pytest.raises(TypeError, match="row_ptr must be Int"):
        op(torch.randn(2, 16), fmt.cols, fmt.values, fmt.row_ptr.long(), None, 16)
    # batch 0 gives an empty output, as nn.Linear does
    assert op(torch.randn(0, 16), *good).shape == (0, 8)
    assert op(torch.randn(3, 0, 16), *good).shape == (3, 0, 8)


def _compiled_mlp(fmt: str, seed: int = 0) -> tuple[nn.Module, nn.Module]:
    """(masked dense MLP, the same compiled to `fmt`)."""
    torch.manual_seed(seed)
    model = nn.Sequential(
        nn.Linear(48, 64), nn.GELU(), nn.LayerNorm(64), nn.Linear(64, 32), nn.Linear(32, 10)
    )
    pattern = "2:4" if fmt == "nm" else "unstructured"
    st.prune(model, "magnitude", pattern=pattern, sparsity=None if fmt == "nm" else 0.8)
    return model, compile(copy.deepcopy(model), formats="2:4" if fmt == "nm" else fmt, use_cache=False)


def test_index_tensor_edited_in_place_is_refused_and_the_model_is_unchanged():
    _, sparse = _compiled_mlp("csr")
    layer = sparse_layers(sparse)["0"]
    x = torch.randn(2, 48)
    before = {k: v.clone() for k, v in sparse.state_dict().items()}
    layer.cols.zero_()  # the structure changed after compile: values no longer match it
    with pytest.raises(RuntimeError, match=r"edited in place.*decompile and compile again"):
        sparse(x)
    changed = [k for k, v in sparse.state_dict().items() if not torch.equal(v, before[k])]
    assert changed == ["0.cols"]  # nothing else was touched by the refused call


@pytest.mark.parametrize("fmt", ["bitmask", "csr", "nm"])
def test_torch_compile_traces_the_sparse_layers_as_custom_ops(fmt):
    dense, sparse = _compiled_mlp(fmt)
    x = torch.randn(5, 48)
    with torch.no_grad():
        ref = dense(x)
        explained = torch._dynamo.explain(sparse)(x)
        assert explained.graph_break_count == 0 and explained.graph_count == 1
        targets = {str(n.target) for n in explained.graphs[0].graph.nodes if n.op == "call_function"}
        assert f"sparsetorch.{'nm' if fmt == 'nm' else fmt}_linear.default" in targets
        torch._dynamo.reset()
        y = torch.compile(sparse)(x)
    torch.testing.assert_close(y, ref, rtol=1e-4, atol=1e-4)


def test_torch_compile_trains_through_the_operators():
    dense, sparse = _compiled_mlp("csr", seed=1)
    x = torch.randn(6, 48)
    compiled = torch.compile(sparse)
    for model in (dense, compiled):
        opt = torch.optim.SGD(model.parameters(), lr=0.05)
        for _ in range(2):
            opt.zero_grad()
            model(x).square().mean().backward()
            opt.step()
    with torch.no_grad():
        torch.testing.assert_close(sparse(x), dense(x), rtol=1e-4, atol=1e-4)
    decompile(sparse)
    torch.testing.assert_close(st.get_masks(sparse)["0.weight"], st.get_masks(dense)["0.weight"])


def test_torch_export_keeps_the_operator():
    dense, sparse = _compiled_mlp("bitmask")
    x = torch.randn(3, 48)
    exported = torch.export.export(sparse, (x,))
    targets = {str(n.target) for n in exported.graph.nodes if n.op == "call_function"}
    assert "sparsetorch.bitmask_linear.default" in targets
    with torch.no_grad():
        torch.testing.assert_close(exported.module()(x), dense(x), rtol=1e-4, atol=1e-4)


@pytest.mark.data
@pytest.mark.slow
def test_torch_compile_over_a_compiled_minilm_matches_the_masked_model():
    from sparsetorch.models.hf import load_minilm

    model, tok = load_minilm()
    st.prune(model, "magnitude", sparsity=0.9)
    batch = tok(
        ["Sparse layers run as custom operators.", "Inductor fuses what lies around them."],
        padding="max_length",
        max_length=32,
        return_tensors="pt",
    )
    with torch.no_grad():
        ref = model(**batch).last_hidden_state
        compile(model, formats="csr", use_cache=False)
        assert len(sparse_layers(model)) == 36  # 6 blocks x (q, k, v, out, ffn in, ffn out)
        y = torch.compile(model)(**batch).last_hidden_state
    torch.testing.assert_close(y, ref, rtol=1e-3, atol=1e-3)


def test_one_thread_pool_in_the_process():
    """The operators run on torch's own libgomp: after a parallel product, one OpenMP runtime is mapped."""
    code = (
        "import torch, sparsetorch.kernels.ops as ops\n"
        "from sparsetorch.kernels import formats as F\n"
        "torch.set_num_threads(2)\n"
        "w = torch.randn(512, 512); f = F.CSR.from_dense(w, torch.rand(512, 512) > 0.5)\n"
        "for b in (1, 64): ops.linear(f, torch.randn(b, 512))\n"
        "libs = {l.split()[-1].rsplit('/', 1)[-1] for l in open('/proc/self/maps') if 'gomp' in l or 'libomp' in l}\n"
        "print(sorted(libs))\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    libs = eval(res.stdout.strip().splitlines()[-1])  # a printed list of file names
    assert len(libs) == 1, f"more than one OpenMP runtime mapped: {libs}"


def test_copies_loads_and_moves_keep_working_after_a_structure_check():
    dense, sparse = _compiled_mlp("csr", seed=2)
    x = torch.randn(2, 48)
    with torch.no_grad():
        ref = dense(x)
        sparse.load_state_dict(sparse.state_dict())  # copies in place: bumps the index versions
        torch.testing.assert_close(sparse(x), ref, rtol=1e-4, atol=1e-4)
        for other in (copy.deepcopy(sparse), sparse.to("cpu").float()):
            torch.testing.assert_close(other(x), ref, rtol=1e-4, atol=1e-4)
        bad = {k: v.clone() for k, v in sparse.state_dict().items()}
        bad["0.cols"][0] = 50  # a column past the layer's 48 inputs
        before = {k: v.clone() for k, v in sparse.state_dict().items()}
        with pytest.raises(ValueError, match="corrupt csr format"):
            sparse.load_state_dict(bad)
        assert all(torch.equal(v, before[k]) for k, v in sparse.state_dict().items())
