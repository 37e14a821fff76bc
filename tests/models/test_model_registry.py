"""Every registered model: builds, runs, seeds deterministically, names its classifier."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from sparsetorch.evaluation import logits_of
from sparsetorch.masks import head_fqns, resolve_targets
from sparsetorch.models import MODELS, ModelSpec, create_model, list_models
from sparsetorch.models.resnet import ResNet

RANDOM_INIT = [name for name, spec in MODELS.items() if not spec.loads_weights]
OUTPUTS = {"image-classification": lambda x: (x.shape[0], 10), "causal-lm": lambda x: (*x.shape, 256)}


def params(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.named_parameters()}


def test_registered_names():
    assert set(list_models()) >= {
        "lenet-300-100",
        "lenet-5",
        "resnet-20",
        "gpt-tiny",
        "minilm-l6",
        "moe-gpt-tiny",
    }
    assert list_models("lenet-*") == ["lenet-300-100", "lenet-5"]
    assert all(isinstance(spec, ModelSpec) and spec.name == name for name, spec in MODELS.items())


def test_unknown_name_suggests_close_ones():
    with pytest.raises(KeyError, match="did you mean 'lenet-5'"):
        create_model("lenet5")


@pytest.mark.parametrize("name", RANDOM_INIT)
def test_builds_and_forward_shape(name):
    spec = MODELS.get(name)
    model = create_model(name, seed=0)
    x = spec.example_input(3, generator=torch.Generator().manual_seed(0))
    out = logits_of(model(x))  # MoEGPT returns MoEGPTOutput(logits, aux_loss, aux)
    assert out.shape == OUTPUTS[spec.task](x)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", RANDOM_INIT)
def test_seed_determines_parameters(name):
    a, b, c = (params(create_model(name, seed=s)) for s in (7, 7, 8))
    assert a.keys() == b.keys() == c.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a)


def test_seed_leaves_global_rng_alone():
    state = torch.get_rng_state()
    create_model("lenet-5", seed=3)
    assert torch.equal(state, torch.get_rng_state())


@pytest.mark.parametrize("name", RANDOM_INIT)
def test_classifier_is_a_named_linear(name):
    model = create_model(name)
    modules = dict(model.named_modules())
    (head,) = head_fqns(model)
    assert head == model.classifier_fqn
    assert f"{head}.weight" not in resolve_targets(model)
    assert isinstance(modules[head], nn.Linear)
    # The classifier is the last Linear registered, i.e. the output layer.
    assert [n for n, m in modules.items() if isinstance(m, nn.Linear)][-1] == head


def test_lenet_names_and_overrides():
    model = create_model("lenet-300-100", hidden=(64, 32))
    assert [n for n, _ in model.named_children()] == ["flatten", "fc1", "fc2", "fc3"]
    assert model.fc1.out_features == 64 and model.fc2.out_features == 32
    assert model(torch.randn(2, 784)).shape == (2, 10)  # flat input works too
    lenet5 = create_model("lenet-5")
    assert lenet5.fc1.in_features == 16 * 5 * 5
    assert sum(p.numel() for p in lenet5.parameters()) == 61_706


def test_resnet20_matches_paper():
    model = create_model("resnet-20")
    assert isinstance(model, ResNet)
    convs = [n for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 19  # 1 stem + 3 stages x 3 blocks x 2; option A shortcuts have no weights
    assert round(sum(p.numel() for p in model.parameters()) / 1e6, 2) == 0.27
    assert [model.layer1[0].conv1.out_channels, model.layer2[0].conv1.out_channels] == [16, 32]


def test_resnet_width_and_projection_shortcut():
    model = create_model("resnet-20", width=0.5, shortcut="B", num_classes=3)
    assert model.layer3[0].conv1.out_channels == 32
    assert isinstance(model.layer2[0].shortcut[0], nn.Conv2d)
    assert model(torch.randn(2, 1, 28, 28)).shape == (2, 3)
    with pytest.raises(ValueError, match="6n \\+ 2"):
        create_model("resnet-20", depth=21)
