"""The linear-time MMD² estimator (Gretton et al. 2012, JMLR, §6), shared by every backend.

With n = m, the quadruples (x_{2i}, x_{2i+1}, y_{2i}, y_{2i+1}) for i < ⌊n/2⌋ give
h_i = k(x_{2i}, x_{2i+1}) + k(y_{2i}, y_{2i+1}) - k(x_{2i}, y_{2i+1}) - k(x_{2i+1}, y_{2i}),
and the estimate is their mean. It is O(n·d): only row-paired kernel values (`Kernel.diag`).
"""
from __future__ import annotations

import torch

from fastmmd.kernels import Kernel


def linear_mmd2(x: torch.Tensor, y: torch.Tensor, kernel: Kernel) -> torch.Tensor:
    """x, y: (n, d) with n >= 2 -> 0-dim tensor in x's dtype (mean accumulated in float64)."""
    p = x.shape[0] // 2
    x1, x2 = x[0 : 2 * p : 2], x[1 : 2 * p : 2]
    y1, y2 = y[0 : 2 * p : 2], y[1 : 2 * p : 2]
    h = kernel.diag(x1, x2) + kernel.diag(y1, y2) - kernel.diag(x1, y2) - kernel.diag(x2, y1)
    return (h.sum(dtype=torch.float64) / p).to(x.dtype)
