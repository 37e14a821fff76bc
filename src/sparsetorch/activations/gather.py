"""Activation-sparse execution of an FFN at batch 1 (and small batch): read only the active weights.

The CHESS / lazy-neuron GEMV regime. In `y = W2 h + b2`, a zero h_j multiplies column j of W2, so
with W2 stored transposed (`Wt = W2.T`, shape (hidden, out), row-major) the work and the bytes read
shrink to the rows of Wt where h is nonzero, each one contiguous:

    y = b2 + sum_{j : h_j != 0} h_j * Wt[j, :]

At batch 1 a GEMV is bound by the bytes it reads, so at activation sparsity s the ideal speedup is
1 / (1 - s) against a dense GEMV at the same bandwidth (and more against torch's dense GEMV, which
reaches ~60% of the bandwidth here). The same product serves a first layer whose *input* is sparse
(the output of a k-WTA layer): gather the rows of W1.T.

- `gather_linear(h, weight_t, bias)`: the product above for h `(..., in)`; the active set is the
  union over the rows of h of the nonzero columns (for a small batch the union is what must be
  read). Rows of h beyond `GATHER_MAX_BATCH` go through a dense matmul of the same h: with many
  rows the union stops being sparse and a GEMM is faster; the result is the same.
- `GatherLinear`: an `nn.Linear` replacement holding W.T for that product.
- `SparseFFN`: fc1 -> activation -> fc2, with fc1 dense (its input is dense) and fused with the
  ReLU / threshold on the numba path, and fc2 gathered.

Backends: with numba installed and `sparsetorch.kernels.cpu.backend()` not "torch" (forced with
`use_backend` or `SPARSETORCH_KERNELS`), the numba kernels of `sparsetorch.kernels.gather` run
(portable vector IR, no x86-only instruction); otherwise `index_select` + `mv` / `mm`, as for
inputs that are not float32 CPU tensors. A product that needs a gradient is computed densely on
the same h (the gathered product is forward-only: it would report d y / d h_j = 0 where h_j = 0).
Every path computes the dense product on the same active set; they differ only in float summation
order.

Threads: `threads=None` uses `torch.get_num_threads()`; the numba kernels split the active rows
(gather) or the rows of W1 (dense layer) between threads, and run serially when fewer than
`PARALLEL_MIN_FLOATS` weights are read (a thread-pool launch costs more than it saves).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sparsetorch.kernels import cpu

__all__ = [
    "GATHER_MAX_BATCH",
    "GatherLinear",
    "SparseFFN",
    "active_rows",
    "dense_activation",
    "gather_linear",
]

GATHER_MAX_BATCH = 8  # rows of h above which the product is a dense matmul (the union is no longer sparse)
PARALLEL_MIN_FLOATS = 1 << 17  # weight floats actually read (512 KiB) below which one thread beats a launch


def active_rows(h: Tensor) -> Tensor:
    """Indices (int64) of the columns of `h (..., in)` that are nonzero in any row: the rows of W.T read."""
    return h.reshape(-1, h.shape[-1]).ne(0).any(0).nonzero().squeeze(1)


def _needs_grad(*tensors: Tensor | None) -> bool:
    return torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)


def _numba_ok(*tensors: Tensor | None) -> bool:
    """The numba kernels apply: backend not torch, float32 CPU tensors (gradients checked by callers)."""
    if cpu.backend() == "torch" or not cpu.has_numba():
        return False
    return all(t is None or (t.dtype is torch.float32 and t.is_cpu) for t in tensors)


_numba_threads = [0]  # the count last given to numba.set_num_threads (a call costs microseconds)


def _threads(threads: int | None) -> int:
    n = torch.get_num_threads() if threads is None else int(threads)
    if n < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    if n == 1:
        return 1
    import numba

    n = min(n, numba.config.NUMBA_NUM_THREADS)
    if _numba_threads[0] != n:
        numba.set_num_threads(n)
        _numba_threads[0] = n
    return n


@functools.cache
def _kernel(name: str) -> Callable:
    from sparsetorch.kernels import gather as kern

    return getattr(kern, name)


@functools.lru_cache(maxsize=16)
def _zeros(n: int) -> np.ndarray:
    return np.zeros(n, dtype=np.float32)


class _Views:
    """numpy views of a weight (flattened) and bias, rebuilt only when their storage changes.

    The views share memory with the tensors, so in-place updates (`load_state_dict`, an optimizer
    step) are seen; a replaced tensor (`.to()`, a new buffer) changes the data pointer and rebuilds.
    """

    def __init__(self) -> None:
        self.key: tuple[int, int] | None = None
        self.views: tuple[np.ndarray, np.ndarray] | None = None

    def get(
        self, weight: Tensor, bias: Tensor | None, bias_dim: int = 1
    ) -> tuple[np.ndarray, np.ndarray] | None:
        """(flat weight, bias) as numpy, or None when the kernels cannot take them (dtype, device).

        A missing bias is zeros of length `weight.shape[bias_dim]`.
        """
        key = (weight.data_ptr(), 0 if bias is None else bias.data_ptr())
        if key != self.key:
            ok = all(t is None or (t.dtype is torch.float32 and t.is_cpu) for t in (weight, bias))
            self.views = (
                (
                    weight.detach().contiguous().view(-1).numpy(),
                    _zeros(weight.shape[bias_dim]) if bias is None else bias.detach().numpy(),
                )
                if ok
                else None
            )
            self.key = key
        return self.views


def _check(h: Tensor, weight_t: Tensor, bias: Tensor | None) -> None:
    if not isinstance(h, Tensor) or not isinstance(weight_t, Tensor):
        raise TypeError("gather_linear expects torch tensors")
    if weight_t.dim() != 2:
        raise ValueError(f"weight_t must be (in, out), got shape {tuple(weight_t.shape)}")
    if h.dim() == 0 or h.shape[-1] != weight_t.shape[0]:
        raise ValueError(
            f"h has {tuple(h.shape)[-1:] or '()'} features, weight_t (in, out) = {tuple(weight_t.shape)} expects "
            f"{weight_t.shape[0]}"
        )
    if bias is not None and tuple(bias.shape) != (weight_t.shape[1],):
        raise ValueError(f"bias must have shape ({weight_t.shape[1]},), got {tuple(bias.shape)}")


def gather_linear(
    h: Tensor, weight_t: Tensor, bias: Tensor | None = None, *, threads: int | None = None
) -> Tensor:
    """`h @ weight_t + bias`, reading only the rows of `weight_t` where `h` is nonzero.

    Args:
        h: activations `(..., in)`; its zeros define the inactive set.
        weight_t: W.T `(in, out)` (row-major: `linear.weight.t().contiguous()`).
        bias: `(out,)` or None.
        threads: numba threads (default `torch.get_num_threads()`).

    Returns:
        `(..., out)`, equal to `F.linear(h, weight_t.T, bias)` up to float summation order.
    """
    _check(h, weight_t, bias)
    return _gather(h, weight_t, bias, threads, None)


def _gather(
    h: Tensor, weight_t: Tensor, bias: Tensor | None, threads: int | None, views: _Views | None
) -> Tensor:
    two_d = h.dim() == 2
    inp, out = weight_t.shape
    h2 = h if two_d else h.reshape(-1, inp)
    rows = h2.shape[0]
    if rows > GATHER_MAX_BATCH or rows == 0 or _needs_grad(h, weight_t, bias):
        # Dense on the same h: same values, and the true gradient (d y / d h_j = W[:, j] also where
        # h_j = 0, which a gathered product would report as 0).
        y = h2 @ weight_t if bias is None else torch.addmm(bias, h2, weight_t)
    else:
        wb = (views or _Views()).get(weight_t, bias)
        if wb is not None and h2.dtype is torch.float32 and h2.is_cpu and _numba_ok():
            kern = _kernel("gather_matmul")
            y = torch.from_numpy(
                kern(h2.contiguous().numpy(), wb[0], out, wb[1], _threads(threads), PARALLEL_MIN_FLOATS)
            )
        else:
            y = _gather_torch(h2, weight_t, bias)
    return y if two_d else y.view(*h.shape[:-1], out)


def _gather_torch(h2: Tensor, weight_t: Tensor, bias: Tensor | None) -> Tensor:
    idx = active_rows(h2)
    w = weight_t.index_select(0, idx)  # (active, out): a copy of the rows read
    hs = h2.index_select(1, idx)  # (B, active)
    y = torch.mv(w.t(), hs[0]).unsqueeze(0) if h2.shape[0] == 1 else hs @ w
    return y if bias is None else y + bias


def dense_activation(
    x: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    *,
    threshold: float = 0.0,
    threads: int | None = None,
) -> Tensor:
    """`h = z * (z > threshold)` for `z = F.linear(x, weight, bias)`: a dense layer with a fused ReLU.

    `threshold = 0` is ReLU; a positive threshold also zeroes small positive activations (a CATS-style
    cut on a ReLU). On the numba path (float32 CPU, at most `GATHER_MAX_BATCH` rows, no gradient)
    the GEMV and the cut are one kernel; otherwise torch.
    """
    if not threshold >= 0.0:
        raise ValueError(f"threshold must be >= 0, got {threshold}")
    if x.dim() == 0 or x.shape[-1] != weight.shape[1]:
        raise ValueError(
            f"x has {tuple(x.shape)[-1:]} features, weight {tuple(weight.shape)} expects {weight.shape[1]}"
        )
    return _dense_act(x, weight, bias, float(threshold), threads, None)


def _dense_act(
    x: Tensor,
    weight: Tensor,
    bias: Tensor | None,
    threshold: float,
    threads: int | None,
    views: _Views | None,
) -> Tensor:
    two_d = x.dim() == 2
    hid, inp = weight.shape
    x2 = x if two_d else x.reshape(-1, inp)
    wb = None
    if 0 < x2.shape[0] <= GATHER_MAX_BATCH and not _needs_grad(x, weight, bias):
        wb = (views or _Views()).get(weight, bias, 0)
    if wb is not None and _numba_ok(x2):
        kern = _kernel("dense_act")
        h = torch.from_numpy(
            kern(
                wb[0],
                inp,
                x2.contiguous().numpy(),
                wb[1],
                threshold,
                True,
                _threads(threads),
                PARALLEL_MIN_FLOATS,
            )
        )
    else:
        z = F.linear(x2, weight, bias)
        h = z * (z > threshold)
    return h if two_d else h.view(*x.shape[:-1], hid)


class GatherLinear(nn.Module):
    """A linear layer for activation-sparse inputs: stores W.T and reads only rows where x != 0.

    Inference-oriented: the weights are buffers (`weight_t` (in, out), `bias`). Outputs equal
    `F.linear(x, W, b)`; when `x` needs a gradient the product is dense (see `gather_linear`).
    """

    def __init__(self, weight_t: Tensor, bias: Tensor | None = None) -> None:
        super().__init__()
        if weight_t.dim() != 2:
            raise ValueError(f"weight_t must be (in, out), got shape {tuple(weight_t.shape)}")
        self.register_buffer("weight_t", weight_t.detach().contiguous())
        self.register_buffer("bias", None if bias is None else bias.detach().clone())
        self.threads: int | None = None
        self._views = _Views()
        self._in, self._out = self.weight_t.shape

    @classmethod
    def from_linear(cls, linear: nn.Linear) -> GatherLinear:
        """The same map as `linear` (weights copied, transposed)."""
        return cls(linear.weight.detach().t().contiguous(), linear.bias)

    @property
    def in_features(self) -> int:
        return self.weight_t.shape[0]

    @property
    def out_features(self) -> int:
        return self.weight_t.shape[1]

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() == 0 or x.shape[-1] != self._in:
            raise ValueError(f"GatherLinear expects {self._in} input features, got shape {tuple(x.shape)}")
        buffers = self._buffers  # one dict lookup instead of two `Module.__getattr__` calls
        return _gather(x, buffers["weight_t"], buffers["bias"], self.threads, self._views)

    def to_linear(self) -> nn.Linear:
        """A plain `nn.Linear` with the same weights."""
        lin = nn.Linear(self.in_features, self.out_features, bias=self.bias is not None)
        with torch.no_grad():
            lin.weight.copy_(self.weight_t.t())
            if self.bias is not None:
                lin.bias.copy_(self.bias)
        return lin

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"
        )


Activation = Literal["relu"] | Callable[[Tensor], Tensor]


class SparseFFN(nn.Module):
    """`fc2(act(fc1(x)))` with fc2 computed from the active hidden units only (batch 1 / small batch).

    Args:
        fc1: the first layer `(hidden, in)`; computed densely (its input is dense).
        fc2: the second layer `(out, hidden)`; stored transposed and gathered.
        activation: "relu" (fused into fc1 on the numba path, with `threshold`) or any callable
            `h = act(z)` whose zeros are the inactive units (e.g. `TopK(k)`, a CHESS threshold).
        threshold: with "relu", also zero activations <= threshold (>= 0).
        threads: numba threads (None: `torch.get_num_threads()`).

    `forward(x)` equals `fc2(act(fc1(x)))` up to float summation order; `hidden(x)` returns h. (A
    unit whose pre-activation lies within rounding of the threshold may fall on either side: the
    fused GEMV sums in another order than torch.)
    """

    def __init__(
        self,
        fc1: nn.Linear,
        fc2: nn.Linear,
        *,
        activation: Activation = "relu",
        threshold: float = 0.0,
        threads: int | None = None,
    ) -> None:
        super().__init__()
        if fc1.out_features != fc2.in_features:
            raise ValueError(f"fc1 has {fc1.out_features} outputs but fc2 takes {fc2.in_features} inputs")
        if activation != "relu" and not callable(activation):
            raise ValueError(f"activation must be 'relu' or a callable, got {activation!r}")
        if not threshold >= 0.0:
            raise ValueError(f"threshold must be >= 0, got {threshold}")
        if threshold and activation != "relu":
            raise ValueError("threshold applies to activation='relu' only; fold it into the callable")
        self.register_buffer("w1", fc1.weight.detach().contiguous().clone())
        self.register_buffer("b1", None if fc1.bias is None else fc1.bias.detach().clone())
        self.fc2 = GatherLinear.from_linear(fc2)
        self.activation = activation
        self.threshold = float(threshold)
        self.threads = threads
        self.fc2.threads = threads
        self._views = _Views()
        self._hid, self._in = self.w1.shape

    def hidden(self, x: Tensor) -> Tensor:
        """The hidden activation h = act(fc1(x)) whose nonzeros fc2 reads."""
        if self.activation == "relu":
            if x.dim() == 0 or x.shape[-1] != self.w1.shape[1]:
                raise ValueError(
                    f"SparseFFN expects {self.w1.shape[1]} input features, got shape {tuple(x.shape)}"
                )
            return _dense_act(x, self.w1, self.b1, self.threshold, self.threads, self._views)
        return self.activation(F.linear(x, self.w1, self.b1))

    def forward(self, x: Tensor) -> Tensor:
        two_d = x.dim() == 2
        if self.activation == "relu" and x.dim() > 0 and x.shape[-1] == self._in:
            x2 = x if two_d else x.reshape(-1, self._in)
            fc2 = self.fc2
            if 0 < x2.shape[0] <= GATHER_MAX_BATCH and not _needs_grad(
                x, self.w1, self.b1, fc2.weight_t, fc2.bias
            ):
                w1 = self._views.get(self.w1, self.b1, 0)
                w2 = fc2._views.get(fc2.weight_t, fc2.bias)
                if w1 is not None and w2 is not None and _numba_ok(x2):
                    # Both layers in one kernel call (one dispatch: the overhead matters at MiniLM size).
                    y, _ = _kernel("ffn_relu")(
                        w1[0],
                        self._in,
                        x2.contiguous().numpy(),
                        w1[1],
                        self.threshold,
                        w2[0],
                        fc2._out,
                        w2[1],
                        _threads(self.threads),
                        PARALLEL_MIN_FLOATS,
                    )
                    y = torch.from_numpy(y)
                    return y if two_d else y.view(*x.shape[:-1], fc2._out)
        return self.fc2(self.hidden(x))

    def extra_repr(self) -> str:
        act = self.activation if isinstance(self.activation, str) else type(self.activation).__name__
        return (
            f"in={self.w1.shape[1]}, hidden={self.w1.shape[0]}, out={self.fc2.out_features}, activation={act}"
        )
