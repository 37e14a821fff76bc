"""Wall-clock timing that holds up on a drifting machine.

Why interleave: on the 2-core project machine the same product ran up to 3x slower within minutes,
so timing dense and sparse one after the other compares two machine states, not two kernels. A
process's first measurement is also slower (thread pools start, caches fill): in `autotune`,
dense was timed first and took 27 us against 19 us in later runs of the same 300x784 layer, which
made a sparse format look 1.45x faster where it was 1.05x. `time_interleaved` runs every candidate
in rounds, so drift and warm-up hit all of them alike, and drops the first call of each block: it
times a kernel by itself. `time_alternating` counts every call of a candidate made right after
the baseline, as in a model, where each sparse layer follows torch ops: a numba kernel started
while torch's OpenMP threads still spin (and the next torch op while numba's do) pays for it.
LeNet's 784->300 2:4 layer at batch 1 was 1.20x faster than dense by itself, 1.07x alternating.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping

Fn = Callable[[], object]


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
    while len(times) < max_reps and (len(times) < min_reps or time.perf_counter() - start < budget_s):
        if evict is not None:
            evict()
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
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
    still spinning (torch's OpenMP and numba's each keep one; on 2 cores a numba kernel right after
    a 2-thread `F.linear` ran up to 1.5x slower). `budget_s` is per candidate; `min_reps` and
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
    while reps < max_reps and (reps < min_reps or time.perf_counter() - start < budget_s * len(pairs)):
        for k, (fn, evict) in pairs.items():
            for i in range(block):
                if evict is not None:
                    evict()
                t0 = time.perf_counter()
                fn()
                if i:
                    times[k].append(time.perf_counter() - t0)
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
    """Median ms of each function, called in rounds `base, a, base, b, ...`, every call counted.

    Each candidate runs right after `base` (and `base` right after a candidate), the way a sparse
    layer runs between torch ops in a model, so each pays the switch between thread pools that
    `time_interleaved` leaves out. `base` is timed after every candidate; `budget_s` is per function.
    """
    if base not in fns:
        raise ValueError(f"base {base!r} is not among the functions {sorted(fns)}")
    others = [k for k in fns if k != base]
    for fn in fns.values():
        fn()  # warm-up: compiles kernels, builds plans
    times: dict[str, list[float]] = {k: [] for k in fns}
    order = [k for other in others for k in (base, other)] or [base]
    start = time.perf_counter()
    reps = 0
    while reps < max_reps and (reps < min_reps or time.perf_counter() - start < budget_s * len(fns)):
        for k in order:
            t0 = time.perf_counter()
            fns[k]()
            times[k].append(time.perf_counter() - t0)
        reps += 1
    return {k: 1e3 * statistics.median(v) for k, v in times.items()}
