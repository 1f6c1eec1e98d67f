"""The forward reduction for small d: each program keeps BM rows of A and streams a segment of B's rows
past them, BN at a time, so the loads of the next B tile overlap the kernel epilogue of this one (the shape
of a flash-attention forward). Values are accumulated elementwise and reduced once at the end.

For a symmetric block (B is A) a row block starts at its own diagonal: pairs j > i count twice, the
diagonal once (or not at all with EXCLUDE_DIAG). Each program writes one partial sum to its own slot;
the host adds the slots in float64 in a fixed order.

The tiles that need masks (those crossing the diagonal when it counts apart, the last partial tile of B,
every tile of a partial row block) run in loops of their own beside the interior loops, whose body is the
pair values and one add: no mask, no branch (with products on tensor cores; IEEE products run one loop that
branches per tile). In a symmetric block the interior pairs count twice; the masked
loops add half weights instead (1 off the diagonal, 1/2 on it) and the program's sum is doubled once (exact
in binary).

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
def streamed_rows(B, MU, SQB, j0, m, sb, offs_d, d, CENTER: tl.constexpr, BN: tl.constexpr, TMA: tl.constexpr):
    """Rows j0 .. j0 + BN of B (BN, BD), zero past m or d, and their norms (BN,)."""
    offs_n = j0 + tl.arange(0, BN)
    if TMA:
        b = B.load([tl.cast(j0, tl.int32), 0])
    else:
        b = load_rows(B, MU, offs_n, m, sb, offs_d, d, CENTER)
    sq_b = tl.load(SQB + offs_n, mask=offs_n < m, other=0.0)
    return b, sq_b


@triton.jit
def pair_values(a, b, sq_a, sq_b, P, fold_scale, FAMS: tl.constexpr, NT: tl.constexpr,
                NEEDS_NORM: tl.constexpr, PRECISION: tl.constexpr, FOLD: tl.constexpr):
    """The kernel's weighted sum of terms for the (BM, BN) pairs of rows a and b (without w under FOLD)."""
    dot = matmul_nt(a, b, tl.zeros((a.shape[0], b.shape[0]), dtype=sq_a.dtype), PRECISION)
    if FOLD:
        exponent = sq_a[:, None] + sq_b[None, :] + fold_scale * dot
        val = tl.exp2(tl.where(exponent > 0.0, 0.0, exponent))  # keeps a NaN
    else:
        r2 = nonnegative(sq_a[:, None] + sq_b[None, :] - 2.0 * dot)
        norm_a, norm_b = tile_norms(sq_a, sq_b, NEEDS_NORM)
        val, _, _ = kernel_terms(dot, r2, norm_a, norm_b, P, FAMS, NT)
    return val


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
    # Columns [col_begin, col_end) in order: interior tiles, the masked tiles of the diagonal window
    # [row0, row0 + BM) (when the diagonal counts apart), interior tiles, the masked tail. Interior tiles are
    # full and in a full row block; tile starts are multiples of BN (segment, row0 and BM are), so the last
    # full tile of B ends at m - m % BN.
    full_end = tl.minimum(col_end, m - m % BN)
    if row0 + BM > n:
        full_end = col_begin
    if SYMMETRIC or EXCLUDE_DIAG:
        window_begin, window_end = row0, row0 + BM
    else:
        window_begin, window_end = col_end, col_end
    first_end = tl.maximum(col_begin, tl.minimum(window_begin, full_end))
    second_begin = tl.minimum(tl.maximum(window_end, first_end), col_end)
    second_end = tl.maximum(second_begin, full_end)
    if PRECISION == "ieee":
        # Products on the CUDA cores: the loop is bound by its multiply-adds, not by the epilogue, and more
        # loops would only add registers (and spills); one loop branches to the masks per tile instead.
        acc = branching_tiles(acc, a, sq_a, B, MU, SQB, P, col_begin, col_end, first_end, second_begin,
                              second_end, offs_m, n, m, sb, offs_d, d, fold_scale, SYMMETRIC, EXCLUDE_DIAG, FAMS,
                              NT, NEEDS_NORM, CENTER, PRECISION, FOLD, TMA, BN)
    else:
        if not SYMMETRIC:  # a symmetric row block starts at its diagonal
            acc = interior_tiles(acc, a, sq_a, B, MU, SQB, P, col_begin, first_end, m, sb, offs_d, d,
                                 fold_scale, FAMS, NT, NEEDS_NORM, CENTER, PRECISION, FOLD, TMA, BN)
        acc = masked_tiles(acc, a, sq_a, B, MU, SQB, P, first_end, second_begin, offs_m, n, m, sb, offs_d, d,
                           fold_scale, SYMMETRIC, EXCLUDE_DIAG, FAMS, NT, NEEDS_NORM, CENTER, PRECISION, FOLD,
                           TMA, BN)
        if SYMMETRIC or EXCLUDE_DIAG:
            acc = interior_tiles(acc, a, sq_a, B, MU, SQB, P, second_begin, second_end, m, sb, offs_d, d,
                                 fold_scale, FAMS, NT, NEEDS_NORM, CENTER, PRECISION, FOLD, TMA, BN)
            acc = masked_tiles(acc, a, sq_a, B, MU, SQB, P, second_end, col_end, offs_m, n, m, sb, offs_d, d,
                               fold_scale, SYMMETRIC, EXCLUDE_DIAG, FAMS, NT, NEEDS_NORM, CENTER, PRECISION,
                               FOLD, TMA, BN)
    total = tl.sum(tl.sum(acc, axis=1), axis=0)
    if SYMMETRIC:
        total = 2.0 * total
    tl.store(OUT + slot, total)


@triton.jit
def interior_tiles(acc, a, sq_a, B, MU, SQB, P, begin, end, m, sb, offs_d, d, fold_scale, FAMS: tl.constexpr,
                   NT: tl.constexpr, NEEDS_NORM: tl.constexpr, CENTER: tl.constexpr, PRECISION: tl.constexpr,
                   FOLD: tl.constexpr, TMA: tl.constexpr, BN: tl.constexpr):
    """acc + the pair values of the tiles of B starting at begin, begin + BN, ... < end: no masks."""
    for j0 in range(begin, end, BN):
        b, sq_b = streamed_rows(B, MU, SQB, j0, m, sb, offs_d, d, CENTER, BN, TMA)
        acc += pair_values(a, b, sq_a, sq_b, P, fold_scale, FAMS, NT, NEEDS_NORM, PRECISION, FOLD)
    return acc


@triton.jit
def masked_tiles(acc, a, sq_a, B, MU, SQB, P, begin, end, offs_m, n, m, sb, offs_d, d, fold_scale,
                 SYMMETRIC: tl.constexpr, EXCLUDE_DIAG: tl.constexpr, FAMS: tl.constexpr, NT: tl.constexpr,
                 NEEDS_NORM: tl.constexpr, CENTER: tl.constexpr, PRECISION: tl.constexpr, FOLD: tl.constexpr,
                 TMA: tl.constexpr, BN: tl.constexpr):
    """acc + the kept pair values (masked_values) of the tiles of B starting at begin, ... < end."""
    for j0 in range(begin, end, BN):
        b, sq_b = streamed_rows(B, MU, SQB, j0, m, sb, offs_d, d, CENTER, BN, TMA)
        val = pair_values(a, b, sq_a, sq_b, P, fold_scale, FAMS, NT, NEEDS_NORM, PRECISION, FOLD)
        acc += masked_values(val, offs_m, j0 + tl.arange(0, BN), n, m, SYMMETRIC, EXCLUDE_DIAG)
    return acc


@triton.jit
def branching_tiles(acc, a, sq_a, B, MU, SQB, P, begin, end, first_end, second_begin, second_end, offs_m, n, m,
                    sb, offs_d, d, fold_scale, SYMMETRIC: tl.constexpr, EXCLUDE_DIAG: tl.constexpr,
                    FAMS: tl.constexpr, NT: tl.constexpr, NEEDS_NORM: tl.constexpr, CENTER: tl.constexpr,
                    PRECISION: tl.constexpr, FOLD: tl.constexpr, TMA: tl.constexpr, BN: tl.constexpr):
    """interior_tiles and masked_tiles in one loop over [begin, end): the tiles before first_end and in
    [second_begin, second_end) without masks, the others with them."""
    for j0 in range(begin, end, BN):
        b, sq_b = streamed_rows(B, MU, SQB, j0, m, sb, offs_d, d, CENTER, BN, TMA)
        val = pair_values(a, b, sq_a, sq_b, P, fold_scale, FAMS, NT, NEEDS_NORM, PRECISION, FOLD)
        if (j0 < first_end) | ((j0 >= second_begin) & (j0 < second_end)):
            acc += val
        else:
            acc += masked_values(val, offs_m, j0 + tl.arange(0, BN), n, m, SYMMETRIC, EXCLUDE_DIAG)
    return acc


@triton.jit
def masked_values(val, offs_m, offs_n, n, m, SYMMETRIC: tl.constexpr, EXCLUDE_DIAG: tl.constexpr):
    """val on the kept pairs (inside both arrays, off the diagonal with EXCLUDE_DIAG), 0 elsewhere; in a
    symmetric block half weights: 1/2 on the diagonal, 0 below it (the program's sum is doubled)."""
    keep = (offs_m[:, None] < n) & (offs_n[None, :] < m)
    same = offs_m[:, None] == offs_n[None, :]
    if EXCLUDE_DIAG:
        keep = keep & ~same
    if SYMMETRIC:
        half = tl.where(offs_n[None, :] > offs_m[:, None], 1.0, tl.where(same, 0.5, 0.0))
        return tl.where(keep, half * val, 0.0)
    else:
        return tl.where(keep, val, 0.0)
