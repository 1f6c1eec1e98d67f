"""fastmmd: MMD² and friends with fused, tiled kernels, as differentiable PyTorch ops.

    >>> import fastmmd
    >>> fastmmd.mmd2(x, y, kernel=fastmmd.Gaussian(bandwidth=[2, 5, 10]), estimator="unbiased")

`python -m fastmmd.cli.info` shows which backends can run here.
"""
from fastmmd.backends import backend_statuses
from fastmmd.formulas.kid_subsets import kid_subsets
from fastmmd.kernels import (
    Energy,
    Gaussian,
    InverseMultiquadric,
    Kernel,
    KernelSum,
    Laplacian,
    Linear,
    Polynomial,
    RationalQuadratic,
    get_kernel,
)
from fastmmd.kernels.views import DeepKernel, ViewKernel, ViewTerm
from fastmmd.ops.kernel_matmul import kernel_matmul
from fastmmd.ops.mmd2 import mmd2
from fastmmd.ops.smmd import jacobian_sqnorm, smmd2, smmd_scale
from fastmmd.ops.witness import witness
from fastmmd.statistics.kid import KIDResult, kid
from fastmmd.statistics.median_bandwidth import median_bandwidth
from fastmmd.statistics.mmd2_and_variance import MMDVariance, mmd2_and_variance
from fastmmd.statistics.mmd_test import TestResult, mmd2_of_relabellings, mmd_test, permutation_labels
from fastmmd.statistics.power import LearnedTestResult, learned_kernel_test, power_criterion
from fastmmd.statistics.relative_mmd_test import RelativeTestResult, relative_mmd_test

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "mmd2",
    "kernel_matmul",
    "witness",
    "mmd2_and_variance",
    "MMDVariance",
    "median_bandwidth",
    "relative_mmd_test",
    "RelativeTestResult",
    "smmd2",
    "smmd_scale",
    "jacobian_sqnorm",
    "kid",
    "KIDResult",
    "kid_subsets",
    "mmd_test",
    "TestResult",
    "mmd2_of_relabellings",
    "permutation_labels",
    "power_criterion",
    "learned_kernel_test",
    "LearnedTestResult",
    "DeepKernel",
    "ViewKernel",
    "ViewTerm",
    "Kernel",
    "KernelSum",
    "Gaussian",
    "RationalQuadratic",
    "Linear",
    "Polynomial",
    "Laplacian",
    "InverseMultiquadric",
    "Energy",
    "get_kernel",
    "backend_statuses",
]
