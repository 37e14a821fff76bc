"""Contract tests generated from the training registry: every method, the same invariants."""

from __future__ import annotations

import sys
from copy import deepcopy

import pytest
import torch

import sparsetorch.training as T
from sparsetorch.masks import get_masks as attached
from sparsetorch.patterns import n_pruned
from sparsetorch.training.schedules import cubic
from tests.training.method_testutil import NM_METHODS, PAI, prepared
from tests.training.training_testutil import SPARSITY, TARGETS, TOTAL, batches, train

METHODS = T.TRAINERS.list()
DYNAMIC = {"rigl", "set", "granet", "g2gnet"}  # masks move at constant layer counts (granet after pruning)
STATIC = {"random-pruning", *PAI}  # masks made at prepare, never changed
CONSTANT_COUNTS = {"rigl", "set", "g2gnet", *STATIC, *NM_METHODS}  # every layer keeps its number of zeros
DENSE_WEIGHTS = set(NM_METHODS)  # straight-through: pruned weights keep their stored values
DEFAULT_SPARSITY = {
    "sr-ste": 0.5,
    "bdwp": 0.75,
    "g2gnet": 0.75,
    "wgsef": 0.5,
}  # implied by 2:4 and 2:8; 0.9 for the others
# IMP with p=0.3 to 0.75 (method_testutil): 4 rounds, pruned after these steps to 1 - 0.7**r.
IMP_ROUNDS = {3: 0.3, 5: 1 - 0.7**2, 7: 1 - 0.7**3, 9: SPARSITY}


def test_registry_holds_the_methods():
    assert set(METHODS) >= {"gmp", "granet", "rigl", "set", "random-pruning"}
    assert set(METHODS) >= {"imp", "snip", "grasp", "synflow", "cts", "sr-ste", "bdwp"}
    assert T.TRAINERS.get("granet").paper == "granet"
    assert T.TRAINERS.get("random-pruning").paper == "random-pruning"
    assert T.TRAINERS.get("sr-ste").paper == "sr-ste"
    assert T.TRAINERS.get("bdwp").paper == "bdwp"


def expected_sparsity(name: str, step: int) -> float:
    if name in ("gmp", "granet", "turbo-vbi"):  # the target of the last update step (every 2 steps, until 8)
        return cubic(min(step - step % 2, 8), initial=0.0, final=SPARSITY, start=0, end=8)
    if name == "wgsef":  # dense (prox steps only) until its one mask update at step 8
        return SPARSITY if step >= 8 else 0.0
    if name == "imp":  # dense until the first round, then the target of the last round
        return max([0.0, *(s for t, s in IMP_ROUNDS.items() if t <= step)])
    return SPARSITY


@pytest.mark.parametrize("name", METHODS)
def test_exact_sparsity_after_every_update(name):
    model, opt, m = prepared(name)
    assert set(m.masks) == set(TARGETS)
    total = sum(mask.numel() for mask in m.masks.values())
    assert sum(int((~mask).sum()) for mask in m.masks.values()) == n_pruned(total, expected_sparsity(name, 0))
    layer_zeros = {f: int((~mask).sum()) for f, mask in m.masks.items()}
    seen = []

    def after(updated):
        zeros = {f: int((~mask).sum()) for f, mask in m.masks.items()}
        assert sum(zeros.values()) == n_pruned(total, expected_sparsity(name, m.step_count))
        if name in CONSTANT_COUNTS:
            assert zeros == layer_zeros  # constant per-layer counts
        seen.append(updated)

    before = {f: mask.clone() for f, mask in m.masks.items()}
    train(model, m, opt, batches(TOTAL), after_step=after)
    assert m.step_count == TOTAL
    if name in STATIC:
        assert not any(seen) and all(torch.equal(before[f], m.masks[f]) for f in TARGETS)
    else:
        assert sum(seen) == m.stats["updates"] >= (1 if name == "wgsef" else 4)
        assert any(not torch.equal(before[f], m.masks[f]) for f in TARGETS)
    assert m.sparsity == pytest.approx(SPARSITY, abs=1e-9) or name == "random-pruning"


@pytest.mark.parametrize("opt", ["sgd", "adamw"])
@pytest.mark.parametrize("name", METHODS)
def test_masked_weights_stay_zero_after_optimizer_steps(name, opt):
    model, optimizer, m = prepared(name, opt=opt)

    def after(updated):
        for f, mask in m.masks.items():
            module = model.get_submodule(f.rpartition(".")[0])
            assert (module.weight[~mask] == 0).all()
            original = module.parametrizations.weight.original
            if name in DENSE_WEIGHTS:  # trained dense through the mask: pruned values are kept
                assert (original[~mask] != 0).any()
            else:  # the stored original too: its gradient and optimizer state are zero where masked
                assert (original[~mask] == 0).all()

    train(model, m, optimizer, batches(TOTAL), after_step=after)


@pytest.mark.parametrize("name", METHODS)
def test_outputs_finite(name):
    model, opt, m = prepared(name)
    train(model, m, opt, batches(6))
    assert torch.isfinite(model(torch.randn(5, 12))).all()


@pytest.mark.parametrize("name", METHODS)
def test_state_dict_round_trip_resumes_identically(name):
    model, opt, m = prepared(name)
    data = batches(TOTAL)
    train(model, m, opt, data[:5])
    # Deep copies, as a checkpoint on disk would hold (state_dict()s share the live tensors).
    state, opt_state, method_state = deepcopy((model.state_dict(), opt.state_dict(), m.state_dict()))
    assert {f"{f.rpartition('.')[0]}.parametrizations.weight.0.mask" for f in TARGETS} <= set(state)

    copy, copy_opt, copy_m = prepared(name, model_seed=7)  # other weights, other random masks
    copy.load_state_dict(state)
    copy_opt.load_state_dict(opt_state)
    copy_m.load_state_dict(method_state)
    x = torch.randn(4, 12)
    assert torch.equal(model(x), copy(x))
    assert all(torch.equal(m.masks[f], copy_m.masks[f]) for f in TARGETS)

    train(model, m, opt, data[5:])
    train(copy, copy_m, copy_opt, data[5:])
    assert copy_m.step_count == m.step_count == TOTAL
    assert all(torch.equal(m.masks[f], copy_m.masks[f]) for f in TARGETS)
    torch.testing.assert_close(model(x), copy(x))


@pytest.mark.parametrize("name", METHODS)
def test_same_seed_same_masks(name):
    runs = []
    for _ in range(2):
        model, opt, m = prepared(name)
        train(model, m, opt, batches(TOTAL))
        runs.append({f: mask.clone() for f, mask in m.masks.items()})
    assert all(torch.equal(runs[0][f], runs[1][f]) for f in TARGETS)


@pytest.mark.parametrize("name", ["rigl", "set", "random-pruning"])
def test_method_seed_changes_random_masks(name):
    a = prepared(name)[2].masks
    b = prepared(name, seed=1)[2].masks
    assert any(not torch.equal(a[f], b[f]) for f in TARGETS)


@pytest.mark.parametrize("name", METHODS)
def test_finish_keeps_outputs(name):
    model, opt, m = prepared(name)
    train(model, m, opt, batches(6))
    masks = {f: mask.clone() for f, mask in m.masks.items()}
    x = torch.randn(5, 12)
    before = model(x)
    assert m.finish() is model
    assert attached(model) == {} and m.masks == {}
    torch.testing.assert_close(model(x), before, rtol=0, atol=0)
    for f, mask in masks.items():
        assert (model.get_parameter(f)[~mask] == 0).all()
    assert isinstance(model.get_parameter("0.weight"), torch.nn.Parameter)
    with pytest.raises(RuntimeError, match="after finish"):
        m.step()


@pytest.mark.parametrize("name", METHODS)
def test_step_before_prepare_raises(name):
    with pytest.raises(RuntimeError, match="before prepare"):
        T.TRAINERS.get(name)().step()


@pytest.mark.parametrize("name", METHODS)
def test_defaults_are_valid_and_documented(name):
    cls = T.TRAINERS.get(name)
    m = cls()
    assert m.config.sparsity == DEFAULT_SPARSITY.get(name, 0.9)
    assert cls.__doc__ and sys.modules[cls.__module__].__doc__


def test_squash_is_a_deprecated_alias_of_finish():
    model, _, m = prepared("rigl")
    with pytest.warns(DeprecationWarning, match="finish"):
        assert m.squash() is model
    assert m.finished and m.masks == {} and attached(model) == {}
