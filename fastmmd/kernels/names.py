"""Kernels by name: the families' defaults and the MMD-GAN presets (Bińkowski et al. 2018; docs/kernels.md)."""
from __future__ import annotations

from typing import Union

from fastmmd.kernels.base import Kernel
from fastmmd.kernels.families import (
    Energy,
    Gaussian,
    InverseMultiquadric,
    Laplacian,
    Linear,
    Polynomial,
    RationalQuadratic,
)

__all__ = ["KERNEL_NAMES", "get_kernel", "resolve_kernel"]

_MIX_RQ = RationalQuadratic(alpha=(0.1, 1.0, 10.0))

_NAMED = {
    "gaussian": Gaussian(bandwidth=1.0),
    "rq": RationalQuadratic(alpha=1.0),
    "polynomial": Polynomial(),
    "linear": Linear(),
    "laplacian": Laplacian(bandwidth=1.0),
    "imq": InverseMultiquadric(),
    "energy": Energy(),
    # MMD-GAN presets (Bińkowski et al. 2018)
    "mix_rbf": Gaussian(bandwidth=(2.0, 5.0, 10.0, 20.0, 40.0, 80.0)),
    "mix_rq": _MIX_RQ,
    "mix_rq_1dot": _MIX_RQ + Linear(),
}

KERNEL_NAMES = tuple(_NAMED)


def get_kernel(name_or_kernel: Union[str, Kernel], learnable: bool = False) -> Kernel:
    """A kernel from its name (see `KERNEL_NAMES`), or the kernel itself when given one. A kernel with
    learnable parameters (tensors that require grad) is refused unless `learnable`: the ops that do not
    differentiate in kernel parameters would otherwise leave their gradients silently out."""
    if isinstance(name_or_kernel, Kernel):
        if name_or_kernel.learnable and not learnable:
            names = ", ".join(name_or_kernel.learnable_tensors())
            raise ValueError(f"kernel has parameters that require grad ({names}); this function does not "
                             "differentiate in kernel parameters (mmd2, mmd2_and_variance, kernel_matmul, "
                             "power_criterion and kid do): pass them detached")
        return name_or_kernel
    if not isinstance(name_or_kernel, str):
        raise TypeError(f"kernel must be a fastmmd Kernel or a name; got {type(name_or_kernel).__name__}")
    kernel = _NAMED.get(name_or_kernel.lower())
    if kernel is None:
        valid = ", ".join(repr(n) for n in KERNEL_NAMES)
        raise ValueError(f"unknown kernel {name_or_kernel!r}; valid names: {valid}")
    return kernel


resolve_kernel = get_kernel
