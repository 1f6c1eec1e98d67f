"""Bad input to fastmmd.mmd2 and the kernels raises ValueError or TypeError naming the argument at fault."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import fastmmd
from tolerances import SAME_ARITHMETIC_RTOL

X_NAME = r"\bx\b"
Y_NAME = r"\by\b"


def _xy(n=5, m=6, d=3, dtype=torch.float64):
    gen = torch.Generator().manual_seed(0)
    return torch.randn(n, d, generator=gen, dtype=dtype), torch.randn(m, d, generator=gen, dtype=dtype)


BACKENDS = ["auto", "cpu", "reference"]


# ------------------------------------------------------------------------------------------------------------
# Shapes


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("shape", [(5,), (2, 5, 3), ()], ids=["1d", "3d", "0d"])
def test_wrong_rank_of_x(shape, backend):
    _, y = _xy()
    x = torch.zeros(shape, dtype=torch.float64) if shape else torch.tensor(1.0, dtype=torch.float64)
    with pytest.raises(ValueError, match=X_NAME):
        fastmmd.mmd2(x, y, backend=backend)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("shape", [(6,), (1, 6, 3)], ids=["1d", "3d"])
def test_wrong_rank_of_y(shape, backend):
    x, _ = _xy()
    with pytest.raises(ValueError, match=Y_NAME):
        fastmmd.mmd2(x, torch.zeros(shape, dtype=torch.float64), backend=backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_mismatched_feature_dims(backend):
    x, _ = _xy(d=3)
    _, y = _xy(d=4)
    with pytest.raises(ValueError, match=r"(?s)\bx\b.*\by\b|\by\b.*\bx\b"):
        fastmmd.mmd2(x, y, backend=backend)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("estimator", ["unbiased", "biased"])
def test_empty_x(estimator, backend):
    _, y = _xy()
    with pytest.raises(ValueError, match=X_NAME):
        fastmmd.mmd2(torch.zeros(0, 3, dtype=torch.float64), y, estimator=estimator, backend=backend)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("estimator", ["unbiased", "biased"])
def test_empty_y(estimator, backend):
    x, _ = _xy()
    with pytest.raises(ValueError, match=Y_NAME):
        fastmmd.mmd2(x, torch.zeros(0, 3, dtype=torch.float64), estimator=estimator, backend=backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_no_features(backend):
    with pytest.raises(ValueError, match=X_NAME):
        fastmmd.mmd2(torch.zeros(4, 0, dtype=torch.float64), torch.zeros(4, 0, dtype=torch.float64), backend=backend)


# ------------------------------------------------------------------------------------------------------------
# Sample sizes the estimators need


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("estimator", ["unbiased", "u-statistic", "linear"])
def test_single_sample_in_x(estimator, backend):
    x, y = _xy(n=1, m=1)
    with pytest.raises(ValueError, match=X_NAME):
        fastmmd.mmd2(x, y, estimator=estimator, backend=backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_single_sample_in_y_unbiased(backend):
    x, y = _xy(n=4, m=1)
    with pytest.raises(ValueError, match=Y_NAME):
        fastmmd.mmd2(x, y, estimator="unbiased", backend=backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_single_samples_are_fine_for_biased(backend):
    """The V-statistic needs no pair of distinct points: with one point per set it is k(x,x)+k(y,y)-2k(x,y)."""
    x = torch.tensor([[0.0, 1.0]], dtype=torch.float64)
    y = torch.tensor([[1.0, 1.0]], dtype=torch.float64)
    got = float(fastmmd.mmd2(x, y, kernel=fastmmd.Gaussian(bandwidth=1.0), estimator="biased", backend=backend))
    assert got == pytest.approx(2.0 - 2.0 * math.exp(-0.5), rel=SAME_ARITHMETIC_RTOL)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("estimator", ["u-statistic", "linear"])
def test_unequal_sizes_for_paired_estimators(estimator, backend):
    x, y = _xy(n=5, m=6)
    with pytest.raises(ValueError, match=r"estimator|u-statistic|linear"):
        fastmmd.mmd2(x, y, estimator=estimator, backend=backend)


# ------------------------------------------------------------------------------------------------------------
# Types


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [torch.int64, torch.int32, torch.bool, torch.uint8], ids=str)
def test_integer_x_is_a_type_error(dtype, backend):
    x, y = _xy()
    with pytest.raises(TypeError, match=X_NAME):
        fastmmd.mmd2(x.to(dtype), y, backend=backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_integer_y_is_a_type_error(backend):
    x, y = _xy()
    with pytest.raises(TypeError, match=Y_NAME):
        fastmmd.mmd2(x, y.to(torch.int64), backend=backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_integer_numpy_is_a_type_error(backend):
    x, y = _xy()
    with pytest.raises(TypeError, match=X_NAME):
        fastmmd.mmd2(np.arange(15).reshape(5, 3), y.numpy(), backend=backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_mixed_dtypes(backend):
    x, y = _xy()
    with pytest.raises((TypeError, ValueError), match=r"(?i)dtype"):
        fastmmd.mmd2(x.float(), y, backend=backend)


@pytest.mark.parametrize("value", ["abc", [[1.0, 2.0], [3.0, 4.0]], None, 3.0], ids=["str", "list", "None", "float"])
def test_non_array_x(value):
    _, y = _xy(d=2)
    with pytest.raises(TypeError, match=X_NAME):
        fastmmd.mmd2(value, y)


# ------------------------------------------------------------------------------------------------------------
# Option names


@pytest.mark.parametrize("estimator", ["Unbiased ", "mmd", "", "quadratic", None])
def test_unknown_estimator(estimator):
    x, y = _xy()
    with pytest.raises(ValueError, match="estimator"):
        fastmmd.mmd2(x, y, estimator=estimator)


@pytest.mark.parametrize("kernel", ["rbf_mix", "gauss", ""])
def test_unknown_kernel_name(kernel):
    x, y = _xy()
    with pytest.raises(ValueError, match="kernel"):
        fastmmd.mmd2(x, y, kernel=kernel)


@pytest.mark.parametrize("kernel", [1.0, None, lambda a, b: a @ b.T], ids=["float", "None", "callable"])
def test_kernel_of_the_wrong_type(kernel):
    x, y = _xy()
    with pytest.raises(TypeError, match="kernel"):
        fastmmd.mmd2(x, y, kernel=kernel)


@pytest.mark.parametrize("backend", ["gpu", "c++", "", "CPU ", None])
def test_unknown_backend(backend):
    x, y = _xy()
    with pytest.raises(ValueError, match="backend"):
        fastmmd.mmd2(x, y, backend=backend)


@pytest.mark.parametrize("precision", ["fp16", "high", "", None])
def test_unknown_precision(precision):
    x, y = _xy()
    with pytest.raises(ValueError, match="precision"):
        fastmmd.mmd2(x, y, precision=precision)


# ------------------------------------------------------------------------------------------------------------
# Kernel parameters


@pytest.mark.parametrize(
    "make,name",
    [
        (lambda: fastmmd.Gaussian(bandwidth=0.0), "bandwidth"),
        (lambda: fastmmd.Gaussian(bandwidth=-1.0), "bandwidth"),
        (lambda: fastmmd.Gaussian(bandwidth=[1.0, -2.0]), "bandwidth"),
        (lambda: fastmmd.Gaussian(bandwidth=[]), "bandwidth"),
        (lambda: fastmmd.Gaussian(bandwidth=float("nan")), "bandwidth"),
        (lambda: fastmmd.Gaussian(bandwidth=float("inf")), "bandwidth"),
        (lambda: fastmmd.Laplacian(bandwidth=0.0), "bandwidth"),
        (lambda: fastmmd.Laplacian(bandwidth=-3.0), "bandwidth"),
        (lambda: fastmmd.RationalQuadratic(alpha=0.0), "alpha"),
        (lambda: fastmmd.RationalQuadratic(alpha=[0.1, -1.0]), "alpha"),
        (lambda: fastmmd.RationalQuadratic(alpha=1.0, scale=0.0), "scale"),
        (lambda: fastmmd.RationalQuadratic(alpha=1.0, scale=-1.0), "scale"),
        (lambda: fastmmd.InverseMultiquadric(c=-1.0), r"\bc\b"),
        (lambda: fastmmd.InverseMultiquadric(c=0.0), r"\bc\b"),
        (lambda: fastmmd.InverseMultiquadric(beta=0.0), "beta"),
        (lambda: fastmmd.InverseMultiquadric(beta=-0.5), "beta"),
        (lambda: fastmmd.Polynomial(degree=0), "degree"),
        (lambda: fastmmd.Polynomial(degree=-2), "degree"),
        (lambda: fastmmd.Polynomial(degree=2.5), "degree"),
        (lambda: fastmmd.Polynomial(gamma=0.0), "gamma"),
        (lambda: fastmmd.Polynomial(gamma=-1.0), "gamma"),
        (lambda: fastmmd.Polynomial(coef0=float("nan")), "coef0"),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_invalid_kernel_parameters(make, name):
    with pytest.raises((ValueError, TypeError), match=name):
        make()


@pytest.mark.parametrize("weight", [float("nan"), float("inf")])
def test_invalid_kernel_weight(weight):
    with pytest.raises(ValueError, match="weight"):
        weight * fastmmd.Gaussian(bandwidth=1.0)


def test_kernel_times_a_string_is_a_type_error():
    with pytest.raises(TypeError):
        "2" * fastmmd.Gaussian(bandwidth=1.0)


# ------------------------------------------------------------------------------------------------------------
# Devices (GPU machines only)


@pytest.mark.cuda
def test_inputs_on_different_devices():
    x, y = _xy()
    with pytest.raises(ValueError, match=r"(?i)device"):
        fastmmd.mmd2(x, y.cuda())


@pytest.mark.cuda
def test_cpu_backend_refuses_cuda_tensors():
    """A backend that cannot run an input says why (dispatch error, listing the reasons)."""
    x, y = _xy()
    with pytest.raises((ValueError, RuntimeError), match=r"(?i)\bcpu\b.*cuda|cuda.*\bcpu\b"):
        fastmmd.mmd2(x.cuda(), y.cuda(), backend="cpu")
