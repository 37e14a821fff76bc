"""Measure per-layer, per-token activation sparsity of any model with forward hooks.

    >>> with ActivationSparsity(model, targets="blocks.*.mlp.fc2", capture="input") as rec:
    ...     model(tokens)
    >>> rec.results()["blocks.0.mlp.fc2"].sparsity          # fraction of exact zeros
    >>> rec.results()["blocks.0.mlp.fc2"].per_token          # (tokens,) for a histogram

A *token* is one position of the activation tensor's leading dimensions (batch x sequence for a
transformer, batch x height x width for a conv map with `unit_dim=1`); its units are the entries
along `unit_dim`. For each token we record the fraction of exact zeros and the fraction with
|a| <= `threshold`; a layer's `sparsity` is the mean of its tokens' fractions (every token weighs
the same, as in the lazy-neuron paper's per-token counts). Hooks exist only inside the `with`
block and are removed on exit, also when the block raises.

Targets are FQN globs (`fnmatch`). Without targets, every activation module is measured
(`nn.ReLU`, `nn.GELU`, ..., `TopK`, `KWinners`, Hugging Face activation modules). A model that
applies its activation functionally (the tiny GPT's `F.gelu`) has no such module: measure the input
of the following linear layer instead (`capture="input"`).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import Tensor, nn

__all__ = ["ACTIVATION_TYPES", "ActivationSparsity", "LayerSparsity", "measure_activation_sparsity"]

ACTIVATION_TYPES: tuple[type[nn.Module], ...] = (
    nn.ReLU,
    nn.ReLU6,
    nn.LeakyReLU,
    nn.GELU,
    nn.SiLU,
    nn.Mish,
    nn.ELU,
    nn.SELU,
    nn.CELU,
    nn.Softplus,
    nn.Hardswish,
    nn.Hardtanh,
    nn.Threshold,
)
Capture = Literal["output", "input"]


@dataclass(frozen=True)
class LayerSparsity:
    """Activation sparsity of one layer over every token it produced.

    Attributes:
        name: the module's FQN.
        tokens: tokens measured.
        units: units per token.
        sparsity: mean over tokens of the fraction of exact zeros.
        near_zero: mean over tokens of the fraction with |a| <= threshold.
        threshold: the |a| threshold of `near_zero`.
        per_token: (tokens,) fraction of exact zeros of each token (empty without `keep_tokens`).
        per_token_near_zero: (tokens,) the same for |a| <= threshold.
    """

    name: str
    tokens: int
    units: int
    sparsity: float
    near_zero: float
    threshold: float
    per_token: Tensor = field(repr=False)
    per_token_near_zero: Tensor = field(repr=False)

    @property
    def density(self) -> float:
        """1 - sparsity: the mean fraction of nonzero activations per token."""
        return 1.0 - self.sparsity

    @property
    def nonzero_percent(self) -> float:
        """Percentage of nonzero entries per token (the lazy-neuron paper's number)."""
        return 100.0 * self.density


class _Acc:
    """Running sums for one layer (sums, so memory does not grow without `keep_tokens`)."""

    def __init__(self) -> None:
        self.tokens = 0
        self.units = 0
        self.zero_sum = 0.0
        self.near_sum = 0.0
        self.per_token: list[Tensor] = []
        self.per_token_near: list[Tensor] = []


class ActivationSparsity:
    """Context manager recording activation sparsity per layer and token; see the module docstring.

    Args:
        model: any module.
        targets: FQN glob(s) of the modules to measure; None = every activation module.
        capture: "output" (the module's output) or "input" (its first positional input, e.g. the
            hidden activation entering `fc2`).
        threshold: |a| <= threshold counts as near zero (>= 0).
        unit_dim: the dimension holding a token's units (-1 for transformers; 1 for conv maps).
        keep_tokens: keep per-token fractions (for histograms); False keeps only the sums.

    Raises:
        ValueError: no module matches `targets`, a bad `capture`, or a negative threshold.
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        targets: str | Sequence[str] | None = None,
        capture: Capture = "output",
        threshold: float = 0.0,
        unit_dim: int = -1,
        keep_tokens: bool = True,
    ) -> None:
        if capture not in ("output", "input"):
            raise ValueError(f"capture must be 'output' or 'input', got {capture!r}")
        if not threshold >= 0.0:
            raise ValueError(f"threshold must be >= 0, got {threshold}")
        self.model = model
        self.capture = capture
        self.threshold = float(threshold)
        self.unit_dim = unit_dim
        self.keep_tokens = keep_tokens
        self.token_mask: Tensor | None = None
        self.modules = _resolve(model, targets)
        self._acc: dict[str, _Acc] = {name: _Acc() for name in self.modules}
        self._handles: list[torch.utils.hooks.RemovableHandle] = []

    def __enter__(self) -> ActivationSparsity:
        if self._handles:
            raise RuntimeError("ActivationSparsity is already active (nested use of the same recorder)")
        for name, module in self.modules.items():
            if self.capture == "output":
                h = module.register_forward_hook(lambda _m, _i, out, n=name: self._record(n, out))
            else:
                h = module.register_forward_pre_hook(lambda _m, inp, n=name: self._record(n, inp))
            self._handles.append(h)
        return self

    def __exit__(self, *exc: object) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()

    def reset(self) -> None:
        """Forget everything recorded so far."""
        self._acc = {name: _Acc() for name in self.modules}

    @torch.no_grad()
    def _record(self, name: str, value: object) -> None:
        a = _first_tensor(value)
        if a is None or not a.is_floating_point() or a.dim() == 0:
            return
        a = a.detach().movedim(self.unit_dim, -1)
        units = a.shape[-1]
        if self.token_mask is not None:
            if tuple(self.token_mask.shape) != tuple(a.shape[:-1]):
                raise ValueError(
                    f"token_mask of shape {tuple(self.token_mask.shape)} does not match the token shape "
                    f"{tuple(a.shape[:-1])} of {name!r}"
                )
            a = a[self.token_mask.to(a.device, torch.bool)]  # (kept tokens, units)
        a = a.reshape(-1, units)  # (tokens, units)
        zero = (a == 0).sum(-1, dtype=torch.float32) / max(units, 1)
        near = (a.abs() <= self.threshold).sum(-1, dtype=torch.float32) / max(units, 1)
        acc = self._acc[name]
        acc.tokens += a.shape[0]
        acc.units = units
        acc.zero_sum += float(zero.sum())
        acc.near_sum += float(near.sum())
        if self.keep_tokens:
            acc.per_token.append(zero.cpu())
            acc.per_token_near.append(near.cpu())

    def results(self) -> dict[str, LayerSparsity]:
        """Per-layer sparsity of everything recorded, in module order (layers never run are left out)."""
        out: dict[str, LayerSparsity] = {}
        for name, acc in self._acc.items():
            if acc.tokens == 0:
                continue
            empty = torch.empty(0)
            out[name] = LayerSparsity(
                name=name,
                tokens=acc.tokens,
                units=acc.units,
                sparsity=acc.zero_sum / acc.tokens,
                near_zero=acc.near_sum / acc.tokens,
                threshold=self.threshold,
                per_token=torch.cat(acc.per_token) if acc.per_token else empty,
                per_token_near_zero=torch.cat(acc.per_token_near) if acc.per_token_near else empty,
            )
        return out

    def table(self) -> str:
        """A markdown table: layer, tokens, units, % nonzero, sparsity, near-zero fraction."""
        lines = [
            f"| layer | tokens | units | % nonzero | sparsity | |a| <= {self.threshold:g} |",
            "|---|---|---|---|---|---|",
        ]
        for r in self.results().values():
            lines.append(
                f"| {r.name} | {r.tokens} | {r.units} | {r.nonzero_percent:.2f} | {r.sparsity:.4f} | {r.near_zero:.4f} |"
            )
        return "\n".join(lines)


def measure_activation_sparsity(
    model: nn.Module,
    *inputs: object,
    targets: str | Sequence[str] | None = None,
    capture: Capture = "output",
    threshold: float = 0.0,
    unit_dim: int = -1,
) -> dict[str, LayerSparsity]:
    """Run `model(*inputs)` once without gradients and return the per-layer sparsity."""
    with (
        torch.no_grad(),
        ActivationSparsity(
            model, targets=targets, capture=capture, threshold=threshold, unit_dim=unit_dim
        ) as rec,
    ):
        model(*inputs)
    return rec.results()


def _is_activation(module: nn.Module) -> bool:
    from sparsetorch.activations.kwta import KWinnersBase
    from sparsetorch.activations.topk import TopK

    if isinstance(module, (*ACTIVATION_TYPES, TopK, KWinnersBase)):
        return True
    # Hugging Face activation modules (GELUActivation, ...) live in transformers.activations.
    return type(module).__module__.startswith("transformers.activations")


def _resolve(model: nn.Module, targets: str | Sequence[str] | None) -> dict[str, nn.Module]:
    named = [(n, m) for n, m in model.named_modules() if n]
    if targets is None:
        found = {n: m for n, m in named if _is_activation(m)}
        if not found:
            raise ValueError(
                "no activation module (nn.ReLU, nn.GELU, TopK, KWinners ...) in the model; it may apply "
                "its activation functionally: pass targets= the following layer and capture='input'"
            )
        return found
    globs = [targets] if isinstance(targets, str) else list(targets)
    found = {n: m for n, m in named if any(fnmatch.fnmatchcase(n, g) for g in globs)}
    if not found:
        sample = ", ".join(n for n, _ in named[:8])
        raise ValueError(f"no module matches targets {globs}; module names look like: {sample}")
    return found


def _first_tensor(value: object) -> Tensor | None:
    if isinstance(value, Tensor):
        return value
    if isinstance(value, (tuple, list)):
        for v in value:
            if isinstance(v, Tensor):
                return v
    return None
