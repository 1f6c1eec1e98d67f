"""The CPU backend: the C++ fused pair sums of `fastmmd._C_<variant>` (csrc/INTERFACE.md), OpenMP-parallel;
the variant is the best build for this CPU (fastmmd.backends.cpu_variants).

A quadratic estimator is three pair sums (XX and YY symmetric, XY), each with its gradients from the
same pass, combined by the estimator's `PairSumPlan`. Memory beyond inputs and outputs: O((n + m)·d).
The extension is imported on first use; if that fails, the ImportError is the reason the backend is
unavailable.
"""
from __future__ import annotations

from types import ModuleType
from typing import List, Optional, Tuple

import numpy as np
import torch

from fastmmd.backends._base import Backend, Capabilities, LazyImport, polynomial_degree_reasons
from fastmmd.backends.cpu_variants import ENV_VARIABLE, VariantChoice, choose_variant
from fastmmd.common.validation import ESTIMATORS
from fastmmd.formulas.estimators import pair_sum_plan
from fastmmd.kernels import MAX_COMPILED_DEGREE, SHIFT_INVARIANT_MMD_FAMILIES, TRANSLATION_INVARIANT_FAMILIES, Kernel


def _explain(exc: ImportError) -> str:
    if ENV_VARIABLE in str(exc):  # a variant asked for that cannot run: building again would not help
        return f"the C++ extension cannot be used: {exc}"
    return f"the C++ extension cannot be used ({exc}); build it with `pip install --no-build-isolation -e .`"


_variant = LazyImport(choose_variant, _explain)


def _load_extension() -> Tuple[Optional[ModuleType], Optional[str]]:
    """(the chosen fastmmd._C_<variant> module, None), or (None, why none can be used)."""
    choice, reason = _variant.get()
    return (None, reason) if choice is None else (choice.module, None)


def cpu_variant() -> Tuple[Optional[VariantChoice], Optional[str]]:
    """(the variant the backend runs, None), or (None, why none can be used)."""
    return _variant.get()


def _ext() -> ModuleType:
    """The chosen extension module, or a RuntimeError saying why the cpu backend cannot run."""
    return _variant.require("cpu").module


def _as_numpy_inputs(x: torch.Tensor, y: torch.Tensor, center: bool) -> Tuple[np.ndarray, np.ndarray]:
    """C-contiguous numpy views (or copies) of x and y for the C++ side.

    With `center` (the MMD² is shift-invariant), both are shifted by their pooled mean (computed in float64):
    the estimate does not change, but |a|² + |b|² - 2aᵀb then cancels far less in fp32.
    """
    x, y = x.detach(), y.detach()
    if center:
        f64 = torch.float64
        mean = (x.sum(0, dtype=f64) + y.sum(0, dtype=f64)) / (x.shape[0] + y.shape[0])
        x = (x.to(f64) - mean).to(x.dtype)
        y = (y.to(f64) - mean).to(y.dtype)
    return x.contiguous().numpy(), y.contiguous().numpy()


def _block_inputs(a: torch.Tensor, b: torch.Tensor, table: np.ndarray,
                  symmetric: bool = False) -> Tuple[np.ndarray, np.ndarray]:
    """a and b for one block of the kernel `table`: centred on their pooled mean when every term is
    translation invariant (the block's kernel values do not change then). A symmetric block (b is a) gets
    the same array twice, converted once (the mean of a alone is the pooled mean of a and a, to the bit)."""
    center = all(int(f) in TRANSLATION_INVARIANT_FAMILIES for f in table[:, 0])
    if symmetric:
        aa, _ = _as_numpy_inputs(a, a[:0], center)
        return aa, aa
    return _as_numpy_inputs(a, b, center)


class CpuBackend(Backend):
    name = "cpu"
    fused = True
    capabilities = Capabilities(
        devices=("cpu",),
        dtypes=(torch.float32, torch.float64),
        precisions=("highest",),
        estimators=ESTIMATORS,
    )

    def unavailable_reason(self) -> Optional[str]:
        return _load_extension()[1]

    def kernel_reasons(self, kernel: Kernel, d: int) -> List[str]:
        return polynomial_degree_reasons(kernel.terms(d), MAX_COMPILED_DEGREE)

    def mmd2_with_grads(self, x, y, terms, estimator, need_grad, precision, num_threads):
        """Three C++ pair sums (XX and YY symmetric, XY), each with its gradients, combined by the estimator's
        plan; inputs shifted by their pooled mean when the MMD² is shift invariant."""
        ext = _ext()
        table = np.asarray(terms, dtype=np.float64).reshape(-1, 5)
        n, m = x.shape[0], y.shape[0]
        plan = pair_sum_plan(estimator, n, m)
        center = all(int(f) in SHIFT_INVARIANT_MMD_FAMILIES for f in table[:, 0])
        xa, ya = _as_numpy_inputs(x, y, center)
        s_xx, g_xx, _ = ext.pair_sum(xa, xa, table, True, plan.xx_exclude_diag, need_grad, num_threads)
        s_yy, g_yy, _ = ext.pair_sum(ya, ya, table, True, plan.yy_exclude_diag, need_grad, num_threads)
        s_xy, g_xy_x, g_xy_y = ext.pair_sum(xa, ya, table, False, plan.xy_exclude_diag, need_grad, num_threads)
        value = torch.tensor(plan.combine(s_xx, s_yy, s_xy), dtype=x.dtype)
        if not need_grad:
            return value, x.new_empty((0,)), y.new_empty((0,))
        grad_x = plan.xx_weight * g_xx + plan.xy_weight * g_xy_x
        grad_y = plan.yy_weight * g_yy + plan.xy_weight * g_xy_y
        return value, torch.from_numpy(grad_x), torch.from_numpy(grad_y)

    def pair_sum(self, a, b, terms, symmetric, exclude_diag, need_grad, precision, num_threads):
        """The C++ pair_sum pass (csrc/INTERFACE.md) on one block; translation-invariant kernels see a and b
        shifted by their pooled mean (the block sum itself is unchanged)."""
        ext = _ext()
        table = np.asarray(terms, dtype=np.float64).reshape(-1, 5)
        aa, ba = _block_inputs(a, b, table, symmetric)
        total, grad_a, grad_b = ext.pair_sum(aa, ba, table, symmetric, exclude_diag, need_grad, num_threads)
        total = torch.tensor(total, dtype=torch.float64)
        if not need_grad:
            return total, None, None
        return total, torch.from_numpy(grad_a), None if symmetric else torch.from_numpy(grad_b)

    def kernel_matmul(self, a, b, v, terms, exclude_diag, want_sq, precision, num_threads):
        """The C++ kernel_matmul pass; translation-invariant kernels see a and b shifted by their pooled mean
        (same values, less cancellation in |a|² + |b|² - 2aᵀb)."""
        ext = _ext()
        table = np.asarray(terms, dtype=np.float64).reshape(-1, 5)
        aa, ba = _block_inputs(a, b, table)
        va = v.detach().contiguous().numpy()
        out, sq = ext.kernel_matmul(aa, ba, va, table, exclude_diag, want_sq, num_threads)
        return torch.from_numpy(out), (torch.from_numpy(sq) if want_sq else a.new_empty((0,)))

    def pair_stats(self, a, b, terms, symmetric, exclude_diag, precision, num_threads):
        """The C++ pair_stats pass (csrc/INTERFACE.md): each unordered pair once for a symmetric block."""
        ext = _ext()
        table = np.asarray(terms, dtype=np.float64).reshape(-1, 5)
        aa, ba = _block_inputs(a, b, table, symmetric)
        total, rows, cols, squares = ext.pair_stats(aa, ba, table, symmetric, exclude_diag, num_threads)
        return total, torch.from_numpy(rows), None if cols is None else torch.from_numpy(cols), squares
