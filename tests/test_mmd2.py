"""fastmmd.mmd2: every kernel × estimator × backend × dtype against the float64 reference, the reference
against an independent brute force, gradients (values and gradcheck), and properties of MMD².

Coverage plan (to stay fast on a 2-core CPU): the full cross product of kernels × estimators on the small
odd shapes (n, m ∈ {2, 3, 97}, d ∈ {1, 3, 130}), and the 1025-row shapes for a few kernels that exercise
every code path (a radial mixture, a mixture with a linear part, a non-smooth distance kernel, the polynomial)
with d ≤ 3. Adding a backend to BACKENDS extends all of it.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import fastmmd
from brute_force import Term, mmd2_loops, mmd2_terms
from cases import CASE_BY_NAME, CASES, assert_grad_close, assert_value_close
from conftest import sample_xy
from tolerances import (
    GRADCHECK_ATOL,
    GRADCHECK_RTOL,
    PROPERTY_RTOL,
    REFERENCE_VS_BRUTE_FORCE,
    SAME_ARITHMETIC_RTOL,
    tolerance,
)

# The fast backends under test; each is compared with backend="reference" in float64.
# (The triton backend has its own matrix, on CUDA tensors or under the interpreter: tests/test_triton.py.)
BACKENDS = ["cpu"]
DTYPES = [torch.float64, torch.float32]
ESTIMATORS = ["unbiased", "biased", "u-statistic", "linear"]
EQUAL_SIZES = {"u-statistic", "linear"}


# The kernel names and what they stand for (fastmmd/kernels/; MMD-GAN presets per docs/kernels.md).
_MIX_RQ = [Term("rq", 1.0, {"alpha": a, "scale": 1.0}) for a in (0.1, 1.0, 10.0)]
NAMED = {
    "gaussian": [Term("gaussian", 1.0, {"sigma": 1.0})],
    "rq": [Term("rq", 1.0, {"alpha": 1.0, "scale": 1.0})],
    "polynomial": [Term("polynomial", 1.0, {"degree": 3, "gamma": None, "coef0": 1.0})],
    "linear": [Term("linear")],
    "laplacian": [Term("laplacian", 1.0, {"sigma": 1.0})],
    "imq": [Term("imq", 1.0, {"c": 1.0, "beta": 0.5})],
    "energy": [Term("energy")],
    "mix_rbf": [Term("gaussian", 1.0, {"sigma": s}) for s in (2.0, 5.0, 10.0, 20.0, 40.0, 80.0)],
    "mix_rq": _MIX_RQ,
    "mix_rq_1dot": _MIX_RQ + [Term("linear")],
}

SMALL_SHAPES = [(2, 2, 1), (3, 3, 130), (97, 97, 3), (2, 3, 130), (3, 2, 3), (97, 2, 1), (3, 97, 130)]
# The 1025-row shapes, spread so that each of these kernels and each estimator meets them (not the cross
# product: one 1025×1025 float64 reference with gradients takes a second on a small CPU).
LARGE = [
    ("gaussian_mix", "unbiased", (1025, 1025, 3)),
    ("gaussian_mix", "linear", (1025, 1025, 3)),
    ("gaussian_mix", "biased", (1025, 97, 1)),
    ("rq_1dot", "u-statistic", (1025, 1025, 3)),
    ("rq_1dot", "unbiased", (2, 1025, 3)),
    ("rq_1dot", "linear", (1025, 1025, 3)),
    ("energy", "biased", (1025, 1025, 3)),
    ("energy", "unbiased", (1025, 97, 1)),
    ("polynomial", "unbiased", (1025, 1025, 3)),
    ("polynomial", "biased", (2, 1025, 3)),
]


def _valid(estimator, n, m):
    return n == m if estimator in EQUAL_SIZES else True


def _shape_id(shape):
    return "x".join(map(str, shape))


def _small_matrix():
    for case in CASES:
        for n, m, d in SMALL_SHAPES:
            for est in ESTIMATORS:
                if _valid(est, n, m):
                    yield pytest.param(case, est, (n, m, d), id=f"{case.name}-{est}-{_shape_id((n, m, d))}")


# (backend, dtype) runs compared with the float64 reference; the reference's own float64 path is
# compared with the brute force instead (comparing it with itself would prove nothing).
RUNS = [(b, dt) for b in BACKENDS for dt in DTYPES] + [("reference", torch.float32), ("reference", torch.float64)]


def _run_id(run):
    return f"{run[0]}-{str(run[1]).replace('torch.', '')}"


# ------------------------------------------------------------------------------------------------------------
# Helpers


def value_and_grads(x, y, kernel, estimator, backend):
    x = x.detach().clone().requires_grad_(True)
    y = y.detach().clone().requires_grad_(True)
    out = fastmmd.mmd2(x, y, kernel=kernel, estimator=estimator, backend=backend)
    assert isinstance(out, torch.Tensor) and out.dim() == 0, f"expected a 0-dim tensor, got {out!r}"
    assert out.dtype == x.dtype, f"result dtype {out.dtype} != input dtype {x.dtype}"
    gx, gy = torch.autograd.grad(out, (x, y))
    assert gx.dtype == x.dtype and gx.shape == x.shape and gy.shape == y.shape
    return float(out.detach()), gx.double().cpu().numpy(), gy.double().cpu().numpy()




# ------------------------------------------------------------------------------------------------------------
# The brute force itself (validates the truth before using it)


@pytest.mark.parametrize("estimator", ESTIMATORS)
@pytest.mark.parametrize("case", CASES, ids=repr)
def test_brute_force_routes_agree_and_gradients_match_finite_differences(case, estimator):
    n, m, d = (5, 5, 3) if estimator in EQUAL_SIZES else (4, 3, 3)
    x, y = sample_xy(n, m, d, seed=1)
    x, y = x.numpy(), y.numpy()
    terms = case.terms(d)
    bf = mmd2_terms(terms, x, y, estimator)
    loops = mmd2_loops(terms, x, y, estimator)
    assert abs(bf.mmd2 - loops) <= 1e-13 * bf.value_scale
    eps = 1e-6
    for arr, grad, name in ((x, bf.grad_x, "x"), (y, bf.grad_y, "y")):
        fd = np.zeros_like(arr)
        for idx in np.ndindex(arr.shape):
            plus, minus = arr.copy(), arr.copy()
            plus[idx] += eps
            minus[idx] -= eps
            args_p = (plus, y) if name == "x" else (x, plus)
            args_m = (minus, y) if name == "x" else (x, minus)
            fd[idx] = (mmd2_loops(terms, *args_p, estimator) - mmd2_loops(terms, *args_m, estimator)) / (2 * eps)
        assert np.max(np.abs(fd - grad)) <= 1e-7 * (1.0 + np.max(np.abs(grad))), name


@pytest.mark.parametrize("case", CASES, ids=repr)
@pytest.mark.parametrize("d", [1, 3, 130])
def test_cases_are_not_degenerate(case, d):
    """The data and bandwidths make every term matter: no kernel is ~0 or ~constant on the data."""
    x, y = sample_xy(97, 97, d, seed=2)
    bf = mmd2_terms(case.terms(d), x.numpy(), y.numpy(), "biased")
    scale = bf.value_scale
    assert min(abs(bf.t_xx), abs(bf.t_yy), abs(bf.t_xy)) > 1e-3 * scale
    # the two samples differ visibly for this kernel (the derivative "kernels" are not positive definite: the
    # size of their value counts)
    assert abs(bf.mmd2) > 1e-4 * scale
    # the gradients are not negligible either
    assert bf.grad_scale > 0


# ------------------------------------------------------------------------------------------------------------
# The reference backend against the brute force


TINY_SHAPES = [(2, 2, 1), (3, 3, 2), (4, 5, 3), (5, 5, 3)]


@pytest.mark.parametrize("case", CASES, ids=repr)
@pytest.mark.parametrize(
    "estimator,shape",
    [
        pytest.param(e, s, id=f"{e}-{_shape_id(s)}")
        for e in ESTIMATORS
        for s in TINY_SHAPES
        if _valid(e, s[0], s[1])
    ],
)
def test_reference_matches_brute_force_loops(case, estimator, shape):
    n, m, d = shape
    x, y = sample_xy(n, m, d, seed=3)
    terms = case.terms(d)
    truth = mmd2_loops(terms, x.numpy(), y.numpy(), estimator)
    bf = mmd2_terms(terms, x.numpy(), y.numpy(), estimator)
    value, gx, gy = value_and_grads(x, y, case.make(d), estimator, "reference")
    tol = REFERENCE_VS_BRUTE_FORCE
    assert_value_close(value, truth, bf.value_scale, tol.value, "reference vs loops")
    assert_grad_close(gx, bf.grad_x, bf.grad_scale, tol.grad, "reference d/dx vs brute force")
    assert_grad_close(gy, bf.grad_y, bf.grad_scale, tol.grad, "reference d/dy vs brute force")


@pytest.mark.parametrize("estimator", ["unbiased", "biased", "u-statistic"])
def test_true_diagonal_with_linear_part(estimator):
    """mix_rq_1dot's diagonal k(x, x) = 3 + |x|² is not constant: a "const diagonal" shortcut
    (tr K = n k(0)) is wrong by Σ|x_i|² and must not be used."""
    x, y = sample_xy(5, 5, 3, seed=4)
    x = x * torch.arange(1, 6, dtype=torch.float64)[:, None]  # very different norms
    truth = mmd2_loops(NAMED["mix_rq_1dot"], x.numpy(), y.numpy(), estimator)
    scale = mmd2_terms(NAMED["mix_rq_1dot"], x.numpy(), y.numpy(), estimator).value_scale
    for backend in ["reference", *BACKENDS]:
        got = float(fastmmd.mmd2(x, y, kernel="mix_rq_1dot", estimator=estimator, backend=backend))
        assert_value_close(got, truth, scale, tolerance(torch.float64).value, f"{backend}")


@pytest.mark.parametrize("n", [2, 5, 8])
def test_linear_time_estimator_formula(n):
    """Gretton 2012: h over disjoint pairs (x_2i, x_2i+1), (y_2i, y_2i+1), averaged over ⌊n/2⌋; the last
    point of an odd sample is unused (its gradient is 0)."""
    x, y = sample_xy(n, n, 2, seed=5)
    k = fastmmd.Gaussian(bandwidth=1.3)
    g = lambda a, b: math.exp(-float(((a - b) ** 2).sum()) / (2 * 1.3**2))  # noqa: E731
    half = n // 2
    hs = [
        g(x[2 * i], x[2 * i + 1]) + g(y[2 * i], y[2 * i + 1]) - g(x[2 * i], y[2 * i + 1]) - g(x[2 * i + 1], y[2 * i])
        for i in range(half)
    ]
    truth = sum(hs) / half
    for backend in ["reference", *BACKENDS]:
        value, gx, gy = value_and_grads(x, y, k, "linear", backend)
        assert abs(value - truth) <= 1e-12, backend
        if n % 2:
            assert np.all(gx[-1] == 0) and np.all(gy[-1] == 0), backend


# ------------------------------------------------------------------------------------------------------------
# The matrix: every kernel × estimator × backend × dtype against the float64 reference


def check_against_float64_reference(case, estimator, shape, runs):
    """Every (backend, dtype) of `runs` against the float64 reference; returns the failures' messages."""
    n, m, d = shape
    x64, y64 = sample_xy(n, m, d, seed=n * 7919 + m * 31 + d)
    kernel = case.make(d)
    failures = []
    truths = {}
    for backend, dtype in runs:
        # The truth is computed from the same (rounded) inputs, in float64.
        x, y = x64.to(dtype), y64.to(dtype)
        if dtype not in truths:
            xr, yr = x.double(), y.double()
            bf = mmd2_terms(case.terms(d), xr.numpy(), yr.numpy(), estimator)
            truths[dtype] = bf, value_and_grads(xr, yr, kernel, estimator, "reference")
        bf, ref = truths[dtype]
        value, gx, gy = value_and_grads(x, y, kernel, estimator, backend)
        if backend == "reference" and dtype == torch.float64:
            ref = bf.mmd2, bf.grad_x, bf.grad_y
            tol = REFERENCE_VS_BRUTE_FORCE
            what = "reference float64 vs brute force"
        else:
            tol = tolerance(dtype)
            what = f"{backend} {dtype} vs reference float64"
        try:
            assert_value_close(value, ref[0], bf.value_scale, tol.value, what)
            assert_grad_close(gx, ref[1], bf.grad_scale, tol.grad, what + " (d/dx)")
            assert_grad_close(gy, ref[2], bf.grad_scale, tol.grad, what + " (d/dy)")
        except AssertionError as exc:
            failures.append(str(exc).splitlines()[0])
    return failures


@pytest.mark.parametrize("run", RUNS, ids=_run_id)
@pytest.mark.parametrize("case,estimator,shape", list(_small_matrix()))
def test_mmd2_matches_float64_reference(case, estimator, shape, run):
    failures = check_against_float64_reference(case, estimator, shape, [run])
    assert not failures, failures[0]


@pytest.mark.parametrize(
    "case_name,estimator,shape", LARGE, ids=[f"{c}-{e}-{_shape_id(s)}" for c, e, s in LARGE]
)
def test_mmd2_matches_float64_reference_large(case_name, estimator, shape):
    # The float32 reference computes in float64 and rounds: nothing to learn from it at this size.
    runs = [r for r in RUNS if r != ("reference", torch.float32)]
    failures = check_against_float64_reference(CASE_BY_NAME[case_name], estimator, shape, runs)
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("backend", ["reference", *BACKENDS])
@pytest.mark.parametrize("estimator", ["unbiased", "biased"])
@pytest.mark.parametrize("name", list(NAMED))
def test_named_kernels(name, estimator, backend):
    n, m, d = 13, 11, 3
    x, y = sample_xy(n, m, d, seed=6)
    bf = mmd2_terms(NAMED[name], x.numpy(), y.numpy(), estimator)
    value, gx, gy = value_and_grads(x, y, name, estimator, backend)
    tol = tolerance(torch.float64)
    assert_value_close(value, bf.mmd2, bf.value_scale, tol.value, f"{name} on {backend}")
    assert_grad_close(gx, bf.grad_x, bf.grad_scale, tol.grad, f"{name} on {backend} (d/dx)")
    assert_grad_close(gy, bf.grad_y, bf.grad_scale, tol.grad, f"{name} on {backend} (d/dy)")


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_auto_backend_matches_reference(estimator, dtype):
    x, y = sample_xy(40, 40, 5, dtype=dtype, seed=7)
    k = CASE_BY_NAME["rq_1dot"]
    bf = mmd2_terms(k.terms(5), x.double().numpy(), y.double().numpy(), estimator)
    value, gx, gy = value_and_grads(x, y, k.make(5), estimator, "auto")
    ref_value, ref_gx, ref_gy = value_and_grads(x.double(), y.double(), k.make(5), estimator, "reference")
    tol = tolerance(dtype)
    assert_value_close(value, ref_value, bf.value_scale, tol.value, "auto")
    assert_grad_close(gx, ref_gx, bf.grad_scale, tol.grad, "auto (d/dx)")
    assert_grad_close(gy, ref_gy, bf.grad_scale, tol.grad, "auto (d/dy)")


def test_default_arguments_are_gaussian_unbiased():
    x, y = sample_xy(9, 7, 3, seed=8)
    bf = mmd2_terms(NAMED["gaussian"], x.numpy(), y.numpy(), "unbiased")
    got = float(fastmmd.mmd2(x, y))
    assert_value_close(got, bf.mmd2, bf.value_scale, tolerance(torch.float64).value, "defaults")


@pytest.mark.parametrize("backend", ["reference", *BACKENDS])
def test_non_contiguous_inputs(backend):
    x, y = sample_xy(31, 29, 6, seed=9)
    xt = x.t().contiguous().t()  # same values, column-major
    y_strided = torch.cat([y, y], dim=1)[:, ::2]  # a strided view
    k = fastmmd.Gaussian(bandwidth=2.0)
    expected = fastmmd.mmd2(x, y_strided.contiguous(), kernel=k, backend=backend)
    got = fastmmd.mmd2(xt, y_strided, kernel=k, backend=backend)
    assert not xt.is_contiguous() and not y_strided.is_contiguous()
    assert torch.allclose(got, expected, rtol=SAME_ARITHMETIC_RTOL, atol=0)


@pytest.mark.cuda
@pytest.mark.parametrize("estimator", ESTIMATORS)
@pytest.mark.parametrize("case_name", ["gaussian_mix", "rq_1dot", "energy", "polynomial"])
def test_reference_on_cuda_matches_brute_force(case_name, estimator):
    case = CASE_BY_NAME[case_name]
    n, m, d = (97, 97, 3) if estimator in EQUAL_SIZES else (97, 31, 3)
    x, y = sample_xy(n, m, d, seed=16)
    bf = mmd2_terms(case.terms(d), x.numpy(), y.numpy(), estimator)
    value, gx, gy = value_and_grads(x.cuda(), y.cuda(), case.make(d), estimator, "reference")
    tol = tolerance(torch.float64)
    assert_value_close(value, bf.mmd2, bf.value_scale, tol.value, "reference on cuda")
    assert_grad_close(gx, bf.grad_x, bf.grad_scale, tol.grad, "reference on cuda (d/dx)")
    assert_grad_close(gy, bf.grad_y, bf.grad_scale, tol.grad, "reference on cuda (d/dy)")


# ------------------------------------------------------------------------------------------------------------
# gradcheck (float64, small shapes)


@pytest.mark.parametrize("backend", ["reference", *BACKENDS])
@pytest.mark.parametrize("estimator", ESTIMATORS)
@pytest.mark.parametrize("case", CASES, ids=repr)
def test_gradcheck(case, estimator, backend):
    n, m, d = (5, 5, 2) if estimator in EQUAL_SIZES else (3, 4, 2)
    x, y = sample_xy(n, m, d, seed=10)
    x.requires_grad_(True)
    y.requires_grad_(True)
    kernel = case.make(d)
    fn = lambda a, b: fastmmd.mmd2(a, b, kernel=kernel, estimator=estimator, backend=backend)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (x, y), eps=1e-6, atol=GRADCHECK_ATOL, rtol=GRADCHECK_RTOL)


# ------------------------------------------------------------------------------------------------------------
# Non-smooth kernels where points coincide: gradients are finite (subgradient 0 at a distance or norm of 0)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("backend", ["reference", *BACKENDS])
@pytest.mark.parametrize("estimator", ESTIMATORS)
@pytest.mark.parametrize("kernel_name", ["energy", "laplacian"])
def test_gradient_finite_with_shared_and_zero_points(kernel_name, estimator, backend, dtype):
    d = 3
    case = CASE_BY_NAME[kernel_name]
    x, y = sample_xy(6, 6, d, seed=11)
    y[:3] = x[:3]  # shared points (pairs (x_i, y_i) coincide: the u-statistic and linear cross terms see them)
    y[4] = x[1]
    x[5] = 0.0  # the zero vector
    y[5] = 0.0
    x, y = x.to(dtype), y.to(dtype)
    value, gx, gy = value_and_grads(x, y, case.make(d), estimator, backend)
    assert math.isfinite(value)
    assert np.all(np.isfinite(gx)) and np.all(np.isfinite(gy))
    bf = mmd2_terms(case.terms(d), x.double().numpy(), y.double().numpy(), estimator)
    tol = tolerance(dtype)
    assert_value_close(value, bf.mmd2, bf.value_scale, tol.value, "value")
    assert_grad_close(gx, bf.grad_x, bf.grad_scale, tol.grad, "d/dx")
    assert_grad_close(gy, bf.grad_y, bf.grad_scale, tol.grad, "d/dy")


@pytest.mark.parametrize("dtype,gap", [(torch.float32, 1e-4), (torch.float64, 1e-9)], ids=["float32", "float64"])
@pytest.mark.parametrize("backend", ["reference", *BACKENDS])
@pytest.mark.parametrize("kernel_name", ["energy", "laplacian"])
def test_gradient_of_distance_kernels_at_near_points(kernel_name, backend, dtype, gap):
    """Two distinct points closer than the cancellation error of |a|² + |b|² - 2aᵀb (relative gap 1e-4 in
    float32, 1e-9 in float64) still have a distance: the pair's gradient (a - b)/|a - b| is a unit vector,
    not the subgradient 0 of coincident points."""
    case = CASE_BY_NAME[kernel_name]
    x = torch.tensor([[1.0], [1.0 + gap], [-0.5]], dtype=torch.float64).to(dtype)
    y = torch.tensor([[0.2], [2.0]], dtype=torch.float64).to(dtype)
    value, gx, gy = value_and_grads(x, y, case.make(1), "unbiased", backend)
    bf = mmd2_terms(case.terms(1), x.double().numpy(), y.double().numpy(), "unbiased")
    tol = tolerance(dtype)
    failures = []
    for check in (
        lambda: assert_grad_close(gx, bf.grad_x, bf.grad_scale, tol.grad, f"d/dx {gx.ravel()} vs {bf.grad_x.ravel()}"),
        lambda: assert_grad_close(gy, bf.grad_y, bf.grad_scale, tol.grad, "d/dy"),
        lambda: assert_value_close(value, bf.mmd2, bf.value_scale, tol.value, "value"),
    ):
        try:
            check()
        except AssertionError as exc:
            failures.append(str(exc).splitlines()[0])
    assert not failures, "\n".join(failures)


# ------------------------------------------------------------------------------------------------------------
# Input and output types


@pytest.mark.parametrize("backend", ["reference", *BACKENDS])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_numpy_in_numpy_out(dtype, backend):
    x, y = sample_xy(10, 12, 3, seed=12)
    xn, yn = x.numpy().astype(dtype), y.numpy().astype(dtype)
    out = fastmmd.mmd2(xn, yn, kernel="gaussian", backend=backend)
    assert isinstance(out, (np.ndarray, np.generic)) and not isinstance(out, torch.Tensor)
    assert np.ndim(out) == 0
    assert np.asarray(out).dtype == dtype
    expected = fastmmd.mmd2(torch.from_numpy(xn), torch.from_numpy(yn), kernel="gaussian", backend=backend)
    assert float(out) == float(expected)


@pytest.mark.parametrize("backend", ["reference", *BACKENDS])
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_torch_in_torch_out(dtype, backend):
    x, y = sample_xy(10, 12, 3, dtype=dtype, seed=13)
    out = fastmmd.mmd2(x, y, backend=backend)
    assert isinstance(out, torch.Tensor) and out.shape == () and out.dtype == dtype
    assert not out.requires_grad
    out = fastmmd.mmd2(x.requires_grad_(True), y, backend=backend)
    assert out.requires_grad
    (gx,) = torch.autograd.grad(out, x)
    assert gx.shape == x.shape and torch.all(gx != 0)


@pytest.mark.parametrize("backend", ["reference", *BACKENDS])
def test_gradient_only_in_y(backend):
    x, y = sample_xy(8, 9, 2, seed=14)
    y.requires_grad_(True)
    out = fastmmd.mmd2(x, y, kernel="rq", backend=backend)
    (gy,) = torch.autograd.grad(out, y)
    bf = mmd2_terms(NAMED["rq"], x.numpy(), y.detach().numpy(), "unbiased")
    assert_grad_close(gy.numpy(), bf.grad_y, bf.grad_scale, tolerance(torch.float64).grad, "d/dy")


# ------------------------------------------------------------------------------------------------------------
# Properties (hypothesis), float64


PROPERTY_SETTINGS = settings(max_examples=25, deadline=None, derandomize=True, database=None)
CHARACTERISTIC = [c for c in CASES if c.characteristic]


@st.composite
def samples(draw, equal=False, max_rows=30):
    n = draw(st.integers(2, max_rows))
    m = n if equal else draw(st.integers(2, max_rows))
    d = draw(st.integers(1, 6))
    seed = draw(st.integers(0, 2**31 - 1))
    shift = draw(st.floats(-1.0, 1.0))
    spread = draw(st.floats(0.3, 3.0))
    return sample_xy(n, m, d, seed=seed, shift=shift, spread=spread)


def _scale(terms, x, y, estimator):
    return mmd2_terms(terms, x.numpy(), y.numpy(), estimator).value_scale


@PROPERTY_SETTINGS
@given(xy=samples(), case=st.sampled_from(CHARACTERISTIC), backend=st.sampled_from(["reference", *BACKENDS]))
def test_property_biased_is_nonnegative(xy, case, backend):
    x, y = xy
    d = x.shape[1]
    got = float(fastmmd.mmd2(x, y, kernel=case.make(d), estimator="biased", backend=backend))
    assert got >= -PROPERTY_RTOL * _scale(case.terms(d), x, y, "biased")


@PROPERTY_SETTINGS
@given(xy=samples(), case=st.sampled_from(CASES), backend=st.sampled_from(["reference", *BACKENDS]))
def test_property_biased_of_a_sample_with_itself_is_zero(xy, case, backend):
    x, _ = xy
    d = x.shape[1]
    got = float(fastmmd.mmd2(x, x.clone(), kernel=case.make(d), estimator="biased", backend=backend))
    assert abs(got) <= PROPERTY_RTOL * _scale(case.terms(d), x, x, "biased")


@PROPERTY_SETTINGS
@given(
    data=st.data(),
    case=st.sampled_from(CASES),
    estimator=st.sampled_from(ESTIMATORS),
    backend=st.sampled_from(["reference", *BACKENDS]),
)
def test_property_symmetric_in_x_and_y(data, case, estimator, backend):
    x, y = data.draw(samples(equal=estimator in EQUAL_SIZES))
    d = x.shape[1]
    k = case.make(d)
    xy = float(fastmmd.mmd2(x, y, kernel=k, estimator=estimator, backend=backend))
    yx = float(fastmmd.mmd2(y, x, kernel=k, estimator=estimator, backend=backend))
    assert abs(xy - yx) <= PROPERTY_RTOL * _scale(case.terms(d), x, y, estimator)


@PROPERTY_SETTINGS
@given(
    data=st.data(),
    estimator=st.sampled_from(ESTIMATORS),
    backend=st.sampled_from(["reference", *BACKENDS]),
    offset=st.floats(-5.0, 5.0),
)
def test_property_gaussian_translation_invariant(data, estimator, backend, offset):
    x, y = data.draw(samples(equal=estimator in EQUAL_SIZES))
    d = x.shape[1]
    case = CASE_BY_NAME["gaussian_mix"]
    t = offset * torch.linspace(-1.0, 1.0, d, dtype=torch.float64) + offset
    base = float(fastmmd.mmd2(x, y, kernel=case.make(d), estimator=estimator, backend=backend))
    moved = float(fastmmd.mmd2(x + t, y + t, kernel=case.make(d), estimator=estimator, backend=backend))
    # |a|² + |b|² - 2aᵀb loses about eps·|a|² to cancellation, and |a|² grows with the offset.
    assert abs(base - moved) <= 1e-10 * _scale(case.terms(d), x, y, estimator)


@PROPERTY_SETTINGS
@given(
    data=st.data(),
    case=st.sampled_from(CASES),
    estimator=st.sampled_from(ESTIMATORS),
    weight=st.floats(0.01, 100.0),
    backend=st.sampled_from(["reference", *BACKENDS]),
)
def test_property_scaled_kernel_scales_mmd2(data, case, estimator, weight, backend):
    x, y = data.draw(samples(equal=estimator in EQUAL_SIZES))
    d = x.shape[1]
    k = case.make(d)
    base = float(fastmmd.mmd2(x, y, kernel=k, estimator=estimator, backend=backend))
    scaled = float(fastmmd.mmd2(x, y, kernel=weight * k, estimator=estimator, backend=backend))
    assert abs(scaled - weight * base) <= weight * PROPERTY_RTOL * _scale(case.terms(d), x, y, estimator)


@PROPERTY_SETTINGS
@given(
    data=st.data(),
    cases=st.lists(st.sampled_from(CASES), min_size=2, max_size=2, unique_by=lambda c: c.name),
    estimator=st.sampled_from(ESTIMATORS),
    backend=st.sampled_from(["reference", *BACKENDS]),
)
def test_property_sum_of_kernels_sums_mmd2(data, cases, estimator, backend):
    x, y = data.draw(samples(equal=estimator in EQUAL_SIZES))
    d = x.shape[1]
    k1, k2 = (c.make(d) for c in cases)
    total = float(fastmmd.mmd2(x, y, kernel=k1 + k2, estimator=estimator, backend=backend))
    parts = sum(float(fastmmd.mmd2(x, y, kernel=k, estimator=estimator, backend=backend)) for k in (k1, k2))
    scale = sum(_scale(c.terms(d), x, y, estimator) for c in cases)
    assert abs(total - parts) <= PROPERTY_RTOL * scale


def test_scalar_multiplication_on_either_side():
    x, y = sample_xy(7, 8, 2, seed=15)
    k = fastmmd.Gaussian(bandwidth=1.5)
    base = fastmmd.mmd2(x, y, kernel=k, backend="reference")
    scale = _scale([Term("gaussian", params={"sigma": 1.5})], x, y, "unbiased")  # the terms' size, as above
    for scaled in (k * 3.0, 3.0 * k):
        assert abs(float(fastmmd.mmd2(x, y, kernel=scaled, backend="reference")) - 3.0 * float(base)) <= \
            PROPERTY_RTOL * 3.0 * scale
