"""A tiny byte-level GPT whose FFNs are sparse `MoE` layers (`MoEGPT`, registered as `moe-gpt-tiny`).

`MoEGPT` reuses `sparsetorch.models.gpt`: it builds the plain `GPT` (embeddings, `Block`s, `ln_f`,
`lm_head`, GPT-2 initialisation) and, in the chosen layers, swaps the block for a `MoEBlock` that keeps
the block's `ln1`, `attn` and `ln2` and replaces its MLP with `MoE(d_model, E, k)`:

    x = x + attn(ln1(x));  y, aux = moe(ln2(x));  x = x + y

so a token whose slots are all dropped (capacity mode) passes through on the residual. The default is
8 experts, top-2, in every layer; `moe_layers=post_moe_layers(n_layer, m)` puts MoE only in the last m
layers and keeps dense FFNs below (Post-MoE, `language-family-moe`). Experts are GPT-2 initialised
(N(0, 0.02), the output projection scaled by 1/sqrt(2 n_layer), zero biases).

`forward(idx) -> MoEGPTOutput(logits, aux_loss, aux)`: `aux_loss` is the sum over MoE layers of each
layer's `aux["loss"]` (balance_coef * balance_loss + z_coef * z_loss), to add to the task loss; `aux`
maps each MoE layer's FQN (`blocks.3.moe`) to its aux values. Token ids are passed to every MoE
layer, so the hash gate works by name. `training.lm.fit_lm` adds `aux_loss` to the loss by default;
`models.moe_train.train_moe_gpt` trains one on Shakespeare and records routing statistics.

Causality: each MoE layer is built with `causal=True` when its gate is causal-safe (top-k, switch,
hash, random), so the model is causal end to end. A gate that is not causal-safe (`ssr`, `sinkhorn`,
`expert-choice`) is accepted with `causal=False`: its *training* routing sees later tokens of the batch
(as Sinkhorn routing does in Megatron). `ssr` and `sinkhorn` route by plain top-k at eval, so held-out
perplexity is measured causally.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sparsetorch.models.gpt import GPT, Block, GPTConfig
from sparsetorch.models.registry import MODELS, ModelSpec
from sparsetorch.routing import GATES  # importing the package registers every gate (ssr, graph, forced)
from sparsetorch.routing.gates import HashGate, LinearGate, RandomGate
from sparsetorch.routing.moe import MoE, name_gates

__all__ = ["MoEBlock", "MoEGPT", "MoEGPTConfig", "MoEGPTOutput", "post_moe_layers"]


def post_moe_layers(n_layer: int, n_moe: int) -> tuple[int, ...]:
    """The last `n_moe` of `n_layer` layers: Post-MoE (sparse routing only in the later layers)."""
    if not (isinstance(n_moe, int) and 1 <= n_moe <= n_layer):
        raise ValueError(f"Post-MoE needs 1 <= n_moe <= n_layer={n_layer}, got {n_moe}")
    return tuple(range(n_layer - n_moe, n_layer))


@dataclass(frozen=True)
class MoEGPTConfig:
    """The GPT config plus the MoE FFNs.

    Args:
        gpt: the dense model's config (`GPTConfig`; its `mlp_ratio` sizes the dense FFNs left below
            Post-MoE layers).
        num_experts: E.
        k: experts per token.
        moe_layers: indices of the layers with MoE FFNs; None for every layer.
        expert: "ffn" (GELU, like the dense MLP) or "glu" (SwiGLU).
        expert_hidden: width h of each expert; default `mlp_ratio * d_model` (the dense MLP's width,
            so a token computes k times the dense FFN).
        gate: a registered gate name (`sparsetorch.routing.GATES`).
        gate_kwargs: extra gate arguments (mode, jitter, p, ...). Gates that take a `seed` (linear
            routers, random, hash) get `seed + i` in layer i (`seed` defaults to the config's), so
            layers draw their noise and Sinkhorn calls independently.
        capacity_factor: None for dropless; else Tutel's cf in training.
        eval_capacity_factor: cf at eval (default: `capacity_factor`; 0 never drops).
        balance_coef, z_coef: weights of the balance loss and z-loss in `aux_loss`.
        seed: initialises all parameters (the caller's global RNG is left alone).
    """

    gpt: GPTConfig = field(default_factory=GPTConfig)
    num_experts: int = 8
    k: int = 2
    moe_layers: tuple[int, ...] | None = None
    expert: str = "ffn"
    expert_hidden: int | None = None
    gate: str = "top-k"
    gate_kwargs: Mapping[str, Any] = field(default_factory=dict)
    capacity_factor: float | None = None
    eval_capacity_factor: float | None = None
    balance_coef: float = 1e-2
    z_coef: float = 1e-3
    seed: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.gpt, GPTConfig):
            raise TypeError(f"gpt must be a GPTConfig, got {type(self.gpt).__name__}")
        if not (isinstance(self.num_experts, int) and self.num_experts >= 1):
            raise ValueError(f"num_experts must be a positive integer, got {self.num_experts}")
        if not (isinstance(self.k, int) and 1 <= self.k <= self.num_experts):
            raise ValueError(f"k must be in [1, num_experts={self.num_experts}], got {self.k}")
        if self.moe_layers is not None:
            layers = tuple(self.moe_layers)
            n = self.gpt.n_layer
            if not layers or len(set(layers)) != len(layers) or not all(0 <= i < n for i in layers):
                raise ValueError(f"moe_layers must be distinct layer indices in [0, {n}), got {layers}")
            object.__setattr__(self, "moe_layers", tuple(sorted(layers)))
        if self.expert_hidden is not None and not (
            isinstance(self.expert_hidden, int) and self.expert_hidden >= 1
        ):
            raise ValueError(f"expert_hidden must be a positive integer or None, got {self.expert_hidden}")
        GATES.get(self.gate)  # unknown gate: KeyError with suggestions

    @property
    def layers(self) -> tuple[int, ...]:
        """Indices of the MoE layers."""
        return tuple(range(self.gpt.n_layer)) if self.moe_layers is None else tuple(self.moe_layers)


class MoEGPTOutput(NamedTuple):
    """`logits` (B, T, vocab), `aux_loss` () to add to the task loss, `aux` per MoE layer FQN."""

    logits: Tensor
    aux_loss: Tensor
    aux: dict[str, dict[str, Tensor]]


class MoEBlock(nn.Module):
    """A pre-LN block whose FFN is a `MoE`: it keeps `ln1`, `attn` and `ln2` of a `models.gpt.Block`."""

    def __init__(self, block: Block, moe: MoE) -> None:
        super().__init__()
        self.ln1, self.attn, self.ln2 = block.ln1, block.attn, block.ln2
        self.moe = moe

    def forward(
        self, x: Tensor, *, token_ids: Tensor | None = None, expert_ids: Tensor | None = None
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """(B, T, d) -> (B, T, d) and the MoE's aux values; `expert_ids` (B, T, k) force experts."""
        x = x + self.attn(self.ln1(x))
        y, aux = self.moe(self.ln2(x), token_ids=token_ids, expert_ids=expert_ids)
        return x + y, aux


class MoEGPT(GPT):
    """Byte-level causal GPT with MoE FFNs; see the module docstring.

    `config` (the attribute) stays the dense `GPTConfig`, as `GPT` methods expect; the MoE settings
    are `moe_config`.
    """

    def __init__(self, config: MoEGPTConfig | None = None) -> None:
        seeded_gates = (LinearGate, RandomGate, HashGate)
        config = config or MoEGPTConfig()
        gcfg = config.gpt
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            super().__init__(gcfg)
            gen = torch.Generator().manual_seed(config.seed + 1)
            gate_cls = GATES.get(config.gate)
            causal = gate_cls.causal_safe
            for i in config.layers:
                gate_kwargs = dict(config.gate_kwargs)
                if issubclass(gate_cls, seeded_gates):  # distinct draws per layer (jitter, branch, hash)
                    gate_kwargs["seed"] = int(gate_kwargs.get("seed", config.seed)) + i
                moe = MoE(
                    gcfg.d_model,
                    config.num_experts,
                    config.k,
                    expert=config.expert,  # type: ignore[arg-type]
                    hidden=config.expert_hidden or gcfg.mlp_ratio * gcfg.d_model,
                    gate=config.gate,
                    gate_kwargs=gate_kwargs,
                    capacity_factor=config.capacity_factor,
                    eval_capacity_factor=config.eval_capacity_factor,
                    causal=causal,
                    balance_coef=config.balance_coef,
                    z_coef=config.z_coef,
                    bias=gcfg.bias,
                )
                _init_moe(moe, n_layer=gcfg.n_layer, generator=gen)
                self.blocks[i] = MoEBlock(self.blocks[i], moe)
        self.moe_config = config
        name_gates(self)  # NaN-logit errors name the layer (blocks.3.moe.gate)

    def forward(self, idx: Tensor, *, expert_ids: Tensor | None = None) -> MoEGPTOutput:  # type: ignore[override]
        """Logits (B, T, vocab), the summed aux loss and per-layer aux for ids `idx` (B, T).

        `expert_ids` (B, T, k), when given, go to every MoE layer (gates that force experts).
        """
        if idx.dim() != 2:
            raise ValueError(f"MoEGPT expects token ids (batch, seq), got shape {tuple(idx.shape)}")
        seq_len = idx.shape[1]
        if seq_len > self.config.block_size:
            raise ValueError(f"sequence length {seq_len} exceeds block_size {self.config.block_size}")
        pos = torch.arange(seq_len, device=idx.device)
        x = self.drop(self.tok_emb(idx) + self.pos_emb(pos))  # (B, T, d_model)
        aux_loss = torch.zeros((), device=idx.device)
        aux: dict[str, dict[str, Tensor]] = {}
        for i, block in enumerate(self.blocks):
            if isinstance(block, MoEBlock):
                x, layer_aux = block(x, token_ids=idx, expert_ids=expert_ids)
                aux[f"blocks.{i}.moe"] = layer_aux
                aux_loss = aux_loss + layer_aux["loss"]
            else:
                x = block(x)
        return MoEGPTOutput(self.lm_head(self.ln_f(x)), aux_loss, aux)

    def loss(self, idx: Tensor, targets: Tensor) -> Tensor:
        """Mean next-token cross-entropy (nats), without the aux loss."""
        logits = self(idx).logits
        return F.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1))  # (B*T, V)

    @torch.no_grad()
    def generate(self, idx: Tensor, max_new_tokens: int, **kwargs: Any) -> Tensor:
        """`GPT.generate` (same arguments) on the logits of this model."""
        return GPT.generate(_LogitsOnly(self), idx, max_new_tokens, **kwargs)  # type: ignore[arg-type]


class _LogitsOnly:
    """Presents a MoEGPT to `GPT.generate`, which calls `self(idx)` for logits."""

    def __init__(self, model: MoEGPT) -> None:
        self.model, self.config = model, model.config

    def __call__(self, idx: Tensor) -> Tensor:
        return self.model(idx).logits


def _init_moe(moe: MoE, *, n_layer: int, generator: torch.Generator) -> None:
    """GPT-2 init of a MoE layer: router and expert inputs N(0, 0.02), outputs N(0, 0.02/sqrt(2L))."""
    ex = moe.experts
    with torch.no_grad():
        if hasattr(moe.gate, "reset_parameters"):
            moe.gate.reset_parameters(generator)
        for p in (ex.w1, ex.wg):
            if p is not None:
                p.normal_(0.0, 0.02, generator=generator)
        ex.w2.normal_(0.0, 0.02 / math.sqrt(2 * n_layer), generator=generator)
        for p in (ex.b1, ex.b2):
            if p is not None:
                p.zero_()


def _moe_gpt_tiny(**config: Any) -> MoEGPT:
    """`moe-gpt-tiny`: `MoEGPTConfig` fields by name, the others `GPTConfig` fields. Without `seed`, the
    init seed is drawn from the global RNG, so `create_model(..., seed=s)` decides it."""
    moe_fields = set(MoEGPTConfig.__dataclass_fields__) - {"gpt"}
    moe = {k: v for k, v in config.items() if k in moe_fields}
    gpt = GPTConfig(**{k: v for k, v in config.items() if k not in moe_fields})
    moe.setdefault("seed", int(torch.randint(2**31 - 1, (), device="cpu")))  # also when built on "meta"
    return MoEGPT(MoEGPTConfig(gpt=gpt, **moe))


MODELS.register(
    "moe-gpt-tiny",
    ModelSpec(
        name="moe-gpt-tiny",
        factory=_moe_gpt_tiny,
        summary="gpt-tiny with MoE FFNs: 8 experts, top-2, in every layer (forward -> MoEGPTOutput)",
        task="causal-lm",
        input_kind="tokens",
        input_shape=(32,),
        vocab_size=256,
        paper="Shazeer et al. 2017, sparsely-gated mixture-of-experts layers in the nanoGPT-style gpt-tiny",
    ),
)
