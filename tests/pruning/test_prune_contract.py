"""Contract tests generated from the pruning registry: every method, every pattern, bad input."""

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


def calib(n=64, seed=1):
    return torch.randn(n, 16, generator=torch.Generator().manual_seed(seed))


def prune(model, method, *args, **kwargs):
    kwargs.setdefault("calibration", calib())
    return st.prune(model, method, *args, **kwargs)


def supports(method, pattern):
    cls = PRUNERS.get(method)
    return pattern in ("unstructured", "2:4", "1:4") or cls.group != "row" or "channel" not in pattern


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize(("pattern", "sparsity"), PATTERNS)
def test_achieved_sparsity_equals_target_and_outputs_finite(method, pattern, sparsity):
    model = net()
    try:
        rep = prune(model, method, sparsity, pattern)
    except ValueError as err:  # a method may refuse a pattern, but must say so
        assert "pattern" in str(err) or "supports" in str(err)
        return
    group = PRUNERS.get(method).group
    if pattern == "unstructured" and group == "tensor":  # overall exact; layers absorb rounding
        assert rep.report.params - rep.report.nonzeros == n_pruned(rep.report.params, sparsity)
    elif pattern == "unstructured":  # per-row methods: every row exact
        for fqn, mask in st.get_masks(model).items():
            assert ((~mask).sum(1) == n_pruned(mask.shape[1], sparsity)).all(), fqn
    else:  # each layer prunes exactly round(sparsity * size), in whole groups
        for r in rep.report.layers:
            assert r.params - r.nonzeros == n_pruned(r.params, sparsity)
    assert torch.isfinite(model(torch.randn(3, 16))).all()
    assert set(st.get_masks(model)) == {"0.weight", "2.weight"}
    assert all(r.error is not None and 0.0 <= r.error < 10 for r in rep.layers)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("distribution", ["uniform", "erk", "global"])
def test_distributions(method, distribution):
    model = net()
    cls = PRUNERS.get(method)
    if distribution == "global" and (cls.needs_calibration or not cls.supports_global):
        with pytest.raises(ValueError, match="global"):
            prune(model, method, 0.8, distribution=distribution)
        return
    rep = prune(
        model,
        method,
        0.8,
        distribution=distribution,
        calibration=None if distribution == "global" else calib(),
    )
    if cls.group == "tensor":
        assert rep.report.params - rep.report.nonzeros == n_pruned(rep.report.params, 0.8)


@pytest.mark.parametrize("method", METHODS)
def test_same_seed_same_masks_and_squash_keeps_outputs(method):
    a, b = net(), net()
    prune(a, method, 0.6)
    prune(b, method, 0.6)
    assert all(torch.equal(st.get_masks(a)[k], st.get_masks(b)[k]) for k in st.get_masks(a))
    x = torch.randn(5, 16)
    before = a(x)
    st.squash(a)
    assert torch.equal(a(x), before)


def snapshot(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def unchanged(model, state):
    return st.get_masks(model) == {} and all(torch.equal(state[k], v) for k, v in model.state_dict().items())


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"sparsity": 1.2}, r"\[0, 1\)"),
        ({"sparsity": None, "pattern": "2:3"}, "not divisible"),
        ({"calibration": []}, "empty"),
        ({"calibration": torch.randn(8, 5)}, "does not run through the model"),
        ({"calibration": torch.randint(0, 3, (8, 16))}, "does not run through the model|dtype|Long"),
        ({"calibration": torch.full((8, 16), float("nan"))}, "NaN"),
        ({"targets": "4.bias"}, "match no parameter"),
        ({"distribution": "erc"}, "did you mean 'erk'"),
    ],
)
def test_bad_input_raises_and_leaves_model_unchanged(method, kwargs, error):
    model = net()
    state = snapshot(model)
    kwargs = {"sparsity": 0.5, **kwargs}
    with pytest.raises((ValueError, KeyError), match=error):
        prune(model, method, **kwargs)
    assert unchanged(model, state)


@pytest.mark.parametrize("method", METHODS)
def test_nan_weights_raise_and_model_unchanged(method):
    model = net()
    with torch.no_grad():
        model[2].weight[0, 0] = float("nan")
    state = snapshot(model)
    with pytest.raises(ValueError, match="NaN"):
        prune(model, method, 0.5)
    assert st.get_masks(model) == {} and all(
        torch.allclose(state[k], v, equal_nan=True) for k, v in model.state_dict().items()
    )


def test_failure_in_a_late_layer_restores_earlier_layers(monkeypatch):
    """A method that fails on the second layer leaves the first layer's weights as they were."""
    from sparsetorch.pruning.magnitude import Magnitude

    model = net()
    state = snapshot(model)
    original = Magnitude.prune_layer

    def failing(self, weight, stats, **kw):
        if kw["name"] == "2.weight":
            raise RuntimeError("boom")
        return original(self, weight, stats, **kw)

    monkeypatch.setattr(Magnitude, "prune_layer", failing)
    with pytest.raises(RuntimeError, match="boom"):
        prune(model, "magnitude", 0.5)
    assert unchanged(model, state)


def test_magnitude_keeps_largest_and_random_depends_on_seed():
    model = net()
    w = model[0].weight.detach().abs().clone()
    st.prune(model, "magnitude", 0.5, targets="0")
    kept = st.get_masks(model)["0.weight"]
    assert w[kept].min() >= w[~kept].max()
    a, b = net(), net()
    st.prune(a, "random", 0.5, seed=1)
    st.prune(b, "random", 0.5, seed=2)
    assert not torch.equal(st.get_masks(a)["0.weight"], st.get_masks(b)["0.weight"])


def test_unknown_method_and_options():
    with pytest.raises(KeyError, match="did you mean 'magnitude'"):
        st.prune(net(), "magnitde")
    with pytest.raises(TypeError, match="unknown option"):
        st.prune(net(), "magnitude", 0.5, block_size=3)
    with pytest.raises(ValueError, match="unstructured sparsity only"):
        st.prune(net(), "magnitude", pattern="2:4", distribution="erk")
    with pytest.raises(ValueError, match="needs calibration"):
        st.prune(net(), "wanda", 0.5)


def test_list_and_create_methods():
    assert {"magnitude", "random", "wanda"} <= set(st.list_methods())
    assert st.list_methods("rand*", kind="pruning") == ["random"]
    assert st.list_methods("rand*") == ["random", "random-pruning", "random-search"]  # every kind
    assert type(st.create_method("wanda")).__name__ == "Wanda"
    with pytest.raises(KeyError, match="did you mean"):
        st.create_method("randon")


def test_calibration_without_errors_skips_the_block_passes_for_data_free_methods():
    model, plain = net(), net()
    calls = []
    handle = model.register_forward_hook(lambda *_: calls.append(1))
    rep = st.prune(model, "magnitude", 0.5, calibration=calib(), errors=False)
    handle.remove()
    st.prune(plain, "magnitude", 0.5)
    assert calls == []  # no calibration forward passes
    assert rep.mean_error is None
    expected = st.get_masks(plain)
    assert all(torch.equal(mask, expected[fqn]) for fqn, mask in st.get_masks(model).items())
