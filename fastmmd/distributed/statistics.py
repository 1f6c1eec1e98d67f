"""fastmmd.distributed.mmd2_and_variance and kid (exact): the unbiased MMD² of sharded samples and the
unbiased estimate of its variance, from row sums that the ring completes on the rows' owners.

The ring (fastmmd.distributed._ring) gives every point its two row sums over the global samples (over its
own sample without itself, and over the other sample), and every rank the sums of squared kernel values of
its blocks. The row sums (two float64 numbers per point: 16·(N + M) bytes, not the data) are then gathered on
every rank, which evaluates the single-process formulas of fastmmd.formulas.moments on them.
"""
from __future__ import annotations

import torch
import torch.distributed as dist

from fastmmd.backends import select_backend
from fastmmd.common.arrays import as_tensors
from fastmmd.common.validation import check_finite, check_precision, check_same_space, check_samples
from fastmmd.distributed._layout import ShardLayout, gather_layout
from fastmmd.distributed._ring import Block, ring_schedule, run_ring
from fastmmd.distributed.collectives import gather_rows
from fastmmd.formulas.moments import CrossBlock, SelfBlock, mmd2_unbiased_variance
from fastmmd.kernels import Polynomial, resolve_kernel
from fastmmd.ops.numerics import frame_for
from fastmmd.statistics.block_stats import block_sums
from fastmmd.statistics.kid import KIDResult
from fastmmd.statistics.mmd2_and_variance import MIN_SAMPLES, MMDVariance

__all__ = ["mmd2_and_variance", "kid"]

SELF, CROSS = 0, 1  # the accumulator's columns: row sums within the point's own sample, and across


class _RowSums:
    """The block function of the ring for the variance: row and column sums into the accumulators' columns,
    sums of squares per pair sum."""

    def __init__(self, backend, kernel, precision: str):
        self.backend, self.kernel, self.precision = backend, kernel, precision
        self.squares = {"xx": 0.0, "yy": 0.0, "xy": 0.0}

    def __call__(self, block: Block, a: torch.Tensor, b: torch.Tensor):
        rows, cols, squares = block_sums(a, b, self.kernel, self.backend, self.precision, block.symmetric,
                                         block.exclude_diag)
        self.squares[block.kind] = self.squares[block.kind] + block.weight * squares
        column = CROSS if block.kind == "xy" else SELF
        return _in_column(rows, column), None if cols is None else _in_column(cols, column)


def _in_column(values: torch.Tensor, column: int) -> torch.Tensor:
    out = values.new_zeros((values.shape[0], 2))
    out[:, column] = values
    return out


def _variance_inputs(x, y, kernel, backend, precision, layout: ShardLayout):
    """(SelfBlock of X, SelfBlock of Y, CrossBlock of X and Y) of the global samples, on every rank."""
    sums = _RowSums(backend, kernel, precision)
    schedule = ring_schedule(layout, exclude_self_diag=True, exclude_xy_diag=False)
    mine = torch.cat(run_ring(layout, x.detach().contiguous(), y.detach().contiguous(), schedule, sums, 2,
                              torch.float64))
    squares = torch.stack([torch.as_tensor(sums.squares[k], dtype=torch.float64, device=x.device).reshape(())
                           for k in ("xx", "yy", "xy")])
    dist.all_reduce(squares, group=layout.group)
    parts = gather_rows(mine, [layout.rows(q) for q in range(layout.world)], layout.group)
    xs = [p[:layout.x_sizes[q]] for q, p in enumerate(parts)]
    ys = [p[layout.x_sizes[q]:] for q, p in enumerate(parts)]
    rows_x, rows_y = torch.cat(xs), torch.cat(ys)
    return (SelfBlock(rows_x[:, SELF].contiguous(), squares[0]), SelfBlock(rows_y[:, SELF].contiguous(), squares[1]),
            CrossBlock(rows_x[:, CROSS].contiguous(), rows_y[:, CROSS].contiguous(), squares[2]))


def _check_variance_sizes(layout: ShardLayout, names) -> None:
    for name, total in zip(names, (layout.n, layout.m)):
        if total < MIN_SAMPLES:
            raise ValueError(f"{name} needs at least {MIN_SAMPLES} samples over all ranks for a variance "
                             f"estimate; got {total}")


def _sharded(x, y, names, kernel, backend, precision, group, finite: bool) -> MMDVariance:
    def local_checks():
        check_samples(x, names[0])
        check_samples(y, names[1])
        check_same_space(x, y, names)
        if finite:
            check_finite(x, names[0])
            check_finite(y, names[1])

    layout = gather_layout(x, y, group, [local_checks], names)
    _check_variance_sizes(layout, names)
    chosen = select_backend(backend, x, y, kernel, None, precision, op="kernel_matmul")
    frame = frame_for(kernel, x, y, magnitude=layout.magnitude)
    if not frame.finite:
        nan = torch.tensor(float("nan"), dtype=torch.float64, device=x.device)
        return MMDVariance(nan, nan.clone())
    x, y, kernel = frame.apply(x), frame.apply(y), frame.kernel
    with torch.no_grad():
        xx, yy, xy = _variance_inputs(x, y, kernel, chosen, precision, layout)
        value = frame.unscale(xx.mean + yy.mean - 2 * xy.mean)
        variance = frame.unscale(mmd2_unbiased_variance(xx, yy, xy), 2)
    return MMDVariance(value, variance)


def mmd2_and_variance(x_local, y_local, kernel="gaussian", backend="auto", precision="highest",
                      group=None) -> MMDVariance:
    """(unbiased MMD², unbiased estimate of its variance) of the concatenations over the ranks of x_local
    (n_r, d) and y_local (m_r, d), on every rank (0-dim float64; numpy in, numpy out). Collective; N, M >= 4
    in all; the arguments otherwise as `fastmmd.mmd2_and_variance`. Not differentiable."""
    (x, y), output = as_tensors(x_local=x_local, y_local=y_local)
    kernel = resolve_kernel(kernel)
    check_precision(precision)
    result = _sharded(x, y, ("x_local", "y_local"), kernel, backend, precision, group, finite=False)
    return MMDVariance(output(result.mmd2), output(result.variance))


def kid(real_local, fake_local, degree=3, gamma=None, coef0=1, backend="auto", precision="highest",
        group=None) -> KIDResult:
    """The exact KID of the concatenations over the ranks of real_local (n_r, d) and fake_local (m_r, d):
    the unbiased MMD² with k(a, b) = (gamma·aᵀb + coef0)^degree (gamma None: 1/d) over all pairs, and the
    square root of the unbiased estimate of its variance, as `fastmmd.kid(..., subsets=None)`, on every rank.
    Collective; features must be finite (checked on every rank)."""
    (x, y), output = as_tensors(real_local=real_local, fake_local=fake_local)
    check_precision(precision)
    kernel = Polynomial(degree=degree, gamma=gamma, coef0=coef0)
    result = _sharded(x, y, ("real_local", "fake_local"), kernel, backend, precision, group, finite=True)
    std = result.variance.clamp_min(0.0).sqrt()
    return KIDResult(output(result.mmd2), output(std), "exact", None, None)
