"""A real single-node Ray head on 127.0.0.1 runs a small sweep; results land in the driver's store."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from sparsetorch.bench import BenchError, RunSpec, Store, run_sweep
from sparsetorch.data import load_fashion_mnist

ray = pytest.importorskip("ray", reason="Ray is installed by `make test` (extra 'ray')")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ray_cli() -> str:
    local = Path(sys.executable).parent / "ray"
    return str(local) if local.exists() else shutil.which("ray") or "ray"


@pytest.fixture
def ray_head():
    port = _free_port()
    temp = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # Ray's socket paths must stay under 107 bytes
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    cmd = [_ray_cli(), "start", "--head", "--node-ip-address=127.0.0.1", f"--port={port}", "--num-cpus=2"]
    cmd += ["--include-dashboard=false", "--disable-usage-stats", f"--temp-dir={temp}"]
    started = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180)
    assert started.returncode == 0, started.stdout + started.stderr
    try:
        yield f"127.0.0.1:{port}"
    finally:
        ray.shutdown()
        subprocess.run([_ray_cli(), "stop", "--force"], env=env, capture_output=True, timeout=120)
        shutil.rmtree(temp, ignore_errors=True)


def test_sweep_on_a_ray_head(tmp_path, ray_head):
    load_fashion_mnist("test")
    runs = [
        RunSpec("fmnist-mlp", "gmp", 0.8, "unstructured", 0, budget={"epochs": 1, "train_samples": 1000}),
        RunSpec("fmnist-mlp", "dense", 0.0, "unstructured", 0, budget={"epochs": 1, "train_samples": 1000}),
        RunSpec(
            "kernel-speed", "torch-csr", 0.9, "unstructured", 0, budget={"shape": "64x64", "budget_s": 0.01}
        ),
    ]
    result = run_sweep(runs, tmp_path / "d", workers=2, ray=ray_head, progress=False)
    assert (result.completed, result.failed) == (3, 0)
    with Store(tmp_path / "d") as store:
        recs = store.records(status="complete")
    assert len(recs) == 3
    # the sweep went through the head started above, not a Ray instance of its own
    gcs = ray.get_runtime_context().gcs_address  # Ray names the host by its IP; the port is ours
    assert ray.is_initialized() and gcs.rpartition(":")[2] == ray_head.rpartition(":")[2]
    again = run_sweep(runs, tmp_path / "d", workers=2, ray=ray_head, progress=False)
    assert (again.completed, again.skipped) == (0, 3)


def test_unreachable_ray_address_is_a_clear_error(tmp_path):
    runs = [RunSpec("kernel-speed", "dense", 0.0, "unstructured", 0)]
    with pytest.raises(BenchError, match=r"cannot reach the Ray cluster at '127\.0\.0\.1:1'"):
        run_sweep(runs, tmp_path / "d", ray="127.0.0.1:1", progress=False)
    with Store(tmp_path / "d") as store:  # nothing claimed, nothing recorded as done
        assert store.counts()["pending"] == 1
