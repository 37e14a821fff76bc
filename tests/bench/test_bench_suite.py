"""Suites: expansion, includes, dedup, and errors that name the file and line."""

from __future__ import annotations

import json
import textwrap

import pytest

from sparsetorch.bench import BenchError, RunSpec, load_suite


def _write(tmp_path, text: str, name: str = "s.yaml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def test_builtin_suites_parse_and_share_budgets():
    quick = load_suite("quick")
    assert quick.name == "quick" and len(quick.runs) > 0
    standard = load_suite("standard")
    quick_hashes = {r.row()["config_hash"] for r in quick.runs}
    assert quick_hashes <= {r.row()["config_hash"] for r in standard.runs}  # include: quick
    for spec in quick.runs:  # one budget per experiment: every method of a task shares it
        same_task = [s for s in quick.runs if s.task == spec.task]
        assert all(s.budget == spec.budget for s in same_task)


def test_expansion_levels_dense_once_and_nm_implied(tmp_path):
    path = _write(
        tmp_path,
        """
        seeds: [0, 1]
        experiments:
          - task: fmnist-mlp
            methods: [dense, gmp, {name: rigl, params: {update_every: 7}}]
            sparsities: [0.5, 0.9]
            patterns: [unstructured, "2:4"]
        """,
    )
    runs = load_suite(path).runs
    dense = [r for r in runs if r.method == "dense"]
    assert len(dense) == 2 and all(r.sparsity == 0.0 for r in dense)
    gmp = [r for r in runs if r.method == "gmp"]
    # (0.5, 0.9) unstructured + 2:4 once (sparsity implied), x 2 seeds
    assert sorted((r.sparsity or -1, r.pattern, r.seed) for r in gmp) == sorted(
        (s, p, seed)
        for s, p in [(0.5, "unstructured"), (0.9, "unstructured"), (-1, "2:4")]
        for seed in (0, 1)
    )
    assert all(r.params == {"update_every": 7} for r in runs if r.method == "rigl")
    assert len({r.row()["config_hash"] for r in runs}) == len(runs) == 2 + 3 * 2 * 2


def test_include_dedups_and_detects_cycles(tmp_path):
    _write(tmp_path, "experiments:\n- {task: kernel-speed, methods: [dense]}\n", "base.yaml")
    top = _write(tmp_path, "include: [base.yaml]\nexperiments:\n- {task: kernel-speed, methods: [dense]}\n")
    assert len(load_suite(top).runs) == 1
    _write(tmp_path, "include: [b.yaml]\n", "a.yaml")
    _write(tmp_path, "include: [a.yaml]\n", "b.yaml")
    with pytest.raises(BenchError, match="include cycle"):
        load_suite(tmp_path / "a.yaml")


@pytest.mark.parametrize(
    ("body", "line", "message"),
    [
        (
            "experiments:\n  - task: fmnist-mpl\n    methods: [gmp]\n    sparsities: [0.5]\n",
            2,
            "did you mean 'fmnist-mlp'",
        ),
        (
            "experiments:\n  - task: fmnist-mlp\n    methods: [rigll]\n    sparsities: [0.5]\n",
            2,
            "did you mean 'rigl'",
        ),
        ("experiments:\n  - task: minilm-prune\n    methods: [rigl]\n    sparsities: [0.5]\n", 2, "rigl"),
        (
            "seeds: [0]\nexperiments:\n\n  - task: fmnist-mlp\n    methods: [gmp]\n    sparsities: [1.5]\n",
            4,
            r"\[0, 1\)",
        ),
        (
            "experiments:\n  - task: fmnist-mlp\n    methods: [gmp]\n    sparsities: [0.5]\n    budget: {epoch: 1}\n",
            2,
            "no budget key",
        ),
        ("experiments:\n  - task: fmnist-mlp\n    method: [gmp]\n", 2, "unknown experiment key"),
        (
            "experiments:\n  - task: fmnist-mlp\n    methods: [gmp]\n    patterns: [3:2]\n    sparsities: [0.5]\n",
            2,
            "n=3, m=2",
        ),
        ("experiments:\n  - task: fmnist-mlp\n    methods: [gmp\n  - oops: [\n", 4, "malformed YAML"),
    ],
)
def test_errors_name_the_line(tmp_path, body, line, message):
    path = _write(tmp_path, body)
    with pytest.raises(BenchError, match=message) as info:
        load_suite(path)
    assert f"{path}:{line}:" in str(info.value) or f"{path.resolve()}:{line}:" in str(info.value)


def test_unknown_suite_name():
    with pytest.raises(BenchError, match="not one of quick, standard, full"):
        load_suite("quik")


def test_report_averages_only_runs_of_one_budget():
    from sparsetorch.bench import RunRecord
    from sparsetorch.bench.report import leaderboard

    def rec(seed: int, epochs: int, acc: float) -> RunRecord:
        spec = RunSpec("fmnist-mlp", "gmp", 0.9, "unstructured", seed, budget={"epochs": epochs}).row()
        return RunRecord(**spec, status="complete", metrics={"test_accuracy": acc})

    rows = leaderboard([rec(0, 1, 0.5), rec(1, 1, 0.7), rec(0, 3, 0.8)])
    by_task = {r["task"]: r for r in rows}
    assert by_task["fmnist-mlp [epochs=1]"]["n"] == 2 and by_task["fmnist-mlp [epochs=1]"]["mean"] == 0.6
    assert by_task["fmnist-mlp [epochs=3]"]["n"] == 1


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            "experiments:\n  - task: kernel-speed\n    methods: [dense]\n    budget: [1, 2]\n",
            "'budget' must be a mapping",
        ),
        (
            "experiments:\n  - task: fmnist-mlp\n    methods: [gmp]\n    sparsities: [0.5]\n    params: [1]\n",
            "'params' must be a mapping",
        ),
        (
            "experiments:\n  - task: fmnist-mlp\n    methods: [{name: gmp, params: 3}]\n    sparsities: [0.5]\n",
            "'params' must be a mapping",
        ),
        ("include: 5\nexperiments: []\n", "'include' must be a suite name"),
        ("include: [5]\nexperiments: []\n", "'include' must be a suite name"),
        (
            "experiments:\n  - task: fmnist-mlp\n    methods: [{name: rigl, params: {update_evry: 5}}]\n"
            "    sparsities: [0.5]\n",
            "method 'rigl' has no param 'update_evry'; did you mean 'update_every'",
        ),
        (
            "experiments:\n  - task: fmnist-mlp\n    methods: [gmp, random-pruning]\n    sparsities: [0.5]\n"
            "    params: {update_every: 5}\n",
            "method 'random-pruning' has no param 'update_every'",
        ),
        (
            "experiments:\n  - task: fmnist-mlp\n    methods: [{name: gmp, params: {seed: 3}}]\n    sparsities: [0.5]\n",
            "no param 'seed'",
        ),
        (
            "experiments:\n  - task: minilm-prune\n    methods: [{name: sparsegpt, params: {blocksize: 64}}]\n"
            "    sparsities: [0.5]\n",
            "did you mean 'block_size'",
        ),
        (
            "experiments:\n  - task: kernel-speed\n    methods: [{name: dense, params: {a: 1}}]\n",
            "no param 'a'",
        ),
        (
            "experiments:\n  - task: kernel-speed\n    methods: [{name: torch-csr, params: {a: 1}}]\n"
            "    sparsities: [0.5]\n",
            "no param 'a'",
        ),
        (
            "experiments:\n  - task: fmnist-mlp\n    methods: [{name: gmp, params: {start: 2001-01-01}}]\n"
            "    sparsities: [0.5]\n",
            "holds a date",
        ),
        ("seeds: [-1]\nexperiments:\n  - task: kernel-speed\n    methods: [dense]\n", r"\[0, 2\*\*32\)"),
        ("name: [a]\nexperiments: []\n", "'name' must be text"),
        ("experiments:\n  - task: kernel-speed\n    methods: [{name: [dense]}]\n", "name is text"),
    ],
)
def test_malformed_fields_are_refused_with_file_and_line(tmp_path, body, message):
    path = _write(tmp_path, body)
    with pytest.raises(BenchError, match=message) as info:
        load_suite(path)
    assert str(path.resolve()) in str(info.value) or str(path) in str(info.value)


def test_non_utf8_suite_names_the_file_and_byte(tmp_path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes("name: caf\xe9\nexperiments: []\n".encode("latin-1"))
    with pytest.raises(BenchError, match=r"latin1.yaml: not UTF-8 text \(byte 9: 0xe9\)"):
        load_suite(path)


def test_valid_params_load_and_nested_mappings_hash_without_their_line(tmp_path):
    body = (
        "experiments:\n  - task: fmnist-mlp\n    methods: [{name: rigl, params: {update_every: {a: 1}}}]\n"
        "    sparsities: [0.5]\n"
    )
    (spec,) = load_suite(_write(tmp_path, body)).runs
    assert spec.params == {"update_every": {"a": 1}}  # the value is the method's to check, at run time
    (moved,) = load_suite(_write(tmp_path, "\n\n" + body, "t.yaml")).runs
    assert moved.row()["config_hash"] == spec.row()["config_hash"]  # the line is not part of the config
    assert "__line__" not in json.dumps(spec.config())
