"""Fused gradients for small d: each program owns BM rows of A, visits every row of B, and keeps its rows'
gradient (BM, BD) in registers, so the gradient needs no memory beyond its output.

For the pair sum S = sum_{i,j} k(a_i, b_j) (pairs i = j left out with EXCLUDE_DIAG):
    dS/da_i = sum_j 2 k_r2(i, j) (a_i - b_j) + k_dot(i, j) b_j   (+ the |a_i| part of Energy).
On the tensor-core path the radial part is assembled as alpha_i a_i - sum_j 2 k_r2 b_j with one tl.dot per
tile; with EXPLICIT (kernels with |a - b|) the differences a_i - b_j themselves are weighted and summed, so
near pairs keep their exact direction. The gradient of b is the same kernel with A and B swapped (every
kernel here is symmetric), and for a symmetric block (B is A) dS/da is twice the owner sum.
"""
from __future__ import annotations

import triton
import triton.language as tl

from fastmmd.backends._triton.terms import kernel_terms, radial_weights
from fastmmd.backends._triton.tiles import load_rows, matmul_nn, matmul_nt, nonnegative


@triton.jit
def owner_grad_kernel(A, B, SQA, SQB, MU, P, VAL, GRAD, SCALES, n, m, d, sa, sb, sg, size_class,
                      EXCLUDE_DIAG: tl.constexpr, SAME: tl.constexpr, ACCUMULATE: tl.constexpr,
                      WANT_VALUE: tl.constexpr,
                      FAMS: tl.constexpr, NT: tl.constexpr, NEEDS_NORM: tl.constexpr,
                      NEEDS_DOT: tl.constexpr, EXPLICIT: tl.constexpr, CENTER: tl.constexpr,
                      PRECISION: tl.constexpr, BM: tl.constexpr, BN: tl.constexpr, BD: tl.constexpr):
    """GRAD[rows] (=, or += with ACCUMULATE) SCALES[0] * dS/da for the program's rows; VAL[program] = the
    program's share of S (with WANT_VALUE). A (n, d), B (m, d), GRAD (n, d) with row strides sa, sb, sg;
    d <= BD; SCALES[1]: the total weight of the Energy terms (SCALES in the compute dtype: Python floats
    would reach the kernel as float32). SAME: B is A (a symmetric block). `size_class` only keys the autotuner."""
    I = tl.program_id(0)
    grad_scale = tl.load(SCALES)
    energy_weight = tl.load(SCALES + 1)
    offs_m = I.to(tl.int64) * BM + tl.arange(0, BM)
    offs_d = tl.arange(0, BD)
    rows_ok = offs_m < n
    a = load_rows(A, MU, offs_m, n, sa, offs_d, d, CENTER)
    sq_a = tl.load(SQA + offs_m, mask=rows_ok, other=0.0)
    if NEEDS_NORM:
        norm_a = tl.sqrt(sq_a)[:, None]
    else:
        norm_a = 0.0
    acc = tl.zeros((BM, BD), dtype=sq_a.dtype)
    alpha = tl.zeros((BM,), dtype=sq_a.dtype)
    v_sum = tl.zeros((BM,), dtype=sq_a.dtype)
    for j0 in range(0, m, BN):
        offs_n = j0 + tl.arange(0, BN).to(tl.int64)
        b = load_rows(B, MU, offs_n, m, sb, offs_d, d, CENTER)
        sq_b = tl.load(SQB + offs_n, mask=offs_n < m, other=0.0)
        if EXPLICIT:
            diff = a[:, None, :] - b[None, :, :]
            r2 = tl.sum(diff * diff, axis=2)
            if NEEDS_DOT:
                dot = tl.sum(a[:, None, :] * b[None, :, :], axis=2)
            else:
                dot = tl.zeros_like(r2)
        else:
            dot = matmul_nt(a, b, tl.zeros((BM, BN), dtype=sq_a.dtype), PRECISION)
            r2 = nonnegative(sq_a[:, None] + sq_b[None, :] - 2.0 * dot)
        if NEEDS_NORM:
            norm_b = tl.sqrt(sq_b)[None, :]
        else:
            norm_b = 0.0
        val, d_r2, d_dot = kernel_terms(dot, r2, norm_a, norm_b, P, FAMS, NT)
        keep = rows_ok[:, None] & (offs_n[None, :] < m)
        if EXCLUDE_DIAG:
            keep = keep & (offs_m[:, None] != offs_n[None, :])
        radial = radial_weights(d_r2, keep, offs_m, offs_n, SAME)
        if WANT_VALUE:
            v_sum += tl.sum(tl.where(keep, val, 0.0), axis=1)
        if EXPLICIT:
            acc += tl.sum(radial[:, :, None] * diff, axis=1)
            if NEEDS_DOT:
                acc += tl.sum(tl.where(keep, d_dot, 0.0)[:, :, None] * b[None, :, :], axis=1)
        else:
            alpha += tl.sum(radial, axis=1)
            coef = -radial
            if NEEDS_DOT:
                coef += tl.where(keep, d_dot, 0.0)
            acc = matmul_nn(coef, b, acc, PRECISION)
    grad = acc
    if not EXPLICIT:
        grad += alpha[:, None] * a
    if NEEDS_NORM:
        # d/da_i of sum_j w (|a_i| + |b_j|) over the kept j: w * count_i * a_i / |a_i| (0 at a_i = 0).
        count = m - tl.where(EXCLUDE_DIAG & (offs_m < m), 1, 0)
        scale = tl.where(sq_a > 0, energy_weight * count / tl.where(sq_a > 0, tl.sqrt(sq_a), 1.0), 0.0)
        grad += scale[:, None] * a
    grad = grad * grad_scale
    out = GRAD + offs_m[:, None] * sg + offs_d[None, :]
    mask = rows_ok[:, None] & (offs_d[None, :] < d)
    if ACCUMULATE:
        grad += tl.load(out, mask=mask, other=0.0)
    tl.store(out, grad.to(GRAD.dtype.element_ty), mask=mask)
    if WANT_VALUE:
        tl.store(VAL + I, tl.sum(v_sum, axis=0))
