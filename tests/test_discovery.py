"""Plugin discovery: every axis's registry is listed, resolved and created from one place."""

from __future__ import annotations

import importlib

import pytest

from sparsetorch import discovery
from sparsetorch.discovery import KINDS, create_method, entries, list_methods, method_kind
from sparsetorch.registry import Axis


def test_every_kind_is_listed_with_its_axis():
    found = discovery.registries()
    assert list(found) == list(KINDS)
    by_kind = {k: {e.name for e in entries(kind=k)} for k in KINDS}
    assert {"magnitude", "wanda"} <= by_kind["pruning"] and "rigl" in by_kind["training"]
    assert by_kind["search"] == {"dass", "random-search"}
    assert by_kind["activation"] == {"kwta", "kwta-2d", "topk", "chess", "delta", "blockffn"}
    assert len(by_kind["gate"]) == 11 and "top-k" in by_kind["gate"]
    assert by_kind["driver"] == {"sparse-model-soups"} and by_kind["transform"] == {"sparse-ift"}
    assert {e.axis for e in entries(kind="gate")} == {Axis.ROUTES}
    assert {e.axis for e in entries(kind="activation")} == {Axis.ACTIVATIONS}


def test_every_target_imports():
    for e in entries():
        module, _, name = e.target.partition(":")
        obj = importlib.import_module(module)
        for part in name.split("."):
            obj = getattr(obj, part)


def test_list_methods_spans_the_kinds():
    assert list_methods("rand*") == ["random", "random-pruning", "random-search"]
    assert list_methods("k*", kind="activation") == ["kwta", "kwta-2d"]
    with pytest.raises(KeyError, match="unknown method kind 'gadget'"):
        list_methods(kind="gadget")


def test_resolution_order_qualified_names_and_paper_keys():
    assert method_kind("random") == "pruning"  # the first kind in KINDS order wins
    assert method_kind("gate:random") == "gate"
    assert type(create_method("gate:random", dim=8, num_experts=4, k=2)).__name__ == "RandomGate"
    assert type(create_method("random-search-nas")).__name__ == "RandomSearch"  # the paper's key
    assert type(create_method("kwta", n=8, k=2)).__name__ == "KWinners"
    with pytest.raises(KeyError, match="did you mean 'rigl'"):
        create_method("rigll")
    with pytest.raises(KeyError, match="did you mean 'top-k'"):
        method_kind("gate:top_k")


def test_drivers_are_called_not_created():
    with pytest.raises(TypeError, match=r"sparsetorch\.training\.soups\.sparse_model_soups"):
        create_method("sparse-model-soups")
    assert discovery.DRIVERS.get("sparse-model-soups").load().__name__ == "sparse_model_soups"
    assert discovery.TRANSFORMS.get("sparse-ift").load().__name__ == "sparse_wide"


def test_methods_module_keeps_deprecated_aliases():
    import sparsetorch.methods as methods

    for old, new in [
        ("list_methods", "list_methods"),
        ("create_method", "create_method"),
        ("_load_all", "load_all"),
    ]:
        with pytest.warns(DeprecationWarning, match=f"sparsetorch.discovery.{new}"):
            assert getattr(methods, old) is getattr(discovery, new)
    with pytest.raises(AttributeError):
        methods.no_such_name  # noqa: B018


def test_renamed_modules_warn_and_still_work():
    import sys

    for old, new, name in [
        ("sparsetorch.pruning.random", "sparsetorch.pruning.random_pruning", "Random"),
        ("sparsetorch.training.set_", "sparsetorch.training.sparse_evolutionary", "SET"),
    ]:
        sys.modules.pop(old, None)
        with pytest.warns(DeprecationWarning, match=new):
            module = importlib.import_module(old)
        assert getattr(module, name) is getattr(importlib.import_module(new), name)


def test_bench_tasks_look_methods_up_by_kind():
    from sparsetorch.bench.tasks.base import Task

    class Probe(Task):
        kind = "training"

    assert "rigl" in Probe().method_names()
