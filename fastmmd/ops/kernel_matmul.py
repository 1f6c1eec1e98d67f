"""kernel_matmul: K(a, b) @ v without forming K, differentiable in a, b and v to any order.

The fused backends run the custom op `fastmmd::kernel_matmul_fused`. Its backward is written with the same
op (fastmmd.kernels.derivatives): for g = d loss / d out (n, p),
    d/dv = K(b, a) @ g
    d/da = 2 a ⊙ rowsum(g ⊙ K_r(a, b) @ v) + Σ_c g_c ⊙ (K_c(a, b) @ (v_c ⊙ b))
    d/db = 2 b ⊙ rowsum(v ⊙ K_r(b, a) @ g) + Σ_c v_c ⊙ (K_c(b, a) @ (g_c ⊙ a))
with K_r = dk/dr² and K_c = dk/d(aᵀb) - 2 dk/dr² (kernels again), so a backward through the backward
(the MMD-GP penalty, gradgradcheck) is more of the same op. Derivatives in a and b need a kernel that is
smooth at a = b (not Laplacian or Energy); d/dv works for every kernel. The reference backend computes
K in float64 with torch and lets autograd differentiate it.
"""
# No `from __future__ import annotations` here: torch < 2.5 reads the custom op's signature from its
# annotations as objects, and cannot parse them as strings.

import math
from typing import List, Tuple

import numpy as np
import torch

from fastmmd.backends import Backend, get_backend, select_backend
from fastmmd.common.arrays import as_tensors
from fastmmd.common.validation import check_precision, check_same_space, check_samples
from fastmmd.kernels import Kernel, resolve_kernel
from fastmmd.kernels.derivatives import gradient_tables
from fastmmd.kernels.views import is_view_kernel
from fastmmd.ops.numerics import frame_for, magnitudes, nan_like, with_bad_rows
from fastmmd.ops.views import sum_over_terms

__all__ = ["kernel_matmul", "kernel_products", "points_products", "point_gradient"]


@torch.library.custom_op("fastmmd::kernel_matmul_fused", mutates_args=(), device_types=("cpu", "cuda"))
def kernel_matmul_fused(
    a: torch.Tensor,
    b: torch.Tensor,
    v: torch.Tensor,
    terms: List[float],
    exclude_diag: bool,
    want_sq: bool,
    num_threads: int,
    backend: str,
    precision: str,
) -> Tuple[torch.Tensor, torch.Tensor]:
    """(K(a, b) @ v (n, p), row sums of K∘K (n,) or an empty (0,) tensor without want_sq) for a (n, d),
    b (m, d), v (m, p). terms: the kernel's (T, 5) table flattened; exclude_diag (n = m) leaves out i = j."""
    return get_backend(backend).kernel_matmul(a, b, v, terms, exclude_diag, want_sq, precision, num_threads)


@kernel_matmul_fused.register_fake
def _kernel_matmul_fused_fake(a, b, v, terms, exclude_diag, want_sq, num_threads, backend,
                              precision):
    return a.new_empty((a.shape[0], v.shape[1])), a.new_empty((a.shape[0],) if want_sq else (0,))


def _setup_context(ctx, inputs, output):
    a, b, v, terms, exclude_diag, _, num_threads, backend, precision = inputs
    ctx.mark_non_differentiable(output[1])
    ctx.save_for_backward(a, b, v)
    ctx.options = (terms, exclude_diag, num_threads, backend, precision)


def _product(a, b, v, table: np.ndarray, options) -> torch.Tensor:
    """K_table(a, b) @ v through the (differentiable) op; zeros for an empty table."""
    _, exclude_diag, num_threads, backend, precision = options
    if table.shape[0] == 0:
        return a.new_zeros((a.shape[0], v.shape[1]))
    out, _ = kernel_matmul_fused(a, b, v.contiguous(), table.ravel().tolist(), exclude_diag, False, num_threads,
                                 backend, precision)
    return out


def point_gradient(a, b, v, g, tables, options) -> torch.Tensor:
    """d/da of Σ_i g_i · (K(a, b) @ v)_i: a (n, d), b (m, d), v (m, p), g (n, p) -> (n, d)."""
    m, p, d = b.shape[0], v.shape[1], a.shape[1]
    radial = _product(a, b, v, tables.radial, options)  # (n, p)
    weighted_b = (v[:, :, None] * b[:, None, :]).reshape(m, p * d)
    combined = _product(a, b, weighted_b, tables.combined, options).reshape(-1, p, d)
    return 2.0 * a * (g * radial).sum(1, keepdim=True) + torch.einsum("nc,ncd->nd", g, combined)


def _backward(ctx, grad_out, _grad_sq):
    a, b, v = ctx.saved_tensors
    terms = ctx.options[0]
    grad_a = grad_b = grad_v = None
    if ctx.needs_input_grad[2]:
        grad_v = _product(b, a, grad_out, np.asarray(terms).reshape(-1, 5), ctx.options)
    if ctx.needs_input_grad[0] or ctx.needs_input_grad[1]:
        tables = gradient_tables(np.asarray(terms, dtype=np.float64).reshape(-1, 5))
        if ctx.needs_input_grad[0]:
            grad_a = point_gradient(a, b, v, grad_out, tables, ctx.options)
        if ctx.needs_input_grad[1]:
            grad_b = point_gradient(b, a, grad_out, v, tables, ctx.options)
    return grad_a, grad_b, grad_v, None, None, None, None, None, None


kernel_matmul_fused.register_autograd(_backward, setup_context=_setup_context)


def kernel_products(a: torch.Tensor, b: torch.Tensor, v: torch.Tensor, kernel: Kernel, backend: Backend,
                    precision: str, exclude_diag: bool = False, want_sq: bool = False
                    ) -> Tuple[torch.Tensor, torch.Tensor]:
    """(K(a, b) @ v, row sums of K∘K or an empty tensor) on a chosen backend, for inputs already checked.

    a (n, d), b (m, d), v (m, p) -> (n, p), (n,). The reference backend's product is a torch graph; the fused
    ones go through `fastmmd::kernel_matmul_fused`. exclude_diag needs n = m.
    """
    if not backend.fused:  # a torch graph, differentiable to any order
        return backend.kernel_matmul(a, b, v, kernel.terms(a.shape[1]), exclude_diag, want_sq, precision,
                                     torch.get_num_threads())
    terms = kernel.terms(a.shape[1]).ravel().tolist()
    return kernel_matmul_fused(a, b, v.contiguous(), terms, exclude_diag, want_sq, torch.get_num_threads(),
                               backend.name, precision)


def kernel_matmul(a, b, v, kernel="gaussian", backend="auto", precision="highest"):
    """K(a, b) @ v without forming the (n, m) matrix K, differentiable in a, b and v.

    Args:
        a: (n, d) points, b: (m, d) points (tensors or numpy arrays; same d, dtype and device).
        v: (m,) or (m, p) weights, same dtype and device; the result has v's shape with n rows.
        kernel: a `fastmmd.kernels.Kernel` or a name; derivatives in a and b need one that is smooth at
            a = b (every kernel but Laplacian and Energy); derivatives in v work for all. Learnable
            parameters and `fastmmd.DeepKernel` as in `mmd2` (docs/learned_kernels.md).
        backend: "auto", "triton", "cpu" or "reference"; precision: "highest", "tf32", "bf16" (GPU).
    Returns: (n,) or (n, p): out_i = Σ_j k(a_i, b_j) v_j. Memory beyond the output: O((n + m)·d + m·p).
    A NaN or infinity in a row of a makes that row of the result NaN; in b or v, the whole result
    (docs/numerics.md).
    """
    (a, b, v), output = as_tensors(a=a, b=b, v=v)
    if is_view_kernel(kernel):  # learnable parameters, a DeepKernel: one product per term, on its views
        check_weights(v, b, "v")
        return output(sum_over_terms(kernel, (a, b), lambda t: kernel_matmul(*t.views, v, t.kernel, backend,
                                                                             precision)))
    kernel = resolve_kernel(kernel)
    check_precision(precision)
    check_samples(a, "a")
    check_samples(b, "b")
    check_same_space(a, b, ("a", "b"))
    vector = v.dim() == 1
    check_weights(v, b, "v")
    chosen = select_backend(backend, a, b, kernel, None, precision, op="kernel_matmul")
    v2 = v[:, None] if vector else v
    out = points_products(a, [(b, v2)], kernel, chosen, precision)[0]
    return output(out[:, 0] if vector else out)


def points_products(a: torch.Tensor, pairs, kernel: Kernel, backend: Backend, precision: str):
    """[K(a, b) @ v for (b, v) in pairs] for inputs already checked, under the rules of docs/numerics.md:
    NaN rows where a row of a is not finite, all NaN where some b or v is; data outside float32's range
    computed in a rescaled frame (or refused). a (n, d), each b (m, d), v (m, p) -> a list of (n, p)."""
    sizes = magnitudes(a, *(t for pair in pairs for t in pair))
    if not all(math.isfinite(s) for s in sizes[1:]):
        return [nan_like((a.shape[0], v.shape[1]), a, b, v) for b, v in pairs]
    if not math.isfinite(sizes[0]):
        results = []
        for index in range(len(pairs)):
            def compute(clean, index=index):
                return points_products(clean, pairs, kernel, backend, precision)[index]
            results.append(with_bad_rows(a, compute, pairs[index][1].shape[1]))
        return results
    frame = frame_for(kernel, a, *(b for b, _ in pairs), magnitude=max(sizes[0], *sizes[1::2]))
    a = frame.apply(a)
    return [frame.unscale(kernel_products(a, frame.apply(b), v, frame.kernel, backend, precision)[0])
            for b, v in pairs]


def check_weights(v: torch.Tensor, b: torch.Tensor, name: str) -> None:
    """v: (m,) or (m, p) with p >= 1, b's row count, dtype and device."""
    if v.dim() not in (1, 2):
        raise ValueError(f"{name} must be 1-D (m,) or 2-D (m, p); got shape {tuple(v.shape)}")
    if v.shape[0] != b.shape[0]:
        raise ValueError(f"{name} must have one row per point of b: b has {b.shape[0]}, {name} {tuple(v.shape)}")
    if v.dim() == 2 and v.shape[1] == 0:
        raise ValueError(f"{name} has no columns; shape {tuple(v.shape)}")
    if v.dtype != b.dtype:
        raise TypeError(f"{name} must have the dtype of the points ({b.dtype}); got {v.dtype}")
    if v.device != b.device:
        raise ValueError(f"{name} must be on the device of the points ({b.device}); got {v.device}")
