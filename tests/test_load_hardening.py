"""Issue 16 reproducers for plain checkpoints: a bad file is refused before the model is touched or
memory is allocated, and the model is left exactly as it was."""

from __future__ import annotations

import json
import resource
from pathlib import Path

import pytest
import torch

import sparsetorch as st
from sparsetorch import checkpoint as core
from sparsetorch._checks import check_config, check_json_value, model_config_fields
from sparsetorch._io import read_safetensors_header


def rewrite(src: Path, dst: Path, edit) -> Path:
    """Copy a safetensors file with its header JSON edited by `edit(header)` (the data untouched)."""
    data = src.read_bytes()
    n = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + n])
    edit(header)
    raw = json.dumps(header).encode()
    dst.write_bytes(len(raw).to_bytes(8, "little") + raw + data[8 + n :])
    return dst


def set_meta(key: str, value: str):
    return lambda header: header["__metadata__"].__setitem__(key, value)


def pruned(seed: int = 1) -> torch.nn.Module:
    model = st.create_model("lenet-300-100", seed=seed)
    st.prune(model, "magnitude", sparsity=0.3)
    return model


def snapshot(model):
    masks = {k: v.clone() for k, v in st.get_masks(model).items()}
    patterns = {k: str(v) for k, v in st.masks.patterns_of(model).items()}
    return {k: v.clone() for k, v in model.state_dict().items()}, masks, patterns


def assert_same(a, b):
    for x, y in zip(a[:2], b[:2], strict=True):
        assert x.keys() == y.keys()
        assert all(torch.equal(x[k], y[k]) for k in x)
    assert a[2] == b[2]


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> Path:
    return st.save(pruned(), tmp_path_factory.mktemp("ckpt") / "lenet.safetensors")


@pytest.mark.parametrize("pattern", ["foo", "3:2", 5, [1]])
def test_bad_pattern_header_leaves_the_model_exactly_as_it_was(saved, tmp_path, pattern):
    # Defect 1: squash ran before the patterns were parsed, so the model lost its masks.
    path = rewrite(
        saved, tmp_path / "p.safetensors", set_meta("patterns", json.dumps({"fc1.weight": pattern}))
    )
    model = pruned()
    before = snapshot(model)
    with pytest.raises(ValueError, match="corrupt 'patterns' header"):
        st.load(path, model)
    assert_same(before, snapshot(model))
    assert st.get_masks(model)


@pytest.mark.parametrize("hidden", [[20000, 20000], [10**6, 10**6]])
def test_oversized_model_config_fails_fast_without_allocating(saved, tmp_path, hidden):
    # Defect 2: 1.6 GB (or 4 TB) was allocated before the shapes were compared.
    path = rewrite(
        saved, tmp_path / "c.safetensors", set_meta("model_config", json.dumps({"hidden": hidden}))
    )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(ValueError, match=r"do not match its tensors: 'fc1\.bias'"):
        st.load(path)
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak) / 1024  # KiB on Linux
    assert grown_mb < 100


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ('{"nosuch": 1}', r"unknown key\(s\) \['nosuch'\]"),
        ('{"hidden": [300', "corrupt 'model_config' header"),
        ('{"hidden": "ab"}', r"'hidden' must be of type tuple\[int, int\]"),
        ('{"in_features": true}', "'in_features' must be of type int"),
        ("[1]", "must be a JSON object"),
    ],
)
def test_model_config_is_validated_before_building(saved, tmp_path, config, message):
    path = rewrite(saved, tmp_path / "c.safetensors", set_meta("model_config", config))
    with pytest.raises(ValueError, match=message) as info:
        st.load(path)
    assert str(path) in str(info.value)  # the error names the file


def test_unregistered_model_name_is_a_clear_error(saved, tmp_path):
    path = rewrite(saved, tmp_path / "n.safetensors", set_meta("model", "lenet-301-100"))
    with pytest.raises(ValueError, match="not registered"):
        st.load(path)


def test_mask_that_contradicts_its_pattern_is_refused(saved, tmp_path):
    # Defect 7: an unstructured mask labelled 2:4 loaded (`save` refuses to write one: crafted here).
    path = rewrite(saved, tmp_path / "ones.safetensors", set_meta("patterns", '{"fc1.weight": "2:4"}'))
    model = pruned()
    before = snapshot(model)
    with pytest.raises(ValueError, match="breaks its recorded pattern 2:4"):
        st.load(path, model)
    assert_same(before, snapshot(model))


def test_bool_bytes_other_than_0_and_1_are_refused(saved, tmp_path):
    # Defect 7: a bool byte 0x80 read as True. The checksum is dropped so the byte check itself is tested.
    path = rewrite(saved, tmp_path / "b.safetensors", lambda h: h["__metadata__"].pop("sha256"))
    entry = read_safetensors_header(path).tensors["__mask__/fc1.weight"]
    data = bytearray(path.read_bytes())
    start = len(data) - sum(e.end - e.start for e in read_safetensors_header(path).tensors.values())
    at = data.index(1, start + entry.start)
    data[at] = 0x80
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="bytes other than 0 and 1"):
        st.load(path, pruned())


def test_flipped_data_bit_is_caught_by_the_checksum(saved, tmp_path):
    data = bytearray(saved.read_bytes())
    data[-5] ^= 0x10  # inside the last tensor's data
    path = tmp_path / "flip.safetensors"
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="do not match its checksum"):
        st.load(path)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda h: h["fc1.bias"].__setitem__("shape", [301]), "needs 1204 bytes"),
        (lambda h: h["fc1.bias"].__setitem__("dtype", "F8"), "unsupported dtype"),
        (lambda h: h["fc1.bias"].__setitem__("data_offsets", [4, 1204]), "starts at byte|declares"),
        (lambda h: h["fc1.bias"].__setitem__("shape", [-300]), "non-negative"),
    ],
)
def test_header_shapes_dtypes_offsets_are_checked_against_the_file(saved, tmp_path, edit, message):
    path = rewrite(saved, tmp_path / "h.safetensors", edit)
    with pytest.raises(ValueError, match=message):
        st.load(path, pruned())


def test_header_length_beyond_the_file_is_refused(saved, tmp_path):
    path = tmp_path / "len.safetensors"
    path.write_bytes((10**12).to_bytes(8, "little") + saved.read_bytes()[8:])
    with pytest.raises(ValueError, match="truncated or not a safetensors file"):
        st.load(path)


def test_same_size_dtype_swap_without_checksum_is_refused(saved, tmp_path):
    def swap(header):
        header["__metadata__"].pop("sha256")
        header["fc1.weight"]["dtype"] = "I32"

    with pytest.raises(ValueError, match=r"model expects torch\.float32"):
        st.load(rewrite(saved, tmp_path / "d.safetensors", swap), pruned())


def test_interrupted_load_rolls_back(saved, monkeypatch):
    model = pruned(seed=2)
    before = snapshot(model)

    weight = model.fc1.parametrizations.weight.original
    real, calls = core._swap, []

    def interrupted(*args, **kwargs):  # halfway through the storage swaps
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(core, "_swap", interrupted)
    with pytest.raises(KeyboardInterrupt):
        st.load(saved, model)
    monkeypatch.undo()
    assert_same(before, snapshot(model))
    assert model.fc1.parametrizations.weight.original is weight  # parameters kept, not replaced

    def after_the_swaps(*args, **kwargs):  # masks dropped, tensors swapped: all of it comes back
        raise KeyboardInterrupt

    st.attach(model, {"fc3.weight": torch.rand(10, 100) > 0.5})
    before = snapshot(model)
    monkeypatch.setattr(core, "attach", after_the_swaps)
    with pytest.raises(KeyboardInterrupt):
        st.load(saved, model)
    assert_same(before, snapshot(model))


def test_good_file_still_loads_and_keeps_parameters_in_place(saved):
    model = pruned(seed=2)
    original = model.fc1.parametrizations.weight.original
    st.load(saved, model)
    reference = pruned()
    x = torch.randn(3, 784, generator=torch.Generator().manual_seed(0))
    assert torch.equal(model(x), reference(x))
    assert model.fc1.parametrizations.weight.original is original  # masks updated in place


def test_json_values_against_type_hints():
    check_json_value("x", [1, 2], tuple[int, int])
    check_json_value("x", None, float | None)
    check_json_value("x", "A", __import__("typing").Literal["A", "B"])
    for value, hint in [(True, int), ([1], tuple[int, int]), (float("nan"), float), ("C", int), (1, str)]:
        with pytest.raises(ValueError, match="x must be of type"):
            check_json_value("x", value, hint)
    fields = model_config_fields(st.create_model("lenet-5"))
    assert set(fields) == {"in_channels", "image_size", "num_classes"}
    with pytest.raises(ValueError, match="unknown key"):
        check_config("cfg", {"depth": 1}, fields)


@pytest.mark.parametrize(
    ("pattern", "good", "bad"),
    [
        ("2:4", torch.tensor([[1, 1, 0, 0, 0, 1, 0, 1]]), torch.tensor([[1, 1, 1, 0, 0, 0, 0, 0]])),
        ("block2x2", torch.tensor([[1, 1, 0, 0], [1, 1, 0, 0]]), torch.tensor([[1, 0, 0, 0], [1, 1, 0, 0]])),
        ("channel", torch.tensor([[1, 1], [0, 0]]), torch.tensor([[1, 0], [0, 0]])),
        ("channel:1", torch.tensor([[1, 0], [1, 0]]), torch.tensor([[1, 0], [0, 0]])),
    ],
)
def test_check_mask_accepts_masks_that_keep_to_their_pattern(pattern, good, bad):
    parsed = st.parse_pattern(pattern)
    st.masks.check_mask(good.bool(), parsed, name="m")
    with pytest.raises(ValueError, match=f"m breaks its recorded pattern {pattern}"):
        st.masks.check_mask(bad.bool(), parsed, name="m")


def test_a_checkpoint_without_a_checksum_still_loads(saved, tmp_path):
    path = rewrite(saved, tmp_path / "old.safetensors", lambda h: h["__metadata__"].pop("sha256"))
    x = torch.randn(2, 784, generator=torch.Generator().manual_seed(1))
    assert torch.equal(st.load(path)(x), st.load(saved)(x))


@pytest.mark.parametrize("compiled", [False, True])
def test_save_refuses_a_mask_that_breaks_its_pattern_and_writes_nothing(tmp_path, compiled):
    # Review item 1: an all-ones mask recorded as 2:4 saved fine, then `load` refused the file.
    model = st.create_model("lenet-300-100", seed=1)
    st.attach(model, {"fc3.weight": torch.ones(10, 100, dtype=torch.bool)}, patterns={"fc3.weight": "2:4"})
    save = (
        __import__("sparsetorch.kernels", fromlist=["save_compiled"]).save_compiled if compiled else st.save
    )
    with pytest.raises(ValueError, match=r"'fc3\.weight' breaks its recorded pattern 2:4"):
        save(model, tmp_path / "ones.safetensors")
    assert list(tmp_path.iterdir()) == []  # no file, not even a temporary one


@pytest.mark.parametrize("key", ["sha256", "format", "version", "patterns", "model", "model_config"])
def test_metadata_may_not_overwrite_reserved_header_keys(tmp_path, key):
    # Review item 7: user metadata replaced the checksum or the format of the file.
    with pytest.raises(ValueError, match=f"reserved header key.*{key}"):
        st.save(pruned(), tmp_path / "m.safetensors", metadata={key: "x"})
    assert list(tmp_path.iterdir()) == []
    st.save(pruned(), tmp_path / "m.safetensors", metadata={"note": "kept"})
    assert read_safetensors_header(tmp_path / "m.safetensors").metadata["note"] == "kept"


def test_the_reported_extra_pattern_does_not_depend_on_hash_order(saved, tmp_path):
    # Review item 6: a set's order named a different weight from run to run.
    extra = ", ".join(f'"{name}.weight": "2:4"' for name in ["zz", "fc3", "mm", "aa", "fc9", "b"])
    path = rewrite(saved, tmp_path / "p.safetensors", set_meta("patterns", "{" + extra + "}"))
    with pytest.raises(ValueError, match=r"names 'aa\.weight', which has no mask"):
        st.load(path, pruned())


def test_float8_and_complex_buffers_round_trip(tmp_path):
    # Review item 5: F8_E4M3 and friends (safetensors 0.8) were refused as unsupported dtypes.
    model = torch.nn.Linear(4, 4)
    values = torch.randn(6, generator=torch.Generator().manual_seed(0))
    for i, dtype in enumerate([getattr(torch, "float8_e4m3fn", None), torch.float8_e5m2, torch.complex64]):
        if dtype is None:
            pytest.skip("this torch has no float8")
        model.register_buffer(f"b{i}", values.to(dtype))
    path = st.save(model, tmp_path / "f8.safetensors")
    fresh = torch.nn.Linear(4, 4)
    for i, buffer in enumerate(model.buffers()):
        fresh.register_buffer(f"b{i}", torch.zeros_like(buffer))
    st.load(path, fresh)
    for mine, theirs in zip(fresh.buffers(), model.buffers(), strict=True):
        assert mine.dtype == theirs.dtype and torch.equal(mine.view(torch.uint8), theirs.view(torch.uint8))


def test_save_refuses_a_dtype_safetensors_cannot_store(tmp_path):
    model = torch.nn.Linear(2, 2)
    model.register_buffer("odd", torch.zeros(2, dtype=torch.complex128))
    with pytest.raises(ValueError, match=r"cannot save 'odd': dtype torch\.complex128"):
        st.save(model, tmp_path / "c.safetensors")
    assert list(tmp_path.iterdir()) == []


def test_digest_hashes_the_bytes_without_a_copy_and_as_before():
    # Review item 4: the same sha256 as `.tobytes()` gave (files written before still verify).
    import hashlib

    from sparsetorch._io import tensor_digest

    g = torch.Generator().manual_seed(0)
    for tensor in [torch.randn(3, 5, generator=g).bfloat16(), torch.rand(4, 4, generator=g) > 0.5,
                   torch.randn(2, 3, generator=g).t(), torch.zeros(0, 3)]:  # fmt: skip
        old = hashlib.sha256(f"t\0{tensor.dtype}\0{tuple(tensor.shape)}\0".encode())
        old.update(tensor.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
        assert tensor_digest({"t": tensor}) == old.hexdigest()


def test_load_into_a_model_swaps_storages_and_clones_nothing(saved):
    # Review item 3: every load cloned the whole model for its rollback (time and a full extra copy).
    from torch.overrides import TorchFunctionMode

    class Clones(TorchFunctionMode):
        count = 0

        def __torch_function__(self, func, types, args=(), kwargs=None):
            Clones.count += func is torch.Tensor.clone
            return func(*args, **(kwargs or {}))

    model = pruned(seed=2)
    params = dict(model.named_parameters())
    with Clones():
        st.load(saved, model)
    assert Clones.count == 0
    assert all(p is q for p, q in zip(params.values(), dict(model.named_parameters()).values(), strict=True))
    reference = pruned()
    x = torch.randn(3, 784, generator=torch.Generator().manual_seed(0))
    assert torch.equal(model(x), reference(x))
