"""Tolerances of the correctness tests, one table per dtype.

Errors are relative to the size of the quantities that are summed, never to the result itself
(an MMD² near 0 is the difference of three terms of order 1):
- value:    |mmd2 - mmd2_ref| <= value * (|T_xx| + |T_yy| + 2 |T_xy|)
- gradient: ‖g - g_ref‖_∞ <= grad * (‖∇T_xx‖_∞ + ‖∇T_yy‖_∞ + 2 ‖∇T_xy‖_∞)   (for g = dMMD²/dx and dMMD²/dy)
with T the three normalised terms of the estimator, computed in float64 by tests/brute_force.py.
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


def tolerance(dtype) -> Tolerance:
    if isinstance(dtype, str):
        dtype = getattr(torch, dtype)
    if dtype not in TOLERANCES:
        raise KeyError(f"no tolerance for dtype {dtype}")
    return TOLERANCES[dtype]
