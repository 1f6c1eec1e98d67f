"""mmd2_and_variance: the unbiased MMD² and an unbiased estimate of its variance, from fused row sums.

Fused passes (one pair_stats pass per block: row sums, column sums, sums of squared entries) give every
statistic the variance needs (fastmmd.formulas.moments); memory O((n + m)·d). When x or y requires grad, or
the kernel learns, both results are differentiable, through fused backward passes
(fastmmd.statistics.variance_grad; docs/learned_kernels.md).
"""
from __future__ import annotations

from typing import NamedTuple

import torch

from fastmmd.backends import select_backend
from fastmmd.common.arrays import as_tensors
from fastmmd.common.validation import check_precision, check_same_space, check_samples
from fastmmd.formulas.moments import mmd2_unbiased_variance
from fastmmd.kernels import resolve_kernel
from fastmmd.kernels.views import is_view_kernel, view_terms
from fastmmd.ops.numerics import frame_for
from fastmmd.statistics.block_stats import cross_block, self_block
from fastmmd.statistics.variance_grad import differentiable_mmd2_and_variance

__all__ = ["MMDVariance", "mmd2_and_variance", "check_variance_sizes"]

MIN_SAMPLES = 4


class MMDVariance(NamedTuple):
    """mmd2: the unbiased MMD² (0-dim float64); variance: the unbiased estimate of its variance (0-dim
    float64; may be slightly negative for tiny samples, as unbiased variance estimates can be)."""

    mmd2: object
    variance: object


def check_variance_sizes(**samples: torch.Tensor) -> None:
    """At least MIN_SAMPLES points in each sample: the variance estimate averages over four distinct points."""
    for name, t in samples.items():
        if t.shape[0] < MIN_SAMPLES:
            raise ValueError(f"{name} needs at least {MIN_SAMPLES} samples for a variance estimate; got {t.shape[0]}")


def mmd2_and_variance(x, y, kernel="gaussian", backend="auto", precision="highest") -> MMDVariance:
    """(unbiased MMD², unbiased estimate of Var MMD²_u) of x (n, d) and y (m, d), n, m >= 4, n ≠ m allowed.

    Args:
        x, y: tensors or numpy arrays (numpy in, numpy float64 scalars out).
        kernel: a `fastmmd.kernels.Kernel` or a name, with learnable parameters or not, or a
            `fastmmd.DeepKernel` (docs/learned_kernels.md). backend: "auto", "triton", "cpu", "reference".
        precision: "highest", "tf32", "bf16" (GPU).
    The variance is that of the estimator over fresh samples of the same sizes (Sutherland et al. 2017
    use it for the test power criterion MMD² / sqrt(Var)). A NaN or infinity in x or y gives NaN for both
    (docs/numerics.md). Both are differentiable in x, y and the kernel's learnable parameters when any of
    them requires grad: then the kernel's square must be a sum of kernel terms (Gaussian mixtures, one
    rational quadratic, polynomials: `fastmmd.kernels.products`), and second derivatives need the reference
    backend.
    """
    (x, y), output = as_tensors(x=x, y=y)
    check_precision(precision)
    check_samples(x, "x")
    check_samples(y, "y")
    check_same_space(x, y)
    check_variance_sizes(x=x, y=y)
    if is_view_kernel(kernel) or (torch.is_grad_enabled() and (x.requires_grad or y.requires_grad)):
        value, variance = _differentiable(x, y, kernel, backend, precision)
        return MMDVariance(output(value), output(variance))
    kernel = resolve_kernel(kernel)
    chosen = select_backend(backend, x, y, kernel, None, precision, op="kernel_matmul")
    frame = frame_for(kernel, x, y)
    if not frame.finite:
        nan = torch.tensor(float("nan"), dtype=torch.float64, device=x.device)
        return MMDVariance(output(nan), output(nan.clone()))
    x, y, kernel = frame.apply(x), frame.apply(y), frame.kernel
    with torch.no_grad():
        xx = self_block(x, kernel, chosen, precision)
        yy = self_block(y, kernel, chosen, precision)
        xy = cross_block(x, y, kernel, chosen, precision)
        value = frame.unscale(xx.mean + yy.mean - 2 * xy.mean)
        variance = frame.unscale(mmd2_unbiased_variance(xx, yy, xy), 2)
    check_in_range(value, variance)
    return MMDVariance(output(value), output(variance))


def check_in_range(value: torch.Tensor, variance: torch.Tensor) -> None:
    """A ValueError when finite inputs gave a non-finite result: float64 kernel values whose squares (the
    variance's sums) leave float64's range (never an infinity for a finite input; docs/numerics.md)."""
    if bool(torch.isfinite(value.detach())) and bool(torch.isfinite(variance.detach())):
        return
    raise ValueError("kernel: its values on x and y give sums of squares beyond float64's range, so the "
                     "variance cannot be represented; scale the data or the kernel down (docs/numerics.md)")


def _differentiable(x: torch.Tensor, y: torch.Tensor, kernel, backend: str, precision: str):
    """(MMD²_u, variance) differentiable in x, y and the kernel's learnable parameters (statistics/variance_grad)."""
    if not is_view_kernel(kernel):
        kernel = resolve_kernel(kernel)
    terms = view_terms(kernel, x, y)
    chosen = None
    for term in terms:
        vx, vy = term.views
        chosen = select_backend(backend, vx, vy, term.kernel, None, precision, op="kernel_matmul")
        frame = frame_for(term.kernel, vx, vy)
        if not frame.finite:  # NaN, and NaN gradients: nothing finite comes out of a non-finite input
            nan = (sum(v.sum() for t in terms for v in t.views) * float("nan")).to(torch.float64)
            return nan, nan.clone()
        if frame.factor != 1.0 or frame.value_factor != 1.0:
            advice = "pass float64 points" if vx.dtype == torch.float32 else "scale the data down"
            raise ValueError("x, y: their views are beyond the range where the differentiable variance runs in "
                             f"{vx.dtype} (their squared norms or the kernel's values leave it); {advice} "
                             "(docs/numerics.md)")
    value, variance = differentiable_mmd2_and_variance(terms, chosen, precision)
    check_in_range(value, variance)
    return value, variance
