"""The Triton backend against the float64 brute force: every kernel × estimator × dtype, both gradient paths
(fused owner kernels for small d, coefficient chunks + GEMMs for large d), value-only and with gradients.

Without CUDA the kernels run under the Triton interpreter (TRITON_INTERPRET=1, set by conftest.py before
triton is imported) on CPU tensors and small shapes; with CUDA the same tests run on the GPU, and the
tests marked `cuda` add the large shapes, n·m > 2³¹, the low precisions, determinism and streams.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import fastmmd
from brute_force import Term, mmd2_terms
from cases import CASE_BY_NAME, CASES, assert_grad_close, assert_value_close
from conftest import sample_xy
from fastmmd.backends import get_backend
from fastmmd.kernels import SHIFT_INVARIANT_MMD_FAMILIES
from tolerances import (
    COMPILED_FLOAT32_ATOL,
    COMPILED_FLOAT32_RTOL,
    FLOAT32_RTOL,
    GRADCHECK_ATOL,
    LOW_PRECISION_FACTOR,
    tolerance,
)

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
QUADRATIC = ["unbiased", "biased", "u-statistic"]
DTYPES = [torch.float64, torch.float32]

if get_backend("triton").unavailable_reason() is not None:
    pytest.skip(f"triton backend unavailable: {get_backend('triton').unavailable_reason()}", allow_module_level=True)

from fastmmd.backends._triton import launch  # noqa: E402 (after the skip: it needs a triton the backend runs on)


@pytest.fixture(params=["fused", "chunked"])
def gradient_path(request, monkeypatch):
    """Forces the large-d path (chunks of 16 x 16 pairs) even for small d."""
    if request.param == "chunked":
        monkeypatch.setattr(launch, "OWNER_MAX_D", 0)
        monkeypatch.setattr(launch, "OWNER_MAX_D_EXPLICIT", 0)
        monkeypatch.setattr(launch, "CHUNK", 16)
    return request.param


def run_triton(x, y, kernel, estimator, precision="highest"):
    """(value, grad_x, grad_y, value without autograd) on DEVICE, as float64 numpy."""
    x = x.to(DEVICE).requires_grad_(True)
    y = y.to(DEVICE).requires_grad_(True)
    value = fastmmd.mmd2(x, y, kernel=kernel, estimator=estimator, backend="triton", precision=precision)
    assert value.dim() == 0 and value.dtype == x.dtype and value.device == x.device
    gx, gy = torch.autograd.grad(value, (x, y))
    with torch.no_grad():
        value_only = fastmmd.mmd2(x, y, kernel=kernel, estimator=estimator, backend="triton", precision=precision)
    return float(value.detach()), gx.double().cpu().numpy(), gy.double().cpu().numpy(), float(value_only)


def check_case(case, estimator, shape, dtype):
    n, m, d = shape
    x64, y64 = sample_xy(n, m, d, seed=n * 7919 + m * 31 + d)
    x, y = x64.to(dtype), y64.to(dtype)
    bf = mmd2_terms(case.terms(d), x.double().numpy(), y.double().numpy(), estimator)
    value, gx, gy, value_only = run_triton(x, y, case.make(d), estimator)
    tol = tolerance(dtype)
    what = f"triton {dtype} {case.name} {estimator} {shape}"
    assert_value_close(value, bf.mmd2, bf.value_scale, tol.value, what + " value (with gradients)")
    assert_value_close(value_only, bf.mmd2, bf.value_scale, tol.value, what + " value (forward only)")
    assert_grad_close(gx, bf.grad_x, bf.grad_scale, tol.grad, what + " d/dx")
    assert_grad_close(gy, bf.grad_y, bf.grad_scale, tol.grad, what + " d/dy")


def _shapes(estimator):
    # d = 130 crosses the tile's feature blocks (and, for the |a - b| kernels, the explicit-difference limit
    # of the fused gradients); 37 x 29 crosses row and column tiles with ragged edges.
    return [(24, 24, 5), (2, 2, 130)] if estimator == "u-statistic" else [(37, 29, 3), (3, 2, 130)]


@pytest.mark.parametrize("dtype", DTYPES, ids=["float64", "float32"])
@pytest.mark.parametrize("estimator", QUADRATIC)
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_triton_matches_brute_force(case, estimator, dtype, gradient_path):
    if gradient_path == "chunked" and dtype == torch.float64:
        pytest.skip("the chunked path is exercised in float32 (its float64 arithmetic is the same code)")
    for shape in _shapes(estimator):
        check_case(case, estimator, shape, dtype)


@pytest.mark.parametrize("estimator", QUADRATIC)
def test_streaming_forward_over_several_column_segments(estimator, monkeypatch):
    """The small-d forward splits B's rows into segments (one program per row block and segment): with
    segments of 16 rows every program boundary falls inside the sample."""
    monkeypatch.setattr(launch, "SEGMENT", 16)
    case = CASE_BY_NAME["rq_1dot"]
    n, m, d = (40, 40, 5) if estimator == "u-statistic" else (45, 37, 5)
    x64, y64 = sample_xy(n, m, d, seed=11)
    bf = mmd2_terms(case.terms(d), x64.numpy(), y64.numpy(), estimator)
    with torch.no_grad():
        value = float(fastmmd.mmd2(x64.to(DEVICE), y64.to(DEVICE), case.make(d), estimator, backend="triton"))
    assert_value_close(value, bf.mmd2, bf.value_scale, tolerance(torch.float64).value, "segmented forward")


@pytest.mark.parametrize("precision", ["highest", "tf32"])
@pytest.mark.parametrize("path", ["forward", "chunked"])
def test_tensor_descriptor_reads_match_pointer_reads(path, precision, monkeypatch):
    """With FASTMMD_TMA=1, float32 rows of 16-byte multiples go through tensor descriptors (the TMA copy
    engine) in the tiled forward and the gradient chunks; FASTMMD_TMA=0 takes the pointer loads. Both match the
    brute force, with ragged row tiles and a feature count (260) that is no multiple of the feature block."""
    if precision == "tf32" and DEVICE != "cuda":
        pytest.skip("TF32 needs a GPU (the interpreter multiplies in IEEE float32)")
    if path == "chunked":
        monkeypatch.setattr(launch, "CHUNK", 16)
    case = CASE_BY_NAME["polynomial"]  # not shift invariant: no centring, so "highest" reads through descriptors too
    n, m, d = 37, 29, 260
    x64, y64 = sample_xy(n, m, d, seed=5)
    x, y = x64.float().to(DEVICE), y64.float().to(DEVICE)
    prep = launch.prepare(x, y, case.make(d).terms(d).ravel().tolist(), "ieee", SHIFT_INVARIANT_MMD_FAMILIES)
    monkeypatch.setenv("FASTMMD_TMA", "1")
    assert launch.tma_ready(prep, x, y)
    bf = mmd2_terms(case.terms(d), x64.numpy(), y64.numpy(), "unbiased")
    tol = tolerance(torch.float32)
    results = {}
    for setting in ("1", "0"):
        monkeypatch.setenv("FASTMMD_TMA", setting)
        xg, yg = x.clone().requires_grad_(path == "chunked"), y.clone().requires_grad_(path == "chunked")
        value = fastmmd.mmd2(xg, yg, case.make(d), "unbiased", backend="triton", precision=precision)
        results[setting] = float(value.detach())
        if precision == "highest":
            assert_value_close(results[setting], bf.mmd2, bf.value_scale, tol.value, f"TMA={setting} value")
        if path == "chunked":
            gx, gy = torch.autograd.grad(value, (xg, yg))
            if precision == "highest":
                assert_grad_close(gx.double().cpu().numpy(), bf.grad_x, bf.grad_scale, tol.grad, "d/dx")
                assert_grad_close(gy.double().cpu().numpy(), bf.grad_y, bf.grad_scale, tol.grad, "d/dy")
    assert_value_close(results["1"], results["0"], bf.value_scale, 2 * tol.value, "TMA vs pointers")


@pytest.mark.parametrize("dtype", DTYPES, ids=["float64", "float32"])
@pytest.mark.parametrize("block", ["symmetric", "cross", "square-kept-diagonal", "square-no-diagonal"])
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_pair_stats_are_the_row_column_and_square_sums(case, block, dtype, monkeypatch):
    """One statistics pass (stats_tiles_kernel) against the float64 Gram matrix of the brute force: row sums,
    column sums and the sum of squares of the kept pairs, with the rows in several bands (a tiny slot
    budget) and odd shapes."""
    from brute_force import gram

    # bands of one alignment unit: a multiple of every BM (16 under the interpreter, 128 on a GPU)
    align = 16 if DEVICE == "cpu" else 256
    monkeypatch.setattr(launch, "STATS_PART_BYTES", 1)
    monkeypatch.setattr(launch, "_BAND_ALIGN", align)
    n = 2 * align + 9  # three bands, the last one ragged
    n, m, d = {"cross": (n, 37, 5)}.get(block, (n, n, 5))
    x64, y64 = sample_xy(n, m, d, seed=17)
    symmetric, exclude = block == "symmetric", block in ("symmetric", "square-no-diagonal")
    b64 = x64 if symmetric else y64
    k = gram(case.terms(d), x64.numpy(), b64.numpy())
    if exclude:
        np.fill_diagonal(k, 0.0)
    terms = case.make(d).terms(d).ravel().tolist()
    a = x64.to(dtype).to(DEVICE)
    b = a if symmetric else b64.to(dtype).to(DEVICE)
    total, rows, cols, squares = get_backend("triton").pair_stats(a, b, terms, symmetric, exclude, "highest", 1)
    tol = tolerance(dtype).value
    scale = float(np.abs(k).sum(1).max())
    assert float((rows.cpu() - torch.from_numpy(k.sum(1))).abs().max()) <= tol * scale
    assert abs(total - float(k.sum())) <= tol * float(np.abs(k).sum())
    assert abs(squares - float((k * k).sum())) <= tol * float((k * k).sum())
    if symmetric:
        assert cols is None
    else:
        assert float((cols.cpu() - torch.from_numpy(k.sum(0))).abs().max()) <= tol * float(np.abs(k).sum(0).max())


@pytest.mark.parametrize("kernel_name", ["energy", "laplacian"])
def test_distance_kernels_keep_the_direction_of_near_points(kernel_name):
    """Points 1e-4 apart (relative) in float32: the fused kernels use explicit differences, so the pair's
    gradient is a unit vector, not rounding noise."""
    case = CASE_BY_NAME[kernel_name]
    x = torch.tensor([[1.0], [1.0001], [-0.5]])
    y = torch.tensor([[0.2], [2.0]])
    bf = mmd2_terms(case.terms(1), x.double().numpy(), y.double().numpy(), "unbiased")
    value, gx, gy, _ = run_triton(x, y, case.make(1), "unbiased")
    tol = tolerance(torch.float32)
    assert_grad_close(gx, bf.grad_x, bf.grad_scale, tol.grad, "d/dx")
    assert_grad_close(gy, bf.grad_y, bf.grad_scale, tol.grad, "d/dy")
    assert_value_close(value, bf.mmd2, bf.value_scale, tol.value, "value")


def test_auto_picks_triton_only_for_cuda_tensors():
    from fastmmd.backends import select_backend

    x, y = sample_xy(5, 4, 3, dtype=torch.float32)
    kernel = fastmmd.get_kernel("gaussian")
    if get_backend("cpu").unavailable_reason() is None:
        assert select_backend("auto", x, y, kernel, "unbiased", "highest").name == "cpu"
    else:
        with pytest.raises(RuntimeError, match="CPU tensors go to the cpu backend"):
            select_backend("auto", x, y, kernel, "unbiased", "highest")
    if DEVICE == "cuda":
        assert select_backend("auto", x.cuda(), y.cuda(), kernel, "unbiased", "highest").name == "triton"


def test_float64_refuses_low_precision():
    x, y = sample_xy(5, 4, 3)
    with pytest.raises(RuntimeError, match="applies to float32"):
        fastmmd.mmd2(x.to(DEVICE), y.to(DEVICE), backend="triton", precision="tf32")


# ------------------------------------------------------------------------------------------------------------
# GPU only


@pytest.mark.cuda
@pytest.mark.parametrize("estimator", QUADRATIC)
@pytest.mark.parametrize("case_name", ["gaussian_mix", "rq_1dot", "energy", "polynomial"])
@pytest.mark.parametrize("dtype", DTYPES, ids=["float64", "float32"])
def test_cuda_larger_odd_shapes(case_name, estimator, dtype, gradient_path):
    shapes = [(1025, 1025, 3), (97, 97, 130)] if estimator == "u-statistic" else [(1025, 97, 3), (97, 1025, 130)]
    for shape in shapes:
        check_case(CASE_BY_NAME[case_name], estimator, shape, dtype)


def _blockwise_reference(x, y, kernel, rows=2048):
    """(unbiased MMD², d MMD²/dx, its scale) in float64, row block by row block (never n × m in memory): the
    gradient by autograd of each block's sums with the other points held fixed, d/dx_i = 2/(n(n-1)) Σ_l
    ∇k(x_i, x_l) - 2/(nm) Σ_j ∇k(x_i, y_j) (the diagonal's gradient is 0 for the radial kernels used here);
    the scale is ‖∇T_xx‖_∞ + 2‖∇T_xy‖_∞ of tests/tolerances.py."""
    n, m = x.shape[0], y.shape[0]
    totals = {"xx": 0.0, "yy": 0.0, "xy": 0.0}
    grad_xx, grad_xy = torch.zeros_like(x), torch.zeros_like(x)
    for start in range(0, n, rows):
        block = x[start:start + rows].detach().requires_grad_(True)
        idx = torch.arange(start, start + block.shape[0], device=x.device)
        zeros = torch.zeros(idx.shape[0], dtype=x.dtype, device=x.device)
        sxx = kernel.gram(block, x).index_put((idx - start, idx), zeros).sum()
        sxy = kernel.gram(block, y).sum()
        gxx, gxy = (torch.autograd.grad(total, block)[0] for total in (sxx, sxy))
        totals["xx"] += float(sxx.detach())
        totals["xy"] += float(sxy.detach())
        grad_xx[start:start + rows] = 2.0 * gxx / (n * (n - 1))
        grad_xy[start:start + rows] = gxy / (n * m)
    for start in range(0, m, rows):
        gram = kernel.gram(y[start:start + rows], y)
        idx = torch.arange(start, min(start + rows, m), device=y.device)
        gram[idx - start, idx] = 0
        totals["yy"] += float(gram.sum())
    value = totals["xx"] / (n * (n - 1)) + totals["yy"] / (m * (m - 1)) - 2 * totals["xy"] / (n * m)
    scale = float(grad_xx.abs().max()) + 2 * float(grad_xy.abs().max())
    return value, grad_xx - 2 * grad_xy, scale


@pytest.mark.cuda
def test_cuda_more_than_2_31_pairs():
    """n·m > 2³¹: 64-bit offsets in every kernel; the value and the gradient against the blockwise float64
    reference (the gradient through both paths: the owner kernels for small d, the chunks for large d)."""
    n = m = 46400
    kernel = fastmmd.Gaussian(bandwidth=2.0)
    for d in (4, 300):
        x64, y64 = sample_xy(n, m, d, seed=5)
        x, y = x64.float().cuda(), y64.float().cuda()
        truth, truth_grad, grad_scale = _blockwise_reference(x.double(), y.double(), kernel)
        xg = x.clone().requires_grad_(True)
        value = fastmmd.mmd2(xg, y, kernel, backend="triton")
        value.backward()
        assert abs(float(value) - truth) <= FLOAT32_RTOL * 4  # the three terms are each at most 1
        error = float((xg.grad.double() - truth_grad).abs().max())
        assert error <= FLOAT32_RTOL * grad_scale, (d, error, grad_scale)


@pytest.mark.parametrize("precision", ["tf32", "bf16"])
def test_low_precision_is_the_kernel_of_operands_rounded_to_nearest(precision):
    """tf32 and bf16 read float32 operands rounded once to the nearest value of their mantissa (never
    truncated): the value is the float64 MMD² of the rounded points up to float32 error, and the gradient
    that of the rounded points up to the rounding of the coefficients it multiplies. Points offset from the
    origin (no centring in these precisions) and few pairs make the rounding visible beyond those errors."""
    from fastmmd.common.rounding import operand_bits, round_mantissa

    n, m, d = 5, 4, 48  # few pairs: the rounding of each is not averaged away
    x64, y64 = sample_xy(n, m, d, seed=13)
    x, y = (x64 + 10.0).float(), (y64 + 10.1).float()
    kernel = fastmmd.Gaussian(bandwidth=math.sqrt(d))
    bits = operand_bits(precision)
    rx, ry = round_mantissa(x, bits).double(), round_mantissa(y, bits).double()
    rx.requires_grad_(True)
    exact = fastmmd.mmd2(rx, ry, kernel, backend="reference")
    (exact_grad,) = torch.autograd.grad(exact, rx)
    unrounded = float(fastmmd.mmd2(x.double(), y.double(), kernel, backend="reference"))
    xg = x.to(DEVICE).requires_grad_(True)
    value = fastmmd.mmd2(xg, y.to(DEVICE), kernel, backend="triton", precision=precision)
    value.backward()
    scale = 1.0  # the three terms are each at most 1
    error = abs(float(value.detach()) - float(exact))
    assert error <= 8 * FLOAT32_RTOL * scale
    assert abs(unrounded - float(exact)) > 20 * error  # the test tells the rounded operands from the others
    grad_scale = float(exact_grad.abs().max())
    error = float((xg.grad.double().cpu() - exact_grad).abs().max())
    assert error <= 4 * 2.0 ** -bits * grad_scale, (error, grad_scale)


def test_bf16_passes_without_gradients_read_bfloat16_copies(monkeypatch):
    """In bf16 the value and statistics passes read bfloat16 copies of float32 rows (half the bytes; the same
    numbers as the rounded float32 operands), the kernels of |a - b| keep float32, and a gradient pass runs
    neither (its own copies are tested below)."""
    from fastmmd.common.rounding import round_mantissa

    seen = []
    for name in ("block_value", "block_stats"):
        original = getattr(launch, name)

        def spy(a, *args, original=original, **kwargs):
            seen.append(a.dtype)
            return original(a, *args, **kwargs)

        monkeypatch.setattr(launch, name, spy)
    x64, y64 = sample_xy(37, 29, 24, seed=19)
    x, y = (x64 + 1.0).float().to(DEVICE), (y64 + 1.1).float().to(DEVICE)
    gaussian = fastmmd.Gaussian(bandwidth=math.sqrt(24))
    with torch.no_grad():
        value = fastmmd.mmd2(x, y, gaussian, backend="triton", precision="bf16")
    assert value.dtype == torch.float32 and set(seen) == {torch.bfloat16}
    rounded = fastmmd.mmd2(round_mantissa(x, 7).double().cpu(), round_mantissa(y, 7).double().cpu(), gaussian,
                           backend="reference")
    assert abs(float(value) - float(rounded)) <= 8 * FLOAT32_RTOL
    seen.clear()
    get_backend("triton").pair_stats(x, x, gaussian.terms(24).ravel().tolist(), True, True, "bf16", 1)
    assert seen == [torch.bfloat16]
    seen.clear()
    with torch.no_grad():
        fastmmd.mmd2(x, y, fastmmd.Laplacian(bandwidth=5.0), backend="triton", precision="bf16")
    assert set(seen) == {torch.float32}
    seen.clear()
    xg = x.clone().requires_grad_(True)
    fastmmd.mmd2(xg, y, gaussian, backend="triton", precision="bf16").backward()
    assert torch.bfloat16 not in seen and xg.grad.dtype == torch.float32


@pytest.mark.parametrize("case_name, precision", [("polynomial", "highest"), ("gaussian", "bf16")])
@pytest.mark.parametrize("estimator", QUADRATIC)
def test_streaming_forward_through_tensor_descriptors(case_name, precision, estimator, monkeypatch):
    """With FASTMMD_TMA=1 the small-d forward reads A and B through tensor descriptors of [BM, BD] and
    [BN, BD] blocks (BD = 32 > d = 24: the copy engine's zero fill stands in for the feature mask): float32
    rows for the polynomial (no centring), bfloat16 copies for the folded Gaussian in bf16. The same value
    as the pointer reads, and the brute force's."""
    from fastmmd.common.rounding import round_mantissa

    case = CASE_BY_NAME[case_name]
    n, m, d = (45, 45, 24) if estimator == "u-statistic" else (45, 37, 24)
    x64, y64 = sample_xy(n, m, d, seed=31)
    x, y = x64.float().to(DEVICE), y64.float().to(DEVICE)
    seen = []
    original = launch.row_operands

    def spy(a, b, tma):
        seen.append(tma)
        return original(a, b, tma)

    monkeypatch.setattr(launch, "row_operands", spy)
    values = {}
    for setting in ("1", "0"):
        monkeypatch.setenv("FASTMMD_TMA", setting)
        with torch.no_grad():
            values[setting] = float(fastmmd.mmd2(x, y, case.make(d), estimator, backend="triton",
                                                 precision=precision))
    assert seen == [True] * 3 + [False] * 3
    rounded = [t.double().cpu() if precision == "highest" else round_mantissa(t, 7).double().cpu() for t in (x, y)]
    bf = mmd2_terms(case.terms(d), rounded[0].numpy(), rounded[1].numpy(), estimator)
    tol = tolerance(torch.float32).value
    assert_value_close(values["1"], bf.mmd2, bf.value_scale, 4 * tol, "TMA")
    assert_value_close(values["1"], values["0"], bf.value_scale, 2 * tol, "TMA vs pointers")


@pytest.mark.parametrize("estimator", QUADRATIC)
@pytest.mark.parametrize("weight", [1.0, 0.37])
def test_lone_gaussian_forward_folds_its_constants_into_the_norms(estimator, weight, monkeypatch):
    """The small-d forward of one Gaussian term in float32 folds -p log2(e) into the norms and 2 p log2(e)
    into the inner product (FASTMMD_FOLD=0 turns it off): the brute force's value, that of the general
    epilogue up to float32 rounding, and NaN for a NaN row."""
    n, m, d = (45, 45, 7) if estimator == "u-statistic" else (45, 37, 7)
    x64, y64 = sample_xy(n, m, d, seed=29)
    x, y = x64.float().to(DEVICE), y64.float().to(DEVICE)
    gaussian = fastmmd.Gaussian(bandwidth=1.7)
    kernel = gaussian if weight == 1.0 else weight * gaussian
    prep = launch.prepare(x, y, kernel.terms(d).ravel().tolist(), "ieee", SHIFT_INVARIANT_MMD_FAMILIES)
    assert launch.folds_gaussian(prep)
    bf = mmd2_terms([Term("gaussian", weight, {"sigma": 1.7})], x64.numpy(), y64.numpy(), estimator)
    values = {}
    for setting in ("1", "0"):
        monkeypatch.setenv("FASTMMD_FOLD", setting)
        assert launch.folds_gaussian(prep) == (setting == "1")
        with torch.no_grad():
            values[setting] = float(fastmmd.mmd2(x, y, kernel, estimator, backend="triton"))
        assert_value_close(values[setting], bf.mmd2, bf.value_scale, tolerance(torch.float32).value, setting)
    assert_value_close(values["1"], values["0"], bf.value_scale, 2 * tolerance(torch.float32).value, "fold")
    monkeypatch.delenv("FASTMMD_FOLD")
    x[3, 2] = float("nan")
    with torch.no_grad():
        assert math.isnan(float(fastmmd.mmd2(x, y, kernel, estimator, backend="triton")))
    # Two terms, or float64, take the general epilogue.
    mixture = gaussian + fastmmd.Gaussian(bandwidth=3.0)
    assert not launch.folds_gaussian(launch.prepare(x, y, mixture.terms(d).ravel().tolist(), "ieee",
                                                    SHIFT_INVARIANT_MMD_FAMILIES))
    assert not launch.folds_gaussian(launch.prepare(x64, y64, gaussian.terms(d).ravel().tolist(), "ieee",
                                                    SHIFT_INVARIANT_MMD_FAMILIES))


@pytest.mark.parametrize("kernel_name", ["gaussian", "laplacian"])
def test_bf16_gradient_chunks_read_bfloat16_copies_and_write_bfloat16_coefficients(kernel_name, monkeypatch):
    """The large-d gradient in bf16: the rows are converted to bfloat16 once per block, the coefficient kernel
    reads those copies (float32 rows for the |a - b| kernels) and writes bfloat16 coefficients, which the
    GEMMs take as they are. Value and gradient are those of the rounded points, up to the rounding of the
    coefficients, over several chunks of 16 rows."""
    from fastmmd.common.rounding import round_mantissa

    monkeypatch.setattr(launch, "OWNER_MAX_D", 0)
    monkeypatch.setattr(launch, "OWNER_MAX_D_EXPLICIT", 0)
    monkeypatch.setattr(launch, "CHUNK", 16)
    seen = []
    original = launch.ChunkRunner.run

    def spy(self, a, b, *args, **kwargs):
        out = original(self, a, b, *args, **kwargs)
        seen.append((a.dtype, b.dtype, out[0].dtype))
        return out

    monkeypatch.setattr(launch.ChunkRunner, "run", spy)
    n, m, d = 37, 29, 24
    x64, y64 = sample_xy(n, m, d, seed=23)
    x, y = (x64 + 1.0).float(), (y64 + 1.1).float()
    kernel = CASE_BY_NAME[kernel_name].make(d)
    rx, ry = round_mantissa(x, 7).double(), round_mantissa(y, 7).double()
    rx.requires_grad_(True)
    exact = fastmmd.mmd2(rx, ry, kernel, backend="reference")
    (exact_grad,) = torch.autograd.grad(exact, rx)
    xg = x.to(DEVICE).requires_grad_(True)
    value = fastmmd.mmd2(xg, y.to(DEVICE), kernel, backend="triton", precision="bf16")
    value.backward()
    rows = torch.float32 if kernel_name == "laplacian" else torch.bfloat16
    assert len(seen) > 6 and set(seen) == {(rows, rows, torch.bfloat16)}
    assert xg.grad.dtype == torch.float32
    assert abs(float(value.detach()) - float(exact)) <= 8 * FLOAT32_RTOL * max(abs(float(exact)), 1.0)
    grad_scale = float(exact_grad.abs().max())
    assert float((xg.grad.double().cpu() - exact_grad).abs().max()) <= 4 * 2.0 ** -7 * grad_scale


@pytest.mark.parametrize("kernel_name", ["gaussian", "rq_1dot", "laplacian"])
@pytest.mark.parametrize("estimator", ["unbiased", "u-statistic"])
def test_bf16_small_d_gradient_reads_bfloat16_copies(kernel_name, estimator, monkeypatch):
    """The fused small-d gradient in bf16 reads bfloat16 copies of the rows (float32 rows for the |a - b|
    kernels): the same value and gradients as reading the rounded float32 rows, and those of the rounded
    points up to the bfloat16 rounding of the coefficients in the second product; float32 gradients. Through
    mmd2 and through pair_sum (a block)."""
    from fastmmd.common.rounding import round_mantissa

    seen = []
    original = launch.owner_pass

    def spy(a, b, *args, **kwargs):
        seen.append((a.dtype, b.dtype))
        return original(a, b, *args, **kwargs)

    monkeypatch.setattr(launch, "owner_pass", spy)
    n, m, d = (37, 37, 9) if estimator == "u-statistic" else (37, 29, 9)
    x64, y64 = sample_xy(n, m, d, seed=31)
    x, y = (x64 + 1.0).float().to(DEVICE), (y64 + 1.1).float().to(DEVICE)
    kernel = CASE_BY_NAME[kernel_name].make(d)
    rx, ry = round_mantissa(x, 7).double().cpu(), round_mantissa(y, 7).double().cpu()
    rx.requires_grad_(True)
    exact = fastmmd.mmd2(rx, ry, kernel, estimator, backend="reference")
    (exact_grad,) = torch.autograd.grad(exact, rx)

    def run():
        xg = x.clone().requires_grad_(True)
        value = fastmmd.mmd2(xg, y, kernel, estimator, backend="triton", precision="bf16")
        value.backward()
        return float(value.detach()), xg.grad

    value, grad = run()
    rows = torch.float32 if kernel_name == "laplacian" else torch.bfloat16
    assert len(seen) == 4 and set(seen) == {(rows, rows)} and grad.dtype == torch.float32
    scale = max(abs(float(exact)), 1.0)
    grad_scale = float(exact_grad.abs().max())
    assert abs(value - float(exact)) <= 8 * FLOAT32_RTOL * scale
    assert float((grad.double().cpu() - exact_grad).abs().max()) <= 4 * 2.0 ** -7 * grad_scale
    monkeypatch.setattr(launch, "owner_rows", lambda prep, *arrays: arrays)
    value_f32, grad_f32 = run()
    assert abs(value - value_f32) <= 4 * FLOAT32_RTOL * scale
    assert float((grad - grad_f32).abs().max()) <= 4 * FLOAT32_RTOL * grad_scale
    monkeypatch.undo()
    monkeypatch.setattr(launch, "owner_pass", spy)
    seen.clear()
    terms = kernel.terms(d).ravel().tolist()
    for symmetric in (True, False):
        _, grad_a, _ = get_backend("triton").pair_sum(x, y, terms, symmetric, False, True, "bf16", 1)
        assert grad_a.dtype == torch.float32
    assert len(seen) == 3 and set(seen) == {(rows, rows)}


def test_gradient_chunk_size_from_the_environment(monkeypatch):
    monkeypatch.setenv("FASTMMD_CHUNK", "8192")
    assert launch.chunk_size() == 8192
    for bad in ("0", "-5", "big"):
        monkeypatch.setenv("FASTMMD_CHUNK", bad)
        with pytest.raises(ValueError, match="FASTMMD_CHUNK"):
            launch.chunk_size()
    monkeypatch.delenv("FASTMMD_CHUNK")
    assert launch.chunk_size() == launch.CHUNK


@pytest.mark.parametrize("precision", ["tf32", "bf16"])
def test_low_precision_within_twice_torch_error(precision):
    """The low precisions against naive torch in the same precision (tests/tolerances.py, LOW_PRECISION_FACTOR):
    the errors of the value and of the gradient against the float64 reference backend are at most twice
    torch's, plus the float32 tolerance. Torch's bf16 is the GEMM of operands rounded to bfloat16 with float32
    accumulation, which is what the tensor cores compute."""
    if precision == "tf32" and DEVICE != "cuda":
        pytest.skip("the interpreter computes tf32 products in full float32")
    n, m, d = (2048, 2048, 512) if DEVICE == "cuda" else (37, 29, 16)
    x64, y64 = sample_xy(n, m, d, seed=9)
    x, y = x64.float().to(DEVICE), y64.float().to(DEVICE)
    sigma = math.sqrt(d)
    kernel = fastmmd.Gaussian(bandwidth=sigma)
    bf = mmd2_terms([Term("gaussian", 1.0, {"sigma": sigma})], x64.numpy(), y64.numpy(), "unbiased")

    def naive(a, b):
        before = torch.backends.cuda.matmul.allow_tf32
        torch.backends.cuda.matmul.allow_tf32 = precision == "tf32"
        if precision == "bf16":
            dot = a.bfloat16().float() @ b.bfloat16().float().T
        else:
            dot = a @ b.T
        torch.backends.cuda.matmul.allow_tf32 = before
        r2 = ((a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2 * dot).clamp_min(0)
        return torch.exp(-r2 / (2 * sigma**2))

    xt = x.clone().requires_grad_(True)
    kxx, kyy, kxy = naive(xt, xt), naive(y, y), naive(xt, y)
    torch_value = ((kxx.sum() - kxx.diagonal().sum()) / (n * (n - 1))
                   + (kyy.sum() - kyy.diagonal().sum()) / (m * (m - 1)) - 2 * kxy.mean())
    (torch_grad,) = torch.autograd.grad(torch_value, xt)
    xg = x.clone().requires_grad_(True)
    value = fastmmd.mmd2(xg, y, kernel, backend="triton", precision=precision)
    value.backward()
    value_error = abs(float(value.detach()) - bf.mmd2)
    torch_value_error = abs(float(torch_value.detach()) - bf.mmd2)
    assert value_error <= LOW_PRECISION_FACTOR * torch_value_error + FLOAT32_RTOL * bf.value_scale
    grad_error = float(np.abs(xg.grad.double().cpu().numpy() - bf.grad_x).max())
    torch_grad_error = float(np.abs(torch_grad.double().cpu().numpy() - bf.grad_x).max())
    assert grad_error <= LOW_PRECISION_FACTOR * torch_grad_error + FLOAT32_RTOL * bf.grad_scale


@pytest.mark.cuda
def test_cuda_bitwise_reproducible_and_stream_safe():
    x64, y64 = sample_xy(3000, 2500, 64, seed=2)
    x, y = x64.float().cuda(), y64.float().cuda()
    kernel = fastmmd.get_kernel("mix_rq_1dot")

    def run():
        xg, yg = x.clone().requires_grad_(True), y.clone().requires_grad_(True)
        v = fastmmd.mmd2(xg, yg, kernel, backend="triton")
        v.backward()
        return v.detach(), xg.grad, yg.grad

    first = run()
    stream = torch.cuda.Stream()
    with torch.cuda.stream(stream):
        second = run()
    stream.synchronize()
    for a, b in zip(first, second):
        assert torch.equal(a, b)


@pytest.mark.cuda
def test_cuda_torch_compile_matches_eager():
    x64, y64 = sample_xy(500, 400, 32, seed=4)
    x, y = x64.float().cuda(), y64.float().cuda()
    kernel = fastmmd.Gaussian(bandwidth=[4.0, 8.0])

    def loss(a, b):
        return fastmmd.mmd2(a, b, kernel, backend="triton")

    compiled = torch.compile(loss, fullgraph=False)
    xe = x.clone().requires_grad_(True)
    xc = x.clone().requires_grad_(True)
    eager = loss(xe, y)
    eager.backward()
    comp = compiled(xc, y)
    comp.backward()
    assert torch.allclose(eager, comp, rtol=COMPILED_FLOAT32_RTOL, atol=COMPILED_FLOAT32_ATOL)
    assert torch.allclose(xe.grad, xc.grad, rtol=FLOAT32_RTOL, atol=GRADCHECK_ATOL)
