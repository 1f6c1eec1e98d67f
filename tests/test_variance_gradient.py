"""mmd2_and_variance, kid(subsets=None) and power_criterion differentiable in the samples: the fused
backward (fastmmd.statistics.variance_grad) against torch autograd through materialised float64 Gram
matrices, on odd shapes, for every kernel whose square is a sum of kernel terms; the same values as without
gradients; finite differences and second derivatives on the reference backend; the kernels without a square,
non-finite input and a second derivative through a fused backend refused or NaN, never a silent number."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import fastmmd
from cases import CASE_BY_NAME
from conftest import moments_of_grams, sample_xy
from fastmmd.backends import get_backend
from fastmmd.kernels.derivatives import smooth_reason
from fastmmd.kernels.products import square_reason, squared_table
from tolerances import FLOAT32_SUM_RTOL, FLOAT64_GRADIENT_RTOL, GRADCHECK_ATOL, GRADCHECK_RTOL, SAME_ARITHMETIC_RTOL

SQUARABLE = ["gaussian", "gaussian_mix", "polynomial", "polynomial_2", "linear", "imq"]
FUSED = ["cpu"] + (["triton"] if get_backend("triton").unavailable_reason() is None else [])


def materialised(x, y, kernel):
    """(MMD²_u, variance) through the Gram matrices in float64 and the moment formulas (torch autograd)."""
    x64, y64 = x.to(torch.float64), y.to(torch.float64)
    return moments_of_grams(kernel.gram(x64, x64), kernel.gram(y64, y64), kernel.gram(x64, y64))


def _leaf(t):
    return t.detach().clone().requires_grad_(True)


def assert_close(actual, expected, rtol, what):
    scale = max(float(expected.abs().max()), 1e-300)
    error = float((actual - expected).abs().max())
    assert error <= rtol * scale, f"{what}: error {error:.3g} against scale {scale:.3g}"


@pytest.mark.parametrize("backend", FUSED + ["reference"])
@pytest.mark.parametrize("case_name", SQUARABLE)
@pytest.mark.parametrize("shape", [(13, 9, 5), (7, 11, 3)], ids=["13x9x5", "7x11x3"])
def test_gradients_equal_autograd_through_the_gram_matrices(case_name, backend, shape):
    n, m, d = shape
    x, y = sample_xy(n, m, d, seed=n + m)
    kernel = CASE_BY_NAME[case_name].make(d)
    x1, y1, x2, y2 = _leaf(x), _leaf(y), _leaf(x), _leaf(y)
    value, variance = fastmmd.mmd2_and_variance(x1, y1, kernel, backend=backend)
    expected_value, expected_variance = materialised(x2, y2, kernel)
    # a loss that weighs the two outputs differently, so that each one's gradient counts
    grads = torch.autograd.grad(value + 7.0 * variance, (x1, y1))
    expected = torch.autograd.grad(expected_value + 7.0 * expected_variance, (x2, y2))
    for got, want, name in zip(grads, expected, ("d/dx", "d/dy")):
        assert_close(got, want, FLOAT64_GRADIENT_RTOL, f"{case_name} {backend} {name}")
    with torch.no_grad():
        plain = fastmmd.mmd2_and_variance(x, y, kernel, backend=backend)
    value, variance = float(value.detach()), float(variance.detach())
    assert abs(value - float(plain.mmd2)) <= SAME_ARITHMETIC_RTOL * max(abs(float(plain.mmd2)), 1e-12)
    assert abs(variance - float(plain.variance)) <= SAME_ARITHMETIC_RTOL * abs(float(plain.variance))


@pytest.mark.parametrize("backend", FUSED)
def test_float32_gradients_agree_with_float64(backend):
    x, y = sample_xy(40, 33, 6, seed=3)
    kernel = CASE_BY_NAME["gaussian_mix"].make(6)
    x32, y32 = x.float().requires_grad_(), y.float().requires_grad_()
    value, variance = fastmmd.mmd2_and_variance(x32, y32, kernel, backend=backend)
    g32 = torch.autograd.grad(value + 7.0 * variance, (x32, y32))
    x64, y64 = _leaf(x), _leaf(y)
    value, variance = materialised(x64, y64, kernel)
    g64 = torch.autograd.grad(value + 7.0 * variance, (x64, y64))
    for got, want in zip(g32, g64):
        assert got.dtype == torch.float32
        assert_close(got.double(), want, FLOAT32_SUM_RTOL, "float32 gradient")


def test_only_one_output_used():
    x, y = sample_xy(12, 10, 4, seed=1)
    kernel = CASE_BY_NAME["gaussian"].make(4)
    for pick in (0, 1):
        x1, x2 = _leaf(x), _leaf(x)
        (g,) = torch.autograd.grad(fastmmd.mmd2_and_variance(x1, y, kernel, backend="cpu")[pick], (x1,))
        (want,) = torch.autograd.grad(materialised(x2, y, kernel)[pick], (x2,))
        assert_close(g, want, FLOAT64_GRADIENT_RTOL, f"output {pick}")


def _both_outputs(backend):
    """(f, inputs): f(a, b) = (MMD²_u, variance) stacked, on a tiny float64 case."""
    x, y = sample_xy(6, 5, 2, seed=2)
    kernel = CASE_BY_NAME["gaussian_mix"].make(2)

    def both(a, b):
        return torch.stack(fastmmd.mmd2_and_variance(a, b, kernel, backend=backend))

    return both, (_leaf(x), _leaf(y))


def test_reference_backend_passes_gradcheck_and_gradgradcheck():
    both, inputs = _both_outputs("reference")
    assert torch.autograd.gradcheck(both, inputs, rtol=GRADCHECK_RTOL, atol=GRADCHECK_ATOL)
    assert torch.autograd.gradgradcheck(both, inputs, rtol=GRADCHECK_RTOL, atol=GRADCHECK_ATOL)


def test_fused_backend_passes_gradcheck_and_refuses_a_second_derivative():
    both, inputs = _both_outputs("cpu")
    assert torch.autograd.gradcheck(both, inputs, rtol=GRADCHECK_RTOL, atol=GRADCHECK_ATOL)
    with pytest.raises(RuntimeError, match="reference"):
        torch.autograd.grad(both(*inputs)[1], inputs[:1], create_graph=True)


@pytest.mark.parametrize("case_name", ["rq_mix", "rq_1dot", "laplacian", "energy"])
def test_a_kernel_without_a_square_or_a_gradient_is_refused_when_gradients_are_needed(case_name):
    x, y = sample_xy(9, 8, 3, seed=4)
    kernel = CASE_BY_NAME[case_name].make(3)
    assert square_reason(kernel.terms(3)) is not None or smooth_reason(kernel.terms(3)) is not None
    with pytest.raises(ValueError, match="square|smooth"):
        fastmmd.mmd2_and_variance(_leaf(x), y, kernel, backend="cpu")
    value, variance = fastmmd.mmd2_and_variance(x, y, kernel, backend="cpu")  # without gradients: as before
    assert np.isfinite(float(variance))


@pytest.mark.parametrize("case_name", SQUARABLE)
def test_the_squared_table_is_the_square_of_the_kernel(case_name):
    d = 4
    kernel = CASE_BY_NAME[case_name].make(d)
    a, b = sample_xy(7, 6, d, seed=5)
    square = fastmmd.kernels.TableKernel.of(squared_table(kernel.terms(d)))
    expected = kernel.gram(a, b) ** 2
    assert_close(square.gram(a, b), expected, SAME_ARITHMETIC_RTOL * 100, case_name)


@pytest.mark.parametrize("backend", FUSED + ["reference"])
def test_non_finite_input_gives_nan_and_nan_gradients(backend):
    x, y = sample_xy(8, 7, 3, seed=6)
    x[2, 1] = float("nan")
    x = _leaf(x)
    value, variance = fastmmd.mmd2_and_variance(x, y, CASE_BY_NAME["gaussian"].make(3), backend=backend)
    assert np.isnan(float(value)) and np.isnan(float(variance))
    (g,) = torch.autograd.grad(value + variance, (x,))
    assert bool(torch.isnan(g).all())


@pytest.mark.parametrize("backend", FUSED + ["reference"])
def test_exact_kid_is_differentiable_in_the_features(backend):
    gen = np.random.default_rng(7)
    real = torch.from_numpy(np.maximum(gen.standard_normal((15, 8)), 0))
    fake = _leaf(torch.from_numpy(np.maximum(gen.standard_normal((12, 8)) + 0.2, 0)))
    result = fastmmd.kid(real, fake, subsets=None, backend=backend)
    (g,) = torch.autograd.grad(result.mean + result.std, (fake,))
    fake2 = _leaf(fake)
    value, variance = materialised(real, fake2, fastmmd.Polynomial())
    (want,) = torch.autograd.grad(value + variance.clamp_min(0).sqrt(), (fake2,))
    assert_close(g, want, FLOAT64_GRADIENT_RTOL, "kid")


@pytest.mark.parametrize("backend", FUSED + ["reference"])
def test_power_criterion_is_mmd2_over_the_regularised_std(backend):
    x, y = sample_xy(14, 10, 3, seed=8)
    kernel = CASE_BY_NAME["gaussian_mix"].make(3)
    x1, x2 = _leaf(x), _leaf(x)
    criterion = fastmmd.power_criterion(x1, y, kernel, backend=backend)
    value, variance = materialised(x2, y, kernel)
    expected = value / torch.sqrt(torch.clamp(variance, min=1e-8))
    assert abs(float(criterion) - float(expected)) <= SAME_ARITHMETIC_RTOL * 10 * abs(float(expected))
    (g,) = torch.autograd.grad(criterion, (x1,))
    (want,) = torch.autograd.grad(expected, (x2,))
    assert_close(g, want, FLOAT64_GRADIENT_RTOL, "power criterion")
    huge = fastmmd.power_criterion(x, y, kernel, reg=1e3, backend=backend)
    assert abs(float(huge) - float(value) / np.sqrt(1e3)) <= 1e-9 * abs(float(value))


@pytest.mark.parametrize("reg", [0, -1e-8, float("nan"), "1e-8", True])
def test_power_criterion_refuses_a_bad_regulariser(reg):
    x, y = sample_xy(8, 8, 2)
    with pytest.raises(ValueError, match="reg"):
        fastmmd.power_criterion(x, y, reg=reg)
