"""mmd2_and_variance: the variance estimate against the Monte-Carlo variance of MMD²ᵤ over resampled data,
the value against the float64 reference, and the moment identities of fastmmd.formulas.moments against sums
over explicit index tuples."""
from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

import fastmmd
from cases import CASE_BY_NAME
from conftest import sample_xy
from fastmmd.formulas.moments import CrossBlock, SelfBlock
from tolerances import SAME_ARITHMETIC_RTOL, SAMPLING_RTOL

KERNEL = fastmmd.Gaussian(bandwidth=2.0)


def draw(gen, n, d, shift):
    return torch.from_numpy(gen.standard_normal((n, d)) + shift)


@pytest.mark.parametrize("n, m, shift", [(200, 200, 0.0), (200, 200, 0.3), (60, 150, 0.3)])
def test_variance_matches_monte_carlo(n, m, shift):
    """Over 500 resampled (x, y) the mean variance estimate is within 15% of the estimator's variance."""
    gen = np.random.default_rng(n + m)
    values, estimates = [], []
    for _ in range(500):
        value, variance = fastmmd.mmd2_and_variance(draw(gen, n, 3, 0.0), draw(gen, m, 3, shift), KERNEL,
                                                    backend="cpu")
        values.append(float(value))
        estimates.append(float(variance))
    monte_carlo = np.var(values, ddof=1)
    assert abs(np.mean(estimates) / monte_carlo - 1.0) < SAMPLING_RTOL


@pytest.mark.parametrize("backend", ["cpu", "reference"])
@pytest.mark.parametrize("case_name", ["gaussian_mix", "rq_1dot", "laplacian", "polynomial"])
def test_value_is_the_unbiased_mmd2(case_name, backend):
    case = CASE_BY_NAME[case_name]
    x, y = sample_xy(41, 23, 5, seed=8)
    value, variance = fastmmd.mmd2_and_variance(x, y, case.make(5), backend=backend)
    expected = fastmmd.mmd2(x, y, case.make(5), backend="reference")
    assert abs(float(value) - float(expected)) < 1e-10 * max(1.0, abs(float(expected)))
    assert np.isfinite(float(variance))


def test_float32_cpu_agrees_with_the_reference():
    x, y = sample_xy(64, 48, 6, seed=9)
    kernel = CASE_BY_NAME["gaussian_mix"].make(6)
    v32, var32 = fastmmd.mmd2_and_variance(x.float(), y.float(), kernel, backend="cpu")
    v64, var64 = fastmmd.mmd2_and_variance(x, y, kernel, backend="reference")
    assert abs(float(v32) - float(v64)) < 1e-5
    assert abs(float(var32) - float(var64)) < 1e-4 * abs(float(var64))


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("case_name", ["gaussian_mix", "rq_1dot", "laplacian", "energy"])
def test_one_pass_statistics_equal_the_products(case_name, dtype, monkeypatch):
    """The C++ one-pass statistics (each unordered pair of a symmetric block once) against the brute force,
    and the route through kernel_matmul products that backends without that pass take."""
    from brute_force import gram
    from fastmmd.backends import get_backend
    from fastmmd.statistics.block_stats import cross_block, self_block

    case, cpu = CASE_BY_NAME[case_name], get_backend("cpu")
    x64, y64 = sample_xy(211, 97, 5, seed=12)
    x, y, kernel = x64.to(dtype), y64.to(dtype), case.make(5)
    K_xx = gram(case.terms(5), x64.numpy(), x64.numpy())
    np.fill_diagonal(K_xx, 0.0)
    K_xy = gram(case.terms(5), x64.numpy(), y64.numpy())
    tol = 1e-12 if dtype == torch.float64 else 1e-6
    routes = {"one pass": (self_block(x, kernel, cpu, "highest"), cross_block(x, y, kernel, cpu, "highest"))}
    monkeypatch.setattr(type(cpu), "pair_stats", lambda self, *args: None)
    routes["products"] = (self_block(x, kernel, cpu, "highest"), cross_block(x, y, kernel, cpu, "highest"))
    for route, (xx, xy) in routes.items():
        for got, want in ((xx.rows, K_xx.sum(1)), (xy.rows, K_xy.sum(1)), (xy.cols, K_xy.sum(0)),
                          (xx.squares, (K_xx ** 2).sum()), (xy.squares, (K_xy ** 2).sum())):
            scale = float(np.max(np.abs(want)))
            assert float(np.max(np.abs(got.numpy() - want))) <= tol * scale, route


def _explicit_moments(K):
    """Means over distinct index tuples of a symmetric block with zero diagonal, by enumeration."""
    n = K.shape[0]
    triples = [K[i, j] * K[i, l] for i, j, l in itertools.permutations(range(n), 3)]
    quads = [K[i, j] * K[l, o] for i, j, l, o in itertools.permutations(range(n), 4)]
    return np.mean(triples), np.mean(quads)


def test_self_block_moments_equal_sums_over_distinct_indices():
    gen = np.random.default_rng(0)
    K = gen.random((7, 7))
    K = K + K.T
    np.fill_diagonal(K, 0.0)
    block = SelfBlock(torch.from_numpy(K.sum(1)), torch.tensor((K * K).sum()))
    triple, quad = _explicit_moments(K)
    assert float(block.mean_squared) == pytest.approx(quad, rel=SAME_ARITHMETIC_RTOL)
    n = 7
    zeta1 = triple - quad
    zeta2 = (K * K).sum() / (n * (n - 1)) - quad
    expected = (4 * (n - 2) * zeta1 + 2 * zeta2) / (n * (n - 1))
    assert float(block.variance()) == pytest.approx(expected, rel=SAME_ARITHMETIC_RTOL)


def test_cross_block_mean_squared_equals_sum_over_distinct_indices():
    K = np.random.default_rng(1).random((5, 6))
    block = CrossBlock(torch.from_numpy(K.sum(1)), torch.from_numpy(K.sum(0)), torch.tensor((K * K).sum()))
    pairs = [K[i, j] * K[l, o] for i, l in itertools.permutations(range(5), 2)
             for j, o in itertools.permutations(range(6), 2)]
    assert float(block.mean_squared) == pytest.approx(np.mean(pairs), rel=SAME_ARITHMETIC_RTOL)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda x: fastmmd.mmd2_and_variance(x[:3], x), "x needs at least 4 samples"),
        (lambda x: fastmmd.mmd2_and_variance(x, x[:, :2]), "same number of features"),
        (lambda x: fastmmd.mmd2_and_variance(x, x, precision="fp8"), "precision"),
    ],
)
def test_bad_input_names_the_argument(call, match):
    with pytest.raises(ValueError, match=match):
        call(torch.randn(10, 3, dtype=torch.float64))


def test_numpy_in_numpy_out():
    x, y = sample_xy(12, 10, 3, seed=2)
    value, variance = fastmmd.mmd2_and_variance(x.numpy(), y.numpy(), KERNEL, backend="cpu")
    assert isinstance(value, np.floating) and isinstance(variance, np.floating)
