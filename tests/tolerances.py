"""Tolerances of the correctness tests, in one table (every test of fastmmd's numbers takes its tolerance
from here, by name).

Against the float64 brute force (tests/brute_force.py), errors are relative to the size of the quantities
that are summed, never to the result itself (an MMD² near 0 is the difference of three terms of order 1):
- value:    |mmd2 - mmd2_ref| <= value * (|T_xx| + |T_yy| + 2 |T_xy|)
- gradient: ‖g - g_ref‖_∞ <= grad * (‖∇T_xx‖_∞ + ‖∇T_yy‖_∞ + 2 ‖∇T_xy‖_∞)   (for g = dMMD²/dx and dMMD²/dy)
with T the three normalised terms of the estimator, computed in float64 by tests/brute_force.py.
The low precisions (tf32, bf16; GPU) must stay within LOW_PRECISION_FACTOR times the error of plain torch
computing the same quantity in the same precision (flash-attention's rule), not within a loose constant.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Tolerance:
    value: float
    grad: float


TOLERANCES = {
    torch.float64: Tolerance(value=1e-10, grad=1e-10),
    torch.float32: Tolerance(value=1e-5, grad=1e-5),
}

# The reference backend is the float64 truth of the other tests: it must be within the float64
# tolerance of the brute force (explicit differences, no ‖a‖²+‖b‖²−2aᵀb cancellation).
REFERENCE_VS_BRUTE_FORCE = TOLERANCES[torch.float64]

# Properties that hold exactly in exact arithmetic, checked in float64 (relative to the term scale).
PROPERTY_RTOL = TOLERANCES[torch.float64].value

# Relative tolerances of direct comparisons (rtol, and the absolute floor for values near 0, atol):
# numbers copied between representations (a kernel's table rows).
ENCODING_RTOL = 1e-15
# one float64 computation arranged differently (sums regrouped, chunked, compiled, a formula in closed form
# against the same formula spelled out).
SAME_ARITHMETIC_RTOL, SAME_ARITHMETIC_ATOL = 1e-12, 1e-14
# two float64 algorithms for one quantity (fused against materialised, distributed against one process,
# closed form against autograd).
FLOAT64_RTOL, FLOAT64_ATOL = TOLERANCES[torch.float64].value, 1e-12
# two float64 algorithms whose difference involves a derivative or an ill-conditioned kernel (fused gradients
# against autograd, kernels of extreme parameters).
FLOAT64_GRADIENT_RTOL = 1e-9
# derivatives one autograd level further (a gradient of a gradient, critic gradients through a scale).
FLOAT64_DERIVATIVE_RTOL = 1e-8
# finite differences against autograd in float64 (torch.autograd.gradcheck's eps of 1e-6).
GRADCHECK_RTOL, GRADCHECK_ATOL = 1e-6, 1e-8
# another library's float64 computation of the same quantity (torchmetrics' KID metric on the same subsets).
PEER_RTOL = 1e-9
# float32 against float64, for single values and for results summed over many pairs (KID, frames).
FLOAT32_RTOL, FLOAT32_ATOL = TOLERANCES[torch.float32].value, 1e-6
FLOAT32_SUM_RTOL = 1e-4
# the same float32 computation through a compiled and an eager path.
COMPILED_FLOAT32_RTOL, COMPILED_FLOAT32_ATOL = 1e-6, 1e-7
# estimates against the quantity they estimate, by sampling (Monte Carlo, Hutchinson, subsampling).
SAMPLING_RTOL = 0.15

LOW_PRECISION_FACTOR = 2.0


def tolerance(dtype) -> Tolerance:
    if isinstance(dtype, str):
        dtype = getattr(torch, dtype)
    if dtype not in TOLERANCES:
        raise KeyError(f"no tolerance for dtype {dtype}")
    return TOLERANCES[dtype]
