"""The MMD² of many relabellings of one pooled sample from a single fused product K̃(Z, Z) @ [W | 1]
(no N×N matrix), the formulas of fastmmd.formulas.permutations applied to it (docs/mmd.md)."""
from __future__ import annotations

from typing import Tuple

import torch

from fastmmd.backends import Backend
from fastmmd.formulas.permutations import label_weights, unbiased_coefficients
from fastmmd.kernels import Kernel
from fastmmd.ops.kernel_matmul import kernel_products

__all__ = ["relabelled_statistics"]

_COLUMN_CHUNK = 512  # columns converted to float64 at a time (bounds the float64 copies to N × 512)


def relabelled_statistics(z: torch.Tensor, labels: torch.Tensor, n: int, kernel: Kernel, estimator: str,
                          backend: Backend, precision: str) -> Tuple[torch.Tensor, torch.Tensor]:
    """(MMD² of each relabelling (P,) float64, typical |k| off the diagonal (0-dim float64)) for the pool
    z (N, d) and labels (N, P) bool (n True per column; already checked), in one fused pass.

    The typical |k| = Σ_i |r_i| / (N(N-1)) sets the scale of the rounding error of the statistics.
    """
    big_n, count = labels.shape
    m = big_n - n
    columns = torch.full((big_n, count + 1), -1.0 / m, dtype=z.dtype, device=z.device)  # [W | 1]
    columns[:, :count][labels] = 1.0 / n
    columns[:, count] = 1.0
    products, _ = kernel_products(z, z, columns, kernel, backend, precision, exclude_diag=True)
    del columns
    rows = products[:, count].to(torch.float64)  # r = K̃·1
    quadratic = torch.empty(count, dtype=torch.float64, device=z.device)
    linear = torch.empty(count, dtype=torch.float64, device=z.device)
    diagonal = kernel.diag(z.to(torch.float64), z.to(torch.float64)) if estimator == "biased" else None
    for start in range(0, count, _COLUMN_CHUNK):
        block = slice(start, min(start + _COLUMN_CHUNK, count))
        w = label_weights(labels[:, block], n, m, torch.float64)
        quadratic[block] = (w * products[:, block].to(torch.float64)).sum(0)
        if estimator == "biased":
            linear[block] = (w * w).T @ diagonal
        else:
            linear[block] = w.T @ rows
    scale = rows.abs().sum() / (big_n * (big_n - 1))
    if estimator == "biased":
        return quadratic + linear, scale
    alpha, beta, gamma = unbiased_coefficients(n, m)
    return alpha * quadratic + 2.0 * beta * linear + gamma * rows.sum(), scale
