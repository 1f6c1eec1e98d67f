"""Gradient coefficients of one chunk of pairs, for the large-d gradient path.

For rows a_i (i < R) and b_j (j < C) of one chunk, writes
    COEF[i, j] = k_dot(i, j) - 2 k_r2(i, j)        (0 for pairs left out)
and per tile the partial sums of the radial weights 2 k_r2 over its columns (ALPHA_PART[tile column, i])
and over its rows (BETA_PART[tile row, j]), and of the kernel values (VALUE_PART[tile row, tile column]).
The host then forms dS/da = alpha a + COEF @ b and dS/db = beta b + COEF.T @ a with two GEMMs (in TF32,
COEF is stored rounded to TF32's nearest value), so the
chunk (R x C, bounded) is the only memory the gradient needs beyond its output.
"""
from __future__ import annotations

import triton
import triton.language as tl

from fastmmd.backends._triton.terms import kernel_terms, radial_weights, tile_norms
from fastmmd.backends._triton.tiles import round_to_tf32, tile_geometry, tile_geometry_tma


@triton.jit
def coef_chunk_kernel(A, B, SQA, SQB, MU, P, COEF, ALPHA_PART, BETA_PART, VALUE_PART, n, m, d, sa, sb,
                      size_class,
                      EXCLUDE_DIAG: tl.constexpr, SAME: tl.constexpr, FAMS: tl.constexpr, NT: tl.constexpr,
                      NEEDS_NORM: tl.constexpr, NEEDS_DOT: tl.constexpr, EXPLICIT: tl.constexpr,
                      CENTER: tl.constexpr, PRECISION: tl.constexpr,
                      BM: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr, TMA: tl.constexpr):
    """A (n, d), B (m, d): the chunk's rows (strides sa, sb); COEF (n, m) contiguous; ALPHA_PART
    (cdiv(m, BN), n); BETA_PART (cdiv(n, BM), m); VALUE_PART (cdiv(n, BM), cdiv(m, BN)). BM == BN.
    EXCLUDE_DIAG leaves out i = j; SAME: the chunk lies on the diagonal of a symmetric block (B is A). With
    TMA, A and B are tensor descriptors (blocks [BM, BK]) instead of pointers."""
    I = tl.program_id(0)
    J = tl.program_id(1)
    offs_m = I.to(tl.int64) * BM + tl.arange(0, BM)
    offs_n = J.to(tl.int64) * BN + tl.arange(0, BN)
    rows_ok = offs_m < n
    cols_ok = offs_n < m
    sq_a = tl.load(SQA + offs_m, mask=rows_ok, other=0.0)
    sq_b = tl.load(SQB + offs_n, mask=cols_ok, other=0.0)
    if TMA:
        dot, r2 = tile_geometry_tma(A, B, I * BM, J * BN, d, sq_a, sq_b, PRECISION, BM, BN, BK)
    else:
        dot, r2 = tile_geometry(A, B, MU, offs_m, offs_n, n, m, d, sa, sb, sq_a, sq_b,
                                EXPLICIT, NEEDS_DOT, CENTER, PRECISION, BM, BN, BK)
    norm_a, norm_b = tile_norms(sq_a, sq_b, NEEDS_NORM)
    val, d_r2, d_dot = kernel_terms(dot, r2, norm_a, norm_b, P, FAMS, NT)
    keep = rows_ok[:, None] & cols_ok[None, :]
    if EXCLUDE_DIAG:
        keep = keep & (offs_m[:, None] != offs_n[None, :])
    radial = radial_weights(d_r2, keep, offs_m, offs_n, SAME)
    coef = -radial
    if NEEDS_DOT:
        coef += tl.where(keep, d_dot, 0.0)
    if PRECISION == "tf32":  # the host's TF32 GEMMs read COEF: rounded to nearest here, not truncated there
        coef = round_to_tf32(coef)
    inside = rows_ok[:, None] & cols_ok[None, :]
    tl.store(COEF + offs_m[:, None] * m + offs_n[None, :], coef.to(COEF.dtype.element_ty), mask=inside)
    tl.store(ALPHA_PART + J.to(tl.int64) * n + offs_m, tl.sum(radial, axis=1), mask=rows_ok)
    tl.store(BETA_PART + I.to(tl.int64) * m + offs_n, tl.sum(radial, axis=0), mask=cols_ok)
    tl.store(VALUE_PART + I * tl.num_programs(1) + J, tl.sum(tl.sum(tl.where(keep, val, 0.0), axis=1), axis=0))
