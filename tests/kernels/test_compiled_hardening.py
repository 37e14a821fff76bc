"""Issue 16 regressions for compiled models: index invariants at load, casts, compile arguments,
and `load_compiled` as a transaction."""

from __future__ import annotations

import copy
import json
import pickle

import pytest
import torch
from torch import nn

import sparsetorch as st
from sparsetorch import checkpoint as core
from sparsetorch.kernels import checkpoint as ckpt
from sparsetorch.kernels import compile, decompile, load_compiled, sparse_layers
from sparsetorch.kernels import validate as V
from sparsetorch.kernels.formats import CSR, BlockSparse, Dense, NMPacked
from sparsetorch.kernels.module import SparseLinear
from sparsetorch.masks import attach
from tests.kernels.kernels_testutil import (
    compiled_lenet,
    random_layer,
    rewrite_checkpoint,
    same_state,
    state_of,
)

X = torch.randn(5, 784, generator=torch.Generator().manual_seed(0))


# --- defect 3: duplicate indices -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "edit", "match"),
    [
        ("csr32", lambda t: t["fc1.cols"].__setitem__(1, t["fc1.cols"][0]), "columns must strictly increase"),
        ("2:4", lambda t: t["fc1.index"].__setitem__((0, 0), 0), "positions must strictly increase"),
    ],
)
def test_duplicate_indices_are_refused_and_the_model_is_unchanged(tmp_path, fmt, edit, match):
    """The issue's reproducers: a repeated CSR column / N:M position loaded and gave wrong outputs."""
    compiled_lenet(fmt, tmp_path / "m.safetensors")
    rewrite_checkpoint(tmp_path / "m.safetensors", tmp_path / "bad.safetensors", tensors=edit)
    fresh = st.create_model("lenet-300-100", seed=2)
    st.prune(fresh, "magnitude", sparsity=0.3)
    before = state_of(fresh)
    with pytest.raises(ValueError, match=match) as err:
        load_compiled(tmp_path / "bad.safetensors", fresh)
    assert "bad.safetensors" in str(err.value) and "'fc1'" in str(err.value)
    assert same_state(before, state_of(fresh))
    load_compiled(tmp_path / "m.safetensors", fresh)  # the intact file still loads
    with torch.no_grad():
        torch.testing.assert_close(fresh(X), decompile(copy.deepcopy(fresh))(X), rtol=1e-4, atol=1e-5)


def _csr() -> CSR:
    w, m = random_layer(8, 40, sparsity=0.5)
    return V.build("csr", w, m, index_bits=32)


def _nm(n: int = 2, m: int = 4) -> NMPacked:
    w, mask = random_layer(6, 4 * m, kind="nm", n=n, m=m)
    mask[0, :m] = False  # a group with padding
    return V.build("nm", w, mask, n=n, m=m)


def _with(fmt, **tensors):
    return V.from_tensors(fmt.meta(), {**fmt.tensors(), **tensors})


def test_every_index_invariant_is_checked():
    csr = _csr()
    cols = csr.cols.clone()
    cols[[0, 1]] = cols[[1, 0]]  # unsorted within row 0
    with pytest.raises(ValueError, match="strictly increase"):
        _with(csr, cols=cols)
    ptr = csr.row_ptr.clone()
    ptr[[3, 4]] = ptr[[4, 3]]
    assert ptr[3] > ptr[4]
    with pytest.raises(ValueError, match="never decrease"):
        _with(csr, row_ptr=ptr)
    with pytest.raises(ValueError, match="cols"):  # nnz and the array lengths disagree
        _with(csr, cols=csr.cols[:-1].clone())
    with pytest.raises(ValueError, match="cols"):  # right count, wrong rank
        _with(csr, cols=csr.cols.view(1, -1).clone())

    nm = _nm(2, 3)  # 2-bit positions can say 3, outside a group of 3
    index = nm.index.clone()
    index[1, 0] |= 3 << 2  # the second position of group 0 of row 1
    with pytest.raises(ValueError, match=r"outside its group|strictly increase"):
        _with(nm, index=index)
    nm = _nm()
    index = nm.index.clone()
    index[0, -1] |= 1 << 30  # a bit past the last position
    if nm.values.shape[1] % 16:
        with pytest.raises(ValueError, match="beyond the last position"):
            _with(nm, index=index)
    assert nm.pad.numel()
    values = nm.values.clone()
    values.view(-1)[nm.pad[0]] = 1.0
    with pytest.raises(ValueError, match="padding values must be zero"):
        _with(nm, values=values)

    w, m = random_layer(8, 32, kind="block", bh=2, bw=8, sparsity=0.3)
    blk: BlockSparse = V.build("block", w, m, bh=2, bw=8)
    counts = blk.row_ptr[1:] - blk.row_ptr[:-1]
    row = int((counts >= 2).nonzero()[0])
    bc = blk.block_cols.clone()
    bc[int(blk.row_ptr[row]) + 1] = bc[int(blk.row_ptr[row])]
    with pytest.raises(ValueError, match="block columns must strictly increase"):
        _with(blk, block_cols=bc)

    w, m = random_layer(4, 12, sparsity=0.5)
    dense: Dense = V.build("dense", w, m)
    weight = dense.weight.clone()
    weight[~m] = 1.0
    with pytest.raises(ValueError, match="not zero where masked"):
        _with(dense, weight=weight)
    with pytest.raises(ValueError, match="mask_bits dtype"):
        _with(dense, mask_bits=dense.mask_bits.to(torch.int8))


@pytest.mark.parametrize(
    "meta",
    [
        {"shape": [10**6, 10**6]},  # a huge declared shape: refused, nothing allocated by it
        {"shape": [True, 40]},
        {"shape": [8, 40, 1]},
        {"index_bits": 8},
        {"index_bits": "32"},
        {"format": ["csr"]},
        {"format": "coo"},
    ],
)
def test_header_fields_are_read_strictly(meta):
    csr = _csr()
    with pytest.raises(ValueError):
        V.from_tensors({**csr.meta(), **meta}, csr.tensors())


def test_missing_or_extra_tensor_fields_are_refused():
    csr = _csr()
    with pytest.raises(ValueError, match="stores"):
        V.from_tensors(csr.meta(), {k: v for k, v in csr.tensors().items() if k != "values"})
    with pytest.raises(ValueError, match="stores"):
        V.from_tensors(csr.meta(), {**csr.tensors(), "extra": torch.zeros(1)})


@pytest.mark.parametrize(
    ("header", "match"),
    [
        (lambda h: h["fc1"]["meta"].__setitem__("shape", [10**6, 10**6]), "not a Linear of shape"),
        (lambda h: h["fc1"].__setitem__("pattern", "foo"), "not a pattern"),
        (lambda h: h["fc1"].__setitem__("pattern", "2:4"), "contradicts its recorded pattern"),
        (lambda h: h["fc1"].__setitem__("fields", ["cols", 5]), "malformed"),
        (lambda h: h.__setitem__("", h["fc1"]), "malformed"),
    ],
)
def test_compiled_header_edits_are_refused_before_the_model_changes(tmp_path, header, match):
    compiled_lenet("csr", tmp_path / "m.safetensors")

    def edit(meta):
        layers = json.loads(meta[ckpt.COMPILED_KEY])
        header(layers)
        meta[ckpt.COMPILED_KEY] = json.dumps(layers)

    rewrite_checkpoint(tmp_path / "m.safetensors", tmp_path / "bad.safetensors", header=edit)
    fresh = compiled_lenet("bitmask", tmp_path / "other.safetensors", seed=3)
    before = state_of(fresh)
    with pytest.raises(ValueError, match=match):
        load_compiled(tmp_path / "bad.safetensors", fresh)
    assert same_state(before, state_of(fresh))


def test_plain_tensor_dtype_edit_is_refused(tmp_path):
    compiled_lenet("csr", tmp_path / "m.safetensors")
    rewrite_checkpoint(
        tmp_path / "m.safetensors",
        tmp_path / "bad.safetensors",
        tensors=lambda t: t.__setitem__("fc3.weight", t["fc3.weight"].view(torch.int32)),
    )
    with pytest.raises(ValueError, match=r"fc3\.weight"):
        load_compiled(tmp_path / "bad.safetensors", st.create_model("lenet-300-100"))


def test_load_is_a_transaction_even_when_interrupted(tmp_path, monkeypatch):
    """An interrupt after the layers are swapped in puts the model back as it was."""
    compiled_lenet("csr", tmp_path / "m.safetensors")
    fresh = st.create_model("lenet-300-100", seed=2)
    st.prune(fresh, "magnitude", sparsity=0.3)
    attach(fresh, {"fc3.weight": torch.rand(10, 100) > 0.5})
    before = state_of(fresh)

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(core, "attach", interrupted)
    with pytest.raises(KeyboardInterrupt):
        load_compiled(tmp_path / "m.safetensors", fresh)
    assert same_state(before, state_of(fresh))
    assert not sparse_layers(fresh)


# --- defect 5: casts -----------------------------------------------------------------------------


def _mixed() -> nn.Sequential:
    """A plain layer first, then compiled ones (a refusal at the first SparseLinear used to come
    after the plain layer was already cast), inside a nested container."""
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Linear(8, 16), nn.ReLU(), nn.Sequential(nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 16))
    )
    attach(model, {"2.0.weight": torch.rand(16, 16) > 0.5, "2.2.weight": torch.rand(16, 16) > 0.5})
    return compile(model, formats="csr")


@pytest.mark.parametrize(
    "cast",
    [
        lambda m: m.double(),
        lambda m: m.half(),
        lambda m: m.bfloat16(),
        lambda m: m.to(torch.float64),
        lambda m: m.to("meta"),
        lambda m: m.type(torch.float64),
        lambda m: m[2].double(),  # a nested container holding compiled layers
    ],
)
def test_a_refused_cast_changes_nothing(cast):
    model = _mixed()
    x = torch.randn(3, 8)
    ref = model(x)
    dtypes = {n: (p.dtype, p.device) for n, p in model.named_parameters()}
    with pytest.raises((TypeError, ValueError), match="SparseLinear"):
        cast(model)
    assert {n: (p.dtype, p.device) for n, p in model.named_parameters()} == dtypes
    torch.testing.assert_close(model(x), ref)


def test_cast_guard_survives_copies_and_goes_with_decompile():
    model = _mixed()
    for clone in (copy.deepcopy(model), _pickled(model)):
        with pytest.raises(TypeError, match="float32"):
            clone.double()
        assert clone[0].weight.dtype == torch.float32
        torch.testing.assert_close(clone(torch.ones(1, 8)), model(torch.ones(1, 8)))
    model.float()  # a no-op cast passes
    model[0].double().float()  # a plain sub-layer alone is not guarded
    decompile(model)
    assert model.double()[2][0].weight.dtype == torch.float64


def _pickled(model: nn.Module) -> nn.Module:
    """A pickle round trip in memory (what `torch.save(model)` relies on); never from a file."""
    return pickle.loads(pickle.dumps(model))


# --- defect 7: compile arguments ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"formats": 123}, TypeError, "formats"),
        ({"formats": {"fc1": 5}}, TypeError, "formats"),
        ({"formats": {1: "csr"}}, TypeError, "formats"),
        ({"threads": 0}, ValueError, "threads"),
        ({"threads": True}, ValueError, "threads"),
        ({"threads": 1.5}, ValueError, "threads"),
    ],
)
def test_compile_refuses_bad_arguments_up_front(kwargs, error, match):
    model = st.create_model("lenet-300-100", seed=1)
    st.prune(model, "magnitude", sparsity=0.5)
    with pytest.raises(error, match=match):
        compile(model, use_cache=False, **kwargs)
    assert not sparse_layers(model)


def test_threads_checked_by_the_layer_and_the_loader(tmp_path):
    fmt = _csr()
    with pytest.raises(ValueError, match="threads"):
        SparseLinear(fmt, threads=0)
    compiled_lenet("csr", tmp_path / "m.safetensors")
    with pytest.raises(ValueError, match="threads"):
        load_compiled(tmp_path / "m.safetensors", st.create_model("lenet-300-100"), threads=-1)


# --- review of issue 16: one conformance check, one fit check ----------------------------------------


def _conv_then_linear(tmp_path):
    """A conv (kept masked, unstructured) before a compiled Linear, saved compiled."""
    from sparsetorch.kernels import save_compiled

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(4, 8, 3), nn.Flatten(), nn.Linear(32, 16))
    attach(model, {"0.weight": torch.rand(8, 4, 3, 3) > 0.5, "2.weight": torch.rand(16, 32) > 0.5})
    compile(model, formats="csr", use_cache=False, batch=1)
    save_compiled(model, tmp_path / "conv.safetensors")
    fresh = nn.Sequential(nn.Conv2d(4, 8, 3), nn.Flatten(), nn.Linear(32, 16))
    attach(fresh, {"0.weight": torch.ones(8, 4, 3, 3, dtype=torch.bool)})
    return model, fresh


def test_load_compiled_refuses_a_conv_mask_that_breaks_its_pattern(tmp_path):
    """`conforms` skipped masks that were not 2-D, so a conv mask labelled 2:4 loaded (st.load refused it)."""
    _, fresh = _conv_then_linear(tmp_path)
    label = lambda meta: meta.__setitem__("patterns", json.dumps({"0.weight": "2:4"}))  # noqa: E731
    rewrite_checkpoint(tmp_path / "conv.safetensors", tmp_path / "bad.safetensors", header=label)
    before = state_of(fresh)
    with pytest.raises(ValueError, match="contradicts its recorded pattern 2:4"):
        load_compiled(tmp_path / "bad.safetensors", fresh)
    assert same_state(before, state_of(fresh))


def test_load_compiled_lets_floats_differ_in_precision_as_load_does(tmp_path):
    """The compiled loader asked for equal dtypes where `st.load` casts one float to another."""
    model, fresh = _conv_then_linear(tmp_path)
    fresh.half()
    load_compiled(tmp_path / "conv.safetensors", fresh)
    assert fresh[0].bias.dtype == torch.float16
    torch.testing.assert_close(fresh[0].bias, model[0].bias.half())
    with pytest.raises(ValueError, match=r"'0\.bias' is torch\.int32, model expects"):
        cast = lambda t: t.__setitem__("0.bias", t["0.bias"].int())  # noqa: E731
        rewrite_checkpoint(tmp_path / "conv.safetensors", tmp_path / "int.safetensors", tensors=cast)
        load_compiled(tmp_path / "int.safetensors", fresh)


def test_fits_conforms_and_check_mask_are_one_check():
    from sparsetorch.patterns import NM, check_mask

    conv = torch.ones(4, 8, 3, 3, dtype=torch.bool)
    assert "a group keeps 4" in V.conforms(conv, NM(2, 4))
    with pytest.raises(ValueError, match="a group keeps 4"):
        check_mask(conv, NM(2, 4), name="conv")
    assert V.fits("nm", conv[:, :, 0, 0], n=2, m=4) == V.conforms(conv[:, :, 0, 0], NM(2, 4))
    assert (
        V.fits("nm", conv[:, :4, 0, 0], n=3, m=4) is not None
        and V.fits("block", conv[:4, :, 0, 0]) is not None
    )
