"""Turbo-VBI: the closed-form VBI updates by hand, the support message passing against brute-force
enumeration, the structured prior's preference for clustered supports, and the training method."""

from __future__ import annotations

import copy
import itertools
import math

import pytest
import torch
import torch.nn.functional as F

import sparsetorch.training.turbo_vbi  # noqa: F401  (registers "turbo-vbi" until training/__init__ does)
from sparsetorch.masks import get_masks as attached
from sparsetorch.training import TRAINERS
from sparsetorch.training.turbo_vbi import (
    chain_transitions,
    expected_precision,
    log_evidence_gamma,
    log_prior,
    markov_chain,
    precision_posterior,
    support_evidence,
    support_posterior,
)
from tests.training.training_testutil import batches, net, train

# --- Module A: closed forms -------------------------------------------------------------------


def test_chain_transitions_by_hand():
    p01, p10 = chain_transitions(0.25, 4.0)
    assert p10 == pytest.approx(0.25)  # mean run of 1s = 1 / p10
    assert p01 == pytest.approx(0.25 * 0.25 / 0.75)
    assert p01 / (p01 + p10) == pytest.approx(0.25)  # stationary density
    chain = markov_chain(0.25, 4.0)
    torch.testing.assert_close(chain.transition.exp().sum(dim=1), torch.ones(2, dtype=torch.float64))
    torch.testing.assert_close(chain.init.exp(), torch.tensor([0.75, 0.25], dtype=torch.float64))


def test_precision_posterior_by_hand():
    shape, rate = precision_posterior(torch.tensor([0.5, -2.0]), shape=1.0, rate=2.0)
    torch.testing.assert_close(shape, torch.tensor([1.5, 1.5], dtype=torch.float64))
    torch.testing.assert_close(rate, torch.tensor([2.0 + 0.125, 2.0 + 2.0], dtype=torch.float64))


def test_evidence_by_hand_and_by_quadrature():
    w = torch.tensor([0.5])
    # a ln b - ln G(a) + ln G(a + 1/2) - (a + 1/2) ln(b + w^2/2), a = 1, b = 2.
    hand = math.log(2.0) - math.lgamma(1.0) + math.lgamma(1.5) - 1.5 * math.log(2.125)
    assert float(log_evidence_gamma(w, 1.0, 2.0)) == pytest.approx(hand)
    # The same as integrating N(w; 0, 1/rho) Gamma(rho; a, b) over rho (plus 1/2 ln 2 pi).
    for shape, rate in ((1.0, 2.0), (3.0, 0.01)):
        rho = torch.linspace(1e-6, 4000.0, 2_000_001, dtype=torch.float64)
        dens = torch.exp(
            shape * math.log(rate)
            - math.lgamma(shape)
            + (shape - 1) * rho.log()
            - rate * rho
            + 0.5 * rho.log()
            - rho * 0.25 / 2
        )
        integral = float(torch.trapezoid(dens, rho))
        assert float(log_evidence_gamma(w, shape, rate)) == pytest.approx(math.log(integral), abs=1e-4)
    lam = support_evidence(w, shape=1.0, rates=(2.0, 0.002))
    assert float(lam) == pytest.approx(
        float(log_evidence_gamma(w, 1.0, 2.0)) - float(log_evidence_gamma(w, 1.0, 0.002))
    )


def test_evidence_favours_zero_for_small_weights_and_is_monotone():
    w = torch.linspace(0, 1, 101)
    lam = support_evidence(w, shape=1.0, rates=(0.1, 0.1 / 1000))
    assert float(lam[0]) == pytest.approx(-0.5 * math.log(1000))  # w = 0: -(1/2) ln(ratio)
    assert (lam.diff() > 0).all() and lam[-1] > 0


def test_expected_precision_by_hand():
    w = torch.tensor([0.5])
    logit = torch.tensor([math.log(3.0)])  # q(s = 1) = 3/4
    out = expected_precision(w, logit, shape=1.0, rates=(2.0, 0.002))
    assert float(out) == pytest.approx(0.75 * 1.5 / 2.125 + 0.25 * 1.5 / (0.002 + 0.125))


# --- Module B: message passing ----------------------------------------------------------------


def enumerate_posterior(lam, weight_chain, neuron_chain):
    """P(s_ji = 1), P(z_j = 1) and ln p(s) for every support, by summing over all (z, s)."""
    m, n = lam.shape

    def chain_logp(states, chain):
        out = chain.init[states[0]]
        for a, b in itertools.pairwise(states):
            out = out + chain.transition[a, b]
        return out

    joint, priors = [], {}
    for z in itertools.product((0, 1), repeat=m):
        for bits in itertools.product((0, 1), repeat=m * n):
            s = torch.tensor(bits).reshape(m, n)
            if any(not z[j] and s[j].any() for j in range(m)):
                continue
            lp = chain_logp(z, neuron_chain) + sum(
                chain_logp(s[j].tolist(), weight_chain) for j in range(m) if z[j]
            )
            priors[bits] = torch.logaddexp(priors.get(bits, torch.tensor(-math.inf, dtype=torch.float64)), lp)
            joint.append((z, s, lp + (lam * s).nan_to_num(neginf=-1e300).sum()))
    lps = torch.stack([j[2] for j in joint])
    probs = (lps - torch.logsumexp(lps, 0)).exp()
    on = sum(p * s for p, (_, s, _) in zip(probs, joint, strict=True))
    alive = sum(p * torch.tensor(z, dtype=torch.float64) for p, (z, _, _) in zip(probs, joint, strict=True))
    return on, alive, priors


@pytest.mark.parametrize(("seed", "shape"), [(0, (3, 3)), (1, (2, 4)), (2, (4, 2)), (3, (1, 6))])
def test_message_passing_equals_enumeration(seed, shape):
    g = torch.Generator().manual_seed(seed)
    lam = 3 * torch.randn(shape, generator=g, dtype=torch.float64)
    lam[0, -1] = -math.inf  # a pruned weight: known zero
    weight_chain, neuron_chain = markov_chain(0.4, 3.0), markov_chain(0.7, 2.5)
    post = support_posterior(lam, weight_chain, neuron_chain)
    on, alive, _ = enumerate_posterior(lam, weight_chain, neuron_chain)
    torch.testing.assert_close(torch.sigmoid(post.support), on, atol=1e-12, rtol=0)
    torch.testing.assert_close(torch.sigmoid(post.neuron), alive, atol=1e-12, rtol=0)
    assert post.support[0, -1] == -math.inf


def test_log_prior_equals_enumeration_and_normalizes():
    weight_chain, neuron_chain = markov_chain(0.4, 3.0), markov_chain(0.7, 2.5)
    _, _, priors = enumerate_posterior(torch.zeros(2, 3, dtype=torch.float64), weight_chain, neuron_chain)
    for bits, expected in priors.items():
        s = torch.tensor(bits, dtype=torch.bool).reshape(2, 3)
        assert log_prior(s, weight_chain, neuron_chain) == pytest.approx(float(expected), abs=1e-12)
    assert float(torch.logsumexp(torch.stack(list(priors.values())), 0)) == pytest.approx(0.0, abs=1e-12)


def test_large_evidence_saturates_without_overflow():
    lam = torch.full((3, 400), 9.0, dtype=torch.float64)  # row evidences of e^3600
    post = support_posterior(lam, markov_chain(0.5, 8.0), markov_chain(0.5, 4.0))
    assert torch.isfinite(post.support).all() and (post.support > 0).all()
    assert not post.neuron.isnan().any() and (post.neuron > 100).all()  # may saturate to +inf


# --- the structured prior ---------------------------------------------------------------------


def test_clustered_supports_are_more_probable_than_scattered_ones():
    chains = markov_chain(0.5, 8.0), markov_chain(0.5, 4.0)
    clustered = torch.zeros(4, 8, dtype=torch.bool)
    clustered[:2, :4] = True  # 8 weights: two live neurons, one run each
    scattered = torch.zeros(4, 8, dtype=torch.bool)
    scattered[:, ::4] = True  # 8 weights: four live neurons, isolated weights
    assert clustered.sum() == scattered.sum()
    assert log_prior(clustered, *chains) > log_prior(scattered, *chains) + 5
    # Memoryless chains (run = 1 / (1 - density)) carry no preference within a row.
    flat = markov_chain(0.5, 2.0), markov_chain(0.5, 2.0)
    a, b = torch.zeros(1, 8, dtype=torch.bool), torch.zeros(1, 8, dtype=torch.bool)
    a[0, :4], b[0, ::2] = True, True
    assert log_prior(a, *flat) == pytest.approx(log_prior(b, *flat))


def test_neighbours_and_neurons_raise_the_posterior():
    chains = markov_chain(0.5, 8.0), markov_chain(0.5, 4.0)
    lam = torch.full((2, 9), -2.0, dtype=torch.float64)
    lam[0, 4] = lam[1, 4] = 1.0  # the same evidence for the middle weight of both rows
    lam[1, 3] = lam[1, 5] = 4.0  # but row 1's neighbours are strongly active
    post = support_posterior(lam, *chains)
    assert post.support[1, 4] > post.support[0, 4] + 1
    assert post.neuron[1] > post.neuron[0]
    # Without neighbours the support is clustered by neurons too: a weakly supported row dies.
    assert post.support[0, 4] < 0 < post.support[1, 4]


# --- the training method ----------------------------------------------------------------------


def prepared(**overrides):
    model = net(0)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    config = {"sparsity": 0.75, "update_every": 2, "end": 8, "num_examples": 64, **overrides}
    m = TRAINERS.get("turbo-vbi")(**config)
    m.prepare(model, opt, total_steps=12)
    return model, opt, m


def test_prior_takes_its_proximal_step_after_every_optimizer_step():
    model, opt, m = prepared()
    twin = copy.deepcopy(model)
    twin_opt = torch.optim.SGD(twin.parameters(), lr=0.1, momentum=0.9)
    precision = {f: p.precision.clone() for f, p in m.posteriors.items()}
    x, y = batches(1)[0]
    for mod, o in ((model, opt), (twin, twin_opt)):
        F.cross_entropy(mod(x), y).backward()
        o.step()
    m.step()
    for f in ("0.weight", "2.weight"):
        layer = f.partition(".")[0]
        plain = twin.get_submodule(layer).parametrizations.weight.original.detach()
        expected = plain / (1 + 0.1 * precision[f] / 64).float()
        torch.testing.assert_close(model.get_submodule(layer).weight, expected)
    assert m.sparsity == 0.0  # the first pruning step is step 2


def test_masks_keep_the_highest_posterior_support():
    model, opt, m = prepared()
    data = batches(2)
    train(model, m, opt, data[:1])
    x, y = data[1]
    F.cross_entropy(model(x), y).backward()
    opt.step()
    assert m.step()  # step 2: refresh, then prune to the cubic schedule's sparsity
    for f, mask in m.masks.items():
        support = m.posteriors[f].support
        kept, dropped = support[mask], support[~mask]
        assert dropped.numel() > 0 and kept.min() >= dropped.max()
        assert torch.isfinite(support).all()  # refreshed before pruning: nothing known zero yet
    train(model, m, opt, batches(2, seed=5))
    m.refresh()  # the model's weights and masks: pruned weights are known zeros
    for f, mask in m.masks.items():
        assert (m.posteriors[f].support[~mask] == -math.inf).all()


def test_prunes_whole_neurons_more_than_magnitude():
    """The Markov prior removes more rows (neurons) than GMP at the same schedule and sparsity."""
    dead = {}
    for name, extra in (("turbo-vbi", {"num_examples": 64}), ("gmp", {})):
        model = net(0)
        opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        m = TRAINERS.get(name)(sparsity=0.75, update_every=2, end=8, **extra)
        m.prepare(model, opt, total_steps=12)
        train(model, m, opt, batches(12))
        dead[name] = sum(int((~mask.any(dim=1)).sum()) for mask in m.masks.values())
    assert dead["turbo-vbi"] > dead["gmp"]


def test_unstructured_ablation_is_the_bernoulli_posterior():
    _, _, m = prepared(structured=False, weight_density=0.2)
    for p in m.posteriors.values():
        torch.testing.assert_close(p.support, p.evidence + math.log(0.2 / 0.8))


def test_posterior_sparsity_counts_zero_verdicts_and_masked_weights():
    model, opt, m = prepared()
    train(model, m, opt, batches(12))
    masks = m.masks
    zeros = sum(int(((p.support < 0) | ~masks[f]).sum()) for f, p in m.posteriors.items())
    assert m.posterior_sparsity == zeros / sum(mask.numel() for mask in masks.values())
    assert m.sparsity <= m.posterior_sparsity <= 1.0


def test_same_seed_same_masks_and_posteriors():
    runs = []
    for _ in range(2):
        model, opt, m = prepared()
        train(model, m, opt, batches(12))
        runs.append(({f: k.clone() for f, k in m.masks.items()}, m.posteriors))
    (masks_a, post_a), (masks_b, post_b) = runs
    assert all(torch.equal(masks_a[f], masks_b[f]) for f in masks_a)
    assert all(torch.equal(post_a[f].support, post_b[f].support) for f in post_a)


def test_state_dict_carries_the_posterior():
    model, opt, m = prepared()
    train(model, m, opt, batches(5))
    state = copy.deepcopy(m.state_dict())
    other_model = net(3)
    other = TRAINERS.get("turbo-vbi")(sparsity=0.75, update_every=2, end=8, num_examples=64)
    other.prepare(other_model, torch.optim.SGD(other_model.parameters(), lr=0.1), total_steps=12)
    other.load_state_dict(state)
    assert other.scale == m.scale
    assert all(torch.equal(other.posteriors[f].precision, m.posteriors[f].precision) for f in m.posteriors)
    bad = {k: v for k, v in state.items() if k != "posteriors"}
    with pytest.raises(ValueError, match="posteriors"):
        other.load_state_dict(bad)


def test_defaults_and_paper():
    cls = TRAINERS.get("turbo-vbi")
    config = cls().config
    assert (config.sparsity, config.shape, config.precision_ratio, config.structured) == (
        0.9,
        1.0,
        1000.0,
        True,
    )
    assert (config.weight_density, config.weight_run, config.neuron_density, config.neuron_run) == (
        0.5,
        8.0,
        0.5,
        4.0,
    )
    assert cls.paper == "turbo-vbi"


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"num_examples": 0}, "num_examples"),
        ({"num_examples": 1.5}, "num_examples"),
        ({"shape": 0.0}, "shape"),
        ({"shape": float("nan")}, "shape"),
        ({"precision_ratio": 1.0}, "precision_ratio"),
        ({"weight_density": 1.0}, "weight_density"),
        ({"neuron_density": 0.0}, "neuron_density"),
        ({"weight_run": 0.5}, "weight_run"),
        ({"weight_density": 0.9, "weight_run": 5.0}, "too short"),
        ({"structured": "yes"}, "structured"),
        ({"end": None}, "end"),
        ({"distribution": "er"}, "distribution"),
    ],
)
def test_bad_config_raises(overrides, match):
    with pytest.raises(ValueError, match=match):
        TRAINERS.get("turbo-vbi")(**overrides)


def test_all_zero_layer_is_refused_and_the_model_left_alone():
    model = net(0)
    with torch.no_grad():
        model[2].weight.zero_()
    before = copy.deepcopy(model.state_dict())
    m = TRAINERS.get("turbo-vbi")(sparsity=0.75, update_every=2, end=8)
    with pytest.raises(ValueError, match=r"2\.weight is all zero"):
        m.prepare(model, torch.optim.SGD(model.parameters(), lr=0.1), total_steps=12)
    assert attached(model) == {}
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_refresh_and_load_before_prepare_raise():
    m = TRAINERS.get("turbo-vbi")()
    with pytest.raises(RuntimeError, match="prepare"):
        m.refresh()
    with pytest.raises(RuntimeError, match="prepare"):
        m.load_state_dict({})
