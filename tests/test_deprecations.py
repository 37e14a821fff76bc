"""Names that moved keep working for one release, each with a DeprecationWarning naming the new home."""

from __future__ import annotations

import importlib

import pytest
import torch

from sparsetorch._deprecation import moved
from sparsetorch.models import create_model


def test_moved_resolves_warns_and_refuses_unknown_names():
    getattr_ = moved("old.place", {"sqrt": "math.sqrt"})
    with pytest.warns(DeprecationWarning, match=r"old\.place\.sqrt is deprecated .* use math\.sqrt"):
        assert getattr_("sqrt")(9.0) == 3.0
    with pytest.raises(AttributeError, match=r"'old\.place' has no attribute 'cos'"):
        getattr_("cos")


@pytest.mark.parametrize(
    ("old", "name", "new"),
    [
        ("sparsetorch.routing", "graph_moe_gpt", "sparsetorch.models.moe_variants"),
        ("sparsetorch.routing", "FamilyMoEGPT", "sparsetorch.models.moe_variants"),
        ("sparsetorch.routing.graph_of_tokens", "graph_moe_gpt", "sparsetorch.models.moe_variants"),
        ("sparsetorch.routing.graph_of_tokens", "GraphMoEBlock", "sparsetorch.models.moe_variants"),
        ("sparsetorch.routing.language_family", "FamilyMoEGPT", "sparsetorch.models.moe_variants"),
        ("sparsetorch.methods", "list_methods", "sparsetorch.discovery"),
    ],
)
def test_moved_names_are_the_new_objects(old, name, new):
    with pytest.warns(DeprecationWarning, match=new):
        found = getattr(importlib.import_module(old), name)
    assert found is getattr(importlib.import_module(new), name)


def test_search_space_parent_is_deprecated_and_builds_the_same_model():
    from sparsetorch.search import SparseMLPSpace

    space = SparseMLPSpace(hidden=(8, 4))
    with pytest.warns(DeprecationWarning, match="model_config"):
        old = space.parent(seed=3)
    new = create_model("lenet-300-100", seed=3, **space.model_config())
    assert all(
        torch.equal(a, b) for a, b in zip(old.state_dict().values(), new.state_dict().values(), strict=True)
    )


def test_sparse_wide_create_model_is_deprecated_and_builds_the_same_model():
    from sparsetorch.training.sparse_ift import sparse_wide

    wide = sparse_wide(0.75)
    with pytest.warns(DeprecationWarning, match="model_config"):
        old = wide.create_model(seed=1)
    new = create_model("lenet-300-100", seed=1, **wide.model_config())
    assert [p.shape for p in old.parameters()] == [p.shape for p in new.parameters()]
    assert all(torch.equal(a, b) for a, b in zip(old.parameters(), new.parameters(), strict=True))
