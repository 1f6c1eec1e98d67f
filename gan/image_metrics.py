"""FID and Inception Score from embeddings (gan.embedding.Embedding: features (N, F), logits (N, K)).

- FID (Heusel et al. 2017): the Fréchet distance between Gaussians fitted to two sets of pool3 features,
  ‖μ₁ − μ₂‖² + tr Σ₁ + tr Σ₂ − 2 tr (Σ₁Σ₂)^{1/2}, with sample means and unbiased (N − 1) covariances as in
  TTUR, pytorch-fid (np.cov) and torch-fidelity. Strongly biased for small N: compare values only at equal N
  (KID, fastmmd.kid, is the unbiased alternative; docs/kid.md).
- Inception Score (Salimans et al. 2016): exp(E_x KL(p(y|x) ‖ p(y))), averaged over splits, as in the original
  improved-gan code and torch-fidelity.
Everything is computed in float64; no scipy.
"""
from __future__ import annotations

import math
from typing import Tuple

import torch

__all__ = ["fid", "frechet_distance", "inception_score"]


def _float64(value, name: str, ndim: int) -> torch.Tensor:
    tensor = torch.as_tensor(value).detach()
    if tensor.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimension{'s' if ndim > 1 else ''}, got shape "
                         f"{tuple(tensor.shape)}")
    if not (tensor.is_floating_point() or tensor.dtype in (torch.int32, torch.int64)):
        raise ValueError(f"{name} must be real numbers, got dtype {tensor.dtype}")
    tensor = tensor.to(device="cpu", dtype=torch.float64)
    if not bool(torch.isfinite(tensor).all()):
        raise ValueError(f"{name} contains non-finite values")
    return tensor


def _sqrt_psd(matrix: torch.Tensor) -> torch.Tensor:
    """Symmetric square root of a symmetric positive semi-definite matrix (negative rounding-error eigenvalues
    clamped to 0)."""
    eigenvalues, vectors = torch.linalg.eigh(matrix)
    return (vectors * eigenvalues.clamp(min=0).sqrt()) @ vectors.T


def frechet_distance(mu1, cov1, mu2, cov2) -> float:
    """Fréchet (2-Wasserstein²) distance between N(mu1, cov1) and N(mu2, cov2), in float64.

    mu1, mu2: (F,); cov1, cov2: (F, F) symmetric positive semi-definite (each is symmetrised as (Σ + Σᵀ)/2).
    tr (Σ₁Σ₂)^{1/2} is computed as Σᵢ √λᵢ over the eigenvalues λ of the symmetric PSD matrix Σ₁^{1/2} Σ₂ Σ₁^{1/2}
    (similar to Σ₁Σ₂, so it has the same eigenvalues), both steps by symmetric eigendecomposition with
    eigenvalues clamped at 0. Unlike scipy.linalg.sqrtm of the non-symmetric product (pytorch-fid), this needs no
    ε-regularisation of singular covariances (N ≤ F) and has no complex round-off to discard; there the
    square roots of rounding-level eigenvalues add an error of order √ε·‖Σ‖ per null dimension (about 1e-8
    each in float64). The result can be a rounding-level negative number for (nearly) identical inputs; it is
    returned as it is.
    """
    mu1 = _float64(mu1, "mu1", 1)
    mu2 = _float64(mu2, "mu2", 1)
    cov1 = _float64(cov1, "cov1", 2)
    cov2 = _float64(cov2, "cov2", 2)
    dim = mu1.shape[0]
    if mu2.shape[0] != dim:
        raise ValueError(f"mu2 has {mu2.shape[0]} entries but mu1 has {dim}")
    for name, cov in (("cov1", cov1), ("cov2", cov2)):
        if tuple(cov.shape) != (dim, dim):
            raise ValueError(f"{name} must have shape ({dim}, {dim}) to match mu1, got {tuple(cov.shape)}")
    cov1 = (cov1 + cov1.T) / 2
    cov2 = (cov2 + cov2.T) / 2
    root1 = _sqrt_psd(cov1)
    middle = root1 @ cov2 @ root1
    trace_sqrt = torch.linalg.eigvalsh((middle + middle.T) / 2).clamp(min=0).sqrt().sum()
    diff = mu1 - mu2
    return float(diff @ diff + torch.trace(cov1) + torch.trace(cov2) - 2 * trace_sqrt)


def _moments(features: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    mean = features.mean(dim=0)
    centered = features - mean
    return mean, centered.T @ centered / (features.shape[0] - 1)


def fid(features_a, features_b) -> float:
    """FID between two sets of features: (N_a, F) and (N_b, F) (tensors or numpy arrays, any float dtype), each
    with N ≥ 2 rows. Means and unbiased covariances in float64, then frechet_distance."""
    a = _float64(features_a, "features_a", 2)
    b = _float64(features_b, "features_b", 2)
    for name, x in (("features_a", a), ("features_b", b)):
        if x.shape[0] < 2:
            raise ValueError(f"{name} needs at least 2 samples for a covariance, got {x.shape[0]}")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"features_b has {b.shape[1]} features per sample but features_a has {a.shape[1]}")
    mu_a, cov_a = _moments(a)
    mu_b, cov_b = _moments(b)
    return frechet_distance(mu_a, cov_a, mu_b, cov_b)


def inception_score(logits, splits: int = 10) -> Tuple[float, float]:
    """Inception Score of (N, K) class logits: (mean, std) over `splits` splits.

    Per split S: exp(mean_{x∈S} KL(p(y|x) ‖ p_S(y))) with p(y|x) = softmax(logits) (log-softmax in float64)
    and p_S(y) the mean of p(y|x) over S. Splits follow the original improved-gan code and torch-fidelity:
    split i holds rows [i·N//splits, (i+1)·N//splits), in the given order, so sizes differ by at most one and
    the remainder is spread over the later splits (e.g. N = 11, splits = 4: sizes 2, 3, 3, 3). No shuffling
    (torch-fidelity shuffles first, with seed 2020; the original does not). std is the population standard
    deviation (np.std, ddof = 0) as in both. The conventional setting is 50 000 samples in 10 splits, from the
    Inception logits without the fc bias (InceptionFeatures' default).
    Needs N ≥ splits ≥ 1.
    """
    if isinstance(splits, bool) or not isinstance(splits, int) or splits < 1:
        raise ValueError(f"splits must be a positive int, got {splits!r}")
    logits = _float64(logits, "logits", 2)
    n = logits.shape[0]
    if n < splits:
        raise ValueError(f"logits has {n} samples, fewer than splits = {splits}")
    log_p = torch.log_softmax(logits, dim=1)
    p = log_p.exp()
    scores = []
    for i in range(splits):
        lo, hi = i * n // splits, (i + 1) * n // splits
        log_marginal = torch.logsumexp(log_p[lo:hi], dim=0) - math.log(hi - lo)
        kl = (p[lo:hi] * (log_p[lo:hi] - log_marginal)).sum(dim=1)
        scores.append(math.exp(float(kl.mean())))
    mean = sum(scores) / splits
    std = math.sqrt(sum((s - mean) ** 2 for s in scores) / splits)
    return mean, std
