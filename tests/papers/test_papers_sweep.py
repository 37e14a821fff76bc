"""The papers' bench task: what it refuses before a sweep starts, and a run measured on changed code."""

from __future__ import annotations

import pytest

from sparsetorch.bench.tasks import TASKS
from sparsetorch.bench.tasks.base import RunSpec
from sparsetorch.papers import get_paper
from sparsetorch.papers.results import code_hash
from sparsetorch.papers.sweep import TASK, paper_specs, run_papers

FAST = "bdwp"


def _spec(**changes) -> RunSpec:
    fields = {
        "task": TASK,
        "method": FAST,
        "sparsity": None,
        "pattern": "unstructured",
        "seed": 0,
        "params": {"code": code_hash(get_paper(FAST))},
        "budget": {"scale": "tiny"},
    }
    return RunSpec(**{**fields, **changes})


def test_paper_specs_are_one_per_paper_and_seed_and_differ_by_code_scale_and_seed() -> None:
    specs = paper_specs([get_paper(FAST), get_paper("rigl")], scale="small", seeds=[0, 1, 2])
    assert [(s.method, s.seed) for s in specs] == [(k, s) for k in (FAST, "rigl") for s in (0, 1, 2)]
    hashes = {s.row()["config_hash"] for s in specs}
    assert len(hashes) == 6
    other_scale = paper_specs([get_paper(FAST)], scale="tiny", seeds=[0])[0]
    assert other_scale.row()["config_hash"] not in hashes
    assert _spec(params={"code": "0" * 64}).row()["config_hash"] != _spec().row()["config_hash"]


@pytest.mark.parametrize(
    ("changes", "needle"),
    [
        ({"method": "routing-transformer"}, "no reproduction yet"),
        ({"method": "bdwpp"}, "did you mean"),
        ({"budget": {"scale": "huge"}}, "unknown scale"),
        ({"budget": {"scale": "tiny", "epochs": 3}}, "budget"),
        ({"params": {}}, "params"),
        ({"sparsity": 0.5}, "no sparsity"),
    ],
)
def test_the_paper_task_refuses_a_bad_spec_before_running(changes, needle) -> None:
    with pytest.raises((ValueError, KeyError), match=needle):
        TASKS.get(TASK).check(_spec(**changes))


def test_a_run_planned_on_other_code_fails_instead_of_measuring_this_code() -> None:
    with pytest.raises(RuntimeError, match="code changed"):
        TASKS.get(TASK).run(_spec(params={"code": "0" * 64}))


def test_seeds_must_be_distinct(tmp_path) -> None:
    with pytest.raises(ValueError, match="distinct"):
        run_papers([get_paper(FAST)], scale="tiny", seeds=[0, 0], directory=tmp_path, progress=False)
