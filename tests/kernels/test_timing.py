"""`timing`: interleaved rounds, evictions before each call, the first call of a block dropped."""

from __future__ import annotations

import pytest

from sparsetorch.kernels.timing import time_interleaved, time_ms


def test_time_interleaved_times_every_candidate_in_rounds_after_its_eviction():
    calls: list[str] = []
    fns = {
        "a": (lambda: calls.append("a"), lambda: calls.append("evict a")),
        "b": lambda: calls.append("b"),  # a bare function: no eviction
    }
    ms = time_interleaved(fns, budget_s=0.0, min_reps=4, max_reps=4, block=2)
    assert set(ms) == {"a", "b"} and all(v >= 0 for v in ms.values())
    timed = calls[2:]  # after one warm-up call each
    assert timed[:6] == ["evict a", "a", "evict a", "a", "b", "b"]  # a block of 2 each, in turn
    # 4 rounds (max_reps 4, one counted call per block of 2) x 2 calls each
    assert timed.count("a") == timed.count("b") == timed.count("evict a") == 8


def test_time_interleaved_drops_the_first_call_of_each_block():
    """A candidate whose first call per block is slow is timed by its other calls only."""
    import time

    n = {"slow": 0}

    def first_slow():
        n["slow"] += 1
        if n["slow"] % 3 == 2:  # the first call of each block of 3 (call 1 is the warm-up)
            time.sleep(0.02)

    ms = time_interleaved({"x": first_slow, "y": lambda: None}, budget_s=0.0, min_reps=4, max_reps=4)
    assert ms["x"] < 10.0  # the 20 ms calls were all dropped


def test_time_interleaved_rejects_a_block_without_counted_calls():
    with pytest.raises(ValueError, match="block must be >= 2"):
        time_interleaved({"a": lambda: None}, block=1)


def test_time_ms_evicts_before_each_timed_call_only():
    calls: list[str] = []
    time_ms(lambda: calls.append("f"), evict=lambda: calls.append("e"), min_reps=3, max_reps=3, budget_s=0.0)
    assert calls == ["f", "f", "e", "f", "e", "f", "e", "f"]  # 2 warm-ups, then evict + call
