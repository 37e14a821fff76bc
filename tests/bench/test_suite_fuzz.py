"""Fuzz the suite loader: random mutations of a valid suite load into a valid `Suite` or raise
`BenchError` (the loader's documented error, naming the file), and never anything else.

Two kinds of mutation, each from a valid suite that includes another file:
- on the parsed tree: a value replaced by one of another type, a key deleted, an unknown key added;
- on the file's bytes: bytes flipped, inserted (YAML tokens among them: tags, anchors, dates) or
  cut, and the file truncated.
Derandomized, so a failure reproduces; `pytest --hypothesis-show-statistics` shows how many
examples loaded and how many were refused.
"""

from __future__ import annotations

import copy
import json
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from sparsetorch.bench import BenchError, RunSpec, Suite, load_suite

BASE: dict[str, Any] = {
    "name": "fuzz",
    "description": "a valid suite the fuzzer mutates",
    "include": ["base.yaml"],
    "seeds": [0, 1],
    "experiments": [
        {
            "task": "fmnist-mlp",
            "budget": {"epochs": 1, "train_samples": 100},
            "methods": ["dense", "gmp", {"name": "rigl", "params": {"update_every": 5}}],
            "sparsities": [0.5, 0.9],
            "patterns": ["unstructured", "2:4"],
        },
        {
            "task": "minilm-prune",
            "methods": ["magnitude", {"name": "sparsegpt", "params": {"block_size": 64}}],
            "sparsities": [0.5],
            "seeds": [3],
        },
        {"task": "kernel-speed", "methods": ["dense", "torch-csr"], "patterns": ["2:4"], "params": {}},
    ],
}
INCLUDED = "experiments:\n  - {task: kernel-speed, methods: [dense], seeds: [7]}\n"
TOKENS = [
    b"!!python/object:os.system",
    b"&a ",
    b"*a",
    b"!!binary aGk=",
    b"2001-01-01",
    b"<<: ",
    b"\t",
    b"\x00",
]
TOKENS += [
    b"{",
    b"]",
    b": ",
    b"- ",
    b"\xff\xfe",
    b"\xe9",
    b"'",
    b'"',
    b"---\n",
    b"...\n",
    b"? ",
    b"%YAML 1.1\n",
]
EXAMPLES = 400

values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12)
    | st.sampled_from(["2:4", "3:2", "unstructured", "block4x4", "channel", "dense", "rigl", "quick"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=6,
)


@pytest.fixture(scope="module")
def folder() -> Path:
    with tempfile.TemporaryDirectory() as name:
        path = Path(name)
        (path / "base.yaml").write_text(INCLUDED)
        yield path


def _paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    """Every path (a tuple of keys and indices) to a value inside `node`, `node` itself first."""
    out = [prefix]
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else []
    for key, child in items:
        out += _paths(child, (*prefix, key))
    return out


def _mutate(tree: dict[str, Any], data: st.DataObject) -> dict[str, Any] | Any:
    tree = copy.deepcopy(tree)
    for _ in range(data.draw(st.integers(1, 3), label="mutations")):
        path = data.draw(st.sampled_from(_paths(tree)), label="path")
        op = data.draw(st.sampled_from(["replace", "delete", "add"]), label="op")
        if not path:
            tree = data.draw(values) if op == "replace" else tree
            continue
        *head, last = path
        parent = tree
        for key in head:
            parent = parent[key]
        if op == "replace":
            parent[last] = data.draw(values, label="value")
        elif op == "delete":
            del parent[last]
        elif isinstance(parent, dict):
            parent[data.draw(st.text(min_size=1, max_size=8), label="key")] = data.draw(values, label="value")
        else:
            parent.insert(last, data.draw(values, label="value"))
    return tree


def _corrupt(text: bytes, data: st.DataObject) -> bytes:
    for _ in range(data.draw(st.integers(1, 4), label="corruptions")):
        at = data.draw(st.integers(0, max(len(text) - 1, 0)), label="at")
        op = data.draw(st.sampled_from(["flip", "insert", "token", "cut", "truncate"]), label="op")
        if op == "flip" and text:
            text = text[:at] + bytes([text[at] ^ data.draw(st.integers(1, 255))]) + text[at + 1 :]
        elif op == "insert":
            text = text[:at] + data.draw(st.binary(min_size=1, max_size=4), label="bytes") + text[at:]
        elif op == "token":
            text = text[:at] + data.draw(st.sampled_from(TOKENS), label="token") + text[at:]
        elif op == "cut":
            text = text[:at] + text[at + data.draw(st.integers(1, 16)) :]
        else:
            text = text[:at]
    return text


def _loads_or_refuses(folder: Path, blob: bytes) -> None:
    """The one property: a valid Suite (every run hashable and checked) or a BenchError naming the file."""
    path = folder / "s.yaml"
    path.write_bytes(blob)
    try:
        suite = load_suite(path)
    except BenchError as e:
        assert "s.yaml" in str(e) or "base.yaml" in str(e), str(e)
        event("refused")
        return
    assert isinstance(suite, Suite) and isinstance(suite.name, str) and isinstance(suite.description, str)
    for spec in suite.runs:
        assert isinstance(spec, RunSpec)
        json.dumps(spec.config(), allow_nan=True)  # a config hash can be taken
        assert len(spec.row()["config_hash"]) == 16
    event("loaded")


def test_the_base_suite_is_valid(folder):
    path = folder / "base-check.yaml"
    path.write_text(yaml.safe_dump(BASE, sort_keys=False))
    assert len(load_suite(path).runs) > 10


@settings(
    max_examples=EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=st.data())
def test_mutated_trees_load_or_raise_bench_error(folder, data):
    tree = _mutate(BASE, data)
    _loads_or_refuses(folder, yaml.safe_dump(tree, sort_keys=False, allow_unicode=True).encode())


@settings(
    max_examples=EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=st.data())
def test_corrupted_bytes_load_or_raise_bench_error(folder, data):
    _loads_or_refuses(folder, _corrupt(yaml.safe_dump(BASE, sort_keys=False).encode(), data))
