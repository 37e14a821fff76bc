"""Masks stay identical across ranks under DDP: two gloo processes on the CPU.

Each rank gets different data and a different method seed, and DDP's per-forward buffer sync is off,
so the masks agree only because the method averages the growth gradients over ranks and broadcasts
rank 0's masks at `prepare` and at every update (see `sparsetorch.training.base`).
"""

from __future__ import annotations

import gc
import socket

import torch
import torch.multiprocessing as mp

from tests.training.training_testutil import TARGETS, batches, net

STEPS = 8


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, out: str) -> None:
    import torch.distributed as dist
    import torch.nn.functional as F
    from torch.nn.parallel import DistributedDataParallel

    from sparsetorch.training import TRAINERS

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        model = net(0)
        opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        m = TRAINERS.get("rigl")(
            sparsity=0.75, update_every=2, end=None, drop_fraction_anneal="constant", seed=rank
        )
        m.prepare(model, opt, total_steps=STEPS)
        initial = {f: mask.clone() for f, mask in m.masks.items()}
        ddp = DistributedDataParallel(model, forward_sync_buffers=False)
        for x, y in batches(STEPS, seed=100 + rank):
            F.cross_entropy(ddp(x), y).backward()
            opt.step()
            m.step()
            opt.zero_grad()
        masks = {f: mask.clone() for f, mask in m.masks.items()}
        weights = {f: model.get_submodule(f.rpartition(".")[0]).weight.detach().clone() for f in masks}
        torch.save(
            {"initial": initial, "masks": masks, "weights": weights, "updates": m.stats["updates"]}, out
        )
        # DDP's reducer sits in a reference cycle: left to interpreter exit, it tears gloo down
        # with a worker thread still joinable and the rank aborts (SIGABRT in about 1 run in 10).
        del ddp
        gc.collect()
    finally:
        dist.destroy_process_group()


def _run(rank: int, world: int, port: int, folder: str) -> None:
    _worker(rank, world, port, f"{folder}/rank{rank}.pt")


def test_masks_identical_across_ranks(tmp_path):
    mp.spawn(_run, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(2))
    assert r0["updates"] == r1["updates"] == STEPS // 2
    for f in TARGETS:
        assert torch.equal(r0["initial"][f], r1["initial"][f]), f  # seeds differ: rank 0's masks won
        assert torch.equal(r0["masks"][f], r1["masks"][f]), f
        assert not torch.equal(r0["initial"][f], r0["masks"][f]), f  # the masks did move
        torch.testing.assert_close(r0["weights"][f], r1["weights"][f])
