"""The quadratic-time MMD² estimators as weighted pair sums (docs/mmd.md).

With S_xx = Σ_{i,j} k(x_i, x_j), S_yy and S_xy the sums over the three blocks (each possibly leaving out
its diagonal i = j), every quadratic estimator is w_xx·S_xx + w_yy·S_yy + w_xy·S_xy. A fused backend
computes the three pair sums (and their gradients) and combines them with a `PairSumPlan`:

- "unbiased":    S_xx(no diag)/(n(n-1)) + S_yy(no diag)/(m(m-1)) - 2 S_xy/(nm)
- "biased":      S_xx/n² + S_yy/m² - 2 S_xy/(nm)
- "u-statistic": (S_xx(no diag) + S_yy(no diag) - 2 S_xy(no diag)) / (n(n-1)), n = m
"""
from __future__ import annotations

from dataclasses import dataclass

QUADRATIC_ESTIMATORS = ("unbiased", "biased", "u-statistic")


@dataclass(frozen=True)
class PairSumPlan:
    """Which diagonals each block leaves out, and the weight of each block's sum."""

    xx_exclude_diag: bool
    yy_exclude_diag: bool
    xy_exclude_diag: bool
    xx_weight: float
    yy_weight: float
    xy_weight: float

    def combine(self, s_xx, s_yy, s_xy):
        """w_xx·s_xx + w_yy·s_yy + w_xy·s_xy (floats, arrays or tensors: sums or their gradients)."""
        return self.xx_weight * s_xx + self.yy_weight * s_yy + self.xy_weight * s_xy


def pair_sum_plan(estimator: str, n: int, m: int) -> PairSumPlan:
    """The plan of a quadratic estimator for n samples of x and m of y (sizes already validated)."""
    if estimator == "unbiased":
        return PairSumPlan(True, True, False, 1.0 / (n * (n - 1)), 1.0 / (m * (m - 1)), -2.0 / (n * m))
    if estimator == "biased":
        return PairSumPlan(False, False, False, 1.0 / (n * n), 1.0 / (m * m), -2.0 / (n * m))
    if estimator == "u-statistic":
        if n != m:
            raise ValueError(f"estimator='u-statistic' needs n == m; got n={n}, m={m}")
        w = 1.0 / (n * (n - 1))
        return PairSumPlan(True, True, True, w, w, -2.0 * w)
    raise ValueError(f"no pair-sum plan for estimator {estimator!r}; quadratic estimators: {QUADRATIC_ESTIMATORS}")
