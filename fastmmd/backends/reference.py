"""The reference backend: pure torch, materialises the Gram matrices, computes in float64.

It is the truth the other backends are tested against, so it writes each estimator out from its
textbook definition (docs/mmd.md) rather than from the pair-sum plan the fused backends share,
and it uses the true diagonal of every Gram matrix. Runs on any device; differentiable to any order.
Memory: three Gram matrices, O(n² + m² + nm).
"""
from __future__ import annotations

import torch

from fastmmd.backends._base import Backend, Capabilities
from fastmmd.common.validation import ESTIMATORS
from fastmmd.formulas.linear_time import linear_mmd2
from fastmmd.kernels import Kernel, TableKernel


def _off_diagonal_sum(k: torch.Tensor) -> torch.Tensor:
    """Σ_{i≠j} k_ij with the diagonal left out, not subtracted: a kernel whose diagonal dwarfs the rest (an
    inverse multiquadric with a tiny c) would lose the off-diagonal sum to cancellation in sum − trace."""
    keep = ~torch.eye(k.shape[0], k.shape[1], dtype=torch.bool, device=k.device)
    return torch.where(keep, k, torch.zeros_like(k)).sum()


def centred(kernel: Kernel, *samples: torch.Tensor):
    """The samples shifted by their pooled mean (held constant) when the kernel is translation invariant
    (its values do not change), else as they are: |a|² + |b|² - 2aᵀb then cancels far less for data far
    from the origin."""
    if not kernel.translation_invariant:
        return samples
    with torch.no_grad():
        mean = torch.cat([s.reshape(-1, s.shape[-1]) for s in samples]).to(torch.float64).mean(0)
    return tuple(s - mean.to(s.dtype) for s in samples)


def quadratic_mmd2(x: torch.Tensor, y: torch.Tensor, kernel: Kernel, estimator: str) -> torch.Tensor:
    """x (n, d), y (m, d) -> 0-dim tensor, for "unbiased", "biased" and "u-statistic", in x's dtype."""
    n, m = x.shape[0], y.shape[0]
    x, y = centred(kernel, x, y)
    k_xx = kernel.gram(x, x)
    k_yy = kernel.gram(y, y)
    k_xy = kernel.gram(x, y)
    if estimator == "biased":
        return k_xx.mean() + k_yy.mean() - 2.0 * k_xy.mean()
    if estimator == "unbiased":
        return (
            _off_diagonal_sum(k_xx) / (n * (n - 1))
            + _off_diagonal_sum(k_yy) / (m * (m - 1))
            - 2.0 * k_xy.mean()
        )
    if estimator == "u-statistic":
        return (_off_diagonal_sum(k_xx) + _off_diagonal_sum(k_yy) - 2.0 * _off_diagonal_sum(k_xy)) / (n * (n - 1))
    raise ValueError(f"not a quadratic estimator: {estimator!r}")


class ReferenceBackend(Backend):
    """The four passes of the contract from float64 Gram matrices (the table's kernel, `TableKernel`), their
    gradients by autograd; and `mmd2`, the textbook estimators on the user's kernel, a torch graph that the
    ops differentiate to any order."""

    name = "reference"
    fused = False
    capabilities = Capabilities(
        devices=None,
        dtypes=(torch.float16, torch.bfloat16, torch.float32, torch.float64),
        precisions=("highest",),
        estimators=ESTIMATORS,
    )

    def mmd2(self, x: torch.Tensor, y: torch.Tensor, kernel: Kernel, estimator: str) -> torch.Tensor:
        """MMD² of x (n, d) and y (m, d), computed in float64 and returned in x's dtype (0-dim)."""
        x64, y64 = x.to(torch.float64), y.to(torch.float64)
        if estimator == "linear":
            value = linear_mmd2(x64, y64, kernel)
        else:
            value = quadratic_mmd2(x64, y64, kernel, estimator)
        return value.to(x.dtype)

    def mmd2_with_grads(self, x, y, terms, estimator, need_grad, precision, num_threads):
        with torch.enable_grad():
            x64 = x.detach().to(torch.float64).requires_grad_(need_grad)
            y64 = y.detach().to(torch.float64).requires_grad_(need_grad)
            value = quadratic_mmd2(x64, y64, TableKernel.of(terms), estimator)
            if not need_grad:
                return value.detach().to(x.dtype), x.new_empty((0,)), y.new_empty((0,))
            grad_x, grad_y = torch.autograd.grad(value, (x64, y64))
        return value.detach().to(x.dtype), grad_x.to(x.dtype), grad_y.to(y.dtype)

    def pair_sum(self, a, b, terms, symmetric, exclude_diag, need_grad, precision, num_threads):
        with torch.enable_grad():
            a64 = a.detach().to(torch.float64).requires_grad_(need_grad)
            b64 = a64 if symmetric else b.detach().to(torch.float64).requires_grad_(need_grad)
            gram = _block_gram(TableKernel.of(terms), a64, b64, symmetric)
            total = _off_diagonal_sum(gram) if exclude_diag else gram.sum()
            if not need_grad:
                return total.detach(), None, None
            inputs = (a64,) if symmetric else (a64, b64)
            grads = torch.autograd.grad(total, inputs)
        grad_b = None if symmetric else grads[1].to(b.dtype)
        return total.detach(), grads[0].to(a.dtype), grad_b

    def pair_stats(self, a, b, terms, symmetric, exclude_diag, precision, num_threads):
        a64 = a.detach().to(torch.float64)
        gram = _block_gram(TableKernel.of(terms), a64, a64 if symmetric else b.detach().to(torch.float64), symmetric)
        if exclude_diag:
            gram = torch.where(torch.eye(*gram.shape, dtype=torch.bool, device=gram.device), 0.0, gram)
        return (float(gram.sum()), gram.sum(1), None if symmetric else gram.sum(0), float((gram * gram).sum()))

    def kernel_matmul(self, a, b, v, terms, exclude_diag, want_sq, precision, num_threads):
        """A torch graph (differentiable in a, b and v to any order), computed in float64, in a's dtype."""
        a64, b64, v64 = a.to(torch.float64), b.to(torch.float64), v.to(torch.float64)
        gram = _block_gram(TableKernel.of(terms), a64, b64, symmetric=a64 is b64)
        if exclude_diag:
            gram = gram * (1.0 - torch.eye(a.shape[0], dtype=gram.dtype, device=gram.device))
        sq = (gram * gram).sum(1).to(a.dtype) if want_sq else a.new_empty((0,))
        return (gram @ v64).to(a.dtype), sq


def _block_gram(kernel: Kernel, a: torch.Tensor, b: torch.Tensor, symmetric: bool) -> torch.Tensor:
    """K(a, b) of centred points (translation-invariant kernels); one tensor for a symmetric block, so that
    its diagonal distances are exactly 0."""
    if symmetric:
        (points,) = centred(kernel, a)
        return kernel.gram(points, points)
    return kernel.gram(*centred(kernel, a, b))
