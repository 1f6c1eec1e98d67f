"""The row sums, column sums and sums of squares of kernel blocks, from the fused product K·1 (no n×m
matrix), as the float64 `SelfBlock` / `CrossBlock` of fastmmd.formulas.moments."""
from __future__ import annotations

from typing import Optional, Tuple

import torch

from fastmmd.backends import Backend
from fastmmd.formulas.moments import CrossBlock, SelfBlock
from fastmmd.kernels import Kernel
from fastmmd.ops.kernel_matmul import kernel_products

__all__ = ["block_sums", "self_block", "cross_block"]


def block_sums(a: torch.Tensor, b: torch.Tensor, kernel: Kernel, backend: Backend, precision: str, symmetric: bool,
               exclude_diag: bool) -> Tuple[torch.Tensor, Optional[torch.Tensor], torch.Tensor]:
    """(rows (n,), cols (m,) or None when symmetric, squares 0-dim) of the block K(a, b), float64 on a's
    device: rows[i] = Σ_j k(a_i, b_j), cols[j] = Σ_i k(a_i, b_j), squares = Σ k², over the kept pairs
    (i ≠ j with exclude_diag). symmetric: b is a. One pass where the backend has one (Backend.pair_stats,
    each unordered pair once), else the products K·1 (and Kᵀ·1)."""
    terms = kernel.terms(a.shape[1]).ravel().tolist()
    stats = backend.pair_stats(a, b, terms, symmetric, exclude_diag, precision, torch.get_num_threads())
    if stats is not None:
        _, rows, cols, squares = stats
        return (rows.to(a.device), None if cols is None else cols.to(a.device),
                torch.tensor(squares, dtype=torch.float64, device=a.device))
    rows, squares = kernel_products(a, b, b.new_ones((b.shape[0], 1)), kernel, backend, precision,
                                    exclude_diag=exclude_diag, want_sq=True)
    cols = None
    if not symmetric:
        cols, _ = kernel_products(b, a, a.new_ones((a.shape[0], 1)), kernel, backend, precision,
                                  exclude_diag=exclude_diag)
        cols = cols[:, 0].detach().double()
    return rows[:, 0].detach().double(), cols, squares.detach().double().sum()


def self_block(x: torch.Tensor, kernel: Kernel, backend: Backend, precision: str) -> SelfBlock:
    """Statistics of K(x, x) without its diagonal; x (n, d)."""
    rows, _, squares = block_sums(x, x, kernel, backend, precision, symmetric=True, exclude_diag=True)
    return SelfBlock(rows, squares)


def cross_block(x: torch.Tensor, y: torch.Tensor, kernel: Kernel, backend: Backend, precision: str) -> CrossBlock:
    """Statistics of K(x, y); x (n, d), y (m, d)."""
    rows, cols, squares = block_sums(x, y, kernel, backend, precision, symmetric=False, exclude_diag=False)
    return CrossBlock(rows, cols, squares)
