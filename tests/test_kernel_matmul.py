"""kernel_matmul (K(a, b) @ v without K) on the cpu and reference backends against the float64 brute force:
every kernel, both dtypes, odd shapes, one and many columns, the diagonal left out, the row sums of K∘K,
first derivatives in a, b and v, second derivatives (gradgradcheck), errors, numpy in and out, the custom
op's registration. The Triton backend has its own file (test_triton_kernel_matmul.py)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import fastmmd
from brute_force import Term, gram, weighted_sum_and_grad
from cases import CASE_BY_NAME, CASES
from conftest import sample_xy
from fastmmd.backends import get_backend
from fastmmd.ops.kernel_matmul import kernel_matmul_fused, kernel_products
from tolerances import SAME_ARITHMETIC_ATOL, SAME_ARITHMETIC_RTOL, tolerance

BACKENDS = ["cpu", "reference"]
SHAPES = [(1, 2, 3), (37, 29, 3), (3, 97, 130), (97, 101, 5)]
SMOOTH = [c for c in CASES if c.name not in ("laplacian", "energy", "weighted_sum")]


def weights(m, p, dtype, seed=0):
    return torch.from_numpy(np.random.default_rng(seed).standard_normal((m, p))).to(dtype)


def assert_rows_close(actual, expected, scale, tol, what):
    """max |actual - expected| <= tol * scale, scale: the size of the summed terms (Σ_j |k_ij| |v_j|)."""
    actual = np.asarray(actual, dtype=np.float64)
    assert np.all(np.isfinite(actual)), f"{what}: non-finite entries"
    err = float(np.max(np.abs(actual - expected)))
    assert err <= tol * max(scale, 1e-300), f"{what}: max error {err:.3e} > {tol:.0e} * scale {scale:.3e}"


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_products_match_brute_force(case, dtype, backend):
    tol = tolerance(dtype).value
    for n, m, d in SHAPES:
        a64, b64 = sample_xy(n, m, d, seed=n + m + d)
        for p in (1, 3, 20):  # 20 columns take the C++ GEMM path
            v64 = weights(m, p, torch.float64, seed=p)
            K = gram(case.terms(d), a64.numpy(), b64.numpy())
            expected = K @ v64.numpy()
            scale = float(np.max(np.abs(K) @ np.abs(v64.numpy())))
            out = fastmmd.kernel_matmul(a64.to(dtype), b64.to(dtype), v64.to(dtype), case.make(d), backend=backend)
            assert out.dtype == dtype and out.shape == (n, p)
            assert_rows_close(out, expected, scale, tol, f"{backend} {case.name} {dtype} {(n, m, d, p)}")


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("case_name", ["gaussian_mix", "rq_1dot", "laplacian", "energy", "polynomial"])
def test_diagonal_left_out_and_row_sums_of_squares(case_name, dtype, backend):
    case = CASE_BY_NAME[case_name]
    n, d = 53, 7
    x64, _ = sample_xy(n, 2, d, seed=3)
    v64 = weights(n, 2, torch.float64)
    K = gram(case.terms(d), x64.numpy(), x64.numpy())
    np.fill_diagonal(K, 0.0)
    out, sq = kernel_products(x64.to(dtype), x64.to(dtype), v64.to(dtype), case.make(d), get_backend(backend),
                              "highest", exclude_diag=True, want_sq=True)
    tol = tolerance(dtype).value
    assert_rows_close(out, K @ v64.numpy(), float(np.max(np.abs(K) @ np.abs(v64.numpy()))), tol, "K v")
    squares = (K * K).sum(1)
    assert_rows_close(sq, squares, float(squares.max()), tol, "row sums of K∘K")


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("case", SMOOTH, ids=[c.name for c in SMOOTH])
def test_first_derivatives_match_brute_force(case, dtype, backend):
    n, m, d, p = 23, 31, 4, 2
    a64, b64 = sample_xy(n, m, d, seed=7)
    v64, g64 = weights(m, p, torch.float64, seed=1), weights(n, p, torch.float64, seed=2)
    a, b, v = (t.to(dtype).clone().requires_grad_(True) for t in (a64, b64, v64))
    out = fastmmd.kernel_matmul(a, b, v, case.make(d), backend=backend)
    ga, gb, gv = torch.autograd.grad(out, (a, b, v), g64.to(dtype))
    W = g64.numpy() @ v64.numpy().T  # d loss / d K
    terms = case.terms(d)
    _, expected_a = weighted_sum_and_grad(terms, a64.numpy(), b64.numpy(), W)
    _, expected_b = weighted_sum_and_grad(terms, b64.numpy(), a64.numpy(), W.T)
    K = gram(terms, a64.numpy(), b64.numpy())
    tol = tolerance(dtype).grad
    _, abs_a = weighted_sum_and_grad(terms, a64.numpy(), b64.numpy(), np.abs(W))
    scale = float(np.max(np.abs(expected_a))) + float(np.max(np.abs(abs_a)))
    assert_rows_close(ga, expected_a, scale, tol, "d/da")
    assert_rows_close(gb, expected_b, scale, tol, "d/db")
    assert_rows_close(gv, K.T @ g64.numpy(), float(np.max(np.abs(K.T) @ np.abs(g64.numpy()))), tol, "d/dv")


@pytest.mark.parametrize("case_name", ["gaussian_mix", "rq_1dot", "imq", "polynomial_2"])
def test_second_derivatives_gradgradcheck(case_name):
    case = CASE_BY_NAME[case_name]
    a64, b64 = sample_xy(6, 5, 3, seed=11)
    a, b = a64.clone().requires_grad_(True), b64.clone().requires_grad_(True)
    v = weights(5, 2, torch.float64).requires_grad_(True)

    def f(a, b, v):
        return fastmmd.kernel_matmul(a, b, v, case.make(3), backend="cpu")

    assert torch.autograd.gradcheck(f, (a, b, v))
    assert torch.autograd.gradgradcheck(f, (a, b, v))


@pytest.mark.parametrize("case_name", ["laplacian", "energy"])
def test_distance_kernels_differentiate_in_v_and_explain_the_points(case_name):
    case = CASE_BY_NAME[case_name]
    a64, b64 = sample_xy(5, 4, 3, seed=2)
    v = weights(4, 1, torch.float64).requires_grad_(True)
    out = fastmmd.kernel_matmul(a64, b64, v, case.make(3), backend="cpu")
    (gv,) = torch.autograd.grad(out.sum(), v)
    K = gram(case.terms(3), a64.numpy(), b64.numpy())
    np.testing.assert_allclose(gv.numpy()[:, 0], K.sum(0), rtol=SAME_ARITHMETIC_RTOL)
    a = a64.clone().requires_grad_(True)
    out = fastmmd.kernel_matmul(a, b64, v.detach(), case.make(3), backend="cpu")
    with pytest.raises(ValueError, match=f"{case_name}.*smooth|smooth.*{case_name}|not"):
        out.sum().backward()


def test_vector_weights_and_numpy_in_numpy_out():
    a64, b64 = sample_xy(9, 8, 2, seed=4)
    v = np.linspace(-1.0, 1.0, 8)
    out = fastmmd.kernel_matmul(a64.numpy(), b64.numpy(), v, "gaussian", backend="cpu")
    assert isinstance(out, np.ndarray) and out.shape == (9,)
    K = gram([Term("gaussian", 1.0, {"sigma": 1.0})], a64.numpy(), b64.numpy())  # "gaussian": bandwidth 1
    np.testing.assert_allclose(out, K @ v, rtol=SAME_ARITHMETIC_RTOL, atol=SAME_ARITHMETIC_ATOL)


def test_bitwise_independent_of_thread_count():
    a, b = sample_xy(301, 257, 9, dtype=torch.float32, seed=5)
    v = weights(257, 12, torch.float32)
    terms = CASE_BY_NAME["gaussian_mix"].make(9).terms(9).ravel().tolist()
    one, _ = kernel_matmul_fused(a, b, v, terms, False, False, 1, "cpu", "highest")
    two, _ = kernel_matmul_fused(a, b, v, terms, False, False, 2, "cpu", "highest")
    assert torch.equal(one, two)


def test_custom_op_passes_opcheck():
    a, b = sample_xy(7, 6, 3, seed=6)
    v = weights(6, 2, torch.float64)
    terms = CASE_BY_NAME["rq_1dot"].make(3).terms(3).ravel().tolist()
    for args in [(a, b, v, terms, False, True, 0, "cpu", "highest"),
                 (a, a, weights(7, 2, torch.float64), terms, True, False, 0, "cpu", "highest")]:
        torch.library.opcheck(kernel_matmul_fused, args, test_utils=("test_schema", "test_faketensor",
                                                                     "test_autograd_registration"))


@pytest.mark.parametrize(
    "args, error, match",
    [
        (dict(v=torch.ones(5)), ValueError, "one row per point of b"),
        (dict(v=torch.ones(4, 0)), ValueError, "no columns"),
        (dict(v=torch.ones(4, 1, 1)), ValueError, "1-D"),
        (dict(v=torch.ones(4, dtype=torch.float32)), TypeError, "dtype"),
        (dict(b=torch.ones(4, 2, dtype=torch.float64)), ValueError, "same number of features"),
        (dict(a=torch.ones(0, 3, dtype=torch.float64)), ValueError, "a is empty"),
        (dict(v=[1.0, 2.0, 3.0, 4.0]), TypeError, "v must be a torch.Tensor or a numpy.ndarray"),
        (dict(precision="fp8"), ValueError, "precision"),
    ],
)
def test_bad_input_names_the_argument(args, error, match):
    call = dict(a=torch.ones(3, 3, dtype=torch.float64), b=torch.ones(4, 3, dtype=torch.float64),
                v=torch.ones(4, dtype=torch.float64), kernel="gaussian", backend="cpu")
    call.update(args)
    with pytest.raises(error, match=match):
        fastmmd.kernel_matmul(**call)
