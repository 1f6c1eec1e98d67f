"""kernel_matmul on the Triton backend (fastmmd/backends/_triton/matvec.py) against the float64 brute force:
every kernel of test_mmd2.CASES in float32 and float64, ragged row, column and feature tiles, one row,
1 to 20 columns of v (and, with a narrowed column block, several column blocks and launches), the diagonal
left out and the row sums of K∘K, centring only for translation-invariant kernels, the bf16 products, and
first and second derivatives through the op against the reference backend.

Without CUDA the kernels run under the Triton interpreter (TRITON_INTERPRET=1, set by conftest.py) on CPU
tensors and small shapes; the test marked `cuda` adds larger shapes, the low precisions and determinism.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

import fastmmd
from brute_force import gram, weighted_sum_and_grad
from cases import CASE_BY_NAME, CASES
from conftest import sample_xy
from fastmmd.backends import get_backend
from fastmmd.ops.kernel_matmul import kernel_products
from tolerances import FLOAT64_ATOL, FLOAT64_GRADIENT_RTOL, tolerance

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
DTYPES = [torch.float64, torch.float32]
# 37 x 29 leaves ragged row and column tiles; d = 130 crosses feature blocks (BK); n = 1 is a lone row.
SHAPES = [(37, 29, 3), (3, 2, 130), (1, 5, 4)]
COLUMNS = (1, 3, 20)

if get_backend("triton").unavailable_reason() is not None:
    pytest.skip(f"triton backend unavailable: {get_backend('triton').unavailable_reason()}", allow_module_level=True)

from fastmmd.backends._triton import configs, launch  # noqa: E402 (after the skip: it needs a triton the backend runs on)


def weights(m, p, seed=0):
    """(m, p) float64 standard normal weights."""
    return torch.from_numpy(np.random.default_rng(seed).standard_normal((m, p)))


def assert_rows_close(actual, expected, scale, tol, what):
    """max |actual - expected| <= tol * scale, scale: the size of the summed terms (e.g. max_i Σ_j |k_ij| |v_j|)."""
    actual = torch.as_tensor(actual).detach().double().cpu().numpy()
    assert actual.shape == np.shape(expected), f"{what}: shape {actual.shape} != {np.shape(expected)}"
    assert np.all(np.isfinite(actual)), f"{what}: non-finite entries"
    err = float(np.max(np.abs(actual - expected))) if actual.size else 0.0
    assert err <= tol * max(scale, 1e-300), f"{what}: max error {err:.3e} > {tol:.0e} * scale {scale:.3e}"


def expected_products(K, v):
    """(K @ v, max_i Σ_j |K_ij| |v_j|) in float64 for K (n, m), v (m, p) numpy."""
    return K @ v, float(np.max(np.abs(K) @ np.abs(v)))


def triton_products(a, b, v, kernel, exclude_diag=False, want_sq=False, precision="highest"):
    """(out, sq) of the Triton backend through the custom op, on DEVICE."""
    return kernel_products(a.to(DEVICE), b.to(DEVICE), v.to(DEVICE), kernel, get_backend("triton"), precision,
                           exclude_diag=exclude_diag, want_sq=want_sq)


@pytest.mark.parametrize("dtype", DTYPES, ids=["float64", "float32"])
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_products_match_brute_force(case, dtype):
    tol = tolerance(dtype).value
    for n, m, d in SHAPES:
        a64, b64 = sample_xy(n, m, d, seed=n + m + d)
        K = gram(case.terms(d), a64.numpy(), b64.numpy())
        for p in COLUMNS:
            v64 = weights(m, p, seed=p)
            out = fastmmd.kernel_matmul(a64.to(dtype).to(DEVICE), b64.to(dtype).to(DEVICE),
                                        v64.to(dtype).to(DEVICE), case.make(d), backend="triton")
            assert out.dtype == dtype and out.device.type == DEVICE
            expected, scale = expected_products(K, v64.numpy())
            assert_rows_close(out, expected, scale, tol, f"triton {case.name} {dtype} {(n, m, d, p)}")


@pytest.mark.parametrize("dtype", DTYPES, ids=["float64", "float32"])
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_diagonal_left_out_and_row_sums_of_squares(case, dtype):
    tol = tolerance(dtype).value
    # (exclude_diag, want_sq); neither is test_products_match_brute_force.
    for n, d, flags in [(37, 3, [(False, True), (True, False), (True, True)]), (2, 130, [(True, True)])]:
        x64, _ = sample_xy(n, 1, d, seed=n + d)
        v64 = weights(n, 3, seed=d)
        full = gram(case.terms(d), x64.numpy(), x64.numpy())
        for exclude_diag, want_sq in flags:
            K = full.copy()
            if exclude_diag:
                np.fill_diagonal(K, 0.0)
            out, sq = triton_products(x64.to(dtype), x64.to(dtype), v64.to(dtype), case.make(d),
                                      exclude_diag, want_sq)
            what = f"{case.name} {dtype} n={n} d={d} exclude_diag={exclude_diag} want_sq={want_sq}"
            assert_rows_close(out, *expected_products(K, v64.numpy()), tol, what + " K v")
            if want_sq:
                squares = (K * K).sum(1)
                assert sq.dtype == dtype
                assert_rows_close(sq, squares, float(squares.max()), tol, what + " row sums of K∘K")
            else:
                assert sq.shape == (0,)


def test_wide_v_spans_column_blocks_and_launches(monkeypatch):
    """v wider than a column block: 40 columns in blocks of 16 (the last one ragged), two blocks per launch,
    so a second launch starts at column 32 and must neither skip nor rewrite the row sums of K∘K."""
    monkeypatch.setattr(configs, "matvec_column_block", lambda p, dtype: 16)
    monkeypatch.setattr(launch, "MAX_COLUMN_BLOCKS", 2)
    case = CASE_BY_NAME["rq_1dot"]
    n, d, p = 21, 5, 40
    x64, _ = sample_xy(n, 1, d, seed=8)
    v64 = weights(n, p, seed=9)
    K = gram(case.terms(d), x64.numpy(), x64.numpy())
    np.fill_diagonal(K, 0.0)
    out, sq = triton_products(x64, x64, v64, case.make(d), exclude_diag=True, want_sq=True)
    tol = tolerance(torch.float64).value
    assert_rows_close(out, *expected_products(K, v64.numpy()), tol, "K v")
    squares = (K * K).sum(1)
    assert_rows_close(sq, squares, float(squares.max()), tol, "row sums of K∘K")


@pytest.mark.parametrize("case_name", ["gaussian_mix", "laplacian", "rq_1dot", "energy", "polynomial"])
def test_centring_only_for_translation_invariant_kernels(case_name):
    """Points 100 away from the origin in float32: a translation-invariant kernel needs its inputs centred
    (|a|² + |b|² - 2 aᵀb cancels 4 digits otherwise), the others must not be (the Linear, Polynomial and
    Energy values change under a shift)."""
    case = CASE_BY_NAME[case_name]
    n, m, d = 19, 17, 3
    a, b = (t.float() for t in sample_xy(n, m, d, seed=12, shift=100.0))
    a = a + 100.0
    v = weights(m, 2, seed=13).float()
    out, _ = triton_products(a, b, v, case.make(d))
    K = gram(case.terms(d), a.double().numpy(), b.double().numpy())  # the truth of the rounded inputs
    v64 = v.double()
    assert_rows_close(out, *expected_products(K, v64.numpy()), tolerance(torch.float32).value, case_name)


def test_bf16_products_within_bfloat16_rounding():
    """precision="bf16" reaches the kernel (the results differ from "highest") and stays within a few units of
    bfloat16 rounding (2⁻⁸ relative) of the truth."""
    case = CASE_BY_NAME["gaussian_mix"]
    n, m, d, p = 37, 29, 16, 3
    a64, b64 = sample_xy(n, m, d, seed=14)
    v64 = weights(m, p, seed=15)
    expected, scale = expected_products(gram(case.terms(d), a64.numpy(), b64.numpy()), v64.numpy())
    low, _ = triton_products(a64.float(), b64.float(), v64.float(), case.make(d), precision="bf16")
    high, _ = triton_products(a64.float(), b64.float(), v64.float(), case.make(d))
    assert_rows_close(low, expected, scale, 4 * 2.0**-8, "bf16")
    assert not torch.equal(low, high)


def _first_derivatives(backend, case, a64, b64, v64, g64):
    a, b, v = (t.clone().requires_grad_(True) for t in (a64, b64, v64))
    out = fastmmd.kernel_matmul(a, b, v, case.make(a64.shape[1]), backend=backend)
    return torch.autograd.grad(out, (a, b, v), g64)


@pytest.mark.parametrize("case_name", ["rq_1dot", "imq", "polynomial_2"])
def test_first_derivatives_match_reference(case_name):
    """The backward is the same op with derivative kernels: negative weights, RQ and IMQ exponents raised
    by one, polynomials of lower degree and constants (0·aᵀb + 1)."""
    case = CASE_BY_NAME[case_name]
    n, m, d, p = 23, 31, 4, 2
    a64, b64 = sample_xy(n, m, d, seed=7)
    v64, g64 = weights(m, p, seed=1), weights(n, p, seed=2)
    got = _first_derivatives("triton", case, *(t.to(DEVICE) for t in (a64, b64, v64, g64)))
    expected = _first_derivatives("reference", case, a64, b64, v64, g64)
    # Scales: the gradient of Σ |W_ij| k(a_i, b_j) (W = g vᵀ), and Σ_i |K_ij| |g_i| for d/dv.
    W = np.abs(g64.numpy() @ v64.numpy().T)
    _, abs_a = weighted_sum_and_grad(case.terms(d), a64.numpy(), b64.numpy(), W)
    _, abs_b = weighted_sum_and_grad(case.terms(d), b64.numpy(), a64.numpy(), W.T)
    K = gram(case.terms(d), a64.numpy(), b64.numpy())
    scales = [float(np.max(np.abs(expected[0].numpy()))) + float(np.max(np.abs(abs_a))),
              float(np.max(np.abs(expected[1].numpy()))) + float(np.max(np.abs(abs_b))),
              float(np.max(np.abs(K.T) @ np.abs(g64.numpy())))]
    tol = tolerance(torch.float64).grad
    for name, got_i, exp_i, scale in zip(("d/da", "d/db", "d/dv"), got, expected, scales):
        assert_rows_close(got_i, exp_i.numpy(), scale, tol, f"{case_name} {name}")


def test_second_derivatives_match_reference():
    """d/db of <w, d/da Σ g ⊙ K v>: the gradient penalty's double backward, through the op twice."""
    case = CASE_BY_NAME["rq_1dot"]
    a64, b64 = sample_xy(9, 11, 3, seed=21)
    v64, g64, w64 = weights(11, 2, seed=22), weights(9, 2, seed=23), weights(9, 3, seed=24)

    def second(backend, device):
        a, b, v = (t.to(device).clone().requires_grad_(True) for t in (a64, b64, v64))
        out = fastmmd.kernel_matmul(a, b, v, case.make(3), backend=backend)
        (ga,) = torch.autograd.grad(out, a, g64.to(device), create_graph=True)
        return torch.autograd.grad((ga * w64.to(device)).sum(), (b, v))

    got, expected = second("triton", DEVICE), second("reference", "cpu")
    for name, got_i, exp_i in zip(("d/db", "d/dv"), got, expected):
        exp_i = exp_i.numpy()
        assert_rows_close(got_i, exp_i, float(np.max(np.abs(exp_i))), 1e-9, name)


# ------------------------------------------------------------------------------------------------------------
# GPU only


@pytest.mark.cuda
@pytest.mark.parametrize("case_name", ["gaussian_mix", "rq_1dot", "energy", "polynomial"])
@pytest.mark.parametrize("dtype", DTYPES, ids=["float64", "float32"])
def test_cuda_larger_shapes_deterministic(case_name, dtype):
    """Several row and column tiles, 200 columns (two column blocks), exclude_diag and the row sums of K∘K,
    against float64 on the GPU; two runs give the same bits."""
    case = CASE_BY_NAME[case_name]
    tol = tolerance(dtype).value
    for n, m, d, p in [(1025, 2049, 3, 1), (300, 257, 130, 20), (777, 777, 7, 200)]:
        a64, b64 = (t.cuda() for t in sample_xy(n, m, d, seed=n + d))
        v64 = weights(m, p, seed=p).cuda()
        exclude_diag = n == m
        K = case.make(d).gram(a64, b64)
        if exclude_diag:
            K.fill_diagonal_(0.0)
        expected, scale = (K @ v64).cpu().numpy(), float((K.abs() @ v64.abs()).max())
        squares = (K * K).sum(1).cpu().numpy()
        runs = [triton_products(a64.to(dtype), b64.to(dtype), v64.to(dtype), case.make(d), exclude_diag, True)
                for _ in range(2)]
        what = f"{case_name} {dtype} {(n, m, d, p)}"
        assert_rows_close(runs[0][0], expected, scale, tol, what)
        assert_rows_close(runs[0][1], squares, float(squares.max()), tol, what + " row sums of K∘K")
        assert torch.equal(runs[0][0], runs[1][0]) and torch.equal(runs[0][1], runs[1][1]), what
        if dtype == torch.float32:
            for precision in ("tf32", "bf16"):
                low, _ = triton_products(a64.float(), b64.float(), v64.float(), case.make(d), exclude_diag,
                                         precision=precision)
                assert_rows_close(low, expected, scale, 4 * 2.0**-8, what + f" {precision}")


def test_statistics_run_on_the_triton_products():
    """witness, mmd2_and_variance and relative_mmd_test on the Triton backend (through kernel_matmul: it has
    no one-pass statistics) equal the reference backend."""
    x, y = sample_xy(23, 19, 4, seed=13)
    z, t = sample_xy(17, 9, 4, seed=14)
    x, y, z, t = (s.to(DEVICE) for s in (x, y, z, t))
    kernel = CASE_BY_NAME["rq_1dot"].make(4)
    for name, run in {
        "witness": lambda backend: fastmmd.witness(t, x, y, kernel, backend=backend),
        "mmd2_and_variance": lambda backend: torch.stack(fastmmd.mmd2_and_variance(x, y, kernel, backend=backend)),
        "relative_mmd_test": lambda backend: torch.tensor(fastmmd.relative_mmd_test(x, y, z, kernel,
                                                                                    backend=backend)[:4]),
    }.items():
        fused, reference = run("triton").cpu(), run("reference").cpu()
        assert torch.allclose(fused, reference, rtol=FLOAT64_GRADIENT_RTOL, atol=FLOAT64_ATOL), name
