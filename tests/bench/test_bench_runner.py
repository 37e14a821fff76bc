"""The runner on real tasks: a sweep completes, a crash is recorded, kill -9 and rerun resumes.

Fashion-MNIST runs with a tiny budget (2,000 images, 1 epoch) keep each run to seconds; the
mechanism under test is the runner and the store, not the accuracy.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time

import pytest

from sparsetorch.bench import Store, load_suite, run_sweep
from sparsetorch.data import load_fashion_mnist

SUITE = """
name: tiny
seeds: [0]
experiments:
  - task: fmnist-mlp
    budget: {epochs: 1, train_samples: 2000}
    methods: [dense, gmp, set, {name: rigl, params: {update_every: 5}}]
    sparsities: [0.9]
"""


@pytest.fixture
def suite_file(tmp_path):
    load_fashion_mnist("test")  # DataNotFoundError -> skip (or fail under REQUIRE_DATA)
    path = tmp_path / "tiny.yaml"
    path.write_text(textwrap.dedent(SUITE))
    return path


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "sparsetorch.cli", "bench", "run", *args]


def test_sweep_records_a_crash_and_goes_on(tmp_path, suite_file):
    bad = tmp_path / "bad.yaml"
    bad.write_text(suite_file.read_text().replace("update_every: 5", "update_every: -5"))
    result = run_sweep(load_suite(bad).runs, tmp_path / "d", workers=2, progress=False)
    assert (result.completed, result.failed) == (3, 1)
    with Store(tmp_path / "d") as store:
        failed = store.records(status="failed")
        assert len(failed) == 1 and failed[0].method == "rigl"
        assert "Traceback" in failed[0].error and "update_every" in failed[0].error
        done = store.records(status="complete")
        assert all(0.0 < r.metrics["test_accuracy"] <= 1.0 for r in done)
        assert {r.metrics["achieved_sparsity"] for r in done if r.method != "dense"} == {0.9}
        assert all(r.environment["torch"] and r.environment["git"] for r in done)
        assert all((tmp_path / "d" / "runs" / r.config_hash / "config.json").is_file() for r in done)
    # same seed, same result: a second directory reproduces the metrics exactly
    again = run_sweep(load_suite(bad).runs[:1], tmp_path / "e", workers=1, progress=False)
    assert again.completed == 1
    with Store(tmp_path / "e") as a, Store(tmp_path / "d") as b:
        first = a.records(status="complete")[0]
        same = next(r for r in b.records() if r.config_hash == first.config_hash)
        assert first.metrics["test_accuracy"] == same.metrics["test_accuracy"]


def _statuses(db_path) -> dict[str, tuple]:
    db = sqlite3.connect(db_path)
    try:
        return {
            h: (s, m, f)
            for h, s, m, f in db.execute("SELECT config_hash, status, metrics, finished FROM runs")
        }
    finally:
        db.close()


def test_kill_minus_9_then_rerun_completes_only_the_missing_runs(tmp_path, suite_file):
    directory = tmp_path / "bench"
    db_path = directory / "bench.sqlite"
    cmd = _cli("--suite", str(suite_file), "--dir", str(directory), "--workers", "1", "--no-report")
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 240
    before: dict[str, tuple] = {}
    while time.time() < deadline:
        time.sleep(0.2)
        if db_path.exists():
            try:
                before = _statuses(db_path)
            except sqlite3.OperationalError:
                continue
            states = [s for s, _, _ in before.values()]
            if states.count("complete") >= 1 and "running" in states:
                break
    else:
        proc.kill()
        pytest.fail(f"the sweep never reached complete + running: {before}")
    os.killpg(proc.pid, signal.SIGKILL)  # the driver and its worker, mid-run
    proc.wait()
    killed = _statuses(db_path)
    complete_before = {h: v for h, v in killed.items() if v[0] == "complete"}
    interrupted = [h for h, v in killed.items() if v[0] == "running"]
    assert complete_before and interrupted
    assert all(v[1] is None for h, v in killed.items() if v[0] != "complete")  # no metrics without completion

    rerun = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    after = _statuses(db_path)
    assert len(after) == 4 and all(v[0] == "complete" for v in after.values())
    for h, v in complete_before.items():  # never rerun, never rewritten
        assert after[h] == v
    with Store(directory) as store:
        attempts = {r.config_hash: r.attempts for r in store.records()}
    assert all(attempts[h] == 2 for h in interrupted)
    assert all(attempts[h] == 1 for h in complete_before)
    assert f"{len(complete_before)}" in rerun.stdout and "leaderboard" in rerun.stdout


def test_two_benches_on_one_directory_share_the_work(tmp_path, suite_file):
    directory = tmp_path / "shared"
    cmd = _cli("--suite", str(suite_file), "--dir", str(directory), "--workers", "1", "--no-report")
    procs = [
        subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for _ in range(2)
    ]
    outs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    with Store(directory) as store:
        recs = store.records()
    assert len(recs) == 4 and all(r.status == "complete" for r in recs)
    assert all(r.attempts == 1 for r in recs)  # nothing ran twice
    db = sqlite3.connect(directory / "bench.sqlite")
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


@pytest.mark.parametrize("method", ["random-pruning", "sr-ste"])
def test_nm_training_runs_take_the_sparsity_of_their_pattern(method):
    from dataclasses import asdict

    from sparsetorch.bench import RunSpec
    from sparsetorch.bench.runner import execute

    load_fashion_mnist("test")
    spec = RunSpec("fmnist-mlp", method, None, "2:4", 0, budget={"epochs": 1, "train_samples": 500})
    outcome = execute(asdict(spec), 1)
    assert outcome["ok"], outcome.get("error")
    assert outcome["metrics"]["achieved_sparsity"] == 0.5
