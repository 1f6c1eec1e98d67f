"""Tile geometry shared by the Triton kernels: loading a block of rows, and the inner products and squared
distances of a tile of pairs (from pointers, or from tensor descriptors: the Hopper TMA unit's bulk copies)."""
from __future__ import annotations

import triton
import triton.language as tl


@triton.jit
def nonnegative(v):
    """max(v, 0) that keeps a NaN (tl.maximum compiles to fmax, which would return 0 for it)."""
    return tl.where(v < 0.0, 0.0, v)


@triton.jit
def load_rows(X, MU, offs_rows, n_rows, stride, offs_k, d, CENTER: tl.constexpr):
    """Rows offs_rows (R,) of X, features offs_k (K,) -> (R, K); zero outside the array. With CENTER, the
    pooled mean MU (d,) is subtracted (inside the array)."""
    mask = (offs_rows[:, None] < n_rows) & (offs_k[None, :] < d)
    x = tl.load(X + offs_rows[:, None] * stride + offs_k[None, :], mask=mask, other=0.0)
    if CENTER:
        mu = tl.load(MU + offs_k, mask=offs_k < d, other=0.0)
        x = tl.where(mask, x - mu[None, :], 0.0)
    return x


@triton.jit
def round_to_bf16(x):
    """float32 x rounded to the nearest bfloat16 (ties to even), kept in float32 (finite x); bfloat16 x (read
    from a bfloat16 copy) as float32."""
    if x.dtype == tl.bfloat16:
        return x.to(tl.float32)
    else:
        u = x.to(tl.uint32, bitcast=True)
        u = (u + 0x7FFF + ((u >> 16) & 1)) & 0xFFFF0000
        return u.to(tl.float32, bitcast=True)


@triton.jit
def round_to_tf32(x):
    """float32 x rounded to the nearest TF32 value (10 mantissa bits, ties to even), kept in float32 (finite
    x): the tensor cores would truncate it (fastmmd.common.rounding)."""
    u = x.to(tl.uint32, bitcast=True)
    u = (u + 0xFFF + ((u >> 13) & 1)) & 0xFFFFE000
    return u.to(tl.float32, bitcast=True)


@triton.jit
def matmul_nt(a, b, acc, PRECISION: tl.constexpr):
    """acc + a @ b.T for a (M, K), b (N, K) on tensor cores: PRECISION "ieee" (exact fp32 / fp64 products),
    "tf32", "tf32x3", "bf16" (operands rounded to bfloat16, fp32 accumulation) or "bf16-rounded" (the same
    numbers from an fp32 product of rounded operands: what the interpreter runs, its bf16 tl.dot being
    unusable). a and b are read from memory, where the backend rounded them to the precision's operands
    once (fastmmd.backends.triton._operand): tf32 truncation then drops only zero bits."""
    if PRECISION == "bf16":
        return tl.dot(a.to(tl.bfloat16), tl.trans(b.to(tl.bfloat16)), acc, out_dtype=acc.dtype)
    elif PRECISION == "bf16-rounded":
        return tl.dot(round_to_bf16(a), tl.trans(round_to_bf16(b)), acc, input_precision="ieee", out_dtype=acc.dtype)
    else:
        return tl.dot(a, tl.trans(b), acc, input_precision=PRECISION, out_dtype=acc.dtype)


@triton.jit
def matmul_nn(c, b, acc, PRECISION: tl.constexpr):
    """acc + c @ b for c (M, N), b (N, K), in the same precisions as matmul_nt. c is made in the kernel (kernel
    values, gradient coefficients): in "tf32" it is rounded to nearest here, b was rounded before the launch."""
    if PRECISION == "tf32":
        return tl.dot(round_to_tf32(c.to(b.dtype)), b, acc, input_precision="tf32", out_dtype=acc.dtype)
    elif PRECISION == "bf16":
        return tl.dot(c.to(tl.bfloat16), b.to(tl.bfloat16), acc, out_dtype=acc.dtype)
    elif PRECISION == "bf16-rounded":
        return tl.dot(round_to_bf16(c), round_to_bf16(b), acc, input_precision="ieee", out_dtype=acc.dtype)
    else:
        return tl.dot(c.to(b.dtype), b, acc, input_precision=PRECISION, out_dtype=acc.dtype)


@triton.jit
def tile_geometry(A, B, MU, offs_m, offs_n, n, m, d, sa, sb, sq_a, sq_b,
                  EXPLICIT: tl.constexpr, NEEDS_DOT: tl.constexpr, CENTER: tl.constexpr,
                  PRECISION: tl.constexpr, BM: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr):
    """(dot, r2) of the pairs (offs_m of A) x (offs_n of B), each (BM, BN) in the compute dtype.

    With EXPLICIT, r2 = sum_k (a_k - b_k)² from differences (exact near 0, for the kernels with |a - b|;
    CUDA cores); otherwise r2 = max(|a|² + |b|² - 2 a.b, 0) with a.b on tensor cores. sq_a (BM,), sq_b (BN,)
    are the squared norms (of the centred rows with CENTER).
    """
    CT = A.dtype.element_ty
    dot = tl.zeros((BM, BN), dtype=tl.float32 if CT != tl.float64 else tl.float64)
    r2 = tl.zeros((BM, BN), dtype=dot.dtype)
    for k0 in range(0, d, BK):
        offs_k = k0 + tl.arange(0, BK)
        a = load_rows(A, MU, offs_m, n, sa, offs_k, d, CENTER)
        b = load_rows(B, MU, offs_n, m, sb, offs_k, d, CENTER)
        if EXPLICIT:
            diff = a[:, None, :] - b[None, :, :]
            r2 += tl.sum(diff * diff, axis=2)
            if NEEDS_DOT:
                dot += tl.sum(a[:, None, :] * b[None, :, :], axis=2)
        else:
            dot = matmul_nt(a, b, dot, PRECISION)
    if not EXPLICIT:
        r2 = nonnegative(sq_a[:, None] + sq_b[None, :] - 2.0 * dot)
    return dot, r2


@triton.jit
def tile_geometry_tma(AD, BD, row0, col0, d, sq_a, sq_b, PRECISION: tl.constexpr,
                      BM: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr):
    """(dot, r2) of rows row0.. of A and col0.. of B, each (BM, BN) float32, read through the tensor
    descriptors AD (block [BM, BK]) and BD (block [BN, BK]); the copy engine fills what lies outside the
    arrays with zeros, so no masks. r2 = max(|a|² + |b|² - 2 a.b, 0)."""
    dot = tl.zeros((BM, BN), dtype=tl.float32)
    for k0 in range(0, d, BK):
        dot = matmul_nt(AD.load([row0, k0]), BD.load([col0, k0]), dot, PRECISION)
    r2 = nonnegative(sq_a[:, None] + sq_b[None, :] - 2.0 * dot)
    return dot, r2
