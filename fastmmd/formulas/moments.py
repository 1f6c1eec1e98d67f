"""Unbiased estimates of the variance and covariances of the U-statistics that make up MMD²_u, from the
row sums, column sums and sums of squares of the kernel blocks (no n×m matrix; docs/mmd.md).

With samples X (n), Y (m) and U_XX = Σ_{i≠j} k(x_i, x_j) / (n(n-1)), U_XY = Σ_{i,j} k(x_i, y_j) / (nm):
    Var U_XX      = (4(n-2) ζ₁ + 2 ζ₂) / (n(n-1)),  ζ₁ = E k(x,x')k(x,x'') - μ², ζ₂ = E k(x,x')² - μ²
    Var U_XY      = (ζ₁₁ + (m-1) ζ₁₀ + (n-1) ζ₀₁) / (nm),  ζ₁₀ = E k(x,y)k(x,y') - μ², ζ₀₁ = E k(x,y)k(x',y) - μ²
    Cov(U_XX, U_XY) = 2 (E k(x,x')k(x,y) - μ_XX μ_XY) / n
    Cov(U_XY, U_XZ) = (E k(x,y)k(x,z) - μ_XY μ_XZ) / n
(x, x', x'', ... distinct draws). Each expectation, and each product of means, is estimated without bias
by averaging over distinct indices, which the row sums give in closed form; so the variance estimates are
unbiased (and, like any unbiased variance estimate, can come out slightly negative for tiny samples).
Everything here is float64 torch on whatever device the sums live.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class SelfBlock:
    """A sample against itself, diagonal left out: rows[i] = Σ_{j≠i} k(x_i, x_j) (n,), squares =
    Σ_{i≠j} k(x_i, x_j)² (0-dim). Needs n >= 4."""

    rows: torch.Tensor
    squares: torch.Tensor

    @property
    def n(self) -> int:
        return self.rows.shape[0]

    @property
    def total(self) -> torch.Tensor:
        return self.rows.sum()

    @property
    def mean(self) -> torch.Tensor:
        """U_XX, the unbiased estimate of E k(x, x')."""
        n = self.n
        return self.total / (n * (n - 1))

    @property
    def mean_squared(self) -> torch.Tensor:
        """Unbiased estimate of (E k(x, x'))², from pairs of pairs with four distinct indices."""
        n, r = self.n, self.rows
        return (self.total ** 2 - 4 * (r * r).sum() + 2 * self.squares) / (n * (n - 1) * (n - 2) * (n - 3))

    def variance(self) -> torch.Tensor:
        """Unbiased estimate of Var U_XX."""
        n, r = self.n, self.rows
        mu2 = self.mean_squared
        zeta1 = ((r * r).sum() - self.squares) / (n * (n - 1) * (n - 2)) - mu2
        zeta2 = self.squares / (n * (n - 1)) - mu2
        return (4 * (n - 2) * zeta1 + 2 * zeta2) / (n * (n - 1))


@dataclass(frozen=True)
class CrossBlock:
    """Two samples: rows[i] = Σ_j k(x_i, y_j) (n,), cols[j] = Σ_i k(x_i, y_j) (m,), squares = Σ k² (0-dim)."""

    rows: torch.Tensor
    cols: torch.Tensor
    squares: torch.Tensor

    @property
    def n(self) -> int:
        return self.rows.shape[0]

    @property
    def m(self) -> int:
        return self.cols.shape[0]

    @property
    def total(self) -> torch.Tensor:
        return self.rows.sum()

    @property
    def mean(self) -> torch.Tensor:
        """U_XY, the unbiased estimate of E k(x, y)."""
        return self.total / (self.n * self.m)

    @property
    def mean_squared(self) -> torch.Tensor:
        """Unbiased estimate of (E k(x, y))², from pairs of pairs (i, j), (l, o) with i ≠ l and j ≠ o."""
        n, m, a, b = self.n, self.m, self.rows, self.cols
        return (self.total ** 2 - (a * a).sum() - (b * b).sum() + self.squares) / (n * (n - 1) * m * (m - 1))

    def variance(self) -> torch.Tensor:
        """Unbiased estimate of Var U_XY."""
        n, m, a, b = self.n, self.m, self.rows, self.cols
        mu2 = self.mean_squared
        zeta11 = self.squares / (n * m) - mu2
        zeta10 = ((a * a).sum() - self.squares) / (n * m * (m - 1)) - mu2
        zeta01 = ((b * b).sum() - self.squares) / (m * n * (n - 1)) - mu2
        return (zeta11 + (m - 1) * zeta10 + (n - 1) * zeta01) / (n * m)


def covariance_self_cross(block: SelfBlock, cross_sums: torch.Tensor, cross: CrossBlock) -> torch.Tensor:
    """Unbiased estimate of Cov(U_XX, U_XY), where X is the sample of `block` and `cross_sums` are the sums of
    the cross block over the other sample for each point of X (cross.rows if X is the cross block's row
    sample, cross.cols if it is the column sample)."""
    n = block.n
    other = cross.n * cross.m // n
    r = block.rows
    joint = (r * cross_sums).sum()
    e_product = joint / (n * (n - 1) * other)
    product_of_means = (block.total * cross.total - 2 * joint) / (n * (n - 1) * (n - 2) * other)
    return 2 * (e_product - product_of_means) / n


def covariance_cross_cross(rows_y: torch.Tensor, total_y: torch.Tensor, m_y: int,
                           rows_z: torch.Tensor, total_z: torch.Tensor, m_z: int) -> torch.Tensor:
    """Unbiased estimate of Cov(U_XY, U_XZ) for two cross blocks sharing the sample X (n): rows_y[i] =
    Σ_j k(x_i, y_j), rows_z[i] = Σ_o k(x_i, z_o)."""
    n = rows_y.shape[0]
    joint = (rows_y * rows_z).sum()
    e_product = joint / (n * m_y * m_z)
    product_of_means = (total_y * total_z - joint) / (n * (n - 1) * m_y * m_z)
    return (e_product - product_of_means) / n


def mmd2_unbiased_variance(xx: SelfBlock, yy: SelfBlock, xy: CrossBlock) -> torch.Tensor:
    """Unbiased estimate of Var(MMD²_u) = Var U_XX + Var U_YY + 4 Var U_XY - 4 Cov(U_XX, U_XY) - 4 Cov(U_YY, U_XY)."""
    return (xx.variance() + yy.variance() + 4 * xy.variance()
            - 4 * covariance_self_cross(xx, xy.rows, xy) - 4 * covariance_self_cross(yy, xy.cols, xy))
