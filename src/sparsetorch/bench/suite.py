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
runs once per seed. Every error names the file and line.
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
    try:
        data = yaml.load(path.read_text(), Loader=_Loader)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise BenchError(f"{where}: malformed YAML: {getattr(e, 'problem', e)}") from None
    if not isinstance(data, dict):
        raise BenchError(f"{path}:1: a suite is a mapping with 'experiments:', got {type(data).__name__}")
    _unknown_keys(data, _SUITE_KEYS, path, "suite")
    runs: list[RunSpec] = []
    includes = data.get("include", [])
    for inc in [includes] if isinstance(includes, str) else includes:
        target = Path(inc) if Path(inc).is_absolute() else path.parent / inc
        if str(inc) in BUILTIN and not target.exists():
            target = suite_path(inc)
        if not target.is_file():
            raise BenchError(f"{path}:{data['__line__']}: included suite {inc!r} not found")
        runs += _load(target, stack=(*stack, path))[1]
    experiments = data.get("experiments", [])
    if not isinstance(experiments, list):
        raise BenchError(f"{path}:{data['__line__']}: 'experiments' must be a list")
    for exp in experiments:
        runs += _expand(exp, data, path)
    return data, runs


def _unknown_keys(d: dict[str, Any], known: set[str], path: Path, what: str) -> None:
    extra = sorted(set(d) - known - {"__line__"})
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
    budget = {k: v for k, v in (exp.get("budget") or {}).items() if k != "__line__"}
    seeds = _listify(exp.get("seeds", suite.get("seeds", [0])))
    if not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds):
        raise BenchError(f"{where}: seeds must be integers, got {seeds}")
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


def _method(m: Any, exp: dict[str, Any], where: str) -> tuple[str, dict[str, Any]]:
    shared = {k: v for k, v in (exp.get("params") or {}).items() if k != "__line__"}
    if isinstance(m, str):
        return m, {} if m == DENSE else shared
    if isinstance(m, dict) and "name" in m:
        own = {k: v for k, v in (m.get("params") or {}).items() if k != "__line__"}
        _unknown = set(m) - {"name", "params", "__line__"}
        if _unknown:
            raise BenchError(f"{where}: unknown method key(s) {sorted(_unknown)}; known: ['name', 'params']")
        return str(m["name"]), {**shared, **own}
    raise BenchError(f"{where}: a method is a name or {{name: ..., params: {{...}}}}, got {m!r}")
