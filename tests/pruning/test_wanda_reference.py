"""Wanda on real all-MiniLM-L6-v2 weights against the reference selection rule.

The reference is the rule as the Wanda paper's code (locuslab/wanda `prune_wanda`) and llm-compressor's
`wanda_sparsify` apply it: score S_ij = |W_ij| * ||X_j||_2 per input column j, compared within each
output row i; unstructured, a stable ascending sort of the row prunes its first int(in * sparsity)
entries; under 2:4, `topk(2, largest=False)` of each group of 4 consecutive inputs is pruned. On an
exact fp32 tie at the cut the stable sort prunes the earlier element (topk's choice is unspecified),
where sparsetorch keeps it (documented in `sparsetorch.pruning.wanda`): the masks must be identical
except at such ties, and at the ties ours must follow our rule.

The statistics are captured here, independently of sparsetorch's calibration code: block i's Linear
inputs come from a plain forward of the model with blocks < i pruned by sparsetorch's own masks (so
that a tie decided differently upstream cannot change the inputs downstream) and block i dense, as in
the block-sequential reference code. ||X_j||^2 is accumulated as sparsetorch accumulates it (fp32
squares summed in fp64; the paper's 1/n scale does not change a ranking), so that a rounding
difference in the statistics cannot flip a near tie and be mistaken for a rule difference.
"""

from __future__ import annotations

import contextlib
import copy
from functools import partial

import numpy as np
import pytest
import torch
from torch import Tensor, nn

import sparsetorch as st
from sparsetorch.pruning.calibration_data import text_windows

SAMPLES, SEQ_LEN, BATCH = 4, 32, 2  # a few windows, two batches: the rule is tested, not the statistics
SPARSITY = 0.5


@pytest.fixture(scope="module")
def minilm() -> tuple[nn.Module, Tensor]:
    from sparsetorch.models.hf import load_minilm

    model, _ = load_minilm()
    windows = text_windows(model, "stdlib-docstrings", samples=SAMPLES, seq_len=SEQ_LEN, seed=0)
    return model, windows


# --- the reference rule ---------------------------------------------------------------------------


def groups_of(scores: Tensor, pattern: str) -> Tensor:
    """The comparison groups as rows: each output row, or each group of m consecutive inputs of a row."""
    if pattern == "2:4":
        return scores.reshape(-1, 4)
    return scores


def reference_kept(scores: Tensor, pattern: str) -> Tensor:
    """The reference code's kept mask: the lowest half of each group is pruned (stable sort / topk)."""
    groups = groups_of(scores, pattern)
    if pattern == "2:4":
        pruned_idx = torch.topk(groups, 2, dim=-1, largest=False).indices
    else:
        pruned_idx = torch.sort(groups, dim=-1, stable=True).indices[:, : int(groups.shape[1] * SPARSITY)]
    pruned = torch.zeros_like(groups, dtype=torch.bool).scatter_(-1, pruned_idx, True)
    return ~pruned.reshape(scores.shape)


def earlier_kept(scores: Tensor, pattern: str) -> Tensor:
    """The same selection with sparsetorch's tie rule, by a lexicographic sort: lowest score first and,
    among equal scores, the later element first, so the earlier one is kept."""
    groups = groups_of(scores, pattern).numpy()
    index = np.broadcast_to(np.arange(groups.shape[1]), groups.shape)
    order = np.lexsort((-index, groups), axis=-1)[:, : groups.shape[1] // 2]
    kept = np.ones(groups.shape, dtype=bool)
    np.put_along_axis(kept, order, False, axis=-1)
    return torch.from_numpy(kept).reshape(scores.shape)


def tied_at_cut(scores: Tensor, pattern: str) -> Tensor:
    """Entries whose score equals both the last pruned and the first kept score of their group."""
    groups = groups_of(scores, pattern)
    k = groups.shape[1] // 2
    ordered = groups.sort(dim=-1).values
    low, high = ordered[:, k - 1 : k], ordered[:, k : k + 1]
    return ((low == high) & (groups == low)).reshape(scores.shape)


# --- statistics captured from the model -----------------------------------------------------------


class _Stop(Exception):
    """Ends a forward pass after the block of interest."""


def _stop(module: nn.Module, args: tuple, out: object) -> None:
    raise _Stop


def block_input_norms(model: nn.Module, block: nn.Module, prefix: str, windows: Tensor) -> dict[str, Tensor]:
    """||X_j||_2 of every Linear in `block`, over the calibration batches of a plain model forward."""
    sq: dict[str, Tensor] = {}

    def record(module: nn.Module, args: tuple, fqn: str) -> None:
        x = args[0].detach().float().reshape(-1, args[0].shape[-1])
        sq[fqn] = sq.get(fqn, 0) + x.pow(2).sum(0, dtype=torch.float64)

    handles = [
        m.register_forward_pre_hook(partial(record, fqn=f"{prefix}.{name}.weight"))
        for name, m in block.named_modules()
        if isinstance(m, nn.Linear)
    ]
    handles.append(block.register_forward_hook(_stop))  # later blocks do not matter here
    try:
        with torch.no_grad():
            for batch in windows.split(BATCH):
                with contextlib.suppress(_Stop):
                    model(input_ids=batch)
    finally:
        for h in handles:
            h.remove()
    return {fqn: v.sqrt().float() for fqn, v in sq.items()}


def reference_scores(dense: nn.Module, ours: dict[str, Tensor], windows: Tensor) -> dict[str, Tensor]:
    """Wanda scores of every pruned layer, block by block, with earlier blocks pruned by `ours`."""
    model = copy.deepcopy(dense)
    scores: dict[str, Tensor] = {}
    for i, block in enumerate(model.encoder.layer):
        prefix = f"encoder.layer.{i}"
        norms = block_input_norms(model, block, prefix, windows)
        for fqn, norm in norms.items():
            if fqn in ours:
                scores[fqn] = dense.get_parameter(fqn).detach().float().abs() * norm.reshape(1, -1)
        with torch.no_grad():
            for fqn in norms.keys() & ours.keys():
                weight = model.get_parameter(fqn)
                weight.copy_(torch.where(ours[fqn], weight, 0.0))
    return scores


# --- tests ----------------------------------------------------------------------------------------


def test_reference_rules_on_a_tie():
    scores = torch.tensor([[1.0, 2.0, 2.0, 3.0]])  # 2 and 2 tie at the cut
    assert reference_kept(scores, "unstructured").tolist() == [[False, False, True, True]]
    assert earlier_kept(scores, "unstructured").tolist() == [[False, True, False, True]]
    assert tied_at_cut(scores, "unstructured").tolist() == [[False, True, True, False]]


@pytest.mark.parametrize("pattern", ["unstructured", "2:4"])
def test_ties_keep_the_earlier_element(pattern):
    """Small integer weights and equal input norms: many exact ties at the cut, decided by our rule."""
    layer = nn.Linear(32, 16, bias=False)
    with torch.no_grad():
        layer.weight.copy_(torch.randint(-3, 4, (16, 32), generator=torch.Generator().manual_seed(0)).float())
    score = layer.weight.detach().abs() * 2.0  # ||X_j|| = 2 for 4 rows of ones
    sparsity = SPARSITY if pattern == "unstructured" else None
    st.prune(layer, "wanda", sparsity, pattern, calibration=torch.ones(4, 32), targets="weight")
    ours = st.get_masks(layer)["weight"]
    differ = ours != reference_kept(score, pattern)
    assert int(tied_at_cut(score, pattern).sum()) > 50
    if pattern == "unstructured":  # the reference's stable sort prunes the earlier of two ties
        assert differ.any()
    assert not (differ & ~tied_at_cut(score, pattern)).any()
    assert torch.equal(ours, earlier_kept(score, pattern))


@pytest.mark.data
@pytest.mark.slow
@pytest.mark.parametrize("pattern", ["unstructured", "2:4"])
def test_wanda_masks_equal_the_reference_rule_on_minilm(minilm, pattern):
    dense, windows = minilm
    model = copy.deepcopy(dense)
    sparsity = SPARSITY if pattern == "unstructured" else None
    st.prune(model, "wanda", sparsity, pattern, calibration=windows, errors=False, batch_size=BATCH)
    ours = {f: m.clone() for f, m in st.get_masks(model).items()}
    scores = reference_scores(dense, ours, windows)
    assert scores.keys() == ours.keys() and len(ours) == 36  # 6 blocks x 6 Linear; the pooler is excluded
    for fqn, score in scores.items():
        differ = ours[fqn] != reference_kept(score, pattern)
        tied = tied_at_cut(score, pattern)
        off_tie = int((differ & ~tied).sum())
        assert off_tie == 0, f"{fqn}: {off_tie} of {differ.numel()} mask entries differ off an exact tie"
        assert torch.equal(ours[fqn], earlier_kept(score, pattern)), f"{fqn}: tie not kept at the earlier"
