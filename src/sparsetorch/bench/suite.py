"""Suites: YAML files of experiments, expanded into `RunSpec`s and checked before anything runs.

    name: quick
    description: ...
    include: [other.yaml]          # suites (built-in names or paths relative to this file)
    seeds: [0, 1]                  # default for the experiments below
    experiments:
      - task: fmnist-mlp
        budget: {epochs: 1}        # the same for every method of this experiment
        methods: [dense, gmp, {name: rigl, params: {update_every: 50}}]
        sparsities: [0.8, 0.9]     # and/or
        patterns: [unstructured, "2:4"]
        seeds: [0, 1, 2]

Each experiment expands to methods x levels x seeds, where the levels are every sparsity under
each unstructured / block pattern and each N:M pattern once (its sparsity is implied). `dense`
runs once per seed. Everything is checked at load, before any run: the file is UTF-8 YAML, each
field has its type (`budget` and `params` are mappings of plain values, `include` names suites,
seeds fit NumPy), and each method's params are fields of its config (with "did you mean"); their
values are checked by that config when the run creates the method. Every error is a `BenchError`
naming the file (and the line where there is one).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from sparsetorch.bench.spec import RunSpec
from sparsetorch.bench.store import BenchError
from sparsetorch.bench.tasks import DENSE, TASKS
from sparsetorch.patterns import NM, parse_pattern

BUILTIN = ("quick", "standard", "full")
_SUITE_KEYS = {"name", "description", "include", "seeds", "experiments"}
_EXPERIMENT_KEYS = {"task", "methods", "sparsities", "patterns", "seeds", "budget", "params"}


class _Loader(yaml.SafeLoader):
    """A safe loader that remembers the line of every mapping (as `__line__`, 1-based)."""


def _mapping_with_line(loader: _Loader, node: yaml.MappingNode) -> dict[str, Any]:
    data = loader.construct_mapping(node, deep=True)
    data["__line__"] = node.start_mark.line + 1
    return data


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping_with_line)
# YAML 1.1 reads `2:4` as the base-60 integer 124; patterns must stay strings, so numbers are
# resolved as in YAML 1.2 (no sexagesimal forms).
_INT, _FLOAT = "tag:yaml.org,2002:int", "tag:yaml.org,2002:float"
_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag not in (_INT, _FLOAT)]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(_INT, re.compile(r"^[-+]?(0|[1-9][0-9_]*)$"), list("-+0123456789"))
_Loader.add_implicit_resolver(
    _FLOAT,
    re.compile(
        r"^[-+]?(\.[0-9]+|[0-9][0-9_]*(\.[0-9_]*)?)([eE][-+]?[0-9]+)?$|^[-+]?\.(inf|Inf|INF)$|^\.(nan|NaN|NAN)$"
    ),
    list("-+0123456789."),
)


@dataclass(frozen=True)
class Suite:
    """A parsed suite: its name, where it came from, and the runs it asks for (deduplicated)."""

    name: str
    path: Path
    description: str
    runs: tuple[RunSpec, ...]


def suite_path(name_or_path: str | os.PathLike) -> Path:
    """A built-in suite name (`quick`, `standard`, `full`) or a path to a YAML file."""
    if str(name_or_path) in BUILTIN:
        return Path(str(resources.files("sparsetorch.bench") / "suites" / f"{name_or_path}.yaml"))
    path = Path(name_or_path)
    if not path.is_file():
        raise BenchError(f"no suite {str(name_or_path)!r}: not one of {', '.join(BUILTIN)} and not a file")
    return path


def load_suite(name_or_path: str | os.PathLike) -> Suite:
    """Parse, include, expand and check a suite; raises BenchError naming the file and line."""
    path = suite_path(name_or_path)
    data, runs = _load(path, stack=())
    unique = {spec.row()["config_hash"]: spec for spec in runs}  # asked twice (e.g. via include): once
    return Suite(
        str(data.get("name", path.stem)), path, str(data.get("description", "")), tuple(unique.values())
    )


def _load(path: Path, *, stack: tuple[Path, ...]) -> tuple[dict[str, Any], list[RunSpec]]:
    path = path.resolve()
    if path in stack:
        raise BenchError(f"{path}: include cycle: {' -> '.join(map(str, (*stack, path)))}")
    data = _parse(path)
    _unknown_keys(data, _SUITE_KEYS, path, "suite")
    for key in ("name", "description"):
        if key in data and not isinstance(data[key], str | int | float):
            raise BenchError(f"{path}:{data['__line__']}: {key!r} must be text, got {data[key]!r}")
    runs: list[RunSpec] = []
    for inc in _names(data.get("include", []), f"{path}:{data['__line__']}", "include"):
        runs += _load(_included(inc, path, data["__line__"]), stack=(*stack, path))[1]
    experiments = data.get("experiments", [])
    if not isinstance(experiments, list):
        raise BenchError(f"{path}:{data['__line__']}: 'experiments' must be a list")
    for exp in experiments:
        runs += _expand(exp, data, path)
    return data, runs


def _parse(path: Path) -> dict[str, Any]:
    """The suite file as a mapping; BenchError naming the file (and line) when it is not one."""
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as e:
        raise BenchError(f"{path}: not UTF-8 text (byte {e.start}: {e.object[e.start]:#04x})") from None
    except OSError as e:
        raise BenchError(f"{path}: cannot read the suite: {e.strerror or e}") from None
    try:
        data = yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise BenchError(f"{where}: malformed YAML: {getattr(e, 'problem', None) or e}") from None
    except RecursionError:  # the YAML composer recurses once per nesting level
        raise BenchError(f"{path}: malformed YAML: nested too deeply") from None
    if not isinstance(data, dict):
        raise BenchError(f"{path}:1: a suite is a mapping with 'experiments:', got {type(data).__name__}")
    return data


def _names(value: Any, where: str, what: str) -> list[str]:
    """A name or a list of names (`include`), as a list of strings."""
    names = [value] if isinstance(value, str) else value
    if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
        raise BenchError(f"{where}: {what!r} must be a suite name or a list of them, got {value!r}")
    return names


def _included(inc: str, path: Path, line: int) -> Path:
    """The file an `include` entry names: relative to the including suite, else a built-in suite."""
    try:
        target = Path(inc) if Path(inc).is_absolute() else path.parent / inc
        if inc in BUILTIN and not target.exists():
            target = suite_path(inc)
        if target.is_file():
            return target
    except (OSError, ValueError):  # e.g. a NUL byte or an over-long name
        pass
    raise BenchError(f"{path}:{line}: included suite {inc!r} not found")


def _unknown_keys(d: dict[str, Any], known: set[str], path: Path, what: str) -> None:
    extra = sorted(str(k) for k in set(d) - known - {"__line__"})
    if extra:
        raise BenchError(f"{path}:{d['__line__']}: unknown {what} key(s) {extra}; known: {sorted(known)}")


def _listify(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _expand(exp: Any, suite: dict[str, Any], path: Path) -> list[RunSpec]:
    if not isinstance(exp, dict):
        raise BenchError(f"{path}: each experiment must be a mapping with 'task:', got {exp!r}")
    line = exp["__line__"]
    where = f"{path}:{line}"
    _unknown_keys(exp, _EXPERIMENT_KEYS, path, "experiment")
    if "task" not in exp or "methods" not in exp:
        raise BenchError(f"{where}: an experiment needs 'task' and 'methods'")
    try:
        task = TASKS.get(str(exp["task"]))
    except KeyError as e:
        raise BenchError(f"{where}: {e.args[0]}") from None
    budget = _mapping(exp.get("budget"), where, "budget")
    seeds = _listify(exp.get("seeds", suite.get("seeds", [0])))
    # NumPy seeds the run with it, and it takes 0 <= seed < 2**32
    if not all(isinstance(s, int) and not isinstance(s, bool) and 0 <= s < 2**32 for s in seeds):
        raise BenchError(f"{where}: seeds must be integers in [0, 2**32), got {seeds}")
    try:
        patterns = [str(p) for p in _listify(exp.get("patterns", ["unstructured"]))]
        parsed = [parse_pattern(p) for p in patterns]
    except ValueError as e:
        raise BenchError(f"{where}: {e}") from None
    sparsities = _listify(exp.get("sparsities", []))
    levels: list[tuple[float | None, str]] = []
    for text, pattern in zip(patterns, parsed, strict=True):
        if isinstance(pattern, NM):
            levels.append((None, text))
        else:
            levels += [(s, text) for s in sparsities]
    runs: list[RunSpec] = []
    for m in _listify(exp["methods"]):
        name, params = _method(m, exp, where)
        method_levels = [(0.0, "unstructured")] if name == DENSE else levels
        if not method_levels:
            raise BenchError(f"{where}: method {name!r} needs 'sparsities' (or an N:M pattern)")
        for sparsity, pattern in method_levels:
            for seed in seeds:
                spec = RunSpec(
                    task.name, name, _float(sparsity, where), pattern, seed, params=params, budget=budget
                )
                try:
                    task.check(spec)
                except (KeyError, ValueError) as e:
                    msg = e.args[0] if e.args else str(e)
                    raise BenchError(f"{where}: {msg}") from None
                runs.append(spec)
    return runs


def _float(value: Any, where: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BenchError(f"{where}: sparsities must be numbers, got {value!r}")
    return float(value)


def _plain(value: Any, where: str, what: str) -> Any:
    """`value` as plain JSON data (what a config hash can hold), with our `__line__` keys dropped."""
    if isinstance(value, dict):
        if not all(isinstance(k, str) for k in value):
            raise BenchError(f"{where}: the keys of {what} must be names, got {sorted(map(repr, value))}")
        return {k: _plain(v, where, what) for k, v in value.items() if k != "__line__"}
    if isinstance(value, list):
        return [_plain(v, where, what) for v in value]
    if value is None or isinstance(value, str | bool | int | float):
        return value
    raise BenchError(f"{where}: {what} holds a {type(value).__name__} ({value!r}); use numbers, text, lists")


def _mapping(value: Any, where: str, what: str) -> dict[str, Any]:
    """An optional mapping field (`budget`, `params`) as a plain dict; BenchError when it is not one."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise BenchError(f"{where}: {what!r} must be a mapping (key: value), got {value!r}")
    return _plain(value, where, what)


def _method(m: Any, exp: dict[str, Any], where: str) -> tuple[str, dict[str, Any]]:
    shared = _mapping(exp.get("params"), where, "params")
    if isinstance(m, str):
        return m, {} if m == DENSE else shared
    if isinstance(m, dict) and "name" in m:
        own = _mapping(m.get("params"), where, "params")
        _unknown = set(m) - {"name", "params", "__line__"}
        if _unknown:
            raise BenchError(
                f"{where}: unknown method key(s) {sorted(map(str, _unknown))}; known: ['name', 'params']"
            )
        if not isinstance(m["name"], str):
            raise BenchError(f"{where}: a method's name is text, got {m['name']!r}")
        return str(m["name"]), {**shared, **own}
    raise BenchError(f"{where}: a method is a name or {{name: ..., params: {{...}}}}, got {m!r}")
