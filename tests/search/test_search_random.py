"""Random search (`random-search-nas`): best of N by validation, exact sparsity, no test leakage."""

from __future__ import annotations

import pytest
import torch

from sparsetorch.masks import get_masks as attached_masks
from sparsetorch.models import create_model
from sparsetorch.search import SEARCHES, RandomSearch, retrain, split_validation
from tests.search.search_testutil import Tripwire, space, splits


def _run(seed: int = 0, **overrides):
    train, val, test = splits()
    sp = space(0.5)
    parent = create_model("lenet-300-100", seed=0, **sp.model_config())
    options = {"num_samples": 4, "proxy_steps": 40, "lr": 1.0, "seed": seed, **overrides}
    Tripwire.armed = True
    try:
        outcome = RandomSearch(**options).run(sp, parent, train=train, val=val)
    finally:
        Tripwire.armed = False
    return sp, parent, outcome, (train, val, test)


def test_keeps_the_best_candidate_at_exact_sparsity():
    sp, _, outcome, _ = _run()
    scores = outcome.history["scores"]
    assert len(scores) == 4 and outcome.score == max(scores)
    assert sum(outcome.config.nonzeros.values()) == sp.budget
    assert outcome.config.widths == outcome.history["widths"][scores.index(max(scores))]


def test_search_finds_a_better_than_chance_network_and_retrains_it():
    sp, parent, outcome, (train, val, test) = _run()
    assert max(outcome.history["scores"]) > min(outcome.history["scores"])
    assert outcome.score > 0.5  # the largest class holds about a quarter of the labels
    out = retrain(outcome.config, parent, train, epochs=10, val=val, test=test, seed=0, lr=1.0)
    assert len(out["val_curve"]) == 10
    assert out["test_accuracy"] > 0.5
    assert out["sparsity"] == pytest.approx(1 - sp.budget / sp.numel)


def test_the_test_set_is_never_touched_by_the_search():
    # _run arms the tripwire on the test tensors for the whole search; the guard itself works:
    _run()
    _, val, test = splits()
    Tripwire.armed = True
    try:
        with pytest.raises(AssertionError, match="touched"):
            RandomSearch(num_samples=1, proxy_steps=1).run(
                space(), create_model("lenet-300-100", seed=0, **space().model_config()), train=val, val=test
            )
    finally:
        Tripwire.armed = False


def test_parent_is_left_unchanged():
    sp = space()
    parent = create_model("lenet-300-100", seed=0, **sp.model_config())
    before = {k: v.clone() for k, v in parent.state_dict().items()}
    train, val, _ = splits()
    RandomSearch(num_samples=2, proxy_steps=5).run(sp, parent, train=train, val=val)
    assert not attached_masks(parent)
    assert all(torch.equal(before[k], v) for k, v in parent.state_dict().items())


def test_same_seed_same_outcome_other_seed_differs():
    _, _, a, _ = _run(seed=3)
    _, _, b, _ = _run(seed=3)
    _, _, c, _ = _run(seed=4)
    assert a.history["scores"] == b.history["scores"]
    assert all(torch.equal(a.config.masks[f], b.config.masks[f]) for f in a.config.masks)
    assert any(not torch.equal(a.config.masks[f], c.config.masks[f]) for f in a.config.masks)


def test_proxy_zero_scores_the_untrained_sub_networks():
    sp, _, outcome, _ = _run(proxy_steps=0)
    assert len(outcome.history["scores"]) == 4
    assert sum(outcome.config.nonzeros.values()) == sp.budget


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"num_samples": 0}, "num_samples"),
        ({"num_samples": True}, "num_samples"),
        ({"proxy_steps": -1}, "proxy_steps"),
        ({"lr": 0.0}, "lr"),
        ({"seed": -1}, "seed"),
    ],
)
def test_bad_config_is_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        RandomSearch(**kwargs)


def test_bad_inputs_are_refused_and_the_parent_unchanged():
    sp = space()
    train, val, _ = splits()
    search = RandomSearch(num_samples=1, proxy_steps=1)
    with pytest.raises(ValueError, match="disjoint"):
        search.run(sp, create_model("lenet-300-100", seed=0, **sp.model_config()), train=train, val=train)
    with pytest.raises(ValueError, match="do not match"):
        search.run(
            space(hidden=(8, 4)),
            create_model("lenet-300-100", seed=0, **sp.model_config()),
            train=train,
            val=val,
        )
    with pytest.raises(ValueError, match="inputs and labels"):
        search.run(
            sp,
            create_model("lenet-300-100", seed=0, **sp.model_config()),
            train=(train[0], train[1][:-1]),
            val=val,
        )
    masked = create_model("lenet-300-100", seed=0, **sp.model_config())
    sp.sample(torch.Generator().manual_seed(0)).apply(masked)
    with pytest.raises(ValueError, match="already carries masks"):
        search.run(sp, masked, train=train, val=val)


def test_registry_and_did_you_mean():
    assert SEARCHES.get("random-search") is RandomSearch
    assert RandomSearch.paper == "random-search-nas"
    with pytest.raises(KeyError, match="did you mean"):
        SEARCHES.get("random-serch")


def test_split_validation_is_disjoint_and_complete():
    x = torch.arange(50).float().unsqueeze(1)
    (tx, _), (vx, _) = split_validation((x, torch.arange(50)), val_size=10, seed=0)
    seen = sorted(tx.flatten().tolist() + vx.flatten().tolist())
    assert len(vx) == 10 and seen == list(range(50))
    with pytest.raises(ValueError, match="val_size"):
        split_validation((x, torch.arange(50)), val_size=50)
