"""The kernel epilogue on a tile, and the packing of a kernel's terms for it.

A kernel is the (T, 5) table of csrc/INTERFACE.md ([family, weight, p1, p2, p3] per summand). The family
codes go into one compile-time integer (4 bits each, so the epilogue unrolls into straight-line code for
exactly those families); the numbers go into a (T, PARAMS_PER_TERM) float32 tensor read at run time, so a
new bandwidth does not recompile.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence, Tuple

import numpy as np
import torch
import triton
import triton.language as tl

from fastmmd.kernels import Family

PARAMS_PER_TERM = 8  # weight, p1, p2, p3, p1 * log2(e), padding
# The same numbers as compile-time constants of the kernels (family codes from fastmmd.kernels.Family).
_STRIDE = tl.constexpr(PARAMS_PER_TERM)
_GAUSSIAN = tl.constexpr(int(Family.GAUSSIAN))
_RATIONAL_QUADRATIC = tl.constexpr(int(Family.RATIONAL_QUADRATIC))
_LAPLACIAN = tl.constexpr(int(Family.LAPLACIAN))
_INVERSE_MULTIQUADRIC = tl.constexpr(int(Family.INVERSE_MULTIQUADRIC))
_ENERGY = tl.constexpr(int(Family.ENERGY))
_LINEAR = tl.constexpr(int(Family.LINEAR))
_POLYNOMIAL = tl.constexpr(int(Family.POLYNOMIAL))
_RATIONAL_QUADRATIC_LOG = tl.constexpr(int(Family.RATIONAL_QUADRATIC_LOG))
FAMILY_BITS = 4  # per family code (0..15) in the compile-time integer FAMS (a Python int: any width)
MAX_TERMS = 10
LOG2_E = 1.0 / math.log(2.0)

SQRT_FAMILIES = frozenset({Family.LAPLACIAN, Family.ENERGY})
DOT_FAMILIES = frozenset({Family.LINEAR, Family.POLYNOMIAL})


@dataclass(frozen=True)
class PackedTerms:
    """A kernel's terms as the Triton kernels take them.

    families: compile-time code, family of term t in bits 3t..3t+2; count: number of terms;
    params: (count, PARAMS_PER_TERM) in the compute dtype, on the inputs' device; energy_weight: total weight of the
    Energy terms (their |a| + |b| parts); needs_sqrt / needs_dot / needs_norm: what the epilogue reads;
    lone_gaussian: (w, p log2(e)) when the kernel is the one term w exp(-p r2), else None.
    """

    families: int
    count: int
    params: torch.Tensor
    energy_weight: float
    needs_sqrt: bool
    needs_dot: bool
    needs_norm: bool
    shift_invariant_mmd: bool
    lone_gaussian: Optional[Tuple[float, float]] = None


def pack_terms(
    terms: Sequence[float], device: torch.device, dtype: torch.dtype, shift_invariant_families
) -> PackedTerms:
    """Packs a flattened (T, 5) term table (see module docstring) for inputs on `device` computed in `dtype`
    (float32, or float64 for float64 inputs)."""
    table = np.asarray(terms, dtype=np.float64).reshape(-1, 5)
    if len(table) > MAX_TERMS:
        raise ValueError(f"the triton backend evaluates at most {MAX_TERMS} kernel terms; got {len(table)}")
    families = 0
    params = np.zeros((len(table), PARAMS_PER_TERM), dtype=np.float64)
    for t, (family, weight, p1, p2, p3) in enumerate(table):
        families |= int(family) << (FAMILY_BITS * t)
        params[t, :5] = (weight, p1, p2, p3, p1 * LOG2_E)
    codes = {Family(int(f)) for f in table[:, 0]}
    return PackedTerms(
        families=families,
        count=len(table),
        params=torch.tensor(params, dtype=dtype, device=device),
        energy_weight=float(table[table[:, 0] == int(Family.ENERGY), 1].sum()),
        needs_sqrt=bool(codes & SQRT_FAMILIES),
        needs_dot=bool(codes & DOT_FAMILIES),
        needs_norm=Family.ENERGY in codes,
        shift_invariant_mmd=codes <= set(shift_invariant_families),
        lone_gaussian=((float(table[0, 1]), float(params[0, 4]))
                       if len(table) == 1 and int(table[0, 0]) == int(Family.GAUSSIAN) else None),
    )


@triton.jit
def _exp_neg(x, p, p_log2):
    """exp(-p x); in float32 as exp2(-p log2(e) x), the instruction the hardware has."""
    if x.dtype == tl.float64:
        return tl.exp(-p * x)
    else:
        return tl.exp2(-p_log2 * x)


@triton.jit
def _pow_neg(base, p):
    """base^(-p) for base > 0."""
    if base.dtype == tl.float64:
        return tl.exp(-p * tl.log(base))
    else:
        return tl.exp2(-p * tl.log2(base))


@triton.jit
def _log1p(x):
    """log(1 + x) for x >= 0 without log's absolute error near 1: below 1/16 the series to x⁸ (truncation
    below 3e-11 relative), above it log(1 + x), whose absolute error is then small against the result."""
    t = tl.minimum(x, 0.0625)  # the series branch of a large x is not used: keep it from overflowing
    series = t * (1.0 - t * (0.5 - t * (1.0 / 3.0 - t * (0.25 - t * (0.2 - t * (1.0 / 6.0 - t * (
        1.0 / 7.0 - t * 0.125)))))))
    return tl.where(x < 0.0625, series, tl.log(1.0 + x))


@triton.jit
def kernel_terms(dot, r2, norm_a, norm_b, P, FAMS: tl.constexpr, NT: tl.constexpr):
    """Kernel values and derivatives on a tile.

    dot (BM, BN): a_i . b_j; r2 (BM, BN): |a_i - b_j|² >= 0; norm_a (BM, 1), norm_b (1, BN): |a_i|, |b_j|
    (only read by Energy); P: the (NT, PARAMS_PER_TERM) parameters in r2's dtype. Returns (k, dk/dr2,
    dk/ddot), each (BM, BN) in r2's dtype. Derivatives the caller does not use are removed by the compiler.
    """
    val = tl.zeros_like(r2)
    d_r2 = tl.zeros_like(r2)
    d_dot = tl.zeros_like(r2)
    positive = r2 > 0
    dist = tl.sqrt(r2)
    half_inv_dist = tl.where(positive, 0.5 / tl.where(positive, dist, 1.0), 0.0)
    for t in tl.static_range(NT):
        fam = (FAMS >> (4 * t)) & 15  # FAMILY_BITS; a compile-time value: each branch below is kept or dropped
        w = tl.load(P + _STRIDE * t)
        p1 = tl.load(P + _STRIDE * t + 1)
        p2 = tl.load(P + _STRIDE * t + 2)
        if fam == _GAUSSIAN:  # Gaussian exp(-p1 r2), as exp2 with p1 log2(e)
            e = w * _exp_neg(r2, p1, tl.load(P + _STRIDE * t + 4))
            val += e
            d_r2 -= p1 * e
        elif fam == _RATIONAL_QUADRATIC:  # (1 + p1 r2)^-p2 as exp(-p2 log1p(p1 r2)): a large α keeps its digits
            base = 1.0 + p1 * r2
            e = w * tl.exp(-p2 * _log1p(p1 * r2))
            val += e
            d_r2 -= p2 * p1 * e / base
        elif fam == _LAPLACIAN:  # Laplacian exp(-p1 |a - b|)
            e = w * _exp_neg(dist, p1, tl.load(P + _STRIDE * t + 4))
            val += e
            d_r2 -= p1 * e * half_inv_dist
        elif fam == _INVERSE_MULTIQUADRIC:  # inverse multiquadric (p1 + r2)^-p2
            base = p1 + r2
            e = w * _pow_neg(base, p2)
            val += e
            d_r2 -= p2 * e / base
        elif fam == _ENERGY:  # Energy |a| + |b| - |a - b|
            val += w * (norm_a + norm_b - dist)
            d_r2 -= w * half_inv_dist
        elif fam == _LINEAR:  # linear
            val += w * dot
            d_dot += w
        elif fam == _POLYNOMIAL:  # polynomial (p1 dot + p2)^p3, integer degree >= 1
            degree = tl.load(P + _STRIDE * t + 3).to(tl.int32)
            base = p1 * dot + p2
            lower = tl.full(dot.shape, 1.0, dot.dtype)  # base^(degree - 1)
            for _ in range(1, degree):
                lower = lower * base
            val += w * lower * base
            d_dot += w * degree.to(dot.dtype) * p1 * lower
        elif fam == _RATIONAL_QUADRATIC_LOG:  # log(1 + p1 r2) (1 + p1 r2)^-p2: in a rational quadratic's d/dα
            log_base = _log1p(p1 * r2)
            e = w * tl.exp(-p2 * log_base)
            val += log_base * e
            d_r2 += p1 * e * (1.0 - p2 * log_base) / (1.0 + p1 * r2)
        else:  # r2 exp(-p1 r2): in a Gaussian's derivative in its bandwidth
            e = w * _exp_neg(r2, p1, tl.load(P + _STRIDE * t + 4))
            val += r2 * e
            d_r2 += e * (1.0 - p1 * r2)
    return val, d_r2, d_dot


@triton.jit
def tile_norms(sq_a, sq_b, NEEDS_NORM: tl.constexpr):
    """(|a_i| as (BM, 1), |b_j| as (1, BN)) from the squared norms, or (0, 0) when no term reads them."""
    if NEEDS_NORM:
        return tl.sqrt(sq_a)[:, None], tl.sqrt(sq_b)[None, :]
    else:
        return 0.0, 0.0


@triton.jit
def radial_weights(d_r2, keep, offs_m, offs_n, SAME: tl.constexpr):
    """2 dk/dr2 on the kept pairs, 0 elsewhere. With SAME (a tile of a symmetric block, B is A) the pairs
    (i, i) get 0 too: a - b = 0 there, whatever rounding left in their r2."""
    if SAME:
        keep = keep & (offs_m[:, None] != offs_n[None, :])
    return tl.where(keep, 2.0 * d_r2, 0.0)
