"""k-WTA: exact k, deterministic ties, boosting and duty cycles by hand, state_dict, inference k, 2-D."""

from __future__ import annotations

import math

import pytest
import torch

from sparsetorch.activations.kwta import KWinners, KWinners2d, kwinners, topk_mask, update_boost_strength


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_exact_k_per_sample_even_with_many_ties():
    x = torch.randint(0, 3, (64, 50), generator=_gen()).float() + 1.0  # values in {1, 2, 3}: ties everywhere
    y = kwinners(x, 7)
    assert (y != 0).sum(1).tolist() == [7] * 64
    xr = torch.randn(5, 9, 50, generator=_gen(1))
    assert ((kwinners(xr, 11) != 0).sum(-1) == 11).all()


def test_ties_lowest_index_wins():
    x = torch.tensor([[1.0, 3.0, 3.0, 3.0, 0.5], [2.0, 2.0, 2.0, 2.0, 2.0]])
    assert topk_mask(x, 2).tolist() == [
        [False, True, True, False, False],
        [True, True, False, False, False],
    ]
    # boosting decides among raw ties: a unit that fired less often gets the bigger factor
    kw = KWinners(5, k=1, boost_strength=1.0, k_inference_factor=1.0).eval()
    kw.duty_cycle.copy_(torch.tensor([0.5, 0.5, 0.1, 0.5, 0.5]))
    assert kw(torch.full((1, 5), 2.0)).nonzero()[:, 1].tolist() == [2]


def test_matches_independent_topk_scatter_reference_without_ties():
    x = torch.randn(32, 40, generator=_gen(2))
    idx = x.topk(6, dim=1).indices
    ref = torch.zeros_like(x).scatter(1, idx, x.gather(1, idx))
    torch.testing.assert_close(kwinners(x, 6), ref, rtol=0, atol=0)


def test_boost_factors_and_winner_choice_by_hand():
    kw = KWinners(4, k=1, boost_strength=2.0, k_inference_factor=1.0)
    kw.duty_cycle.copy_(torch.tensor([0.5, 0.0, 0.25, 0.25]))
    # b_i = exp((k/n - d_i) * beta) = exp((0.25 - d_i) * 2)
    want = torch.tensor([math.exp(-0.5), math.exp(0.5), 1.0, 1.0])
    torch.testing.assert_close(kw.boost_factors(0.25), want)
    x = torch.tensor([[1.5, 1.0, 1.2, 0.9]])  # boosted: 0.910, 1.649, 1.2, 0.9 -> unit 1 wins
    y = kw.eval()(x)
    assert y.tolist() == [[0.0, 1.0, 0.0, 0.0]]  # the raw value is output, not the boosted one
    kw.update_boost_strength()  # 2.0 * 0.9
    assert kw._boost == pytest.approx(1.8) and float(kw.boost_strength) == pytest.approx(1.8)


def test_duty_cycle_update_by_hand():
    kw = KWinners(3, k=1, boost_strength=0.0, duty_cycle_period=4)
    b1 = torch.tensor([[3.0, 1.0, 2.0], [1.0, 3.0, 2.0]])  # winners 0, 1
    b2 = torch.tensor([[3.0, 1.0, 2.0], [3.0, 1.0, 2.0]])  # winners 0, 0
    b3 = torch.tensor([[1.0, 1.0, 3.0], [1.0, 1.0, 3.0]])  # winners 2, 2
    kw.train()
    kw(b1)  # seen 2, P 2: d = (0 * 0 + [1, 1, 0]) / 2
    torch.testing.assert_close(kw.duty_cycle, torch.tensor([0.5, 0.5, 0.0]))
    kw(b2)  # seen 4, P 4: d = (d * 2 + [2, 0, 0]) / 4
    torch.testing.assert_close(kw.duty_cycle, torch.tensor([0.75, 0.25, 0.0]))
    kw(b3)  # seen 6, P 4: d = (d * 2 + [0, 0, 2]) / 4
    torch.testing.assert_close(kw.duty_cycle, torch.tensor([0.375, 0.125, 0.5]))
    assert int(kw.learning_iterations) == 6
    kw.eval()(b1)  # eval never updates the duty cycle
    torch.testing.assert_close(kw.duty_cycle, torch.tensor([0.375, 0.125, 0.5]))


def test_batch_larger_than_period_gives_the_batch_mean_not_negative():
    kw = KWinners(2, k=1, boost_strength=0.0, duty_cycle_period=2).train()
    kw(torch.tensor([[1.0, 0.0]] * 4 + [[0.0, 1.0]]))  # B=5 > period: d = counts / 5
    torch.testing.assert_close(kw.duty_cycle, torch.tensor([0.8, 0.2]))
    kw(torch.tensor([[0.0, 1.0]] * 5))
    torch.testing.assert_close(kw.duty_cycle, torch.tensor([0.0, 1.0]))


def test_buffers_survive_state_dict_round_trip():
    a = KWinners(16, k=4, boost_strength=1.5, duty_cycle_period=50).train()
    for s in range(3):
        a(torch.randn(8, 16, generator=_gen(s)))
    a.update_boost_strength()
    sd = a.state_dict()
    assert {"duty_cycle", "boost_strength", "learning_iterations"} <= set(sd)
    b = KWinners(16, k=4, boost_strength=1.5, duty_cycle_period=50).train()
    b.load_state_dict(sd)
    assert b._boost == pytest.approx(1.5 * 0.9)
    assert int(b.learning_iterations) == 24
    x = torch.randn(8, 16, generator=_gen(9))
    torch.testing.assert_close(a(x), b(x))
    torch.testing.assert_close(a.duty_cycle, b.duty_cycle)  # the warm-up continues identically


def test_inference_k_factor_and_train_k():
    kw = KWinners(20, k=4, k_inference_factor=1.5, boost_strength=0.0)
    x = torch.randn(3, 20, generator=_gen(3))
    assert ((kw.train()(x) != 0).sum(1) == 4).all()
    assert kw.k_inference == 6 and ((kw.eval()(x) != 0).sum(1) == 6).all()
    assert KWinners(100, density=0.05).k == 5


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"k": 0}, r"\[1, 10\]"),
        ({"k": 11}, r"\[1, 10\]"),
        ({"k": 8, "k_inference_factor": 1.5}, "k_inference"),
        ({"k": 2, "k_inference_factor": 0.4}, "k_inference"),
        ({"density": 0.01}, "rounds to k=0"),
        ({"k": 2, "density": 0.2}, "exactly one"),
        ({}, "exactly one"),
        ({"k": 2, "duty_cycle_period": 0}, "duty_cycle_period"),
        ({"k": 2, "boost_strength": -1.0}, "boost_strength"),
    ],
)
def test_bad_k_and_settings_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        KWinners(10, **kwargs)


def test_functional_k_outside_range_raises():
    with pytest.raises(ValueError, match=r"\[1, 4\]"):
        kwinners(torch.randn(2, 4), 5)
    with pytest.raises(ValueError, match=r"\[1, 4\]"):
        kwinners(torch.randn(2, 4), 0)


def test_gradient_one_for_winners_zero_elsewhere():
    x = torch.randn(4, 12, generator=_gen(4), requires_grad=True)
    y = kwinners(x, 3)
    y.sum().backward()
    torch.testing.assert_close(x.grad, (y != 0).float())


def test_relu_drops_non_positive_winners():
    x = torch.tensor([[2.0, -1.0, -3.0, 0.5]])
    assert kwinners(x, 3, relu=True).tolist() == [[2.0, 0.0, 0.0, 0.5]]


def test_2d_local_vs_global():
    x = torch.randn(2, 8, 3, 3, generator=_gen(5))
    local = KWinners2d(8, k=2, local=True, boost_strength=0.0).train()
    glob = KWinners2d(8, k=5, local=False, boost_strength=0.0).train()
    yl = local(x)
    assert ((yl != 0).sum(1) == 2).all()  # 2 channels at every position
    yg = glob(x)
    assert (yg != 0).flatten(1).sum(1).tolist() == [5, 5]  # 5 of C*H*W per sample
    flat = x.flatten(1)
    idx = flat.topk(5, 1).indices
    torch.testing.assert_close(yg.flatten(1), torch.zeros_like(flat).scatter(1, idx, flat.gather(1, idx)))
    cidx = x.topk(2, dim=1).indices
    torch.testing.assert_close(yl, torch.zeros_like(x).scatter(1, cidx, x.gather(1, cidx)))
    assert not torch.equal(yl != 0, yg != 0)


def test_2d_global_ties_in_flat_order_and_duty_per_channel():
    x = torch.ones(1, 2, 2, 2)  # all tied: the first 3 flat (c, h, w) indices win
    kw = KWinners2d(2, k=3, boost_strength=0.0, duty_cycle_period=10).train()
    y = kw(x)
    assert y.flatten().tolist() == [1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0]
    # channel 0 active at 3 of 4 positions, channel 1 at 0 of 4: duty = counts / (H * W) / B
    torch.testing.assert_close(kw.duty_cycle.flatten(), torch.tensor([0.75, 0.0]))


def test_2d_boost_uses_channel_duty_cycle():
    kw = KWinners2d(2, k=1, local=True, boost_strength=3.0, k_inference_factor=1.0).eval()
    kw.duty_cycle.copy_(torch.tensor([0.9, 0.0]).view(1, 2, 1, 1))
    x = torch.tensor([2.0, 1.0]).view(1, 2, 1, 1)  # boosted: 2 e^{-1.2} = 0.60 < 1 e^{1.5} = 4.48
    assert kw(x).flatten().tolist() == [0.0, 1.0]


def test_2d_errors_and_update_boost_strength_helper():
    with pytest.raises(ValueError, match=r"\[1, 4\]"):
        KWinners2d(4, k=5, local=True)
    glob = KWinners2d(4, k=100, boost_strength=0.0)
    with pytest.raises(ValueError, match=r"\[1, 36\]"):
        glob(torch.randn(1, 4, 3, 3))
    model = torch.nn.Sequential(KWinners(6, k=2), KWinners2d(4, density=0.5, local=True))
    update_boost_strength(model)
    assert model[0]._boost == pytest.approx(0.9) and model[1]._boost == pytest.approx(0.9)
