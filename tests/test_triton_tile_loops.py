"""The small-d kernels that walk tiles of pairs, the streaming forward (value_rows_kernel) and the fused
gradient (owner_grad_kernel), in tile shapes other than the interpreter's default, so that each of their
loops runs: the tiles crossing the diagonal (BM > BN: several of them), the interior tiles, and the masked
last tile of B, in full and partial row blocks, with the forward's column segments starting inside a row
block. Against the float64 brute force, symmetric and not, with and without the diagonal."""
from __future__ import annotations

import math

import pytest
import torch

import fastmmd
from brute_force import mmd2_terms
from cases import CASE_BY_NAME, assert_value_close
from conftest import sample_xy
from fastmmd.backends import get_backend
from tolerances import tolerance

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"

if get_backend("triton").unavailable_reason() is not None:
    pytest.skip(f"triton backend unavailable: {get_backend('triton').unavailable_reason()}", allow_module_level=True)
if DEVICE == "cuda":
    pytest.skip("sets the interpreter's tile shapes; on a GPU the autotuner's configurations run",
                allow_module_level=True)

import triton  # noqa: E402 (after the skip)

from fastmmd.backends._triton import configs, launch  # noqa: E402

# (BM, BN, segment): BM / BN diagonal tiles per row block; segments of 32 rows split the row blocks of 64.
SHAPES = [(64, 16, 2048), (32, 32, 2048), (64, 16, 32), (32, 16, 16)]
ESTIMATORS = ["unbiased", "biased", "u-statistic"]


@pytest.fixture
def streaming_tiles(monkeypatch):
    """Runs the streaming forward and the fused gradient in tiles (BM, BN), the forward in column segments of
    `segment` rows."""
    def use(bm: int, bn: int, segment: int):
        tiles = [triton.Config(dict(BM=bm, BN=bn), num_warps=4, num_stages=1)]
        monkeypatch.setattr(configs, "_launchers", {})
        monkeypatch.setattr(configs, "_value_rows_shapes", lambda dtype, d, precision: tiles)
        monkeypatch.setattr(configs, "_owner_configs", lambda explicit, dtype, d: tiles)
        monkeypatch.setattr(launch, "SEGMENT", segment)
    return use


# The tensor-core precisions run the interior and masked tiles in loops of their own; IEEE products one loop
# that branches per tile. The float32 Gaussian runs with its constants folded (FOLD).
RUNS = [("gaussian", torch.float32, "tf32"), ("rq_1dot", torch.float32, "bf16"),
        ("gaussian", torch.float32, "highest"), ("rq_1dot", torch.float64, "highest")]
MANTISSA_BITS = {"tf32": 10, "bf16": 7}


@pytest.mark.parametrize("estimator", ESTIMATORS)
@pytest.mark.parametrize("bm, bn, segment", SHAPES, ids=[f"{bm}x{bn}-seg{s}" for bm, bn, s in SHAPES])
@pytest.mark.parametrize("case_name, dtype, precision", RUNS, ids=[f"{c}-{str(t)[6:]}-{p}" for c, t, p in RUNS])
def test_streaming_forward_in_every_loop_matches_brute_force(case_name, dtype, precision, bm, bn, segment,
                                                             estimator, streaming_tiles):
    """100 rows: one full row block of 64 and a partial one (or three full of 32 and a partial); 77 columns
    end inside a tile of 16 or 32. In tf32 and bf16 against the brute force of the operands as the kernels
    read them (rounded once to the nearest value of their mantissa)."""
    from fastmmd.common.rounding import round_mantissa

    streaming_tiles(bm, bn, segment)
    case = CASE_BY_NAME[case_name]
    n, m, d = (100, 100, 6) if estimator == "u-statistic" else (100, 77, 6)
    x64, y64 = sample_xy(n, m, d, seed=bm + bn + segment)
    x, y = x64.to(dtype), y64.to(dtype)
    if precision in MANTISSA_BITS:
        x64, y64 = (round_mantissa(t, MANTISSA_BITS[precision]).double() for t in (x, y))
    bf = mmd2_terms(case.terms(d), x64.numpy(), y64.numpy(), estimator)
    with torch.no_grad():
        value = float(fastmmd.mmd2(x.to(DEVICE), y.to(DEVICE), case.make(d), estimator, backend="triton",
                                   precision=precision))
    what = f"{case_name} {precision} {bm}x{bn}/{segment}"
    assert_value_close(value, bf.mmd2, bf.value_scale, tolerance(dtype).value, what)


# The gradient's products of coefficients and rows round the coefficients to the precision's mantissa.
GRADIENT_RUNS = [("gaussian", "tf32", 4 * 2.0 ** -11), ("rq_1dot", "bf16", 4 * 2.0 ** -8),
                 ("gaussian", "highest", 1e-5)]


@pytest.mark.parametrize("estimator", ESTIMATORS)
@pytest.mark.parametrize("bm, bn", [(64, 16), (32, 32), (16, 32)], ids=["64x16", "32x32", "16x32"])
@pytest.mark.parametrize("case_name, precision, grad_tol", GRADIENT_RUNS, ids=[f"{c}-{p}" for c, p, _ in GRADIENT_RUNS])
def test_fused_gradient_in_every_loop_matches_brute_force(case_name, precision, grad_tol, bm, bn, estimator,
                                                          streaming_tiles):
    """Value and gradients of both samples, float32 inputs, against autograd on the float64 brute force of the
    operands as the kernels read them."""
    from fastmmd.common.rounding import round_mantissa

    streaming_tiles(bm, bn, 2048)
    case = CASE_BY_NAME[case_name]
    n, m, d = (100, 100, 6) if estimator == "u-statistic" else (100, 77, 6)
    x64, y64 = sample_xy(n, m, d, seed=bm + 2 * bn)
    x, y = x64.float(), y64.float()
    if precision in MANTISSA_BITS:
        x64, y64 = (round_mantissa(t, MANTISSA_BITS[precision]).double() for t in (x, y))
    rx, ry = x64.clone().requires_grad_(True), y64.clone().requires_grad_(True)
    exact = fastmmd.mmd2(rx, ry, case.make(d), estimator, backend="reference")
    exact_gx, exact_gy = torch.autograd.grad(exact, (rx, ry))
    xg, yg = x.to(DEVICE).requires_grad_(True), y.to(DEVICE).requires_grad_(True)
    value = fastmmd.mmd2(xg, yg, case.make(d), estimator, backend="triton", precision=precision)
    value.backward()
    scale = max(abs(float(exact)), 1.0)
    assert abs(float(value.detach()) - float(exact)) <= tolerance(torch.float32).value * scale
    for grad, exact_grad in ((xg.grad, exact_gx), (yg.grad, exact_gy)):
        error = float((grad.double().cpu() - exact_grad).abs().max())
        assert error <= grad_tol * float(exact_grad.abs().max()), (error, float(exact_grad.abs().max()))


@pytest.mark.parametrize("where", ["interior", "diagonal tile", "last tile"])
@pytest.mark.parametrize("precision", ["tf32", "highest"])
def test_nan_row_reaches_value_and_gradient_from_any_loop(where, precision, streaming_tiles):
    """A NaN reaches the sum from an interior tile (no mask), a diagonal tile and the last, masked tile; and
    the gradient of the NaN row's partners."""
    streaming_tiles(64, 16, 2048)
    x64, y64 = sample_xy(100, 77, 6, seed=5)
    row = {"interior": 70, "diagonal tile": 10, "last tile": 99}[where]
    x64[row, 1] = float("nan")
    xg, yg = x64.float().to(DEVICE).requires_grad_(True), y64.float().to(DEVICE).requires_grad_(True)
    with torch.no_grad():
        value = fastmmd.mmd2(xg, yg, fastmmd.Gaussian(bandwidth=2.0), backend="triton", precision=precision)
    assert math.isnan(float(value))
    fastmmd.mmd2(xg, yg, fastmmd.Gaussian(bandwidth=2.0), backend="triton", precision=precision).backward()
    # Every other row pairs with the NaN row: each gradient row holds a NaN.
    assert bool(torch.isnan(xg.grad).any(dim=1).all()) and bool(torch.isnan(yg.grad).any(dim=1).all())
