"""The problems of bench/learned_kernels.py against their definitions (Liu et al. 2020's code), by moments
over many draws, and their MMD-D kernel against its formula (python -m pytest bench/test_two_sample_problems.py)."""
from __future__ import annotations

import numpy as np
import torch

from bench.two_sample_problems import GRID, LiuDeepKernel, _blob_covariances, blob, hdgm, labelled_blob, latent_network


def test_blob_p_and_q_have_the_blobs_of_the_definition():
    x, y, x_blob, y_blob = labelled_blob(200_000, np.random.default_rng(0))
    covariances = _blob_covariances()
    for points, labels, covariance in (
            (x, x_blob, lambda i: 0.03 * np.eye(2)),
            # the row vector times the Cholesky factor L, as their code: covariance LᵀL, not Σ = LLᵀ
            (y, y_blob, lambda i: np.linalg.cholesky(covariances[i]).T @ np.linalg.cholesky(covariances[i]))):
        for i in range(9):
            inside = points[labels == i] - np.array(GRID[i])
            np.testing.assert_allclose(inside.mean(0), 0.0, atol=6e-3)  # 4 standard errors
            np.testing.assert_allclose(np.cov(inside.T), covariance(i), atol=1.5e-3)
        np.testing.assert_allclose(np.bincount(labels, minlength=9) / points.shape[0], 1 / 9, atol=0.005)
    np.testing.assert_allclose(covariances[0], [[0.03, -0.02], [-0.02, 0.03]])
    np.testing.assert_allclose(covariances[8], [[0.03, 0.026], [0.026, 0.03]])


def test_hdgm_modes_and_correlations():
    x, y = hdgm(100_000, 10, np.random.default_rng(1))
    for sample, sign in ((x, 0.0), (y, 1.0)):
        first, second = sample[:100_000], sample[100_000:]
        np.testing.assert_allclose(first.mean(0), 0.0, atol=0.02)
        np.testing.assert_allclose(second.mean(0), 0.5, atol=0.02)
        assert abs(np.corrcoef(first[:, 0], first[:, 1])[0, 1] - 0.5 * sign) < 0.02
        assert abs(np.corrcoef(second[:, 0], second[:, 1])[0, 1] + 0.5 * sign) < 0.02
        assert abs(np.corrcoef(first[:, 2], first[:, 3])[0, 1]) < 0.02


def test_the_null_draws_p_twice():
    x, y = blob(50_000, np.random.default_rng(2), alternative=False)
    np.testing.assert_allclose(np.cov(x.T), np.cov(y.T), atol=0.02)


def test_liu_kernel_views_equal_its_gram():
    import fastmmd

    torch.manual_seed(0)
    kernel = LiuDeepKernel(latent_network(2, 8, 5).double(), eps_opt=0.3, sigma_opt=0.7, sigma0_opt=0.4)
    kernel = kernel.double()
    a, b = torch.randn(7, 2, dtype=torch.float64), torch.randn(5, 2, dtype=torch.float64)
    gram = kernel.gram(a, b)
    terms = kernel.view_terms(a, b)
    fused = sum(t.weight * t.kernel.gram(*t.views) for t in terms)
    torch.testing.assert_close(fused, gram, rtol=1e-12, atol=1e-14)
    assert float(fastmmd.mmd2(a, b, kernel, backend="cpu")) == float(fastmmd.mmd2(a, b, kernel, backend="cpu"))
