"""FID and Inception Score (gan.image_metrics) against closed forms and independent float64 computations."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from gan.image_metrics import fid, frechet_distance, inception_score


def _random_spd(dim, seed, rank=None):
    gen = np.random.default_rng(seed)
    factor = gen.standard_normal((dim, rank or dim))
    return factor @ factor.T / dim + (0 if rank else 0.1 * np.eye(dim))


def _trace_sqrt_denman_beavers(product, iterations=60):
    """tr (A B)^{1/2} by the Denman–Beavers iteration on the non-symmetric product (a different route from
    the symmetric eigendecompositions of the implementation)."""
    y, z = product.copy(), np.eye(product.shape[0])
    for _ in range(iterations):
        y, z = (y + np.linalg.inv(z)) / 2, (z + np.linalg.inv(y)) / 2
    return np.trace(y)


# ---------------------------------------------------------------------------------------------------------
# Fréchet distance


def test_identical_gaussians_have_zero_distance():
    mu, cov = np.linspace(-1, 1, 7), _random_spd(7, 0)
    assert abs(frechet_distance(mu, cov, mu, cov)) < 1e-10


def test_diagonal_covariances_closed_form():
    gen = np.random.default_rng(1)
    mu1, mu2 = gen.standard_normal(9), gen.standard_normal(9)
    a, b = gen.uniform(0.1, 3, 9), gen.uniform(0.1, 3, 9)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    assert frechet_distance(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(expected, rel=1e-12, abs=1e-12)


def test_commuting_covariances_closed_form():
    gen = np.random.default_rng(2)
    q, _ = np.linalg.qr(gen.standard_normal((6, 6)))
    a, b = gen.uniform(0.1, 3, 6), gen.uniform(0.1, 3, 6)
    mu1, mu2 = gen.standard_normal(6), gen.standard_normal(6)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    value = frechet_distance(mu1, q @ np.diag(a) @ q.T, mu2, q @ np.diag(b) @ q.T)
    assert value == pytest.approx(expected, rel=1e-10, abs=1e-10)


def test_non_commuting_covariances_against_other_routes():
    cov1, cov2 = _random_spd(12, 3), _random_spd(12, 4)
    assert not np.allclose(cov1 @ cov2, cov2 @ cov1)
    mu1, mu2 = np.zeros(12), np.full(12, 0.25)
    base = 12 * 0.25 ** 2 + np.trace(cov1) + np.trace(cov2)
    by_iteration = base - 2 * _trace_sqrt_denman_beavers(cov1 @ cov2)
    by_eig_of_product = base - 2 * np.sum(np.sqrt(np.linalg.eigvals(cov1 @ cov2).real))
    value = frechet_distance(mu1, cov1, mu2, cov2)
    assert value == pytest.approx(by_iteration, rel=1e-10)
    assert value == pytest.approx(by_eig_of_product, rel=1e-10)
    assert frechet_distance(mu2, cov2, mu1, cov1) == pytest.approx(value, rel=1e-10)  # symmetric


def test_singular_covariances_need_no_regularisation():
    cov1, cov2 = _random_spd(10, 5, rank=3), _random_spd(10, 6, rank=4)
    value = frechet_distance(np.zeros(10), cov1, np.zeros(10), cov2)
    base = np.trace(cov1) + np.trace(cov2)
    roots = np.sqrt(np.clip(np.linalg.eigvals(cov1 @ cov2).real, 0, None))
    assert value == pytest.approx(base - 2 * roots.sum(), rel=1e-6, abs=1e-8)
    # √ of the rounding-level eigenvalues on the null space costs √ε per null dimension, nothing more
    assert abs(frechet_distance(np.zeros(10), cov1, np.zeros(10), cov1)) < 1e-6


def test_torch_inputs_in_float32_are_accepted():
    cov = torch.eye(3, dtype=torch.float32)
    assert frechet_distance(torch.zeros(3), cov, torch.ones(3), 4 * cov) == pytest.approx(3.0 + 3.0, rel=1e-12)


# ---------------------------------------------------------------------------------------------------------
# FID from features


def test_fid_of_features_matches_frechet_distance_of_numpy_moments():
    gen = np.random.default_rng(7)
    a = gen.standard_normal((300, 8))
    b = 0.3 + gen.standard_normal((250, 8)) @ gen.uniform(0.5, 1.5, (8, 8))
    expected = frechet_distance(a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False))
    assert fid(a, b) == pytest.approx(expected, rel=1e-10)
    assert fid(torch.from_numpy(a).float(), torch.from_numpy(b).float()) == pytest.approx(expected, rel=1e-5)


def test_fid_of_shifted_features_is_the_squared_shift():
    x = np.random.default_rng(8).standard_normal((40, 5))
    shift = np.array([1.0, -2.0, 0.5, 0.0, 3.0])
    assert fid(x, x + shift) == pytest.approx(np.sum(shift ** 2), rel=1e-9)
    assert abs(fid(x, x)) < 1e-10


def test_fid_with_fewer_samples_than_features():
    gen = np.random.default_rng(9)
    value = fid(gen.standard_normal((5, 20)), gen.standard_normal((6, 20)))
    assert math.isfinite(value) and value > 0


def test_single_feature_dimension():
    assert fid(np.array([[0.0], [2.0]]), np.array([[1.0], [3.0]])) == pytest.approx(1.0, rel=1e-12)


@pytest.mark.parametrize("call, message", [
    (lambda: fid(np.zeros((1, 3)), np.zeros((5, 3))), "features_a needs at least 2 samples"),
    (lambda: fid(np.zeros((5, 3)), np.zeros((1, 3))), "features_b needs at least 2 samples"),
    (lambda: fid(np.zeros((5, 3)), np.zeros((5, 4))), "features_b has 4 features"),
    (lambda: fid(np.zeros(5), np.zeros((5, 3))), "features_a must have 2 dimensions"),
    (lambda: fid(np.zeros((5, 3)), np.full((5, 3), np.nan)), "features_b contains non-finite"),
    (lambda: frechet_distance(np.zeros(3), np.eye(3), np.zeros(4), np.eye(4)), "mu2 has 4 entries"),
    (lambda: frechet_distance(np.zeros(3), np.eye(2), np.zeros(3), np.eye(3)), "cov1 must have shape (3, 3)"),
    (lambda: frechet_distance(np.zeros(3), np.eye(3), np.zeros(3), np.full((3, 3), np.inf)),
     "cov2 contains non-finite"),
    (lambda: frechet_distance(np.zeros((3, 1)), np.eye(3), np.zeros(3), np.eye(3)), "mu1 must have 1 dimension"),
])
def test_fid_errors_name_the_argument(call, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        call()


# ---------------------------------------------------------------------------------------------------------
# Inception Score


def _confident(labels, classes, margin=60.0):
    logits = torch.zeros(len(labels), classes, dtype=torch.float64)
    logits[torch.arange(len(labels)), torch.as_tensor(labels)] = margin
    return logits


def test_uniform_predictions_score_one():
    mean, std = inception_score(torch.zeros(100, 1008), splits=10)
    assert mean == pytest.approx(1.0, abs=1e-12) and std == pytest.approx(0.0, abs=1e-12)


def test_confident_predictions_spread_over_k_classes_score_k():
    for classes in (2, 10, 37):
        labels = np.arange(classes * 4 * 5) % classes  # every split of 4·classes rows holds each class 4 times
        mean, std = inception_score(_confident(labels, classes + 3), splits=5)
        assert mean == pytest.approx(classes, abs=1e-6)
        assert std == pytest.approx(0.0, abs=1e-6)


def test_any_logit_shift_per_sample_leaves_the_score_unchanged():
    logits = torch.randn(60, 30, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    shifted = logits + torch.arange(60, dtype=torch.float64)[:, None]
    assert inception_score(shifted, splits=3) == pytest.approx(inception_score(logits, splits=3), rel=1e-12)


def test_splits_follow_floor_boundaries_and_population_std():
    # N = 11, splits = 4: rows [0, 2), [2, 5), [5, 8), [8, 11) (the improved-gan / torch-fidelity partition).
    labels = [0, 1, 0, 0, 0, 0, 1, 2, 5, 5, 5]
    mean, std = inception_score(_confident(labels, 6), splits=4)
    scores = np.array([2.0, 1.0, 3.0, 1.0])
    assert mean == pytest.approx(scores.mean(), abs=1e-6)
    assert std == pytest.approx(scores.std(), abs=1e-6)


def test_one_split_scores_the_whole_set():
    labels = [0, 0, 1, 2]  # p(y) = (1/2, 1/4, 1/4): IS = exp(H(p(y))) for confident predictions
    mean, std = inception_score(_confident(labels, 3), splits=1)
    assert mean == pytest.approx(math.exp(-(0.5 * math.log(0.5) + 0.5 * math.log(0.25))), abs=1e-6)
    assert std == 0.0


def test_against_a_direct_numpy_computation():
    gen = np.random.default_rng(3)
    logits = gen.standard_normal((50, 12)) * 3
    preds = np.exp(logits - logits.max(1, keepdims=True))
    preds /= preds.sum(1, keepdims=True)
    scores = []
    for i in range(4):
        part = preds[i * 50 // 4:(i + 1) * 50 // 4]
        kl = np.sum(part * (np.log(part) - np.log(part.mean(0, keepdims=True))), 1).mean()
        scores.append(np.exp(kl))
    mean, std = inception_score(logits, splits=4)
    assert mean == pytest.approx(np.mean(scores), rel=1e-12)
    assert std == pytest.approx(np.std(scores), rel=1e-9)


@pytest.mark.parametrize("call, message", [
    (lambda: inception_score(torch.zeros(9, 5), splits=10), "9 samples, fewer than splits = 10"),
    (lambda: inception_score(torch.zeros(0, 5), splits=1), "0 samples"),
    (lambda: inception_score(torch.zeros(10, 5), splits=0), "splits must be a positive int"),
    (lambda: inception_score(torch.zeros(10, 5), splits=2.0), "splits must be a positive int"),
    (lambda: inception_score(torch.zeros(10), splits=1), "logits must have 2 dimensions"),
    (lambda: inception_score(torch.full((10, 5), float("inf")), splits=1), "logits contains non-finite"),
])
def test_inception_score_errors(call, message):
    with pytest.raises(ValueError, match=message):
        call()
