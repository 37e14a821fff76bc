"""Sparsey's coding field: the code selection algorithm, single-trial learning, familiarity, bad input."""

from __future__ import annotations

import math

import pytest
import torch

from sparsetorch.sdr.sdr import SDR, random_sdr
from sparsetorch.sdr.sparsey import (
    SparseyConfig,
    SparseyMac,
    binarize_edges,
    code_distribution,
    expansivity,
    global_familiarity,
    similarity_preservation,
    spearman,
    v_to_mu,
)


def g(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def config(**kw) -> SparseyConfig:
    return SparseyConfig(**{"n_inputs": 200, "cms": 12, "units": 40, **kw})


def stored_mac(items: int = 8, *, seed: int = 0, **kw) -> tuple[SparseyMac, SDR, torch.Tensor]:
    mac = SparseyMac(config(**kw))
    x = random_sdr(200, 20, generator=g(seed), batch=(items,))
    return mac, x, mac.store(x, generator=g(seed + 1))


# -- the CSA as pure functions -------------------------------------------------------------------


def test_expansivity_is_one_below_the_floor_and_one_plus_chi_k_at_full_familiarity():
    c = config(g_floor=0.2, expansion_exponent=2.0, expansion_factor=100.0)
    eta = expansivity(torch.tensor([0.0, 0.2, 0.6, 1.0]), config=c)
    assert eta[:2].tolist() == [1.0, 1.0]
    assert eta[2].item() == pytest.approx(1 + 0.25 * 100 * 40)
    assert eta[3].item() == pytest.approx(1 + 100 * 40)
    control = config(familiarity_contingent=False)
    assert expansivity(torch.tensor([0.0, 1.0]), config=control).tolist() == [1.0, 1.0]


def test_v_to_mu_is_a_sigmoid_bounded_by_one_and_eta():
    c = config(sigmoid_inflection=0.8)
    v = torch.linspace(0, 1, 11).view(1, 1, 11)
    eta = torch.tensor([50.0])
    mu = v_to_mu(v, eta, config=c)
    assert bool((mu >= 1).all()) and bool((mu <= 50).all())
    assert bool((mu.diff(dim=-1) > 0).all())  # increasing in V
    half = v_to_mu(torch.full((1, 1, 1), 0.8), eta, config=c)
    assert half.item() == pytest.approx(1 + 49 / 2)  # sigma1 = 1: halfway at the inflection
    assert torch.equal(v_to_mu(v, torch.tensor([1.0]), config=c), torch.ones_like(v))


def test_code_distribution_sums_to_one_and_is_uniform_for_a_novel_input():
    rho = code_distribution(torch.zeros(2, 12, 40), config=config())
    assert torch.allclose(rho, torch.full_like(rho, 1 / 40))
    v = torch.rand(3, 12, 40, generator=g())
    assert torch.allclose(code_distribution(v, config=config()).sum(-1), torch.ones(3, 12))
    assert torch.equal(global_familiarity(torch.tensor([[[0.2, 0.5], [1.0, 0.0]]])), torch.tensor([0.75]))


def test_a_fully_familiar_input_makes_the_max_v_unit_near_certain():
    v = torch.full((1, 12, 40), 0.3)
    v[..., 7] = 1.0  # G = 1
    rho = code_distribution(v, config=config())
    assert bool((rho[..., 7] > 0.95).all())


# -- storage and retrieval ------------------------------------------------------------------------


def test_store_gives_one_winner_per_cm_and_learns_binary_weights_in_one_trial():
    mac, x, winners = stored_mac(5)
    assert winners.shape == (5, 12) and winners.dtype == torch.long
    assert bool(((winners >= 0) & (winners < 40)).all())
    codes = mac.codes(winners)
    assert codes.n == 12 * 40 and codes.active.tolist() == [12] * 5
    assert mac.weights.dtype == torch.bool and int(mac.stored) == 5
    learned = torch.zeros_like(mac.weights)
    for b in range(5):
        learned[torch.arange(12), winners[b]] |= x.dense[b]
    assert torch.equal(mac.weights, learned)  # exactly the winners' weights from the active inputs


def test_same_generator_same_codes_and_weights():
    a, _, wa = stored_mac(6, seed=3)
    b, _, wb = stored_mac(6, seed=3)
    assert torch.equal(wa, wb) and torch.equal(a.weights, b.weights)
    x = random_sdr(200, 20, generator=g(3), batch=(6,))
    c = SparseyMac(config())
    assert not torch.equal(c.store(x, generator=g(99)), wa)


def test_a_stored_input_gets_its_code_back():
    mac, x, winners = stored_mac(10)
    assert torch.allclose(mac.familiarity(x).g, torch.ones(10))  # G = 1 for every stored input
    assert torch.equal(mac.retrieve(x), winners)  # max-V recognition: exactly
    chosen = mac.select(x, generator=g(5))  # the CSA itself, without learning: near-exactly
    assert (chosen == winners).float().mean() >= 0.95


def test_novel_inputs_get_random_codes_and_similar_inputs_similar_codes():
    mac, x, winners = stored_mac(10)
    novel = random_sdr(200, 20, generator=g(77), batch=(10,))
    overlap_novel = (mac.select(novel, generator=g(6)) == winners).float().mean()
    close = x.add_noise(2, generator=g(7))  # 90% of the bits kept
    far = x.add_noise(12, generator=g(8))  # 40% kept
    overlap_close = (mac.select(close, generator=g(9)) == winners).float().mean()
    overlap_far = (mac.select(far, generator=g(10)) == winners).float().mean()
    assert overlap_novel < 0.1
    assert overlap_close > 0.8 > overlap_far
    g_close, g_far, g_novel = (mac.familiarity(s).g.mean() for s in (close, far, novel))
    assert g_close > g_far > g_novel


def test_the_random_code_control_ignores_familiarity():
    mac, x, winners = stored_mac(10, familiarity_contingent=False)
    overlap = (mac.select(x, generator=g(5)) == winners).float().mean()
    assert overlap < 0.15  # about 1/K: a fresh random code, even for a stored input
    assert torch.equal(mac.retrieve(x), winners)  # the memory itself still works


def test_an_empty_mac_codes_uniformly_and_retrieves_the_first_unit():
    mac = SparseyMac(config())
    x = random_sdr(200, 20, generator=g(), batch=(3,))
    familiarity = mac.familiarity(x)
    assert torch.equal(familiarity.g, torch.zeros(3))
    assert torch.equal(mac.retrieve(x), torch.zeros(3, 12, dtype=torch.long))  # ties -> lowest index


def test_state_dict_round_trip():
    mac, x, winners = stored_mac(6)
    fresh = SparseyMac(config())
    fresh.load_state_dict(mac.state_dict())
    assert torch.equal(fresh.retrieve(x), winners) and int(fresh.stored) == 6


def test_accepts_a_single_input_and_zero_one_tensors():
    mac = SparseyMac(config())
    x = random_sdr(200, 20, generator=g())
    w = mac.store(x.dense.float(), generator=g(1))
    assert w.shape == (1, 12)
    assert torch.equal(mac.retrieve(x.dense), w)


# -- bad input -------------------------------------------------------------------------------------


def test_non_binary_inputs_are_refused():
    mac = SparseyMac(config())
    x = torch.zeros(2, 200)
    x[0, 3] = 0.5
    with pytest.raises(ValueError, match="binary"):
        mac.store(x, generator=g())
    with pytest.raises(ValueError, match="binary"):
        mac.retrieve(torch.full((1, 200), float("nan")))


def test_bad_sizes_are_refused():
    mac = SparseyMac(config())
    with pytest.raises(ValueError, match="n=200"):
        mac.retrieve(random_sdr(100, 10, generator=g()))
    with pytest.raises(ValueError, match="shape"):
        mac.retrieve(torch.zeros(2, 2, 200, dtype=torch.bool))
    with pytest.raises(ValueError, match="no active bit"):
        mac.retrieve(torch.zeros(1, 200, dtype=torch.bool))
    with pytest.raises(ValueError, match="shape"):
        mac.codes(torch.zeros(2, 5, dtype=torch.long))
    with pytest.raises(ValueError, match="K=40"):
        mac.codes(torch.full((1, 12), 40))
    with pytest.raises(TypeError):
        SparseyMac({"cms": 3})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "kw",
    [
        {"cms": 0},
        {"units": 0},
        {"n_inputs": 0},
        {"g_floor": 1.0},
        {"g_floor": -0.1},
        {"sigmoid_steepness": 0.0},
        {"expansion_factor": float("inf")},
        {"sigmoid_inflection": float("nan")},
    ],
)
def test_bad_configs_are_refused(kw):
    with pytest.raises(ValueError):
        config(**kw)


def test_integer_sizes_must_be_integers():
    with pytest.raises(TypeError):
        config(cms=True)
    with pytest.raises(TypeError):
        config(units=2.5)


# -- binarization and the correlation measures -----------------------------------------------------


def test_binarize_edges_keeps_the_strongest_edges():
    images = torch.zeros(2, 10, 10)
    images[0, :, 5:] = 1.0  # a vertical edge between columns 4 and 5
    images[1, 3:, :] = 1.0  # a horizontal edge between rows 2 and 3
    sdr = binarize_edges(images, active=16)
    assert sdr.active.tolist() == [16, 16]
    cols = sdr.dense[0].view(10, 10).nonzero()[:, 1]
    rows = sdr.dense[1].view(10, 10).nonzero()[:, 0]
    assert set(cols.tolist()) <= {4, 5} and set(rows.tolist()) <= {2, 3}
    assert torch.equal(binarize_edges(images[:, None], active=16).dense, sdr.dense)  # (B, 1, H, W)
    flat = binarize_edges(torch.zeros(1, 5, 5), active=3)  # no gradient anywhere: lowest indices
    assert flat.indices().tolist() == [[0, 1, 2]]


def test_binarize_edges_refuses_bad_input():
    with pytest.raises(ValueError, match="active"):
        binarize_edges(torch.zeros(1, 5, 5), active=26)
    with pytest.raises(ValueError, match="active"):
        binarize_edges(torch.zeros(1, 5, 5), active=0)
    with pytest.raises(ValueError, match="shape"):
        binarize_edges(torch.zeros(5, 5), active=3)
    with pytest.raises(ValueError, match="NaN"):
        binarize_edges(torch.full((1, 5, 5), float("nan")), active=3)


def test_spearman_by_hand():
    assert spearman(torch.tensor([1.0, 2, 3, 4]), torch.tensor([1.0, 3, 2, 4])) == pytest.approx(0.8)
    assert spearman(torch.tensor([1.0, 2, 3]), torch.tensor([3.0, 2, 1])) == pytest.approx(-1.0)
    # ties share their mean rank: x ranks (1.5, 1.5, 3), y ranks (1, 2, 3)
    assert spearman(torch.tensor([0.0, 0, 1]), torch.tensor([1.0, 2, 3])) == pytest.approx(math.sqrt(3) / 2)
    assert math.isnan(spearman(torch.zeros(4), torch.arange(4.0)))
    with pytest.raises(ValueError):
        spearman(torch.zeros(3), torch.zeros(4))


def test_similarity_preservation_of_identical_and_random_codes():
    x = random_sdr(60, 10, generator=g(), batch=(30,))
    pearson, rho = similarity_preservation(x, x)
    assert pearson == pytest.approx(1.0) and rho == pytest.approx(1.0)
    codes = random_sdr(2000, 10, generator=g(1), batch=(30,))
    assert abs(similarity_preservation(x, codes)[0]) < 0.2
    with pytest.raises(ValueError):
        similarity_preservation(x[:2], x[:2])
