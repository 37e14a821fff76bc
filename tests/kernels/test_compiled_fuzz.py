"""Fuzz `load_compiled` with random corruptions of small compiled LeNet checkpoints (issue 16).

Corruptions: bit flips in the index arrays (and anywhere in the file), truncation, and edits of
the safetensors header (dtypes, shapes, offsets) and of the compiled-layers header (shapes, format
names, fields, sizes, patterns). Each file is tried twice:

- *raw*: the file as the corruption leaves it (its checksum now stale). It must load into a model
  whose outputs equal the reference (the original checkpoint, decompiled), or be refused;
- *crafted*: the checksum recomputed, as a writer that means it would. It must be refused, or
  load into a model whose sparse forward equals its own decompiled (dense) meaning: what the
  index invariants guarantee (a repeated CSR column loaded and summed twice before issue 16).

A refusal is a `ValueError` or `FileNotFoundError` (what `load_compiled` documents) and leaves
the model exactly as it was. Never a crash or a hang (a deadline per example), nor an allocation
beyond the declared shapes (peak RSS grows by less than `RSS_BUDGET` over the whole run).
"""

from __future__ import annotations

import copy
import json
import resource
import struct
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as hs
from safetensors import safe_open

import sparsetorch as st
from sparsetorch._io import DIGEST_KEY, tensor_digest
from sparsetorch.kernels import compile, decompile, load_compiled, save_compiled
from sparsetorch.kernels.checkpoint import COMPILED_KEY
from tests.kernels.kernels_testutil import same_state, state_of

CONFIG = {"in_features": 64, "hidden": (48, 32)}
BASES = {  # name: (pruning pattern, formats of fc1 / fc2); fc3 (the head) stays a plain Linear
    "csr+2:4": ("2:4", {"fc1": "csr", "fc2": "2:4"}),
    "block+bitmask": ("block4x16", {"fc1": "block4x16", "fc2": "bitmask"}),
    "dense+csr32": ("unstructured", {"fc1": "dense", "fc2": "csr32"}),
    "2:8+csr16": ("2:8", {"fc1": "2:8", "fc2": "csr16"}),
}
INDEX_FIELDS = ("cols", "row_ptr", "bits", "index", "pad", "block_cols", "mask_bits")
DTYPES = ("F32", "F16", "BF16", "F64", "I8", "U8", "I16", "U16", "I32", "U32", "I64", "BOOL", "X9")
X = torch.randn(6, 64, generator=torch.Generator().manual_seed(0))
RSS_BUDGET = 256 * 2**20
OUTCOMES: Counter[str] = Counter()
RSS_AT_START: list[int] = []  # peak RSS once the base checkpoints are built and their kernels compiled


def _model(seed: int = 5) -> torch.nn.Module:
    return st.create_model("lenet-300-100", seed=seed, **CONFIG)


class Bases(dict):
    """`{base name: (checkpoint bytes, reference output)}`, with a short repr for hypothesis reports."""

    def __repr__(self) -> str:
        return f"Bases({sorted(self)})"


@pytest.fixture(scope="module")
def bases(tmp_path_factory) -> Bases:
    """Each base checkpoint's bytes and its reference output (the checkpoint loaded, decompiled)."""
    folder = tmp_path_factory.mktemp("fuzz")
    out = Bases()
    for name, (pattern, formats) in BASES.items():
        model = _model(seed=1)
        if pattern == "unstructured":
            st.prune(model, "magnitude", sparsity=0.5)
        else:
            st.prune(model, "magnitude", pattern=pattern, sparsity=None if ":" in pattern else 0.5)
        compile(model, formats=formats, use_cache=False, batch=1)
        path = save_compiled(model, folder / f"{name.replace(':', '-')}.safetensors")
        loaded = load_compiled(path, _model())
        with torch.no_grad():
            loaded(X)  # compiles the kernels now, not inside a timed example
            out[name] = (path.read_bytes(), decompile(loaded)(X))
    RSS_AT_START.append(_peak_rss())
    return out


def _peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


# --- the file as (header, data) ------------------------------------------------------------------


def _split(raw: bytes) -> tuple[dict, bytes]:
    n = struct.unpack("<Q", raw[:8])[0]
    return json.loads(raw[8 : 8 + n]), raw[8 + n :]


def _join(header: dict, data: bytes) -> bytes:
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + data


def _reseal(raw: bytes, path: Path) -> bytes:
    """`raw` with its checksum recomputed, where safetensors can still read its tensors."""
    path.write_bytes(raw)
    try:
        with safe_open(str(path), framework="pt") as f:
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
        header, data = _split(raw)
    except Exception:
        return raw
    meta = header.get("__metadata__")
    if not isinstance(meta, dict) or DIGEST_KEY not in meta:
        return raw
    meta[DIGEST_KEY] = tensor_digest(tensors)
    return _join(header, data)


# --- corruptions ---------------------------------------------------------------------------------


@hs.composite
def index_flip(draw, raw: bytes) -> bytes:
    """One bit flipped in one element of an index array."""
    header, data = _split(raw)
    names = sorted(k for k in header if k != "__metadata__" and k.rpartition(".")[2] in INDEX_FIELDS)
    name = draw(hs.sampled_from(names))
    start, end = header[name]["data_offsets"]
    if end == start:
        return raw
    at = draw(hs.integers(start, end - 1))
    flipped = bytearray(data)
    flipped[at] ^= 1 << draw(hs.integers(0, 7))
    return _join(header, bytes(flipped))


@hs.composite
def byte_flip(draw, raw: bytes) -> bytes:
    """One bit flipped anywhere in the file (length prefix and JSON header included)."""
    at = draw(hs.integers(0, len(raw) - 1))
    flipped = bytearray(raw)
    flipped[at] ^= 1 << draw(hs.integers(0, 7))
    return bytes(flipped)


@hs.composite
def truncation(draw, raw: bytes) -> bytes:
    return raw[: draw(hs.integers(0, len(raw) - 1))]


@hs.composite
def tensor_header_edit(draw, raw: bytes) -> bytes:
    """A tensor's dtype, shape or byte offsets changed in the safetensors header."""
    header, data = _split(raw)
    name = draw(hs.sampled_from(sorted(k for k in header if k != "__metadata__")))
    entry = header[name]
    what = draw(hs.sampled_from(["dtype", "shape", "offsets"]))
    if what == "dtype":
        entry["dtype"] = draw(hs.sampled_from(DTYPES))
    elif what == "shape":
        numel = 1
        for s in entry["shape"]:
            numel *= s
        entry["shape"] = draw(
            hs.sampled_from(
                [[numel], [1, numel], [numel, 1], [numel + 1], [max(numel - 1, 0)], [], [numel, 0]]
            )
        )
    else:
        entry["data_offsets"] = [o + draw(hs.integers(-9, 9)) for o in entry["data_offsets"]]
    return _join(header, data)


JSON_JUNK = hs.one_of(
    hs.integers(-(2**40), 2**40),
    hs.sampled_from([0, 1, 2, 3, 4, 8, 16, 32, 256, 257, 65537, 2**31, -1]),
    hs.booleans(),
    hs.none(),
    hs.floats(allow_nan=False, allow_infinity=False),
    hs.sampled_from(["csr", "bitmask", "nm", "block", "dense", "", "CSR", "coo", "2:4", "foo", "block4x16"]),
    hs.lists(hs.integers(-3, 10**7), max_size=3),
)


@hs.composite
def layer_header_edit(draw, raw: bytes) -> bytes:
    """A field of the compiled-layers header replaced (shapes, format names, sizes, fields, pattern)."""
    header, data = _split(raw)
    meta = header["__metadata__"]
    layers = json.loads(meta[COMPILED_KEY])
    fqn = draw(hs.sampled_from(sorted(layers)))
    info = layers[fqn]
    where = draw(hs.sampled_from(["meta", "meta.shape", "info", "layer", "top"]))
    if where == "meta":
        info["meta"][draw(hs.sampled_from(sorted(info["meta"])))] = draw(JSON_JUNK)
    elif where == "meta.shape":
        info["meta"]["shape"][draw(hs.integers(0, 1))] = draw(JSON_JUNK)
    elif where == "info":
        info[draw(hs.sampled_from(["fields", "bias", "pattern", "meta"]))] = draw(JSON_JUNK)
    elif where == "layer":
        layers[draw(hs.sampled_from(["fc3", "fc9", "", "flatten", "fc1.weight"]))] = info
    else:
        meta[draw(hs.sampled_from(["format", "version", "patterns", COMPILED_KEY]))] = json.dumps(
            draw(JSON_JUNK)
        )
        return _join(header, data)
    meta[COMPILED_KEY] = json.dumps(layers)
    return _join(header, data)


CORRUPTIONS = {
    "index-flip": index_flip,
    "byte-flip": byte_flip,
    "truncation": truncation,
    "tensor-header": tensor_header_edit,
    "layer-header": layer_header_edit,
}


def _try(raw: bytes, path: Path, reference: torch.Tensor | None) -> str:
    """Load `raw`; check the outcome; return its name. `reference=None`: the crafted property."""
    path.write_bytes(raw)
    model = _model()
    before = state_of(model)
    try:
        load_compiled(path, model)
    except (ValueError, FileNotFoundError):
        assert same_state(before, state_of(model)), "a refused load changed the model"
        return "refused"
    with torch.no_grad():
        y = model(X)
        dense = decompile(copy.deepcopy(model))(X)
    torch.testing.assert_close(y, dense, rtol=1e-4, atol=1e-5, equal_nan=True)
    if reference is None:
        return "loaded"
    torch.testing.assert_close(y, reference, rtol=1e-4, atol=1e-5, equal_nan=True)
    return "equal"


@settings(
    max_examples=200,
    derandomize=True,
    deadline=timedelta(seconds=10),
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(data=hs.data(), base=hs.sampled_from(sorted(BASES)), kind=hs.sampled_from(sorted(CORRUPTIONS)))
def test_corrupt_compiled_checkpoints_load_equal_or_are_refused(bases, tmp_path, data, base, kind):
    raw, reference = bases[base]
    bad = data.draw(CORRUPTIONS[kind](raw), label=kind)
    OUTCOMES[f"{kind}/raw/{_try(bad, tmp_path / 'raw.safetensors', reference)}"] += 1
    crafted = _reseal(bad, tmp_path / "seal.safetensors")
    OUTCOMES[f"{kind}/crafted/{_try(crafted, tmp_path / 'crafted.safetensors', None)}"] += 1
    grown = _peak_rss() - RSS_AT_START[0]  # here, so that the bound holds however the tests are run
    assert grown < RSS_BUDGET, f"peak RSS grew by {grown / 2**20:.0f} MiB while loading corrupt files"


def test_a_huge_declared_shape_is_refused_within_memory(bases, tmp_path):
    """A header declaring a 2**31 - 1 square layer is refused without allocating it (the fuzz test
    checks its own peak memory after every example)."""
    start = _peak_rss()
    # Load the largest-declared header edit directly: a shape of 2**31 - 1 squared must be refused cheaply.
    raw, _ = bases["csr+2:4"]
    header, data = _split(raw)
    layers = json.loads(header["__metadata__"][COMPILED_KEY])
    layers["fc1"]["meta"]["shape"] = [2**31 - 1, 2**31 - 1]
    header["__metadata__"][COMPILED_KEY] = json.dumps(layers)
    assert _try(_join(header, data), tmp_path / "huge.safetensors", None) == "refused"
    grown = _peak_rss() - start
    assert grown < RSS_BUDGET, f"peak RSS grew by {grown / 2**20:.0f} MiB loading a huge declared shape"
    print("fuzz outcomes:", dict(sorted(OUTCOMES.items())))
