"""Other libraries' ways of computing the same MMD², benchmarked beside fastmmd when they are installed.

Nothing here is a dependency: each peer is imported inside its function.
"""
from __future__ import annotations

from typing import Sequence

import torch


def keops_mmd2_unbiased(x: torch.Tensor, y: torch.Tensor, bandwidths: Sequence[float]) -> torch.Tensor:
    """Unbiased MMD² with pykeops' symbolic LazyTensors (no n×m buffer), Gaussian mixture as in
    bench/naive.py. x: (n, d), y: (m, d) -> 0-dim tensor, differentiable in x and y."""
    from pykeops.torch import LazyTensor

    gammas = [1.0 / (2.0 * s * s) for s in bandwidths]

    def block_sum(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        a_i = LazyTensor(a[:, None, :])  # (n, 1, d)
        b_j = LazyTensor(b[None, :, :])  # (1, m, d)
        d2 = ((a_i - b_j) ** 2).sum(-1)  # (n, m) symbolic
        k = (-gammas[0] * d2).exp()
        for g in gammas[1:]:
            k = k + (-g * d2).exp()
        return k.sum(axis=1).sum()

    n, m, t = x.shape[0], y.shape[0], len(bandwidths)
    mean_xx = (block_sum(x, x) - n * t) / (n * (n - 1))  # the diagonal holds exp(0) = 1 per bandwidth
    mean_yy = (block_sum(y, y) - m * t) / (m * (m - 1))
    return mean_xx + mean_yy - 2 * block_sum(x, y) / (n * m)
