"""median_bandwidth: the median heuristic, the median distance between distinct points of the pooled sample."""
from __future__ import annotations

import math

import torch

from fastmmd.common.arrays import as_tensors
from fastmmd.common.validation import check_same_space, check_samples, check_seed, whole_number
from fastmmd.ops.numerics import scan

__all__ = ["median_bandwidth"]


def median_bandwidth(x, y=None, max_points=1000, seed=0):
    """Median of |a - b| over the pairs of distinct points of the pool [x; y] (x (n, d), y (m, d) or None).

    Pools of more than `max_points` points are subsampled (without replacement, seeded by `seed`) first:
    the distances of max_points² / 2 pairs are formed (in float64), so memory is O(max_points²), not O(n²).
    Returns a 0-dim float64 tensor on the inputs' device (a numpy float64 for numpy inputs); a ValueError if
    that median is 0 (over half the pairs coincide), which is no bandwidth. Use it as
    `Gaussian(bandwidth=median_bandwidth(x, y))`.
    """
    (x, *rest), output = as_tensors(**({"x": x} if y is None else {"x": x, "y": y}))
    check_samples(x, "x")
    pool = x
    if y is not None:
        (y,) = rest
        check_samples(y, "y")
        check_same_space(x, y)
        pool = torch.cat([x, y])
    max_points = whole_number(max_points, "max_points", 2)
    seed = check_seed(seed)
    if pool.shape[0] < 2:
        raise ValueError("median_bandwidth needs at least 2 points in x and y together")
    pool = pool.detach()
    magnitude = scan(pool)
    if not math.isfinite(magnitude):
        raise ValueError("x and y must be finite (median_bandwidth found NaN or inf)")
    if pool.shape[0] > max_points:
        gen = torch.Generator().manual_seed(seed)
        pick = torch.randperm(pool.shape[0], generator=gen)[:max_points].to(pool.device)
        pool = pool[pick]
    # Distances of data beyond float64's squared range are taken in a frame of magnitude 1 (a power of 2).
    factor = 2.0 ** -round(math.log2(magnitude)) if magnitude > 0 else 1.0
    distances = torch.cdist(pool.to(torch.float64) * factor, pool.to(torch.float64) * factor)
    rows, cols = torch.triu_indices(pool.shape[0], pool.shape[0], offset=1, device=pool.device)
    values = distances[rows, cols]
    count = values.numel()  # the usual median: the mean of the two middle values when the count is even
    median = 0.5 * (values.kthvalue((count + 1) // 2).values + values.kthvalue(count // 2 + 1).values) / factor
    if float(median) == 0.0:
        raise ValueError("the median distance between the points is 0 (most of them coincide); "
                         "no bandwidth can be derived from it")
    return output(median)
