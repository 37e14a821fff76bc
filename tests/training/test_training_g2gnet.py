"""G2GNet: block-modular ensemble masks and Hebbian regrowth on hand-checkable cases."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import sparsetorch.training.g2gnet  # noqa: F401  (registers "g2gnet" until training/__init__ does)
from sparsetorch.training import TRAINERS
from sparsetorch.training.g2gnet import correlation, ensemble_blocks, g2g_mask
from tests.training.training_testutil import batches, net, train


def test_ensemble_blocks_by_hand():
    g = torch.Generator().manual_seed(0)
    block = ensemble_blocks(4, 6, ensembles=2, fan=1, generator=g)
    # Outputs {0,1} and {2,3}, inputs {0,1,2} and {3,4,5}: each output ensemble sees one input ensemble.
    for rows in (slice(0, 2), slice(2, 4)):
        seen = block[rows]
        assert seen[0].tolist() == seen[1].tolist()
        assert seen[0].tolist() in ([True] * 3 + [False] * 3, [False] * 3 + [True] * 3)
    assert ensemble_blocks(4, 6, 2, 2, g).all()
    with pytest.raises(ValueError, match="fan"):
        ensemble_blocks(4, 6, 2, 3, g)


def test_mask_is_the_block_mask_when_blocks_divide_the_count():
    g = torch.Generator().manual_seed(3)
    mask = g2g_mask((8, 12), 0.75, ensembles=4, generator=g)
    assert int(mask.sum()) == 24  # 25% of 96: one 2x3 block per output ensemble, exactly
    blocks = mask.reshape(4, 2, 4, 3)  # [out ensemble, row, in ensemble, column]
    per_block = blocks.sum(dim=(1, 3))  # kept weights of each ensemble pair
    assert sorted(set(per_block.flatten().tolist())) == [0, 6]  # blocks all-or-nothing
    assert (per_block.eq(6).sum(dim=1) == 1).all()  # one input ensemble per output ensemble


@pytest.mark.parametrize("shape", [(10, 7), (300, 784), (6, 5, 3, 3)])
@pytest.mark.parametrize("sparsity", [0.5, 0.75, 0.9])
def test_mask_has_exact_counts_for_any_shape(shape, sparsity):
    mask = g2g_mask(shape, sparsity, ensembles=4, generator=torch.Generator().manual_seed(0))
    numel = mask.numel()
    assert numel - int(mask.sum()) == round(sparsity * numel)


def test_conv_blocks_cover_whole_kernels():
    mask = g2g_mask((8, 4, 3, 3), 0.75, ensembles=4, generator=torch.Generator().manual_seed(0))
    per_pair = mask.sum(dim=(2, 3))  # the block pattern is over channels, every kernel position alike
    assert set(per_pair.flatten().tolist()) == {0, 9} and int(mask.sum()) == 72


def test_correlation_matches_numpy():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(50, 4, generator=g)
    z = torch.stack([x[:, 0] + 0.1 * torch.randn(50, generator=g), -x[:, 2], torch.ones(50)], dim=1)
    stats = {"n": torch.tensor(50.0), "sx": x.sum(0), "sz": z.sum(0), "sxx": (x * x).sum(0)}
    stats.update({"szz": (z * z).sum(0), "sxz": z.T @ x})
    corr = correlation(stats)
    expected = np.corrcoef(np.concatenate([z[:, :2].numpy(), x.numpy()], axis=1).T)[:2, 2:]
    np.testing.assert_allclose(corr[:2].numpy(), expected, atol=1e-5)
    assert (corr[2] == 0).all()  # a constant unit has no correlation


def test_hebbian_regrowth_picks_the_most_correlated_inactive_pairs():
    model = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2))
    m = TRAINERS.get("g2gnet")(ensembles=2, drop_fraction=0.25, update_every=1)
    m.prepare(model, torch.optim.SGD(model.parameters(), lr=0.1))
    mask = torch.zeros(4, 4, dtype=torch.bool)
    mask[:2, :2] = mask[2:, 2:] = True  # block diagonal: 8 active
    weight = torch.tensor([[0.9, 0.8, 0, 0], [0.7, 0.05, 0, 0], [0, 0, -0.6, 0.5], [0, 0, 0.01, -0.4]])
    g = torch.Generator().manual_seed(0)
    x = torch.randn(400, 4, generator=g)
    z = 0.2 * torch.randn(400, 4, generator=g)
    z[:, 0] += x[:, 3]  # output 0 follows input 3: |corr| ~ 0.98
    z[:, 1] -= x[:, 2]  # output 1 against input 2: |corr| ~ 0.98 (anti-correlation counts)
    m._stats["0.weight"] = _stats(x, z)
    corr = correlation(_stats(x, z)).abs()
    assert corr[0, 3] > 0.95 and corr[1, 2] > 0.95
    others = corr.clone()
    others[0, 3] = others[1, 2] = 0
    assert others.max() < 0.3  # every other pair is far less correlated

    update = m.update_masks(1, {"0.weight": weight}, {"0.weight": mask}, {})
    # n = floor(0.25 * 8) = 2: drop |w| = 0.01 and 0.05, grow the two most correlated inactive pairs.
    expected = mask.clone()
    expected[3, 2] = expected[1, 1] = False
    expected[0, 3] = expected[1, 2] = True
    assert torch.equal(update.masks["0.weight"], expected)
    assert update.pruned == {"0.weight": 8}
    assert m._stats == {}  # the statistics restart after an update


def _stats(x, z):
    return {
        "n": torch.tensor(float(len(x)), dtype=torch.float64),
        "sx": x.sum(0),
        "sz": z.sum(0),
        "sxx": (x * x).sum(0),
        "szz": (z * z).sum(0),
        "sxz": z.T @ x,
    }


def test_forward_hook_accumulates_the_moments_of_recent_batches():
    model = net(0)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    m = TRAINERS.get("g2gnet")(update_every=4, window=2, ensembles=4)
    m.prepare(model, opt)
    data = batches(4)
    inputs = []
    handle = model[0].register_forward_hook(lambda mod, i, o: inputs.append((i[0].detach(), o.detach())))
    for step, (x, y) in enumerate(data, start=1):
        F.cross_entropy(model(x), y).backward()
        opt.step()
        if step == 3:  # window 2 before the update at 4: steps 3 and 4 are captured
            expected = _stats(*inputs[2])
            for k, v in expected.items():
                torch.testing.assert_close(m._stats["0.weight"][k].double(), v.double())
        if step < 3:
            assert m._stats == {}
        m.step()
        opt.zero_grad()
    handle.remove()
    assert m.stats["updates"] == 1 and m._stats == {}  # reset after the update


def test_exact_sparsity_after_every_update_with_convolutions():
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 8, 3), nn.ReLU(), nn.Conv2d(8, 8, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 4 * 4, 3)
    )
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    m = TRAINERS.get("g2gnet")(update_every=2, ensembles=2, drop_fraction=0.3)
    m.prepare(model, opt, targets=["0.weight", "2.weight"])
    zeros = {f: int((~mask).sum()) for f, mask in m.masks.items()}
    assert zeros == {"0.weight": round(0.75 * 72), "2.weight": round(0.75 * 576)}
    g = torch.Generator().manual_seed(0)
    before = {f: mask.clone() for f, mask in m.masks.items()}
    for _ in range(6):
        x, y = torch.randn(8, 1, 8, 8, generator=g), torch.randint(0, 3, (8,), generator=g)
        F.cross_entropy(model(x), y).backward()
        opt.step()
        m.step()
        opt.zero_grad()
        assert {f: int((~mask).sum()) for f, mask in m.masks.items()} == zeros
    assert m.stats["updates"] == 3
    assert any(not torch.equal(before[f], m.masks[f]) for f in before)


def run(seed):
    model = net(0)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    m = TRAINERS.get("g2gnet")(update_every=2, ensembles=4, seed=seed)
    m.prepare(model, opt)
    initial = {f: mask.clone() for f, mask in m.masks.items()}
    train(model, m, opt, batches(8))
    return initial, {f: mask.clone() for f, mask in m.masks.items()}


def test_same_seed_same_masks_and_seed_changes_the_blocks():
    a, b, c = run(0), run(0), run(1)
    assert all(torch.equal(a[i][f], b[i][f]) for i in (0, 1) for f in a[0])
    assert any(not torch.equal(a[0][f], c[0][f]) for f in a[0])


def test_defaults_are_the_papers():
    config = TRAINERS.get("g2gnet")().config
    assert (config.sparsity, config.ensembles, config.update_every, config.drop_fraction) == (
        0.75,
        8,
        1000,
        0.1,
    )
    assert TRAINERS.get("g2gnet").paper == "g2gnet"


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"ensembles": 0}, "ensembles"),
        ({"ensembles": 2.5}, "ensembles"),
        ({"window": 0}, "window"),
        ({"distribution": "erk"}, "distribution"),
        ({"drop_fraction": 1.0}, "drop_fraction"),
    ],
)
def test_bad_config_raises(overrides, match):
    with pytest.raises(ValueError, match=match):
        TRAINERS.get("g2gnet")(**overrides)


def test_layers_narrower_than_the_ensembles_get_fewer_ensembles():
    g = torch.Generator().manual_seed(0)
    mask = g2g_mask((8, 1, 3, 3), 0.75, ensembles=8, generator=g)  # a first Conv on grey images
    assert 72 - int(mask.sum()) == 54


def test_non_linear_or_conv_targets_raise():
    model = nn.Sequential(nn.Linear(4, 4), nn.Bilinear(4, 4, 2))
    with pytest.raises(ValueError, match="only Linear and Conv2d"):
        TRAINERS.get("g2gnet")(ensembles=2).prepare(
            model, torch.optim.SGD(model.parameters(), lr=0.1), targets=["0.weight", "1.weight"]
        )


def test_update_without_training_mode_activations_raises():
    model = net(0)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    m = TRAINERS.get("g2gnet")(update_every=1, ensembles=4)
    m.prepare(model, opt)
    model.eval()  # activations are only recorded in training mode
    x, y = batches(1)[0]
    F.cross_entropy(model(x), y).backward()
    opt.step()
    with pytest.raises(RuntimeError, match="no activations"):
        m.step()
