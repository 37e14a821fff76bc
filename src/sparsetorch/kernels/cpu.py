"""CPU sparse x dense products for every format: the C++ operators, or pure torch without them.

`linear(fmt, x)` computes `x @ W.T (+ bias)` for a compressed `W` (any `formats.Format`) and a
float32 `x (..., in)`. Two backends:

- `"cpp"`: the C++ custom operators `torch.ops.sparsetorch.*` (`ops.py`, sources in `csrc/`),
  built at install time, on torch's own intra-op thread pool, with AVX-512, AVX2 or portable
  kernels chosen from the CPU at load time (`ops.isa()`; `ATEN_CPU_CAPABILITY` caps it);
- `"torch"`: pure torch (`to_dense()` + `F.linear`, or `torch.sparse` CSR with int32 indices)
  when the extension is not built; correct everywhere, never fast.

Force one with `SPARSETORCH_KERNELS=cpp|torch` or `use_backend(...)` (tests compare them). The
numba kernels of earlier versions are gone from this path: the C++ operators matched or beat them
in every regime the autotuner picks (docs/kernels.md), with one thread pool instead of two and
~1 us per call instead of ~6. numba still runs the activation-sparse FFN (`kernels.gather`).

Threads: `threads=None` uses `torch.get_num_threads()`; another count is set around the call.
"""

from __future__ import annotations

import contextlib
import functools
import os
import platform
import warnings
from collections.abc import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import Tensor

from sparsetorch.kernels import ops
from sparsetorch.kernels.formats import CSR, Dense, Format

BACKENDS = ("cpp", "torch")
_RETIRED = {"avx512", "numba"}  # backends of earlier versions, named in the error


@functools.cache
def cpu_name() -> str:
    """The CPU model string (for autotune cache keys)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown-cpu"


@functools.cache
def has_numba() -> bool:
    """numba is installed (it runs the activation-sparse FFN kernels, `kernels.gather`)."""
    try:
        import numba  # noqa: F401
    except ImportError:
        return False
    return True


_forced: list[str] = []


def default_backend() -> str:
    """The best backend here ("cpp" when the extension loads), unless `SPARSETORCH_KERNELS` says otherwise."""
    env = os.environ.get("SPARSETORCH_KERNELS", "").strip().lower()
    best = "cpp" if ops.available() else "torch"
    if env:
        if env in _RETIRED:
            raise ValueError(
                f"SPARSETORCH_KERNELS={env!r}: the numba kernels were replaced by the C++ operators; use "
                "'cpp' or 'torch' (pick the instruction set with ATEN_CPU_CAPABILITY=default|avx2|avx512)"
            )
        if env not in BACKENDS:
            raise ValueError(f"SPARSETORCH_KERNELS={env!r}: expected one of {', '.join(BACKENDS)}")
        if BACKENDS.index(env) < BACKENDS.index(best):
            raise ValueError(f"SPARSETORCH_KERNELS={env!r} is not available here: {ops.unavailable_reason()}")
        return env
    if best == "torch":
        ops.warn_unavailable()
    return best


_default: list[str] = []  # default_backend(), resolved once per process (reset_default() re-reads it)


def backend() -> str:
    """The backend in use now: the innermost `use_backend`, else `default_backend()` as first resolved."""
    if _forced:
        return _forced[-1]
    if not _default:
        _default.append(default_backend())
    return _default[0]


def reset_default() -> None:
    """Resolve `default_backend()` again at the next `backend()` (after changing SPARSETORCH_KERNELS)."""
    _default.clear()


@contextlib.contextmanager
def use_backend(name: str) -> Iterator[None]:
    """Run the enclosed products on backend `name` (e.g. force the fallback in tests).

    Raises:
        ValueError: unknown backend, or one this machine cannot run.
    """
    if name not in BACKENDS:
        raise ValueError(f"unknown kernel backend {name!r}; expected one of {', '.join(BACKENDS)}")
    if name == "cpp" and not ops.available():
        raise ValueError(f"kernel backend 'cpp' is not available on this machine: {ops.unavailable_reason()}")
    _forced.append(name)
    try:
        yield
    finally:
        _forced.pop()


def check_input(fmt: Format, x: Tensor) -> None:
    """Raise a clear error for an input the kernels cannot take (the torch path's checks)."""
    if not isinstance(x, Tensor):
        raise TypeError(f"sparse linear expects a torch.Tensor, got {type(x).__name__}")
    if x.device.type != "cpu":
        raise ValueError(f"CPU sparse kernels got an input on {x.device}; move it to the CPU (or decompile)")
    if x.dtype != torch.float32:
        raise TypeError(f"CPU sparse kernels compute in float32, got an input of dtype {x.dtype}")
    if x.dim() == 0 or x.shape[-1] != fmt.shape[1]:
        raise ValueError(
            f"input has {tuple(x.shape)[-1:] or '()'} features, the layer expects {fmt.shape[1]}"
        )


def _check_bias(bias: Tensor | None, out: int) -> None:
    if bias is not None and (
        bias.shape != (out,) or bias.dtype != torch.float32 or bias.device.type != "cpu"
    ):
        raise ValueError(
            f"bias must be a float32 CPU tensor of shape ({out},), got {tuple(bias.shape)} {bias.dtype} "
            f"on {bias.device}"
        )


def linear(
    fmt: Format,
    x: Tensor,
    *,
    bias: Tensor | None = None,
    threads: int | None = None,
    backend_name: str | None = None,
) -> Tensor:
    """`x @ W.T (+ bias)` for compressed `W`; x (..., in) float32 CPU -> (..., out)."""
    return Plan(fmt, backend_name or backend())(x, threads=threads, bias=bias)


class Plan:
    """The product of one format on one backend, bound once: `plan(x, bias=...)`.

    For the C++ backend this is the operator with the format's tensors bound (no per-call Python
    beyond one call); the tensors are shared, so in-place updates of the values are seen.
    """

    def __init__(self, fmt: Format, backend_name: str) -> None:
        if backend_name not in BACKENDS:
            raise ValueError(
                f"unknown kernel backend {backend_name!r}; expected one of {', '.join(BACKENDS)}"
            )
        self.fmt = fmt
        self.backend = backend_name
        self.out, self.inp = fmt.shape
        cpp = backend_name == "cpp" and not isinstance(fmt, Dense)
        self.op: Callable[[Tensor, Tensor | None], Tensor] | None = op_call(fmt) if cpp else None

    def __call__(self, x: Tensor, *, threads: int | None = None, bias: Tensor | None = None) -> Tensor:
        """`x @ W.T (+ bias)`, x (..., in) float32 CPU -> (..., out)."""
        if self.op is None:
            check_input(self.fmt, x)
            _check_bias(bias, self.out)
            x2 = x.reshape(-1, self.inp)
            y = _torch_linear(self.fmt, x2).contiguous()
            if bias is not None:
                y += bias
            return y.reshape(*x.shape[:-1], self.out)
        if not isinstance(x, Tensor):
            raise TypeError(f"sparse linear expects a torch.Tensor, got {type(x).__name__}")
        if threads is None:
            return self.op(x.contiguous(), bias)
        with num_threads(threads):
            return self.op(x.contiguous(), bias)


def op_call(fmt: Format) -> Callable[[Tensor, Tensor | None], Tensor]:
    """`(x, bias) -> y` through the C++ operator of `fmt`, its tensors bound."""
    op, (a, b, c), tail = ops.op_args(fmt)
    return lambda x, bias: op(x, a, b, c, bias, *tail)


@contextlib.contextmanager
def num_threads(threads: int) -> Iterator[None]:
    """torch's intra-op thread count set to `threads` inside (the C++ kernels run on that pool)."""
    n = int(threads)
    if isinstance(threads, bool) or n < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    old = torch.get_num_threads()
    if n == old:
        yield
        return
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


# --- torch fallback ---------------------------------------------------------------------------


def torch_csr(fmt: CSR) -> Tensor:
    """The format as a `torch.sparse_csr_tensor` with int32 indices (1.3-3.6x faster than int64)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "beta state" / invariant-check notices
        return torch.sparse_csr_tensor(
            fmt.row_ptr,
            fmt.col_index().to(torch.int32),
            fmt.stored_values(),
            size=fmt.shape,
            check_invariants=False,
        )


def _torch_linear(fmt: Format, x2: Tensor) -> Tensor:
    if isinstance(fmt, Dense):
        return F.linear(x2, fmt.weight)
    if isinstance(fmt, CSR) and x2.shape[0] > 0 and fmt.nnz > 0:
        return torch.sparse.mm(torch_csr(fmt), x2.t()).t()
    return F.linear(x2, fmt.to_dense())
