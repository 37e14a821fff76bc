"""The substrate's contracts: callback values reach the caller, RNG and mode are restored, loss
functions can be step-aware, batches move to the model's device, CTS leaves no gradients."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import sparsetorch.training.cts as cts
from sparsetorch.data.shakespeare import byte_windows
from sparsetorch.evaluation import lm_metrics
from sparsetorch.models.gpt import GPT, GPTConfig
from sparsetorch.training import TrainLog, as_callbacks, fit
from sparsetorch.training.lm import fit_lm, lm_loss
from sparsetorch.training.loop import Loss, cuda_devices, takes_step, train_steps
from tests.training.training_testutil import TARGETS, net, tiny_classification

N, D, C = 64, 5, 3


def _data() -> tuple[torch.Tensor, torch.Tensor]:
    return tiny_classification(N, D, C)


def _net(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(D, 8), nn.Dropout(0.1), nn.ReLU(), nn.Linear(8, C))


def _windows() -> torch.Tensor:
    return byte_windows("the quick brown fox jumps over the lazy dog. " * 8, 8)


def _gpt() -> GPT:
    torch.manual_seed(0)
    return GPT(GPTConfig(d_model=16, n_layer=1, n_head=2, block_size=8, dropout=0.1))


# --- 1: callback values reach the caller ----------------------------------------------------------


def test_fit_appends_callback_values_into_a_given_log():
    x, y = _data()
    log = TrainLog()
    fit(
        _net(), None, (x, y), epochs=1, batch_size=16, progress=False, log=log,
        on_step=lambda s: {"seen": float(s.index)}, on_eval=lambda done, m: {"probe": 1.0}, eval_at=[4],
    )  # fmt: skip
    assert [row["seen"] for row in log.steps] == [0.0, 1.0, 2.0, 3.0]
    assert log.evals == [{"step": 4.0, "probe": 1.0}]


def test_fit_lm_appends_into_a_given_log_and_returns_it():
    log = TrainLog()
    out = fit_lm(_gpt(), _windows(), steps=2, batch_size=4, log=log, on_step=lambda s: {"k": 2.0})
    assert out is log and [row["k"] for row in log.steps] == [2.0, 2.0]


# --- 2: the seeded RNG is restored on the model's devices -----------------------------------------


def test_cuda_devices_of_a_cpu_model_is_empty_and_seed_restores_the_cpu_rng():
    assert cuda_devices(_net()) == []
    x, y = _data()
    model = _net()
    before = torch.random.get_rng_state()

    def loss_fn(model, index):
        return Loss(F.cross_entropy(model(x[index]), y[index]))

    batches = [torch.arange(8)] * 2
    train_steps(model, torch.optim.SGD(model.parameters(), lr=0.1), batches, loss_fn, steps=2, seed=3)
    assert torch.equal(torch.random.get_rng_state(), before)


# --- 5, 14: modes are restored, even on errors ----------------------------------------------------


def test_an_error_in_on_eval_restores_the_train_mode():
    model = _net().train()

    def boom(done, m):
        raise RuntimeError("probe failed")

    with pytest.raises(RuntimeError, match="probe failed"):
        train_steps(model, torch.optim.SGD(model.parameters(), lr=0.1), [], None, steps=0, on_eval=boom,
                    eval_at=[0])  # fmt: skip
    assert model.training


@pytest.mark.parametrize("training", [True, False])
def test_fit_and_fit_lm_leave_the_model_in_its_mode(training):
    x, y = _data()
    model = _net().train(training)
    fit(model, None, (x, y), epochs=1, batch_size=32, progress=False)
    assert model.training is training
    gpt = _gpt().train(training)
    fit_lm(gpt, _windows(), steps=1, batch_size=4)
    assert gpt.training is training


@pytest.mark.parametrize(
    "device",
    ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no GPU"))],
)
def test_lm_batches_move_to_the_model_device(device):
    seen = []

    class Spy(nn.Module):  # records the device of every batch it is given
        def __init__(self):
            super().__init__()
            self.inner = _gpt()

        def forward(self, idx):
            seen.append(idx.device.type)
            return self.inner(idx)

    model, windows = Spy().to(device), _windows()  # the windows stay on the CPU
    fit_lm(model, windows, steps=1, batch_size=4)
    lm_metrics(model, windows[:4, :-1], windows[:4, 1:])
    assert seen and set(seen) == {device}


# --- 6: a loss_fn that declares `step` sees the step index ----------------------------------------


def test_a_step_aware_loss_fn_sees_each_step_index():
    x, y = _data()
    model, seen = _net(), []

    def loss_fn(model, index, *, step):
        seen.append(step)
        return Loss(F.cross_entropy(model(x[index]), y[index]))

    assert takes_step(loss_fn) and not takes_step(lambda model, batch: None)
    train_steps(model, torch.optim.SGD(model.parameters(), lr=0.1), [torch.arange(8)] * 3, loss_fn, steps=3)
    assert seen == [0, 1, 2]


def test_fit_lm_passes_the_step_to_loss_fn_and_extra_loss():
    seen, extra = [], []

    def loss_fn(model, batch, *, step):
        seen.append(step)
        return lm_loss(model, batch)

    def extra_loss(step, output):
        extra.append(step)
        return torch.zeros(())

    fit_lm(_gpt(), _windows(), steps=3, batch_size=4, loss_fn=loss_fn, extra_loss=extra_loss)
    assert seen == extra == [0, 1, 2]


# --- 8: None callbacks, the public helper ---------------------------------------------------------


def test_fit_and_fit_lm_accept_none_callbacks():
    x, y = _data()
    fit(_net(), None, (x, y), epochs=1, batch_size=32, progress=False, on_step=None, on_eval=None)
    fit_lm(_gpt(), _windows(), steps=1, batch_size=4, on_step=None, on_eval=None)
    assert as_callbacks(None, "on_step") == [] and len(as_callbacks([print, print], "x")) == 2
    with pytest.raises(TypeError, match="on_step must be a callable"):
        as_callbacks([1], "on_step")


# --- 3: the search leaves no gradient on the model -------------------------------------------------


def test_concrete_ticket_search_sets_no_grad_on_the_model():
    model = net(0)
    flags = {name: p.requires_grad for name, p in model.named_parameters()}
    params = {f: model.get_parameter(f) for f in TARGETS}
    inputs = torch.randn(16, 12, generator=torch.Generator().manual_seed(0))
    config = cts.CTSConfig(sparsity=0.5, iterations=3, batch_size=8)
    cts.concrete_ticket_search(
        model, params, inputs, sparsity=0.5, distribution="global", config=config,
        generator=torch.Generator().manual_seed(1),
    )  # fmt: skip
    assert all(p.grad is None for p in model.parameters())
    assert {name: p.requires_grad for name, p in model.named_parameters()} == flags
