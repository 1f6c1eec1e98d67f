"""Batch norm over the global batch of a data-parallel run: the generator of a run on P ranks normalises
with the statistics of all P·B images, as one process with the whole batch would.

torch.nn.SyncBatchNorm does this on GPUs only; this one works with any backend (gloo on CPUs too): two
differentiable all_reduces per layer (the mean, then the centred sum of squares, which does not cancel in
float32 as E[x²] − E[x]² would). In eval mode, or with one rank, it is torch's BatchNorm2d. The module is
a BatchNorm2d, so its state_dict is the same and checkpoints move between single- and multi-process runs.
"""
from __future__ import annotations

import torch
from torch import nn

from fastmmd.distributed import all_reduce_sum

__all__ = ["GlobalBatchNorm2d", "globalize_batch_norm"]


class GlobalBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d whose training-mode statistics are those of the batches of every rank of `group`."""

    def __init__(self, num_features: int, group=None, **kwargs):
        super().__init__(num_features, **kwargs)
        self.group = group

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or not torch.distributed.is_initialized() or \
                torch.distributed.get_world_size(self.group) == 1:
            return super().forward(x)
        dims = (0, 2, 3)
        count = torch.full((1,), x.numel() // x.shape[1], dtype=x.dtype, device=x.device)
        totals = all_reduce_sum(torch.cat([x.sum(dims), count]), self.group)
        n = totals[-1]
        mean = totals[:-1] / n
        centred = x - mean[None, :, None, None]
        variance = all_reduce_sum(centred.pow(2).sum(dims), self.group) / n
        if self.track_running_stats:
            self._update_running_stats(mean.detach(), variance.detach(), n.detach())
        out = centred * torch.rsqrt(variance + self.eps)[None, :, None, None]
        if self.affine:
            out = out * self.weight[None, :, None, None] + self.bias[None, :, None, None]
        return out

    @torch.no_grad()
    def _update_running_stats(self, mean: torch.Tensor, variance: torch.Tensor, n: torch.Tensor) -> None:
        self.num_batches_tracked += 1
        momentum = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
        unbiased = variance * n / (n - 1)
        self.running_mean.mul_(1 - momentum).add_(mean, alpha=momentum)
        self.running_var.mul_(1 - momentum).add_(unbiased, alpha=momentum)


def globalize_batch_norm(module: nn.Module, group=None) -> nn.Module:
    """`module` with every BatchNorm2d replaced by a GlobalBatchNorm2d holding the same parameters and
    buffers (in place; returns the module)."""
    for name, child in module.named_children():
        if isinstance(child, nn.BatchNorm2d) and not isinstance(child, GlobalBatchNorm2d):
            replacement = GlobalBatchNorm2d(child.num_features, group, eps=child.eps, momentum=child.momentum,
                                            affine=child.affine, track_running_stats=child.track_running_stats)
            like = next(iter(child.state_dict().values()), None)
            if like is not None:
                replacement.to(device=like.device, dtype=child.weight.dtype if child.affine else like.dtype)
            replacement.load_state_dict(child.state_dict())
            replacement.train(child.training)
            setattr(module, name, replacement)
        else:
            globalize_batch_norm(child, group)
    return module
