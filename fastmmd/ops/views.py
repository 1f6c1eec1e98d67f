"""The ops on kernels that learn (fastmmd.kernels.views): a sum over the kernel's terms of the same op with a
constant kernel on the term's views, so every backend runs them fused (docs/learned_kernels.md)."""
from __future__ import annotations

from typing import Callable, Sequence

import torch

from fastmmd.kernels.views import ViewTerm, view_terms

__all__ = ["sum_over_terms"]


def sum_over_terms(kernel, samples: Sequence[torch.Tensor], compute: Callable[[ViewTerm], torch.Tensor]
                   ) -> torch.Tensor:
    """Σ_t w_t · compute(term_t) over the terms of `kernel` on `samples`, in the dtype of compute's results."""
    total = None
    for term in view_terms(kernel, *samples):
        value = compute(term)
        weight = term.weight.to(value.dtype) if isinstance(term.weight, torch.Tensor) else term.weight
        total = weight * value if total is None else total + weight * value
    return total
