"""The SDR type: construction, algebra, random draws and noise."""

from __future__ import annotations

import math

import pytest
import torch

from sparsetorch.sdr import SDR, random_sdr


def g(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_from_dense_accepts_binary_tensors_of_any_dtype():
    for x in (
        torch.tensor([0, 1, 1, 0]),
        torch.tensor([0.0, 1.0, 1.0, 0.0]),
        torch.tensor([False, True, True, False]),
    ):
        sdr = SDR.from_dense(x)
        assert sdr.dense.dtype == torch.bool and sdr.dense.tolist() == [False, True, True, False]
    assert SDR.from_dense([[1, 0], [0, 1]]).batch_shape == (2,)


@pytest.mark.parametrize(
    "bad", [torch.tensor([0.0, 0.5]), torch.tensor([0, 2]), torch.tensor([1.0, float("nan")])]
)
def test_from_dense_refuses_non_binary_input(bad):
    with pytest.raises(ValueError, match="binary"):
        SDR.from_dense(bad)


def test_the_constructor_wants_bool_with_at_least_one_bit():
    with pytest.raises(ValueError, match="bool"):
        SDR(torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="at least one bit"):
        SDR(torch.zeros(3, 0, dtype=torch.bool))


def test_indices_round_trip():
    sdr = SDR.from_indices(torch.tensor([[7, 2, 5], [0, 9, 1]]), 10)
    assert sdr.n == 10 and sdr.active.tolist() == [3, 3]
    assert sdr.indices().tolist() == [[2, 5, 7], [0, 1, 9]]
    assert SDR.from_indices(torch.tensor([], dtype=torch.long), 4).active.item() == 0


@pytest.mark.parametrize(
    ("indices", "message"),
    [
        (torch.tensor([0, 10]), r"\[0, 10\)"),
        (torch.tensor([-1, 3]), r"\[0, 10\)"),
        (torch.tensor([3, 3]), "repeat"),
        (torch.tensor([1.0, 2.0]), "integer"),
    ],
)
def test_from_indices_refuses_bad_indices(indices, message):
    with pytest.raises(ValueError, match=message):
        SDR.from_indices(indices, 10)


def test_indices_need_equal_counts():
    with pytest.raises(ValueError, match="same number"):
        SDR.from_dense([[1, 1, 0], [1, 0, 0]]).indices()


def test_overlap_union_intersection_by_hand():
    x = SDR.from_indices(torch.tensor([0, 1, 2, 3]), 8)
    y = SDR.from_indices(torch.tensor([2, 3, 4]), 8)
    assert x.overlap(y).item() == 2
    assert (x | y).indices().tolist() == [0, 1, 2, 3, 4]
    assert (x & y).indices().tolist() == [2, 3]
    assert x.union(y, SDR.from_indices(torch.tensor([7]), 8)).active.item() == 6
    batch = SDR.from_indices(torch.tensor([[0, 1], [4, 5], [2, 6]]), 8)
    assert batch.overlap(x).tolist() == [2, 0, 1]  # broadcasting a single SDR over a batch
    assert batch.union_along(0).indices().tolist() == [0, 1, 2, 4, 5, 6]


def test_statistics():
    x = SDR.from_indices(torch.tensor([[0, 1], [2, 3]]), 8)
    assert x.density.tolist() == [0.25, 0.25]
    assert torch.allclose(x.sparsity + x.density, torch.ones(2, dtype=torch.float64))
    assert x[1].indices().tolist() == [2, 3]
    assert "n=8" in repr(x) and "a=2" in repr(x)
    with pytest.raises(IndexError):
        x[0][0]


def test_size_mismatch_and_wrong_types_are_refused():
    x = random_sdr(10, 2, generator=g())
    with pytest.raises(ValueError, match="sizes differ"):
        x.overlap(random_sdr(11, 2, generator=g()))
    with pytest.raises(TypeError, match="SDR"):
        x.union(torch.ones(10, dtype=torch.bool))
    with pytest.raises(ValueError, match="batch"):
        x.union_along(0)


def test_random_sdr_has_exactly_a_bits_and_is_seeded():
    x = random_sdr(1000, 20, batch=(64,), generator=g(1))
    assert x.dense.shape == (64, 1000) and bool((x.active == 20).all())
    assert torch.equal(x.dense, random_sdr(1000, 20, batch=(64,), generator=g(1)).dense)
    assert not torch.equal(x.dense, random_sdr(1000, 20, batch=(64,), generator=g(2)).dense)
    assert random_sdr(5, 0, generator=g()).active.item() == 0
    assert random_sdr(5, 5, generator=g()).active.item() == 5


def test_random_sdr_is_uniform_over_bits():
    counts = random_sdr(50, 5, batch=(20_000,), generator=g(3)).dense.sum(0).double()
    expected = 20_000 * 5 / 50
    chi2 = ((counts - expected) ** 2 / expected).sum().item()
    assert chi2 < 49 + 6 * math.sqrt(2 * 49)  # 49 degrees of freedom, about 6 sigma


def test_random_overlap_is_hypergeometric():
    n, a, trials = 400, 40, 5000
    x = random_sdr(n, a, batch=(trials,), generator=g(4))
    y = random_sdr(n, a, batch=(trials,), generator=g(5))
    overlap = x.overlap(y).double()
    mean = a * a / n
    var = a * (a / n) * (1 - a / n) * (n - a) / (n - 1)
    assert abs(overlap.mean().item() - mean) < 5 * math.sqrt(var / trials)
    assert overlap.var().item() == pytest.approx(var, rel=0.1)


def test_random_sdr_works_at_a_million_bits():
    x = random_sdr(10**6, 20_000, generator=g(6))
    assert x.active.item() == 20_000 and x.indices().shape == (20_000,)


def test_random_sdr_refuses_bad_sizes():
    with pytest.raises(ValueError, match="exceeds"):
        random_sdr(10, 11, generator=g())
    with pytest.raises(ValueError, match="n must be >= 1"):
        random_sdr(0, 0, generator=g())
    with pytest.raises(TypeError, match="integer"):
        random_sdr(10, 2.0, generator=g())


def test_subsample_keeps_k_of_the_active_bits():
    x = random_sdr(200, 30, batch=(16,), generator=g(7))
    sub = x.subsample(10, generator=g(8))
    assert bool((sub.active == 10).all()) and bool((sub.overlap(x) == 10).all())
    assert torch.equal(sub.dense, x.subsample(10, generator=g(8)).dense)
    with pytest.raises(ValueError, match="only 30 active"):
        x.subsample(31, generator=g())
    with pytest.raises(ValueError, match="k must be >= 0"):
        x.subsample(-1, generator=g())


def test_subsample_is_uniform_over_the_active_bits():
    x = SDR.from_indices(torch.arange(10), 20)
    hits = x.subsample(3, generator=g(9)).dense  # shape (20,)
    assert hits[10:].sum() == 0
    many = SDR(x.dense.expand(30_000, 20).clone()).subsample(3, generator=g(10)).dense.sum(0)[:10].double()
    assert torch.allclose(many / 30_000, torch.full((10,), 0.3, dtype=torch.float64), atol=0.015)


def test_add_noise_moves_exactly_v_bits():
    x = random_sdr(500, 40, batch=(32,), generator=g(11))
    noisy = x.add_noise(12, generator=g(12))
    assert bool((noisy.active == 40).all())
    assert bool((noisy.overlap(x) == 28).all())
    assert torch.equal(x.add_noise(0, generator=g()).dense, x.dense)
    with pytest.raises(ValueError, match="cannot move"):
        x.add_noise(41, generator=g())
    with pytest.raises(ValueError, match="cannot move"):
        SDR.from_dense(torch.tensor([1, 1, 1, 0])).add_noise(2, generator=g())
