"""witness: the MMD witness function f(t) = mean_i k(t, x_i) - mean_j k(t, y_j) at many points t.

Two fused products K(t, x)·(1/n) - K(t, y)·(1/m) (fastmmd.ops.kernel_matmul), so f is differentiable in t,
x and y to any order for kernels smooth at a = b: the MMD-GP penalty (‖∇_t f(t)‖ - 1)² of Bińkowski et al.
backpropagates through ∇_t f into the critic's outputs. Memory O((k + n + m)·d), no Gram matrix.
"""
from __future__ import annotations

from fastmmd.backends import select_backend
from fastmmd.common.arrays import as_tensors
from fastmmd.common.validation import check_precision, check_same_space, check_samples
from fastmmd.kernels import resolve_kernel
from fastmmd.ops.kernel_matmul import points_products

__all__ = ["witness"]


def witness(t, x, y, kernel="gaussian", backend="auto", precision="highest"):
    """f(t_l) = mean_i k(t_l, x_i) - mean_j k(t_l, y_j) for t (k, d), x (n, d), y (m, d) -> (k,).

    Tensors or numpy arrays (numpy in, numpy out); differentiable in t, x and y, also twice (kernels other
    than Laplacian and Energy). backend: "auto", "triton", "cpu", "reference"; precision as in `mmd2`.
    A NaN or infinity in a row of t gives NaN there; in x or y, NaN everywhere (docs/numerics.md).
    """
    (t, x, y), output = as_tensors(t=t, x=x, y=y)
    kernel = resolve_kernel(kernel)
    check_precision(precision)
    for name, s in (("t", t), ("x", x), ("y", y)):
        check_samples(s, name)
    check_same_space(t, x, ("t", "x"))
    check_same_space(t, y, ("t", "y"))
    chosen = select_backend(backend, t, x, kernel, None, precision, op="kernel_matmul")
    n, m = x.shape[0], y.shape[0]
    mean_x, mean_y = points_products(t, [(x, x.new_full((n, 1), 1.0 / n)), (y, y.new_full((m, 1), 1.0 / m))],
                                     kernel, chosen, precision)
    return output((mean_x - mean_y)[:, 0])
