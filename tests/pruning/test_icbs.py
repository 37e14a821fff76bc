"""iCBS: exact block solves against brute force, monotone descent, exact sparsity, determinism."""

import itertools

import pytest
import torch
from torch import nn

import sparsetorch as st
import sparsetorch.pruning.icbs as icbs
from sparsetorch.models import create_model
from sparsetorch.patterns import NM, Block, Channel, Unstructured
from sparsetorch.pruning import PRUNERS, LayerStats
from sparsetorch.pruning.calibration import reconstruction_error


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Many small tensor ops: one thread avoids OpenMP spin-waiting on a shared 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def layer(out, inp, seed, tokens=128):
    g = torch.Generator().manual_seed(seed)
    mix = torch.randn(inp, inp, generator=g) / inp**0.5
    x = torch.randn(tokens, inp, generator=g) @ (torch.eye(inp) + 2 * mix)  # correlated inputs
    stats = LayerStats(inp)
    stats.update(x)
    return torch.randn(out, inp, generator=g), stats


def run(weight, stats, pattern, sparsity=0.5, seed=0, **config):
    res = PRUNERS.get("icbs")(**config).prune_layer(
        weight,
        stats,
        pattern=pattern,
        sparsity=sparsity,
        shape=weight.shape,
        name="fc",
        generator=torch.Generator().manual_seed(seed),
    )
    return res.mask, torch.where(res.mask, res.weight, 0.0)


def wanda_error(weight, stats, pattern, sparsity=0.5):
    res = PRUNERS.get("wanda")().prune_layer(
        weight,
        stats,
        pattern=pattern,
        sparsity=sparsity,
        shape=weight.shape,
        name="fc",
        generator=torch.Generator(),
    )
    return reconstruction_error(weight, weight * res.mask, stats)


def damped(stats, frac=0.01):
    h = stats.xtx.double()
    return h + frac * h.diagonal().mean() * torch.eye(h.shape[0], dtype=torch.float64)


def objective(weight, pruned, h):
    e = (weight - pruned).double()
    return float((e @ h * e).sum())


def brute_force(w, h, feasible, update):
    """min over feasible pruned sets P of the row loss, kept weights least-squares re-fitted or not."""
    best = float("inf")
    for p in feasible:
        keep = [j for j in range(w.numel()) if j not in p]
        e = w.clone()
        if update:
            e[keep] = 0.0
            if keep:  # e_K = -H_KK^{-1} H_KP w_P minimizes e^T H e with e_P = w_P
                e[keep] = -torch.linalg.solve(h[keep][:, keep], h[keep][:, list(p)] @ w[list(p)])
        else:
            e[keep] = 0.0
        best = min(best, float(e @ h @ e))
    return best


@pytest.mark.parametrize("update", [True, False])
@pytest.mark.parametrize("pattern", [Unstructured(), NM(2, 4)])
def test_one_block_per_row_is_solved_exactly(update, pattern):
    """With block_size = in, one sweep solves every row's combinatorial problem exactly."""
    weight, stats = layer(4, 8, seed=1)
    weight = weight.double()
    h = damped(stats) if update else stats.xtx.double()
    _, pruned = run(weight, stats, pattern, iterations=1, block_size=8, update=update)
    if isinstance(pattern, NM):
        choices = list(itertools.combinations(range(4), 2))
        feasible = [a + tuple(4 + j for j in b) for a, b in itertools.product(choices, choices)]
    else:
        feasible = list(itertools.combinations(range(8), 4))
    for r in range(4):
        got = objective(weight[r : r + 1], pruned[r : r + 1].double(), h)
        assert got == pytest.approx(brute_force(weight[r], h, feasible, update), rel=1e-6, abs=1e-9)


@pytest.mark.parametrize("update", [True, False])
@pytest.mark.parametrize(
    ("pattern", "sparsity"), [(Unstructured(), 0.5), (Unstructured(), 0.7), (NM(2, 4), 0.5)]
)
def test_descent_is_monotone_and_beats_wanda(update, pattern, sparsity):
    weight, stats = layer(16, 32, seed=2)
    h = damped(stats) if update else stats.xtx.double()
    init_error = wanda_error(weight, stats, pattern, sparsity)
    objectives, errors = [], []
    for iterations in (0, 1, 5, 20):
        _, pruned = run(weight, stats, pattern, sparsity, iterations=iterations, block_size=4, update=update)
        objectives.append(objective(weight, pruned, h))
        errors.append(reconstruction_error(weight, pruned, stats))
    assert errors[0] == pytest.approx(init_error, rel=1e-6)  # 0 iterations: the Wanda mask, weights untouched
    assert all(b <= a * (1 + 1e-9) for a, b in itertools.pairwise(objectives)), objectives
    assert all(e <= init_error * (1 + 1e-9) for e in errors), (errors, init_error)
    assert errors[-1] < 0.95 * init_error, (errors, init_error)


def test_sweep_losses_are_non_increasing_and_runs_are_prefixes():
    weight, stats = layer(8, 16, seed=3)
    init = icbs.initial_mask(
        weight, stats, init="wanda", pattern=Unstructured(), sparsity=0.5, shape=weight.shape, name="fc"
    )
    long = icbs.icbs_search(
        weight,
        stats.xtx,
        init,
        pattern=Unstructured(),
        iterations=6,
        block_size=4,
        generator=torch.Generator().manual_seed(7),
    )
    short = icbs.icbs_search(
        weight,
        stats.xtx,
        init,
        pattern=Unstructured(),
        iterations=3,
        block_size=4,
        generator=torch.Generator().manual_seed(7),
    )
    assert all(b <= a * (1 + 1e-12) for a, b in itertools.pairwise(long.losses))
    assert short.losses == pytest.approx(long.losses[:4], rel=1e-12)


@pytest.mark.parametrize(
    ("pattern", "sparsity"),
    [(Unstructured(), 0.3), (Unstructured(), 0.75), (NM(2, 4), 0.5), (NM(1, 4), 0.75), (NM(4, 8), 0.5)],
)
def test_exact_sparsity_and_determinism(pattern, sparsity):
    weight, stats = layer(8, 24, seed=4)
    mask, pruned = run(weight, stats, pattern, sparsity, iterations=3, block_size=8, seed=5)
    if isinstance(pattern, NM):
        assert (mask.reshape(8, -1, pattern.m).sum(-1) == pattern.n).all()
    else:
        assert ((~mask).sum(1) == round(sparsity * 24)).all()
    assert not pruned[~mask].any()
    mask2, pruned2 = run(weight, stats, pattern, sparsity, iterations=3, block_size=8, seed=5)
    assert torch.equal(mask, mask2) and torch.equal(pruned, pruned2)


def test_magnitude_init_and_refusals():
    weight, stats = layer(8, 16, seed=6)
    mask, _ = run(weight, stats, Unstructured(), init="magnitude", iterations=2)
    assert ((~mask).sum(1) == 8).all()
    for pattern in (Block(4, 4), Channel(0)):
        with pytest.raises(ValueError, match="supports unstructured and N:M"):
            run(weight, stats, pattern)
    wide, wide_stats = layer(4, 32, seed=7)
    with pytest.raises(ValueError, match="candidate masks"):  # C(32, 16) choices in one group
        run(wide, wide_stats, NM(16, 32))
    bad = [
        dict(iterations=-1),
        dict(block_size=1),
        dict(block_size=17),
        dict(init="sparsegpt"),
        dict(update=1),
        dict(dampening_frac=0.0),
    ]
    for config in bad:
        with pytest.raises(ValueError):
            PRUNERS.get("icbs")(**config)
    assert PRUNERS.get("icbs").paper == "icbs"


def test_prune_mlp_and_tiny_gpt():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 16), nn.ReLU(), nn.Linear(16, 4))
    rep = st.prune(model, "icbs", 0.5, calibration=torch.randn(64, 16), iterations=2)
    for mask in st.get_masks(model).values():
        assert ((~mask).sum(1) == mask.shape[1] // 2).all()
    assert all(r.error is not None and 0 <= r.error < 1 for r in rep.layers)

    gpt = create_model("gpt-tiny", n_layer=2, d_model=32, n_head=2, block_size=16, seed=0)
    rep = st.prune(gpt, "icbs", pattern="2:4", calibration=torch.randint(0, 256, (8, 16)), iterations=1)
    masks = st.get_masks(gpt)
    assert masks and all((m.reshape(m.shape[0], -1, 4).sum(-1) == 2).all() for m in masks.values())
    assert torch.isfinite(gpt(torch.randint(0, 256, (2, 16)))).all()
