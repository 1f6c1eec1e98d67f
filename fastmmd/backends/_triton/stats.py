"""The statistics pass of a block: its row sums, column sums and sum of squares in one pass over the pairs,
each unordered pair once in a symmetric block (what the variance of MMD² and exact KID's std need; the C++
backend's `pair_stats`).

A launch covers a band of rows of A (from row0, `band` rows) against all of B, one program per tile. Each
program writes its tile's row sums, column sums and sum of squares to its own slots, and the host adds the
slots in float64 in a fixed order: the same bits on every run, no atomics. In a symmetric block (B is A) the
tiles below the diagonal write zeros, a tile above it stands for both orders of its pairs (its column sums
are row sums of the other rows, its squares count twice), and a diagonal tile's row sums are complete.
"""
from __future__ import annotations

import triton
import triton.language as tl

from fastmmd.backends._triton.terms import kernel_terms, tile_norms
from fastmmd.backends._triton.tiles import tile_geometry


@triton.jit
def stats_tiles_kernel(A, B, SQA, SQB, MU, P, ROW_PART, COL_PART, SQ_PART, n, m, d, sa, sb, row0, band,
                       band_stride, size_class,
                       SYMMETRIC: tl.constexpr, EXCLUDE_DIAG: tl.constexpr, FAMS: tl.constexpr,
                       NT: tl.constexpr, NEEDS_NORM: tl.constexpr, NEEDS_DOT: tl.constexpr,
                       EXPLICIT: tl.constexpr, CENTER: tl.constexpr, PRECISION: tl.constexpr,
                       BM: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr):
    """Program (I, J): the tile of rows row0 + I·BM.. (a band of `band` rows, row0 a multiple of BM) of A
    (n, d) against rows J·BN.. of B (m, d). Writes ROW_PART[J, r] = Σ_j k (r the row's place in the band,
    row stride band_stride), COL_PART[I, j] = Σ_i k (row stride m) and SQ_PART[I·tiles_n + J] = Σ k², over
    the kept pairs. SQA, SQB: squared norms; MU: pooled mean (read with CENTER); P: the packed parameters.
    `size_class` only keys the autotuner."""
    I = tl.program_id(0)
    J = tl.program_id(1)
    tiles_n = tl.num_programs(1)
    row_tile = row0 // BM + I
    local = I.to(tl.int64) * BM + tl.arange(0, BM)
    offs_m = row0 + local
    offs_n = J.to(tl.int64) * BN + tl.arange(0, BN)
    in_band = local < band
    cols_ok = offs_n < m
    row_slots = ROW_PART + J.to(tl.int64) * band_stride + local
    col_slots = COL_PART + I.to(tl.int64) * m + offs_n
    sq_slot = SQ_PART + I.to(tl.int64) * tiles_n + J
    if SYMMETRIC and J < row_tile:
        tl.store(row_slots, tl.zeros((BM,), dtype=SQA.dtype.element_ty), mask=in_band)
        tl.store(col_slots, tl.zeros((BN,), dtype=SQA.dtype.element_ty), mask=cols_ok)
        tl.store(sq_slot, 0.0)
        return
    sq_a = tl.load(SQA + offs_m, mask=in_band & (offs_m < n), other=0.0)
    sq_b = tl.load(SQB + offs_n, mask=cols_ok, other=0.0)
    dot, r2 = tile_geometry(A, B, MU, offs_m, offs_n, n, m, d, sa, sb, sq_a, sq_b,
                            EXPLICIT, NEEDS_DOT, CENTER, PRECISION, BM, BN, BK)
    norm_a, norm_b = tile_norms(sq_a, sq_b, NEEDS_NORM)
    val, _, _ = kernel_terms(dot, r2, norm_a, norm_b, P, FAMS, NT)
    keep = (in_band & (offs_m < n))[:, None] & cols_ok[None, :]
    if EXCLUDE_DIAG:
        keep = keep & (offs_m[:, None] != offs_n[None, :])
    k = tl.where(keep, val, 0.0)
    columns = tl.sum(k, axis=0)
    squares = tl.sum(tl.sum(k * k, axis=1), axis=0)
    if SYMMETRIC:
        columns = tl.where(J == row_tile, 0.0, columns)
        squares = squares * tl.where(J == row_tile, 1.0, 2.0)
    tl.store(row_slots, tl.sum(k, axis=1), mask=in_band)
    tl.store(col_slots, columns, mask=cols_ok)
    tl.store(sq_slot, squares)
