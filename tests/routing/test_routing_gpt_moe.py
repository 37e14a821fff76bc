"""The MoE tiny GPT: structure, causality by suffix perturbation, determinism, training, bad input."""

from __future__ import annotations

import math

import pytest
import torch

from sparsetorch.models.gpt import Block, GPTConfig
from sparsetorch.models.moe_gpt import MoEBlock, MoEGPT, MoEGPTConfig, post_moe_layers
from sparsetorch.models.moe_train import train_moe_gpt
from sparsetorch.routing import MoE

SMALL = GPTConfig(d_model=32, n_layer=3, n_head=2, block_size=16)
B, S, CUT = 2, 16, 9
TEXT = ("to be or not to be, that is the question. " * 40, "whether 'tis nobler in the mind to suffer. " * 8)


def _cfg(**kw) -> MoEGPTConfig:
    return MoEGPTConfig(gpt=SMALL, **kw)


def _ids(seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 256, (B, S), generator=torch.Generator().manual_seed(seed))


def test_default_is_gpt_tiny_with_eight_experts_top2_everywhere():
    model = MoEGPT()
    assert model.config == GPTConfig() and len(model.blocks) == 4
    for i, block in enumerate(model.blocks):
        assert isinstance(block, MoEBlock) and not hasattr(block, "mlp")
        assert (block.moe.num_experts, block.moe.k, block.moe.causal) == (8, 2, True)
        assert block.moe.gate.name == f"blocks.{i}.moe.gate"
    names = dict(model.named_parameters())
    assert "blocks.0.attn.q_proj.weight" in names and "blocks.3.moe.experts.w1" in names


def test_post_moe_keeps_dense_ffns_below():
    assert post_moe_layers(4, 2) == (2, 3)
    model = MoEGPT(_cfg(moe_layers=post_moe_layers(3, 1)))
    assert [type(b) for b in model.blocks] == [Block, Block, MoEBlock]
    out = model(_ids())
    assert list(out.aux) == ["blocks.2.moe"]


def test_forward_returns_logits_and_the_summed_aux_loss():
    model = MoEGPT(_cfg()).train()
    out = model(_ids())
    assert out.logits.shape == (B, S, 256)
    assert set(out.aux) == {"blocks.0.moe", "blocks.1.moe", "blocks.2.moe"}
    total = sum(a["loss"] for a in out.aux.values())
    torch.testing.assert_close(out.aux_loss, total)
    assert out.aux_loss.requires_grad and all(a["load"].sum() == B * S * 2 for a in out.aux.values())
    ce = model.loss(_ids()[:, :-1], _ids()[:, 1:])
    assert ce.dim() == 0 and math.isfinite(ce.item())


# (gate, capacity factor, training mode); ssr and sinkhorn are causal at eval only
CAUSAL_CASES = [
    ("top-k", None, True),
    ("top-k", None, False),
    ("top-k", 1.0, True),
    ("switch", None, True),
    ("hash", None, True),
    ("ssr", None, False),
    ("sinkhorn", None, False),
]


@pytest.mark.parametrize(("gate", "cf", "train"), CAUSAL_CASES)
def test_suffix_perturbation_leaves_earlier_logits_unchanged(gate, cf, train):
    k = 1 if gate == "switch" else 2
    kwargs = {"vocab_size": 256} if gate == "hash" else {}
    model = MoEGPT(_cfg(gate=gate, k=k, gate_kwargs=kwargs, capacity_factor=cf, seed=1))
    model.train(train)  # ssr and sinkhorn route by plain top-k at eval, which is causal
    idx = _ids()
    idx2 = idx.clone()
    idx2[:, CUT:] = (idx2[:, CUT:] + 17) % 256
    with torch.no_grad():
        a, b = model(idx), _rebuild(model)(idx2)
    if cf is not None:
        assert any(v["dropped_slots"].item() > 0 for v in a.aux.values())  # drops happen, causally
    # Expert matmuls see different row counts, so allow float reassociation (~1e-8), not a leak.
    torch.testing.assert_close(a.logits[:, :CUT], b.logits[:, :CUT], atol=1e-6, rtol=0)
    assert (a.logits[:, CUT:] - b.logits[:, CUT:]).abs().max() > 1e-2


def test_ssr_in_training_leaks_the_future_as_documented():
    model = MoEGPT(_cfg(gate="ssr", gate_kwargs={"p": 1.0})).train()  # the plan balances over all tokens
    assert all(not b.moe.causal for b in model.blocks)
    idx = _ids()
    idx2 = idx.clone()
    idx2[:, CUT:] = (idx2[:, CUT:] + 17) % 256
    with torch.no_grad():
        a, b = model(idx), _rebuild(model)(idx2)
    assert (a.logits[:, :CUT] - b.logits[:, :CUT]).abs().max() > 1e-4


def _rebuild(model: MoEGPT) -> MoEGPT:
    """A fresh copy with the same weights and mode, so seeded gate draws restart identically."""
    twin = MoEGPT(model.moe_config)
    twin.load_state_dict(model.state_dict())
    return twin.train(model.training)


def test_same_seed_same_model_and_training():
    a, b = MoEGPT(_cfg(seed=3)), MoEGPT(_cfg(seed=3))
    assert all(
        torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values(), strict=True)
    )
    assert not torch.equal(MoEGPT(_cfg(seed=4)).blocks[0].moe.experts.w1, a.blocks[0].moe.experts.w1)
    runs = [
        train_moe_gpt(
            config=_cfg(gate="ssr", gate_kwargs={"p": 0.5}), steps=4, batch_size=4, eval_windows=8, text=TEXT
        )
        for _ in range(2)
    ]
    assert runs[0].history == runs[1].history  # losses, routing statistics and Sinkhorn draws
    assert runs[0].val_loss == runs[1].val_loss
    assert any(row.get("sinkhorn_calls", 0) > 0 for row in runs[0].history)


def test_training_reports_perplexity_and_per_step_routing():
    lines: list[str] = []
    result = train_moe_gpt(
        config=_cfg(capacity_factor=1.25, eval_capacity_factor=0.0),
        steps=6, batch_size=4, eval_windows=8, log_every=2, log=lines.append, text=TEXT,
    )  # fmt: skip
    assert len(lines) == 4 and lines[0].startswith("step 1/6") and "balance_loss=" in lines[0]
    assert len(result.history) == len(result.step_seconds) == len(result.step_cpu_seconds) == 6
    row = result.history[-1]
    for key in ("loss", "aux_loss", "balance_loss", "max_load_ratio", "router_entropy", "dropped_fraction",
                "load_entropy", "dead_experts"):  # fmt: skip
        assert key in row and math.isfinite(row[key])
    assert 0.0 <= row["dropped_fraction"] <= 1.0 and row["max_load_ratio"] >= 1.0
    assert math.isclose(result.val_perplexity, math.exp(result.val_loss))
    assert result.val_perplexity < 256 and result.train_seconds > 0
    assert set(result.routing) == {"blocks.0.moe", "blocks.1.moe", "blocks.2.moe"}
    assert all(r["dropped_fraction"] == 0.0 for r in result.eval_routing.values())  # eval cf=0 never drops
    assert not result.model.training
    assert 0.0 <= result.window("dropped_fraction") <= 1.0 and math.isnan(result.window("absent"))


def test_generate_and_ssr_gate_seeds_differ_per_layer():
    model = MoEGPT(_cfg(gate="ssr", gate_kwargs={"seed": 7})).eval()
    out = model.generate(_ids()[:1, :4], 5, temperature=0)
    assert out.shape == (1, 9)
    assert [b.moe.gate.seed for b in model.blocks] == [7, 8, 9]


def test_nan_router_logits_name_the_layer():
    model = MoEGPT(_cfg())
    with torch.no_grad():
        model.blocks[1].moe.gate.weight.fill_(math.nan)
    with pytest.raises(ValueError, match=r"blocks\.1\.moe\.gate"):
        model(_ids())


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="k must be"):
        _cfg(num_experts=4, k=5)
    for layers in ((), (0, 0), (3,), (-1,)):
        with pytest.raises(ValueError, match="moe_layers"):
            _cfg(moe_layers=layers)
    with pytest.raises(KeyError, match="gate"):
        _cfg(gate="top_k")
    with pytest.raises(TypeError, match="GPTConfig"):
        MoEGPTConfig(gpt={"d_model": 32})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="n_moe"):
        post_moe_layers(3, 4)
    model = MoEGPT(_cfg())
    with pytest.raises(ValueError, match="block_size"):
        model(torch.zeros(1, SMALL.block_size + 1, dtype=torch.long))
    with pytest.raises(ValueError, match="batch, seq"):
        model(torch.zeros(8, dtype=torch.long))
    with pytest.raises(ValueError, match="positive"):
        train_moe_gpt(config=_cfg(), steps=0, text=TEXT)
    with pytest.raises(ValueError, match="too short"):
        train_moe_gpt(config=_cfg(), steps=1, text=("abc", "def"))
    with pytest.raises(ValueError, match="log_every"):
        train_moe_gpt(config=_cfg(), steps=1, log_every=0, text=TEXT)
    assert isinstance(MoEGPT(_cfg()).blocks[0].moe, MoE)


@pytest.mark.parametrize("name", ["MoEGPT", "MoEGPTConfig", "MoEBlock", "post_moe_layers", "train_moe_gpt"])
def test_old_routing_names_are_deprecated_aliases(name):
    import sparsetorch.models.moe_gpt
    import sparsetorch.models.moe_train
    import sparsetorch.routing.gpt_moe as old

    with pytest.warns(DeprecationWarning, match=f"gpt_moe.{name} is deprecated"):
        alias = getattr(old, name)
    new = getattr(sparsetorch.models.moe_gpt, name, None) or getattr(sparsetorch.models.moe_train, name)
    assert alias is new
    with pytest.raises(AttributeError):
        old.not_a_name  # noqa: B018
