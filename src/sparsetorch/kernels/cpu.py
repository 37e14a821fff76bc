"""CPU sparse x dense products for every format, with feature detection and fallbacks.

`linear(fmt, x)` computes `x @ W.T` for a compressed `W` (any `formats.Format`) and a float32
`x (..., in)`. Three backends, picked once per process from what the machine has:

- `"avx512"`: numba kernels with AVX-512 intrinsics (`_avx512.py`) where they exist (bitmask,
  CSR, 2:4 at batch 1; bitmask, CSR, N:M at batch > 1), the portable kernels for the rest;
- `"numba"`: the portable numba kernels (`_portable.py`), on any CPU numba supports;
- `"torch"`: pure torch (`to_dense()` + `F.linear`, or `torch.sparse` CSR with int32 indices),
  when numba is not installed; correct everywhere, never fast.

Why three: a user's `pip install` must work without a compiler, and an AVX-512 instruction on a
CPU without it is a crash, not an exception. Force one with `SPARSETORCH_KERNELS=torch|numba|avx512`
or `use_backend(...)` (tests compare them).

Threads: `threads=None` uses `torch.get_num_threads()`; numba kernels split output rows (or, for
batches of at least one 8/16/64-row tile per thread, the batch) into that many equal ranges.
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import platform
import warnings
from collections.abc import Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from sparsetorch.kernels.formats import CSR, Bitmask, BlockSparse, Dense, Format, NMPacked

BACKENDS = ("avx512", "numba", "torch")
SPMV_MAX_BATCH = 2  # up to this many rows, stream the weights once per row (bandwidth-bound)


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
def cpu_features() -> frozenset[str]:
    """Host CPU features as LLVM names (`avx512f`, `neon`, ...); empty without numba."""
    try:
        import llvmlite.binding as ll

        feats = ll.get_host_cpu_features()
        return frozenset(k for k, v in feats.items() if v)
    except Exception:
        return frozenset()


@functools.cache
def has_numba() -> bool:
    try:
        import numba  # noqa: F401
    except ImportError:
        return False
    return True


@functools.cache
def has_avx512() -> bool:
    """AVX-512 F/BW/VL on x86-64 (what the intrinsic kernels need) and numba to compile them."""
    need = {"avx512f", "avx512bw", "avx512vl"}
    return has_numba() and platform.machine().lower() in ("x86_64", "amd64") and need <= cpu_features()


_forced: list[str] = []


def default_backend() -> str:
    """The best backend this machine supports, unless `SPARSETORCH_KERNELS` says otherwise."""
    env = os.environ.get("SPARSETORCH_KERNELS", "").strip().lower()
    best = "avx512" if has_avx512() else "numba" if has_numba() else "torch"
    if env:
        if env not in BACKENDS:
            raise ValueError(f"SPARSETORCH_KERNELS={env!r}: expected one of {', '.join(BACKENDS)}")
        if BACKENDS.index(env) < BACKENDS.index(best):
            raise ValueError(f"SPARSETORCH_KERNELS={env!r} is not available here (best: {best!r})")
        return env
    return best


def backend() -> str:
    """The backend in use now (innermost `use_backend`, else `default_backend()`)."""
    return _forced[-1] if _forced else default_backend()


@contextlib.contextmanager
def use_backend(name: str) -> Iterator[None]:
    """Run the enclosed products on backend `name` (e.g. force the fallback in tests).

    Raises:
        ValueError: unknown backend, or one this machine cannot run.
    """
    if name not in BACKENDS:
        raise ValueError(f"unknown kernel backend {name!r}; expected one of {', '.join(BACKENDS)}")
    if (name == "avx512" and not has_avx512()) or (name == "numba" and not has_numba()):
        raise ValueError(f"kernel backend {name!r} is not available on this machine")
    _forced.append(name)
    try:
        yield
    finally:
        _forced.pop()


def _threads(threads: int | None) -> int:
    n = torch.get_num_threads() if threads is None else int(threads)
    if n < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    # Kernels split their work as `prange(n)`: numba's pool (all cores by default) only needs
    # >= n threads, so it is not resized per call (that cost ~1.5 us, a tenth of a small product).
    return min(n, _numba_max_threads())


@functools.cache
def _numba_max_threads() -> int:
    import numba

    return numba.config.NUMBA_NUM_THREADS


def check_input(fmt: Format, x: Tensor) -> None:
    """Raise a clear error for an input the kernels cannot take."""
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


def linear(fmt: Format, x: Tensor, *, threads: int | None = None, backend_name: str | None = None) -> Tensor:
    """`x @ W.T` for compressed `W`; x (..., in) float32 CPU -> (..., out)."""
    return Plan(fmt, backend_name or backend())(x, threads=threads)


class Plan:
    """What a product needs that does not depend on `x`: numpy views of the format, the kernels.

    Building one costs a few microseconds; `SparseLinear` keeps one per backend so that the
    per-call overhead stays small for small layers. The numpy arrays share memory with the
    format's tensors, so in-place updates of the values (an optimizer step) are seen.
    """

    def __init__(self, fmt: Format, backend_name: str) -> None:
        if backend_name not in BACKENDS:
            raise ValueError(f"unknown kernel backend {backend_name!r}")
        self.fmt = fmt
        self.backend = backend_name
        self.out, self.inp = fmt.shape
        self.kind = (
            "torch" if isinstance(fmt, Dense) or backend_name == "torch" or 0 in fmt.shape else "numba"
        )
        if self.kind == "torch":
            return
        self.avx = backend_name == "avx512" and not isinstance(fmt, BlockSparse)
        self._bptr: dict[int, np.ndarray] = {}
        self._fns: dict[tuple[str, bool], object] = {}
        self._zero_bias = np.zeros(self.out, dtype=np.float32)
        self.work = fmt.values.numel() if isinstance(fmt, NMPacked | BlockSparse) else int(fmt.row_ptr[-1])
        if isinstance(fmt, Bitmask):
            self.args = (_u16(fmt.bits), fmt.values.numpy(), fmt.row_ptr.numpy())
            self.chunks = fmt.bits.shape[1]
            self.name = "bitmask"
        elif isinstance(fmt, CSR):
            cols = _u16(fmt.cols) if fmt.index_bits == 16 else fmt.cols.numpy()
            self.args = (cols, fmt.values.numpy(), fmt.row_ptr.numpy())
            self.name = "csr"
        elif isinstance(fmt, NMPacked):
            self.args = (fmt.values.numpy(), fmt.index.numpy(), fmt.n, fmt.m, fmt.bits)
            self.name = "nm24" if (self.avx and fmt.n == 2 and fmt.m == 4) else "nm"
        elif isinstance(fmt, BlockSparse):
            self.args = (fmt.values.numpy(), fmt.block_cols.numpy(), fmt.row_ptr.numpy())
            self.name = "block"
        else:
            raise TypeError(f"no kernel for format {type(fmt).__name__}")
        self._spmv_name = f"{self.name}_spmv"
        self._spmv_args = self.args[:2] if self.name == "nm24" else self.args

    def __call__(self, x: Tensor, *, threads: int | None = None, bias: Tensor | None = None) -> Tensor:
        """`x @ W.T (+ bias)`, x (..., in) float32 CPU -> (..., out), contiguous."""
        check_input(self.fmt, x)
        if bias is not None and (
            bias.shape != (self.out,) or bias.dtype != torch.float32 or bias.device != x.device
        ):
            raise ValueError(
                f"bias must be a float32 CPU tensor of shape ({self.out},), got {tuple(bias.shape)} {bias.dtype} "
                f"on {bias.device}"
            )
        flat = x.dim() == 2  # the common case: no reshapes (each costs ~1 us on a small layer)
        x2 = x if flat else x.reshape(-1, self.inp)
        if self.kind == "torch" or x2.shape[0] == 0:
            y = _torch_linear(self.fmt, x2).contiguous()
            if bias is not None:
                y += bias
        else:
            y = self._numba(x2.contiguous(), threads, bias)
        return y if flat else y.reshape(*x.shape[:-1], self.out)

    def _kernel(self, name: str, serial: bool):
        """Kernel `name`, serial or parallel, resolved once per plan (a lookup by name took ~1 us)."""
        fn = self._fns.get((name, serial))
        if fn is None:
            fn = self._fns[name, serial] = getattr(_kernels(self.avx, serial), name)
        return fn

    def _numba(self, x2: Tensor, threads: int | None, bias: Tensor | None) -> Tensor:
        b = x2.shape[0]
        nt = _threads(threads)
        # The serial variants skip the thread-pool launch (~2.5 us) but compile to slower loops
        # (1536x384 bitmask SpMV: 70 vs 48 us; SpMM: 12% slower), so only tiny products use them.
        serial = self.work * b < PARALLEL_MIN_WORK
        if serial:
            nt = 1
        if b > SPMV_MAX_BATCH and not self.avx:
            xt = x2.t().contiguous()  # (in, B)
            yt = torch.empty(self.out, b, dtype=torch.float32)
            self._kernel(f"{self.name}_spmm", serial)(*self.args, xt.numpy(), yt.numpy(), nt)
            y = yt.t().contiguous()
            return y if bias is None else y.add_(bias)
        bias_np = self._zero_bias if bias is None else bias.detach().contiguous().numpy()
        if b <= SPMV_MAX_BATCH:
            return self._spmv(x2, nt, serial, bias_np)
        return self._avx_spmm(x2, nt, serial, bias_np)

    def _spmv(self, x2: Tensor, nt: int, serial: bool, bias: np.ndarray) -> Tensor:
        """One SpMV per row, bias added in the kernel."""
        b = x2.shape[0]
        y = torch.empty(b, self.out, dtype=torch.float32)
        yn = y.numpy()
        if self.name == "bitmask" and self.inp % 16:
            xpad = torch.zeros(b, 16 * self.chunks, dtype=torch.float32)
            xpad[:, : self.inp] = x2
            x2 = xpad
        xs = x2.numpy()
        fn = self._kernel(self._spmv_name, serial)
        args = self._spmv_args
        for i in range(b):
            fn(*args, xs[i], bias, yn[i], nt)
        return y

    def _avx_spmm(self, x2: Tensor, nt: int, serial: bool, bias: np.ndarray) -> Tensor:
        b, inp = x2.shape
        tw = panel_width(b)
        tiles = -(-b // tw)
        # Threads split tiles (one panel array, a one-tile output buffer each) or rows (a panel copy
        # each, one shared output buffer): see `_avx512._split`.
        by_tiles = tiles >= nt
        xp = np.empty((1 if by_tiles else nt, tiles, inp, tw), dtype=np.float32)
        yt = np.empty((nt if by_tiles else 1, self.out, tw), dtype=np.float32)
        y = torch.empty(b, self.out, dtype=torch.float32)
        io = (x2.numpy(), xp, yt, bias, y.numpy(), nt)
        cb = spmm_block_cols(tw, self.fmt)
        if self.name in ("nm", "nm24"):
            self._kernel("nm_spmm", serial)(*self.args, cb, *io)
        else:
            self._kernel(f"{self.name}_spmm", serial)(
                self.args[0], self.args[1], self._block_ptr(cb), cb, *io
            )
        return y

    def _block_ptr(self, cb: int) -> np.ndarray:
        """(out, blocks + 1) int32: offset of each row's first stored value in each column block."""
        cached = self._bptr.get(cb)
        if cached is None:
            cached = self._bptr[cb] = block_ptr(self.fmt, cb)
        return cached


PARALLEL_MIN_WORK = 40_000  # stored values x batch rows below which one thread beats a parallel launch


class _Kernels:
    """Kernel functions by name, for one (AVX-512?, serial?) combination."""

    def __init__(self, avx: bool, serial: bool) -> None:
        from sparsetorch.kernels import _portable

        mods = [_portable]
        if avx:
            from sparsetorch.kernels import _avx512

            mods.insert(0, _avx512)
        self._mods, self._serial, self._cache = mods, serial, {}

    def __getattr__(self, name: str):
        if name.startswith("_"):
            raise AttributeError(name)
        fn = self._cache.get(name)
        if fn is None:
            disp = next(getattr(m, name) for m in self._mods if hasattr(m, name))
            fn = _serial_variant(disp) if self._serial else disp
            self._cache[name] = fn
        return fn


def _serial_variant(disp):
    """The same kernel compiled without `parallel` (no thread-pool launch: cheaper for small work).

    A copy of the Python function under another qualified name, so numba's on-disk cache keeps
    both variants apart.
    """
    import types as pytypes

    import numba

    f = disp.py_func
    g = pytypes.FunctionType(f.__code__, f.__globals__, f.__name__ + "_serial", f.__defaults__, f.__closure__)
    g.__qualname__ = f.__qualname__ + "_serial"
    g.__module__ = f.__module__
    g.__doc__ = f.__doc__
    opts = {k: v for k, v in disp.targetoptions.items() if k != "nopython"}
    # `cache` is not among the dispatcher's targetoptions: ask for it, or the variant recompiles per process.
    return numba.njit(**{**opts, "parallel": False, "cache": True})(g)


@functools.cache
def _kernels(avx: bool, serial: bool) -> _Kernels:
    return _Kernels(avx, serial)


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


# --- numba --------------------------------------------------------------------------------------


def _u16(t: Tensor) -> np.ndarray:
    return t.numpy().view(np.uint16).ravel()


SPMM_PANEL_BYTES = 256 * 1024  # X panel rows one column block may touch: a quarter of a 1 MiB L2


def spmm_block_cols(tw: int, fmt: Format) -> int:
    """Input columns per block of the AVX-512 SpMM: panel rows of the block fill `SPMM_PANEL_BYTES`.

    A multiple of 64 (whole bitmask chunks) and, for N:M, of `m * (32 // bits)` (whole groups and
    index words), so every block starts on a chunk, a group and an index word.
    """
    align = 64
    if isinstance(fmt, NMPacked):
        align = math.lcm(align, fmt.m * (32 // fmt.bits))
    return max(align, SPMM_PANEL_BYTES // (4 * tw) // align * align)


def block_ptr(fmt: CSR | Bitmask, cb: int) -> np.ndarray:
    """(out, blocks + 1) int32 value offsets: row r's values with columns in block b start at [r, b]."""
    out, inp = fmt.shape
    nb = -(-inp // cb)
    if isinstance(fmt, CSR):
        key = fmt.row_index() * nb + fmt.col_index() // cb
        per_block = torch.bincount(key, minlength=out * nb).view(out, nb)
    else:
        chunk_counts = fmt.chunk_counts()  # (out, chunks)
        pad = nb * (cb // 16) - chunk_counts.shape[1]
        per_block = F.pad(chunk_counts, (0, pad)).view(out, nb, cb // 16).sum(2)
    bptr = torch.zeros(out, nb + 1, dtype=torch.int64)
    torch.cumsum(per_block, 1, out=bptr[:, 1:])
    return (bptr + fmt.row_ptr[:-1, None].to(torch.int64)).to(torch.int32).numpy()


def panel_width(batch: int) -> int:
    """Batch columns per packed X panel: 64 (4 zmm per weight) for big batches, 8 (two weights per
    zmm) up to 8 rows, else 16: a batch of 8 in 16-wide panels did half its FMAs on padding."""
    return 64 if batch >= 48 else 8 if batch <= 8 else 16
