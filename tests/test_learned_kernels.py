"""Kernels that learn (fastmmd.kernels.views): a Gaussian's bandwidths, a rational quadratic's α and scale, a
sum's weights as tensors that require grad, and DeepKernel (Liu et al. 2020), through mmd2, kernel_matmul,
mmd2_and_variance, mmd_test and learned_kernel_test, on the fused backends and the reference one, against
the kernels' formulas written out in torch (float64, materialised, autograd); the unsupported ones refused
with the parameter's name."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import fastmmd
from conftest import moments_of_grams, sample_xy
from fastmmd.backends import get_backend
from tolerances import FLOAT64_GRADIENT_RTOL, SAME_ARITHMETIC_RTOL

BACKENDS = ["cpu", "reference"] + (["triton"] if get_backend("triton").unavailable_reason() is None else [])


def sq_dist(a, b):
    return ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)


def gaussians(a, b, sigmas, weights=None):
    """Σ_t w_t exp(-|a - b|² / (2 σ_t²)), written out: (n, m)."""
    r2 = sq_dist(a, b)
    weights = torch.ones_like(sigmas) if weights is None else weights
    return sum(w * torch.exp(-r2 / (2 * s * s)) for w, s in zip(weights.reshape(-1), sigmas.reshape(-1)))


def liu_kernel(a, b, features, sigma_phi, sigma_q, eps):
    """[(1 - ε) exp(-|Δφ|²/(2σ_φ²)) + ε] exp(-|Δx|²/(2σ_q²)) (Liu et al. 2020, in the 2σ² convention)."""
    q = torch.exp(-sq_dist(a, b) / (2 * sigma_q ** 2))
    kappa = torch.exp(-sq_dist(features(a), features(b)) / (2 * sigma_phi ** 2))
    return ((1 - eps) * kappa + eps) * q


def unbiased(kxx, kyy, kxy):
    n, m = kxx.shape[0], kyy.shape[0]
    return ((kxx.sum() - kxx.diagonal().sum()) / (n * (n - 1)) + (kyy.sum() - kyy.diagonal().sum()) / (m * (m - 1))
            - 2 * kxy.mean())


def assert_close(actual, expected, rtol, what=""):
    actual, expected = torch.as_tensor(actual).detach(), torch.as_tensor(expected).detach()
    scale = max(float(expected.abs().max()), 1e-300)
    assert float((actual - expected).abs().max()) <= rtol * scale, (what, actual, expected)


def leaf(values):
    return torch.tensor(values, dtype=torch.float64, requires_grad=True)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("sigmas", [0.8, [0.7, 2.5]], ids=["one", "two"])
@pytest.mark.parametrize("estimator", ["unbiased", "biased"])
def test_mmd2_in_learnable_bandwidths(backend, sigmas, estimator):
    x, y = sample_xy(15, 11, 3, seed=1)
    s1, s2 = leaf(sigmas), leaf(sigmas)
    value = fastmmd.mmd2(x, y, fastmmd.Gaussian(bandwidth=s1), estimator=estimator, backend=backend)
    kxx, kyy, kxy = gaussians(x, x, s2), gaussians(y, y, s2), gaussians(x, y, s2)
    expected = unbiased(kxx, kyy, kxy) if estimator == "unbiased" else kxx.mean() + kyy.mean() - 2 * kxy.mean()
    assert_close(value, expected, SAME_ARITHMETIC_RTOL * 100)
    assert_close(torch.autograd.grad(value, s1)[0], torch.autograd.grad(expected, s2)[0], FLOAT64_GRADIENT_RTOL)


@pytest.mark.parametrize("backend", BACKENDS)
def test_weights_and_bandwidths_of_a_sum_learn_together(backend):
    x, y = sample_xy(12, 14, 4, seed=2)
    w1, s1, w2, s2 = leaf(0.3), leaf([1.1, 3.0]), leaf(0.3), leaf([1.1, 3.0])
    kernel = w1 * fastmmd.Gaussian(bandwidth=s1) + 0.5 * fastmmd.Gaussian(bandwidth=2.0)
    value = fastmmd.mmd2(x, y, kernel, backend=backend)
    two = torch.tensor(2.0, dtype=torch.float64)

    def k(a, b):
        return w2 * gaussians(a, b, s2) + 0.5 * gaussians(a, b, two)

    expected = unbiased(k(x, x), k(y, y), k(x, y))
    assert_close(value, expected, SAME_ARITHMETIC_RTOL * 100)
    for got, want in zip(torch.autograd.grad(value, (w1, s1)), torch.autograd.grad(expected, (w2, s2))):
        assert_close(got, want, FLOAT64_GRADIENT_RTOL)


@pytest.mark.parametrize("backend", BACKENDS)
def test_rational_quadratic_scale(backend):
    x, y = sample_xy(10, 9, 3, seed=3)
    s1, s2 = leaf(1.7), leaf(1.7)
    value = fastmmd.mmd2(x, y, fastmmd.RationalQuadratic(alpha=2.0, scale=s1), backend=backend)

    def k(a, b):
        return (1 + sq_dist(a, b) / (2 * 2.0 * s2 * s2)) ** -2.0

    expected = unbiased(k(x, x), k(y, y), k(x, y))
    assert_close(value, expected, SAME_ARITHMETIC_RTOL * 100)
    assert_close(torch.autograd.grad(value, s1)[0], torch.autograd.grad(expected, s2)[0], FLOAT64_GRADIENT_RTOL)


def rational_quadratics(a, b, alphas, scale):
    """Σ_α (1 + |a - b|² / (2α·scale²))^(-α), written out: (n, m), differentiable in α and the scale."""
    r2 = sq_dist(a, b)
    return sum((1 + r2 / (2 * al * scale * scale)) ** -al for al in alphas.reshape(-1))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("alphas", [0.7, [0.4, 3.0]], ids=["one", "two"])
@pytest.mark.parametrize("estimator", ["unbiased", "biased"])
def test_mmd2_in_rational_quadratic_alpha_scale_and_points(backend, alphas, estimator):
    """α has no view: its gradient is the op with ∂k/∂α (rational quadratics and the log family)."""
    x, y = sample_xy(14, 10, 3, seed=21)
    x1, a1, s1 = x.clone().requires_grad_(), leaf(alphas), leaf(1.3)
    x2, a2, s2 = x.clone().requires_grad_(), leaf(alphas), leaf(1.3)
    value = fastmmd.mmd2(x1, y, fastmmd.RationalQuadratic(alpha=a1, scale=s1), estimator=estimator, backend=backend)

    def k(a, b):
        return rational_quadratics(a, b, a2, s2)

    kxx, kyy, kxy = k(x2, x2), k(y, y), k(x2, y)
    expected = unbiased(kxx, kyy, kxy) if estimator == "unbiased" else kxx.mean() + kyy.mean() - 2 * kxy.mean()
    assert_close(value, expected, SAME_ARITHMETIC_RTOL * 100)
    got = torch.autograd.grad(value, (a1, s1, x1))
    want = torch.autograd.grad(expected, (a2, s2, x2))
    for g, w, name in zip(got, want, ("alpha", "scale", "x")):
        assert_close(g, w, FLOAT64_GRADIENT_RTOL, name)


@pytest.mark.parametrize("backend", BACKENDS)
def test_rational_quadratic_alpha_in_float32_points(backend):
    x, y = sample_xy(40, 33, 5, seed=22)
    a1, a2 = leaf(1.5), leaf(1.5)
    value = fastmmd.mmd2(x.float(), y.float(), fastmmd.RationalQuadratic(alpha=a1, scale=2.0), backend=backend)
    expected = unbiased(*(rational_quadratics(a, b, a2, 2.0) for a, b in ((x, x), (y, y), (x, y))))
    got, want = torch.autograd.grad(value, a1)[0], torch.autograd.grad(expected, a2)[0]
    assert abs(float(got) - float(want)) <= 1e-4 * abs(float(want)), (got, want)


@pytest.mark.parametrize("backend", BACKENDS)
def test_variance_in_rational_quadratic_alpha_scale_and_weights(backend):
    """Two weighted copies of one rational quadratic on one view: S needs κ·∂κ/∂α, a log-family term."""
    x, y = sample_xy(12, 10, 3, seed=25)
    x1, a1, s1, w1 = x.clone().requires_grad_(), leaf(1.4), leaf(0.9), leaf(0.6)
    x2, a2, s2, w2 = x.clone().requires_grad_(), leaf(1.4), leaf(0.9), leaf(0.6)
    rq = fastmmd.RationalQuadratic(alpha=a1, scale=s1)
    value, variance = fastmmd.mmd2_and_variance(x1, y, w1 * rq + 0.5 * rq, backend=backend)

    def k(a, b):
        return (w2 + 0.5) * rational_quadratics(a, b, a2, s2)

    expected_value, expected_variance = moments_of_grams(k(x2, x2), k(y, y), k(x2, y))
    assert_close(value, expected_value, SAME_ARITHMETIC_RTOL * 100)
    assert_close(variance, expected_variance, SAME_ARITHMETIC_RTOL * 100)
    got = torch.autograd.grad(value + 4 * variance, (a1, s1, w1, x1))
    want = torch.autograd.grad(expected_value + 4 * expected_variance, (a2, s2, w2, x2))
    for g, w, name in zip(got, want, ("alpha", "scale", "weight", "x")):
        assert_close(g, w, FLOAT64_GRADIENT_RTOL, name)


@pytest.mark.parametrize("backend", BACKENDS)
def test_power_criterion_in_alpha_is_differentiable_once(backend):
    x, y = sample_xy(10, 10, 2, seed=26)
    alpha = leaf(1.0)
    criterion = fastmmd.power_criterion(x, y + 0.5, fastmmd.RationalQuadratic(alpha=alpha), backend=backend)
    (grad,) = torch.autograd.grad(criterion, alpha, create_graph=False)
    assert math.isfinite(float(grad))
    criterion = fastmmd.power_criterion(x, y + 0.5, fastmmd.RationalQuadratic(alpha=alpha), backend=backend)
    with pytest.raises(RuntimeError, match="once|double backward|gradient of"):
        (grad,) = torch.autograd.grad(criterion, alpha, create_graph=True)
        torch.autograd.grad(grad, alpha)


LEARNABLE_IN_KERNEL_MATMUL = {  # name: (kernel of the parameter tensor, its formula written out, values)
    "bandwidth": (lambda t: fastmmd.Gaussian(bandwidth=t), lambda a, b, t: gaussians(a, b, t), [0.9, 2.0]),
    "alpha": (lambda t: fastmmd.RationalQuadratic(alpha=t), lambda a, b, t: rational_quadratics(a, b, t, 1.0),
              [0.6, 2.0]),
}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("parameter", sorted(LEARNABLE_IN_KERNEL_MATMUL))
def test_kernel_matmul_in_points_values_and_a_learnable_parameter(backend, parameter):
    make, formula, values = LEARNABLE_IN_KERNEL_MATMUL[parameter]
    a, b = sample_xy(9, 13, 3, seed=4)
    v = torch.from_numpy(np.random.default_rng(4).standard_normal((13, 2)))
    a1, v1, t1 = a.clone().requires_grad_(), v.clone().requires_grad_(), leaf(values)
    a2, v2, t2 = a.clone().requires_grad_(), v.clone().requires_grad_(), leaf(values)
    out = fastmmd.kernel_matmul(a1, b, v1, make(t1), backend=backend)
    expected = formula(a2, b, t2) @ v2
    assert_close(out, expected, SAME_ARITHMETIC_RTOL * 100)
    probe = torch.from_numpy(np.random.default_rng(5).standard_normal(expected.shape))
    got = torch.autograd.grad((out * probe).sum(), (a1, v1, t1))
    want = torch.autograd.grad((expected * probe).sum(), (a2, v2, t2))
    for g, w, name in zip(got, want, ("a", "v", parameter)):
        assert_close(g, w, FLOAT64_GRADIENT_RTOL, name)


@pytest.mark.parametrize("backend", BACKENDS)
def test_variance_in_a_mixture_of_learnable_gaussians(backend):
    """Two bandwidths are two views: S needs the product of their Gaussians, side by side."""
    x, y = sample_xy(11, 9, 3, seed=6)
    w1, s1, w2, s2 = leaf(0.7), leaf([0.8, 2.2]), leaf(0.7), leaf([0.8, 2.2])
    kernel = w1 * fastmmd.Gaussian(bandwidth=s1) + 0.5 * fastmmd.Gaussian(bandwidth=3.0)
    value, variance = fastmmd.mmd2_and_variance(x, y, kernel, backend=backend)
    three = torch.tensor(3.0, dtype=torch.float64)

    def k(a, b):
        return w2 * gaussians(a, b, s2) + 0.5 * gaussians(a, b, three)

    expected_value, expected_variance = moments_of_grams(k(x, x), k(y, y), k(x, y))
    assert_close(value, expected_value, SAME_ARITHMETIC_RTOL * 100)
    assert_close(variance, expected_variance, SAME_ARITHMETIC_RTOL * 100)
    got = torch.autograd.grad(value + 5 * variance, (w1, s1))
    want = torch.autograd.grad(expected_value + 5 * expected_variance, (w2, s2))
    for g, w in zip(got, want):
        assert_close(g, w, FLOAT64_GRADIENT_RTOL)


@pytest.mark.parametrize("backend", BACKENDS)
def test_variance_in_six_learnable_bandwidths_and_their_weights(backend):
    """Six bandwidths on the points are one term: its square is 21 Gaussians (more than the triton kernels
    take at once), and each bandwidth's derivative a pass of r² e^(-p r²)."""
    x, y = sample_xy(12, 10, 3, seed=27)
    values = [0.3, 0.7, 1.2, 2.0, 3.5, 6.0]
    s1, w1, s2, w2 = leaf(values), leaf(0.8), leaf(values), leaf(0.8)
    value, variance = fastmmd.mmd2_and_variance(x, y, w1 * fastmmd.Gaussian(bandwidth=s1), backend=backend)

    def k(a, b):
        return w2 * gaussians(a, b, s2)

    expected_value, expected_variance = moments_of_grams(k(x, x), k(y, y), k(x, y))
    assert_close(value, expected_value, SAME_ARITHMETIC_RTOL * 100)
    assert_close(variance, expected_variance, SAME_ARITHMETIC_RTOL * 100)
    got = torch.autograd.grad(value + 3 * variance, (s1, w1))
    want = torch.autograd.grad(expected_value + 3 * expected_variance, (s2, w2))
    for g, w, name in zip(got, want, ("bandwidth", "weight")):
        assert_close(g, w, FLOAT64_GRADIENT_RTOL, name)


def _network(seed, d_in=3, d_out=4):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(d_in, 6), torch.nn.Softplus(), torch.nn.Linear(6, d_out)).double()


@pytest.mark.parametrize("backend", BACKENDS)
def test_deep_kernel_against_its_formula(backend):
    x, y = sample_xy(13, 10, 3, seed=7)
    deep = fastmmd.DeepKernel(_network(0), sigma_phi=1.3, sigma_q=2.1, eps=0.2)
    twin = fastmmd.DeepKernel(_network(0), sigma_phi=1.3, sigma_q=2.1, eps=0.2)
    assert_close(deep(x, y), liu_kernel(x, y, twin.features, 1.3, 2.1, 0.2), SAME_ARITHMETIC_RTOL * 100)
    value, variance = fastmmd.mmd2_and_variance(x, y, deep, backend=backend)

    def k(a, b):
        return liu_kernel(a, b, twin.features, twin.log_sigma_phi.exp(), twin.log_sigma_q.exp(), twin.eps)

    expected_value, expected_variance = moments_of_grams(k(x, x), k(y, y), k(x, y))
    assert_close(value, expected_value, SAME_ARITHMETIC_RTOL * 100)
    assert_close(variance, expected_variance, SAME_ARITHMETIC_RTOL * 100)
    assert_close(fastmmd.mmd2(x, y, deep, backend=backend), expected_value, SAME_ARITHMETIC_RTOL * 100)
    got = torch.autograd.grad(value + 5 * variance, list(deep.parameters()))
    want = torch.autograd.grad(expected_value + 5 * expected_variance, list(twin.parameters()))
    scale = max(float(w.abs().max()) for w in want)  # the last layer's bias has a zero gradient (a shift of φ)
    for (name, _), g, w in zip(deep.named_parameters(), got, want):
        assert float((g - w).abs().max()) <= FLOAT64_GRADIENT_RTOL * scale, name


def test_deep_kernel_in_float32_points():
    x, y = sample_xy(20, 16, 3, seed=8)
    deep = fastmmd.DeepKernel(_network(1).float(), sigma_phi=1.0, sigma_q=2.0, eps=0.3)
    criterion = fastmmd.power_criterion(x.float(), y.float(), deep, backend="cpu")
    criterion.backward()
    reference = fastmmd.power_criterion(x, y, fastmmd.DeepKernel(_network(1), 1.0, 2.0, 0.3), backend="reference")
    assert abs(float(criterion.detach()) - float(reference)) <= 1e-4 * abs(float(reference))
    assert all(p.grad is not None and bool(torch.isfinite(p.grad).all()) for p in deep.parameters())


def test_mmd_test_with_a_learnable_kernel_is_the_test_of_its_current_values():
    x, y = sample_xy(30, 25, 2, seed=9)
    learnable = fastmmd.mmd_test(x, y, fastmmd.Gaussian(bandwidth=leaf([0.8, 2.0])), permutations=99, seed=3)
    constant = fastmmd.mmd_test(x, y, fastmmd.Gaussian(bandwidth=[0.8, 2.0]), permutations=99, seed=3)
    assert_close(learnable.null_samples, constant.null_samples, SAME_ARITHMETIC_RTOL * 100)
    assert float(learnable.p_value) == float(constant.p_value)


def test_a_learned_kernel_test_rejects_a_difference_and_keeps_its_level():
    gen = np.random.default_rng(10)
    # 200 training points per sample: with far fewer, the optimum can be a bandwidth whose variance
    # estimate is negative (J then divides by sqrt(reg); docs/learned_kernels.md)
    x = torch.from_numpy(gen.standard_normal((400, 2)))
    y = torch.from_numpy(gen.standard_normal((400, 2)) * np.array([1.0, 1.6]))
    log_s = torch.zeros((), dtype=torch.float64, requires_grad=True)
    result = fastmmd.learned_kernel_test(x, y, lambda: fastmmd.Gaussian(bandwidth=log_s.exp()),
                                         parameters=[log_s], steps=60, lr=0.05, permutations=200, seed=1)
    assert float(result.p_value) <= 0.01
    assert float(result.criterion[-1]) > float(result.criterion[0])
    same = torch.from_numpy(gen.standard_normal((400, 2)))
    deep = fastmmd.DeepKernel(_network(2, d_in=2), sigma_phi=1.0, sigma_q=1.0, eps=0.1)
    null = fastmmd.learned_kernel_test(x, same, deep, steps=30, lr=1e-2, permutations=200, seed=2)
    assert float(null.p_value) > 0.05  # one fixed draw of a level-5% test: a check that it is not broken


@pytest.mark.parametrize("make, match", [
    (lambda: fastmmd.InverseMultiquadric(beta=leaf(0.5)), "beta"),
    (lambda: fastmmd.RationalQuadratic(alpha=leaf([[1.0]])), "alpha"),
    (lambda: fastmmd.Laplacian(bandwidth=leaf(1.0)), "bandwidth"),
    (lambda: fastmmd.Gaussian(bandwidth=torch.ones(2, 2, dtype=torch.float64, requires_grad=True)), "bandwidth"),
    (lambda: leaf([1.0, 2.0]) * fastmmd.Linear(), "weight"),
])
def test_unsupported_learnable_parameters_are_refused(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_ops_that_do_not_differentiate_in_kernel_parameters_refuse_them():
    x, y = sample_xy(10, 10, 2, seed=11)
    kernel = fastmmd.Gaussian(bandwidth=leaf(1.0))
    with pytest.raises(ValueError, match="require grad"):
        fastmmd.witness(x, y, x, kernel=kernel)
    with pytest.raises(ValueError, match="require grad"):
        fastmmd.relative_mmd_test(x, y, y + 1.0, kernel=kernel)


@pytest.mark.parametrize("kernel", [
    lambda: fastmmd.RationalQuadratic(alpha=[0.5, 2.0], scale=leaf(1.5)),  # κ² of two α: no family
    lambda: fastmmd.Gaussian(bandwidth=leaf(1.0)) + fastmmd.Linear(),  # a Gaussian and a dot on two views
], ids=["rq-mixture", "gaussian-plus-linear"])
def test_a_learnable_kernel_without_the_products_has_a_value_but_no_variance(kernel):
    x, y = sample_xy(10, 9, 2, seed=12)
    assert math.isfinite(float(fastmmd.mmd2(x, y, kernel(), backend="cpu").detach()))
    with pytest.raises(ValueError, match="square|product|single Gaussian"):
        fastmmd.mmd2_and_variance(x, y, kernel(), backend="cpu")


@pytest.mark.parametrize("kwargs, match", [
    ({"sigma_phi": 0.0}, "sigma_phi"), ({"sigma_q": -1.0}, "sigma_q"), ({"eps": 1.0}, "eps"),
    ({"eps": 0.0}, "eps"),
])
def test_deep_kernel_arguments(kwargs, match):
    args = {"sigma_phi": 1.0, "sigma_q": 1.0, "eps": 0.1, **kwargs}
    with pytest.raises(ValueError, match=match):
        fastmmd.DeepKernel(_network(0), **args)


@pytest.mark.parametrize("kwargs, error, match", [
    ({"steps": -1}, ValueError, "steps"),
    ({"train_fraction": 1.0}, ValueError, "train_fraction"),
    ({"kernel": fastmmd.Gaussian(bandwidth=leaf(1.0)), "parameters": []}, TypeError, "callable"),
    ({"kernel": lambda: fastmmd.Gaussian(bandwidth=1.0), "parameters": []}, ValueError, "nothing to learn"),
    ({"kernel": lambda: fastmmd.Gaussian(bandwidth=1.0)}, TypeError, "parameters"),
])
def test_learned_kernel_test_arguments(kwargs, error, match):
    x, y = sample_xy(20, 20, 2, seed=13)
    args = {"kernel": fastmmd.DeepKernel(_network(0, d_in=2), 1.0, 1.0), "steps": 2, **kwargs}
    with pytest.raises(error, match=match):
        fastmmd.learned_kernel_test(x, y, **args)
