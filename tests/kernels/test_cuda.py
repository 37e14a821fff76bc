"""CUDA path (`sparsetorch.kernels.cuda`): 2:4 and BSR layers equal the masked dense model.

The GPU tests run only where CUDA is available (the project's device machine); the CPU tests
check what must hold everywhere: a clear error for CPU layers, and nothing swapped on error.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

import sparsetorch as st
from sparsetorch.kernels import compile, cuda, decompile
from sparsetorch.masks import attach, get_masks

gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def _model(pattern: str, *, dtype=torch.float16, device="cuda", dims=(512, 1024, 256)) -> nn.Sequential:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(dims[0], dims[1]), nn.ReLU(), nn.Linear(dims[1], dims[2], bias=False))
    st.prune(model, "magnitude", 0.5 if pattern == "2:4" else 0.75, pattern=pattern)
    return model.to(device=device, dtype=dtype)


def test_cpu_layers_are_refused_by_the_cuda_compiler():
    model = _model("2:4", dtype=torch.float32, device="cpu")
    before = {k: v.clone() for k, v in get_masks(model).items()}
    with pytest.raises(ValueError, match="needs CUDA layers"):
        cuda.compile(model, formats="2:4")
    assert isinstance(model[0], nn.Linear)
    assert all(torch.equal(before[k], v) for k, v in get_masks(model).items())


def test_unknown_cuda_format_is_named():
    with pytest.raises(ValueError, match="unknown CUDA format 'bogus'"):
        cuda._layout_for("bogus", None)


@gpu
@pytest.mark.parametrize(
    ("pattern", "fmt"), [("2:4", "2:4"), ("block16x16", "bsr"), ("block16x16", "bsr16x16")]
)
def test_compiled_outputs_equal_masked_dense(pattern, fmt):
    model = _model(pattern)
    x = torch.randn(3, 40, 512, device="cuda", dtype=torch.float16)
    with torch.no_grad():
        ref = model(x)
        compile(model, formats=fmt)
        assert isinstance(model[0], cuda.CudaSparseLinear)  # the head (model[2]) is not a default target
        out = model(x)
    torch.testing.assert_close(out, ref, rtol=2e-2, atol=2e-2)


@gpu
def test_decompile_restores_masks_and_outputs():
    model = _model("2:4")
    before = {k: v.cpu().clone() for k, v in get_masks(model).items()}
    x = torch.randn(64, 512, device="cuda", dtype=torch.float16)
    with torch.no_grad():
        ref = model(x)
        compile(model, formats="2:4")
        decompile(model)
        out = model(x)
    assert isinstance(model[0], nn.Linear)
    after = {k: v.cpu() for k, v in get_masks(model).items()}
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
    torch.testing.assert_close(out, ref)


@gpu
def test_auto_keeps_only_layers_that_are_faster():
    model = _model("2:4", dims=(4096, 4096, 4096))
    x = torch.randn(8, 4096, device="cuda", dtype=torch.float16)
    with torch.no_grad():
        ref = model(x)
        compile(model, batch=8192)
        out = model(x)
    for layer in cuda.cuda_layers(model).values():
        assert layer.timing is not None and layer.timing.speedup > 1.0
    torch.testing.assert_close(out, ref, rtol=2e-2, atol=5e-2)


@gpu
def test_2to4_errors_name_the_problem_and_leave_the_model_unchanged():
    model = _model("unstructured")
    with pytest.raises(ValueError, match=r"does not fit layer '0\.weight'.*not 2:4"):
        compile(model, formats="2:4")
    assert isinstance(model[0], nn.Linear)
    fp32 = _model("2:4", dtype=torch.float32)
    with pytest.raises(TypeError, match="float16 or bfloat16"):
        compile(fp32, formats="2:4")
    assert isinstance(fp32[0], nn.Linear)


@gpu
def test_bsr_needs_a_block_mask():
    model = _model("unstructured")
    with pytest.raises(ValueError, match="not 16x16 block-structured"):
        compile(model, formats="bsr16x16")
    attach(model, {k: torch.ones_like(v) for k, v in get_masks(model).items()})
    compile(model, formats="bsr16x16")  # a dense mask is trivially blocked
    assert isinstance(model[0], cuda.CudaSparseLinear)
