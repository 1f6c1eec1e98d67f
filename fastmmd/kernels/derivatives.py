"""The derivatives of a kernel given as its term table (csrc/INTERFACE.md), from each family's rules
(fastmmd.kernels.base.FamilyRules, given in fastmmd.kernels.families; docs/kernels.md).

For a kernel k(a, b) = Σ_t g_t(|a - b|²) + Σ_t f_t(aᵀb), the gradient in a is
    ∇_a k(a, b) = 2 k_r(a, b) (a - b) + k_d(a, b) b,   k_r = Σ_t g_t′(r²),  k_d = Σ_t f_t′(aᵀb),
and each derivative is again a term of a family the backends evaluate, so products K(a, b) @ V and all their
derivatives, of any order, are products with other kernels. The kernels of |a - b| (Laplacian, Energy) have
derivatives infinite at a = b and are not covered. The scaled MMD's trace term needs g(0), g′(0) of the
radial terms and f, f′, f″ of the dot-product terms at ‖φ‖² (`radial_at_zero`, `dot_along`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

import numpy as np
import torch

from fastmmd.kernels.base import table_rows

__all__ = ["GradientTables", "gradient_tables", "smooth_reason", "radial_at_zero", "dot_along"]


@dataclass(frozen=True)
class GradientTables:
    """radial: (R, 5) table of k_r = dk/dr²; combined: (C, 5) table of k_d - 2 k_r. Then
    ∇_a Σ_j w_j k(a, b_j) = 2 a Σ_j w_j k_r(a, b_j) + Σ_j w_j k_c(a, b_j) b_j with k_c = combined."""

    radial: np.ndarray
    combined: np.ndarray


def smooth_reason(table: np.ndarray) -> Optional[str]:
    """Why the kernel `table` has no derivative kernels (None: it has)."""
    bad = sorted({rules.family.name.lower() for rules, _ in table_rows(table) if rules.derivative is None})
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
    for rules, params in table_rows(table):
        r, d = rules.derivative(*params)
        radial += r
        dot += d
    combined = dot + [[f, -2.0 * w, p1, p2, p3] for f, w, p1, p2, p3 in radial]
    return GradientTables(np.asarray(radial, dtype=np.float64).reshape(-1, 5),
                          np.asarray(combined, dtype=np.float64).reshape(-1, 5))


def radial_at_zero(table: np.ndarray) -> Tuple[float, float]:
    """(g(0), g′(0)) of the radial terms of a table, g a function of r² = ‖a − b‖² (0, 0 without any)."""
    value = slope = 0.0
    for rules, params in table_rows(table):
        if rules.at_zero is not None:
            g0, g1 = rules.at_zero(*params)
            value, slope = value + g0, slope + g1
    return value, slope


def dot_along(table: np.ndarray, t: torch.Tensor):
    """(f(t), f′(t), f″(t)) of the dot-product terms of a table at t (B,) (zeros without any)."""
    f, f1, f2 = torch.zeros_like(t), torch.zeros_like(t), torch.zeros_like(t)
    for rules, params in table_rows(table):
        if rules.along_dot is not None:
            g, g1, g2 = rules.along_dot(*params, t)
            f, f1, f2 = f + g, f1 + g1, f2 + g2
    return f, f1, f2
