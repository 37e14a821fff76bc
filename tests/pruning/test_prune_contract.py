"""Contract tests generated from the pruning registry: every method, every pattern."""

import pytest
import torch
from torch import nn

import sparsetorch as st
from sparsetorch.patterns import n_pruned
from sparsetorch.pruning import PRUNERS

METHODS = PRUNERS.list()
PATTERNS = [
    ("unstructured", 0.7),
    ("2:4", 0.5),
    ("1:4", 0.75),
    ("block4x4", 0.5),
    ("channel", 0.25),
    ("channel:1", 0.5),
]


def net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 16), nn.ReLU(), nn.Linear(16, 4))


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize(("pattern", "sparsity"), PATTERNS)
def test_achieved_sparsity_equals_target_and_outputs_finite(method, pattern, sparsity):
    model = net()
    rep = st.prune(model, method, sparsity, pattern)
    if pattern == "unstructured":  # the overall count is exact; layers absorb the rounding
        assert rep.report.params - rep.report.nonzeros == n_pruned(rep.report.params, sparsity)
    else:  # each layer prunes exactly round(sparsity * size), in whole groups
        for r in rep.report.layers:
            assert r.params - r.nonzeros == n_pruned(r.params, sparsity)
    assert torch.isfinite(model(torch.randn(3, 16))).all()
    assert set(st.masks(model)) == {"0.weight", "2.weight"}


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("distribution", ["uniform", "erk", "global"])
def test_distributions_hit_exact_overall_sparsity(method, distribution):
    model = net()
    rep = st.prune(model, method, 0.8, distribution=distribution)
    assert rep.report.params - rep.report.nonzeros == n_pruned(rep.report.params, 0.8)


@pytest.mark.parametrize("method", METHODS)
def test_same_seed_same_masks_and_squash_keeps_outputs(method):
    a, b = net(), net()
    st.prune(a, method, 0.6)
    st.prune(b, method, 0.6)
    assert all(torch.equal(st.masks(a)[k], st.masks(b)[k]) for k in st.masks(a))
    x = torch.randn(5, 16)
    before = a(x)
    st.squash(a)
    assert torch.equal(a(x), before)


@pytest.mark.parametrize("method", METHODS)
def test_bad_input_leaves_model_unchanged(method):
    model = net()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ValueError):
        st.prune(model, method, 1.2)
    with pytest.raises(ValueError, match="not divisible"):
        st.prune(model, method, pattern="2:3", sparsity=None)  # 16 inputs do not split in threes
    with torch.no_grad():
        model[2].weight[0, 0] = float("nan")
    state["2.weight"] = model[2].weight.clone()
    if method == "magnitude":
        with pytest.raises(ValueError, match="NaN"):
            st.prune(model, method, 0.5)
    assert st.masks(model) == {}
    assert all(torch.allclose(state[k], v, equal_nan=True) for k, v in model.state_dict().items())


def test_magnitude_keeps_largest_and_random_depends_on_seed():
    model = net()
    w = model[0].weight.detach().abs().clone()
    st.prune(model, "magnitude", 0.5, targets="0")
    kept = st.masks(model)["0.weight"]
    assert w[kept].min() >= w[~kept].max()
    a, b = net(), net()
    st.prune(a, "random", 0.5, seed=1)
    st.prune(b, "random", 0.5, seed=2)
    assert not torch.equal(st.masks(a)["0.weight"], st.masks(b)["0.weight"])


def test_unknown_method_and_options():
    with pytest.raises(KeyError, match="did you mean 'magnitude'"):
        st.prune(net(), "magnitde")
    with pytest.raises(TypeError, match="unknown option"):
        st.prune(net(), "magnitude", 0.5, block_size=3)
    with pytest.raises(ValueError, match="unstructured sparsity only"):
        st.prune(net(), "magnitude", pattern="2:4", distribution="erk")


def test_list_and_create_methods():
    assert {"magnitude", "random"} <= set(st.list_methods())
    assert st.list_methods("rand*") == ["random"]
    assert st.create_method("random", seed=4).config.seed == 4
    with pytest.raises(KeyError, match="did you mean"):
        st.create_method("randon")
