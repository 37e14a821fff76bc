"""Machine state around a measurement, shared by every benchmark script.

- `LoadMeter`: cores other processes kept busy during a block, so a number taken under load is
  flagged instead of trusted;
- `reset_peak_rss` / `peak_rss`: the resident-set peak of this process (Linux `VmHWM`);
- `make_cold` / `evict`: caches emptied before a timed call, so small weights come from DRAM as they
  do in a model larger than the L3;
- `read_bandwidth`: this machine's read bandwidth, the roofline for memory-bound kernels.

Only the standard library at import time: the llm-compressor worker imports this module from its own
venv, where sparsetorch is not installed (torch and numba are imported by the functions that use them).
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import gc
import os
import platform
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

WARN_CORES = 0.25  # other processes busier than this during a timing make it unreliable


def cpu_ticks() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs from /proc/stat ((0, 0) where unavailable)."""
    try:
        with open("/proc/stat") as f:
            vals = [int(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        return 0, 0
    idle = vals[3] + (vals[4] if len(vals) > 4 else 0)
    return sum(vals[:8]) - idle, sum(vals[:8])


class LoadMeter:
    """Cores kept busy by other processes during a block: busy cores minus this process's (and, with
    `children`, its waited-for subprocesses') CPU time. Read `.foreign` after the block."""

    def __init__(self, *, children: bool = False):
        self.children = children
        self.foreign = 0.0

    def _own(self) -> float:
        t = os.times()
        return t.user + t.system + (t.children_user + t.children_system if self.children else 0.0)

    def __enter__(self) -> LoadMeter:
        self.t0, self.c0, self.s0 = time.perf_counter(), self._own(), cpu_ticks()
        return self

    def __exit__(self, *exc: object) -> None:
        wall = time.perf_counter() - self.t0
        own = (self._own() - self.c0) / max(wall, 1e-9)
        busy, total = cpu_ticks()
        db, dt = busy - self.s0[0], total - self.s0[1]
        self.foreign = max(0.0, (os.cpu_count() or 1) * db / dt - own) if dt > 0 else 0.0


def idle_load(seconds: float = 1.0) -> float:
    """Cores busy with other processes while this one sleeps for `seconds`."""
    with LoadMeter() as load:
        time.sleep(seconds)
    return load.foreign


def _status(key: str) -> int:
    """A `/proc/self/status` field in bytes (0 where unavailable)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def reset_peak_rss() -> int:
    """Reset the VmHWM peak to the current RSS (Linux >= 4.0); return the current RSS in bytes.

    Freed memory is first handed back to the OS (gc, glibc `malloc_trim`), so that the rise measured
    from here is what the run needs, not hidden by memory an earlier run left in the allocator.
    """
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    with contextlib.suppress(OSError), open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    return _status("VmRSS:")


def peak_rss() -> int:
    """Peak resident set size since the last `reset_peak_rss`, in bytes (0 where unavailable)."""
    return _status("VmHWM:")


@functools.cache
def _sweep_buffer() -> torch.Tensor:
    import torch

    return torch.empty(16 * 1024 * 1024)  # 64 MiB, larger than the L3


def evict() -> None:
    """Sweep a 64 MiB buffer through the caches."""
    _sweep_buffer().sum()  # read, not write: dirty lines would be written back during the timed call


@functools.cache
def flusher() -> Callable | None:
    """A numba function that `clflush`es every 64-byte line of a 1-D uint8 array (x86-64), or None."""
    from sparsetorch.kernels import cpu

    if platform.machine().lower() not in ("x86_64", "amd64") or not cpu.has_numba():
        return None
    from llvmlite import ir
    from numba import njit, types
    from numba.extending import intrinsic

    @intrinsic
    def clflush(typingctx, arr, idx):
        def codegen(context, builder, sig, args):
            ary = context.make_array(sig.args[0])(context, builder, args[0])
            i = context.cast(builder, args[1], sig.args[1], types.intp)
            ptr = builder.bitcast(builder.gep(ary.data, [i]), ir.IntType(8).as_pointer())
            name = "llvm.x86.sse2.clflush"
            fn = builder.module.globals.get(name) or ir.Function(
                builder.module, ir.FunctionType(ir.VoidType(), [ir.IntType(8).as_pointer()]), name=name
            )
            builder.call(fn, [ptr])
            return context.get_dummy_value()

        return types.none(arr, idx), codegen

    @njit
    def flush(a):
        for i in range(0, a.shape[0], 64):  # one cache line
            clflush(a, i)

    return flush


def make_cold(*tensors: torch.Tensor) -> Callable[[], None]:
    """A function evicting `tensors` from every cache level: clflush on x86-64, else a 64 MiB sweep.

    A sweep is not enough for layers of a few MB: this CPU's L3 keeps part of a 2.4 MB matrix
    through a 64 MiB read (measured 51 us for the MiniLM fc2 GEMV after a sweep, 134 us after a
    flush), so small layers would be timed warm."""
    import torch

    flush = flusher()
    if flush is None:
        return evict
    # Byte views of the very memory the kernels read.
    arrays = [t.detach().contiguous().view(-1).view(torch.uint8).numpy() for t in tensors if t.numel()]

    def cold() -> None:
        for a in arrays:
            flush(a)

    cold()  # compile now, not inside a timing
    return cold


def read_bandwidth(threads: int) -> float:
    """GB/s of a 512 MiB torch sum with `threads` threads (best of 5)."""
    import torch

    from sparsetorch.kernels.timing import time_ms

    torch.set_num_threads(threads)
    a = torch.ones(128 * 1024 * 1024)
    best = time_ms(a.sum, min_reps=5, max_reps=5)
    del a
    return 512 * 1024 * 1024 / (best * 1e-3) / 1e9
