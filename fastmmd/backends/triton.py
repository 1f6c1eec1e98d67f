"""The GPU backend: the Triton kernels of fastmmd.backends._triton, launched per block of pairs.

A quadratic estimator is three pair sums (XX and YY symmetric, XY) combined by its `PairSumPlan`.
- Value only: one tiled reduction per block (`value_tiles_kernel`, or `value_persistent_kernel` with
  FASTMMD_PERSISTENT=1 or 2: programs per SM), upper triangle only for XX and YY; d <= 256 streams B past row blocks
  (`value_rows_kernel`).
- Value and gradients, d <= launch.OWNER_MAX_D (OWNER_MAX_D_EXPLICIT for kernels with |a - b|): the fused
  owner kernels give each block's value and gradient in one pass over its pairs, no memory beyond the output.
- Value and gradients, larger d: chunks of launch.CHUNK² pairs; a Triton kernel writes the chunk's
  coefficients and the GEMMs that apply them run in cuBLAS (the chunk is the only extra memory: 16 MiB at
  the default 2048, FASTMMD_CHUNK sets another; in bf16 also the rows' bfloat16 copies).
The kernel-matrix product K(a, b) @ v of `fastmmd.kernel_matmul` (and of the ops built on it) runs in
`matvec_kernel`: each program owns a block of rows of a and of columns of v and streams b past
them, so K is never stored and each output is written by one program (deterministic). Its backward is the
same op with derivative kernels (fastmmd.ops.kernel_matmul).
Precisions: "highest" (IEEE fp32 products, or fp64 for fp64 inputs; the inputs are centred on their
pooled mean inside the kernels when the MMD² is shift invariant, or for a product when the kernel is
translation invariant), "tf32", "bf16" (tensor cores, fp32 accumulation). Tile sizes are autotuned per
(d, problem size, precision, kernel families).

Under TRITON_INTERPRET=1 the same kernels run on CPU tensors (one fixed small tile size), which is how
they are tested without a GPU; `backend="auto"` still sends CPU tensors to the cpu backend.
"""
from __future__ import annotations

import contextlib
from types import ModuleType
from typing import List, Optional, Tuple

import numpy as np
import torch

from fastmmd.backends._base import Backend, Capabilities, LazyImport, polynomial_degree_reasons
from fastmmd.backends.interpreter import interpreting
from fastmmd.common.rounding import operand_bits, round_mantissa
from fastmmd.common.validation import ESTIMATORS
from fastmmd.formulas.estimators import pair_sum_plan
from fastmmd.kernels import (
    MAX_COMPILED_DEGREE,
    SHIFT_INVARIANT_MMD_FAMILIES,
    TRANSLATION_INVARIANT_FAMILIES,
    Family,
    Kernel,
)

TRITON_PRECISION = {"highest": "ieee", "tf32": "tf32", "bf16": "bf16"}


# The oldest triton whose API the kernels use (tensor descriptors, triton.tools.tensor_descriptor), and the
# oldest they were tested with (docs/support.md).
MIN_TRITON = (3, 3)


def _version(text: str) -> Tuple[int, ...]:
    return tuple(int(part) for part in text.split("+")[0].split(".")[:2] if part.isdigit())


def _import_launch() -> ModuleType:
    import triton

    if _version(triton.__version__) < MIN_TRITON:
        raise ImportError(f"triton {triton.__version__} is older than {'.'.join(map(str, MIN_TRITON))}, the "
                          "oldest this backend runs on")
    from fastmmd.backends._triton import launch

    return launch


def _device_missing() -> Optional[str]:
    if interpreting() or torch.cuda.is_available():
        return None
    return "no CUDA device (and TRITON_INTERPRET is not set)"


_kernels = LazyImport(_import_launch, lambda exc: f"triton cannot be imported ({exc})", _device_missing)


def _load_kernels() -> Tuple[Optional[ModuleType], Optional[str]]:
    """(the launch module, None) or (None, why the backend cannot run here), decided on first use."""
    return _kernels.get()


class TritonBackend(Backend):
    name = "triton"
    fused = True

    @property
    def capabilities(self) -> Capabilities:  # type: ignore[override]
        return Capabilities(
            devices=("cuda", "cpu") if interpreting() else ("cuda",),
            dtypes=(torch.float32, torch.float64),
            precisions=tuple(TRITON_PRECISION),
            estimators=ESTIMATORS,
        )

    def unavailable_reason(self) -> Optional[str]:
        return _load_kernels()[1]

    def op_reasons(self, op: str) -> List[str]:
        if op not in ("mmd2", "kernel_matmul"):
            return [f"{op} has no Triton kernel yet"]
        return []

    def auto_reasons(self, x: torch.Tensor) -> List[str]:
        if x.device.type != "cuda":
            return ["CPU tensors go to the cpu backend (the Triton interpreter runs them only by name)"]
        return []

    def reasons(self, x, y, kernel, estimator, precision, op="mmd2") -> List[str]:
        out = super().reasons(x, y, kernel, estimator, precision, op)
        if x.dtype == torch.float64 and precision != "highest":
            out.append(f"precision {precision!r} applies to float32 inputs (float64 runs with 'highest')")
        return out

    def kernel_reasons(self, kernel: Kernel, d: int) -> List[str]:
        from fastmmd.backends._triton.terms import MAX_TERMS

        terms = kernel.terms(d)
        out = []
        if len(terms) > MAX_TERMS:
            out.append(f"a kernel of {len(terms)} terms (at most {MAX_TERMS})")
        return out + polynomial_degree_reasons(terms, MAX_COMPILED_DEGREE)

    def mmd2_with_grads(self, x, y, terms, estimator, need_grad, precision, num_threads):
        """On the inputs' device (launch.mmd2_with_grads); `num_threads` is not used."""
        launch = _kernels.require("triton")
        plan = pair_sum_plan(estimator, x.shape[0], y.shape[0])
        copies = not need_grad and _reads_bf16_copies(precision, terms)
        x, y = (_operand(t, precision, copies) for t in (x, y))
        with _on_device(x):
            return launch.mmd2_with_grads(x, y, _flat(terms), plan, need_grad, _kernel_precision(precision),
                                          SHIFT_INVARIANT_MMD_FAMILIES)

    def pair_sum(self, a, b, terms, symmetric, exclude_diag, need_grad, precision, num_threads):
        """One block's sum and gradients (launch.pair_sum); `num_threads` is not used. A table of more terms
        than the kernels take (the squares and products of mixtures the variance's gradient sums) runs in
        groups of rows: the sum and its gradients are linear in the table."""
        from fastmmd.backends._triton.terms import MAX_TERMS

        table = np.asarray(terms, dtype=np.float64).reshape(-1, 5)
        if len(table) > MAX_TERMS:
            parts = [self.pair_sum(a, b, table[i:i + MAX_TERMS], symmetric, exclude_diag, need_grad, precision,
                                   num_threads) for i in range(0, len(table), MAX_TERMS)]
            return tuple(None if part[0] is None else sum(part) for part in zip(*parts))
        launch = _kernels.require("triton")
        copies = not need_grad and _reads_bf16_copies(precision, terms)
        a = _operand(a, precision, copies)
        b = a if symmetric else _operand(b, precision, copies)
        with _on_device(a):
            return launch.pair_sum(a, b, _flat(terms), symmetric, exclude_diag, need_grad,
                                   _kernel_precision(precision), TRANSLATION_INVARIANT_FAMILIES)

    def pair_stats(self, a, b, terms, symmetric, exclude_diag, precision, num_threads):
        """(total, rows, cols or None, squares) of a block in one pass, each unordered pair once when symmetric
        (launch.block_stats); `num_threads` is not used."""
        launch = _kernels.require("triton")
        copies = _reads_bf16_copies(precision, terms)
        a = _operand(a, precision, copies)
        b = a if symmetric else _operand(b, precision, copies)
        with _on_device(a):
            prep = launch.prepare(a, b, _flat(terms), _kernel_precision(precision), TRANSLATION_INVARIANT_FAMILIES)
            rows, cols, squares = launch.block_stats(a, b, prep.sq_x, prep.sq_y, prep, symmetric, exclude_diag)
        return float(rows.sum()), rows, cols, float(squares)

    def kernel_matmul(self, a, b, v, terms, exclude_diag, want_sq, precision, num_threads):
        """In matvec_kernel (each program owns a block of rows of a and of columns of v); `num_threads` is not
        used."""
        launch = _kernels.require("triton")
        a, b, v = (_operand(t, precision) for t in (a, b, v))
        with _on_device(a):
            return launch.kernel_matmul(a, b, v, _flat(terms), exclude_diag, want_sq, _kernel_precision(precision),
                                        TRANSLATION_INVARIANT_FAMILIES)


def _flat(terms) -> List[float]:
    """The kernel's table as the flat list of floats the launchers take."""
    return np.asarray(terms, dtype=np.float64).ravel().tolist()


def _operand(t: torch.Tensor, precision: str, bf16_copy: bool = False) -> torch.Tensor:
    """A contiguous operand of the kernels: for float32 in "tf32" or "bf16", rounded once to the nearest
    value the tensor cores read (they would truncate a raw float32; fastmmd.common.rounding), so that the
    squared norms are those of the numbers the products use; with bf16_copy, the same numbers as a
    bfloat16 copy (half the bytes the kernels read). Gradients are returned as those in t."""
    t = t.detach().contiguous()
    bits = operand_bits(precision)
    if bits is None or t.dtype != torch.float32:
        return t
    return t.to(torch.bfloat16) if bf16_copy else round_mantissa(t, bits)


def _reads_bf16_copies(precision: str, terms) -> bool:
    """Whether a pass without gradients reads bfloat16 copies: in "bf16", unless a term needs explicit
    differences (the kernels of |a - b|: they subtract the rows, which bfloat16 arithmetic would round)."""
    if precision != "bf16":
        return False
    from fastmmd.backends._triton.terms import SQRT_FAMILIES

    families = np.asarray(terms, dtype=np.float64).reshape(-1, 5)[:, 0]
    return not any(Family(int(f)) in SQRT_FAMILIES for f in families)


def _kernel_precision(precision: str) -> str:
    """The kernels' PRECISION for a public precision name; bf16 products under the interpreter are fp32
    products of operands rounded to bfloat16 (tiles.matmul_nt)."""
    mode = TRITON_PRECISION[precision]
    return "bf16-rounded" if mode == "bf16" and interpreting() else mode


def _on_device(x: torch.Tensor):
    """Launches go to x's GPU (not the current one)."""
    return torch.cuda.device(x.device) if x.is_cuda else contextlib.nullcontext()
