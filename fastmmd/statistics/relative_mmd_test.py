"""relative_mmd_test: is Y closer to X than Z is? The three-sample test of Bounliphone et al. (ICLR 2016)
that "Demystifying MMD GANs" uses to adapt the learning rate (docs/mmd.md).

difference = MMD²_u(X, Y) - MMD²_u(X, Z) = U_YY - U_ZZ - 2 U_XY + 2 U_XZ (U_XX cancels), and with X, Y, Z
independent
    Var(difference) = Var U_YY + Var U_ZZ + 4 Var U_XY + 4 Var U_XZ
                      - 4 Cov(U_YY, U_XY) - 4 Cov(U_ZZ, U_XZ) - 8 Cov(U_XY, U_XZ),
each term estimated without bias from fused row sums (fastmmd.formulas.moments). statistic = difference / sqrt(Var);
p_value = Φ(statistic): small when Y is significantly closer to X than Z is. The learning-rate rule counts
p_value > 0.1 as a failure.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import torch

from fastmmd.backends import select_backend
from fastmmd.common.arrays import as_tensors
from fastmmd.common.validation import check_finite, check_precision, check_same_space, check_samples
from fastmmd.formulas.moments import covariance_cross_cross, covariance_self_cross
from fastmmd.kernels import Polynomial, resolve_kernel
from fastmmd.ops.numerics import frame_for
from fastmmd.statistics.block_stats import cross_block, self_block
from fastmmd.statistics.mmd2_and_variance import check_variance_sizes

__all__ = ["RelativeTestResult", "relative_mmd_test"]


class RelativeTestResult(NamedTuple):
    """mmd2_xy, mmd2_xz: unbiased MMD² of (x, y) and (x, z); difference = mmd2_xy - mmd2_xz; std: the
    estimated standard deviation of the difference; statistic = difference / std; p_value = Φ(statistic).
    Each a 0-dim float64 tensor on the inputs' device (a numpy float64 for numpy inputs)."""

    mmd2_xy: object
    mmd2_xz: object
    difference: object
    std: object
    statistic: object
    p_value: object


def _normal_cdf(t: float) -> float:
    return 0.5 * math.erfc(-t / math.sqrt(2.0))


def relative_mmd_test(x, y, z, kernel=None, backend="auto", precision="highest") -> RelativeTestResult:
    """Three-sample relative MMD test of x (n, d) (the reference), y (m_y, d) and z (m_z, d), each >= 4.

    kernel: default the KID kernel (cubic polynomial, gamma = 1/d, coef0 = 1); backend and precision as in
    `mmd2`. Seven fused passes over the pairs, O((n + m_y + m_z)·d) memory. A zero variance (identical
    points) gives statistic ±inf (or 0 with p_value 0.5 when the difference is 0 too). Samples holding NaN
    or inf are refused (ValueError): a p-value computed from them would mean nothing.
    """
    (x, y, z), output = as_tensors(x=x, y=y, z=z)
    kernel = Polynomial(degree=3) if kernel is None else resolve_kernel(kernel)
    check_precision(precision)
    for name, t in (("x", x), ("y", y), ("z", z)):
        check_samples(t, name)
    check_same_space(x, y, ("x", "y"))
    check_same_space(x, z, ("x", "z"))
    check_variance_sizes(x=x, y=y, z=z)
    for name, t in (("x", x), ("y", y), ("z", z)):
        check_finite(t, name)
    chosen = select_backend(backend, x, y, kernel, None, precision, op="kernel_matmul")
    frame = frame_for(kernel, x, y, z)
    x, y, z, kernel = frame.apply(x), frame.apply(y), frame.apply(z), frame.kernel
    with torch.no_grad():
        xx = self_block(x, kernel, chosen, precision)
        yy = self_block(y, kernel, chosen, precision)
        zz = self_block(z, kernel, chosen, precision)
        xy = cross_block(x, y, kernel, chosen, precision)
        xz = cross_block(x, z, kernel, chosen, precision)
        variance = (yy.variance() + zz.variance() + 4 * xy.variance() + 4 * xz.variance()
                    - 4 * covariance_self_cross(yy, xy.cols, xy) - 4 * covariance_self_cross(zz, xz.cols, xz)
                    - 8 * covariance_cross_cross(xy.rows, xy.total, xy.m, xz.rows, xz.total, xz.m))
        mmd2_xy = float(frame.unscale(xx.mean + yy.mean - 2 * xy.mean))
        mmd2_xz = float(frame.unscale(xx.mean + zz.mean - 2 * xz.mean))
    difference = mmd2_xy - mmd2_xz
    std = math.sqrt(max(float(frame.unscale(variance, 2)), 0.0))
    if std > 0:
        statistic = difference / std
    else:
        statistic = 0.0 if difference == 0 else math.copysign(math.inf, difference)
    values = (mmd2_xy, mmd2_xz, difference, std, statistic, _normal_cdf(statistic))
    return RelativeTestResult(*(output(torch.tensor(v, dtype=torch.float64, device=x.device)) for v in values))
