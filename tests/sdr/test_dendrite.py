"""The dendritic neuron of the paper and the absolute-max gated `ActiveDendrites` layer."""

from __future__ import annotations

import math

import pytest
import torch

from sparsetorch.sdr import (
    SDR,
    ActiveDendrites,
    DendriticNeuron,
    absolute_max_gate,
    false_negative_probability,
    max_bias,
    max_gate,
    random_sdr,
)


def g(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# -- DendriticNeuron ------------------------------------------------------------------------


def neuron_by_hand() -> DendriticNeuron:
    synapses = torch.zeros(2, 10, dtype=torch.bool)
    synapses[0, [0, 1, 2, 3]] = True
    synapses[1, [5, 6, 7]] = True
    return DendriticNeuron(synapses, theta=2)


def test_segments_spike_at_theta_and_the_neuron_on_any_segment():
    neuron = neuron_by_hand()
    x = SDR.from_indices(torch.tensor([[0, 1, 9], [0, 5, 9], [6, 7, 8]]), 10)
    assert neuron.overlaps(x).tolist() == [[2, 0], [1, 1], [0, 2]]
    assert neuron.segment_spikes(x).tolist() == [[True, False], [False, False], [False, True]]
    assert neuron(x).tolist() == [True, False, True]
    assert neuron.segments == 2 and neuron.n == 10


def test_learned_segments_recognize_their_patterns():
    patterns = random_sdr(2048, 40, batch=(30,), generator=g(1))
    neuron = DendriticNeuron.learn(patterns, synapses=20, theta=10, generator=g(2))
    assert neuron.segments == 30 and bool((neuron.synapses.sum(-1) == 20).all())
    assert bool(neuron(patterns).all())
    # each segment sits on its own pattern: all 20 synapses active on it
    assert torch.equal(neuron.overlaps(patterns).diagonal(), torch.full((30,), 20))


def test_union_segments_recognize_every_pattern_they_hold():
    patterns = random_sdr(1000, 30, batch=(12,), generator=g(3))
    neuron = DendriticNeuron.learn(patterns, synapses=10, theta=8, patterns_per_segment=4, generator=g(4))
    assert neuron.segments == 3
    assert bool(neuron(patterns).all())
    assert bool((neuron.synapses.sum(-1) <= 40).all())


def test_noisy_recall_matches_the_false_negative_formula():
    # one segment per pattern; 50% noise; misses of the own segment follow Eq. 5/6
    n, a, s, theta, v, count, repeats = 1024, 40, 20, 10, 20, 25, 200
    patterns = random_sdr(n, a, batch=(count,), generator=g(5))
    neuron = DendriticNeuron.learn(patterns, synapses=s, theta=theta, generator=g(6))
    noisy = SDR(patterns.dense.repeat(repeats, 1)).add_noise(v, generator=g(7))
    own = neuron.segment_spikes(noisy).view(repeats, count, count).diagonal(dim1=1, dim2=2)
    misses = int((~own).sum())
    trials = repeats * count
    p = false_negative_probability(a, s, theta, v)
    assert abs(misses - trials * p) <= 4 * math.sqrt(trials * p * (1 - p))


def test_neuron_refuses_bad_input():
    with pytest.raises(ValueError, match="bool tensor"):
        DendriticNeuron(torch.ones(2, 5), theta=1)
    with pytest.raises(ValueError, match="could never spike"):
        DendriticNeuron(torch.ones(2, 5, dtype=torch.bool), theta=6)
    with pytest.raises(ValueError, match="theta must be >= 1"):
        DendriticNeuron(torch.ones(2, 5, dtype=torch.bool), theta=0)
    patterns = random_sdr(100, 10, batch=(5,), generator=g())
    with pytest.raises(ValueError, match="cannot be split"):
        DendriticNeuron.learn(patterns, synapses=5, theta=3, patterns_per_segment=2, generator=g())
    with pytest.raises(ValueError, match="only 10 active"):
        DendriticNeuron.learn(patterns, synapses=11, theta=3, generator=g())
    with pytest.raises(ValueError, match="n=99"):
        neuron_by_hand()(random_sdr(99, 3, generator=g()))


# -- the gates -----------------------------------------------------------------------------


def test_absolute_max_picks_the_largest_magnitude_and_keeps_its_sign():
    y = torch.tensor([[2.0, 3.0]])
    d = torch.tensor([[[-7.4, 6.5, 0.1], [1.0, -0.5, 2.0]]])  # (batch 1, units 2, segments 3)
    out = absolute_max_gate(y, d)
    assert out.winners.tolist() == [[0, 2]]
    expected = torch.tensor(
        [[2.0 * torch.sigmoid(torch.tensor(-7.4)), 3.0 * torch.sigmoid(torch.tensor(2.0))]]
    )
    assert torch.allclose(out.values, expected)
    assert out.values[0, 0] < 0.01  # the strongly negative segment shuts the unit off
    plain = max_gate(y, d)  # the plain max would have picked +6.5
    assert plain.winners.tolist() == [[1, 2]]
    assert torch.allclose(max_bias(y, d).values, torch.tensor([[2.0 + 6.5, 3.0 + 2.0]]))


def test_ties_go_to_the_lowest_segment():
    y = torch.ones(1, 1)
    assert absolute_max_gate(y, torch.tensor([[[3.0, -3.0, 1.0]]])).winners.item() == 0
    assert absolute_max_gate(y, torch.tensor([[[1.0, -3.0, 3.0]]])).winners.item() == 1


def test_gate_shapes_are_checked():
    with pytest.raises(ValueError, match="segments"):
        absolute_max_gate(torch.ones(2, 3), torch.ones(2, 4, 5))
    with pytest.raises(ValueError, match="at least one segment"):
        absolute_max_gate(torch.ones(2, 3), torch.ones(2, 3, 0))


# -- ActiveDendrites ------------------------------------------------------------------------


def reference(layer: ActiveDendrites, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """Unit by unit, sample by sample."""
    w, b, u = (p.detach() for p in (layer.linear.weight, layer.linear.bias, layer.segment_weight))
    out = torch.empty(x.shape[0], w.shape[0])
    for i in range(x.shape[0]):
        for unit in range(w.shape[0]):
            y = w[unit] @ x[i] + b[unit]
            d = [float(u[unit, j] @ c[i]) for j in range(u.shape[1])]
            winner = max(range(len(d)), key=lambda j: (abs(d[j]), -j))
            out[i, unit] = y * torch.sigmoid(torch.tensor(d[winner]))
    return out


def test_layer_matches_a_loop_reference():
    layer = ActiveDendrites(6, 4, segments=3, context_features=5, generator=g(1))
    x, c = torch.randn(7, 6, generator=g(2)), torch.randn(7, 5, generator=g(3))
    assert torch.allclose(layer(x, c), reference(layer, x, c), atol=1e-6)
    out = layer.gated(x, c)
    assert out.values.shape == (7, 4) and out.winners.shape == (7, 4)


def test_layer_is_seeded_and_round_trips():
    a = ActiveDendrites(6, 4, segments=3, context_features=5, generator=g(9))
    b = ActiveDendrites(6, 4, segments=3, context_features=5, generator=g(9))
    x, c = torch.randn(2, 6, generator=g(1)), torch.randn(2, 5, generator=g(2))
    assert torch.equal(a(x, c), b(x, c))
    assert a.segment_weight.abs().max() <= 1 / math.sqrt(5)
    fresh = ActiveDendrites(6, 4, segments=3, context_features=5, generator=g(10))
    fresh.load_state_dict(a.state_dict())
    assert torch.equal(fresh(x, c), a(x, c))


def test_only_the_winning_segment_gets_a_gradient():
    layer = ActiveDendrites(3, 2, segments=4, context_features=5, generator=g(4))
    x, c = torch.randn(1, 3, generator=g(5)), torch.randn(1, 5, generator=g(6))
    winners = layer.gated(x, c).winners[0]
    layer(x, c).sum().backward()
    touched = layer.segment_weight.grad.abs().sum(-1) > 0  # (units, segments)
    for unit in range(2):
        assert touched[unit].tolist() == [j == int(winners[unit]) for j in range(4)]


def test_leading_dimensions_and_other_gates():
    layer = ActiveDendrites(3, 2, segments=2, context_features=4, gate="bias", generator=g(7))
    x, c = torch.randn(5, 6, 3), torch.randn(5, 6, 4)
    assert layer(x, c).shape == (5, 6, 2)
    assert "gate='bias'" in repr(layer)


def test_layer_refuses_bad_input():
    with pytest.raises(ValueError, match="gate"):
        ActiveDendrites(3, 2, segments=2, context_features=4, gate="softmax")
    with pytest.raises(ValueError, match="segments must be >= 1"):
        ActiveDendrites(3, 2, segments=0, context_features=4)
    layer = ActiveDendrites(3, 2, segments=2, context_features=4, generator=g())
    with pytest.raises(ValueError, match="context has 5 features"):
        layer(torch.randn(1, 3), torch.randn(1, 5))
    with pytest.raises(ValueError, match="leading dimensions"):
        layer(torch.randn(2, 3), torch.randn(3, 4))
