"""The C++ custom operators `torch.ops.sparsetorch.*`: loading, fake kernels, and one call per format.

The products live in `kernels/csrc` (built into `sparsetorch._C` at install time, see setup.py):

    torch.ops.sparsetorch.bitmask_linear(x, bits, values, row_ptr, bias, in_features)
    torch.ops.sparsetorch.csr_linear(x, cols, values, row_ptr, bias, in_features)
    torch.ops.sparsetorch.nm_linear(x, values, index, pad, bias, n, m)
    torch.ops.sparsetorch.block_linear(x, values, block_cols, row_ptr, bias, in_features)
    torch.ops.sparsetorch.positions(format, values, i0, i1, in_features, n, m)

each `y (..., out) = x (..., in) @ W.T + bias` for a compressed `W` (`formats`), float32 on the CPU,
on torch's own intra-op thread pool. Autograd is registered in C++ (the dense masked backward), so
a call with grad mode off costs no Python; this file adds the fake (meta) kernels that let
`torch.compile` and `torch.export` trace the ops (Inductor runs them as opaque calls and fuses what
lies around them).

The kernel table is chosen once per process from the CPU: AVX-512 (F/BW/VL/DQ), AVX2+FMA, or the
portable build; `ATEN_CPU_CAPABILITY=default|avx2|avx512` caps it, as it does for ATen, and
`use_isa(...)` switches it (tests compare them).

Without the extension (no compiler at install time, `SPARSETORCH_NO_CPP=1`), `available()` is
False, `unavailable_reason()` says why, and `sparsetorch.kernels` falls back to pure torch.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import warnings
from collections.abc import Callable, Iterator

import torch
from torch import Tensor

from sparsetorch.kernels.formats import Format

ISAS = ("generic", "avx2", "avx512")
_REBUILD = (
    "reinstall with a C++ compiler (g++ or clang++): pip install --no-build-isolation -e . "
    "(or `make setup` from a clean checkout)"
)


_loaded: list[
    str | None
] = []  # [None] once loaded, [reason] when it cannot be (a plain global: Dynamo reads it)


def _load() -> str | None:
    """Import the extension once; None when it loaded, else the reason it did not."""
    if not _loaded:
        try:
            # registers the operators; by name, as `sparsetorch._C` is a compiled leaf, not the package
            importlib.import_module("sparsetorch._C")
        except ImportError as exc:
            _loaded.append(f"sparsetorch._C is not built or does not load ({exc})")
        except OSError as exc:  # a library built against another torch
            _loaded.append(f"sparsetorch._C does not load ({exc})")
        else:
            _register_fakes()
            _loaded.append(None)
    return _loaded[0]


def available() -> bool:
    """Whether the C++ operators are loaded (built at install time)."""
    return _load() is None


def unavailable_reason() -> str:
    """Why the C++ operators are missing ('' when they are available), with how to fix it."""
    reason = _load()
    return "" if reason is None else f"{reason}; {_REBUILD}"


@functools.cache
def warn_unavailable() -> None:
    """Say once per process that the sparse layers run on pure torch, and why."""
    warnings.warn(
        f"sparsetorch: C++ sparse kernels unavailable, using the pure-torch fallback (correct, not fast): "
        f"{unavailable_reason()}",
        RuntimeWarning,
        stacklevel=3,
    )


def isa() -> str:
    """The kernel table in use: 'avx512', 'avx2' or 'generic'."""
    _require()
    return torch.ops.sparsetorch.isa()


def supported_isas() -> list[str]:
    """The kernel tables this CPU runs, in `ISAS` order ([] without the operators); `ATEN_CPU_CAPABILITY`
    does not restrict `use_isa`, only the default choice."""
    if not available():
        return []
    out = []
    for name in ISAS:
        try:
            with use_isa(name):
                out.append(name)
        except ValueError:  # a table this CPU cannot run
            pass
    return out


@contextlib.contextmanager
def use_isa(name: str) -> Iterator[None]:
    """Run the enclosed products with kernel table `name` ('generic', 'avx2', 'avx512' or 'best').

    Raises:
        ValueError: an unknown table, or one this CPU cannot run.
    """
    _require()
    previous = torch.ops.sparsetorch.set_isa(name)
    try:
        yield
    finally:
        torch.ops.sparsetorch.set_isa(previous)


def _require() -> None:
    if not available():
        raise RuntimeError(unavailable_reason())


# Each format's operator takes `(x, *OP_FIELDS[format], bias, *op_tail(...))`, in its schema's order.
OP_FIELDS: dict[str, tuple[str, str, str]] = {
    "bitmask": ("bits", "values", "row_ptr"),
    "csr": ("cols", "values", "row_ptr"),
    "nm": ("values", "index", "pad"),
    "block": ("values", "block_cols", "row_ptr"),
}


def index_fields(name: str) -> tuple[str, str]:
    """The two index tensors of format `name` (its structure; `positions` and edit checks use them)."""
    i0, i1 = (f for f in OP_FIELDS[name] if f != "values")
    return i0, i1


def op_tail(name: str, in_features: int, meta: dict) -> tuple[int, ...]:
    """The integer arguments after `bias`: `(n, m)` for N:M, else `(in_features,)`."""
    return (meta["n"], meta["m"]) if name == "nm" else (in_features,)


def op_args(fmt: Format) -> tuple[Callable[..., Tensor], tuple[Tensor, ...], tuple[int, ...]]:
    """`(operator, head, tail)` of `fmt`: the product is `operator(x, *head, bias, *tail)`."""
    _require()
    if fmt.name not in OP_FIELDS:
        raise TypeError(f"no C++ operator for format {type(fmt).__name__}")
    op = getattr(torch.ops.sparsetorch, f"{fmt.name}_linear").default
    return (
        op,
        tuple(getattr(fmt, f) for f in OP_FIELDS[fmt.name]),
        op_tail(fmt.name, fmt.shape[1], fmt.meta()),
    )


def linear(fmt: Format, x: Tensor, bias: Tensor | None = None) -> Tensor:
    """`x @ W.T + bias` through the operator of `fmt`'s format (`Dense` is not a sparse format)."""
    op, head, tail = op_args(fmt)
    return op(x, *head, bias, *tail)


def positions(fmt: Format) -> Tensor:
    """The C++ `positions` op for `fmt`: flat `row * in + col` per entry of the values tensor, -1 on padding."""
    _, _, tail = op_args(fmt)  # checks the format
    n, m = tail if fmt.name == "nm" else (0, 0)
    i0, i1 = (getattr(fmt, f) for f in index_fields(fmt.name))
    return torch.ops.sparsetorch.positions(fmt.name, fmt.values, i0, i1, fmt.shape[1], n, m)


# --- fake kernels: output metadata only, for torch.compile / torch.export -------------------------


def _out(x: Tensor, out: int, inp: int) -> Tensor:
    torch._check(x.dim() >= 1, lambda: "sparse linear needs an input with a feature dimension")
    torch._check(x.shape[-1] == inp, lambda: f"the input has {x.shape[-1]} features, the layer expects {inp}")
    return x.new_empty((*x.shape[:-1], out))


def _register_fakes() -> None:
    lib = "sparsetorch::"

    @torch.library.register_fake(lib + "bitmask_linear")
    def _bitmask(x, bits, values, row_ptr, bias, in_features):
        return _out(x, bits.shape[0], in_features)

    @torch.library.register_fake(lib + "csr_linear")
    def _csr(x, cols, values, row_ptr, bias, in_features):
        return _out(x, row_ptr.shape[0] - 1, in_features)

    @torch.library.register_fake(lib + "nm_linear")
    def _nm(x, values, index, pad, bias, n, m):
        return _out(x, values.shape[0], values.shape[1] // n * m)

    @torch.library.register_fake(lib + "block_linear")
    def _block(x, values, block_cols, row_ptr, bias, in_features):
        return _out(x, (row_ptr.shape[0] - 1) * values.shape[1], in_features)

    @torch.library.register_fake(lib + "positions")
    def _positions(format, values, i0, i1, in_features, n, m):
        return values.new_empty((values.numel(),), dtype=torch.int64)
