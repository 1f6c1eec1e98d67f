"""fastmmd.distributed.mmd2: the MMD² of samples sharded over the ranks of a process group, every pair
across all shards, differentiable in the local shards.

The ring of fastmmd.distributed._ring visits each pair of shards once; each block is one fused pass of the
backend's `pair_sum` (value and, when needed, both gradients). Gradients for the visitor's rows go back to
their owner at the end of the step, so after the ring each rank holds d MMD²/d x_local and d MMD²/d y_local
for the global MMD². The three pair sums are added over the ranks with one all_reduce (float64).
"""
from __future__ import annotations

import torch
import torch.distributed as dist

from fastmmd.backends import select_backend
from fastmmd.common.arrays import as_tensors
from fastmmd.common.validation import check_choice, check_precision, check_same_space, check_samples
from fastmmd.distributed._layout import ShardLayout, gather_layout
from fastmmd.distributed._ring import Block, ring_schedule, run_ring
from fastmmd.distributed.collectives import summed_over_ranks
from fastmmd.formulas.estimators import pair_sum_plan
from fastmmd.kernels import resolve_kernel
from fastmmd.ops.numerics import frame_for, nan_like

__all__ = ["mmd2", "DISTRIBUTED_ESTIMATORS"]

DISTRIBUTED_ESTIMATORS = ("unbiased", "biased", "u-statistic")


def _check_global_sizes(layout: ShardLayout, estimator: str) -> None:
    """The estimator's needs on the global samples (the same decision on every rank)."""
    if estimator in ("unbiased", "u-statistic"):
        for name, total in (("x", layout.n), ("y", layout.m)):
            if total < 2:
                raise ValueError(f"estimator={estimator!r} needs at least 2 samples of {name} over all ranks; "
                                 f"got {total}")
    if estimator == "u-statistic" and layout.x_sizes != layout.y_sizes:
        raise ValueError("estimator='u-statistic' pairs x_i with y_i, so every rank needs as many rows of "
                         f"x_local as of y_local; got x {list(layout.x_sizes)} and y {list(layout.y_sizes)}")


class _PairSums:
    """The block function of the ring for MMD²: adds each block's weighted pair sum, returns its gradients
    scaled by the estimator's weight of the block."""

    def __init__(self, backend, kernel, precision: str, plan, need_grad: bool):
        self.backend, self.kernel, self.precision = backend, kernel, precision
        self.plan, self.need_grad = plan, need_grad
        self.sums = {"xx": 0.0, "yy": 0.0, "xy": 0.0}
        self.weights = {"xx": plan.xx_weight, "yy": plan.yy_weight, "xy": plan.xy_weight}

    def __call__(self, block: Block, a: torch.Tensor, b: torch.Tensor):
        total, grad_a, grad_b = self.backend.pair_sum(a, b, self.kernel.terms(a.shape[1]), block.symmetric,
                                                      block.exclude_diag, self.need_grad, self.precision,
                                                      torch.get_num_threads())
        self.sums[block.kind] = self.sums[block.kind] + block.weight * total.to(a.device)
        if not self.need_grad:
            return None, None
        w = self.weights[block.kind] * block.weight
        return w * grad_a, (None if grad_b is None else w * grad_b)

    def local_value(self, device) -> torch.Tensor:
        s = self.sums
        return torch.as_tensor(self.plan.combine(s["xx"], s["yy"], s["xy"]), dtype=torch.float64, device=device)


def ring_mmd2(x: torch.Tensor, y: torch.Tensor, kernel, estimator: str, backend, precision: str,
              layout: ShardLayout, need_grad: bool):
    """(global MMD² as a 0-dim float64 tensor, d/dx_local, d/dy_local or None) of checked local shards."""
    plan = pair_sum_plan(estimator, layout.n, layout.m)
    schedule = ring_schedule(layout, exclude_self_diag=plan.xx_exclude_diag, exclude_xy_diag=plan.xy_exclude_diag)
    blocks = _PairSums(backend, kernel, precision, plan, need_grad)
    x, y = x.detach().contiguous(), y.detach().contiguous()
    grads = run_ring(layout, x, y, schedule, blocks, x.shape[1] if need_grad else 0, x.dtype)
    value = blocks.local_value(x.device)
    dist.all_reduce(value, group=layout.group)
    if grads is None:
        return value, None, None
    return value, grads[0], grads[1]


class _RingMMD2(torch.autograd.Function):
    """The ring's value, with the local gradients computed in the same pass and scaled in backward."""

    @staticmethod
    def forward(ctx, x, y, kernel, estimator, backend, precision, layout, need_grad):
        value, grad_x, grad_y = ring_mmd2(x, y, kernel, estimator, backend, precision, layout, need_grad)
        ctx.group = layout.group
        if need_grad:
            ctx.save_for_backward(grad_x, grad_y)
        return value.to(x.dtype)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_value):
        # Every rank's output is a copy of one value: the gradient reaching x_local is the sum over the ranks
        # of the gradients reaching their copies (torch.distributed.nn's convention, the one DDP's averaging
        # of parameter gradients needs).
        total = summed_over_ranks(grad_value, ctx.group)
        grad_x, grad_y = ctx.saved_tensors
        return (total * grad_x if ctx.needs_input_grad[0] else None,
                total * grad_y if ctx.needs_input_grad[1] else None, None, None, None, None, None, None)


def mmd2(x_local, y_local, kernel="gaussian", estimator="unbiased", backend="auto", precision="highest",
         group=None):
    """The MMD² of X and Y, the concatenations over the ranks of `group` (in rank order) of the shards
    x_local (n_r, d) and y_local (m_r, d), returned on every rank (0-dim, x_local's dtype).

    Collective: every rank of the group calls it (shard sizes may differ, each at least one row). kernel,
    estimator ("unbiased", "biased", "u-statistic"; "u-statistic" needs n_r = m_r on every rank), backend and
    precision as in `fastmmd.mmd2` (the backend runs each block). numpy shards give a numpy scalar.

    Gradients: with x_local or y_local requiring grad, backward gives each rank's shards
    (Σ_q g_q) · dMMD²/d(shard), g_q the gradient reaching the result on rank q: the gradient of the sum of
    the ranks' losses, as torch.distributed.nn's collectives. Every rank must then call backward. With the
    same loss L(MMD²) on every rank that is P·dL/d(shard), which DDP's average over ranks turns into exactly
    dL/dθ; to get dL/d(shard) itself, backpropagate L / P on each rank. No double backward. A NaN or inf on
    any rank gives NaN on every rank (docs/numerics.md).
    """
    (x, y), output = as_tensors(x_local=x_local, y_local=y_local)
    kernel = resolve_kernel(kernel)
    check_choice("estimator", estimator, DISTRIBUTED_ESTIMATORS)
    check_precision(precision)

    def local_checks():
        check_samples(x, "x_local")
        check_samples(y, "y_local")
        check_same_space(x, y, ("x_local", "y_local"))

    layout = gather_layout(x, y, group, [local_checks])
    _check_global_sizes(layout, estimator)
    chosen = select_backend(backend, x, y, kernel, estimator, precision)
    frame = frame_for(kernel, x, y, magnitude=layout.magnitude)
    if not frame.finite:
        return output(nan_like((), x, y))
    x, y, kernel = frame.apply(x), frame.apply(y), frame.kernel
    need_grad = torch.is_grad_enabled() and (x.requires_grad or y.requires_grad)
    return output(frame.unscale(_RingMMD2.apply(x, y, kernel, estimator, chosen, precision, layout, need_grad)))
