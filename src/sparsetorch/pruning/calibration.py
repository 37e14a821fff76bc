"""Block-sequential calibration: statistics of each target layer's inputs, one block at a time.

The protocol of the Wanda and SparseGPT reference code (locuslab/wanda `prune_wanda`,
IST-DASLab/sparsegpt `llama_sequential`):

1. capture the inputs of block 0 (a forward pre-hook that stops the forward pass there);
2. for each block in turn: run it on the current inputs with forward hooks on its target layers,
   accumulating input statistics (see `LayerStats`); prune the block's targets; run the pruned block again,
   and feed its outputs to the next block.

Only one block's inputs and outputs are held at a time. Targets outside the block list (or every
target, for a model without one, such as an MLP) are handled in a final pass over the whole,
already-pruned model.

The block list is found generically: `model.blocks_fqn` when a model declares it, else the
largest `nn.ModuleList` whose children share one class and hold target layers (`h` in GPT-2,
`encoder.layer` in BERT, `model.layers` in LLaMA/OPT, `blocks` in our tiny GPT).

Layers are seen as matrices: a Linear weight `(out, in)`, a Conv2d weight `(out, in, kh, kw)` as
`(out, kh*kw*in)` with inputs unfolded in the same order, so that consecutive columns are input
channels at one kernel position (the N:M convention of `patterns`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

Batch = Tensor | dict[str, Tensor] | tuple | list


# --- layers as matrices --------------------------------------------------------------------------


def as_matrix(weight: Tensor) -> Tensor:
    """(out, in) stays; a conv weight (out, in, *k) becomes (out, prod(k) * in), channels fastest."""
    return weight if weight.dim() == 2 else weight.movedim(1, -1).reshape(weight.shape[0], -1)


def from_matrix(matrix: Tensor, shape: torch.Size | tuple[int, ...]) -> Tensor:
    """Inverse of `as_matrix` for a weight of `shape`."""
    if len(shape) == 2:
        return matrix.reshape(shape)
    out, cin, *kernel = shape
    return matrix.reshape(out, *kernel, cin).movedim(-1, 1)


def layer_inputs(module: nn.Module, x: Tensor) -> Tensor:
    """A layer's input as rows `(tokens, in_features)` matching `as_matrix(module.weight)` columns."""
    if isinstance(module, nn.Linear):
        return x.reshape(-1, x.shape[-1])
    if isinstance(module, nn.Conv2d):
        cols = F.unfold(x, module.kernel_size, module.dilation, module.padding, module.stride)
        # (N, C*kh*kw, L) -> (N, C, kh*kw, L) -> (N, L, kh*kw, C) -> (N*L, kh*kw*C)
        n, _, length = cols.shape
        cols = cols.reshape(n, module.in_channels, -1, length).permute(0, 3, 2, 1)
        return cols.reshape(n * length, -1)
    raise TypeError(f"calibration supports Linear and Conv2d layers, not {type(module).__name__}")


# --- statistics ----------------------------------------------------------------------------------


FP32_MAX = torch.finfo(torch.float32).max
# Inputs are scaled by a power of two (exact) only when their largest magnitude leaves this range,
# so that X^T X stays finite in fp32 (|x| <= 2^32: products <= 2^64) and does not underflow.
_LOW, _HIGH = 2.0**-32, 2.0**32
# Squares are taken in fp32 and summed in fp64 (as before the overflow fix) while the batch's largest
# magnitude is inside this range: then every square is a normal fp32 number, at most 2^126 (fp32 ends
# near 2^128) and the largest at least 2^-126 (the least normal). The row count does not enter, since
# the sum accumulates in fp64. Outside it, the batch is squared in fp64 (exact for fp32 inputs).
_SQ_LOW, _SQ_HIGH = 2.0**-63, 2.0**63


def _shift_for(amax: float) -> int:
    """The power-of-two exponent s with amax / 2^s inside [_LOW, _HIGH]: 0 for ordinary inputs."""
    if amax == 0.0 or _LOW <= amax <= _HIGH:
        return 0
    return math.frexp(amax)[1]  # amax / 2^s in [0.5, 1)


def _as_fp32(values: Tensor) -> Tensor:
    """fp64 statistics as fp32, scaled by one power of two if the largest would overflow fp32."""
    top = values.abs().max().item() if values.numel() else 0.0
    if top <= FP32_MAX / 2:
        return values.float()
    return (values.double() * 2.0 ** -math.frexp(top)[1]).float()


def _finite_amax(x: Tensor, *, name: str) -> float:
    """The largest magnitude of `x`, in its own dtype (one pass, no copy), checked finite and in fp32 range."""
    if not x.numel():
        return 0.0
    low, high = (v.item() for v in torch.aminmax(x))  # NaN anywhere makes both NaN
    if not (math.isfinite(low) and math.isfinite(high)):
        raise ValueError(f"{name}: calibration activations contain NaN or Inf")
    amax = max(-low, high)
    if amax > FP32_MAX:
        raise ValueError(
            f"{name}: calibration activations reach {amax:.3g}, beyond the float32 range "
            f"({FP32_MAX:.3g}) of the calibration statistics"
        )
    return amax


@dataclass
class LayerStats:
    """Running statistics of a layer's inputs X (rows = tokens, columns = input features).

    `sq_sum[j] = ||X_j||^2` (Wanda's feature norm, squared) and `total[j] = sum of X_j` (for the
    mean, DSnoT) are sums in fp64 of the inputs' fp32 squares and values, so ordinary inputs give the
    very statistics they always did; a batch whose squares would leave the fp32 range (see `_SQ_LOW`)
    is squared in fp64 instead. `xtx` is `X^T X / 4**xtx_shift` in fp32: the Hessian of SparseGPT/OBS
    up to a positive factor, which no method nor the reconstruction error depends on. `xtx_shift` is
    0 unless the inputs' magnitude leaves [2^-32, 2^32]; then the inputs are scaled by a power of two
    (exactly) so that X^T X stays finite, whatever finite fp32 activations come in.
    """

    columns: int
    with_xtx: bool = True
    rows: int = 0
    total: Tensor = field(init=False)
    sq_sum: Tensor = field(init=False)
    xtx: Tensor | None = field(init=False)
    xtx_shift: int = field(init=False, default=0)
    _xtx_rows: int = field(init=False, default=0, repr=False)

    def __post_init__(self) -> None:
        self.total = torch.zeros(self.columns, dtype=torch.float64)
        self.sq_sum = torch.zeros(self.columns, dtype=torch.float64)
        self.xtx = torch.zeros(self.columns, self.columns) if self.with_xtx else None

    def update(self, x: Tensor, *, name: str = "layer") -> None:
        """Add rows `x` (tokens, columns).

        Raises:
            ValueError: non-finite activations, or activations beyond the fp32 range (an fp64
                model), naming the layer.
        """
        x = x.detach()
        amax = _finite_amax(x, name=name)
        xf = x.float()  # a no-op for fp32 inputs
        self.rows += x.shape[0]
        if amax == 0.0 or _SQ_LOW <= amax <= _SQ_HIGH:  # ordinary inputs: exactly as before the fix
            exact = x
            self.total += xf.sum(0, dtype=torch.float64)
            self.sq_sum += xf.pow(2).sum(0, dtype=torch.float64)
        else:  # fp32 squares would overflow or underflow: fp64 ones, exact for fp32 inputs
            exact = x.double()
            self.total += exact.sum(0)
            self.sq_sum += exact.pow(2).sum(0)
        if self.xtx is not None:
            self._add_xtx(exact, xf, amax)

    def _add_xtx(self, x: Tensor, xf: Tensor, amax: float) -> None:
        """Accumulate X^T X in fp32, raising the common power-of-two scale when inputs grow.

        `x` is the batch in its own (or fp64) precision, `xf` the same in fp32."""
        assert self.xtx is not None
        # The scale only grows (the first batch sets it), so rescaling never overflows.
        shift = max(self.xtx_shift, _shift_for(amax)) if self._xtx_rows else _shift_for(amax)
        if shift != self.xtx_shift and self._xtx_rows:  # rescale the sum so far: exact, may underflow
            self.xtx.copy_(self.xtx.double() * 2.0 ** (2 * (self.xtx_shift - shift)))
        self.xtx_shift = shift
        # fp64 only for a scaled (extreme) batch: a power of two, exact, rounded once to fp32.
        scaled = (x.double() * 2.0**-shift).float() if shift else xf
        self.xtx.addmm_(scaled.T, scaled)
        self._xtx_rows += scaled.shape[0]

    @property
    def mean(self) -> Tensor:
        return (self.total / max(self.rows, 1)).float()

    @property
    def var(self) -> Tensor:
        """Per-feature variance in fp32; scaled by one power of two if it would overflow fp32
        (only rankings by variance, as DSnoT's, read it then)."""
        mean = self.total / max(self.rows, 1)
        return _as_fp32((self.sq_sum / max(self.rows, 1) - mean**2).clamp_min(0))

    @property
    def norm(self) -> Tensor:
        """||X_j||_2 per input feature in fp32; scaled by one power of two if the largest would
        overflow fp32 (Wanda and its users only rank by it, per row)."""
        return _as_fp32(self.sq_sum.sqrt())

    def nbytes(self) -> int:
        return 16 * self.columns + (self.xtx.numel() * 4 if self.xtx is not None else 0)


def reconstruction_error(weight: Tensor, pruned: Tensor, stats: LayerStats) -> float:
    """||W X - W' X|| / ||W X|| over the calibration inputs, from X^T X (no second pass needed)."""
    if stats.xtx is None:
        return math.nan
    delta = (weight - pruned).float()
    num = (delta @ stats.xtx * delta).sum()
    den = (weight.float() @ stats.xtx * weight.float()).sum()
    if not (torch.isfinite(num) and torch.isfinite(den)):  # large weights times large X^T X: redo in fp64
        xtx, delta, full = stats.xtx.double(), delta.double(), weight.double()
        num, den = (delta @ xtx * delta).sum(), (full @ xtx * full).sum()
    return math.sqrt(max(num.item(), 0.0) / den.item()) if den > 0 else math.nan


# --- blocks and batches --------------------------------------------------------------------------


def find_blocks(model: nn.Module, targets: Iterable[str]) -> tuple[str, list[nn.Module]]:
    """The FQN and modules of the model's block list, or ("", []) when it has none."""
    declared = getattr(model, "blocks_fqn", None)
    if declared:
        blocks = model.get_submodule(declared)
        return declared, list(blocks)
    modules = {f.rpartition(".")[0] for f in targets}
    best: tuple[str, list[nn.Module]] = ("", [])
    for name, module in model.named_modules():
        if not isinstance(module, nn.ModuleList) or len(module) < 2:
            continue
        if len({type(child) for child in module}) != 1:
            continue
        if not any(m.startswith(f"{name}.") for m in modules):
            continue
        if len(module) > len(best[1]):
            best = (name, list(module))
    return best


class _Stop(Exception):
    """Raised by the capture hook to end a forward pass at block 0."""


def run_model(model: nn.Module, batch: Batch, *, index: int = 0) -> Any:
    """Call the model on a batch: a tensor, a tuple/list of positional args, or a dict of kwargs.

    Raises:
        ValueError: the batch does not run through the model (wrong shape or dtype), saying which.
    """
    try:
        if isinstance(batch, dict):
            return model(**batch)
        if isinstance(batch, tuple | list):
            return model(*batch)
        return model(batch)
    except (_Stop, ValueError):
        raise
    except (RuntimeError, TypeError, IndexError, KeyError, AttributeError) as err:
        raise ValueError(f"calibration batch {index} does not run through the model: {err}") from err


@dataclass
class BlockInputs:
    """The positional and keyword arguments one batch passed to a block; `args[0]` is the hidden state."""

    args: tuple
    kwargs: dict[str, Any]

    @property
    def hidden(self) -> Tensor:
        return self.args[0] if self.args else self.kwargs["hidden_states"]

    def with_hidden(self, hidden: Tensor) -> BlockInputs:
        if self.args:
            return BlockInputs((hidden, *self.args[1:]), self.kwargs)
        return BlockInputs(self.args, {**self.kwargs, "hidden_states": hidden})

    def nbytes(self) -> int:
        return self.hidden.numel() * self.hidden.element_size()


def capture_block_inputs(model: nn.Module, block: nn.Module, batches: list[Batch]) -> list[BlockInputs]:
    """Run the model on each batch up to `block`, recording the block's arguments."""
    captured: list[BlockInputs] = []

    def hook(module: nn.Module, args: tuple, kwargs: dict) -> None:
        captured.append(BlockInputs(tuple(args), dict(kwargs)))
        raise _Stop

    handle = block.register_forward_pre_hook(hook, with_kwargs=True)
    try:
        for i, batch in enumerate(batches):
            try:
                run_model(model, batch, index=i)
            except _Stop:
                continue
            raise ValueError(f"calibration batch {i} never reached the first block")
    finally:
        handle.remove()
    return captured


def block_output(block: nn.Module, inputs: BlockInputs) -> Tensor:
    """A block's output hidden state (the first element when it returns a tuple)."""
    out = block(*inputs.args, **inputs.kwargs)
    return out[0] if isinstance(out, tuple | list) else out


def gather_stats(
    modules: dict[str, nn.Module], run: Iterable[Any], *, xtx: bool = True
) -> dict[str, LayerStats]:
    """Statistics of each module's inputs while the forward passes in `run` execute.

    Layers fed the very same input tensor (q, k and v projections) share one `LayerStats`,
    found on the first pass, so shared statistics are accumulated once.
    """
    stats = {fqn: LayerStats(as_matrix(m.weight).shape[1], with_xtx=xtx) for fqn, m in modules.items()}
    leader: dict[str, str] = {}  # fqn -> fqn whose statistics it shares
    # Input tensor object -> first fqn that saw it in this pass. The tensor itself is kept so
    # that its id cannot be reused by a later activation of the same pass.
    seen: dict[int, tuple[str, Tensor]] = {}
    first_pass = True

    def hook(module: nn.Module, args: tuple, out: Any, fqn: str) -> None:
        x = args[0]
        first = seen.get(id(x), (None, None))[0]
        if (
            first_pass
            and first is not None
            and isinstance(module, nn.Linear)
            and isinstance(modules[first], nn.Linear)
        ):
            leader[fqn] = first
            stats[fqn] = stats[first]
        if fqn in leader:
            if first != leader[fqn]:
                raise RuntimeError(
                    f"{fqn}: inputs shared with {leader[fqn]} on the first batch but not later"
                )
            return
        seen.setdefault(id(x), (fqn, x))
        stats[fqn].update(layer_inputs(module, x), name=fqn)

    handles = [m.register_forward_hook(lambda mod, a, o, f=f: hook(mod, a, o, f)) for f, m in modules.items()]
    try:
        for _ in run:
            first_pass = False
            seen.clear()
    finally:
        for h in handles:
            h.remove()
    return stats
