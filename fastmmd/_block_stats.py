"""The row sums, column sums and sums of squares of kernel blocks, from the fused product K·1 (no n×m
matrix), as the float64 `SelfBlock` / `CrossBlock` of fastmmd._moments."""
from __future__ import annotations

import torch

from fastmmd._moments import CrossBlock, SelfBlock
from fastmmd.backends import Backend
from fastmmd.kernels import Kernel
from fastmmd.ops.kernel_matmul import kernel_products


def _one_pass(a, b, kernel: Kernel, backend: Backend, precision: str, symmetric: bool, exclude_diag: bool):
    terms = kernel.terms(a.shape[1]).ravel().tolist()
    return backend.pair_stats(a, b, terms, symmetric, exclude_diag, precision, torch.get_num_threads())


def self_block(x: torch.Tensor, kernel: Kernel, backend: Backend, precision: str) -> SelfBlock:
    """Statistics of K(x, x) without its diagonal; x (n, d). One pass over each unordered pair where the
    backend has one (Backend.pair_stats), else the products K·1 with the sums of squares."""
    stats = _one_pass(x, x, kernel, backend, precision, symmetric=True, exclude_diag=True)
    if stats is not None:
        _, rows, _, squares = stats
        return SelfBlock(rows.to(x.device), torch.tensor(squares, dtype=torch.float64, device=x.device))
    ones = x.new_ones((x.shape[0], 1))
    rows, squares = kernel_products(x, x, ones, kernel, backend, precision, exclude_diag=True, want_sq=True)
    return SelfBlock(rows[:, 0].detach().double(), squares.detach().double().sum())


def cross_block(x: torch.Tensor, y: torch.Tensor, kernel: Kernel, backend: Backend, precision: str) -> CrossBlock:
    """Statistics of K(x, y); x (n, d), y (m, d). One pass where the backend has one, else K·1 and Kᵀ·1."""
    stats = _one_pass(x, y, kernel, backend, precision, symmetric=False, exclude_diag=False)
    if stats is not None:
        _, rows, cols, squares = stats
        return CrossBlock(rows.to(x.device), cols.to(x.device),
                          torch.tensor(squares, dtype=torch.float64, device=x.device))
    rows, squares = kernel_products(x, y, y.new_ones((y.shape[0], 1)), kernel, backend, precision, want_sq=True)
    cols, _ = kernel_products(y, x, x.new_ones((x.shape[0], 1)), kernel, backend, precision)
    return CrossBlock(rows[:, 0].detach().double(), cols[:, 0].detach().double(), squares.detach().double().sum())
