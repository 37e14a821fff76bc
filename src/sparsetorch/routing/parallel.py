"""Expert parallelism: the E experts are sharded over the ranks of a `torch.distributed` group.

Rank r of a W-rank group holds experts [r * E/W, (r + 1) * E/W) and its own tokens (data
parallel); the gate is replicated. One dropless MoE step (`expert_parallel_dropless`):

1. route locally and sort the slots by global expert, which also groups them by destination rank;
2. all_to_all the per-expert slot counts (E/W numbers to each rank), then read the split sizes
   on the host (one sync, as MegaBlocks);
3. all_to_all the token rows; received rows arrive as [source rank][local expert], are re-sorted
   to expert-contiguous order and run through the local grouped matmul;
4. all_to_all the outputs back (the inverse splits) and combine with the gate weights locally.

The all_to_all is an autograd function whose backward is the all_to_all with the splits swapped,
so gradients reach the tokens of every rank. The result equals the single-process `MoE` over the
concatenated tokens (tested with two gloo processes), with two caveats of any data-parallel MoE:
the gate's aux values (balance loss, load) are computed over the rank's own tokens, and the
gate's gradient is the rank's share, so it must be averaged or summed over ranks like any
replicated parameter.

With DDP, the expert shard must not be all-reduced (each rank owns different experts): wrap the
model after calling `DistributedDataParallel._set_params_and_buffers_to_ignore_for_model(model,
expert_parameter_names(model))`, and let DDP average the gate. Expert gradients already hold the
contributions of all ranks' tokens (they arrive through the all_to_all); scale them by 1/W if the
loss is a per-rank mean that DDP would otherwise average.

NCCL across GPUs and nodes: the same code runs unchanged. Initialize the group with
`dist.init_process_group("nccl")` (torchrun sets rank, world size and the rendezvous), put each
rank's module and tokens on `cuda:local_rank`, and pass `group=` to shard over a sub-group (for
example the ranks of one node, so all_to_all stays on NVLink while data parallelism spans nodes).
NCCL's all_to_all_single takes the same uneven split sizes; counts are sent as int64 tensors on
the device.

Capacity mode (`expert_parallel_capacity`, Tutel's semantics): each rank places its own slots in
a static (E, C, d) buffer (queue positions computed over the rank's tokens), the buffer's expert
blocks are exchanged with an even all_to_all, each rank runs its experts over (E/W, W*C, d) and
sends the outputs back. C must be equal on all ranks, so as Tutel the ranks all-reduce (MAX) the
largest expert load (for cf <= 0) and the local token count (for cf > 0; equal local batches give
every rank its own Tutel capacity). Each rank's output equals the single-process `MoE` applied to
that rank's tokens, with the capacity computed from those maxima.
"""

from __future__ import annotations

import copy

import torch
import torch.distributed as dist
from torch import Tensor, nn

from sparsetorch.routing.dispatch import (
    SlotOrder,
    capacity,
    capacity_dispatch,
    check_routing,
    max_expert_load,
    sort_by_expert,
)
from sparsetorch.routing.gates import Routing
from sparsetorch.routing.moe import Experts, MoE


class _AllToAll(torch.autograd.Function):
    """Uneven all_to_all of rows; backward sends the gradients back along the inverse splits."""

    @staticmethod
    def forward(ctx, x: Tensor, out_sizes: list[int], in_sizes: list[int], group) -> Tensor:  # type: ignore[override]
        ctx.sizes, ctx.group = (out_sizes, in_sizes), group
        out = x.new_empty(sum(out_sizes), *x.shape[1:])
        dist.all_to_all_single(out, x.contiguous(), out_sizes, in_sizes, group=group)
        return out

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        out_sizes, in_sizes = ctx.sizes
        back = grad.new_empty(sum(in_sizes), *grad.shape[1:])
        dist.all_to_all_single(back, grad.contiguous(), in_sizes, out_sizes, group=ctx.group)
        return back, None, None, None


def all_to_all(x: Tensor, out_sizes: list[int], in_sizes: list[int], group=None) -> Tensor:
    """Rows of x split by `in_sizes` go to ranks 0..W-1; returns the rows received, by `out_sizes`."""
    return _AllToAll.apply(x, out_sizes, in_sizes, group)


def expert_parallel_dropless(
    x: Tensor, indices: Tensor, weights: Tensor, local_experts: Experts, *, group=None
) -> tuple[Tensor, dict[str, Tensor]]:
    """Dropless dispatch with the experts sharded over `group` (see the module docstring).

    `indices` are global expert ids in [0, W * local_experts.num_experts) or -1.
    """
    world = dist.get_world_size(group)
    local = local_experts.num_experts
    num_experts = world * local
    check_routing(x, indices, weights, num_experts)
    num_tokens, slots = indices.shape
    order, counts = sort_by_expert(indices, num_experts)  # counts (E,): slots this rank sends per expert
    recv = torch.empty_like(counts)
    dist.all_to_all_single(recv, counts, group=group)  # (W * local,): [source rank][local expert]
    send_sizes = counts.view(world, local).sum(1).tolist()  # host sync: split sizes
    recv_by = recv.view(world, local)
    recv_sizes = recv_by.sum(1).tolist()
    order = order[: sum(send_sizes)]
    token = order // slots
    rows = all_to_all(x[token], recv_sizes, send_sizes, group)  # (n_recv, d)
    expert_of_row = torch.arange(local, device=x.device).repeat(world).repeat_interleave(recv_by.reshape(-1))
    perm = torch.argsort(expert_of_row, stable=True)  # [source][expert] -> [expert][source]
    out = local_experts.grouped(rows[perm], recv_by.sum(0).tolist())
    out = out[torch.argsort(perm)]  # back to [source][expert] (a gather, so it is differentiable)
    out = all_to_all(out, send_sizes, recv_sizes, group)  # (n_sent, d), in this rank's sorted order
    out = out * weights.reshape(-1)[order].to(out.dtype)[:, None]
    y = out.new_zeros(num_tokens * slots, x.shape[1]).index_copy(0, order, out)
    zero = torch.zeros((), device=x.device)
    return y.view(num_tokens, slots, x.shape[1]).sum(1), {
        "dropped_slots": zero.long(),
        "dropped_fraction": zero,
    }


class _ShardedBatched:
    """A global (E, C, d) expert buffer run by the ranks that own the experts (`batched` only)."""

    def __init__(self, local_experts: Experts, world: int, group) -> None:
        self.local, self.world, self.group = local_experts, world, group
        self.num_experts = world * local_experts.num_experts

    def grouped(self, x: Tensor, counts: list[int]) -> Tensor:
        raise NotImplementedError("capacity dispatch only runs static (E, C, d) buffers")

    def batched(self, buf: Tensor) -> Tensor:
        num_experts, cap, dim = buf.shape
        local = self.local.num_experts
        split = [local * cap] * self.world  # rows per rank: its experts' C slots each
        rows = all_to_all(buf.reshape(-1, dim), split, split, self.group)  # [source][local expert][C]
        mine = rows.view(self.world, local, cap, dim).transpose(0, 1).reshape(local, self.world * cap, dim)
        out = self.local.batched(mine)  # (local, W*C, d)
        out = out.view(local, self.world, cap, dim).transpose(0, 1).reshape(-1, dim)  # [dest][expert][C]
        return all_to_all(out, split, split, self.group).view(num_experts, cap, dim)


def expert_parallel_capacity(
    x: Tensor,
    indices: Tensor,
    weights: Tensor,
    local_experts: Experts,
    *,
    capacity_factor: float,
    order: SlotOrder = "slot",
    alignment: int = 1,
    group=None,
) -> tuple[Tensor, dict[str, Tensor]]:
    """Capacity-factor dispatch (Tutel) with the experts sharded over `group` (module docstring)."""
    world = dist.get_world_size(group)
    num_experts = world * local_experts.num_experts
    check_routing(x, indices, weights, num_experts)
    stats = torch.tensor([max_expert_load(indices, num_experts), x.shape[0]], device=x.device)
    dist.all_reduce(stats, op=dist.ReduceOp.MAX, group=group)  # one C for every rank's buffer
    max_load, num_tokens = stats.tolist()
    cap = capacity(
        num_tokens, num_experts, indices.shape[1], capacity_factor, max_load=max_load, alignment=alignment
    )
    sharded = _ShardedBatched(local_experts, world, group)
    return capacity_dispatch(
        x,
        indices,
        weights,
        sharded,
        capacity_factor=capacity_factor,
        order=order,
        alignment=alignment,
        cap=cap,
    )


class ExpertParallelMoE(MoE):
    """`MoE` whose experts are sharded over `group`, dropless or capacity mode. Same arguments as `MoE`.

    The gate is initialized identically on every rank from `seed` (give one); the local experts
    from `seed + rank + 1`. To reproduce a single-process layer exactly, shard it with `from_moe`.

    Raises:
        ValueError: no process group, or E not divisible by the world size.
    """

    def __init__(self, dim: int, num_experts: int, k: int = 2, *, group=None, **kwargs) -> None:
        if not (dist.is_available() and dist.is_initialized()):
            raise ValueError("expert parallelism needs an initialized torch.distributed process group")
        world, rank = dist.get_world_size(group), dist.get_rank(group)
        if num_experts % world:
            raise ValueError(f"num_experts={num_experts} does not divide over {world} ranks")
        self.group, self.world, self.rank = group, world, rank  # plain values: set before Module init
        super().__init__(dim, num_experts, k, **kwargs)
        if kwargs.get("seed") is not None:
            self.experts.reset_parameters(torch.Generator().manual_seed(kwargs["seed"] + rank + 1))

    def _num_local_experts(self) -> int:
        return self.num_experts // self.world

    @property
    def expert_offset(self) -> int:
        """Global id of this rank's first expert."""
        return self.rank * self._num_local_experts()

    def _dispatch(self, tokens: Tensor, routing: Routing) -> tuple[Tensor, dict[str, Tensor]]:
        cf = self.capacity_factor if self.training else self.eval_capacity_factor
        if cf is None:
            return expert_parallel_dropless(
                tokens, routing.indices, routing.weights, self.experts, group=self.group
            )
        return expert_parallel_capacity(
            tokens, routing.indices, routing.weights, self.experts, capacity_factor=cf,
            order="token" if self.causal else "slot", alignment=self.alignment, group=self.group,
        )  # fmt: skip

    @classmethod
    def from_moe(cls, moe: MoE, *, group=None) -> ExpertParallelMoE:
        """This rank's shard of a single-process `moe` (same gate and dispatch, its slice of the experts)."""
        full = moe.experts
        new = cls(
            moe.dim, moe.num_experts, moe.k, group=group, gate=copy.deepcopy(moe.gate), expert=full.kind, hidden=full.hidden,
            bias=full.b1 is not None, causal=moe.causal, balance_coef=moe.balance_coef, z_coef=moe.z_coef,
            capacity_factor=moe.capacity_factor, eval_capacity_factor=moe.eval_capacity_factor,
            alignment=moe.alignment,
        )  # fmt: skip
        new.experts.to(device=full.w1.device, dtype=full.w1.dtype)
        lo = new.expert_offset
        hi = lo + new.experts.num_experts
        with torch.no_grad():
            for name, p in new.experts.named_parameters():
                p.copy_(getattr(full, name)[lo:hi])
        return new


def expert_parameter_names(model: nn.Module) -> list[str]:
    """FQNs of the sharded expert parameters of every `ExpertParallelMoE` (for DDP to ignore)."""
    return [
        f"{fqn}.experts.{name}" if fqn else f"experts.{name}"
        for fqn, m in model.named_modules()
        if isinstance(m, ExpertParallelMoE)
        for name, _ in m.experts.named_parameters()
    ]
