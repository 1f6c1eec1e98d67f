"""Differentiable collectives whose backward sums the gradients of every rank's copy (torch.distributed.nn's
convention): all_reduce_sum and all_gather_rows."""
from __future__ import annotations

import torch
import torch.distributed as dist

__all__ = ["all_reduce_sum", "all_gather_rows"]


class _AllReduceSum(torch.autograd.Function):
    @staticmethod
    def forward(ctx, tensor, group):
        ctx.group = group
        out = tensor.detach().clone().contiguous()
        dist.all_reduce(out, group=group)
        return out

    @staticmethod
    def backward(ctx, grad):
        total = grad.detach().clone().contiguous()
        dist.all_reduce(total, group=ctx.group)
        return total, None


def all_reduce_sum(tensor: torch.Tensor, group=None) -> torch.Tensor:
    """Σ over the ranks of `group` of `tensor` (same shape on every rank), differentiable: the gradient of a
    rank's input is the sum over the ranks of the gradients of their outputs (every rank must backpropagate).
    Collective."""
    return _AllReduceSum.apply(tensor, group)


class _AllGatherRows(torch.autograd.Function):
    @staticmethod
    def forward(ctx, tensor, sizes, rank, group):
        ctx.sizes, ctx.rank, ctx.group = sizes, rank, group
        longest = max(sizes)
        padded = tensor.new_zeros((longest, *tensor.shape[1:]))
        padded[:tensor.shape[0]] = tensor
        parts = [torch.empty_like(padded) for _ in sizes]
        dist.all_gather(parts, padded.contiguous(), group=group)
        return torch.cat([p[:n] for p, n in zip(parts, sizes)])

    @staticmethod
    def backward(ctx, grad):
        total = grad.detach().clone().contiguous()
        dist.all_reduce(total, group=ctx.group)
        start = sum(ctx.sizes[:ctx.rank])
        return total[start:start + ctx.sizes[ctx.rank]], None, None, None


def all_gather_rows(tensor: torch.Tensor, group=None) -> torch.Tensor:
    """The concatenation over the ranks of `group`, in rank order, of each rank's `tensor` (r_q, ...) (row
    counts may differ; the other dimensions must agree), on every rank; differentiable with the gradients of
    every rank's copy summed (as all_reduce_sum). Collective. For small tensors (a batch's critic features):
    every rank receives all of them."""
    count = torch.tensor([tensor.shape[0]], dtype=torch.int64, device=tensor.device)
    counts = [torch.empty_like(count) for _ in range(dist.get_world_size(group))]
    dist.all_gather(counts, count, group=group)
    sizes = [int(c) for c in counts]
    return _AllGatherRows.apply(tensor, sizes, dist.get_rank(group), group)
