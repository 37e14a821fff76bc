"""Masks: targets, attach/read/squash, optimizer steps, state_dict and safetensors round trips."""

import pytest
import torch
from torch import nn

from sparsetorch.masks import attach, get_masks, load, resolve_targets, save, squash
from sparsetorch.patterns import select


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(10, 8)
        self.conv = nn.Conv1d(8, 8, 3, padding=1)
        self.norm = nn.LayerNorm(8)
        self.encoder = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 8))
        self.classifier = nn.Linear(8, 3)

    def forward(self, idx):
        h = self.embed(idx).transpose(1, 2)  # (B, 8, T)
        h = self.conv(h).transpose(1, 2)  # (B, T, 8)
        return self.classifier(self.encoder(self.norm(h)).mean(1))


def mlp():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 2))


def random_masks(model, sparsity=0.5, seed=0):
    g = torch.Generator().manual_seed(seed)
    params = dict(model.named_parameters())
    return {
        f: select(torch.rand(params[f].shape, generator=g), "unstructured", sparsity)
        for f in resolve_targets(model)
    }


def test_default_targets_skip_embeddings_norms_biases_and_head():
    assert resolve_targets(Net()) == ["conv.weight", "encoder.0.weight", "encoder.2.weight"]
    assert resolve_targets(mlp()) == ["0.weight", "2.weight"]  # the last Linear is the classifier


def test_target_and_ignore_globs():
    net = Net()
    assert resolve_targets(net, targets="encoder.*") == [
        "encoder.0.weight",
        "encoder.0.bias",
        "encoder.2.weight",
        "encoder.2.bias",
    ]
    assert resolve_targets(net, targets=["classifier"], ignore="*.bias") == ["classifier.weight"]
    assert resolve_targets(net, ignore="conv") == ["encoder.0.weight", "encoder.2.weight"]
    with pytest.raises(ValueError, match="match no parameter"):
        resolve_targets(net, targets="decoder.*")


def test_keys_are_plain_fqns_before_and_after_masking():
    model = mlp()
    before = resolve_targets(model)
    attach(model, random_masks(model))
    assert list(get_masks(model)) == before == resolve_targets(model)


def test_attach_checks_everything_before_touching_the_model():
    model = mlp()
    reference = {k: v.clone() for k, v in model.state_dict().items()}
    good = random_masks(model)
    with pytest.raises(ValueError, match="shape"):
        attach(model, {**good, "2.weight": torch.ones(3, 3, dtype=torch.bool)})
    with pytest.raises(KeyError, match="no parameter"):
        attach(model, {**good, "9.weight": torch.ones(3, 3, dtype=torch.bool)})
    with pytest.raises(ValueError, match="boolean"):
        attach(model, {"0.weight": torch.full((16, 8), 0.5)})
    assert get_masks(model) == {}
    assert all(torch.equal(reference[k], v) for k, v in model.state_dict().items())


@pytest.mark.parametrize(
    "make_opt",
    [
        lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, weight_decay=0.1),
        lambda p: torch.optim.AdamW(p, lr=0.1, weight_decay=0.1),
    ],
)
def test_masked_weights_stay_zero_after_optimizer_steps(make_opt):
    model = mlp()
    mask = random_masks(model)
    attach(model, mask)
    opt = make_opt(model.parameters())
    x = torch.randn(32, 8)
    for _ in range(5):
        opt.zero_grad()
        model(x).pow(2).mean().backward()
        opt.step()
    params = {"0.weight": model[0].weight, "2.weight": model[2].weight}
    for fqn, m in mask.items():
        assert (params[fqn][~m] == 0).all()
        assert (params[fqn][m] != 0).any()  # the kept weights did train
        # The original's gradient is zero where the mask is off.
        original = model[int(fqn[0])].parametrizations.weight.original
        assert (original.grad[~m] == 0).all()


def test_squash_keeps_outputs_identical_and_removes_parametrizations():
    model = mlp()
    attach(model, random_masks(model, 0.7))
    x = torch.randn(4, 8)
    before = model(x)
    squash(model)
    assert get_masks(model) == {}
    assert "0.weight" in dict(model.named_parameters())
    assert torch.equal(model(x), before)


def test_masks_survive_state_dict_round_trip():
    a, b = mlp(), mlp()
    attach(a, random_masks(a, 0.6, seed=1))
    attach(b, random_masks(b, 0.2, seed=2))  # different masks, same structure
    b.load_state_dict(a.state_dict())
    assert all(torch.equal(get_masks(a)[k], get_masks(b)[k]) for k in get_masks(a))
    x = torch.randn(3, 8)
    assert torch.equal(a(x), b(x))


def test_save_load_round_trip_with_patterns(tmp_path):
    a = mlp()
    attach(a, {"0.weight": select(a[0].weight.abs(), "2:4")}, patterns={"0.weight": "2:4"})
    path = save(a, tmp_path / "m.safetensors")
    b = load(path, mlp())
    x = torch.randn(5, 8)
    assert torch.equal(a(x), b(x))
    assert torch.equal(get_masks(b)["0.weight"], get_masks(a)["0.weight"])
    assert str(b[0].parametrizations.weight[0].pattern) == "2:4"
    assert "2.weight" not in get_masks(b)


def test_load_into_a_masked_model_replaces_its_masks(tmp_path):
    a, b = mlp(), mlp()
    attach(a, random_masks(a, 0.5, seed=3))
    attach(b, {"2.weight": torch.ones(8, 16, dtype=torch.bool)})
    load(save(a, tmp_path / "a.safetensors"), b)
    assert set(get_masks(b)) == {"0.weight", "2.weight"}
    assert torch.equal(get_masks(b)["0.weight"], get_masks(a)["0.weight"])


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty", "not-ours"])
def test_corrupt_checkpoints_raise_clear_errors_and_leave_model_unchanged(tmp_path, damage):
    a = mlp()
    attach(a, random_masks(a))
    path = save(a, tmp_path / "m.safetensors")
    data = path.read_bytes()
    if damage == "truncate":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "garbage":
        path.write_bytes(b"\x80\x04\x95" + b"\x00" * 64)  # a pickle header: never unpickled
    elif damage == "empty":
        path.write_bytes(b"")
    else:
        from safetensors.torch import save_file

        save_file({"x": torch.ones(2)}, str(path))
    b = mlp()
    reference = {k: v.clone() for k, v in b.state_dict().items()}
    with pytest.raises(ValueError, match="checkpoint"):
        load(path, b)
    assert get_masks(b) == {}
    assert all(torch.equal(reference[k], v) for k, v in b.state_dict().items())


def test_checkpoint_for_another_architecture_is_rejected(tmp_path):
    a = mlp()
    path = save(a, tmp_path / "m.safetensors")
    with pytest.raises(ValueError, match="does not fit"):
        load(path, nn.Sequential(nn.Linear(8, 4)))
    with pytest.raises(FileNotFoundError):
        load(tmp_path / "missing.safetensors", a)


def test_masks_module_is_reachable_under_its_own_name():
    import sparsetorch
    import sparsetorch.masks as M

    assert M is sparsetorch.masks and M.attach is attach and M.get_masks is get_masks
    model = mlp()
    M.attach(model, random_masks(model))
    assert set(M.get_masks(model)) == set(resolve_targets(model))


def test_calling_masks_is_deprecated_but_still_returns_the_dict():
    import sparsetorch as st

    model = mlp()
    attach(model, random_masks(model))
    with pytest.warns(DeprecationWarning, match="get_masks"):
        called = st.masks(model)
    with pytest.warns(DeprecationWarning, match="get_masks"):
        from sparsetorch.masks import masks as old_function

        aliased = old_function(model)
    assert called.keys() == aliased.keys() == get_masks(model).keys()
    assert all(called[k] is v for k, v in get_masks(model).items())


def test_public_load_rebuilds_a_registered_model_and_core_load_warns(tmp_path):
    import sparsetorch as st

    model = st.create_model("lenet-300-100", seed=0)
    attach(model, random_masks(model))
    path = save(model, tmp_path / "m.safetensors")
    rebuilt = st.load(path)
    assert get_masks(rebuilt).keys() == get_masks(model).keys()
    with pytest.warns(DeprecationWarning, match="sparsetorch.load"):
        again = load(path)
    assert all(torch.equal(get_masks(again)[k], v) for k, v in get_masks(model).items())
