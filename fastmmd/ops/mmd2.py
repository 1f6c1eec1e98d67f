"""mmd2: the squared maximum mean discrepancy between two samples, differentiable in both.

Dispatch: the reference backend computes with torch autograd. A fused backend goes through the custom op
`fastmmd::mmd2_fused`, which returns the value and, when gradients are needed, d MMD²/dx and d MMD²/dy
from the same pass; backward multiplies the saved gradients by the incoming one. The linear-time
estimator is O(n·d) torch code on every backend.
"""
# No `from __future__ import annotations` here: torch < 2.5 reads the custom op's signature from its
# annotations as objects, and cannot parse them as strings.

from typing import List, Tuple

import torch

from fastmmd.backends import get_backend, select_backend
from fastmmd.common.arrays import as_tensors
from fastmmd.common.validation import check_estimator, check_pair, check_precision
from fastmmd.formulas.linear_time import linear_mmd2
from fastmmd.kernels import Kernel, resolve_kernel
from fastmmd.kernels.views import is_view_kernel
from fastmmd.ops.numerics import frame_for, nan_like
from fastmmd.ops.views import sum_over_terms

__all__ = ["mmd2", "mmd2_fused"]

_DOUBLE_BACKWARD = (
    "fastmmd.mmd2: double backward (create_graph=True, a gradient of a gradient) is not supported by the "
    "fused op fastmmd::mmd2_fused, which computes first derivatives only; use backend='reference' for "
    "higher-order derivatives"
)


@torch.library.custom_op("fastmmd::mmd2_fused", mutates_args=(), device_types=("cpu", "cuda"))
def mmd2_fused(
    x: torch.Tensor,
    y: torch.Tensor,
    terms: List[float],
    estimator: str,
    need_grad: bool,
    num_threads: int,
    backend: str,
    precision: str,
) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(MMD², d MMD²/dx, d MMD²/dy) for x (n, d), y (m, d): one fused pass per block.

    terms: the kernel's (T, 5) table (csrc/INTERFACE.md) flattened row-major; estimator: "unbiased",
    "biased" or "u-statistic"; backend: a fused backend (fastmmd.backends.Backend.mmd2_with_grads).
    Without need_grad the two gradients are empty tensors of shape (0,).
    """
    return get_backend(backend).mmd2_with_grads(x, y, terms, estimator, need_grad, precision, num_threads)


@mmd2_fused.register_fake
def _mmd2_fused_fake(x, y, terms, estimator, need_grad, num_threads, backend, precision):
    value = x.new_empty(())
    if need_grad:
        return value, x.new_empty(x.shape), y.new_empty(y.shape)
    return value, x.new_empty((0,)), y.new_empty((0,))


def _setup_context(ctx, inputs, output):
    ctx.need_grad = inputs[4]
    _, grad_x, grad_y = output
    # The saved gradients are results, not functions autograd can differentiate: a second derivative of
    # MMD² needs the Hessian, which the fused pass does not compute (see _backward).
    ctx.mark_non_differentiable(grad_x, grad_y)
    ctx.save_for_backward(grad_x, grad_y)


def _backward(ctx, grad_value, _grad_grad_x, _grad_grad_y):
    # Grad mode is on inside a backward only under create_graph=True, i.e. when the caller wants to
    # differentiate the gradient again. grad_value * saved gradient would then be silently wrong (it
    # treats the gradient as constant in x and y), so refuse.
    if torch.is_grad_enabled():
        raise RuntimeError(_DOUBLE_BACKWARD)
    if not ctx.need_grad:
        raise RuntimeError("fastmmd::mmd2_fused was called with need_grad=False, so it has no gradients to give")
    grad_x, grad_y = ctx.saved_tensors
    return (
        grad_value * grad_x if ctx.needs_input_grad[0] else None,
        grad_value * grad_y if ctx.needs_input_grad[1] else None,
        None,
        None,
        None,
        None,
        None,
        None,
    )


mmd2_fused.register_autograd(_backward, setup_context=_setup_context)


def mmd2(x, y, kernel="gaussian", estimator="unbiased", backend="auto", precision="highest"):
    """MMD² between the samples x (n, d) and y (m, d) -> 0-dim tensor, differentiable in x and y.

    Args:
        x, y: torch tensors or numpy arrays (numpy in gives a numpy scalar out), same d, dtype and device.
        kernel: a `fastmmd.kernels.Kernel` or a name ("gaussian", "rq", "mix_rbf", ...; see
            `fastmmd.kernels.KERNEL_NAMES`); its parameters may be tensors that require grad (a Gaussian's
            bandwidths, a rational quadratic's α and scale, a sum's weights), or a `fastmmd.DeepKernel`: MMD² is
            then differentiable in them too (docs/learned_kernels.md).
        estimator: "unbiased" (default; n, m >= 2), "biased" (V-statistic), "u-statistic" (n = m; also
            drops tr K_XY) or "linear" (Gretton 2012 linear-time, n = m).
        backend: "auto" (the first fast backend that can run the input: "triton" for CUDA tensors, "cpu"
            for CPU tensors), "triton", "cpu" or "reference".
        precision: "highest" (IEEE fp32 / fp64), "tf32" or "bf16" (GPU backends).
    A NaN or an infinity in x or y gives NaN (and NaN gradients); data beyond float32's range are computed
    in a rescaled frame, or refused with a ValueError when the kernel cannot be (docs/numerics.md).
    """
    (x, y), output = as_tensors(x=x, y=y)
    if is_view_kernel(kernel):  # learnable parameters, a DeepKernel: one MMD² per term, on its views
        check_estimator(estimator)
        check_pair(x, y, estimator)
        return output(sum_over_terms(kernel, (x, y), lambda t: mmd2(*t.views, t.kernel, estimator, backend,
                                                                    precision)))
    kernel = resolve_kernel(kernel)
    check_estimator(estimator)
    check_precision(precision)
    check_pair(x, y, estimator)
    chosen = select_backend(backend, x, y, kernel, estimator, precision)
    frame = frame_for(kernel, x, y)
    if not frame.finite:
        return output(nan_like((), x, y))
    x, y, kernel = frame.apply(x), frame.apply(y), frame.kernel
    if not chosen.fused:
        value = chosen.mmd2(x, y, kernel, estimator)
    elif estimator == "linear":
        value = linear_mmd2(x, y, kernel)
    else:
        value = _fused(x, y, kernel, estimator, chosen.name, precision)
    return output(frame.unscale(value))


def _fused(x: torch.Tensor, y: torch.Tensor, kernel: Kernel, estimator: str, backend: str,
           precision: str) -> torch.Tensor:
    terms = kernel.terms(x.shape[1]).ravel().tolist()
    need_grad = torch.is_grad_enabled() and (x.requires_grad or y.requires_grad)
    value, _, _ = mmd2_fused(x, y, terms, estimator, need_grad, torch.get_num_threads(), backend, precision)
    return value
