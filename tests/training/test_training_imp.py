"""IMP: the round schedule by hand, global magnitude pruning of the trained weights, rewinding to
step k, and bad schedules."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from sparsetorch import allocation
from sparsetorch.masks import get_masks as attached
from sparsetorch.patterns import n_pruned
from sparsetorch.training import TRAINERS, fit, keep_top_among
from sparsetorch.training.imp import round_sparsity, rounds
from tests.training.method_testutil import prepared
from tests.training.training_testutil import TARGETS, TOTAL, batches, net


def test_rounds_by_hand():
    assert rounds(0.9, 0.2) == 11  # 0.8**10 = 0.107 > 0.1 >= 0.8**11 = 0.086
    assert rounds(0.75, 0.5) == 2 and rounds(0.0, 0.2) == 0
    assert rounds(1 - 0.8**3, 0.2) == 3  # exactly reachable: no extra round from rounding
    assert round_sparsity(1, sparsity=0.9, prune_fraction=0.2) == pytest.approx(0.2)
    assert round_sparsity(2, sparsity=0.9, prune_fraction=0.2) == pytest.approx(0.36)
    assert round_sparsity(11, sparsity=0.9, prune_fraction=0.2) == 0.9
    with pytest.raises(ValueError, match="round"):
        round_sparsity(12, sparsity=0.9, prune_fraction=0.2)


@pytest.mark.parametrize(
    ("options", "total", "k", "length", "prunes"),
    [
        # T = L + R (L - k): R = 2 (p=0.5 to 0.75), k = 2 -> L = (20 + 4) // 3 = 8, then 14.
        ({"prune_fraction": 0.5, "rewind": 2}, 20, 2, 8, [8, 14]),
        # A fraction of the phase: L = floor(100 / (1 + 2 * 0.9)) = 35, k = round(0.1 * 35) = 4.
        ({"prune_fraction": 0.5, "rewind": 0.1}, 100, 4, 35, [35, 66]),
        ({"prune_fraction": 0.5, "rewind": 0}, 9, 0, 3, [3, 6]),
    ],
)
def test_phase_schedule(options, total, k, length, prunes):
    model = net()
    m = TRAINERS.get("imp")(sparsity=0.75, **options)
    m.prepare(model, torch.optim.SGD(model.parameters(), lr=0.1), total_steps=total)
    assert (m.rewind_step, m.phase_length, list(m.prune_steps)) == (k, length, prunes)
    assert m.phase_starts == [0, *prunes]


def test_prune_by_global_magnitude_then_rewind_to_step_k():
    model, opt, m = prepared("imp")  # p=0.3 to 0.75, k=1: prunes after steps 3, 5, 7, 9
    data = batches(TOTAL)
    at_k = None
    for step, (x, y) in enumerate(data, 1):
        F.cross_entropy(model(x), y).backward()
        opt.step()
        trained = {f: model.get_submodule(f.rpartition(".")[0]).weight.detach().clone() for f in TARGETS}
        before = {f: mask.clone() for f, mask in m.masks.items()}
        updated = m.step()
        opt.zero_grad()
        if step == 1:
            at_k = {k: v.detach().clone() for k, v in model.named_parameters()}
        assert updated == (step in (3, 5, 7, 9))
        if not updated:
            continue
        level = {3: 0.3, 5: 1 - 0.7**2, 7: 1 - 0.7**3, 9: 0.75}[step]
        scores = {f: trained[f].abs().masked_fill(~before[f], -1) for f in TARGETS}
        per_layer = allocation.global_budget(scores, level)
        for f in TARGETS:
            keep = scores[f].numel() - n_pruned(scores[f].numel(), per_layer[f])
            assert torch.equal(m.masks[f], keep_top_among(scores[f], keep))
            assert (m.masks[f] <= before[f]).all()  # monotone
        # Every parameter is back at its step-1 value (masked), and the optimizer starts afresh.
        for name, value in model.named_parameters():
            mask = m.masks.get(name.replace(".parametrizations.weight.original", ".weight"))
            expected = at_k[name] if mask is None else torch.where(mask, at_k[name], 0.0)
            assert torch.equal(value.detach(), expected), name
        assert len(opt.state) == 0
    assert m.sparsity == pytest.approx(0.75)


def test_rewind_zero_resets_to_initialization():
    model = net()
    init = {k: v.detach().clone() for k, v in model.named_parameters()}
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    m = TRAINERS.get("imp")(sparsity=0.5, prune_fraction=0.5, rewind=0)
    m.prepare(model, opt, total_steps=4)  # L = 2: prune after step 2
    for x, y in batches(2):
        F.cross_entropy(model(x), y).backward()
        opt.step()
        m.step()
        opt.zero_grad()
    for f in TARGETS:
        original = model.get_submodule(f.rpartition(".")[0]).parametrizations.weight.original
        key = f.replace("weight", "parametrizations.weight.original")
        assert torch.equal(original.detach(), torch.where(m.masks[f], init[f], 0.0))
        assert key in dict(model.named_parameters())
    assert torch.equal(model[4].weight, init["4.weight"])  # the dense classifier is rewound too


def test_imp_with_fit():
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(64, 12, generator=g), torch.randint(0, 3, (64,), generator=g)
    m = TRAINERS.get("imp")(sparsity=0.5, prune_fraction=0.3)
    metrics = fit(net(), m, (x, y), epochs=4, batch_size=8, progress=False)
    assert metrics["sparsity"] == pytest.approx(0.5) and metrics["mask_updates"] == 2


def test_bad_schedules():
    model = net()
    with pytest.raises(ValueError, match="total_steps"):
        TRAINERS.get("imp")().prepare(model, torch.optim.SGD(model.parameters(), lr=0.1))
    with pytest.raises(ValueError, match="too short"):
        TRAINERS.get("imp")(rewind=5).prepare(
            model, torch.optim.SGD(model.parameters(), lr=0.1), total_steps=10
        )
    assert attached(model) == {}
    for bad in ({"prune_fraction": 0.0}, {"prune_fraction": 1.0}, {"rewind": 1.0}, {"rewind": -1}):
        with pytest.raises(ValueError):
            TRAINERS.get("imp")(**bad)


def test_learning_rate_restarts_at_every_phase_from_step_k():
    model = net()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    imp = TRAINERS.get("imp")(sparsity=0.75, prune_fraction=0.5, rewind=2)
    imp.prepare(model, opt, total_steps=20)  # L = 8, k = 2, prunes after steps 8 and 14
    assert [imp.lr_position(s) for s in (0, 7, 8, 13, 14, 19)] == [
        (0, 8),
        (7, 8),
        (2, 8),
        (7, 8),
        (2, 8),
        (7, 8),
    ]
    gmp = TRAINERS.get("gmp")(sparsity=0.5)
    other = net()
    gmp.prepare(other, torch.optim.SGD(other.parameters(), lr=0.1), total_steps=20)
    assert gmp.lr_position(13) == (13, 20)  # one schedule over the whole run


def test_fit_anneals_each_imp_phase_from_step_k():
    x, y = batches(1, size=64)[0]
    seen = []
    imp = TRAINERS.get("imp")(sparsity=0.75, prune_fraction=0.5, rewind=1)
    step = imp.step

    def record() -> bool:
        seen.append(imp.optimizer.param_groups[0]["lr"])
        return step()

    imp.step = record
    fit(net(), imp, (x, y), epochs=10, batch_size=16, lr=0.1, progress=False)  # 40 steps: L = 14, k = 1
    assert imp.phase_length == 14 and imp.rewind_step == 1
    assert seen[14] == pytest.approx(seen[1])  # the first step after a rewind runs at step k's rate
    assert seen[13] < seen[1] and seen[14] > seen[13]
