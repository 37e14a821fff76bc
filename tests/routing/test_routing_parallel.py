"""Expert parallelism: two gloo processes on the CPU equal the single-process layer.

Each rank holds half the experts and its own (uneven) share of the tokens. Outputs and input
gradients must equal the single-process MoE's rows for those tokens, each rank's expert gradients
the single-process gradients of its experts, and the gate gradients summed over ranks the
single-process gate gradient (the gate is replicated, data parallel).
"""

from __future__ import annotations

import socket

import pytest
import torch
import torch.multiprocessing as mp

from sparsetorch.routing import MoE
from sparsetorch.routing.parallel import ExpertParallelMoE, expert_parameter_names

D, E, K = 6, 4, 2
SPLIT = (5, 9)  # tokens on rank 0 and rank 1: uneven on purpose


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _layer() -> MoE:
    return MoE(D, E, K, expert="glu", seed=0).double()


def _data() -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(sum(SPLIT), D, generator=gen, dtype=torch.float64)
    probe = torch.randn(sum(SPLIT), D, generator=gen, dtype=torch.float64)  # loss = sum(y * probe)
    return x, probe


def _worker(rank: int, world: int, port: int, folder: str) -> None:
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        ep = ExpertParallelMoE.from_moe(_layer())
        x, probe = _data()
        lo = sum(SPLIT[:rank])
        xr = x[lo : lo + SPLIT[rank]].clone().requires_grad_()
        y, aux = ep(xr)
        (y * probe[lo : lo + SPLIT[rank]]).sum().backward()
        with torch.no_grad():  # a rank without tokens still takes part in the all_to_all
            y_alone, _ = ep(x[:0] if rank == 0 else x[:3])
        try:
            ExpertParallelMoE(D, 3, 1)
            odd = ""
        except ValueError as err:
            odd = str(err)
        torch.save(
            {
                "y": y.detach(),
                "y_alone": y_alone,
                "x_grad": xr.grad,
                "gate_grad": ep.gate.weight.grad,
                "experts": {n: p.grad for n, p in ep.experts.named_parameters()},
                "offset": ep.expert_offset,
                "load": aux["load"],
                "odd": odd,
                "ignore": expert_parameter_names(torch.nn.ModuleDict({"moe": ep})),
            },
            f"{folder}/rank{rank}.pt",
        )
    finally:
        dist.destroy_process_group()


def test_two_gloo_ranks_equal_the_single_process_layer(tmp_path):
    mp.spawn(_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(2)]

    moe = _layer()
    x, probe = _data()
    x = x.clone().requires_grad_()
    y, aux = moe(x)
    (y * probe).sum().backward()

    torch.testing.assert_close(torch.cat([r["y"] for r in ranks]), y.detach())
    torch.testing.assert_close(torch.cat([r["x_grad"] for r in ranks]), x.grad)
    torch.testing.assert_close(ranks[0]["gate_grad"] + ranks[1]["gate_grad"], moe.gate.weight.grad)
    assert [r["offset"] for r in ranks] == [0, 2]
    for r in ranks:
        lo = r["offset"]
        for name, grad in r["experts"].items():
            torch.testing.assert_close(grad, getattr(moe.experts, name).grad[lo : lo + 2], msg=name)
    assert torch.equal(ranks[0]["load"] + ranks[1]["load"], aux["load"])  # aux is per rank
    assert ranks[0]["y_alone"].shape == (0, D)
    torch.testing.assert_close(ranks[1]["y_alone"], moe(x[:3].detach())[0].detach())
    assert "does not divide over 2 ranks" in ranks[0]["odd"]
    assert ranks[0]["ignore"] == [
        "moe.experts.w1",
        "moe.experts.wg",
        "moe.experts.w2",
        "moe.experts.b1",
        "moe.experts.b2",
    ]


def test_expert_parallelism_needs_a_process_group():
    with pytest.raises(ValueError, match="process group"):
        ExpertParallelMoE(D, E, K)


CAPACITY_FACTORS = (1.0, 0.0)  # static C that drops slots; dynamic C = the largest load over ranks
EQUAL = 7  # tokens per rank: Tutel's static capacity assumes equal local batches


def _capacity_worker(rank: int, world: int, port: int, folder: str) -> None:
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        x, probe = _data()
        out = {}
        for cf in CAPACITY_FACTORS:
            layer = MoE(D, E, K, expert="glu", seed=0, capacity_factor=cf).double()
            ep = ExpertParallelMoE.from_moe(layer)
            rows = slice(rank * EQUAL, (rank + 1) * EQUAL)
            xr = x[rows].clone().requires_grad_()
            y, aux = ep(xr)
            (y * probe[rows]).sum().backward()
            out[str(cf)] = {
                "y": y.detach(),
                "x_grad": xr.grad,
                "w1_grad": ep.experts.w1.grad,
                "dropped": aux["dropped_slots"],
                "capacity": aux["capacity"],
            }
        torch.save(out, f"{folder}/cap{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_capacity_mode_over_two_gloo_ranks_equals_each_rank_alone(tmp_path):
    mp.spawn(_capacity_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    ranks = [torch.load(tmp_path / f"cap{r}.pt", weights_only=True) for r in range(2)]
    x, probe = _data()
    for cf in CAPACITY_FACTORS:
        moe = MoE(D, E, K, expert="glu", seed=0, capacity_factor=cf).double()
        dropped = 0
        for r in range(2):
            rows = slice(r * EQUAL, (r + 1) * EQUAL)
            xr = x[rows].clone().requires_grad_()
            y, aux = moe(xr)  # Tutel under EP: each rank's tokens queue for their own capacity
            (y * probe[rows]).sum().backward()  # expert grads add up over the ranks' tokens
            got = ranks[r][str(cf)]
            torch.testing.assert_close(got["y"], y.detach())
            torch.testing.assert_close(got["x_grad"], xr.grad)
            assert torch.equal(got["dropped"], aux["dropped_slots"])
            dropped += int(aux["dropped_slots"])
            if cf > 0:
                assert torch.equal(got["capacity"], aux["capacity"])
        for r in range(2):
            torch.testing.assert_close(ranks[r][str(cf)]["w1_grad"], moe.experts.w1.grad[2 * r : 2 * r + 2])
        assert (dropped > 0) == (cf > 0), cf  # the static capacity really drops; the dynamic one never
