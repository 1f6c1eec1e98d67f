"""Exact KID and its std in a low precision (tf32, bf16) with the low-degree part of the kernel exact.

With t = aᵀb, the KID kernel (γt + c)^q = Σ_p C(q, p) c^(q−p) γ^p t^p. The row sums of the p ≤ 2 terms are
exact in float64 without pairs: Σ_j t_ij = a_i·(Σ_j b_j) and Σ_j t_ij² = a_iᵀ(BᵀB)a_i (a d × d Gram matrix,
O((n + m)·d²)). Only the terms of degree 3 and more need the pairs (one value pass per block), and they alone
carry the precision's error (docs/numerics.md, section 5): emulated, this cuts the error of a low-precision
exact KID 10 to 100 fold. The std comes from a second pass, pair_stats of the whole kernel in the precision:
its sums of squares are of degree 2q and need the pairs anyway, and its variance formula cancels terms that
must come from one and the same kernel (exact row sums beside low-precision squares made bf16's std worse:
1.1e-2 against 2.6e-4 off on 96 × 64 features).
"""
from __future__ import annotations

import math
from typing import Optional, Tuple

import numpy as np
import torch

from fastmmd.backends import Backend
from fastmmd.formulas.moments import mmd2_unbiased_variance
from fastmmd.kernels import Family, Polynomial
from fastmmd.statistics.block_stats import cross_block, self_block

__all__ = ["split_kid"]

_ROW_CHUNK = 8192  # rows converted to float64 at a time


def _low_weights(kernel: Polynomial, d: int) -> Tuple[float, float, float]:
    """The weights of t⁰, t¹, t² in the kernel (0 for degrees it lacks)."""
    gamma, c, q = kernel.resolved_gamma(d), kernel.coef0, kernel.degree
    return tuple(math.comb(q, p) * c ** (q - p) * gamma ** p if p <= q else 0.0 for p in range(3))


def _high_table(kernel: Polynomial, d: int) -> Optional[np.ndarray]:
    """The terms of degree 3 to q as polynomial rows (γt + 0)^p with weight C(q, p) c^(q−p); None if q < 3."""
    gamma, c, q = kernel.resolved_gamma(d), kernel.coef0, kernel.degree
    rows = [[float(Family.POLYNOMIAL), math.comb(q, p) * c ** (q - p), gamma, 0.0, float(p)] for p in range(3, q + 1)]
    return np.asarray(rows, dtype=np.float64) if rows else None


def _low_rows(a: torch.Tensor, b: torch.Tensor, weights, same: bool) -> torch.Tensor:
    """Σ_j (w0 + w1 t_ij + w2 t_ij²) for each row a_i (n,), float64, over all j (or j ≠ i when same)."""
    w0, w1, w2 = weights
    total_b = b.sum(0, dtype=torch.float64)
    gram_b = torch.zeros((b.shape[1], b.shape[1]), dtype=torch.float64, device=b.device)
    for start in range(0, b.shape[0], _ROW_CHUNK):
        block = b[start:start + _ROW_CHUNK].to(torch.float64)
        gram_b += block.T @ block
    out = torch.empty(a.shape[0], dtype=torch.float64, device=a.device)
    for start in range(0, a.shape[0], _ROW_CHUNK):
        rows = a[start:start + _ROW_CHUNK].to(torch.float64)
        value = w0 * b.shape[0] + w1 * (rows @ total_b) + w2 * ((rows @ gram_b) * rows).sum(1)
        if same:  # the pair (i, i) left out
            norms = (rows * rows).sum(1)
            value = value - (w0 + w1 * norms + w2 * norms * norms)
        out[start:start + _ROW_CHUNK] = value
    return out


def _block_total(a, b, kernel: Polynomial, backend: Backend, precision: str, same: bool) -> torch.Tensor:
    """Σ k over the pairs of K(a, b) (diagonal left out when same: b is a), degrees <= 2 exact (0-dim)."""
    d = a.shape[1]
    total = _low_rows(a, b, _low_weights(kernel, d), same).sum()
    high = _high_table(kernel, d)
    if high is not None:
        high_total, _, _ = backend.pair_sum(a, b, high.ravel().tolist(), same, same, False, precision,
                                            torch.get_num_threads())
        total = total + torch.as_tensor(high_total, dtype=torch.float64).to(total.device)
    return total


def split_kid(x: torch.Tensor, y: torch.Tensor, kernel: Polynomial, backend: Backend, precision: str
              ) -> Tuple[torch.Tensor, torch.Tensor]:
    """(MMD²_u, its variance estimate), 0-dim float64, of features x (n, d), y (m, d) with the KID kernel:
    MMD² with degrees ≤ 2 exact in float64 and the others from `backend`'s pair_stats in `precision`; the
    variance from the whole kernel's pair_stats in `precision`. Not differentiable."""
    n, m = x.shape[0], y.shape[0]
    with torch.no_grad():
        value = (_block_total(x, x, kernel, backend, precision, True) / (n * (n - 1))
                 + _block_total(y, y, kernel, backend, precision, True) / (m * (m - 1))
                 - 2 * _block_total(x, y, kernel, backend, precision, False) / (n * m))
        xx = self_block(x, kernel, backend, precision)
        yy = self_block(y, kernel, backend, precision)
        xy = cross_block(x, y, kernel, backend, precision)
        return value.to(torch.float64), mmd2_unbiased_variance(xx, yy, xy)
