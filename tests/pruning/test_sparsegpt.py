"""SparseGPT against a straightforward independent implementation, exact counts, failures, integration."""

import pytest
import torch
from torch import nn

import sparsetorch as st
import sparsetorch.pruning.sparsegpt as sgpt
from sparsetorch.models import create_model
from sparsetorch.patterns import NM, Block, Channel, Unstructured
from sparsetorch.pruning import PRUNERS, LayerStats
from sparsetorch.pruning.calibration import reconstruction_error


def reference_sparsegpt(weight, xtx, *, sparsity=None, nm=None, block_size=128, damp=0.01):
    """Plain OBS column by column: dense inverses of H[j:, j:], no Cholesky, no lazy batching.

    Removing column j from the problem over columns j.. uses Hj = inv(H[j:, j:]): saliency
    w^2 / Hj[0, 0], update W[:, j:] -= (w - q) / Hj[0, 0] * Hj[0, :]. Unstructured masks are chosen
    at each block start over the rows x block slab (count rounded over cumulative columns); N:M at
    each group start, per row, from the weights as updated so far.
    """
    w = weight.double().clone()
    h = xtx.double().clone()
    rows, cols = w.shape
    for j in range(cols):
        if h[j, j] == 0:
            h[j, j] = 1.0
            w[:, j] = 0.0
    h = h + damp * h.diagonal().mean() * torch.eye(cols, dtype=torch.float64)
    pruned = torch.zeros(rows, cols, dtype=torch.bool)

    def saliency(c):
        return w[:, c] ** 2 / torch.linalg.inv(h[c:, c:])[0, 0]

    for j in range(cols):
        if nm is None and j % block_size == 0:
            end = min(j + block_size, cols)
            slab = torch.stack([saliency(c) for c in range(j, end)], dim=1)
            count = min(rows * end, round(sparsity * rows * end)) - min(rows * j, round(sparsity * rows * j))
            flat = torch.zeros(slab.numel(), dtype=torch.bool)
            flat[torch.argsort(slab.reshape(-1))[:count]] = True
            pruned[:, j:end] = flat.reshape(slab.shape)
        if nm is not None and j % nm[1] == 0:
            n, m = nm
            group = torch.stack([saliency(c) for c in range(j, j + m)], dim=1)
            for r in range(rows):
                pruned[r, j + torch.argsort(group[r])[: m - n]] = True
        hj = torch.linalg.inv(h[j:, j:])
        q = torch.where(pruned[:, j], 0.0, w[:, j])
        w[:, j:] -= ((w[:, j] - q) / hj[0, 0])[:, None] * hj[0][None, :]
        w[:, j] = q
    return ~pruned, w


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Many small tensor ops: one thread avoids OpenMP spin-waiting on a shared 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def layer(out, inp, seed, tokens=64, dead=()):
    g = torch.Generator().manual_seed(seed)
    mix = torch.randn(inp, inp, generator=g) / inp**0.5
    x = torch.randn(tokens, inp, generator=g) @ (torch.eye(inp) + 2 * mix)  # correlated inputs
    x[:, list(dead)] = 0.0
    stats = LayerStats(inp)
    stats.update(x)
    return torch.randn(out, inp, generator=g), stats


CASES = [  # (out, in, block_size, pattern, sparsity, dead inputs)
    (8, 16, 4, Unstructured(), 0.5, ()),
    (8, 16, 8, Unstructured(), 0.7, (3,)),
    (16, 32, 8, Unstructured(), 0.5, ()),
    (16, 20, 8, Unstructured(), 0.35, (0, 19)),  # a short last block
    (8, 16, 4, NM(2, 4), 0.5, ()),
    (16, 32, 8, NM(2, 4), 0.5, (5,)),
    (8, 16, 8, NM(1, 4), 0.75, ()),
]


@pytest.mark.parametrize(("out", "inp", "block", "pattern", "sparsity", "dead"), CASES)
def test_masks_and_weights_equal_reference(out, inp, block, pattern, sparsity, dead):
    weight, stats = layer(out, inp, seed=out + inp + block, dead=dead)
    nm = (pattern.n, pattern.m) if isinstance(pattern, NM) else None
    ref_mask, ref_weight = reference_sparsegpt(weight, stats.xtx, sparsity=sparsity, nm=nm, block_size=block)
    got = sgpt.sparsegpt_prune(
        weight.double(), stats.xtx, pattern=pattern, sparsity=sparsity, block_size=block, name="fc"
    )
    assert torch.equal(got.mask, ref_mask)
    torch.testing.assert_close(got.weight, torch.where(ref_mask, ref_weight, 0.0), rtol=1e-9, atol=1e-10)
    # the registered method agrees (fp32 in and out)
    res = prune_layer("sparsegpt", weight, stats, pattern, sparsity, block_size=block)
    assert torch.equal(res.mask, ref_mask) and res.weight.dtype == torch.float32
    assert not res.weight[~res.mask].any()


@pytest.mark.parametrize("sparsity", [0.1, 0.33, 0.5, 0.77, 0.9])
@pytest.mark.parametrize("block", [3, 8, 128])
def test_unstructured_count_exact(sparsity, block):
    weight, stats = layer(6, 23, seed=3)
    got = sgpt.sparsegpt_prune(weight, stats.xtx, pattern=Unstructured(), sparsity=sparsity, block_size=block)
    assert int((~got.mask).sum()) == round(sparsity * weight.numel())


def test_nm_groups_exact():
    weight, stats = layer(8, 32, seed=4)
    got = sgpt.sparsegpt_prune(weight, stats.xtx, pattern=NM(2, 4), sparsity=0.5, block_size=16)
    assert (got.mask.reshape(8, 8, 4).sum(-1) == 2).all()


def test_error_lower_than_wanda_and_magnitude_on_correlated_inputs():
    weight, stats = layer(32, 64, seed=5, tokens=256)
    errors = {}
    for method in ("sparsegpt", "wanda", "magnitude"):
        for pattern in (Unstructured(), NM(2, 4)):
            res = prune_layer(method, weight, stats, pattern)
            errors[method, str(pattern)] = reconstruction_error(
                weight, torch.where(res.mask, res.weight, 0), stats
            )
    for pattern in ("unstructured", "2:4"):
        assert errors["sparsegpt", pattern] < errors["wanda", pattern], errors
        assert errors["sparsegpt", pattern] < errors["magnitude", pattern], errors


def prune_layer(method, weight, stats, pattern, sparsity=0.5, name="fc", **config):
    return PRUNERS.get(method)(**config).prune_layer(
        weight,
        stats,
        pattern=pattern,
        sparsity=sparsity,
        shape=weight.shape,
        name=name,
        generator=torch.Generator(),
    )


def crafted(xtx):
    stats = LayerStats(xtx.shape[0])
    stats.xtx = xtx.float()
    stats.rows = 1
    return stats


def test_cholesky_failure_raises_with_layer_name():
    stats = crafted(torch.tensor([[1.0, 1000.0], [1000.0, 1.0]]))  # eigenvalue -999: no damping saves it
    with pytest.raises(ValueError, match=r"blocks\.3\.mlp\.fc.*not positive definite"):
        prune_layer("sparsegpt", torch.ones(4, 2), stats, Unstructured(), name="blocks.3.mlp.fc")


def test_cholesky_retries_warn_then_succeed(monkeypatch):
    stats = crafted(torch.tensor([[1.0, 5.0], [5.0, 1.0]]))  # needs damping > 4 x mean diag: the 3rd retry
    with pytest.warns(RuntimeWarning, match="fc.*dampening_frac=10"):
        res = prune_layer("sparsegpt", torch.ones(4, 2), stats, Unstructured())
    assert int((~res.mask).sum()) == 4
    monkeypatch.setattr(sgpt, "CHOLESKY_RETRIES", 2)
    with pytest.raises(ValueError, match="fc"):
        prune_layer("sparsegpt", torch.ones(4, 2), stats, Unstructured())


def test_refuses_other_patterns_and_bad_config():
    weight, stats = layer(8, 16, seed=6)
    for pattern in (Block(4, 4), Channel(0)):
        with pytest.raises(ValueError, match="supports unstructured and N:M"):
            prune_layer("sparsegpt", weight, stats, pattern)
    with pytest.raises(ValueError, match="block_size"):
        prune_layer("sparsegpt", weight, stats, NM(2, 4), block_size=6)
    for bad in (dict(block_size=0), dict(block_size=2.0), dict(dampening_frac=0.0), dict(dampening_frac=-1)):
        with pytest.raises(ValueError):
            PRUNERS.get("sparsegpt")(**bad)


def test_prune_mlp_and_tiny_gpt():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 16), nn.ReLU(), nn.Linear(16, 4))
    rep = st.prune(model, "sparsegpt", 0.5, calibration=torch.randn(64, 16))
    assert rep.report.params - rep.report.nonzeros == round(0.5 * rep.report.params)
    assert all(r.error is not None and 0 <= r.error < 1 for r in rep.layers)
    assert torch.isfinite(model(torch.randn(3, 16))).all()

    gpt = create_model("gpt-tiny", n_layer=2, d_model=32, n_head=2, block_size=16, seed=0)
    rep = st.prune(gpt, "sparsegpt", pattern="2:4", calibration=torch.randint(0, 256, (8, 16)))
    masks = st.get_masks(gpt)
    assert masks and all((m.reshape(m.shape[0], -1, 4).sum(-1) == 2).all() for m in masks.values())
    assert all(r.error is not None and r.error < 1 for r in rep.layers)
    assert torch.isfinite(gpt(torch.randint(0, 256, (2, 16)))).all()
