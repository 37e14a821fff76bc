"""CHESS: channel-wise activation thresholds calibrated on real text, with CATS as the baseline.

Paper: `chess` -- He et al. (2024), "CHESS: Optimizing LLM Inference via Channel-Wise Thresholding
and Selective Sparsification".

Thresholding sparsifies an activation tensor `a` (tokens x channels) by zeroing small entries:

    a'_ti = a_ti * [|a_ti| > t_i]

and the next layer then reads only the rows of its weight whose channel is nonzero
(`activations.gather`). The thresholds are calibrated once, on the dense model, from activations
collected on calibration text (real tokens only; padding is excluded):

- CATS (one threshold per layer): `t_i = T = Q_s(|a|)`, the s-quantile of |a| over all tokens and
  channels of the layer, so that a fraction s of the layer's entries is zeroed;
- CHESS (`mode="chess"`, one threshold per channel): `t_i = Q_s(|a_{:, i}|)`, the s-quantile of
  channel i's |a| over calibration tokens, so that every channel loses the same fraction s. A channel
  whose activations are habitually large keeps its large values and drops only its own small ones,
  where CATS would never zero it (and zero some other channel almost always).
- `mode="chess-norm"` is the paper's error-weighted reformulation for a plain (non-GLU) FFN: the
  output error of zeroing channel i is `|a_ti| * ||W_down[:, i]||`, so the layer threshold is taken on
  that importance, `T = Q_s(|a_ti| w_i)`, and each channel gets `t_i = T / w_i` (the paper's
  `t_i = T_l / E|u_i|` with the down-projection column norm `w_i` in the role of E|u_i|, since a GELU
  FFN has no up-projection gate).

Quantile convention: with N calibration values and k = round(s N), the threshold is the k-th
smallest |a| (`kthvalue`), and entries with |a| <= t are zeroed, so exactly k of the N calibration
values are zeroed when they are distinct (k = 0 gives t = -1, zeroing nothing).

Selective sparsification (the paper's attention rule): in the attention block only the *inputs of
the query projection and of the output projection* are thresholded; the key and value projections
read the dense input. Keys and values are reused by every later token (and cached), so an error
there spreads over the whole sequence, while the query and output inputs affect one token each.
Here the attention-input thresholds follow the FFN's `mode` ("chess-norm" falls back to the
per-channel quantile there, the reading layer being a query / output projection of its own).

Application is a module swap on a copy of the model (`sparsify`): each target activation module is
wrapped in a `ThresholdActivation`, each target linear in a `ThresholdInputLinear`; thresholds are
buffers, so the sparse model saves and loads with `state_dict`. `sparsify_minilm` does this for
all-MiniLM-L6-v2 (FFN act `encoder.layer.*.intermediate.intermediate_act_fn`, attention
`attention.self.query` and `attention.output.dense`); `sparsify_gpt` for the tiny GPT after its
functional GELU is made a module (`blocks.*.mlp.act`; attention `attn.q_proj`, `attn.out_proj`).

Deviation: the paper calibrates on C4 for Llama-style SwiGLU models; here the models are MiniLM and
the tiny GPT (GELU FFNs) and the calibration text is stdlib docstrings / Shakespeare.
"""

from __future__ import annotations

import copy
import fnmatch
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, get_args

import torch
from torch import Tensor, nn

from sparsetorch.activations.base import ACTIVATIONS

__all__ = [
    "GPT_ATTENTION",
    "GPT_FFN",
    "MINILM_ATTENTION",
    "MINILM_FFN",
    "ChessConfig",
    "ThresholdActivation",
    "ThresholdInputLinear",
    "calibrate",
    "channel_thresholds",
    "collect_abs",
    "gpt_with_act_modules",
    "layer_threshold",
    "match_modules",
    "sparsify",
    "sparsify_gpt",
    "sparsify_minilm",
    "threshold",
    "weighted_thresholds",
]

Mode = Literal["cats", "chess", "chess-norm"]
MODES: tuple[str, ...] = get_args(Mode)
MINILM_FFN = "encoder.layer.*.intermediate.intermediate_act_fn"
MINILM_ATTENTION = ("encoder.layer.*.attention.self.query", "encoder.layer.*.attention.output.dense")
GPT_FFN = "blocks.*.mlp.act"
GPT_ATTENTION = ("blocks.*.attn.q_proj", "blocks.*.attn.out_proj")


@dataclass(frozen=True)
class ChessConfig:
    """Thresholding hyperparameters (paper defaults: s = 0.5, channel-wise, selective attention).

    Args:
        sparsity: target fraction s of FFN activations zeroed on calibration data.
        mode: "chess" (per-channel quantile), "chess-norm" (error-weighted) or "cats" (per layer).
        attention_sparsity: target s for the query / output-projection inputs; None leaves attention dense.
        max_tokens: calibration tokens kept per layer (a seeded random subset beyond that).
        seed: seed of that subset.
    """

    sparsity: float = 0.5
    mode: Mode = "chess"
    attention_sparsity: float | None = None
    max_tokens: int = 8192
    seed: int = 0

    def __post_init__(self) -> None:
        for name, s in (("sparsity", self.sparsity), ("attention_sparsity", self.attention_sparsity)):
            if s is not None and not 0.0 <= s < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {s}")
        if self.mode not in MODES:
            raise ValueError(f"unknown mode {self.mode!r}: use one of {', '.join(MODES)}")
        if self.max_tokens < 1:
            raise ValueError(f"max_tokens must be positive, got {self.max_tokens}")


def _kth(values: Tensor, sparsity: float, dim: int | None = None) -> Tensor:
    """The k-th smallest value (k = round(s n)) along `dim` (all values if None); -1 where k = 0."""
    if not 0.0 <= sparsity < 1.0:
        raise ValueError(f"sparsity must be in [0, 1), got {sparsity}")
    flat = values.reshape(-1) if dim is None else values
    n = flat.numel() if dim is None else flat.shape[dim]
    if n == 0:
        raise ValueError("no calibration values")
    k = round(sparsity * n)
    if k == 0:
        shape = () if dim is None else flat.select(dim, 0).shape
        return torch.full(shape, -1.0, dtype=values.dtype, device=values.device)
    return flat.kthvalue(k, dim=0 if dim is None else dim).values


def channel_thresholds(acts: Tensor, sparsity: float) -> Tensor:
    """CHESS thresholds `(C,)`: per channel, the s-quantile of |a| over tokens of `acts` (N, C)."""
    if acts.dim() != 2:
        raise ValueError(f"acts must be (tokens, channels), got shape {tuple(acts.shape)}")
    return _kth(acts.abs().float(), sparsity, dim=0)


def layer_threshold(acts: Tensor, sparsity: float) -> Tensor:
    """The CATS threshold (a 0-d tensor): the s-quantile of |a| over every entry of `acts`."""
    return _kth(acts.abs().float(), sparsity)


def weighted_thresholds(acts: Tensor, weight_norms: Tensor, sparsity: float) -> Tensor:
    """`chess-norm` thresholds `(C,)`: `T / w_i` with T the s-quantile of |a_ti| w_i over (N, C)."""
    if weight_norms.shape != acts.shape[-1:]:
        raise ValueError(f"weight_norms must be ({acts.shape[-1]},), got {tuple(weight_norms.shape)}")
    w = weight_norms.float().clamp_min(1e-12)
    big = _kth(acts.abs().float() * w, sparsity)
    return big / w if big >= 0 else torch.full_like(w, -1.0)


def threshold(x: Tensor, thresholds: Tensor) -> Tensor:
    """`x * (|x| > t)`; t is a scalar or broadcasts along the last (channel) dimension."""
    return x.masked_fill(x.abs() <= thresholds.to(x.dtype), 0.0)


@ACTIVATIONS.register("chess")
class ThresholdActivation(nn.Module):
    """`threshold(act(x), t)`: a wrapped activation module whose small outputs are zeroed.

    Raises:
        TypeError: `act` is not a module or `thresholds` not a tensor.
        ValueError: a threshold is NaN.
    """

    paper: ClassVar[str] = "chess"

    def __init__(self, act: nn.Module, thresholds: Tensor) -> None:
        if not isinstance(act, nn.Module):
            raise TypeError(f"act must be an nn.Module (e.g. nn.GELU()), got {type(act).__name__}")
        if not isinstance(thresholds, Tensor):
            raise TypeError(
                f"thresholds must be a tensor (scalar or per channel), got {type(thresholds).__name__}"
            )
        if torch.isnan(thresholds).any():  # a negative threshold is fine: it keeps every unit
            raise ValueError("thresholds must not be NaN")
        super().__init__()
        self.act = act
        self.register_buffer("thresholds", thresholds.detach().clone().float())

    def forward(self, x: Tensor) -> Tensor:
        return threshold(self.act(x), self.thresholds)

    def extra_repr(self) -> str:
        return f"thresholds={tuple(self.thresholds.shape) or 'scalar'}"


class ThresholdInputLinear(nn.Module):
    """`linear(threshold(x, t))`: a linear layer reading a thresholded input (selective attention)."""

    def __init__(self, linear: nn.Linear, thresholds: Tensor) -> None:
        super().__init__()
        self.linear = linear
        self.register_buffer("thresholds", thresholds.detach().clone().float())

    def forward(self, x: Tensor) -> Tensor:
        return self.linear(threshold(x, self.thresholds))


def match_modules(model: nn.Module, patterns: str | Iterable[str]) -> list[str]:
    """FQNs of the modules matching any of the globs `patterns`; raises ValueError if none does."""
    pats = (patterns,) if isinstance(patterns, str) else tuple(patterns)
    names = [n for n, _ in model.named_modules() if n and any(fnmatch.fnmatchcase(n, p) for p in pats)]
    if not names:
        raise ValueError(f"no module of {type(model).__name__} matches {pats}")
    return names


def _forward(model: nn.Module, batch: Any) -> None:
    if isinstance(batch, Mapping):
        model(**batch)
    else:
        model(batch)


@torch.no_grad()
def collect_abs(
    model: nn.Module,
    batches: Iterable[Any],
    names: Iterable[str],
    *,
    capture: Literal["output", "input"] = "output",
    max_tokens: int = 8192,
    seed: int = 0,
) -> dict[str, Tensor]:
    """The activations `(tokens, channels)` at the output (or input) of each named module.

    Batches are token-id tensors or kwargs dicts; a dict's `attention_mask` drops padded tokens.
    Beyond `max_tokens` tokens a seeded random subset is kept.
    """
    names = list(names)
    modules = dict(model.named_modules())
    store: dict[str, list[Tensor]] = {n: [] for n in names}
    current: dict[str, Tensor | None] = {"mask": None}

    def hook(name: str):
        def fn(_mod: nn.Module, args: tuple, out: Tensor) -> None:
            a = args[0] if capture == "input" else out
            mask = current["mask"]
            flat = a.detach().reshape(-1, a.shape[-1])  # (B*T, C)
            if mask is not None and mask.numel() == flat.shape[0]:
                flat = flat[mask.reshape(-1)]
            store[name].append(flat.float().cpu())

        return fn

    handles = [modules[n].register_forward_hook(hook(n)) for n in names]
    was_training = model.training
    model.eval()
    try:
        for batch in batches:
            if isinstance(batch, Mapping) and "attention_mask" in batch:
                current["mask"] = batch["attention_mask"].bool()
            else:
                current["mask"] = None
            _forward(model, batch)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    g = torch.Generator().manual_seed(seed)
    out = {}
    for n, parts in store.items():
        if not parts:
            raise ValueError(f"module {n!r} was never called on the calibration batches")
        acts = torch.cat(parts)
        if len(acts) > max_tokens:
            acts = acts[torch.randperm(len(acts), generator=g)[:max_tokens]]
        out[n] = acts
    return out


def _thresholds(acts: Tensor, sparsity: float, mode: str, weight_norms: Tensor | None) -> Tensor:
    if mode == "cats":  # one value, stored per channel so every mode has the same buffer shape
        return layer_threshold(acts, sparsity).expand(acts.shape[-1]).clone()
    if mode == "chess":
        return channel_thresholds(acts, sparsity)
    if weight_norms is None:
        raise ValueError("mode 'chess-norm' needs the next layer's column norms")
    return weighted_thresholds(acts, weight_norms, sparsity)


def calibrate(
    model: nn.Module,
    batches: Iterable[Any],
    *,
    ffn: str | Iterable[str],
    attention: str | Iterable[str] = (),
    config: ChessConfig = ChessConfig(),
    ffn_next: Mapping[str, nn.Linear] | None = None,
) -> dict[str, Tensor]:
    """Thresholds for every FFN activation module matching `ffn` (its output is thresholded) and,
    when `config.attention_sparsity` is set, every linear matching `attention` (its input is).

    Args:
        ffn_next: FQN of each FFN activation -> the linear reading it (needed by `chess-norm`).
    """
    batches = list(batches)
    ffn_names = match_modules(model, ffn)
    att_names = match_modules(model, attention) if config.attention_sparsity is not None else []
    out: dict[str, Tensor] = {}
    acts = collect_abs(model, batches, ffn_names, max_tokens=config.max_tokens, seed=config.seed)
    for n in ffn_names:
        norms = None
        if config.mode == "chess-norm":
            if ffn_next is None or n not in ffn_next:
                raise ValueError(f"mode 'chess-norm' needs ffn_next[{n!r}]")
            norms = ffn_next[n].weight.detach().norm(dim=0)  # (C,) column norms of W_down (d, C)
        out[n] = _thresholds(acts.pop(n), config.sparsity, config.mode, norms)
    if att_names:
        acts = collect_abs(
            model, batches, att_names, capture="input", max_tokens=config.max_tokens, seed=config.seed
        )
        assert config.attention_sparsity is not None
        mode = "cats" if config.mode == "cats" else "chess"  # no next-weight norm for attention inputs
        for n in att_names:
            out[n] = _thresholds(acts.pop(n), config.attention_sparsity, mode, None)
    return out


def _set(model: nn.Module, name: str, module: nn.Module) -> None:
    parent, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, child, module)


def sparsify(model: nn.Module, thresholds: Mapping[str, Tensor], *, inplace: bool = False) -> nn.Module:
    """Swap each thresholded module: an `nn.Linear` reads a thresholded input, any other module
    (an activation) has its output thresholded. Returns a copy unless `inplace`."""
    target = model if inplace else copy.deepcopy(model)
    for name, t in thresholds.items():
        mod = target.get_submodule(name)
        wrapped = ThresholdInputLinear(mod, t) if isinstance(mod, nn.Linear) else ThresholdActivation(mod, t)
        _set(target, name, wrapped)
    return target


def sparsify_minilm(
    model: nn.Module, batches: Iterable[Any], config: ChessConfig = ChessConfig()
) -> tuple[nn.Module, dict[str, Tensor]]:
    """A thresholded copy of all-MiniLM-L6-v2 (FFN GELU outputs; query / output-proj inputs when
    `config.attention_sparsity` is set) and its thresholds. Batches are tokenizer dicts."""
    nxt = {
        f"encoder.layer.{i}.intermediate.intermediate_act_fn": layer.output.dense
        for i, layer in enumerate(model.encoder.layer)
    }
    thr = calibrate(model, batches, ffn=MINILM_FFN, attention=MINILM_ATTENTION, config=config, ffn_next=nxt)
    return sparsify(model, thr), thr


class _ActMLP(nn.Module):
    """The tiny GPT's MLP with its functional GELU as a module `act` (so it can be wrapped)."""

    def __init__(self, mlp: nn.Module) -> None:
        super().__init__()
        self.fc1, self.fc2, self.drop = mlp.fc1, mlp.fc2, mlp.drop
        self.act = nn.GELU()

    def forward(self, x: Tensor) -> Tensor:
        return self.drop(self.fc2(self.act(self.fc1(x))))


def gpt_with_act_modules(model: nn.Module) -> nn.Module:
    """A copy of a `models.gpt.GPT` whose MLP activations are modules at `blocks.*.mlp.act`
    (outputs unchanged)."""
    out = copy.deepcopy(model)
    for blk in out.blocks:
        if not hasattr(blk.mlp, "act"):
            blk.mlp = _ActMLP(blk.mlp)
    return out


def sparsify_gpt(
    model: nn.Module, batches: Iterable[Any], config: ChessConfig = ChessConfig()
) -> tuple[nn.Module, dict[str, Tensor]]:
    """A thresholded copy of the tiny GPT (batches: token-id tensors (B, T)) and its thresholds."""
    base = gpt_with_act_modules(model)
    nxt = {f"blocks.{i}.mlp.act": blk.mlp.fc2 for i, blk in enumerate(base.blocks)}
    thr = calibrate(base, batches, ffn=GPT_FFN, attention=GPT_ATTENTION, config=config, ffn_next=nxt)
    return sparsify(base, thr, inplace=True), thr
