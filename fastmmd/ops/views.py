"""The ops on kernels that learn (fastmmd.kernels.views): a sum over the kernel's terms of the same op with a
constant kernel on the term's views, so every backend runs them fused (docs/learned_kernels.md). A learnable
number θ inside a term's kernel (`ParameterTerm`) gets its gradient from the same op with ∂κ/∂θ: the op is
linear in the kernel."""
from __future__ import annotations

from typing import Callable, Sequence

import torch

from fastmmd.kernels.views import ViewTerm, view_terms

__all__ = ["sum_over_terms", "with_parameter_gradients"]

_DOUBLE_BACKWARD = (
    "a kernel parameter learned through its derivative kernel (a rational quadratic's alpha) is differentiable "
    "once: its gradient is the op with ∂k/∂alpha, held constant, so a gradient of that gradient "
    "(create_graph=True) is not supported"
)


class _WithDerivative(torch.autograd.Function):
    """value, with d value / dθ = derivative (value's shape) for a 0-dim θ: the forward passes value through,
    the backward adds Σ grad · derivative to θ."""

    @staticmethod
    def forward(ctx, value, theta, derivative):
        ctx.save_for_backward(derivative)
        ctx.theta_dtype = theta.dtype
        return value.view_as(value)

    @staticmethod
    def backward(ctx, grad):
        if torch.is_grad_enabled():  # create_graph=True: the derivative kernel's result is a constant here
            raise RuntimeError(_DOUBLE_BACKWARD)
        (derivative,) = ctx.saved_tensors
        grad_theta = (grad.to(torch.float64) * derivative.to(torch.float64)).sum()
        return grad, grad_theta.to(ctx.theta_dtype), None


def with_parameter_gradients(term: ViewTerm, value: torch.Tensor, compute: Callable[[ViewTerm], torch.Tensor]
                             ) -> torch.Tensor:
    """`value` = compute(term) made differentiable in the term's kernel parameters: for each θ that requires
    grad (with grad mode on), d value / dθ = compute on the term's detached views with the kernel ∂κ/∂θ."""
    for parameter in term.parameters:
        if not (torch.is_grad_enabled() and parameter.value.requires_grad):
            continue
        with torch.no_grad():
            views = tuple(v.detach() for v in term.views)
            derivative = compute(ViewTerm(1.0, parameter.derivative, views, term.key))
        value = _WithDerivative.apply(value, parameter.value, derivative.detach())
    return value


def sum_over_terms(kernel, samples: Sequence[torch.Tensor], compute: Callable[[ViewTerm], torch.Tensor]
                   ) -> torch.Tensor:
    """Σ_t w_t · compute(term_t) over the terms of `kernel` on `samples`, in the dtype of compute's results."""
    total = None
    for term in view_terms(kernel, *samples):
        value = with_parameter_gradients(term, compute(term), compute)
        weight = term.weight.to(value.dtype) if isinstance(term.weight, torch.Tensor) else term.weight
        total = weight * value if total is None else total + weight * value
    return total
