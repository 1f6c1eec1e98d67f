"""The forward reduction for small d: each program keeps BM rows of A and streams a segment of B's rows
past them, BN at a time, so the loads of the next B tile overlap the kernel epilogue of this one (the shape
of a flash-attention forward). Values are accumulated elementwise and reduced once at the end.

For a symmetric block (B is A) a row block starts at its own diagonal: pairs j > i count twice, the
diagonal once (or not at all with EXCLUDE_DIAG). Each program writes one partial sum to its own slot;
the host adds the slots in float64 in a fixed order.

FOLD is the lone Gaussian term w exp(-p r2) in float32 with its constants folded into the norms: SQA and SQB
hold -p log2(e) |a|², -p log2(e) |b|² and fold_scale = 2 p log2(e), so that a pair's exponent is one add and
one fused multiply-add from the inner product, clamped at 0 (r2 >= 0), and w multiplies the block's sum on
the host: two multiplications per pair fewer than the general epilogue.
"""
from __future__ import annotations

import triton
import triton.language as tl

from fastmmd.backends._triton.terms import kernel_terms, tile_norms
from fastmmd.backends._triton.tiles import load_rows, matmul_nt, nonnegative


@triton.jit
def value_rows_kernel(A, B, SQA, SQB, MU, P, OUT, n, m, d, sa, sb, segment, fold_scale, size_class,
                      SYMMETRIC: tl.constexpr, EXCLUDE_DIAG: tl.constexpr, FAMS: tl.constexpr,
                      NT: tl.constexpr, NEEDS_NORM: tl.constexpr, NEEDS_DOT: tl.constexpr,
                      EXPLICIT: tl.constexpr, CENTER: tl.constexpr, PRECISION: tl.constexpr,
                      BM: tl.constexpr, BN: tl.constexpr, BD: tl.constexpr, FOLD: tl.constexpr,
                      TMA: tl.constexpr):
    """OUT[I * segments + S] = the weighted kernel sum of row block I against the columns of segment S.
    A (n, d), B (m, d) (strides sa, sb), d <= BD; `segment` is a multiple of BN, BM a multiple of BN.
    EXPLICIT must be False (this kernel computes r2 from inner products). `size_class` keys the autotuner.
    With TMA, A and B are tensor descriptors of blocks [BM, BD] and [BN, BD] (the copy engine zero-fills rows
    and features outside the arrays), read without address arithmetic or masks."""
    I = tl.program_id(0)
    S = tl.program_id(1)
    slot = I.to(tl.int64) * tl.num_programs(1) + S
    row0 = I.to(tl.int64) * BM
    col_begin = S.to(tl.int64) * segment
    col_end = tl.minimum(col_begin + segment, m)
    if SYMMETRIC:
        col_begin = tl.maximum(col_begin, row0)
    if col_begin >= col_end:
        tl.store(OUT + slot, 0.0)
        return
    offs_m = row0 + tl.arange(0, BM)
    offs_d = tl.arange(0, BD)
    if TMA:
        a = A.load([I * BM, 0])
    else:
        a = load_rows(A, MU, offs_m, n, sa, offs_d, d, CENTER)
    sq_a = tl.load(SQA + offs_m, mask=offs_m < n, other=0.0)
    acc = tl.zeros((BM, BN), dtype=sq_a.dtype)
    rows_full = row0 + BM <= n
    for j0 in range(col_begin, col_end, BN):
        offs_n = j0 + tl.arange(0, BN)
        if TMA:
            b = B.load([tl.cast(j0, tl.int32), 0])
        else:
            b = load_rows(B, MU, offs_n, m, sb, offs_d, d, CENTER)
        sq_b = tl.load(SQB + offs_n, mask=offs_n < m, other=0.0)
        dot = matmul_nt(a, b, tl.zeros((BM, BN), dtype=sq_a.dtype), PRECISION)
        if FOLD:
            exponent = sq_a[:, None] + sq_b[None, :] + fold_scale * dot
            val = tl.exp2(tl.where(exponent > 0.0, 0.0, exponent))  # keeps a NaN
        else:
            r2 = nonnegative(sq_a[:, None] + sq_b[None, :] - 2.0 * dot)
            norm_a, norm_b = tile_norms(sq_a, sq_b, NEEDS_NORM)
            val, _, _ = kernel_terms(dot, r2, norm_a, norm_b, P, FAMS, NT)
        clear_of_diagonal = (j0 >= row0 + BM) | (j0 + BN <= row0)
        if rows_full & (j0 + BN <= m) & clear_of_diagonal:
            if SYMMETRIC:
                acc += 2.0 * val
            else:
                acc += val
        else:
            keep = (offs_m[:, None] < n) & (offs_n[None, :] < m)
            same = offs_m[:, None] == offs_n[None, :]
            if EXCLUDE_DIAG:
                keep = keep & ~same
            if SYMMETRIC:
                weight = tl.where(offs_n[None, :] > offs_m[:, None], 2.0, tl.where(same, 1.0, 0.0))
                acc += tl.where(keep, weight * val, 0.0)
            else:
                acc += tl.where(keep, val, 0.0)
    tl.store(OUT + slot, tl.sum(tl.sum(acc, axis=1), axis=0))
