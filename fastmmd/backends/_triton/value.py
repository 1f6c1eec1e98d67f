"""The forward reduction: sum of k(a_i, b_j) over a block of pairs, one partial sum per tile.

Tiles are visited in groups of GROUP row blocks (consecutive programs share rows of A in L2). For a
symmetric block (B is A) the programs below the diagonal return at once and those above it count twice;
the diagonal i = j is left out with EXCLUDE_DIAG. Each program writes its fp32 tile sum to its own slot of
OUT, and the host adds the slots in fp64 in a fixed order: the same bits on every run. With TMA, A and B are
tensor descriptors (blocks [BM, BK]) instead of pointers. The persistent variant launches a fixed number of
programs over a host-built list of tiles instead of one program per tile.
"""
from __future__ import annotations

import triton
import triton.language as tl

from fastmmd.backends._triton.terms import kernel_terms, tile_norms
from fastmmd.backends._triton.tiles import tile_geometry, tile_geometry_tma


@triton.jit
def tile_sum(A, B, SQA, SQB, MU, P, I, J, n, m, d, sa, sb,
             SYMMETRIC: tl.constexpr, EXCLUDE_DIAG: tl.constexpr, FAMS: tl.constexpr, NT: tl.constexpr,
             NEEDS_NORM: tl.constexpr, NEEDS_DOT: tl.constexpr, EXPLICIT: tl.constexpr, CENTER: tl.constexpr,
             PRECISION: tl.constexpr, BM: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr, TMA: tl.constexpr):
    """The fp32 (weighted) kernel sum over the tile of row block I of A and column block J of B: the pairs
    inside the arrays, without i = j under EXCLUDE_DIAG; doubled off the diagonal when SYMMETRIC (the caller
    visits only J >= I there)."""
    offs_m = I.to(tl.int64) * BM + tl.arange(0, BM)
    offs_n = J.to(tl.int64) * BN + tl.arange(0, BN)
    sq_a = tl.load(SQA + offs_m, mask=offs_m < n, other=0.0)
    sq_b = tl.load(SQB + offs_n, mask=offs_n < m, other=0.0)
    if TMA:
        dot, r2 = tile_geometry_tma(A, B, I * BM, J * BN, d, sq_a, sq_b, PRECISION, BM, BN, BK)
    else:
        dot, r2 = tile_geometry(A, B, MU, offs_m, offs_n, n, m, d, sa, sb, sq_a, sq_b,
                                EXPLICIT, NEEDS_DOT, CENTER, PRECISION, BM, BN, BK)
    norm_a, norm_b = tile_norms(sq_a, sq_b, NEEDS_NORM)
    val, _, _ = kernel_terms(dot, r2, norm_a, norm_b, P, FAMS, NT)
    interior = ((I + 1) * BM <= n) & ((J + 1) * BN <= m)
    if EXCLUDE_DIAG:
        interior = interior & (I != J)
    if interior:
        total = tl.sum(tl.sum(val, axis=1), axis=0)
    else:
        keep = (offs_m[:, None] < n) & (offs_n[None, :] < m)
        if EXCLUDE_DIAG:
            keep = keep & (offs_m[:, None] != offs_n[None, :])
        total = tl.sum(tl.sum(tl.where(keep, val, 0.0), axis=1), axis=0)
    if SYMMETRIC:
        total = total * tl.where(J == I, 1.0, 2.0)
    return total


@triton.jit
def value_tiles_kernel(A, B, SQA, SQB, MU, P, OUT, n, m, d, sa, sb, size_class,
                       SYMMETRIC: tl.constexpr, EXCLUDE_DIAG: tl.constexpr, FAMS: tl.constexpr,
                       NT: tl.constexpr, NEEDS_NORM: tl.constexpr, NEEDS_DOT: tl.constexpr,
                       EXPLICIT: tl.constexpr, CENTER: tl.constexpr, PRECISION: tl.constexpr,
                       BM: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr, GROUP: tl.constexpr,
                       TMA: tl.constexpr):
    """OUT[t] = (weighted) sum of the kernel over tile t. Shapes: A (n, d), B (m, d) with row strides sa, sb;
    SQA (n,), SQB (m,) squared norms; MU (d,) pooled mean (read with CENTER); P the packed parameters.
    BM == BN. `size_class` only keys the autotuner."""
    pid = tl.program_id(0)
    tiles_m = tl.cdiv(n, BM)
    tiles_n = tl.cdiv(m, BN)
    per_group = GROUP * tiles_n
    first = (pid // per_group) * GROUP
    rows_in_group = tl.minimum(tiles_m - first, GROUP)
    I = first + (pid % per_group) % rows_in_group
    J = (pid % per_group) // rows_in_group
    slot = I.to(tl.int64) * tiles_n + J
    if SYMMETRIC and J < I:
        tl.store(OUT + slot, 0.0)
        return
    total = tile_sum(A, B, SQA, SQB, MU, P, I, J, n, m, d, sa, sb, SYMMETRIC, EXCLUDE_DIAG, FAMS, NT,
                     NEEDS_NORM, NEEDS_DOT, EXPLICIT, CENTER, PRECISION, BM, BN, BK, TMA)
    tl.store(OUT + slot, total)


@triton.jit
def value_persistent_kernel(A, B, SQA, SQB, MU, P, TILES, OUT, n, m, d, sa, sb, num_tiles, programs,
                            SYMMETRIC: tl.constexpr, EXCLUDE_DIAG: tl.constexpr, FAMS: tl.constexpr,
                            NT: tl.constexpr, NEEDS_NORM: tl.constexpr, NEEDS_DOT: tl.constexpr,
                            EXPLICIT: tl.constexpr, CENTER: tl.constexpr, PRECISION: tl.constexpr,
                            BM: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr, TMA: tl.constexpr):
    """The same sum by `programs` programs that each walk tiles pid, pid + programs, ... of the list TILES
    (int32 (I, J) pairs, num_tiles of them: the upper triangle only when SYMMETRIC), so that no program is
    launched for a tile below the diagonal, the fill and drain of a program happen once, and the program's
    next tile is known ahead. OUT[pid] = the program's fp64 sum, in a fixed order. (The loop is not
    flattened: with tl.range(..., flatten=True) the Gaussian variants spill 500-730 instructions on sm_90.)"""
    pid = tl.program_id(0)
    total = tl.zeros((), dtype=tl.float64)
    for t in range(pid, num_tiles, programs):
        I = tl.load(TILES + 2 * t)
        J = tl.load(TILES + 2 * t + 1)
        total += tile_sum(A, B, SQA, SQB, MU, P, I, J, n, m, d, sa, sb, SYMMETRIC, EXCLUDE_DIAG, FAMS, NT,
                          NEEDS_NORM, NEEDS_DOT, EXPLICIT, CENTER, PRECISION, BM, BN, BK, TMA).to(tl.float64)
    tl.store(OUT + pid, total)
