"""DSnoT: against hand-worked cases and an independent per-row loop, its invariants, and `prune`."""

import pytest
import torch
from torch import nn

import sparsetorch as st
import sparsetorch.pruning.dsnot  # registers "dsnot"
from sparsetorch.patterns import NM, Block, Unstructured
from sparsetorch.pruning import PRUNERS, LayerStats
from sparsetorch.pruning.dsnot import DSnoT, DSnoTConfig


def layer(out=6, cols=16, tokens=128, seed=0):
    """A random weight and the statistics of non-zero-mean inputs with per-feature scales."""
    gen = torch.Generator().manual_seed(seed)
    weight = torch.randn(out, cols, generator=gen)
    scale = torch.rand(cols, generator=gen) * 2 + 0.2
    x = (torch.randn(tokens, cols, generator=gen) + torch.randn(cols, generator=gen)) * scale
    stats = LayerStats(cols)
    stats.update(x)
    return weight, stats


def hand_stats(mean, var, norm=None):
    """Statistics of one token row with the given mean and variance (norm^2 = var + mean^2)."""
    mean, var = torch.tensor(mean, dtype=torch.float64), torch.tensor(var, dtype=torch.float64)
    stats = LayerStats(len(mean), with_xtx=False)
    stats.rows, stats.total, stats.sq_sum = 1, mean, var + mean**2
    return stats


UNSTRUCTURED = Unstructured()


def run(weight, stats, pattern=UNSTRUCTURED, sparsity=0.6, **config):
    return DSnoT(**config).prune_layer(
        weight,
        stats,
        pattern=pattern,
        sparsity=sparsity,
        shape=weight.shape,
        name="w",
        generator=torch.Generator().manual_seed(0),
    )


def sign(x):
    return (x > 0) - (x < 0)


def loop_dsnot(weight, stats, pattern, sparsity, cfg: DSnoTConfig):
    """A straightforward per-row DSnoT on Python floats: lists, pops and a loop per row."""
    out, cols = weight.shape
    mean, var = stats.mean.tolist(), stats.var.tolist()
    wanda = (weight.abs() * stats.norm).tolist()  # Wanda score, as the method computes it
    init = wanda if cfg.init == "wanda" else weight.abs().tolist()
    nm = pattern if isinstance(pattern, NM) else None
    same_sign = nm is not None if cfg.without_same_sign is None else not cfg.without_same_sign
    mask = torch.zeros(out, cols, dtype=torch.bool)
    for i in range(out):
        w = weight[i].tolist()
        # Initial mask: keep the highest init scores (per row, or per group of m); ties keep the earlier.
        groups = [range(k, k + nm.m) for k in range(0, cols, nm.m)] if nm else [range(cols)]
        kept = [False] * cols
        for g in groups:
            n_keep = nm.n if nm else cols - round(sparsity * cols)
            for j in sorted(g, key=lambda j: (-init[i][j], j))[:n_keep]:
                kept[j] = True
        d = [w[j] * mean[j] for j in range(cols)]
        e = sum(d[j] for j in range(cols) if not kept[j])
        s0 = sign(e)
        p = cfg.pow_of_var_regrowing
        g_score = [d[j] / var[j] ** p if p else d[j] for j in range(cols)]
        pruned0 = [j for j in range(cols) if not kept[j]]
        grow_up = sorted((j for j in pruned0 if g_score[j] > 0), key=lambda j: (-g_score[j], -j))
        grow_down = sorted((j for j in pruned0 if g_score[j] < 0), key=lambda j: (g_score[j], j))
        kept0 = [j for j in range(cols) if kept[j]]
        prune_down = sorted((j for j in kept0 if d[j] < 0), key=lambda j: (wanda[i][j], j))
        prune_up = sorted((j for j in kept0 if d[j] > 0), key=lambda j: (wanda[i][j], j))
        prunable = set(kept0)
        for _ in range(cfg.max_cycle_time):
            if not abs(e) > cfg.update_threshold:
                break
            grows, prunes = (grow_up, prune_down) if e > 0 else (grow_down, prune_up)
            if not grows:
                break
            gj = grows[0]
            if nm:
                block = [k for k in range(gj - gj % nm.m, gj - gj % nm.m + nm.m) if k in prunable]
                if not block:
                    break
                pj = min(block, key=lambda k: (init[i][k], k))
            else:
                if not prunes:
                    break
                pj = prunes[0]
            after = (e + d[pj]) - d[gj]
            if same_sign and sign(after) != s0:
                break
            grows.pop(0)
            if not nm:
                prunes.pop(0)
            prunable.discard(pj)
            kept[gj], kept[pj], e = True, False, after
        mask[i] = torch.tensor(kept)
    return mask


# --- hand-worked cases -------------------------------------------------------------------------

# Wanda = |W| * norm, D = W * mean. Wanda prunes j5 (0.14), j4 (0.34), j3 (0.71): e = 0.5 + 0.3 - 0.1 = 0.7.
# Swap 1 (e > 0): grow the largest D/Var among pruned (j4: 0.3/0.25 = 1.2 beats j3: 0.5/1), prune the
# kept D < 0 of lowest Wanda (j2: 2, not j1: 3, though |W| would pick j1): e = 0.7 - 0.2 - 0.3 = 0.2.
# Swap 2: grow j3, prune j1: e = 0.2 - 0.5 - 0.5 = -0.8, a sign flip: stop with the same-sign check.
# Without it: accepted; then (e < 0) grow j5 (D = -0.1), prune j0 (D = 0.2): e = -0.5; then the list
# of pruned weights with D < 0 is empty and the row stops.
HAND_W = torch.tensor([[2.0, -1.0, -2.0, 0.5, 0.3, -0.1]])
HAND_STATS = hand_stats([0.1, 0.5, 0.1, 1.0, 1.0, 1.0], [3.99, 8.75, 0.99, 1.0, 0.25, 1.0])


@pytest.mark.parametrize(
    ("config", "kept"),
    [
        ({"max_cycle_time": 0}, [0, 1, 2]),
        ({"max_cycle_time": 1}, [0, 1, 4]),
        ({"without_same_sign": False}, [0, 1, 4]),
        ({}, [3, 4, 5]),  # the reference's unstructured default: no same-sign check
        ({"update_threshold": 0.75}, [0, 1, 2]),  # |e| = 0.7 is already under it
    ],
)
def test_hand_worked_unstructured(config, kept):
    result = run(HAND_W, HAND_STATS, sparsity=0.5, **config)
    assert result.mask[0].nonzero().flatten().tolist() == kept
    assert torch.equal(result.weight, HAND_W * result.mask)


def test_hand_worked_nm_prunes_lowest_init_score_in_group_whatever_its_sign():
    # One group of 4, mean 1, var 1, equal norms: D = W. 2:4 keeps j0, j2 (|W| 1.0, 0.5); e = -0.2 + 0.4.
    # Grow j3 (D = 0.4 > 0); prune the lowest-Wanda kept weight of its group, j2, though D = +0.5:
    # e = 0.2 + 0.5 - 0.4 = 0.3, the same sign, so accepted although |e| grew.
    weight = torch.tensor([[1.0, -0.2, 0.5, 0.4]])
    result = run(weight, hand_stats([1.0] * 4, [1.0] * 4), NM(2, 4), 0.5)
    assert result.mask[0].tolist() == [True, False, False, True]


# --- against the loop --------------------------------------------------------------------------

CONFIGS = [
    {},
    {"without_same_sign": False},
    {"without_same_sign": True},
    {"init": "magnitude"},
    {"pow_of_var_regrowing": 0.0},
    {"pow_of_var_regrowing": 2.0, "update_threshold": 0.0},
    {"max_cycle_time": 3, "update_threshold": 0.5},
]


@pytest.mark.parametrize("config", CONFIGS)
@pytest.mark.parametrize(
    ("pattern", "sparsity"), [(Unstructured(), 0.6), (Unstructured(), 0.3), (NM(2, 4), 0.5), (NM(1, 4), 0.75)]
)
def test_matches_independent_loop(config, pattern, sparsity):
    changed = 0
    for seed in range(4):
        weight, stats = layer(seed=seed)
        mask = run(weight, stats, pattern, sparsity, **config).mask
        assert torch.equal(mask, loop_dsnot(weight, stats, pattern, sparsity, DSnoTConfig(**config)))
        changed += int((mask != run(weight, stats, pattern, sparsity, max_cycle_time=0).mask).any())
    if config.get("max_cycle_time", 50) > 1:
        assert changed > 0  # the comparison exercised swaps


# --- invariants --------------------------------------------------------------------------------


def expected_error(weight, stats, mask):
    return ((weight.double() * stats.mean.double()) * ~mask).sum(1)


@pytest.mark.parametrize("config", CONFIGS)
def test_counts_and_swaps(config):
    for seed in range(3):
        weight, stats = layer(8, 32, seed=seed)
        for pattern, sparsity in [(Unstructured(), 0.7), (NM(2, 4), 0.5), (NM(4, 8), 0.5)]:
            mask = run(weight, stats, pattern, sparsity, **config).mask
            init = run(weight, stats, pattern, sparsity, **{**config, "max_cycle_time": 0}).mask
            assert ((~mask).sum(1) == (~init).sum(1)).all()  # exact zeros per row
            if isinstance(pattern, NM):  # n kept in every group of m
                assert (mask.reshape(8, -1, pattern.m).sum(-1) == pattern.n).all()
            grown, dropped = mask & ~init, init & ~mask  # only swaps: grown were pruned, dropped were kept
            assert (grown.sum(1) == dropped.sum(1)).all()
            assert (grown.sum(1) <= DSnoTConfig(**config).max_cycle_time).all()
            # A row whose initial |e| is within the threshold is left alone.
            e0 = expected_error(weight, stats, init)
            assert not grown[e0.abs() <= DSnoTConfig(**config).update_threshold].any()


def test_expected_error_guarantees():
    for seed in range(6):
        weight, stats = layer(8, 32, seed=seed)
        # Unstructured with the same-sign check: every swap lowers |e| strictly and keeps its sign.
        init = run(weight, stats, max_cycle_time=0).mask
        mask = run(weight, stats, without_same_sign=False).mask
        e0, e1 = expected_error(weight, stats, init), expected_error(weight, stats, mask)
        assert (e1.abs() <= e0.abs()).all() and (torch.sign(e1) == torch.sign(e0)).all()
        moved = (mask != init).any(1)
        assert (e1.abs()[moved] < e0.abs()[moved]).all()
        # N:M (same-sign check by default): the sign is kept; |e| may grow (see the hand-worked case).
        init = run(weight, stats, NM(2, 4), 0.5, max_cycle_time=0).mask
        mask = run(weight, stats, NM(2, 4), 0.5).mask
        e0, e1 = expected_error(weight, stats, init), expected_error(weight, stats, mask)
        assert (torch.sign(e1) == torch.sign(e0)).all()


@pytest.mark.parametrize(("pattern", "sparsity"), [(Unstructured(), 0.6), (NM(2, 4), 0.5)])
@pytest.mark.parametrize("init", ["wanda", "magnitude"])
def test_zero_cycles_is_the_initial_method(pattern, sparsity, init):
    weight, stats = layer()
    mask = run(weight, stats, pattern, sparsity, init=init, max_cycle_time=0).mask
    if init == "wanda":
        ref = (
            PRUNERS.get("wanda")()
            .prune_layer(
                weight,
                stats,
                pattern=pattern,
                sparsity=sparsity,
                shape=weight.shape,
                name="w",
                generator=torch.Generator(),
            )
            .mask
        )
    else:
        ref = st.select(weight.abs(), pattern, sparsity, group="row")
    assert torch.equal(mask, ref)


def test_deterministic_and_input_untouched():
    weight, stats = layer(8, 32)
    before = weight.clone()
    a, b = run(weight, stats), run(weight, stats)
    assert torch.equal(a.mask, b.mask) and torch.equal(a.weight, b.weight)
    assert torch.equal(weight, before)
    assert a.mask.dtype == torch.bool and torch.equal(a.weight, weight * a.mask)


def test_constant_input_is_grown_first_and_no_nan():
    # Input 3 is constant (variance 0): D / Var = +inf, so it is grown first (its correction is exact).
    weight = torch.tensor([[1.0, -0.9, 0.2, 0.3, 0.25, 0.8]])
    stats = hand_stats([1.0] * 6, [1.0, 1.0, 1.0, 0.0, 0.5, 1.0])
    mask = run(weight, stats, sparsity=0.5, max_cycle_time=1).mask
    assert mask[0].tolist() == [True, False, False, True, False, True]


def test_config_validation_and_refused_patterns():
    assert DSnoTConfig() == DSnoTConfig("wanda", 50, 0.1, 1.0, None)
    with pytest.raises(ValueError, match="sparsegpt"):
        DSnoTConfig(init="sparsegpt")
    for bad in [
        {"init": "random"},
        {"max_cycle_time": -1},
        {"max_cycle_time": 2.5},
        {"update_threshold": -0.1},
        {"pow_of_var_regrowing": float("nan")},
        {"without_same_sign": "no"},
    ]:
        with pytest.raises(ValueError, match="dsnot"):
            DSnoTConfig(**bad)
    weight, stats = layer(8, 16)
    with pytest.raises(ValueError, match="pattern"):
        run(weight, stats, Block(4, 4), 0.5)
    cls = PRUNERS.get("dsnot")
    assert (cls.paper, cls.needs_calibration, cls.group, cls.supports_global) == ("dsnot", True, "row", False)


# --- through `prune` ---------------------------------------------------------------------------


def mlp():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 16), nn.ReLU(), nn.Linear(16, 4))


def test_prune_integration():
    calibration = torch.randn(64, 16, generator=torch.Generator().manual_seed(1)) + 1.0
    model = mlp()
    report = st.prune(model, "dsnot", 0.6, calibration=calibration)
    masks = st.get_masks(model)
    assert set(masks) == {"0.weight", "2.weight"}
    for mask in masks.values():
        assert ((~mask).sum(1) == round(0.6 * mask.shape[1])).all()
    assert all(r.error is not None and 0.0 <= r.error < 10 for r in report.layers)
    assert torch.isfinite(model(torch.randn(3, 16))).all()
    assert report.config["init"] == "wanda"

    # No cycles is Wanda through the same block-sequential pipeline; the default moves some weights.
    base, zero = mlp(), mlp()
    st.prune(base, "wanda", 0.6, calibration=calibration)
    st.prune(zero, "dsnot", 0.6, calibration=calibration, max_cycle_time=0)
    assert all(torch.equal(st.get_masks(zero)[k], st.get_masks(base)[k]) for k in masks)
    assert any(not torch.equal(masks[k], st.get_masks(base)[k]) for k in masks)

    nm = mlp()
    st.prune(nm, "dsnot", pattern="2:4", sparsity=None, calibration=calibration)
    for mask in st.get_masks(nm).values():
        assert (mask.reshape(mask.shape[0], -1, 4).sum(-1) == 2).all()
