"""compile / decompile, autotune cache, compact checkpoints, training fallback, bad input."""

from __future__ import annotations

import json
import warnings

import pytest
import torch
from torch import nn

import sparsetorch as st
from sparsetorch.kernels import (
    autotune,
    compile,
    decompile,
    load_compiled,
    save_compiled,
    sparse_layers,
    to_dense,
)
from sparsetorch.kernels.module import SparseLinear
from sparsetorch.masks import attach, get_masks
from tests.kernels.kernels_testutil import random_layer


def _mlp(seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Linear(48, 64), nn.ReLU(), nn.Linear(64, 32, bias=False), nn.ReLU(), nn.Linear(32, 10)
    )


def _pruned(pattern: str = "unstructured", sparsity: float = 0.8, seed: int = 0) -> nn.Sequential:
    model = _mlp(seed)
    m0 = random_layer(64, 48, sparsity=sparsity, seed=seed)[1]
    m2 = random_layer(32, 64, sparsity=sparsity, seed=seed + 1)[1]
    if pattern == "2:4":
        m0 = random_layer(64, 48, kind="nm", seed=seed)[1]
        m2 = random_layer(32, 64, kind="nm", seed=seed + 1)[1]
    attach(model, {"0.weight": m0, "2.weight": m2}, patterns={"0.weight": pattern, "2.weight": pattern})
    return model


X = torch.randn(7, 48, generator=torch.Generator().manual_seed(3))


@pytest.mark.parametrize("fmt", ["bitmask", "csr", "csr32", "dense", "auto"])
def test_compile_and_decompile_keep_outputs(fmt):
    model = _pruned()
    ref = model(X)
    before = {k: v.clone() for k, v in get_masks(model).items()}
    compile(model, formats=fmt, batch=(1, 8))
    assert set(sparse_layers(model)) == {"0", "2"}
    with torch.no_grad():
        torch.testing.assert_close(model(X), ref, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(model(X[:1]), ref[:1], rtol=1e-4, atol=1e-5)
    decompile(model)
    assert not sparse_layers(model)
    assert all(torch.equal(get_masks(model)[k], v) for k, v in before.items())
    torch.testing.assert_close(model(X), ref, rtol=1e-4, atol=1e-5)


def test_compile_2_4_and_block_formats():
    model = _pruned("2:4")
    ref = model(X)
    compile(model, formats="2:4")
    assert all(m.format_name == "nm" for m in sparse_layers(model).values())
    torch.testing.assert_close(model(X), ref, rtol=1e-4, atol=1e-5)
    model = _mlp()
    _, mask = random_layer(64, 48, kind="block", bh=4, bw=16, sparsity=0.5)
    attach(model, {"0.weight": mask}, patterns={"0.weight": "block4x16"})
    ref = model(X)
    compile(model, formats={"0": "block"})
    assert sparse_layers(model)["0"].format_name == "block"
    torch.testing.assert_close(model(X), ref, rtol=1e-4, atol=1e-5)


def test_to_dense_gives_plain_dense_model():
    model = _pruned()
    ref = model(X)
    to_dense(compile(model, formats="bitmask"))
    assert not get_masks(model) and not sparse_layers(model)
    assert all(type(m) in (nn.Linear, nn.ReLU, nn.Sequential) for m in model.modules())
    torch.testing.assert_close(model(X), ref, rtol=1e-4, atol=1e-5)


def test_squash_is_a_deprecated_alias_of_to_dense():
    import sparsetorch.kernels as K

    model = _pruned()
    ref = model(X)
    with pytest.warns(DeprecationWarning, match="to_dense"):
        K.squash(compile(model, formats="bitmask"))
    assert not get_masks(model) and not sparse_layers(model)
    torch.testing.assert_close(model(X), ref, rtol=1e-4, atol=1e-5)


def test_unmasked_model_is_a_noop_with_warning():
    model = _mlp()
    with pytest.warns(UserWarning, match="no masks"):
        out = compile(model)
    assert out is model and not sparse_layers(model)


def test_format_that_does_not_fit_raises():
    model = _pruned()  # unstructured masks
    with pytest.raises(ValueError, match="does not fit layer"):
        compile(model, formats="2:4")
    with pytest.raises(ValueError, match="needs an N:M pattern"):
        compile(model, formats="nm")
    with pytest.raises(ValueError, match="unknown sparse format"):
        compile(model, formats="coo")
    assert not sparse_layers(model)  # nothing swapped on error


def test_wrong_dtype_raises():
    model = _pruned().double()
    with pytest.raises(TypeError, match="float32"):
        compile(model, formats="csr")
    model = compile(_pruned(), formats="csr")
    with pytest.raises(TypeError, match="float32"):
        model.double()
    with pytest.raises(TypeError, match="float32"):
        model(X.double())


@pytest.mark.parametrize("grad", [False, True])
def test_layer_kept_dense_gives_the_clear_errors(grad):
    """A kept-dense layer runs plain `F.linear` and checks its input only when that fails."""
    model = compile(_pruned(), formats="dense")
    with torch.set_grad_enabled(grad):
        with pytest.raises(TypeError, match="compute in float32"):
            model(X.double())
        with pytest.raises(ValueError, match="features, the layer expects 48"):
            model(X[:, :-1])
        torch.testing.assert_close(model(X), compile(_pruned(), formats="csr")(X))


def test_autotune_cache_written_and_reused(monkeypatch):
    calls = []
    real = autotune.measure

    def counting(*args, **kwargs):
        calls.append(args[2])
        return real(*args, **kwargs)

    monkeypatch.setattr(autotune, "measure", counting)
    compile(_pruned(), batch=(1, 64))
    assert len(calls) == 4  # 2 layers x 2 batch sizes
    data = json.loads(autotune.cache_path().read_text())
    assert len(data["entries"]) == 4
    assert all("dense" in e and "bitmask" in e and "csr" in e for e in data["entries"].values())
    model = compile(_pruned(), batch=(1, 64))  # same shapes and sparsity bucket: no new measurement
    assert len(calls) == 4
    assert all(m.autotune.cached for m in sparse_layers(model).values())
    autotune.cache_path().write_text("{not json")  # a corrupt cache is ignored and rewritten
    compile(_pruned(), batch=1)
    assert len(calls) == 6 and "entries" in json.loads(autotune.cache_path().read_text())


def test_autotune_keeps_dense_when_sparse_loses(monkeypatch):
    def fake(weight, built, batch, threads):
        return {"dense": 1.0, **{c.label: 2.0 for c, _ in built if c.fmt != "dense"}}

    monkeypatch.setattr(autotune, "measure", fake)
    model = compile(_pruned(), use_cache=False)
    assert all(m.format_name == "dense" for m in sparse_layers(model).values())

    def fake_fast(weight, built, batch, threads):
        return {
            "dense": 1.0,
            **{c.label: 0.5 if c.fmt == "csr" else 0.9 for c, _ in built if c.fmt != "dense"},
        }

    monkeypatch.setattr(autotune, "measure", fake_fast)
    model = compile(_pruned(), use_cache=False)
    assert all(m.format_name == "csr" for m in sparse_layers(model).values())


def test_autotune_times_each_batch_size_as_given(monkeypatch):
    """compile(batch=32) times the layers at 32 rows (a 17+ regime was once timed at 64)."""
    sizes = []

    def fake(weight, built, batch, threads):
        sizes.append(batch)
        return {"dense": 1.0, **{c.label: 2.0 for c, _ in built if c.fmt != "dense"}}

    monkeypatch.setattr(autotune, "measure", fake)
    model = compile(_pruned(), batch=32, use_cache=False)
    assert sizes == [32, 32]  # 2 layers
    assert all(set(m.autotune.ms) == {32} for m in sparse_layers(model).values())
    assert autotune.key((8, 16), 32, 0.9, "unstructured", 2, "avx512").split("|")[1] == "b32"
    with pytest.raises(ValueError, match="batch sizes must be >= 1"):
        compile(_pruned(), batch=0, use_cache=False)


def test_autotune_keys():
    assert autotune.sparsity_bucket(0.9) == "90" and autotune.sparsity_bucket(0.874) == "85"
    assert autotune.sparsity_bucket(0.955) == "95"


@pytest.mark.parametrize("fmt", ["bitmask", "csr", "2:4", "dense"])
def test_compact_save_load_round_trip(tmp_path, fmt):
    pattern = "2:4" if fmt == "2:4" else "unstructured"
    model = _pruned(pattern)
    attach(model, {"4.weight": torch.rand(10, 32) > 0.5})  # a masked layer left uncompiled
    ref = model(X)
    compile(model, formats={"0": fmt, "2": fmt, "4": "dense"} if fmt != "2:4" else {"0": fmt, "2": fmt})
    path = save_compiled(model, tmp_path / "m.safetensors")
    fresh = _mlp(seed=9)
    load_compiled(path, fresh)
    assert {n: type(m) for n, m in sparse_layers(fresh).items()} == {
        n: type(m) for n, m in sparse_layers(model).items()
    }
    torch.testing.assert_close(fresh(X), ref, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(decompile(fresh)(X), ref, rtol=1e-4, atol=1e-5)
    if fmt == "bitmask":  # compact: far smaller than the dense float32 weights
        assert path.stat().st_size < 0.6 * 4 * (64 * 48 + 32 * 64)


def test_corrupt_checkpoint_raises_value_error(tmp_path):
    model = compile(_pruned(), formats="csr")
    path = save_compiled(model, tmp_path / "m.safetensors")
    data = path.read_bytes()
    (tmp_path / "trunc.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"corrupt|truncated"):
        load_compiled(tmp_path / "trunc.safetensors", _mlp())
    (tmp_path / "junk.safetensors").write_bytes(b"\x00" * 64)
    with pytest.raises(ValueError):
        load_compiled(tmp_path / "junk.safetensors", _mlp())
    # A well-formed file whose compressed tensors are inconsistent.
    from safetensors.torch import load_file, save_file

    tensors = load_file(str(path))
    tensors["0.cols"] = torch.full_like(tensors["0.cols"], 999)
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
    save_file(tensors, str(tmp_path / "bad.safetensors"), metadata=meta)
    with pytest.raises(ValueError, match="corrupt"):
        load_compiled(tmp_path / "bad.safetensors", _mlp())
    plain = tmp_path / "plain.safetensors"
    st.save(_pruned(), plain)
    with pytest.raises(ValueError, match="not a compiled"):
        load_compiled(plain, _mlp())
    with pytest.raises(ValueError, match="not a Linear"):
        load_compiled(
            path, nn.Sequential(nn.Linear(48, 64), nn.ReLU(), nn.Linear(64, 33), nn.ReLU(), nn.Linear(32, 10))
        )


@pytest.mark.parametrize("fmt", ["bitmask", "csr", "2:4", "dense"])
def test_backward_fallback_matches_dense_masked_gradients(fmt):
    pattern = "2:4" if fmt == "2:4" else "unstructured"
    dense = _pruned(pattern)
    sparse = compile(_pruned(pattern), formats=fmt)
    x1 = X.clone().requires_grad_(True)
    x2 = X.clone().requires_grad_(True)
    dense(x1).square().sum().backward()
    sparse(x2).square().sum().backward()
    torch.testing.assert_close(x2.grad, x1.grad, rtol=1e-4, atol=1e-4)
    for fqn in ("0", "2"):
        layer: SparseLinear = sparse_layers(sparse)[fqn]
        ref = dense.get_submodule(fqn).parametrizations.weight.original.grad  # zero where masked
        values = layer.weight if fmt == "dense" else layer.values
        got = torch.zeros(layer.out_features * layer.in_features)
        if fmt == "dense":
            got = values.grad.flatten()
        else:
            got[layer.positions()] = values.grad.flatten()[: layer.positions().numel()]
        torch.testing.assert_close(got.view_as(ref), ref, rtol=1e-4, atol=1e-4)
        if dense.get_submodule(fqn).bias is not None:
            torch.testing.assert_close(
                layer.bias.grad, dense.get_submodule(fqn).bias.grad, rtol=1e-4, atol=1e-4
            )


def test_training_step_keeps_structure_and_matches_dense():
    dense = _pruned()
    sparse = compile(_pruned(), formats="bitmask")
    for model in (dense, sparse):
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        for _ in range(3):
            opt.zero_grad()
            model(X).square().mean().backward()
            opt.step()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.testing.assert_close(sparse(X), dense(X), rtol=1e-4, atol=1e-4)
    decompile(sparse)
    assert all(torch.equal(get_masks(sparse)[k], v) for k, v in get_masks(dense).items())


def test_prune_then_compile_lenet():
    model = st.create_model("lenet-300-100", seed=0)
    st.prune(model, "magnitude", 0.9)
    x = torch.randn(4, 1, 28, 28)
    ref = model(x)
    compile(model, formats="bitmask")
    torch.testing.assert_close(model(x), ref, rtol=1e-4, atol=1e-5)
