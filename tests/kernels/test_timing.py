"""`timing`: interleaved rounds, evictions before each call, the first call of a block dropped."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from sparsetorch.kernels import timing
from sparsetorch.kernels.timing import time_alternating, time_interleaved, time_ms


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


def test_time_interleaved_drops_the_first_call_of_each_block(monkeypatch):
    """A candidate whose first call per block is slow is timed by its other calls only (on a fake
    clock: each call advances it by a known amount)."""
    clock = [0.0]
    monkeypatch.setattr(timing, "time", SimpleNamespace(perf_counter=lambda: clock[0]))
    n = [0]

    def first_slow():
        n[0] += 1
        clock[0] += 1.0 if n[0] % 3 == 2 else 0.002  # call 1 is the warm-up; blocks of 3 follow

    def steady():
        clock[0] += 0.005

    ms = time_interleaved({"x": first_slow, "y": steady}, budget_s=0.0, min_reps=4, max_reps=4)
    assert ms == {"x": pytest.approx(2.0), "y": pytest.approx(5.0)}


def test_time_interleaved_rejects_a_block_without_counted_calls():
    with pytest.raises(ValueError, match="block must be >= 2"):
        time_interleaved({"a": lambda: None}, block=1)


def test_time_ms_evicts_before_each_timed_call_only():
    calls: list[str] = []
    time_ms(lambda: calls.append("f"), evict=lambda: calls.append("e"), min_reps=3, max_reps=3, budget_s=0.0)
    assert calls == ["f", "f", "e", "f", "e", "f", "e", "f"]  # 2 warm-ups, then evict + call


def test_time_alternating_charges_a_candidate_for_its_switches_in_and_out(monkeypatch):
    """On a fake clock: a candidate right after dense costs 3x its own time, and dense right after
    a candidate costs 1 ms more; a candidate's result is what it adds to a model."""
    clock = [0.0]
    monkeypatch.setattr(timing, "time", SimpleNamespace(perf_counter=lambda: clock[0]))
    calls: list[str] = []
    cost = {"dense": 0.004, "a": 0.001, "b": 0.002}

    def make(k):
        def fn():
            prev = calls[-1] if calls else None
            calls.append(k)
            if k == "dense":
                clock[0] += cost[k] + (0.001 if prev in ("a", "b") else 0.0)
            else:
                clock[0] += cost[k] * (3 if prev == "dense" else 1)

        return fn

    ms = time_alternating({k: make(k) for k in cost}, base="dense", budget_s=0.0, min_reps=3, max_reps=3)
    assert calls[:3] == ["dense", "a", "b"]  # warm-ups
    assert calls[3:] == ["dense", "dense", "a", "dense", "b", "dense"] * 3
    # dense after itself: 4 ms; a: 3 ms after dense + 1 ms added to the next dense; b: 6 + 1
    assert ms == {"dense": pytest.approx(4.0), "a": pytest.approx(4.0), "b": pytest.approx(7.0)}
    with pytest.raises(ValueError, match="base 'c' is not among"):
        time_alternating({"a": lambda: None}, base="c")
