"""Liu et al.'s (ICML 2020) synthetic two-sample problems and their three kernels, written from the
definitions in their code (fengliu90/DK-for-TST: Deep_Kernel_Blob.py, Deep_Kernel_HDGM.py,
Baselines_*.py; docs/learned_kernels.md has the settings and where they differ here).

Blob: 9 Gaussian blobs on the grid {0, 1, 2}², each point in a uniformly drawn blob. P's blobs are
N(0, 0.03 I); Q's blob i is z·L_i with z ~ N(0, I₂) and L_i the Cholesky factor of Σ_i = [[0.03, c_i], [c_i,
0.03]], c_i = −0.02 − 0.002 i for i < 4, 0 for the centre blob, 0.02 + 0.002 (i − 5) after it (the row vector
times L_i, as their code: the covariance is L_iᵀL_i). Under the null (Type-I) both samples are P's blobs.
HDGM: d dimensions, two modes of n points each at 0 and 0.5·1; P's modes have covariance I, Q's the identity
with ±0.5 between the first two coordinates (+ in the first mode, − in the second).
"""
from __future__ import annotations

import math
from typing import List, Tuple

import numpy as np
import torch

import fastmmd

__all__ = ["blob", "labelled_blob", "hdgm", "LiuDeepKernel", "latent_network", "median_kernel", "MMDOKernel"]

GRID = [(r, c) for r in range(3) for c in range(3)]


def _blob_covariances() -> List[np.ndarray]:
    out = []
    for i in range(9):
        c = -0.02 - 0.002 * i if i < 4 else (0.0 if i == 4 else 0.02 + 0.002 * (i - 5))
        out.append(np.array([[0.03, c], [c, 0.03]]))
    return out


def labelled_blob(points: int, rng: np.random.Generator, alternative: bool = True):
    """(x, y, x_blob, y_blob): the samples of `blob` with the index of each point's blob (GRID order)."""
    def p_blobs():
        which = rng.integers(0, 9, points)
        return rng.standard_normal((points, 2)) * np.sqrt(0.03) + np.array(GRID)[which], which

    x, x_blob = p_blobs()
    if not alternative:
        y, y_blob = p_blobs()
        return x, y, x_blob, y_blob
    factors = [np.linalg.cholesky(s) for s in _blob_covariances()]
    y_blob = rng.integers(0, 9, points)
    z = rng.standard_normal((points, 2))
    y = np.einsum("ni,nij->nj", z, np.stack(factors)[y_blob]) + np.array(GRID)[y_blob]
    return x, y, x_blob, y_blob


def blob(points: int, rng: np.random.Generator, alternative: bool = True) -> Tuple[np.ndarray, np.ndarray]:
    """(x, y), each (points, 2): P's blobs and Q's (or P's again under the null)."""
    x, y, _, _ = labelled_blob(points, rng, alternative)
    return x, y


def hdgm(per_mode: int, d: int, rng: np.random.Generator, alternative: bool = True
         ) -> Tuple[np.ndarray, np.ndarray]:
    """(x, y), each (2·per_mode, d)."""
    means = [np.zeros(d), 0.5 * np.ones(d)]
    x = np.concatenate([rng.standard_normal((per_mode, d)) + mu for mu in means])
    if not alternative:
        return x, np.concatenate([rng.standard_normal((per_mode, d)) + mu for mu in means])
    parts = []
    for sign, mu in zip((1.0, -1.0), means):
        cov = np.eye(d)
        cov[0, 1] = cov[1, 0] = 0.5 * sign
        parts.append(rng.multivariate_normal(mu, cov, per_mode))
    return x, np.concatenate(parts)


def latent_network(d_in: int, hidden: int, d_out: int) -> torch.nn.Module:
    """Their φ: 4 linear layers with Softplus between (PyTorch's default initialisation)."""
    return torch.nn.Sequential(
        torch.nn.Linear(d_in, hidden), torch.nn.Softplus(), torch.nn.Linear(hidden, hidden), torch.nn.Softplus(),
        torch.nn.Linear(hidden, hidden), torch.nn.Softplus(), torch.nn.Linear(hidden, d_out))


class LiuDeepKernel(torch.nn.Module, fastmmd.ViewKernel):
    """MMD-D's kernel with their parametrisation, so that Adam sees the same parameters:
    k = (1 − ε) exp(−|Δφ|²/s_φ − |Δx|²/s_q) + ε exp(−|Δx|²/s_q), ε = sigmoid(eps_opt), s_q = sigma_opt²,
    s_φ = sigma0_opt². As views for fastmmd: exp(−|u − v|²) = Gaussian(bandwidth 1/√2) on (φ/√s_φ, x/√s_q)
    and on x/√s_q."""

    def __init__(self, features: torch.nn.Module, eps_opt: float, sigma_opt: float, sigma0_opt: float):
        super().__init__()
        self.features = features
        self.eps_opt = torch.nn.Parameter(torch.tensor(eps_opt))
        self.sigma_opt = torch.nn.Parameter(torch.tensor(sigma_opt))
        self.sigma0_opt = torch.nn.Parameter(torch.tensor(sigma0_opt))

    def view_terms(self, *samples):
        eps = torch.sigmoid(self.eps_opt)
        root_q, root_phi = self.sigma_opt.abs(), self.sigma0_opt.abs()  # sqrt(s_q), sqrt(s_φ)
        unit = fastmmd.Gaussian(bandwidth=1.0 / math.sqrt(2.0))
        joint, inputs = [], []
        for s in samples:
            scaled = s / root_q
            joint.append(torch.cat([self.features(s) / root_phi, scaled], dim=1))
            inputs.append(scaled)
        return [fastmmd.ViewTerm(1.0 - eps, unit, tuple(joint), ("liu", id(self), 0)),
                fastmmd.ViewTerm(eps, unit, tuple(inputs), ("liu", id(self), 1))]

    def gram(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """The (n, m) matrix, materialised (the comparison of the timing benchmark)."""
        eps = torch.sigmoid(self.eps_opt)
        d_x = torch.cdist(a, b) ** 2
        d_phi = torch.cdist(self.features(a), self.features(b)) ** 2
        s_q, s_phi = self.sigma_opt ** 2, self.sigma0_opt ** 2
        return (1 - eps) * torch.exp(-d_phi / s_phi - d_x / s_q) + eps * torch.exp(-d_x / s_q)


class MMDOKernel(torch.nn.Module):
    """MMD-O: one Gaussian exp(−|Δx|²/s) with s itself trained (their parametrisation), as a callable that
    builds the fastmmd kernel from the current s."""

    def __init__(self, s: float):
        super().__init__()
        self.s = torch.nn.Parameter(torch.tensor(s))

    def forward(self):
        return fastmmd.Gaussian(bandwidth=torch.sqrt(self.s.abs() / 2.0))


def median_kernel(x: torch.Tensor, y: torch.Tensor) -> fastmmd.Gaussian:
    """A Gaussian whose bandwidth is the median distance of the pooled training points."""
    return fastmmd.Gaussian(bandwidth=float(fastmmd.median_bandwidth(x, y)))
