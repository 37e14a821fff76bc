"""`select` and the patterns: exact counts, N:M along the input dim, blocks, channels, ties, errors."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from sparsetorch.patterns import NM, Block, Channel, Unstructured, keep_top, n_pruned, parse_pattern, select


@pytest.mark.parametrize(
    ("text", "pattern"),
    [
        ("2:4", NM(2, 4)),
        ("unstructured", Unstructured()),
        ("block4x4", Block(4, 4)),
        ("channel", Channel(0)),
        ("channel:1", Channel(1)),
        (" 1:8 ", NM(1, 8)),
    ],
)
def test_parse_pattern_round_trips(text, pattern):
    assert parse_pattern(text) == pattern
    assert parse_pattern(str(pattern)) == pattern


@pytest.mark.parametrize("bad", ["4:2", "2:2", "0:4", "blockx4", "channels", "50%"])
def test_parse_pattern_rejects_nonsense(bad):
    with pytest.raises(ValueError):
        parse_pattern(bad)


def test_nm_keeps_n_of_every_m_consecutive_inputs():
    # Row 0 scores rise along the input dimension: in each group of 4 the last 2 are kept.
    scores = torch.arange(16.0).repeat(3, 1)  # (out=3, in=16)
    mask = select(scores, NM(2, 4))
    assert mask.shape == (3, 16)
    expected = torch.tensor([0, 0, 1, 1] * 4, dtype=torch.bool)
    assert torch.equal(mask[0], expected)
    # The groups run along dim 1 (inputs), not dim 0 (outputs): a 1:4 pattern on a (4, 4) weight
    # whose column 2 is largest keeps exactly column 2 in every row.
    w = torch.zeros(4, 4)
    w[:, 2] = 1.0
    assert torch.equal(select(w, "1:4"), w.bool())


def test_nm_conv_groups_input_channels_per_position():
    scores = torch.randn(8, 16, 3, 3, generator=torch.Generator().manual_seed(0))
    mask = select(scores, NM(2, 4))
    groups = mask.movedim(1, -1).reshape(-1, 4)  # (out * kh * kw * in/4, 4)
    assert (groups.sum(-1) == 2).all()


def test_nm_rejects_a_different_sparsity():
    with pytest.raises(ValueError, match=r"sparsity 0\.5"):
        select(torch.randn(4, 8), "2:4", 0.7)


def test_block_and_channel():
    scores = torch.zeros(4, 6)
    scores[2:4, 0:3] = 5.0
    mask = select(scores, Block(2, 3), 0.75)
    assert mask.sum() == 6 and mask[2:4, 0:3].all()
    rows = select(torch.tensor([[1.0, 1], [5, 5], [0, 0]]), Channel(0), 1 / 3)
    assert rows.tolist() == [[True, True], [True, True], [False, False]]
    cols = select(torch.tensor([[1.0, 9], [1, 9]]), Channel(1), 0.5)
    assert cols.tolist() == [[False, True], [False, True]]


def test_row_group_prunes_each_row_equally():
    scores = torch.tensor([[10.0, 20, 30, 40], [1, 2, 3, 4]])
    per_tensor = select(scores, "unstructured", 0.5)
    per_row = select(scores, "unstructured", 0.5, group="row")
    assert per_tensor.tolist() == [[True] * 4, [False] * 4]
    assert per_row.tolist() == [[False, False, True, True]] * 2


def test_ties_keep_exact_count_and_earlier_elements():
    scores = torch.ones(10)
    mask = select(scores, "unstructured", 0.3)
    assert mask.sum() == 7
    assert mask.tolist() == [True] * 7 + [False] * 3
    assert torch.equal(select(scores, "unstructured", 0.3), mask)  # deterministic


@pytest.mark.parametrize(
    ("scores", "pattern", "sparsity", "message"),
    [
        (torch.ones(4, 4), "unstructured", 1.0, r"\[0, 1\)"),
        (torch.ones(4, 4), "unstructured", -0.1, r"\[0, 1\)"),
        (torch.ones(4, 6), "2:4", None, "input dimension 6 is not divisible by m=4"),
        (torch.ones(4, 6), "block4x4", 0.5, "not divisible by the 4x4 block"),
        (torch.ones(8), "2:4", None, "rank >= 2"),
        (torch.ones(4), "block2x2", 0.5, "2-D"),
        (torch.ones(4), Channel(1), 0.5, "rank > 1"),
        (torch.tensor([[1.0, float("nan")]]), "unstructured", 0.5, "NaN"),
    ],
)
def test_bad_input_names_tensor_and_problem(scores, pattern, sparsity, message):
    with pytest.raises(ValueError, match=message) as err:
        select(scores, pattern, sparsity, name="layer.weight")
    assert "layer.weight" in str(err.value)


# --- properties ---------------------------------------------------------------------------------

shapes = st.tuples(st.integers(1, 9), st.integers(1, 9))
sparsities = st.floats(0.0, 0.999, allow_nan=False)


@settings(max_examples=60, deadline=None)
@given(shape=shapes, sparsity=sparsities, seed=st.integers(0, 2**16), levels=st.integers(1, 4))
def test_unstructured_density_is_exact_even_with_ties(shape, sparsity, seed, levels):
    g = torch.Generator().manual_seed(seed)
    scores = torch.randint(0, levels, shape, generator=g).float()  # few levels: many ties
    mask = select(scores, "unstructured", sparsity)
    numel = math.prod(shape)
    assert int((~mask).sum()) == n_pruned(numel, sparsity)
    # Every kept score is >= every pruned score.
    if mask.any() and (~mask).any():
        assert scores[mask].min() >= scores[~mask].max()


@settings(max_examples=40, deadline=None)
@given(
    out=st.integers(1, 6),
    groups=st.integers(1, 5),
    nm=st.sampled_from([(1, 2), (2, 4), (1, 4), (2, 8)]),
    seed=st.integers(0, 2**16),
)
def test_nm_invariant(out, groups, nm, seed):
    n, m = nm
    scores = torch.randint(0, 3, (out, groups * m), generator=torch.Generator().manual_seed(seed)).float()
    mask = select(scores, NM(n, m))
    assert (mask.reshape(out, groups, m).sum(-1) == n).all()


@settings(max_examples=40, deadline=None)
@given(
    bh=st.integers(1, 3),
    bw=st.integers(1, 3),
    nh=st.integers(1, 4),
    nw=st.integers(1, 4),
    sparsity=sparsities,
    seed=st.integers(0, 2**16),
)
def test_block_invariant(bh, bw, nh, nw, sparsity, seed):
    scores = torch.rand(bh * nh, bw * nw, generator=torch.Generator().manual_seed(seed))
    mask = select(scores, Block(bh, bw), sparsity)
    tiles = mask.reshape(nh, bh, nw, bw).permute(0, 2, 1, 3).reshape(nh * nw, bh * bw)
    assert ((tiles.all(-1)) | (~tiles.any(-1))).all()  # each tile all kept or all dropped
    assert int((~tiles.all(-1)).sum()) == n_pruned(nh * nw, sparsity)


# --- keep_top: the one top-k rule -------------------------------------------------------------------


def test_keep_top_ties_keep_the_earlier_element():
    scores = torch.tensor([[1.0, 3.0, 3.0, 3.0, 0.0], [2.0, 2.0, 2.0, 2.0, 2.0]])
    assert keep_top(scores, 2).tolist() == [
        [False, True, True, False, False],
        [True, True, False, False, False],
    ]
    # along dim 0 of the transpose: the same slices, the same winners
    assert keep_top(scores.T, 1, dim=0).T.tolist() == [
        [False, True, False, False, False],
        [True, False, False, False, False],
    ]


@pytest.mark.parametrize("dim", [0, 1, -1])
def test_keep_top_edges_k_zero_and_k_n(dim):
    scores = torch.randn(3, 4, generator=torch.Generator().manual_seed(0))
    n = scores.shape[dim]
    assert not keep_top(scores, 0, dim=dim).any()
    assert keep_top(scores, n, dim=dim).all()
    assert keep_top(torch.tensor(5.0), 1).item() is True  # a 0-d tensor is one slice of one
    for bad in (-1, n + 1, 1.5, True):
        with pytest.raises(ValueError, match=rf"k must be an integer in \[0, {n}\]"):
            keep_top(scores, bad, dim=dim)


@settings(max_examples=40, deadline=None)
@given(
    rows=st.integers(1, 4),
    n=st.integers(1, 12),
    levels=st.integers(1, 4),
    seed=st.integers(0, 10_000),
    data=st.data(),
)
def test_keep_top_matches_a_stable_sort(rows, n, levels, seed, data):
    k = data.draw(st.integers(0, n))
    g = torch.Generator().manual_seed(seed)
    scores = torch.randint(0, levels, (rows, n), generator=g).float()  # many ties
    order = torch.sort(scores, dim=1, descending=True, stable=True).indices[:, :k]
    expected = torch.zeros(rows, n, dtype=torch.bool).scatter_(1, order, True)
    assert torch.equal(keep_top(scores, k), expected)


def test_select_training_and_kwta_share_keep_top():
    from sparsetorch.activations.kwta import topk_mask
    from sparsetorch.training.ops import keep_top_among as keep_among

    scores = torch.tensor([[5.0, 1.0, 5.0, 5.0], [0.0, 0.0, 7.0, 0.0]])
    expected = keep_top(scores, 2)
    assert torch.equal(topk_mask(scores, 2), expected)
    assert torch.equal(select(scores, "unstructured", 0.5, group="row"), expected)
    assert torch.equal(keep_among(scores[0], 2), expected[0])
