"""Transcoder mechanism on synthetic data: shapes, sparsity, the loss by hand, hooks, determinism, errors."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from sparsetorch.sdr.transcoder import (
    DeadFeatureTracker,
    Transcoder,
    TranscoderConfig,
    TranscoderTrainConfig,
    collect_mlp_io,
    constant_output,
    ghost_grad_loss,
    minilm_mlp,
    substitute_mlp,
    train_transcoder,
    transcoder_loss,
    transcoder_metrics,
)


class Block(nn.Module):
    """A toy sequence model: residual + MLP (fc1 -> act -> fc2), accepting an ignored attention mask."""

    def __init__(self, d: int = 6, hidden: int = 12) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(0)
        self.inp = nn.Linear(d, d)
        self.mlp = nn.Sequential(nn.Linear(d, hidden), nn.GELU(), nn.Linear(hidden, d))
        for p in self.parameters():
            with torch.no_grad():
                p.copy_(torch.randn(p.shape, generator=gen) * 0.5)

    def forward(self, x: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        h = self.inp(x)
        return h + self.mlp(h)


MLP = {"input_fqn": "mlp.0", "output_fqn": "mlp.2"}


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _synthetic(n: int = 1024, d_in: int = 6, d_out: int = 5) -> tuple[torch.Tensor, torch.Tensor]:
    # A target a transcoder can express exactly: 24 thresholded ReLU features (about 16% of them
    # fire per token), decoded, plus an offset so that no target is zero (the MSE divides by ||y||).
    g = torch.Generator().manual_seed(0)
    enc = torch.randn(d_in, 24, generator=g)
    enc = enc / enc.norm(dim=0)
    dec = torch.randn(24, d_out, generator=g)
    x = torch.randn(n, d_in, generator=g)
    return x, (x @ enc - 1.0).relu() @ dec + torch.linspace(1.0, 2.0, d_out)


def test_shapes_relu_sparsity_and_unit_decoder():
    tc = Transcoder(
        TranscoderConfig(d_in=8, d_out=6, expansion=4), generator=torch.Generator().manual_seed(0)
    )
    x = torch.randn(5, 8, generator=torch.Generator().manual_seed(1))
    f = tc.encode(x)
    assert f.shape == (5, 32) and tc(x).shape == (5, 6)
    assert tc(x.reshape(5, 1, 8)).shape == (5, 1, 6)  # any leading shape, as inside a model
    assert (f >= 0).all() and (f == 0).any() and (f > 0).any()  # ReLU: non-negative, some exactly zero
    torch.testing.assert_close(tc.W_dec.norm(dim=1), torch.ones(32))
    assert TranscoderConfig(d_in=8).d_out == 8 and TranscoderConfig(d_in=8).width == 256


def test_loss_equals_hand_computation():
    out = torch.tensor([[1.0, 2.0], [0.0, -1.0]])
    target = torch.tensor([[3.0, 4.0], [0.0, 2.0]])  # token norms 5 and 2
    feats = torch.tensor([[0.5, 0.0, 1.5], [0.0, 0.0, 2.0]])
    parts = transcoder_loss(out, feats, target, l1_coefficient=0.1)
    mse = ((4 + 4) / 5 + (0 + 9) / 2) / 4  # mean over 4 elements of err^2 / ||y_t||
    l1 = 0.1 * (2.0 + 2.0) / 2  # lambda * mean over tokens of the feature sum
    assert parts.mse.item() == pytest.approx(mse)
    assert parts.l1.item() == pytest.approx(l1)
    assert parts.total.item() == pytest.approx(mse + l1)
    plain = transcoder_loss(out, feats, target, l1_coefficient=0.1, normalize_mse=False)
    assert plain.mse.item() == pytest.approx((4 + 4 + 0 + 9) / 4)


def test_parallel_gradient_is_removed():
    tc = Transcoder(TranscoderConfig(d_in=4, expansion=2), generator=torch.Generator().manual_seed(0))
    tc.W_dec.grad = torch.randn(tc.W_dec.shape, generator=torch.Generator().manual_seed(1))
    tc.remove_parallel_decoder_grad_()
    torch.testing.assert_close((tc.W_dec.grad * tc.W_dec).sum(1), torch.zeros(8), atol=1e-6, rtol=0)


def test_dead_feature_tracker_counts_silent_steps():
    tracker = DeadFeatureTracker(width=3, window=2)
    tracker.update(torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 0.0]]))
    assert tracker.dead.tolist() == [False, False, False]
    tracker.update(torch.tensor([[0.0, 0.0, 2.0]]))
    assert tracker.steps_since_fired.tolist() == [1, 2, 0]
    assert tracker.dead.tolist() == [False, True, False] and tracker.dead_fraction == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match="features"):
        tracker.update(torch.zeros(2, 4))


def test_ghost_grads_reach_only_dead_features():
    g = torch.Generator().manual_seed(0)
    pre = torch.randn(4, 5, generator=g, requires_grad=True)
    W_dec = torch.randn(5, 3, generator=g, requires_grad=True)
    out, target = torch.randn(4, 3, generator=g), torch.randn(4, 3, generator=g)
    dead = torch.tensor([False, True, False, True, False])
    ghost_grad_loss(pre, W_dec, dead, out, target).backward()
    assert (pre.grad[:, ~dead] == 0).all() and (pre.grad[:, dead] != 0).any()
    assert (W_dec.grad[~dead] == 0).all() and (W_dec.grad[dead] != 0).any()


def test_training_fits_a_sparse_target_deterministically():
    x, y = _synthetic()
    (x_train, x_held), (y_train, y_held) = x.split(768), y.split(768)
    config = TranscoderConfig(d_in=6, d_out=5, expansion=8, l1_coefficient=1e-3)
    train = TranscoderTrainConfig(steps=400, batch_size=64, lr=1e-2, warmup_steps=20, dead_window=50, seed=3)
    a = train_transcoder(x_train, y_train, config=config, train=train)
    b = train_transcoder(x_train, y_train, config=config, train=train)
    for (name, pa), pb in zip(
        a.transcoder.state_dict().items(), b.transcoder.state_dict().values(), strict=True
    ):
        assert torch.equal(pa, pb), name
    assert a.history == b.history
    other = train_transcoder(
        x_train, y_train, config=config, train=TranscoderTrainConfig(**{**train.__dict__, "seed": 4})
    )
    assert not torch.equal(other.transcoder.W_enc, a.transcoder.W_enc)
    h = a.history
    assert sum(h["mse"][-20:]) < 0.1 * sum(h["mse"][:20])
    m = transcoder_metrics(a.transcoder, x_held, y_held)
    assert m["fve"] > 0.8  # held-out tokens; predicting the mean would give fve <= 0
    mean_only = constant_output(y_train.mean(0))(x_held)
    assert 1 - ((y_held - mean_only) ** 2).sum() / ((y_held - y_held.mean(0)) ** 2).sum() <= 0.0
    assert 0 < m["l0"] < 48 and m["density"] == pytest.approx(m["l0"] / 48)
    torch.testing.assert_close(a.transcoder.W_dec.norm(dim=1), torch.ones(48))


def test_collect_drops_padding_and_matches_the_mlp():
    model = Block().eval()
    x = torch.randn(2, 4, 6, generator=torch.Generator().manual_seed(0))
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0]])
    xs, ys = collect_mlp_io(model, [{"x": x, "attention_mask": mask}, x[:1]], **MLP)
    assert xs.shape == (5 + 4, 6) and ys.shape == (9, 6)
    h = model.inp(x)[mask.bool()]  # the MLP input at the real tokens
    torch.testing.assert_close(xs[:5], h)
    torch.testing.assert_close(ys[:5], model.mlp(h))
    assert not model.mlp[0]._forward_pre_hooks and not model.mlp[2]._forward_hooks
    assert collect_mlp_io(model, [x, x], **MLP, max_tokens=3)[0].shape == (3, 6)


def test_substitution_replaces_the_mlp_and_restores_even_after_an_error():
    model = Block().eval()
    x = torch.randn(3, 6, generator=torch.Generator().manual_seed(0))
    before = model(x)
    zero = constant_output(torch.zeros(6))
    with substitute_mlp(model, zero, **MLP):
        torch.testing.assert_close(model(x), model.inp(x))  # residual only: the MLP writes zeros
    torch.testing.assert_close(model(x), before)
    doubled = model.inp(x) + 2 * model.mlp(model.inp(x))  # computed outside: inside, mlp is hooked
    with substitute_mlp(model, lambda y: 2 * y, **MLP, reads="output"):  # an SAE-style splice
        torch.testing.assert_close(model(x), doubled)
    tc = Transcoder(TranscoderConfig(d_in=6, expansion=2), generator=torch.Generator().manual_seed(0))
    with pytest.raises(RuntimeError, match="boom"), substitute_mlp(model, tc, **MLP):
        torch.testing.assert_close(model(x), model.inp(x) + tc(model.inp(x)))
        raise RuntimeError("boom")
    assert torch.equal(model(x), before)
    assert not model.mlp[0]._forward_pre_hooks and not model.mlp[2]._forward_hooks


def test_bad_input_is_refused_clearly():
    for bad in ({"expansion": 0}, {"expansion": -2}, {"l1_coefficient": 0.0}, {"l1_coefficient": -1e-3}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            TranscoderConfig(d_in=4, **bad)
    with pytest.raises(ValueError, match="d_in"):
        TranscoderConfig(d_in=0)
    with pytest.raises(ValueError, match="d_out"):
        TranscoderConfig(d_in=4, d_out=0)
    with pytest.raises(ValueError, match="steps"):
        TranscoderTrainConfig(steps=0)
    with pytest.raises(ValueError, match="warmup"):
        TranscoderTrainConfig(warmup_steps=-1)
    tc = Transcoder(TranscoderConfig(d_in=4))
    with pytest.raises(ValueError, match="d_in=4"):
        tc.encode(torch.zeros(2, 5))
    with pytest.raises(ValueError, match="empty"):
        train_transcoder(torch.zeros(0, 4), torch.zeros(0, 4))
    with pytest.raises(ValueError, match="do not match"):
        train_transcoder(torch.zeros(3, 4), torch.zeros(3, 4), config=TranscoderConfig(d_in=5))
    with pytest.raises(ValueError, match="targets"):
        train_transcoder(torch.zeros(3, 4), torch.zeros(2, 4))
    with pytest.raises(ValueError, match="NaN"):
        train_transcoder(torch.full((3, 4), float("nan")), torch.zeros(3, 4))
    model = Block()
    with pytest.raises(ValueError, match="empty"):
        collect_mlp_io(model, [], **MLP)
    with (
        pytest.raises(ValueError, match="no module"),
        substitute_mlp(model, tc, input_fqn="mlp.9", output_fqn="mlp.2"),
    ):
        pass
    assert not model.mlp[0]._forward_pre_hooks and not model.mlp[2]._forward_hooks
    with pytest.raises(ValueError, match="shape"), substitute_mlp(model, lambda h: h[..., :2], **MLP):
        model(torch.zeros(1, 6))
    assert not model.mlp[2]._forward_hooks
    with pytest.raises(ValueError, match="reads"), substitute_mlp(model, tc, **MLP, reads="hidden"):
        pass
    with pytest.raises(ValueError, match="vector"):
        constant_output(torch.zeros(2, 2))
    assert minilm_mlp(3) == ("encoder.layer.3.intermediate", "encoder.layer.3.output.dense")
