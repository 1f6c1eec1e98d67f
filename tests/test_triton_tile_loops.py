"""The small-d streaming forward (value_rows_kernel) in tile shapes other than the interpreter's default, so
that each of its three loops runs: the tiles crossing the diagonal (BM > BN: several of them), the interior
tiles, and the masked last tile of B, in full and partial row blocks, with column segments that start inside
a row block. Against the float64 brute force, symmetric and not, with and without the diagonal."""
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
    """Runs the streaming kernel in tiles (BM, BN) and column segments of `segment` rows."""
    def use(bm: int, bn: int, segment: int):
        monkeypatch.setattr(configs, "_launchers", {})
        monkeypatch.setattr(configs, "_value_rows_shapes",
                            lambda dtype, d, precision: [triton.Config(dict(BM=bm, BN=bn), num_warps=4, num_stages=1)])
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


@pytest.mark.parametrize("where", ["interior", "diagonal tile", "last tile"])
@pytest.mark.parametrize("precision", ["tf32", "highest"])
def test_streaming_forward_gives_nan_for_a_nan_row_in_any_loop(where, precision, streaming_tiles):
    """A NaN reaches the sum from an interior tile (no mask), a diagonal tile and the last, masked tile."""
    streaming_tiles(64, 16, 2048)
    x64, y64 = sample_xy(100, 77, 6, seed=5)
    row = {"interior": 70, "diagonal tile": 10, "last tile": 99}[where]
    x64[row, 1] = float("nan")
    with torch.no_grad():
        value = fastmmd.mmd2(x64.float().to(DEVICE), y64.float().to(DEVICE), fastmmd.Gaussian(bandwidth=2.0),
                             backend="triton", precision=precision)
    assert math.isnan(float(value))
