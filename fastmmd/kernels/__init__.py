"""Layer 1: kernels as small immutable value objects (docs/kernels.md).

    >>> Gaussian(bandwidth=[2, 5]) + 0.5 * Linear()
    Gaussian(bandwidth=(2.0, 5.0)) + 0.5 * Linear()

base: the interface, its algebra and the family codes; families: each family's formula, encoding, frame and
derivative rules; derivatives: the derivative-kernel tables built from those rules; products: the square of
a kernel as a table; views: kernels that learn (sums of constant kernels on learned views, DeepKernel);
geometry: the pairwise quantities the torch formulas use; names: the named kernels and presets.
"""
from fastmmd.kernels.base import (
                                  MAX_COMPILED_DEGREE,
                                  SHIFT_INVARIANT_MMD_FAMILIES,
                                  TRANSLATION_INVARIANT_FAMILIES,
                                  Family,
                                  Kernel,
                                  KernelSum,
                                  TableKernel,
)
from fastmmd.kernels.families import (
                                  Energy,
                                  Gaussian,
                                  GaussianBandwidthDerivative,
                                  InverseMultiquadric,
                                  Laplacian,
                                  Linear,
                                  Polynomial,
                                  RationalQuadratic,
                                  RationalQuadraticAlphaDerivative,
)
from fastmmd.kernels.names import KERNEL_NAMES, get_kernel, resolve_kernel

__all__ = ["Family", "Kernel", "KernelSum", "Gaussian", "RationalQuadratic", "Laplacian", "InverseMultiquadric",
           "Energy", "Linear", "Polynomial", "KERNEL_NAMES", "get_kernel", "resolve_kernel",
           "TRANSLATION_INVARIANT_FAMILIES", "SHIFT_INVARIANT_MMD_FAMILIES", "MAX_COMPILED_DEGREE", "TableKernel",
           "RationalQuadraticAlphaDerivative", "GaussianBandwidthDerivative"]
