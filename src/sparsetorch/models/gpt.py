"""A tiny byte-level causal GPT (Radford et al. 2019, "Language models are unsupervised multitask
learners"), written in the style of nanoGPT (Karpathy 2022).

Tokens are raw UTF-8 bytes (vocab 256), so `encode` / `decode` need no tokenizer. The network:
token + learned position embeddings -> `blocks` (an `nn.ModuleList` of pre-LN transformer blocks:
`x + attn(ln1(x))`, then `x + mlp(ln2(x))`) -> `ln_f` -> `lm_head`. Attention uses
`F.scaled_dot_product_attention(is_causal=True)` with separate `q_proj`/`k_proj`/`v_proj`/`out_proj`
`nn.Linear` layers, and the MLP is `fc1` -> GELU -> `fc2`, so every prunable weight is an
`nn.Linear` with a readable FQN (`blocks.2.attn.k_proj`).

`lm_head` is untied from the token embedding by default (`tie_weights=False`): with tying, one
Parameter would be both the embedding and the head, so a mask placed on the head would silently
sparsify the embedding too. `lm_head` is the `classifier_fqn` and stays dense by default.
Initialisation follows GPT-2: N(0, 0.02) everywhere, residual projections (`out_proj`, `fc2`)
scaled by 1/sqrt(2 * n_layer).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from sparsetorch.data.shakespeare import byte_ids
from sparsetorch.models.registry import MODELS, ModelSpec


def encode(text: str) -> torch.Tensor:
    """UTF-8 bytes of `text` as a 1-D int64 tensor of ids in [0, 256) (`data.shakespeare.byte_ids`)."""
    return byte_ids(text)


def decode(ids: torch.Tensor | list[int]) -> str:
    """Inverse of `encode`; invalid UTF-8 (possible in sampled text) becomes U+FFFD."""
    if isinstance(ids, torch.Tensor):
        ids = ids.reshape(-1).tolist()
    return bytes(ids).decode("utf-8", errors="replace")


@dataclass(frozen=True)
class GPTConfig:
    """Hyperparameters of the tiny GPT; the defaults are `gpt-tiny` (0.87M parameters)."""

    vocab_size: int = 256
    n_layer: int = 4
    n_head: int = 4
    d_model: int = 128
    block_size: int = 128
    mlp_ratio: int = 4
    dropout: float = 0.0
    bias: bool = True
    tie_weights: bool = False

    def __post_init__(self) -> None:
        if self.d_model % self.n_head:
            raise ValueError(f"d_model ({self.d_model}) must be divisible by n_head ({self.n_head})")
        if min(self.vocab_size, self.n_layer, self.n_head, self.block_size, self.mlp_ratio) < 1:
            raise ValueError("vocab_size, n_layer, n_head, block_size and mlp_ratio must be positive")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")


class CausalSelfAttention(nn.Module):
    """Multi-head causal self-attention with separate q/k/v/out projections."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        d, b = config.d_model, config.bias
        self.n_head = config.n_head
        self.dropout = config.dropout
        self.q_proj = nn.Linear(d, d, bias=b)
        self.k_proj = nn.Linear(d, d, bias=b)
        self.v_proj = nn.Linear(d, d, bias=b)
        self.out_proj = nn.Linear(d, d, bias=b)
        self.resid_drop = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape
        # (B, T, C) -> (B, n_head, T, head_dim)
        q, k, v = (
            p(x).view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
            for p in (self.q_proj, self.k_proj, self.v_proj)
        )
        y = F.scaled_dot_product_attention(
            q, k, v, dropout_p=self.dropout if self.training else 0.0, is_causal=True
        )
        y = y.transpose(1, 2).reshape(B, T, C)  # (B, n_head, T, head_dim) -> (B, T, C)
        return self.resid_drop(self.out_proj(y))


class MLP(nn.Module):
    """`fc2(gelu(fc1(x)))` with hidden width `mlp_ratio * d_model`."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        hidden = config.mlp_ratio * config.d_model
        self.fc1 = nn.Linear(config.d_model, hidden, bias=config.bias)
        self.fc2 = nn.Linear(hidden, config.d_model, bias=config.bias)
        self.drop = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.fc2(F.gelu(self.fc1(x))))


class Block(nn.Module):
    """Pre-LN transformer block."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(config.d_model, bias=config.bias)
        self.attn = CausalSelfAttention(config)
        self.ln2 = nn.LayerNorm(config.d_model, bias=config.bias)
        self.mlp = MLP(config)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class GPT(nn.Module):
    """Byte-level causal language model; `forward(idx) -> logits`, see the module docstring."""

    classifier_fqn = "lm_head"
    blocks_fqn = "blocks"

    def __init__(self, config: GPTConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or GPTConfig()
        self.tok_emb = nn.Embedding(config.vocab_size, config.d_model)
        self.pos_emb = nn.Embedding(config.block_size, config.d_model)
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layer))
        self.ln_f = nn.LayerNorm(config.d_model, bias=config.bias)
        self.lm_head = nn.Linear(config.d_model, config.vocab_size, bias=False)
        self.apply(self._init_weights)
        for name, p in self.named_parameters():
            if name.endswith(("out_proj.weight", "fc2.weight")):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))
        if config.tie_weights:
            self.lm_head.weight = self.tok_emb.weight

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        """Logits `(B, T, vocab_size)` for token ids `idx` of shape `(B, T)`, `T <= block_size`."""
        seq_len = idx.shape[1]
        if seq_len > self.config.block_size:
            raise ValueError(f"sequence length {seq_len} exceeds block_size {self.config.block_size}")
        pos = torch.arange(seq_len, device=idx.device)
        x = self.drop(self.tok_emb(idx) + self.pos_emb(pos))  # (B, T, d_model)
        for block in self.blocks:
            x = block(x)
        return self.lm_head(self.ln_f(x))

    def loss(self, idx: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Mean next-token cross-entropy in nats; `targets` `(B, T)` are usually `idx` shifted by one."""
        logits = self(idx)
        return F.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1))  # (B*T, V)

    @torch.no_grad()
    def generate(
        self,
        idx: torch.Tensor,
        max_new_tokens: int,
        *,
        temperature: float = 1.0,
        top_k: int | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Sample `max_new_tokens` continuations of `idx` `(B, T)`; returns `(B, T + max_new_tokens)`.

        The context is cropped to the last `block_size` tokens. `temperature=0` decodes greedily.
        Sampling draws from `generator` (pass a seeded one for reproducible text). Call `eval()`
        first when the model has dropout.
        """
        for _ in range(max_new_tokens):
            logits = self(idx[:, -self.config.block_size :])[:, -1, :]  # (B, vocab)
            if temperature == 0:
                nxt = logits.argmax(dim=-1, keepdim=True)
            else:
                logits = logits / temperature
                if top_k is not None:
                    kth = torch.topk(logits, min(top_k, logits.size(-1))).values[:, -1:]
                    logits = logits.masked_fill(logits < kth, float("-inf"))
                probs = F.softmax(logits, dim=-1)
                nxt = torch.multinomial(probs, 1, generator=generator)  # (B, 1)
            idx = torch.cat([idx, nxt], dim=1)
        return idx

    encode = staticmethod(encode)
    decode = staticmethod(decode)


def _gpt_tiny(**config) -> GPT:
    return GPT(GPTConfig(**config))


MODELS.register(
    "gpt-tiny",
    ModelSpec(
        name="gpt-tiny",
        factory=_gpt_tiny,
        summary="byte-level causal GPT, 4 layers x 128 d, 4 heads, context 128 (0.87M params)",
        task="causal-lm",
        input_kind="tokens",
        input_shape=(32,),
        vocab_size=256,
        paper="Radford et al. 2019, Language models are unsupervised multitask learners (nanoGPT-style)",
    ),
)
