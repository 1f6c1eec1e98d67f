"""MMD² the way a PyTorch user writes it: materialised Gram matrices, no fusion.

This is the baseline of the benchmarks. It keeps every n×m matrix (and, for the backward pass, every
intermediate autograd saves), which is exactly the cost fastmmd exists to avoid, so it is written plainly on
purpose: no ``torch.cdist``, no in-place tricks, no chunking.

The Gaussian convention matches fastmmd's: ``k(a, b) = sum_s exp(-|a - b|² / (2 s²))`` over bandwidths s.
"""
from __future__ import annotations

from typing import Sequence

import torch


def squared_distances(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """|a_i - b_j|² via |a|² + |b|² - 2abᵀ, clamped at 0.

    a: (n, d), b: (m, d) -> (n, m).
    """
    a_sq = (a * a).sum(dim=1, keepdim=True)  # (n, 1)
    b_sq = (b * b).sum(dim=1)  # (m,)
    return (a_sq + b_sq - 2 * a @ b.T).clamp_min(0)


def gaussian_gram(a: torch.Tensor, b: torch.Tensor, bandwidths: Sequence[float]) -> torch.Tensor:
    """Gram matrix of a sum of Gaussians. a: (n, d), b: (m, d) -> (n, m)."""
    d2 = squared_distances(a, b)
    gram = torch.exp(-d2 / (2 * bandwidths[0] ** 2))
    for s in bandwidths[1:]:
        gram = gram + torch.exp(-d2 / (2 * s**2))
    return gram


def mmd2_unbiased(x: torch.Tensor, y: torch.Tensor, bandwidths: Sequence[float]) -> torch.Tensor:
    """Unbiased MMD² estimate with a Gaussian-mixture kernel.

    x: (n, d), y: (m, d), n, m >= 2 -> 0-dim tensor, differentiable in x and y.
    The diagonals of K(x, x) and K(y, y) are left out of their means.
    """
    n, m = x.shape[0], y.shape[0]
    k_xx = gaussian_gram(x, x, bandwidths)
    k_yy = gaussian_gram(y, y, bandwidths)
    k_xy = gaussian_gram(x, y, bandwidths)
    mean_xx = (k_xx.sum() - k_xx.diagonal().sum()) / (n * (n - 1))
    mean_yy = (k_yy.sum() - k_yy.diagonal().sum()) / (m * (m - 1))
    return mean_xx + mean_yy - 2 * k_xy.mean()


def peak_bytes_estimate(n: int, m: int, n_bandwidths: int, itemsize: int, backward: bool) -> int:
    """Extra memory ``mmd2_unbiased`` needs beyond its inputs at its peak, in bytes.

    Counts the n×n, m×m and n×m buffers only (the O((n + m)·d) ones are negligible next to them), read off
    the code above: the forward pass keeps the finished Gram blocks while it builds the next one from a
    distance matrix, a running sum and two temporaries; with a backward pass autograd also saves, per block,
    the clamp input and every exp output. bench/test_harness.py checks it against a measured peak (within
    10 % at n = m = 3072: 6 buffers of n² forward, 17 forward+backward with 3 bandwidths). It is used to skip
    a case before running it when the case would not fit; below ~32 MB per buffer the allocator may keep
    freed blocks, so small cases can show a larger resident peak than this.
    """
    blocks = n * n + m * m + n * m  # elements of the three Gram blocks XX, YY, XY
    largest = max(n * n, m * m, n * m)
    if backward:
        elements = (n_bandwidths + 2) * blocks + 2 * largest
    else:
        elements = blocks + 3 * largest
    return elements * itemsize
