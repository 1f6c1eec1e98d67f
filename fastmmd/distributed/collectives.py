"""Differentiable collectives whose backward sums the gradients of every rank's copy (torch.distributed.nn's
convention): all_reduce_sum and all_gather_rows."""
from __future__ import annotations

import torch
import torch.distributed as dist

__all__ = ["all_reduce_sum", "all_gather_rows", "summed_over_ranks", "gather_rows"]


def summed_over_ranks(tensor: torch.Tensor, group=None) -> torch.Tensor:
    """A new tensor: Σ over the ranks of `group` of `tensor` (not differentiable; collective). What the
    backward of every op here does with the gradients of the ranks' copies of one value."""
    total = tensor.detach().clone().contiguous()
    dist.all_reduce(total, group=group)
    return total


def gather_rows(tensor: torch.Tensor, sizes, group=None):
    """Every rank's `tensor` (sizes[q], ...) in rank order, as a list (not differentiable; collective); the
    row counts `sizes` may differ (padded to the longest for all_gather)."""
    padded = tensor.new_zeros((max(sizes), *tensor.shape[1:]))
    padded[:tensor.shape[0]] = tensor
    parts = [torch.empty_like(padded) for _ in sizes]
    dist.all_gather(parts, padded, group=group)
    return [part[:n] for part, n in zip(parts, sizes)]


class _AllReduceSum(torch.autograd.Function):
    @staticmethod
    def forward(ctx, tensor, group):
        ctx.group = group
        return summed_over_ranks(tensor, group)

    @staticmethod
    def backward(ctx, grad):
        return summed_over_ranks(grad, ctx.group), None


def all_reduce_sum(tensor: torch.Tensor, group=None) -> torch.Tensor:
    """Σ over the ranks of `group` of `tensor` (same shape on every rank), differentiable: the gradient of a
    rank's input is the sum over the ranks of the gradients of their outputs (every rank must backpropagate).
    Collective."""
    return _AllReduceSum.apply(tensor, group)


class _AllGatherRows(torch.autograd.Function):
    @staticmethod
    def forward(ctx, tensor, sizes, rank, group):
        ctx.sizes, ctx.rank, ctx.group = sizes, rank, group
        return torch.cat(gather_rows(tensor.detach(), sizes, group))

    @staticmethod
    def backward(ctx, grad):
        total = summed_over_ranks(grad, ctx.group)
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
