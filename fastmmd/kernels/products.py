"""The square k² of a kernel given as its term table, as another table of the same families, where the
products of its terms stay in their families (docs/learned_kernels.md).

The variance of MMD²_u depends on the sums of squared kernel values Σ k(a_i, b_j)²; their gradient is the
gradient of a pair sum of k², so a fused backend computes it as one more pass when k² is a kernel it knows:
    Gaussian × Gaussian:      e^(-p r²) e^(-q r²) = e^(-(p + q) r²), and times r² e^(-q r²) (a bandwidth's
        derivative): r² e^(-(p + q) r²)
    Laplacian × Laplacian:    e^(-p r) e^(-q r) = e^(-(p + q) r)
    rational quadratic (same p1): (1 + p1 r²)^(-α) (1 + p1 r²)^(-β) = (1 + p1 r²)^(-(α + β)), and times its
        log form (the derivative in α): (1 + p1 r²)^(-α) log(1 + p1 r²)(1 + p1 r²)^(-β) = log(…)(1 + p1 r²)^(-(α + β))
    inverse multiquadric (same c²): (c² + r²)^(-α) (c² + r²)^(-β) = (c² + r²)^(-(α + β))
    polynomial (same γ, c):   (γt + c)^p (γt + c)^q = (γt + c)^(p + q), t = aᵀb; linear: t·t = (1·t + 0)²
Other products (a Gaussian times a rational quadratic, rational quadratics of different α's scales, the
energy kernel's) are not terms of any family: `square_reason` says which, and `squared_table` refuses them.
"""
from __future__ import annotations

from typing import List, Optional

import numpy as np

from fastmmd.kernels.base import MAX_COMPILED_DEGREE, Family

__all__ = ["squared_table", "square_reason", "product_table", "product_reason"]

_EXPONENTIAL = (Family.GAUSSIAN, Family.LAPLACIAN)  # p1 adds
_POWER = (Family.RATIONAL_QUADRATIC, Family.INVERSE_MULTIQUADRIC)  # same p1, p2 adds
_RQ_AND_LOG = {Family.RATIONAL_QUADRATIC, Family.RATIONAL_QUADRATIC_LOG}
_GAUSSIAN_AND_R2 = {Family.GAUSSIAN, Family.GAUSSIAN_R2}


def _as_polynomial(row) -> list:
    """A linear or polynomial row as [POLYNOMIAL, w, γ, c, degree]."""
    family, w, p1, p2, p3 = row
    if int(family) == Family.LINEAR:
        return [float(Family.POLYNOMIAL), w, 1.0, 0.0, 1.0]
    return [float(family), w, p1, p2, p3]


def _product(a, b) -> Optional[list]:
    """The row of the product of rows a and b, or None when it is no term of a family."""
    fa, fb = Family(int(a[0])), Family(int(b[0]))
    weight = a[1] * b[1]
    if fa == fb and fa in _EXPONENTIAL:
        return [float(fa), weight, a[2] + b[2], 0.0, 0.0]
    if fa == fb and fa in _POWER and a[2] == b[2]:
        return [float(fa), weight, a[2], a[3] + b[3], 0.0]
    if {fa, fb} == _GAUSSIAN_AND_R2:  # e^(-p r²) r² e^(-q r²) = r² e^(-(p + q) r²)
        return [float(Family.GAUSSIAN_R2), weight, a[2] + b[2], 0.0, 0.0]
    if {fa, fb} == _RQ_AND_LOG and a[2] == b[2]:  # log(1 + u)(1 + u)^-α (1 + u)^-β = log(1 + u)(1 + u)^-(α + β)
        return [float(Family.RATIONAL_QUADRATIC_LOG), weight, a[2], a[3] + b[3], 0.0]
    dot_families = (Family.LINEAR, Family.POLYNOMIAL)
    if fa in dot_families and fb in dot_families:
        pa, pb = _as_polynomial(a), _as_polynomial(b)
        if pa[2] == pb[2] and pa[3] == pb[3] and pa[4] + pb[4] <= MAX_COMPILED_DEGREE:
            return [float(Family.POLYNOMIAL), weight, pa[2], pa[3], pa[4] + pb[4]]
    return None


def _describe(row) -> str:
    return Family(int(row[0])).name.lower()


def product_reason(table_a: np.ndarray, table_b: np.ndarray) -> Optional[str]:
    """Why the product of the kernels of two (T, 5) tables is not a table of the families (None: it is)."""
    rows_a = np.asarray(table_a, dtype=np.float64).reshape(-1, 5)
    rows_b = np.asarray(table_b, dtype=np.float64).reshape(-1, 5)
    for a in rows_a:
        for b in rows_b:
            if _product(a, b) is None:
                return (f"a product of kernel terms is not a kernel term ({_describe(a)} × {_describe(b)} with "
                        f"parameters {tuple(a[2:])} and {tuple(b[2:])}); the variance's gradient needs the "
                        "square of the kernel as a sum of terms (docs/learned_kernels.md lists the kernels "
                        "that have one)")
    return None


def square_reason(table: np.ndarray) -> Optional[str]:
    """Why k² of the (T, 5) table is not a table of the families (None: it is)."""
    return product_reason(table, table)


def product_table(table_a: np.ndarray, table_b: np.ndarray) -> np.ndarray:
    """The table of k_a · k_b: the product of every row of one with every row of the other; ValueError when
    some product is not a term of a family (`product_reason`)."""
    reason = product_reason(table_a, table_b)
    if reason is not None:
        raise ValueError(reason)
    rows_a = np.asarray(table_a, dtype=np.float64).reshape(-1, 5)
    rows_b = np.asarray(table_b, dtype=np.float64).reshape(-1, 5)
    out: List[list] = [_product(a, b) for a in rows_a for b in rows_b]
    return np.asarray(out, dtype=np.float64).reshape(-1, 5)


def squared_table(table: np.ndarray) -> np.ndarray:
    """The table of k² for the table of k, each unordered product of two rows once (twice its weight for
    two different rows); ValueError when some product is not a term of a family (`square_reason`)."""
    reason = square_reason(table)
    if reason is not None:
        raise ValueError(reason)
    rows = np.asarray(table, dtype=np.float64).reshape(-1, 5)
    out: List[list] = []
    for i in range(rows.shape[0]):
        for j in range(i, rows.shape[0]):
            row = _product(rows[i], rows[j])
            row[1] *= 1.0 if i == j else 2.0
            out.append(row)
    return np.asarray(out, dtype=np.float64).reshape(-1, 5)
