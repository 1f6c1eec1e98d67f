"""The pair quantities every kernel is a function of: squared distances, distances, inner products, norms.

A `PairGeometry` is built once per (a, b) and shared by all the terms of a kernel sum, so a mixture of
radial kernels computes its distance matrix once. It has two layouts:

- all pairs (`PairGeometry.all_pairs(a, b)`): a (n, d), b (m, d), every quantity has shape (n, m);
- row pairs (`PairGeometry.row_pairs(a, b)`): a and b (n, d), every quantity has shape (n,) and
  pairs a_i with b_i (the linear-time estimator's layout).

Everything is differentiable (to any order), with finite gradients where a distance or a norm is 0.
"""
from __future__ import annotations

from functools import cached_property

import torch
from torch.utils.checkpoint import checkpoint

# Elements of the (rows, m, d) difference block computed at once by `exact_sq_dist` (32 MiB in float64).
_DIFF_BLOCK_ELEMENTS = 1 << 22


def safe_sqrt(t: torch.Tensor) -> torch.Tensor:
    """sqrt(t) for t >= 0 whose gradient is 0 (not inf) where t == 0, and NaN where t is NaN.

    Both branches of the `where` are finite, so the masked branch contributes a zero gradient instead of
    0 * inf = NaN; t * 0 in the other branch keeps a NaN (a bare 0 there would turn it into distance 0).
    """
    positive = t > 0
    root = torch.sqrt(torch.where(positive, t, torch.ones_like(t)))
    return torch.where(positive, root, torch.where(torch.isnan(t), t, torch.zeros_like(t)))


def _sq_dist_rows(a_rows: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    diff = a_rows[:, None, :] - b[None, :, :]
    return (diff * diff).sum(-1)


def exact_sq_dist(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """|a_i - b_j|² from the differences: a (n, d), b (m, d) -> (n, m), with no cancellation.

    Row blocks are checkpointed, so neither the forward nor autograd keeps an (n, m, d) tensor; backward
    recomputes each block's differences (it stays differentiable to any order).
    """
    n, m, d = a.shape[0], b.shape[0], a.shape[1]
    rows = max(1, _DIFF_BLOCK_ELEMENTS // max(1, m * d))
    if rows >= n:
        return _sq_dist_rows(a, b)
    needs_graph = torch.is_grad_enabled() and (a.requires_grad or b.requires_grad)
    blocks = []
    for start in range(0, n, rows):
        block = a[start : start + rows]
        if needs_graph:
            blocks.append(checkpoint(_sq_dist_rows, block, b, use_reentrant=False))
        else:
            blocks.append(_sq_dist_rows(block, b))
    return torch.cat(blocks)


class PairGeometry:
    """Lazily computed pair quantities of a (n, d) and b (m, d) (or b (n, d) for row pairs)."""

    def __init__(self, a: torch.Tensor, b: torch.Tensor, rowwise: bool):
        if a.dim() != 2 or b.dim() != 2:
            raise ValueError(f"kernel inputs must be 2-D (n, d); got shapes {tuple(a.shape)} and {tuple(b.shape)}")
        if a.shape[1] != b.shape[1]:
            raise ValueError(f"kernel inputs must have the same feature dimension; got {a.shape[1]} and {b.shape[1]}")
        if rowwise and a.shape[0] != b.shape[0]:
            raise ValueError(f"row pairs need as many rows in b as in a; got {a.shape[0]} and {b.shape[0]}")
        self.a = a
        self.b = b
        self.rowwise = rowwise
        # The same tensor on both sides: the diagonal of the distance matrix is exactly 0.
        self._self_pairs = (a is b) and not rowwise

    @classmethod
    def all_pairs(cls, a: torch.Tensor, b: torch.Tensor) -> PairGeometry:
        """Quantities of shape (n, m) over every pair (a_i, b_j)."""
        return cls(a, b, rowwise=False)

    @classmethod
    def row_pairs(cls, a: torch.Tensor, b: torch.Tensor) -> PairGeometry:
        """Quantities of shape (n,) over the pairs (a_i, b_i)."""
        return cls(a, b, rowwise=True)

    @property
    def dim(self) -> int:
        """The feature dimension d."""
        return self.a.shape[1]

    @cached_property
    def sq_norm_a(self) -> torch.Tensor:
        """|a_i|², shaped (n, 1) for all pairs, (n,) for row pairs."""
        s = (self.a * self.a).sum(-1)
        return s if self.rowwise else s[:, None]

    @cached_property
    def sq_norm_b(self) -> torch.Tensor:
        """|b_j|², shaped (1, m) for all pairs, (n,) for row pairs."""
        s = (self.b * self.b).sum(-1)
        return s if self.rowwise else s[None, :]

    @cached_property
    def norm_a(self) -> torch.Tensor:
        """|a_i|, broadcastable like `sq_norm_a`; gradient 0 at a_i = 0."""
        return safe_sqrt(self.sq_norm_a)

    @cached_property
    def norm_b(self) -> torch.Tensor:
        """|b_j|, broadcastable like `sq_norm_b`; gradient 0 at b_j = 0."""
        return safe_sqrt(self.sq_norm_b)

    @cached_property
    def dot(self) -> torch.Tensor:
        """a_iᵀb_j: (n, m) for all pairs, (n,) for row pairs."""
        if self.rowwise:
            return (self.a * self.b).sum(-1)
        return self.a @ self.b.T

    @cached_property
    def sq_dist(self) -> torch.Tensor:
        """|a_i - b_j|², clamped at 0: (n, m) for all pairs (via |a|² + |b|² - 2aᵀb), (n,) for row pairs
        (from the differences, exact)."""
        if self.rowwise:
            diff = self.a - self.b
            return (diff * diff).sum(-1)
        r2 = (self.sq_norm_a + self.sq_norm_b - 2.0 * self.dot).clamp_min(0.0)
        if self._self_pairs:
            eye = torch.eye(r2.shape[0], dtype=torch.bool, device=r2.device)
            r2 = r2.masked_fill(eye, 0.0)
        return r2

    @cached_property
    def dist(self) -> torch.Tensor:
        """|a_i - b_j|, shaped like `sq_dist`; gradient 0 where the points coincide.

        From the differences, not from `sq_dist`: the square root turns the expansion's absolute error
        eps·(|a|² + |b|²) into an error of sqrt(eps)·|a| for near points, and its gradient
        (a - b)/|a - b| into noise.
        """
        if self.rowwise:
            return safe_sqrt(self.sq_dist)
        return safe_sqrt(exact_sq_dist(self.a, self.b))
