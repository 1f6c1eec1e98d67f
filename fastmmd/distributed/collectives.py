"""A differentiable all_reduce: the sum over the ranks, whose backward sums the gradients over the ranks."""
from __future__ import annotations

import torch
import torch.distributed as dist

__all__ = ["all_reduce_sum"]


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
