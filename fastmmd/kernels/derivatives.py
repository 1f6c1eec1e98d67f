"""Kernels whose values are the derivatives of another kernel, as term tables (csrc/INTERFACE.md).

For a kernel k(a, b) = Σ_t g_t(|a - b|²) + Σ_t f_t(aᵀb), the gradient in a is
    ∇_a k(a, b) = 2 k_r(a, b) (a - b) + k_d(a, b) b,   k_r = Σ_t g_t′(r²),  k_d = Σ_t f_t′(aᵀb),
and each derivative is again a term of a family the backends evaluate:
    Gaussian w·exp(-p1 r²)             -> Gaussian with weight -w·p1
    rational quadratic w·(1 + p1 r²)^-p2 -> rational quadratic with weight -w·p1·p2, exponent p2 + 1
    inverse multiquadric w·(p1 + r²)^-p2 -> inverse multiquadric with weight -w·p2, exponent p2 + 1
    linear w·aᵀb                        -> the constant w, written (0·aᵀb + 1)^1
    polynomial w·(p1 aᵀb + p2)^q        -> polynomial of degree q - 1 with weight w·q·p1 (constant if q = 1)
So products K(a, b) @ V and all their derivatives, of any order, are products with other kernels. The
kernels with |a - b| (Laplacian, Energy) have derivatives infinite at a = b and are not covered.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fastmmd.kernels import Family

NOT_SMOOTH = frozenset({Family.LAPLACIAN, Family.ENERGY})


@dataclass(frozen=True)
class GradientTables:
    """radial: (R, 5) table of k_r = dk/dr²; combined: (C, 5) table of k_d - 2 k_r. Then
    ∇_a Σ_j w_j k(a, b_j) = 2 a Σ_j w_j k_r(a, b_j) + Σ_j w_j k_c(a, b_j) b_j with k_c = combined."""

    radial: np.ndarray
    combined: np.ndarray


def _row(family: Family, weight: float, p1: float = 0.0, p2: float = 0.0, p3: float = 0.0) -> list:
    return [float(family), weight, p1, p2, p3]


def _constant(weight: float) -> list:
    return _row(Family.POLYNOMIAL, weight, 0.0, 1.0, 1.0)


def smooth_reason(table: np.ndarray) -> str | None:
    """Why the kernel `table` has no derivative kernels (None: it has)."""
    bad = sorted({Family(int(f)).name.lower() for f in table[:, 0] if int(f) in NOT_SMOOTH})
    if bad:
        return (f"derivatives in the points need a kernel that is smooth at a = b; {', '.join(bad)} is not "
                "(its gradient is infinite there)")
    return None


def gradient_tables(table: np.ndarray) -> GradientTables:
    """The derivative kernels of a (T, 5) table; ValueError for Laplacian and Energy terms."""
    reason = smooth_reason(table)
    if reason is not None:
        raise ValueError(reason)
    radial, dot = [], []
    for family, w, p1, p2, p3 in np.asarray(table, dtype=np.float64).reshape(-1, 5):
        family = Family(int(family))
        if family == Family.GAUSSIAN:
            radial.append(_row(family, -w * p1, p1))
        elif family == Family.RATIONAL_QUADRATIC:
            radial.append(_row(family, -w * p1 * p2, p1, p2 + 1.0))
        elif family == Family.INVERSE_MULTIQUADRIC:
            radial.append(_row(family, -w * p2, p1, p2 + 1.0))
        elif family == Family.LINEAR:
            dot.append(_constant(w))
        elif family == Family.POLYNOMIAL:
            degree = int(p3)
            if degree == 1:
                dot.append(_constant(w * p1))
            else:
                dot.append(_row(family, w * degree * p1, p1, p2, float(degree - 1)))
    combined = dot + [[f, -2.0 * w, p1, p2, p3] for f, w, p1, p2, p3 in radial]
    return GradientTables(np.asarray(radial, dtype=np.float64).reshape(-1, 5),
                          np.asarray(combined, dtype=np.float64).reshape(-1, 5))
