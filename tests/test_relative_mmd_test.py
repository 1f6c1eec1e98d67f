"""fastmmd.relative_mmd_test, the three-sample test: its variance against Monte Carlo, its values against
the reference MMD², its direction, the result's kind, and the errors."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import fastmmd
from test_mmd2_and_variance import draw
from tolerances import FLOAT64_RTOL, SAMPLING_RTOL


def test_relative_test_variance_matches_monte_carlo():
    gen = np.random.default_rng(3)
    kernel = fastmmd.Gaussian(bandwidth=2.0)
    differences, variances = [], []
    for _ in range(400):
        result = fastmmd.relative_mmd_test(draw(gen, 120, 3, 0.0), draw(gen, 100, 3, 0.2), draw(gen, 80, 3, 0.4),
                                           kernel, backend="cpu")
        differences.append(float(result.difference))
        variances.append(float(result.std) ** 2)
    assert abs(np.mean(variances) / np.var(differences, ddof=1) - 1.0) < SAMPLING_RTOL


def test_relative_test_values_and_direction():
    gen = np.random.default_rng(4)
    x, y, z = draw(gen, 150, 4, 0.0), draw(gen, 150, 4, 0.1), draw(gen, 150, 4, 1.0)
    result = fastmmd.relative_mmd_test(x, y, z, backend="cpu")
    kid_kernel = fastmmd.Polynomial(degree=3)
    assert float(result.mmd2_xy) == pytest.approx(float(fastmmd.mmd2(x, y, kid_kernel, backend="reference")),
                                                  abs=FLOAT64_RTOL)
    assert float(result.mmd2_xz) == pytest.approx(float(fastmmd.mmd2(x, z, kid_kernel, backend="reference")),
                                                  abs=FLOAT64_RTOL)
    assert result.difference < 0 and result.statistic < -3 and result.p_value < 0.01
    assert all(isinstance(v, torch.Tensor) and v.dtype == torch.float64 and v.dim() == 0 for v in result)
    swapped = fastmmd.relative_mmd_test(x, z, y, backend="cpu")
    assert swapped.p_value > 0.99


def test_numpy_in_numpy_out():
    gen = np.random.default_rng(5)
    x, y, z = (draw(gen, 20, 3, s).numpy() for s in (0.0, 0.2, 0.5))
    assert all(isinstance(v, np.float64) for v in fastmmd.relative_mmd_test(x, y, z, backend="cpu"))


def test_too_few_samples_are_named():
    x = torch.randn(10, 3, dtype=torch.float64)
    with pytest.raises(ValueError, match="z needs at least 4 samples"):
        fastmmd.relative_mmd_test(x, x, x[:2])
