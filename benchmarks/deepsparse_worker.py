"""Time DeepSparse on given weights; run by a DeepSparse venv's Python, not by sparsetorch's.

Why a separate process: DeepSparse 1.8.0 (end of life) pins numpy 1.26 and onnx 1.14, so it
lives in its own venv (`make deepsparse-venv`). `kernel_speed.py --deepsparse VENV` and
`end_to_end.py --deepsparse VENV` write the weights (or an ONNX model) to a temporary directory
and call this script, which prints one JSON object: `{"<batch>": ms, ...}`.

    VENV/bin/python deepsparse_worker.py linear W.npy --batches 1,64 --threads 2 --budget 0.4
    VENV/bin/python deepsparse_worker.py onnx model.onnx --inputs inputs.npz --threads 2 --output y.npy

Batch 1 is timed after a 64 MiB sweep before every call (DeepSparse's own buffers cannot be
flushed from outside; the sweep is twice this CPU's L3), larger batches hot: the same regimes as
`kernel_speed.py`, except that sparsetorch's batch-1 rows flush exactly the arrays they read.
Medians over `budget` seconds (at least 5 calls) after 2 warm-up calls.
"""

from __future__ import annotations

import os
import sys

# Run as `python benchmarks/NAME.py`: the repo root, not this folder, heads sys.path, so siblings import
# as `benchmarks.*` and no module here can shadow an installed package of the same name.
if not __package__:
    sys.path[0] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

import argparse
import json
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np


def run(venv: str, *args: str, threads: int, budget: float) -> dict[str, float]:
    """Host side (sparsetorch's venv): run this script with the DeepSparse venv's Python, return its
    JSON result (`{"<batch>": ms}`).

    Raises:
        SystemExit: `venv` has no Python (`make deepsparse-venv` builds one).
        RuntimeError: the worker failed; the message ends with its stderr.
    """
    py = Path(venv) / "bin" / "python"
    if not py.exists():
        raise SystemExit(f"--deepsparse {venv}: {py} not found (make deepsparse-venv builds it)")
    cmd = [str(py), __file__, *args, "--threads", str(threads), "--budget", str(budget)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        raise RuntimeError(f"DeepSparse worker failed ({args[0]}): {proc.stderr.strip()[-800:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _timed(run, *, cold: bool, budget: float) -> float:
    sweep = np.ones(16 * 1024 * 1024, dtype=np.float32) if cold else None  # 64 MiB
    run()
    run()
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < 40 and (len(times) < 5 or time.perf_counter() - start < budget):
        if sweep is not None:
            sweep += 1.0
        t0 = time.perf_counter()
        run()
        times.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(times)


def _matmul_model(weight: np.ndarray, path: str) -> None:
    """ONNX graph y = x @ W.T with W.T as an initializer (DeepSparse reads sparsity from it)."""
    from onnx import TensorProto, helper, numpy_helper

    out, inp = weight.shape
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "wt"], ["y"])],
        "sparse_linear",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", inp])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", out])],
        [numpy_helper.from_array(np.ascontiguousarray(weight.T), name="wt")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    with open(path, "wb") as f:
        f.write(model.SerializeToString())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("mode", choices=["linear", "onnx"])
    p.add_argument("path", help="W.npy (out, in) float32 for `linear`, a model.onnx for `onnx`")
    p.add_argument("--batches", default="1,64", help="linear: comma-separated batch sizes")
    p.add_argument("--inputs", help="onnx: .npz of the model inputs, in graph order")
    p.add_argument("--output", help="onnx: save the model's first output here (.npy), to check it")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--budget", type=float, default=0.4)
    args = p.parse_args(argv)

    from deepsparse import compile_model

    result: dict[str, float] = {}
    if args.mode == "linear":
        weight = np.load(args.path).astype(np.float32)
        with tempfile.TemporaryDirectory() as tmp:
            onnx_path = os.path.join(tmp, "linear.onnx")
            _matmul_model(weight, onnx_path)
            for batch in (int(b) for b in args.batches.split(",")):
                engine = compile_model(onnx_path, batch_size=batch, num_cores=args.threads)
                x = np.random.default_rng(0).standard_normal((batch, weight.shape[1]), dtype=np.float32)
                ref = x @ weight.T
                got = engine.run([x])[0]
                if not np.allclose(got, ref, rtol=1e-3, atol=1e-3):
                    raise SystemExit(
                        f"DeepSparse output differs from x @ W.T (max {np.abs(got - ref).max():.2e})"
                    )
                result[str(batch)] = _timed(
                    lambda e=engine, x=x: e.run([x]), cold=batch == 1, budget=args.budget
                )
    else:
        data = np.load(args.inputs)
        inputs = [data[k] for k in data.files]
        batch = int(inputs[0].shape[0])
        engine = compile_model(args.path, batch_size=batch, num_cores=args.threads)
        if args.output:
            np.save(args.output, engine.run(inputs)[0])
        result[str(batch)] = _timed(lambda: engine.run(inputs), cold=False, budget=args.budget)
    json.dump(result, sys.stdout)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
