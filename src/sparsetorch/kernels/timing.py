"""Wall-clock timing that holds up on a drifting machine.

Why interleave: on the 2-core project machine the same product ran up to 3x slower within minutes,
so timing dense and sparse one after the other compares two machine states, not two kernels. A
process's first measurement is also slower (thread pools start, caches fill): in `autotune`,
dense was timed first and took 27 us against 19 us in later runs of the same 300x784 layer, which
made a sparse format look 1.45x faster where it was 1.02x. `time_interleaved` runs every candidate
in rounds, so drift and warm-up hit all of them alike, and drops the first call of each block: it
times a kernel by itself. `time_alternating` times what a layer costs a model, where torch ops run
before and after it: whatever a kernel leaves behind (caches, a thread pool still spinning) is
charged to it. With the numba kernels of earlier versions (a second OpenMP pool), LeNet's 784->300
2:4 layer at batch 1 was 1.22x faster than dense by itself and 0.92x in a model; the C++ operators
share torch's pool.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping

Fn = Callable[[], object]


def _seconds(fn: Fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _more(reps: int, start: float, *, min_reps: int, max_reps: int, budget_s: float) -> bool:
    """Another round: below `max_reps`, and below `min_reps` or within the budget."""
    return reps < max_reps and (reps < min_reps or time.perf_counter() - start < budget_s)


def time_ms(
    fn: Fn,
    *,
    evict: Callable[[], None] | None = None,
    min_reps: int = 5,
    max_reps: int = 25,
    budget_s: float = 0.25,
) -> float:
    """Median wall time of `fn()` in ms, after 2 warm-up calls (which also compile kernels); with
    `evict`, that function runs (untimed) before each timed call, e.g. to clear the caches."""
    fn()
    fn()
    times: list[float] = []
    start = time.perf_counter()
    while _more(len(times), start, min_reps=min_reps, max_reps=max_reps, budget_s=budget_s):
        if evict is not None:
            evict()
        times.append(_seconds(fn))
    return 1e3 * statistics.median(times)


def time_interleaved(
    fns: Mapping[str, Fn | tuple[Fn, Callable[[], None] | None]],
    *,
    budget_s: float = 0.25,
    min_reps: int = 6,
    max_reps: int = 24,
    block: int = 3,
) -> dict[str, float]:
    """Median ms of each `fn`, timed in rounds of `block` consecutive calls per candidate.

    A value is a function or `(function, evict)`; `evict` runs (untimed) before each call. The
    first call of each block is not counted: it pays for the previous candidate's thread pool
    still spinning (a library with its own OpenMP runtime keeps its own; on 2 cores the numba
    kernels of earlier versions ran up to 1.5x slower right after a 2-thread `F.linear`). `budget_s` is per candidate; `min_reps` and
    `max_reps` count the timed calls of each.
    """
    if block < 2:
        raise ValueError(f"block must be >= 2 (its first call is not counted), got {block}")
    pairs = {k: v if isinstance(v, tuple) else (v, None) for k, v in fns.items()}
    for fn, _ in pairs.values():
        fn()  # warm-up: compiles kernels, builds plans
    times: dict[str, list[float]] = {k: [] for k in pairs}
    start = time.perf_counter()
    reps = 0
    while _more(reps, start, min_reps=min_reps, max_reps=max_reps, budget_s=budget_s * len(pairs)):
        for k, (fn, evict) in pairs.items():
            for i in range(block):
                if evict is not None:
                    evict()
                t = _seconds(fn)
                if i:
                    times[k].append(t)
        reps += block - 1
    return {k: 1e3 * statistics.median(v) for k, v in times.items()}


def time_alternating(
    fns: Mapping[str, Fn],
    *,
    base: str,
    budget_s: float = 0.25,
    min_reps: int = 6,
    max_reps: int = 24,
) -> dict[str, float]:
    """What each function costs a model in which torch ops run before and after it, in ms.

    Rounds call `base, base, a, base, b, base, ...`, every call counted. `base` is timed after
    itself (as in a dense model). A candidate is timed right after `base`, plus what it adds to the
    `base` call that follows it: median(a after base) + median(base after a) - median(base after
    base). So a kernel is charged for what it does to the torch op after it (and for starting
    while another pool still spins); `time_interleaved` leaves both out.
    `budget_s` is per function.
    """
    if base not in fns:
        raise ValueError(f"base {base!r} is not among the functions {sorted(fns)}")
    others = [k for k in fns if k != base]
    for fn in fns.values():
        fn()  # warm-up: compiles kernels, builds plans
    own: dict[str, list[float]] = {k: [] for k in fns}  # base: after itself; others: after base
    after: dict[str, list[float]] = {k: [] for k in others}  # base after each candidate

    start = time.perf_counter()
    reps = 0
    while _more(reps, start, min_reps=min_reps, max_reps=max_reps, budget_s=budget_s * len(fns)):
        _seconds(fns[base])
        own[base].append(_seconds(fns[base]))
        for k in others:
            own[k].append(_seconds(fns[k]))
            after[k].append(_seconds(fns[base]))
        reps += 1
    med = {k: statistics.median(v) for k, v in own.items()}
    out = {base: 1e3 * med[base]}
    for k in others:
        out[k] = 1e3 * (med[k] + statistics.median(after[k]) - med[base])
    return out
