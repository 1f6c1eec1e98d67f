"""Host side of the Triton backend: prepares the inputs (centring, squared norms, packed terms), picks the
path (value only, fused owner gradients, chunked gradients) and launches the kernels of this package; also
the kernel-matrix product K(a, b) @ v (`kernel_matmul`).

All sums stay on the device (no host synchronisation); partial sums are added in float64 in a fixed order.
"""
from __future__ import annotations

import contextlib
import functools
import math
import os
from dataclasses import dataclass
from typing import Optional, Sequence, Tuple

import torch
import triton
from triton.tools.tensor_descriptor import TensorDescriptor

from fastmmd.backends._triton import configs
from fastmmd.backends._triton.coef_chunk import coef_chunk_kernel
from fastmmd.backends._triton.matvec import matvec_kernel
from fastmmd.backends._triton.owner_grad import owner_grad_kernel
from fastmmd.backends._triton.stats import stats_tiles_kernel
from fastmmd.backends._triton.terms import PackedTerms, pack_terms
from fastmmd.backends._triton.value import value_persistent_kernel, value_tiles_kernel
from fastmmd.backends._triton.value_rows import value_rows_kernel
from fastmmd.formulas.estimators import PairSumPlan

# Largest d of the fused owner gradients (the rows' gradient lives in registers), on tensor cores and with
# explicit differences (a (BM, BN, d) block of differences).
OWNER_MAX_D = 256
OWNER_MAX_D_EXPLICIT = 64
# Largest d of the streaming value kernel, and the columns of B one of its programs visits (a multiple of
# every BN, so that segments split no tile).
ROWS_MAX_D = 256
SEGMENT = 2048
# Rows and columns of a chunk of the large-d gradient path (its coefficients: CHUNK² floats); the
# environment's FASTMMD_CHUNK replaces it (for timing other sizes: docs/gpu.md).
CHUNK = 2048
# Column blocks of v per launch of the kernel-matrix product (the limit of a CUDA grid's second axis).
MAX_COLUMN_BLOCKS = 65535
# Bytes of float64 scratch when computing squared norms.
_NORM_SCRATCH_BYTES = 16 << 20
# Bytes of the statistics pass's per-tile row-sum slots: the rows of A run in bands small enough for them.
STATS_PART_BYTES = 64 << 20
_BAND_ALIGN = 256  # a multiple of every BM: bands split no tile


@dataclass(frozen=True)
class Prepared:
    """The inputs as the kernels read them. mu: pooled mean (d,) in the compute dtype, or a 1-element dummy
    when not centring; sq_x (n,), sq_y (m,): squared norms of the (centred) rows."""

    packed: PackedTerms
    center: bool
    mu: torch.Tensor
    sq_x: torch.Tensor
    sq_y: torch.Tensor
    precision: str

    @property
    def explicit(self) -> bool:
        """Distances from explicit differences: some term depends on |a - b|."""
        return self.packed.needs_sqrt

    def flags(self) -> dict:
        p = self.packed
        return dict(FAMS=p.families, NT=p.count, NEEDS_NORM=p.needs_norm, NEEDS_DOT=p.needs_dot,
                    EXPLICIT=self.explicit, CENTER=self.center, PRECISION=self.precision)


def squared_norms(x: torch.Tensor, mu: Optional[torch.Tensor]) -> torch.Tensor:
    """|x_i - mu|² (or |x_i|²) for x (n, d), accumulated in float64 over bounded row chunks -> (n,)."""
    out = torch.empty(x.shape[0], dtype=torch.float64, device=x.device)
    rows = max(1, _NORM_SCRATCH_BYTES // (8 * max(x.shape[1], 1)))
    for start in range(0, x.shape[0], rows):
        block = x[start:start + rows].to(torch.float64)
        if mu is not None:
            block = block - mu
        out[start:start + rows] = block.pow(2).sum(1)
    return out


def prepare(x: torch.Tensor, y: torch.Tensor, terms: Sequence[float], precision: str,
            shift_invariant_families) -> Prepared:
    compute = torch.float64 if x.dtype == torch.float64 else torch.float32
    packed = pack_terms(terms, x.device, compute, shift_invariant_families)
    # Centring removes the cancellation of |a|² + |b|² - 2a.b for inputs far from the origin; it costs a
    # subtraction per loaded element, worth it only for IEEE products (tf32/bf16 round far more).
    center = packed.shift_invariant_mmd and precision == "ieee"
    mu64 = None
    if center:
        mu64 = (x.sum(0, dtype=torch.float64) + y.sum(0, dtype=torch.float64)) / (x.shape[0] + y.shape[0])
    mu = mu64.to(compute) if center else torch.zeros(1, dtype=compute, device=x.device)
    # The norms of the rows as the kernels centre them: minus mu rounded to the compute dtype (the float64
    # mean would differ from it by up to half an ulp of the data's offset, an error of that size in r2).
    shift = mu.to(torch.float64) if center else None
    return Prepared(
        packed=packed,
        center=center,
        mu=mu,
        sq_x=squared_norms(x, shift).to(compute),
        sq_y=squared_norms(y, shift).to(compute),
        precision=precision,
    )


def tma_ready(prep: Prepared, *arrays: torch.Tensor) -> bool:
    """Whether the tiled kernels read `arrays` through tensor descriptors (the TMA copy engine): asked for
    with FASTMMD_TMA=1 (opt-in until its speed is measured on a GPU), inner products on tensor cores (no
    explicit differences, no centring), float32 or bfloat16 rows that start on 16-byte boundaries."""
    if os.environ.get("FASTMMD_TMA", "0") != "1" or prep.explicit or prep.center:
        return False
    return all(a.dtype in (torch.float32, torch.bfloat16) and a.stride(1) == 1
               and (a.stride(0) * a.element_size()) % 16 == 0 and a.data_ptr() % 16 == 0 for a in arrays)


def row_operands(a: torch.Tensor, b: torch.Tensor, tma: bool):
    """The kernels' A and B: the tensors themselves, or tensor descriptors over them (block shapes are set
    per configuration by configs.descriptor_blocks)."""
    if not tma:
        return a, b
    placeholder = [configs.MIN_TILE, configs.MIN_TILE]
    return TensorDescriptor.from_tensor(a, placeholder), TensorDescriptor.from_tensor(b, placeholder)


def persistent_programs_per_sm() -> int:
    """How the tiled forward runs: 0, one program per tile (the default); 1 or 2, as the persistent kernel
    (value_persistent_kernel) with that many programs per SM (FASTMMD_PERSISTENT=1: 8 warps each; =2: 4 warps
    each, so that an SM overlaps one program's epilogue with the other's loads and products). Opt-in until a
    GPU has timed them against one program per tile."""
    value = os.environ.get("FASTMMD_PERSISTENT", "0")
    if value not in ("0", "1", "2"):
        raise ValueError(f"FASTMMD_PERSISTENT must be 0, 1 or 2, not {value!r}")
    return int(value)


@functools.lru_cache(maxsize=32)
def tile_list(tiles_m: int, tiles_n: int, symmetric: bool, device: torch.device) -> torch.Tensor:
    """(T, 2) int32 (I, J) of the tiles a block's sum needs (J >= I only when symmetric), in groups of
    configs.GROUP row blocks, column by column inside a group: programs that run at the same time take
    neighbouring entries, so they share rows of A and columns of B in L2."""
    rows = torch.arange(tiles_m, device=device).repeat_interleave(tiles_n)
    cols = torch.arange(tiles_n, device=device).repeat(tiles_m)
    if symmetric:
        keep = cols >= rows
        rows, cols = rows[keep], cols[keep]
    group = configs.GROUP
    order = torch.argsort(((rows // group) * tiles_n + cols) * group + rows % group)
    return torch.stack([rows[order], cols[order]], dim=1).to(torch.int32).contiguous()


def persistent_programs(device: torch.device, num_tiles: int, per_sm: int) -> int:
    """Programs of the persistent kernel: per_sm on each SM of the GPU (as many as run at once), never more
    than there are tiles; 3 under the interpreter, so that each walks several tiles."""
    if device.type != "cuda":
        return max(1, min(3, num_tiles))
    return max(1, min(num_tiles, per_sm * torch.cuda.get_device_properties(device).multi_processor_count))


def size_class(n: int, m: int) -> int:
    """Autotuning key for the problem size: log2 of the number of pairs."""
    return int(math.log2(max(n * m, 1)))


# ------------------------------------------------------------------------------------------------------------
# Value only


def block_value(a, b, sq_a, sq_b, prep: Prepared, symmetric: bool, exclude_diag: bool) -> torch.Tensor:
    """Sum of k(a_i, b_j) over a block (0-dim float64 tensor on the device)."""
    n, m, d = a.shape[0], b.shape[0], a.shape[1]
    if not prep.explicit and d <= ROWS_MAX_D:
        return block_value_rows(a, b, sq_a, sq_b, prep, symmetric, exclude_diag)
    per_sm = persistent_programs_per_sm()
    if per_sm:
        return block_value_persistent(a, b, sq_a, sq_b, prep, symmetric, exclude_diag, per_sm)
    launcher = configs.value_launcher(value_tiles_kernel, prep.explicit, a.dtype, prep.precision)

    def grid(meta):
        return (triton.cdiv(n, meta["BM"]) * triton.cdiv(m, meta["BN"]),)

    slots = triton.cdiv(n, configs.MIN_TILE) * triton.cdiv(m, configs.MIN_TILE)
    out = torch.empty(slots, dtype=sq_a.dtype, device=a.device)
    tma = tma_ready(prep, a, b)
    a_in, b_in = row_operands(a, b, tma)
    launched = launcher(grid, a_in, b_in, sq_a, sq_b, prep.mu, prep.packed.params, out, n, m, d, a.stride(0),
                        b.stride(0), size_class(n, m), SYMMETRIC=symmetric, EXCLUDE_DIAG=exclude_diag,
                        TMA=tma, **prep.flags())
    used = triton.cdiv(n, launched["BM"]) * triton.cdiv(m, launched["BN"])
    return out[:used].to(torch.float64).sum()


def block_value_persistent(a, b, sq_a, sq_b, prep: Prepared, symmetric: bool, exclude_diag: bool,
                           per_sm: int) -> torch.Tensor:
    """block_value by the persistent kernel: per_sm programs on each SM over the list of needed tiles."""
    n, m, d = a.shape[0], b.shape[0], a.shape[1]
    launcher = configs.persistent_launcher(value_persistent_kernel, prep.explicit, a.dtype, prep.precision,
                                           per_sm)
    tile = launcher.candidates[0].kwargs["BM"]
    tiles = tile_list(triton.cdiv(n, tile), triton.cdiv(m, tile), symmetric, a.device)
    programs = persistent_programs(a.device, tiles.shape[0], per_sm)
    out = torch.empty(programs, dtype=torch.float64, device=a.device)
    tma = tma_ready(prep, a, b)
    a_in, b_in = row_operands(a, b, tma)
    launcher(lambda meta: (programs,), a_in, b_in, sq_a, sq_b, prep.mu, prep.packed.params, tiles, out, n, m,
             d, a.stride(0), b.stride(0), tiles.shape[0], programs, SYMMETRIC=symmetric,
             EXCLUDE_DIAG=exclude_diag, TMA=tma, **prep.flags())
    return out.sum()


def block_value_rows(a, b, sq_a, sq_b, prep: Prepared, symmetric: bool, exclude_diag: bool) -> torch.Tensor:
    """block_value for small d, by row blocks streaming segments of B (value_rows_kernel)."""
    n, m, d = a.shape[0], b.shape[0], a.shape[1]
    launcher = configs.value_rows_launcher(value_rows_kernel, a.dtype, prep.precision, d)
    align = configs.segment_alignment()
    segment = triton.cdiv(SEGMENT, align) * align
    segments = triton.cdiv(m, segment)
    out = torch.empty(triton.cdiv(n, configs.MIN_TILE) * segments, dtype=sq_a.dtype, device=a.device)
    fold = folds_gaussian(prep)
    weight, fold_scale = 1.0, 0.0
    if fold:
        weight, p_log2 = prep.packed.lone_gaussian
        fold_scale = 2.0 * p_log2
        scaled_a = sq_a * -p_log2
        sq_a, sq_b = scaled_a, (scaled_a if sq_b is sq_a else sq_b * -p_log2)
    tma = tma_ready(prep, a, b)
    a_in, b_in = row_operands(a, b, tma)
    launched = launcher(
        lambda meta: (triton.cdiv(n, meta["BM"]), segments), a_in, b_in, sq_a, sq_b, prep.mu,
        prep.packed.params, out, n, m, d, a.stride(0), b.stride(0), segment, fold_scale, size_class(n, m),
        SYMMETRIC=symmetric, EXCLUDE_DIAG=exclude_diag, BD=configs.padded_dim(d), FOLD=fold, TMA=tma,
        **prep.flags())
    total = out[: triton.cdiv(n, launched["BM"]) * segments].to(torch.float64).sum()
    return total * weight if fold else total


def folds_gaussian(prep: Prepared) -> bool:
    """Whether the streaming forward folds the kernel's constants into the norms (value_rows_kernel, FOLD):
    a lone Gaussian term in float32, unless FASTMMD_FOLD=0."""
    return (prep.packed.lone_gaussian is not None and prep.sq_x.dtype == torch.float32
            and os.environ.get("FASTMMD_FOLD", "1") != "0")


def block_stats(a, b, sq_a, sq_b, prep: Prepared, symmetric: bool, exclude_diag: bool):
    """(rows (n,), cols (m,) or None when symmetric, squares 0-dim), float64 on the device: the row sums,
    column sums and sum of squares of k over the kept pairs of a block, in one pass (stats_tiles_kernel),
    each unordered pair once when symmetric (b is a; rows are then the full row sums)."""
    n, m, d = a.shape[0], b.shape[0], a.shape[1]
    dt = sq_a.dtype
    tiles_n = triton.cdiv(m, configs.MIN_TILE)
    band_rows = STATS_PART_BYTES // (dt.itemsize * tiles_n) // _BAND_ALIGN * _BAND_ALIGN
    band_rows = min(max(_BAND_ALIGN, band_rows), triton.cdiv(n, _BAND_ALIGN) * _BAND_ALIGN)
    row_part = torch.empty((tiles_n, band_rows), dtype=dt, device=a.device)
    col_part = torch.empty((triton.cdiv(band_rows, configs.MIN_TILE), m), dtype=dt, device=a.device)
    sq_part = torch.empty(triton.cdiv(band_rows, configs.MIN_TILE) * tiles_n, dtype=dt, device=a.device)
    rows = torch.zeros(n, dtype=torch.float64, device=a.device)
    cols = torch.zeros(m, dtype=torch.float64, device=a.device)
    squares = torch.zeros((), dtype=torch.float64, device=a.device)
    launcher = configs.stats_launcher(stats_tiles_kernel, prep.explicit, a.dtype, prep.precision)
    for row0 in range(0, n, band_rows):
        band = min(band_rows, n - row0)
        launched = launcher(
            lambda meta, band=band: (triton.cdiv(band, meta["BM"]), triton.cdiv(m, meta["BN"])), a, b, sq_a,
            sq_b, prep.mu, prep.packed.params, row_part, col_part, sq_part, n, m, d, a.stride(0), b.stride(0),
            row0, band, band_rows, size_class(n, m), SYMMETRIC=symmetric, EXCLUDE_DIAG=exclude_diag,
            **prep.flags())
        tm, tn = triton.cdiv(band, launched["BM"]), triton.cdiv(m, launched["BN"])
        rows[row0:row0 + band] += row_part[:tn, :band].to(torch.float64).sum(0)
        cols += col_part[:tm].to(torch.float64).sum(0)
        squares += sq_part[:tm * tn].to(torch.float64).sum()
    if symmetric:  # the column sums of the tiles above the diagonal are the other rows' sums
        return rows + cols, None, squares
    return rows, cols, squares


# ------------------------------------------------------------------------------------------------------------
# Value and gradients, small d: fused owner kernels


def owner_pass(a, b, sq_a, sq_b, prep: Prepared, grad: torch.Tensor, scale: float, exclude_diag: bool,
               accumulate: bool, want_value: bool) -> Optional[torch.Tensor]:
    """grad (=, or += with accumulate) scale * d/da sum_{i,j} k(a_i, b_j); returns that sum (0-dim float64)
    when want_value. `b is a` marks a symmetric block."""
    n, m, d = a.shape[0], b.shape[0], a.shape[1]
    launcher = configs.owner_launcher(owner_grad_kernel, prep.explicit, a.dtype, prep.precision, d)
    values = torch.empty(triton.cdiv(n, configs.MIN_TILE), dtype=sq_a.dtype, device=a.device)
    scales = torch.tensor([scale, prep.packed.energy_weight], dtype=sq_a.dtype, device=a.device)
    launched = launcher(
        lambda meta: (triton.cdiv(n, meta["BM"]),), a, b, sq_a, sq_b, prep.mu, prep.packed.params, values, grad,
        scales, n, m, d, a.stride(0), b.stride(0), grad.stride(0), size_class(n, m), EXCLUDE_DIAG=exclude_diag,
        SAME=a is b, ACCUMULATE=accumulate, WANT_VALUE=want_value, BD=configs.padded_dim(d), **prep.flags())
    if not want_value:
        return None
    return values[:triton.cdiv(n, launched["BM"])].to(torch.float64).sum()


def owner_rows(prep: Prepared, *arrays: torch.Tensor) -> Tuple[torch.Tensor, ...]:
    """The rows the fused small-d gradient reads: in bf16, bfloat16 copies of float32 rows (the same numbers:
    the operands were rounded to bfloat16 values before, triton._operand), unless a term subtracts rows (the
    |a - b| kernels, which bfloat16 arithmetic would round); otherwise the rows themselves."""
    if prep.precision.startswith("bf16") and not prep.explicit and arrays[0].dtype == torch.float32:
        return tuple(a.to(torch.bfloat16) for a in arrays)
    return arrays


def fused_owner_grads(x, y, prep: Prepared, plan: PairSumPlan):
    grad_x, grad_y = torch.empty_like(x), torch.empty_like(y)
    x, y = owner_rows(prep, x, y)
    s_xx = owner_pass(x, x, prep.sq_x, prep.sq_x, prep, grad_x, 2 * plan.xx_weight, plan.xx_exclude_diag,
                      accumulate=False, want_value=True)
    s_xy = owner_pass(x, y, prep.sq_x, prep.sq_y, prep, grad_x, plan.xy_weight, plan.xy_exclude_diag,
                      accumulate=True, want_value=True)
    s_yy = owner_pass(y, y, prep.sq_y, prep.sq_y, prep, grad_y, 2 * plan.yy_weight, plan.yy_exclude_diag,
                      accumulate=False, want_value=True)
    owner_pass(y, x, prep.sq_y, prep.sq_x, prep, grad_y, plan.xy_weight, plan.xy_exclude_diag,
               accumulate=True, want_value=False)
    return plan.combine(s_xx, s_yy, s_xy), grad_x, grad_y


# ------------------------------------------------------------------------------------------------------------
# Value and gradients, large d: coefficient chunks and cuBLAS


@contextlib.contextmanager
def matmul_precision(precision: str):
    """cuBLAS fp32 matmuls in IEEE fp32 ("ieee") or TF32 ("tf32") inside the block."""
    flags = torch.backends.cuda.matmul
    before = flags.allow_tf32
    flags.allow_tf32 = precision == "tf32"
    try:
        yield
    finally:
        flags.allow_tf32 = before


def chunk_size() -> int:
    """CHUNK, or FASTMMD_CHUNK when set (a positive integer)."""
    text = os.environ.get("FASTMMD_CHUNK")
    if text is None:
        return CHUNK
    if not text.isdigit() or int(text) < 1:
        raise ValueError(f"FASTMMD_CHUNK must be a positive integer (rows of a gradient chunk), got {text!r}")
    return int(text)


def accumulate_product(out: torch.Tensor, coef: torch.Tensor, rows: torch.Tensor, scale: float,
                       precision: str) -> None:
    """out += scale * coef @ rows, with the GEMM in `precision` (in bf16, coef and rows are bfloat16 already
    when they come from the chunk's buffer and the block's copies: no conversion here)."""
    if precision.startswith("bf16"):
        out.add_((coef.to(torch.bfloat16) @ rows.to(torch.bfloat16)).to(out.dtype), alpha=scale)
    else:
        out.addmm_(coef, rows, alpha=scale)


class ChunkRunner:
    """Coefficients of CHUNK x CHUNK pairs at a time, applied with GEMMs; holds the chunk's buffers."""

    def __init__(self, prep: Prepared, like: torch.Tensor, chunk: int):
        self.prep = prep
        self.chunk = chunk
        tiles = triton.cdiv(chunk, configs.MIN_TILE)
        dt = prep.sq_x.dtype
        # In bf16 the kernel writes the coefficients as the GEMMs read them: half the bytes, no conversion.
        coef_dtype = torch.bfloat16 if prep.precision.startswith("bf16") and dt == torch.float32 else dt
        self.coef = torch.empty(chunk * chunk, dtype=coef_dtype, device=like.device)
        self.alpha_part = torch.empty(tiles * chunk, dtype=dt, device=like.device)
        self.beta_part = torch.empty(tiles * chunk, dtype=dt, device=like.device)
        self.value_part = torch.empty(tiles * tiles, dtype=dt, device=like.device)

    def run(self, a, b, sq_a, sq_b, exclude_diag: bool, same: bool):
        """Coefficients of rows a (r, d) x rows b (c, d): (coef (r, c), alpha (r,), beta (c,), value sum)."""
        r, c, d = a.shape[0], b.shape[0], a.shape[1]
        launcher = configs.chunk_launcher(coef_chunk_kernel, self.prep.explicit, a.dtype, self.prep.precision)
        coef = self.coef[: r * c].view(r, c)
        tma = tma_ready(self.prep, a, b)
        a_in, b_in = row_operands(a, b, tma)
        launched = launcher(
            lambda meta: (triton.cdiv(r, meta["BM"]), triton.cdiv(c, meta["BN"])), a_in, b_in, sq_a, sq_b,
            self.prep.mu, self.prep.packed.params, coef, self.alpha_part, self.beta_part, self.value_part,
            r, c, d, a.stride(0), b.stride(0), size_class(r, c),
            EXCLUDE_DIAG=exclude_diag, SAME=same, TMA=tma, **self.prep.flags())
        tr, tc = triton.cdiv(r, launched["BM"]), triton.cdiv(c, launched["BN"])
        alpha = self.alpha_part[: tc * r].view(tc, r).sum(0)
        beta = self.beta_part[: tr * c].view(tr, c).sum(0)
        value = self.value_part[: tr * tc].to(torch.float64).sum()
        return coef, alpha, beta, value


def chunked_block(runner: ChunkRunner, a, b, sq_a, sq_b, grad_a, grad_b, weight: float, symmetric: bool,
                  exclude_diag: bool) -> torch.Tensor:
    """Adds weight * dS/da to grad_a and weight * dS/db to grad_b (grad_b unused when symmetric) for the
    block sum S = sum_{i,j} k(a_i, b_j); returns S (0-dim float64)."""
    q, prec = runner.chunk, runner.prep.precision
    total = torch.zeros((), dtype=torch.float64, device=a.device)
    # In bf16 the rows are converted once per block: the GEMMs read these copies, and so does the
    # coefficient kernel unless it subtracts rows (|a - b| kernels, which bfloat16 arithmetic would round).
    # The operands were rounded to bfloat16 values before (triton._operand): the copies hold the same numbers.
    gemm_a, gemm_b = a, b
    if prec.startswith("bf16") and a.dtype == torch.float32:
        gemm_a = a.to(torch.bfloat16)
        gemm_b = gemm_a if symmetric else b.to(torch.bfloat16)
    read_a, read_b = (a, b) if runner.prep.explicit else (gemm_a, gemm_b)
    # The radial parts' row factors (dS/da_i has a term alpha_i a_i): summed over the chunks in float64 and
    # applied once per block, not once per chunk (a pass over the rows each time).
    factor_a = torch.zeros(a.shape[0], dtype=torch.float64, device=a.device)
    factor_b = None if symmetric else torch.zeros(b.shape[0], dtype=torch.float64, device=b.device)
    with matmul_precision(prec):
        for r0 in range(0, a.shape[0], q):
            for c0 in range(r0 if symmetric else 0, b.shape[0], q):
                ra, cb = slice(r0, r0 + q), slice(c0, c0 + q)
                on_diagonal = r0 == c0
                coef, alpha, beta, value = runner.run(read_a[ra], read_b[cb], sq_a[ra], sq_b[cb],
                                                      exclude_diag and on_diagonal, symmetric and on_diagonal)
                if symmetric:
                    # Both orders of a chunk's pairs are in S: twice the row-side gradient, on both sides.
                    total += value if on_diagonal else 2 * value
                    w = 2 * weight
                    accumulate_product(grad_a[ra], coef, gemm_b[cb], w, prec)
                    factor_a[ra] += w * alpha.to(torch.float64)
                    if not on_diagonal:
                        accumulate_product(grad_a[cb], coef.T, gemm_a[ra], w, prec)
                        factor_a[cb] += w * beta.to(torch.float64)
                else:
                    total += value
                    accumulate_product(grad_a[ra], coef, gemm_b[cb], weight, prec)
                    factor_a[ra] += weight * alpha.to(torch.float64)
                    accumulate_product(grad_b[cb], coef.T, gemm_a[ra], weight, prec)
                    factor_b[cb] += weight * beta.to(torch.float64)
    grad_a.addcmul_(factor_a.to(grad_a.dtype)[:, None], a)
    if factor_b is not None:
        grad_b.addcmul_(factor_b.to(grad_b.dtype)[:, None], b)
    return total


def add_energy_norm_gradient(grad: torch.Tensor, a: torch.Tensor, coefficient: float) -> None:
    """grad += coefficient * a_i / |a_i| (0 where a_i = 0): the gradient of the |a| parts of Energy terms."""
    if coefficient == 0.0:
        return
    rows = max(1, (_NORM_SCRATCH_BYTES // 8) // max(a.shape[1], 1))
    for start in range(0, a.shape[0], rows):
        block = a[start:start + rows]
        norms = torch.linalg.vector_norm(block, dim=1)
        scale = torch.where(norms > 0, coefficient / torch.where(norms > 0, norms, 1), 0)
        grad[start:start + rows].addcmul_(scale[:, None], block)


def chunked_grads(x, y, prep: Prepared, plan: PairSumPlan, chunk: int):
    grad_x, grad_y = torch.zeros_like(x), torch.zeros_like(y)
    runner = ChunkRunner(prep, x, chunk)
    s_xx = chunked_block(runner, x, x, prep.sq_x, prep.sq_x, grad_x, None, plan.xx_weight, True,
                         plan.xx_exclude_diag)
    s_yy = chunked_block(runner, y, y, prep.sq_y, prep.sq_y, grad_y, None, plan.yy_weight, True,
                         plan.yy_exclude_diag)
    s_xy = chunked_block(runner, x, y, prep.sq_x, prep.sq_y, grad_x, grad_y, plan.xy_weight, False,
                         plan.xy_exclude_diag)
    w_e = prep.packed.energy_weight
    if w_e != 0.0:
        n, m = x.shape[0], y.shape[0]
        # d/dx_i of the |.| parts: count of kept partners in each block, times the block weight.
        add_energy_norm_gradient(grad_x, x, w_e * (2 * plan.xx_weight * (n - plan.xx_exclude_diag)
                                                   + plan.xy_weight * (m - plan.xy_exclude_diag)))
        add_energy_norm_gradient(grad_y, y, w_e * (2 * plan.yy_weight * (m - plan.yy_exclude_diag)
                                                   + plan.xy_weight * (n - plan.xy_exclude_diag)))
    return plan.combine(s_xx, s_yy, s_xy), grad_x, grad_y


# ------------------------------------------------------------------------------------------------------------


def mmd2_with_grads(x, y, terms, plan: PairSumPlan, need_grad: bool, precision: str, shift_invariant_families):
    """(MMD², dx, dy) of contiguous x (n, d), y (m, d); precision: "ieee", "tf32" or "bf16"."""
    prep = prepare(x, y, terms, precision, shift_invariant_families)
    if not need_grad:
        s_xx = block_value(x, x, prep.sq_x, prep.sq_x, prep, True, plan.xx_exclude_diag)
        s_yy = block_value(y, y, prep.sq_y, prep.sq_y, prep, True, plan.yy_exclude_diag)
        s_xy = block_value(x, y, prep.sq_x, prep.sq_y, prep, False, plan.xy_exclude_diag)
        # in the compute dtype: float32 for bfloat16 copies of float32 inputs
        value = plan.combine(s_xx, s_yy, s_xy).to(prep.sq_x.dtype)
        return value, prep.sq_x.new_empty((0,)), prep.sq_y.new_empty((0,))
    d = x.shape[1]
    small = d <= (OWNER_MAX_D_EXPLICIT if prep.explicit else OWNER_MAX_D)
    if small:
        value, grad_x, grad_y = fused_owner_grads(x, y, prep, plan)
    else:
        value, grad_x, grad_y = chunked_grads(x, y, prep, plan, chunk_size())
    return value.to(x.dtype), grad_x, grad_y


def pair_sum(a, b, terms, symmetric: bool, exclude_diag: bool, need_grad: bool, precision: str,
             translation_invariant_families):
    """(S, dS/da, dS/db) of the block S = sum_{i,j} k(a_i, b_j) of contiguous a (n, d), b (m, d) (b unused when
    symmetric: then dS/da is through both arguments and dS/db is None); S 0-dim float64, gradients None
    without need_grad. Centred on the pooled mean only for translation-invariant kernels (the block sum of
    Linear or Energy changes with a shift)."""
    b = a if symmetric else b
    prep = prepare(a, b, terms, precision, translation_invariant_families)
    if not need_grad:
        return block_value(a, b, prep.sq_x, prep.sq_y, prep, symmetric, exclude_diag), None, None
    d = a.shape[1]
    if d <= (OWNER_MAX_D_EXPLICIT if prep.explicit else OWNER_MAX_D):
        grad_a = torch.empty_like(a)
        if symmetric:
            (a,) = owner_rows(prep, a)
            total = owner_pass(a, a, prep.sq_x, prep.sq_y, prep, grad_a, 2.0, exclude_diag, accumulate=False,
                               want_value=True)
            return total, grad_a, None
        grad_b = torch.empty_like(b)
        a, b = owner_rows(prep, a, b)
        total = owner_pass(a, b, prep.sq_x, prep.sq_y, prep, grad_a, 1.0, exclude_diag, accumulate=False,
                           want_value=True)
        owner_pass(b, a, prep.sq_y, prep.sq_x, prep, grad_b, 1.0, exclude_diag, accumulate=False,
                   want_value=False)
        return total, grad_a, grad_b
    grad_a = torch.zeros_like(a)
    grad_b = None if symmetric else torch.zeros_like(b)
    total = chunked_block(ChunkRunner(prep, a, chunk_size()), a, b, prep.sq_x, prep.sq_y, grad_a, grad_b, 1.0,
                          symmetric, exclude_diag)
    w_e = prep.packed.energy_weight
    if w_e != 0.0:
        n, m = a.shape[0], b.shape[0]
        add_energy_norm_gradient(grad_a, a, w_e * (2 if symmetric else 1) * (m - exclude_diag))
        if not symmetric:
            add_energy_norm_gradient(grad_b, b, w_e * (n - exclude_diag))
    return total, grad_a, grad_b


# ------------------------------------------------------------------------------------------------------------
# Kernel-matrix products


def kernel_matmul(a, b, v, terms, exclude_diag: bool, want_sq: bool, precision: str,
                  translation_invariant_families) -> Tuple[torch.Tensor, torch.Tensor]:
    """(K(a, b) @ v (n, p), sum_j k(a_i, b_j)² (n,)) in a's dtype for contiguous a (n, d), b (m, d), v (m, p);
    the second is an empty (0,) tensor without want_sq. exclude_diag (n == m) leaves out j == i. The inputs
    are centred on their pooled mean only when every term is translation invariant (k(a, b) depends on
    a - b alone): unlike an MMD², a product with Linear or Energy terms changes under a shift."""
    n, m, d, p = a.shape[0], b.shape[0], a.shape[1], v.shape[1]
    if exclude_diag and n != m:
        raise ValueError("exclude_diag needs as many rows in b as in a")
    prep = prepare(a, b, terms, precision, translation_invariant_families)
    out = torch.empty((n, p), dtype=a.dtype, device=a.device)
    sq = a.new_empty((n if want_sq else 0,))
    pb = configs.matvec_column_block(p, a.dtype)
    launcher = configs.matvec_launcher(matvec_kernel, prep.explicit, a.dtype, prep.precision, pb)
    sq_out = sq if want_sq else out  # any pointer of the dtype: not read without WANT_SQ
    per_launch = MAX_COLUMN_BLOCKS * pb
    for c0 in range(0, p, per_launch):
        cols = min(per_launch, p - c0)
        block = slice(c0, c0 + cols)
        launcher(lambda meta, cols=cols: (triton.cdiv(n, meta["BM"]), triton.cdiv(cols, pb)),
                 a, b, v[:, block], prep.sq_x, prep.sq_y, prep.mu, prep.packed.params, out[:, block], sq_out,
                 n, m, cols, d, a.stride(0), b.stride(0), v.stride(0), out.stride(0), size_class(n, m),
                 EXCLUDE_DIAG=exclude_diag, WANT_SQ=want_sq and c0 == 0, PB=pb, **prep.flags())
    return out, sq
