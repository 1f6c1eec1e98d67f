"""Fused gradients for small d: each program owns BM rows of A, visits every row of B, and keeps its rows'
gradient (BM, BD) in registers, so the gradient needs no memory beyond its output.

For the pair sum S = sum_{i,j} k(a_i, b_j) (pairs i = j left out with EXCLUDE_DIAG):
    dS/da_i = sum_j 2 k_r2(i, j) (a_i - b_j) + k_dot(i, j) b_j   (+ the |a_i| part of Energy).
On the tensor-core path the radial part is assembled as alpha_i a_i - sum_j 2 k_r2 b_j with one tl.dot per
tile; with EXPLICIT (kernels with |a - b|) the differences a_i - b_j themselves are weighted and summed, so
near pairs keep their exact direction. The gradient of b is the same kernel with A and B swapped (every
kernel here is symmetric), and for a symmetric block (B is A) dS/da is twice the owner sum.

With products on tensor cores the tiles that need masks (the diagonal window when (i, i) is special, the
last partial tile of B, every tile of a partial row block) run in loops of their own beside the interior
loops, which compute every pair unmasked (as value_rows_kernel does).
"""
from __future__ import annotations

import triton
import triton.language as tl

from fastmmd.backends._triton.terms import kernel_terms, radial_weights
from fastmmd.backends._triton.tiles import load_rows, matmul_nn, matmul_nt, nonnegative


@triton.jit
def owner_tile(acc, alpha, v_sum, a, sq_a, norm_a, rows_ok, offs_m, B, SQB, MU, P, j0, m, sb, offs_d, d,
               MASKED: tl.constexpr, EXCLUDE_DIAG: tl.constexpr, SAME: tl.constexpr, WANT_VALUE: tl.constexpr,
               FAMS: tl.constexpr, NT: tl.constexpr, NEEDS_NORM: tl.constexpr, NEEDS_DOT: tl.constexpr,
               EXPLICIT: tl.constexpr, CENTER: tl.constexpr, PRECISION: tl.constexpr, BN: tl.constexpr):
    """(acc, alpha, v_sum) after the tile of B's rows j0 .. j0 + BN: the gradient's product and radial row
    factors (BM, BD), (BM,), and the rows' value sums (BM,). MASKED: the kept pairs only (inside both arrays,
    not (i, i) with EXCLUDE_DIAG, radial weight 0 on (i, i) with SAME); without it every pair counts."""
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
        dot = matmul_nt(a, b, tl.zeros((a.shape[0], BN), dtype=sq_a.dtype), PRECISION)
        r2 = nonnegative(sq_a[:, None] + sq_b[None, :] - 2.0 * dot)
    if NEEDS_NORM:
        norm_b = tl.sqrt(sq_b)[None, :]
    else:
        norm_b = 0.0
    val, d_r2, d_dot = kernel_terms(dot, r2, norm_a, norm_b, P, FAMS, NT)
    if MASKED:
        keep = rows_ok[:, None] & (offs_n[None, :] < m)
        if EXCLUDE_DIAG:
            keep = keep & (offs_m[:, None] != offs_n[None, :])
        radial = radial_weights(d_r2, keep, offs_m, offs_n, SAME)
        val = tl.where(keep, val, 0.0)
        if NEEDS_DOT:
            d_dot = tl.where(keep, d_dot, 0.0)
    else:
        radial = 2.0 * d_r2
    if WANT_VALUE:
        v_sum += tl.sum(val, axis=1)
    if EXPLICIT:
        acc += tl.sum(radial[:, :, None] * diff, axis=1)
        if NEEDS_DOT:
            acc += tl.sum(d_dot[:, :, None] * b[None, :, :], axis=1)
    else:
        alpha += tl.sum(radial, axis=1)
        coef = -radial
        if NEEDS_DOT:
            coef += d_dot
        acc = matmul_nn(coef, b, acc, PRECISION)
    return acc, alpha, v_sum


@triton.jit
def owner_tiles(acc, alpha, v_sum, a, sq_a, norm_a, rows_ok, offs_m, B, SQB, MU, P, begin, end, m, sb, offs_d,
                d, MASKED: tl.constexpr, EXCLUDE_DIAG: tl.constexpr, SAME: tl.constexpr,
                WANT_VALUE: tl.constexpr, FAMS: tl.constexpr, NT: tl.constexpr, NEEDS_NORM: tl.constexpr,
                NEEDS_DOT: tl.constexpr, EXPLICIT: tl.constexpr, CENTER: tl.constexpr, PRECISION: tl.constexpr,
                BN: tl.constexpr):
    """owner_tile over the tiles of B starting at begin, begin + BN, ... < end."""
    for j0 in range(begin, end, BN):
        acc, alpha, v_sum = owner_tile(acc, alpha, v_sum, a, sq_a, norm_a, rows_ok, offs_m, B, SQB, MU, P, j0,
                                       m, sb, offs_d, d, MASKED, EXCLUDE_DIAG, SAME, WANT_VALUE, FAMS, NT,
                                       NEEDS_NORM, NEEDS_DOT, EXPLICIT, CENTER, PRECISION, BN)
    return acc, alpha, v_sum


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
    row0 = I.to(tl.int64) * BM
    offs_m = row0 + tl.arange(0, BM)
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
    if EXPLICIT or PRECISION == "ieee":
        # Products on the CUDA cores, or explicit differences: bound by the multiply-adds; every tile masked.
        acc, alpha, v_sum = owner_tiles(acc, alpha, v_sum, a, sq_a, norm_a, rows_ok, offs_m, B, SQB, MU, P, 0,
                                        m, m, sb, offs_d, d, True, EXCLUDE_DIAG, SAME, WANT_VALUE, FAMS, NT,
                                        NEEDS_NORM, NEEDS_DOT, EXPLICIT, CENTER, PRECISION, BN)
    else:
        # As in value_rows_kernel: interior tiles (full, in a full row block, clear of the diagonal window
        # when (i, i) is special) without masks, the window and the last partial tile of B with them.
        full_end = m - m % BN
        if row0 + BM > n:
            full_end = 0
        if SAME or EXCLUDE_DIAG:  # the tiles of B holding columns row0 .. row0 + BM (BN may exceed BM)
            window_begin, window_end = row0 - row0 % BN, tl.cdiv(row0 + BM, BN) * BN
        else:
            window_begin, window_end = m, m
        first_end = tl.maximum(0, tl.minimum(window_begin, full_end))
        second_begin = tl.minimum(tl.maximum(window_end, first_end), m)
        second_end = tl.maximum(second_begin, full_end)
        acc, alpha, v_sum = owner_tiles(acc, alpha, v_sum, a, sq_a, norm_a, rows_ok, offs_m, B, SQB, MU, P, 0,
                                        first_end, m, sb, offs_d, d, False, EXCLUDE_DIAG, SAME, WANT_VALUE, FAMS,
                                        NT, NEEDS_NORM, NEEDS_DOT, EXPLICIT, CENTER, PRECISION, BN)
        acc, alpha, v_sum = owner_tiles(acc, alpha, v_sum, a, sq_a, norm_a, rows_ok, offs_m, B, SQB, MU, P,
                                        first_end, second_begin, m, sb, offs_d, d, True, EXCLUDE_DIAG, SAME,
                                        WANT_VALUE, FAMS, NT, NEEDS_NORM, NEEDS_DOT, EXPLICIT, CENTER, PRECISION,
                                        BN)
        if SAME or EXCLUDE_DIAG:
            acc, alpha, v_sum = owner_tiles(acc, alpha, v_sum, a, sq_a, norm_a, rows_ok, offs_m, B, SQB, MU, P,
                                            second_begin, second_end, m, sb, offs_d, d, False, EXCLUDE_DIAG,
                                            SAME, WANT_VALUE, FAMS, NT, NEEDS_NORM, NEEDS_DOT, EXPLICIT, CENTER,
                                            PRECISION, BN)
            acc, alpha, v_sum = owner_tiles(acc, alpha, v_sum, a, sq_a, norm_a, rows_ok, offs_m, B, SQB, MU, P,
                                            second_end, m, m, sb, offs_d, d, True, EXCLUDE_DIAG, SAME,
                                            WANT_VALUE, FAMS, NT, NEEDS_NORM, NEEDS_DOT, EXPLICIT, CENTER,
                                            PRECISION, BN)
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
