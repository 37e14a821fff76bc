"""Read and replace one MLP sublayer of a model through forward hooks (used by transcoders).

Paper `transcoders` (Dunefsky, Chlenski & Nanda 2024): a transcoder is trained on the (input,
output) pairs of an MLP sublayer and then substituted for it to measure faithfulness; the reference
code does both with TransformerLens hook points (`ln2.hook_normalized` -> `hook_mlp_out`). Here the
MLP is named by two fully-qualified module names: `input_fqn`, the first module of the MLP (its
input is the MLP's input x), and `output_fqn`, the last one (its output is the MLP's output y).

- `collect_mlp_io(model, batches, ...)` -> (x (N, d_in), y (N, d_out)) over the real tokens (a batch's
  `attention_mask` drops padding);
- `substitute_mlp(model, f, ...)`: a context manager inside which the MLP's output is `f(x)` (or
  `f(y)` with `reads="output"`, to splice an SAE in after the MLP);
- `constant_output(v)`: the replacement for zero ablation (v = 0) and mean ablation (v = mean y).

For BERT-style models (all-MiniLM-L6-v2) the MLP of layer L is `encoder.layer.L.intermediate`
(dense + GELU) followed by `encoder.layer.L.output.dense`, whose output is then dropped out, added
to the residual and LayerNormed by `BertOutput`: `minilm_mlp(L)`.

Design: substitution overwrites the output in a forward hook rather than swapping modules, so the
model's modules are never touched and removing the two hooks restores it exactly (in a `finally`,
so also after an exception). The cost is one dense MLP per forward, computed and discarded.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any, Literal

import torch
from torch import Tensor, nn

__all__ = ["collect_mlp_io", "constant_output", "minilm_mlp", "substitute_mlp"]


def minilm_mlp(layer: int) -> tuple[str, str]:
    """(input FQN, output FQN) of the MLP sublayer of BERT layer `layer` (all-MiniLM-L6-v2: 0..5)."""
    return f"encoder.layer.{layer}.intermediate", f"encoder.layer.{layer}.output.dense"


def _modules(model: nn.Module, input_fqn: str, output_fqn: str) -> tuple[nn.Module, nn.Module]:
    named = dict(model.named_modules())
    for fqn in (input_fqn, output_fqn):
        if fqn not in named:
            raise ValueError(f"{type(model).__name__} has no module {fqn!r}")
    return named[input_fqn], named[output_fqn]


def _first_input(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Tensor:
    return args[0] if args else next(iter(kwargs.values()))


def _run(model: nn.Module, batch: Any) -> None:
    if isinstance(batch, dict):
        model(**batch)
    else:
        model(batch)


@torch.no_grad()
def collect_mlp_io(
    model: nn.Module,
    batches: Iterable[Any],
    *,
    input_fqn: str,
    output_fqn: str,
    max_tokens: int | None = None,
) -> tuple[Tensor, Tensor]:
    """(inputs (N, d_in), outputs (N, d_out)) of one MLP sublayer over the real tokens of `batches`.

    A batch is a dict of model kwargs (its `attention_mask`, if any, selects the real tokens) or an
    input tensor. The model's hooks are removed on return, even on error.

    Raises:
        ValueError: an unknown FQN, a forward that never reaches the modules, or no tokens at all.
    """
    first, last = _modules(model, input_fqn, output_fqn)
    seen: dict[str, Tensor] = {}
    xs, ys, n = [], [], 0
    handles = [
        first.register_forward_pre_hook(
            lambda m, a, k: seen.__setitem__("x", _first_input(a, k)), with_kwargs=True
        ),
        last.register_forward_hook(lambda m, a, o: seen.__setitem__("y", o)),
    ]
    try:
        for batch in batches:
            seen.clear()
            _run(model, batch)
            if "x" not in seen or "y" not in seen:
                raise ValueError(f"the forward pass did not run {input_fqn!r} and {output_fqn!r}")
            x, y = seen["x"], seen["y"]  # (B, T, d) for sequence models, (B, d) otherwise
            mask = batch.get("attention_mask") if isinstance(batch, dict) else None
            if mask is not None:
                keep = mask.bool()
                x, y = x[keep], y[keep]  # (real tokens, d)
            xs.append(x.reshape(-1, x.shape[-1]).float())
            ys.append(y.reshape(-1, y.shape[-1]).float())
            n += len(xs[-1])
            if max_tokens is not None and n >= max_tokens:
                break
    finally:
        for h in handles:
            h.remove()
    if n == 0:
        raise ValueError("no tokens collected: the batches are empty")
    return torch.cat(xs)[:max_tokens], torch.cat(ys)[:max_tokens]


def constant_output(value: Tensor) -> Callable[[Tensor], Tensor]:
    """A replacement MLP that ignores its input and writes `value` (d_out,) at every token.

    `constant_output(torch.zeros(d))` is zero ablation; the mean training output is mean ablation.
    """
    if value.ndim != 1:
        raise ValueError(f"value must be a vector (d_out,), got shape {tuple(value.shape)}")
    return lambda x: value.to(x.dtype).expand(*x.shape[:-1], value.shape[0])


@contextmanager
def substitute_mlp(
    model: nn.Module,
    replacement: Callable[[Tensor], Tensor],
    *,
    input_fqn: str,
    output_fqn: str,
    reads: Literal["input", "output"] = "input",
) -> Iterator[nn.Module]:
    """Inside the block, the MLP from `input_fqn` to `output_fqn` outputs `replacement(...)`.

    With `reads="input"` (a transcoder, `constant_output(...)`, any callable) the replacement gets
    the MLP's input as the model passes it, e.g. (B, T, d_in); with `reads="output"` (an SAE
    spliced in after the MLP) it gets the MLP's original output. It must return the output's
    shape. On exit, normal or by exception, the hooks are removed and the model computes as before.

    Raises:
        ValueError: an unknown FQN or `reads` (before anything is attached), or a replacement
            output of the wrong shape (during the forward pass).
    """
    if reads not in ("input", "output"):
        raise ValueError(f"reads must be 'input' or 'output', got {reads!r}")
    first, last = _modules(model, input_fqn, output_fqn)
    seen: dict[str, Tensor] = {}

    def replace(module: nn.Module, args: tuple[Any, ...], output: Tensor) -> Tensor:
        if reads == "output":
            new = replacement(output)
        elif "x" in seen:
            new = replacement(seen.pop("x"))
        else:
            raise ValueError(f"{output_fqn!r} ran before {input_fqn!r}: not an MLP input/output pair")
        if new.shape != output.shape:
            raise ValueError(
                f"replacement returned shape {tuple(new.shape)}, the MLP outputs {tuple(output.shape)}"
            )
        return new.to(output.dtype)

    handles = [
        first.register_forward_pre_hook(
            lambda m, a, k: seen.__setitem__("x", _first_input(a, k)), with_kwargs=True
        ),
        last.register_forward_hook(replace),
    ]
    try:
        yield model
    finally:
        for h in handles:
            h.remove()
