"""The fused kernel-matrix product K(a, b) @ v without K: each program owns BM rows of a and PB columns of
v, streams the rows of b past them BN at a time, evaluates that tile of K in registers and multiplies it
into its (BM, PB) accumulator with one tl.dot. Optionally it also sums k² along its rows.

Every program writes only its own rows and columns, and each sum runs over b's tiles in a fixed order:
the results are the same bits on every run (no atomics).
"""
from __future__ import annotations

import triton
import triton.language as tl

from fastmmd.backends._triton.terms import kernel_terms, tile_norms
from fastmmd.backends._triton.tiles import matmul_nn, tile_geometry


@triton.jit
def matvec_kernel(A, B, V, SQA, SQB, MU, P, OUT, SQ, n, m, p, d, sa, sb, sv, so, size_class,
                  EXCLUDE_DIAG: tl.constexpr, WANT_SQ: tl.constexpr, FAMS: tl.constexpr, NT: tl.constexpr,
                  NEEDS_NORM: tl.constexpr, NEEDS_DOT: tl.constexpr, EXPLICIT: tl.constexpr,
                  CENTER: tl.constexpr, PRECISION: tl.constexpr,
                  BM: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr, PB: tl.constexpr):
    """OUT[i, c] = sum_j k(a_i, b_j) V[j, c] and, with WANT_SQ, SQ[i] = sum_j k(a_i, b_j)² (written by the
    programs of the first column block). A (n, d), B (m, d), V (m, p), OUT (n, p) with row strides sa, sb,
    sv, so (unit column strides); SQA (n,), SQB (m,) squared norms; MU (d,) pooled mean (read with CENTER);
    P the packed parameters. EXCLUDE_DIAG (n == m) leaves out j == i. Sums run in SQA's dtype (float32, or
    float64 for float64 inputs). `size_class` only keys the autotuner."""
    I = tl.program_id(0)
    C = tl.program_id(1)
    offs_m = I.to(tl.int64) * BM + tl.arange(0, BM)
    offs_c = C * PB + tl.arange(0, PB)
    rows_ok = offs_m < n
    columns_ok = offs_c < p
    sq_a = tl.load(SQA + offs_m, mask=rows_ok, other=0.0)
    acc = tl.zeros((BM, PB), dtype=sq_a.dtype)
    acc_sq = tl.zeros((BM,), dtype=sq_a.dtype)
    for j0 in range(0, m, BN):
        offs_n = j0 + tl.arange(0, BN).to(tl.int64)
        cols_ok = offs_n < m
        sq_b = tl.load(SQB + offs_n, mask=cols_ok, other=0.0)
        dot, r2 = tile_geometry(A, B, MU, offs_m, offs_n, n, m, d, sa, sb, sq_a, sq_b,
                                EXPLICIT, NEEDS_DOT, CENTER, PRECISION, BM, BN, BK)
        norm_a, norm_b = tile_norms(sq_a, sq_b, NEEDS_NORM)
        val, _, _ = kernel_terms(dot, r2, norm_a, norm_b, P, FAMS, NT)
        keep = rows_ok[:, None] & cols_ok[None, :]
        if EXCLUDE_DIAG:
            keep = keep & (offs_m[:, None] != offs_n[None, :])
        k = tl.where(keep, val, 0.0)
        v = tl.load(V + offs_n[:, None] * sv + offs_c[None, :], mask=cols_ok[:, None] & columns_ok[None, :],
                    other=0.0)
        acc = matmul_nn(k, v, acc, PRECISION)
        if WANT_SQ:
            acc_sq += tl.sum(k * k, axis=1)
    tl.store(OUT + offs_m[:, None] * so + offs_c[None, :], acc.to(OUT.dtype.element_ty),
             mask=rows_ok[:, None] & columns_ok[None, :])
    if WANT_SQ:
        tl.store(SQ + offs_m, acc_sq.to(SQ.dtype.element_ty), mask=rows_ok & (C == 0))
