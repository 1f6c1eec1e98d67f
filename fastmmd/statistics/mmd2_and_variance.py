"""mmd2_and_variance: the unbiased MMD² and an unbiased estimate of its variance, from fused row sums.

Four fused passes (K_XX·1 and K_YY·1 without their diagonals, K_XY·1, K_YX·1, with the sums of squared
entries alongside) give every statistic the variance needs (fastmmd.formulas.moments); memory O((n + m)·d).
The results are not differentiable (the sums of squares are not); use `mmd2` for a differentiable MMD².
"""
from __future__ import annotations

from typing import NamedTuple

import torch

from fastmmd.backends import select_backend
from fastmmd.common.arrays import as_tensors
from fastmmd.common.validation import check_precision, check_same_space, check_samples
from fastmmd.formulas.moments import mmd2_unbiased_variance
from fastmmd.kernels import resolve_kernel
from fastmmd.ops.numerics import frame_for
from fastmmd.statistics.block_stats import cross_block, self_block

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
        kernel: a `fastmmd.kernels.Kernel` or a name. backend: "auto", "triton", "cpu", "reference".
        precision: "highest", "tf32", "bf16" (GPU).
    The variance is that of the estimator over fresh samples of the same sizes (Sutherland et al. 2017
    use it for the test power criterion MMD² / sqrt(Var)). A NaN or infinity in x or y gives NaN for both
    (docs/numerics.md).
    """
    (x, y), output = as_tensors(x=x, y=y)
    kernel = resolve_kernel(kernel)
    check_precision(precision)
    check_samples(x, "x")
    check_samples(y, "y")
    check_same_space(x, y)
    check_variance_sizes(x=x, y=y)
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
    return MMDVariance(output(value), output(variance))
