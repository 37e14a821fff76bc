"""WGSEF: the group envelope, its proximal step and the preset group sparsity, checked by hand and
against brute-force minimization on tiny cases."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import sparsetorch.training.wgsef  # noqa: F401  (registers "wgsef" until training/__init__ does)
from sparsetorch.training import TRAINERS
from sparsetorch.training.wgsef import half_ksupport_squared, prox_envelope, prox_gap, prox_rows
from tests.training.training_testutil import batches, net, train


def test_envelope_by_hand():
    v = torch.tensor([3.0, -1.0, 2.0])
    assert float(half_ksupport_squared(v, 1)) == pytest.approx(0.5 * 6.0**2)  # k = 1: (1/2) l1^2
    assert float(half_ksupport_squared(v, 3)) == pytest.approx(0.5 * 14.0)  # k = m: (1/2) l2^2
    # k = 2: r = 0 fails (3 > 3 >= 2 needs 3 > (2+1)/1 = 3), r = 1: (1/2)(0 + (3+2+1)^2 / 2) = 9.
    assert float(half_ksupport_squared(v, 2)) == pytest.approx(9.0)
    sparse = torch.tensor([0.0, 4.0, 0.0, -1.0])
    assert float(half_ksupport_squared(sparse, 2)) == pytest.approx(0.5 * 17.0)  # = 1/2 ||v||^2 if k-sparse


def test_prox_by_hand():
    # k = 1, tau = 1: min (1/2)(t1 + t2)^2 + (1/2)(t1 - 3)^2 + (1/2)(t2 - 1)^2 over t >= 0 gives
    # t2 = 0 (its derivative there, t1 - 1 = 0.5, is positive) and 2 t1 - 3 = 0.
    out = prox_envelope(torch.tensor([3.0, 1.0]), 1, 1.0)
    torch.testing.assert_close(out, torch.tensor([1.5, 0.0], dtype=torch.float64))
    # At most k non-zero: the envelope is (1/2)||t||^2 and the prox a plain rescaling.
    out = prox_envelope(torch.tensor([3.0, 0.0, 1.0]), 2, 0.5)
    torch.testing.assert_close(out, torch.tensor([2.0, 0.0, 2.0 / 3.0], dtype=torch.float64))


def brute_force(a: torch.Tensor, fn) -> np.ndarray:
    minimize = pytest.importorskip("scipy.optimize").minimize

    def objective(t):
        t = torch.tensor(np.abs(t), dtype=torch.float64)
        return float(fn(t) + 0.5 * ((t - a) ** 2).sum())

    best = None
    for start in (a.numpy(), np.zeros(len(a)), a.numpy() / 2, np.full(len(a), 0.3)):
        res = minimize(objective, start, method="Nelder-Mead", options={"xatol": 1e-10, "fatol": 1e-14})
        if best is None or res.fun < best.fun:
            best = res
    return np.abs(best.x)


@pytest.mark.parametrize("seed", range(8))
def test_prox_envelope_matches_brute_force(seed):
    g = torch.Generator().manual_seed(seed)
    m = 2 + seed % 2
    a = 2 * torch.rand(m, generator=g, dtype=torch.float64)
    k, tau = 1 + seed % (m - 1), (0.3, 1.0, 2.5)[seed % 3]
    expected = brute_force(a, lambda t: tau * half_ksupport_squared(t, k))
    np.testing.assert_allclose(prox_envelope(a, k, tau).numpy(), expected, atol=1e-5)


@pytest.mark.parametrize("seed", range(8))
def test_prox_of_the_envelope_gap_matches_brute_force(seed):
    g = torch.Generator().manual_seed(100 + seed)
    m = 2 + seed % 2
    a = 2 * torch.rand(m, generator=g, dtype=torch.float64)
    k, mu = 1 + seed % (m - 1), (0.2, 0.5, 0.8, 1.0)[seed % 4]
    expected = brute_force(a, lambda t: mu * (half_ksupport_squared(t, k) - 0.5 * (t**2).sum()))
    np.testing.assert_allclose(prox_gap(a, k, mu).numpy(), expected, atol=1e-4)


def test_prox_gap_keeps_the_largest_groups_and_zeroes_the_tail():
    a = torch.tensor([5.0, 4.0, 1.0, 0.9, 0.1], dtype=torch.float64)
    out = prox_gap(a, 2, 0.5)
    assert out[0] == a[0]  # the r largest groups come out unchanged
    assert out[-1] == 0 and (out <= a).all()  # the tail is zeroed, nothing grows
    assert torch.equal(prox_gap(a, 2, 1.0), torch.tensor([5.0, 4.0, 0, 0, 0], dtype=torch.float64))
    assert torch.equal(prox_gap(a, 2, 3.0), prox_gap(a, 2, 1.0))  # mu >= 1: the top-k projection
    assert torch.equal(prox_gap(a, 2, 0.0), a)


def test_prox_rows_scales_rows_along_their_direction():
    w = torch.tensor([[3.0, 4.0], [0.6, 0.8], [0.0, 0.0]])
    out = prox_rows(w, 1, 0.5)
    norms = prox_gap(torch.tensor([5.0, 1.0, 0.0], dtype=torch.float64), 1, 0.5)
    torch.testing.assert_close(out.norm(dim=1).double(), norms)
    torch.testing.assert_close(out[0] / out[0].norm(), w[0] / 5.0)
    assert (out[2] == 0).all()


def prepared(**overrides):
    model = net(0)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    m = TRAINERS.get("wgsef")(**{"sparsity": 0.75, "end": 8, **overrides})
    m.prepare(model, opt, total_steps=12)
    return model, opt, m


def test_prox_runs_after_every_optimizer_step_until_end():
    model, opt, m = prepared(lam=2.0)
    twin = copy.deepcopy(model)
    twin_opt = torch.optim.SGD(twin.parameters(), lr=0.1, momentum=0.9)
    x, y = batches(1)[0]
    for mod, o in ((model, opt), (twin, twin_opt)):
        F.cross_entropy(mod(x), y).backward()
        o.step()
    m.step()
    for f in ("0", "2"):
        expected = prox_rows(twin.get_submodule(f).parametrizations.weight.original.detach(), 4, 0.1 * 2.0)
        torch.testing.assert_close(model.get_submodule(f).weight, expected)
    assert m.sparsity == 0.0  # dense masks until `end`


def test_exact_group_sparsity_at_end_and_fixed_afterwards():
    model, opt, m = prepared()
    history = []
    train(
        model,
        m,
        opt,
        batches(12),
        after_step=lambda u: history.append({f: k.clone() for f, k in m.masks.items()}),
    )
    assert m.stats["updates"] == 1
    for step, masks in enumerate(history, start=1):
        for mask in masks.values():
            rows = mask.all(dim=1)
            assert (mask == rows[:, None]).all()  # whole rows (neurons) only
            assert int((~rows).sum()) == (12 if step >= 8 else 0)  # 75% of 16 rows from `end` on
    assert all(torch.equal(history[7][f], history[-1][f]) for f in history[-1])
    assert m.sparsity == 0.75


def test_lam_zero_is_magnitude_group_pruning():
    model, opt, m = prepared(lam=0.0)
    data = batches(8)
    train(model, m, opt, data[:7])
    x, y = data[7]
    F.cross_entropy(model(x), y).backward()
    opt.step()  # step 8; the masks are made from the weights after it
    norms = {f: model.get_submodule(f.rpartition(".")[0]).weight.detach().norm(dim=1) for f in m.masks}
    assert m.step()
    for f, mask in m.masks.items():
        kept = mask.all(dim=1)
        assert set(kept.nonzero().flatten().tolist()) == set(norms[f].topk(4).indices.tolist())


def test_regularizer_drives_the_dropped_rows_towards_zero():
    runs = {}
    for lam in (0.0, 3.0):
        model, opt, m = prepared(lam=lam, end=11)
        train(model, m, opt, batches(10))  # before the projection
        w = model[0].weight.detach()
        norms = w.norm(dim=1).sort(descending=True).values
        runs[lam] = float(norms[4:].sum() / norms.sum())  # mass outside the 4 rows to keep
    assert runs[3.0] < 0.5 * runs[0.0]


def test_same_seed_same_masks():
    results = []
    for _ in range(2):
        model, opt, m = prepared()
        train(model, m, opt, batches(12))
        results.append({f: k.clone() for f, k in m.masks.items()})
    assert all(torch.equal(results[0][f], results[1][f]) for f in results[0])


def test_defaults_and_paper():
    config = TRAINERS.get("wgsef")().config
    assert (config.sparsity, config.lam, config.end, config.group_weight) == (0.5, 1.0, 0.5, "uniform")
    assert TRAINERS.get("wgsef").paper == "wgsef"


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"lam": -1.0}, "lam"),
        ({"lam": float("inf")}, "lam"),
        ({"lam": True}, "lam"),
        ({"group_weight": "l2"}, "group_weight"),
        ({"end": None}, "end"),
        ({"distribution": "erk"}, "distribution"),
    ],
)
def test_bad_config_raises(overrides, match):
    with pytest.raises(ValueError, match=match):
        TRAINERS.get("wgsef")(**overrides)


def test_end_after_training_raises():
    model = net(0)
    with pytest.raises(ValueError, match="after the end of training"):
        TRAINERS.get("wgsef")(end=20).prepare(
            model, torch.optim.SGD(model.parameters(), lr=0.1), total_steps=12
        )


def test_fractional_end_needs_total_steps():
    model = net(0)
    with pytest.raises(ValueError, match="total_steps"):
        TRAINERS.get("wgsef")().prepare(model, torch.optim.SGD(model.parameters(), lr=0.1))


def test_bad_prox_arguments_raise():
    with pytest.raises(ValueError, match="tau"):
        prox_envelope(torch.ones(3), 1, -1.0)
    with pytest.raises(ValueError, match="mu"):
        prox_gap(torch.ones(3), 1, -0.1)
