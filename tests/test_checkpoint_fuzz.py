"""Fuzzing the plain-checkpoint loader (issue 16): random corruptions of a small saved LeNet.

Each corrupted file must either load into a model whose outputs equal the saved model's, or raise
one of `load`'s documented errors (ValueError, FileNotFoundError) and leave the model it was loaded
into exactly as it was. Never a crash, a hang, or an allocation beyond what the file's declared
shapes allow (the process's peak memory is checked around the whole run).

A second, "crafted" pass recomputes the checksum of each corrupted file (as anyone can), so the
content checks behind it (bool bytes, patterns, the fit to the model) are reached, and each of them
must refuse something.
"""

from __future__ import annotations

import functools
import json
import re
import resource
from collections import Counter
from pathlib import Path

import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as hs

import sparsetorch as st
from sparsetorch._io import DTYPE_BYTES

CONFIG = {"hidden": [32, 16]}
EXAMPLES = 200
CRAFTED_EXAMPLES = 150
# (what the message says, a short name for the tally); the first that matches names the refusal.
REASONS = [
    ("checksum", "checksum"),
    ("bytes other than 0 and 1", "bool bytes"),
    ("patterns", "patterns header"),
    ("model_config|not registered|names no registered model|needs more parameters", "model/config header"),
    ("truncated|declares|starts at byte|needs .* bytes|dtype|shape .*expected|data_offsets", "tensor layout"),
    ("not a sparsetorch checkpoint|format version", "format header"),
    ("breaks its recorded pattern", "breaks pattern"),
    ("does not fit|has shape|model expects|matches no weight", "does not fit model"),
    ("corrupt|not a safetensors", "corrupt header"),
]


def _pruned(seed: int) -> torch.nn.Module:
    model = st.create_model("lenet-300-100", seed=seed, **CONFIG)
    st.prune(model, "magnitude", pattern="2:4", targets="fc1")
    st.prune(model, "magnitude", sparsity=0.6 if seed else 0.5, targets="fc2")
    return model


@functools.cache
def _good() -> tuple[bytes, torch.Tensor, torch.Tensor]:
    """The saved file's bytes, a fixed input, and the saved model's outputs on it."""
    import tempfile

    model = _pruned(0)
    with tempfile.TemporaryDirectory() as tmp:
        data = st.save(model, Path(tmp) / "good.safetensors").read_bytes()
    x = torch.randn(4, 784, generator=torch.Generator().manual_seed(0))
    return data, x, model(x).detach()


def _split(data: bytes) -> tuple[dict, bytes]:
    n = int.from_bytes(data[:8], "little")
    return json.loads(data[8 : 8 + n]), data[8 + n :]


def _join(header: dict, body: bytes) -> bytes:
    raw = json.dumps(header).encode()
    return len(raw).to_bytes(8, "little") + raw + body


JSON_SCALARS = hs.one_of(hs.integers(-5, 10**12), hs.floats(), hs.booleans(), hs.text(max_size=4), hs.none())
CONFIG_VALUES = hs.one_of(JSON_SCALARS, hs.lists(hs.integers(-5, 10**7), max_size=3))
PATTERNS = hs.sampled_from(
    ["2:4", "1:4", "3:2", "4:8", "foo", "unstructured", "block4x4", "channel", "channel:1"]
)
FQNS = hs.sampled_from(["fc1.weight", "fc2.weight", "fc3.weight", "fc1.bias", "nosuch"])


def _meta_values(key: str):
    """Replacement values for one metadata key: well-formed but wrong, or not JSON at all."""
    if key == "patterns":
        good = hs.dictionaries(FQNS, hs.one_of(PATTERNS, JSON_SCALARS), max_size=3).map(json.dumps)
    elif key == "model_config":
        keys = hs.sampled_from(["hidden", "in_features", "num_classes", "nosuch"])
        good = hs.dictionaries(keys, CONFIG_VALUES, max_size=3).map(json.dumps)
    elif key == "model":
        # minilm-l6 is left out only for time: it takes the same path as moe-gpt-tiny (no meta build).
        good = hs.sampled_from(["lenet-5", "gpt-tiny", "resnet-20", "moe-gpt-tiny", "nosuch", ""])
    else:
        good = hs.text(max_size=8)
    return hs.one_of(good, hs.text(max_size=12))


def _layout_edit(names: list[str]):
    """One edit of a tensor's header entry: its shape, dtype, offsets, name or presence."""
    tensor = hs.sampled_from(names)
    dims = hs.one_of(
        hs.lists(hs.integers(-2, 10**6), max_size=3), hs.just("x"), hs.integers(), hs.lists(hs.just(2**63))
    )
    return hs.one_of(
        hs.tuples(hs.just("shape"), tensor, dims),
        hs.tuples(hs.just("dtype"), tensor, hs.sampled_from([*DTYPE_BYTES, "F8", "", 5])),
        hs.tuples(hs.just("data_offsets"), tensor, hs.lists(hs.integers(-1, 2 * 10**6), max_size=3)),
        hs.tuples(hs.just("rename"), tensor, hs.sampled_from(["fc1.weight", "x", "__mask__/fc3.weight"])),
        hs.tuples(hs.just("drop"), tensor, hs.none()),
    )


def _metadata_edit():
    """One edit of the metadata: a key set to a wrong (or non-JSON) value, or removed."""
    key = hs.sampled_from(
        ["patterns", "patterns", "model_config", "model_config", "model", "format", "sha256"]
    )
    return hs.one_of(
        key.flatmap(lambda k: hs.tuples(hs.just("meta"), hs.just(k), _meta_values(k))),
        hs.tuples(hs.just("meta-drop"), key, hs.none()),
    )


def _apply_edit(header: dict, edit: tuple) -> None:
    kind, target, value = edit
    if kind in ("shape", "dtype", "data_offsets", "rename", "drop") and target not in header:
        return  # an earlier edit renamed or dropped it
    if kind in ("shape", "dtype", "data_offsets"):
        header[target][kind] = value
    elif kind == "rename":
        header[value] = header.pop(target)
    elif kind == "drop":
        header.pop(target)
    elif kind == "meta":
        header["__metadata__"][target] = value
    else:
        header["__metadata__"].pop(target, None)


def _corruptions(data: bytes):
    header, body = _split(data)
    start = len(data) - len(body)
    flips = hs.tuples(
        hs.just("flip"),
        hs.one_of(hs.integers(0, start - 1), hs.integers(start, len(data) - 1)),
        hs.integers(0, 7),
    )
    names = sorted(k for k in header if k != "__metadata__")
    return hs.one_of(
        flips,
        hs.tuples(hs.just("truncate"), hs.integers(0, len(data) - 1), hs.none()),
        hs.tuples(hs.just("append"), hs.binary(min_size=1, max_size=16), hs.none()),
        hs.tuples(hs.just("header"), hs.lists(_layout_edit(names), min_size=1, max_size=2), hs.none()),
        hs.tuples(hs.just("header"), hs.lists(_metadata_edit(), min_size=1, max_size=2), hs.none()),
        hs.tuples(hs.just("header"), hs.lists(_metadata_edit(), min_size=1, max_size=2), hs.none()),
    )


def _corrupt(data: bytes, corruption: tuple) -> bytes:
    kind, arg, bit = corruption
    if kind == "flip":
        out = bytearray(data)
        out[arg] ^= 1 << bit
        return bytes(out)
    if kind == "truncate":
        return data[:arg]
    if kind == "append":
        return data + arg
    header, body = _split(data)
    for edit in arg:
        _apply_edit(header, edit)
    return _join(header, body)


def _snapshot(model: torch.nn.Module):
    state = {k: v.clone() for k, v in model.state_dict().items()}
    masks = {k: v.clone() for k, v in st.get_masks(model).items()}
    return state, masks, {k: str(v) for k, v in st.masks.patterns_of(model).items()}


def _unchanged(before, model) -> bool:
    after = _snapshot(model)
    tensors_equal = all(
        a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
        for a, b in zip(before[:2], after[:2], strict=True)
    )
    return tensors_equal and before[2] == after[2]


def _try_load(
    path: Path, model: torch.nn.Module | None, x: torch.Tensor, reference: torch.Tensor | None
) -> str:
    """'loaded-equal' ('loaded' without a `reference`), or 'refused: <reason>'; anything else fails."""
    before = _snapshot(model) if model is not None else None
    try:
        loaded = st.load(path, model)
    except (ValueError, FileNotFoundError) as err:
        assert before is None or _unchanged(before, model), f"refused but changed the model: {err}"
        message = str(err)
        assert str(path) in message, f"the error does not name the file: {message}"
        reason = next((name for pattern, name in REASONS if re.search(pattern, message)), message[:60])
        return f"refused ({type(err).__name__}): {reason}"
    with torch.no_grad():
        y = loaded(x)
    if reference is None:  # a crafted file may hold other weights; it must still run
        assert y.shape == (len(x), 10), "loaded, but the model does not run"
        return "loaded"
    assert torch.equal(y, reference), "loaded, but the outputs differ from the saved model's"
    return "loaded-equal"


def test_corrupted_plain_checkpoints_load_equal_or_are_refused(tmp_path):
    data, x, reference = _good()
    path = tmp_path / "fuzz.safetensors"
    outcomes: Counter[str] = Counter()
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(corruption=_corruptions(data))
    def check(corruption):
        path.write_bytes(_corrupt(data, corruption))
        outcomes["into a model: " + _try_load(path, _pruned(1), x, reference)] += 1
        outcomes["rebuilt: " + _try_load(path, None, x, reference)] += 1

    check()
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before) / 1024  # KiB on Linux
    print(f"\n{sum(outcomes.values())} loads of {EXAMPLES} corrupted files, peak memory +{grown_mb:.0f} MB:")
    for outcome, count in sorted(outcomes.items()):
        print(f"  {count:4d}  {outcome}")
    assert any(k.endswith("loaded-equal") for k in outcomes) and any("refused" in k for k in outcomes)
    # The file is ~100 kB; a loader that trusted a header could allocate gigabytes.
    assert grown_mb < 300


# --- crafted: the checksum recomputed, so the content checks behind it are reached --------------------


def _reseal(raw: bytes) -> bytes:
    """`raw` with its `sha256` recomputed, where safetensors can still read its tensors."""
    from safetensors import SafetensorError
    from safetensors.torch import load

    from sparsetorch._io import DIGEST_KEY, tensor_digest

    try:
        tensors, (header, body) = load(raw), _split(raw)
    except (SafetensorError, ValueError, RuntimeError, UnicodeDecodeError):
        return raw
    if DIGEST_KEY in header.get("__metadata__", {}):
        header["__metadata__"][DIGEST_KEY] = tensor_digest(tensors)
    return _join(header, body)


def _crafted(data: bytes):
    """Corruptions of the data a checksum would catch: mask bytes set (2..255 or 1), tensor bytes
    flipped, and tensors renamed, dropped or retyped in the header."""
    header, body = _split(data)
    start = len(data) - len(body)
    masks = [header[k]["data_offsets"] for k in sorted(header) if k.startswith("__mask__/")]
    in_mask = hs.sampled_from(masks).flatmap(lambda r: hs.integers(start + r[0], start + r[1] - 1))
    names = sorted(k for k in header if k != "__metadata__")
    return hs.one_of(
        hs.tuples(hs.just("set"), in_mask, hs.sampled_from([1, 1, 2, 0x80, 0xFF])),
        hs.tuples(hs.just("flip"), hs.integers(start, len(data) - 1), hs.integers(0, 7)),
        hs.tuples(hs.just("header"), hs.lists(_layout_edit(names), min_size=1, max_size=1), hs.none()),
    )


def _corrupt_crafted(data: bytes, corruption: tuple) -> bytes:
    kind, at, value = corruption
    if kind != "set":
        return _reseal(_corrupt(data, corruption))
    out = bytearray(data)
    out[at] = value
    return _reseal(bytes(out))


def test_crafted_checkpoints_reach_every_content_check(tmp_path):
    data, x, _ = _good()
    path = tmp_path / "crafted.safetensors"
    outcomes: Counter[str] = Counter()

    @settings(
        max_examples=CRAFTED_EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(corruption=_crafted(data))
    def check(corruption):
        path.write_bytes(_corrupt_crafted(data, corruption))
        outcomes[_try_load(path, _pruned(1), x, None)] += 1

    check()
    print(f"\n{CRAFTED_EXAMPLES} crafted files (checksum recomputed):")
    for outcome, count in sorted(outcomes.items()):
        print(f"  {count:4d}  {outcome}")
    reasons = {k.rpartition(": ")[2] for k in outcomes}
    assert {"bool bytes", "breaks pattern", "does not fit model"} <= reasons, reasons
    assert "checksum" not in reasons and "loaded" in outcomes
