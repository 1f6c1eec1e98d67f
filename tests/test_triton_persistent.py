"""The persistent forward (FASTMMD_PERSISTENT=1: a fixed number of programs walking a list of tiles) against
the float64 brute force and against one program per tile: every kernel case and estimator, odd shapes
where the programs walk several tiles each, pointer and tensor-descriptor reads; and its tile list."""
from __future__ import annotations

import pytest
import torch

import fastmmd
from brute_force import mmd2_terms
from cases import CASE_BY_NAME, CASES, assert_value_close
from conftest import sample_xy
from fastmmd.backends import get_backend
from fastmmd.kernels import SHIFT_INVARIANT_MMD_FAMILIES
from tolerances import tolerance

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"

if get_backend("triton").unavailable_reason() is not None:
    pytest.skip(f"triton backend unavailable: {get_backend('triton').unavailable_reason()}", allow_module_level=True)

from fastmmd.backends._triton import configs, launch  # noqa: E402 (after the skip)


def forward(x, y, kernel, estimator, persistent, monkeypatch, precision="highest") -> float:
    """persistent: False (one program per tile), True or 1 (one program per SM), 2 (two per SM)."""
    monkeypatch.setenv("FASTMMD_PERSISTENT", str(int(persistent)))
    with torch.no_grad():
        return float(fastmmd.mmd2(x, y, kernel, estimator, backend="triton", precision=precision))


# float64 runs the same code in another dtype: one estimator of it is enough.
DTYPE_ESTIMATORS = [(torch.float32, e) for e in ("unbiased", "biased", "u-statistic")] + [(torch.float64, "unbiased")]


@pytest.mark.parametrize("dtype, estimator", DTYPE_ESTIMATORS, ids=[f"{str(d)[6:]}-{e}" for d, e in DTYPE_ESTIMATORS])
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_persistent_forward_matches_brute_force(case, estimator, dtype, monkeypatch):
    """d = 5 through the tiled path (the streaming small-d kernel switched off): 53 rows are 4 row tiles
    (ragged), the XX block's upper triangle 10 tiles over 3 programs."""
    monkeypatch.setattr(launch, "ROWS_MAX_D", 0)
    n, m, d = (53, 53, 5) if estimator == "u-statistic" else (53, 38, 5)
    x64, y64 = sample_xy(n, m, d, seed=n + 3 * m)
    x, y = x64.to(dtype).to(DEVICE), y64.to(dtype).to(DEVICE)
    bf = mmd2_terms(case.terms(d), x64.numpy(), y64.numpy(), estimator)
    persistent = forward(x, y, case.make(d), estimator, True, monkeypatch)
    per_tile = forward(x, y, case.make(d), estimator, False, monkeypatch)
    tol = tolerance(dtype).value
    what = f"{case.name} {estimator} {dtype}"
    assert_value_close(persistent, bf.mmd2, bf.value_scale, tol, what + " persistent")
    assert_value_close(persistent, per_tile, bf.value_scale, 2 * tol, what + " persistent vs per tile")


@pytest.mark.parametrize("symmetric_case", ["rq_1dot", "polynomial"])
def test_persistent_forward_through_tensor_descriptors(symmetric_case, monkeypatch):
    """With FASTMMD_TMA=1 the persistent kernel reads float32 rows through tensor descriptors; d = 260 is no
    multiple of the feature block. polynomial is not shift invariant (no centring: descriptors in
    "highest"); rq_1dot is, so its "highest" run centres and keeps pointer reads."""
    case = CASE_BY_NAME[symmetric_case]
    n, m, d = 37, 41, 260
    x64, y64 = sample_xy(n, m, d, seed=9)
    x, y = x64.float().to(DEVICE), y64.float().to(DEVICE)
    monkeypatch.setenv("FASTMMD_TMA", "1")
    prep = launch.prepare(x, y, case.make(d).terms(d).ravel().tolist(), "ieee", SHIFT_INVARIANT_MMD_FAMILIES)
    assert launch.tma_ready(prep, x, y) == (symmetric_case == "polynomial")
    bf = mmd2_terms(case.terms(d), x64.numpy(), y64.numpy(), "unbiased")
    value = forward(x, y, case.make(d), "unbiased", True, monkeypatch)
    assert_value_close(value, bf.mmd2, bf.value_scale, tolerance(torch.float32).value, "persistent, TMA")


@pytest.mark.parametrize("symmetric", [True, False])
@pytest.mark.parametrize("tiles_m, tiles_n", [(1, 1), (5, 5), (13, 4), (4, 19), (9, 9)])
def test_tile_list_holds_each_needed_tile_once_in_row_groups(tiles_m, tiles_n, symmetric):
    if symmetric and tiles_m != tiles_n:
        pytest.skip("a symmetric block is square")
    tiles = launch.tile_list(tiles_m, tiles_n, symmetric, torch.device("cpu"))
    assert tiles.dtype == torch.int32 and tiles.shape[1] == 2
    pairs = [tuple(t) for t in tiles.tolist()]
    expected = {(i, j) for i in range(tiles_m) for j in range(tiles_n) if j >= i or not symmetric}
    assert len(pairs) == len(expected) and set(pairs) == expected
    # Row groups come one after the other; inside a group, column by column.
    keys = [(i // configs.GROUP, j, i) for i, j in pairs]
    assert keys == sorted(keys)


def test_programs_never_outnumber_the_tiles():
    assert launch.persistent_programs(torch.device("cpu"), 1, 1) == 1
    assert launch.persistent_programs(torch.device("cpu"), 100, 2) == 3


@pytest.mark.parametrize("estimator", ["unbiased", "u-statistic"])
def test_two_programs_per_sm_match_brute_force(estimator, monkeypatch):
    """FASTMMD_PERSISTENT=2 (two 4-warp programs per SM on a GPU): the brute force's value."""
    monkeypatch.setattr(launch, "ROWS_MAX_D", 0)
    case = CASE_BY_NAME["gaussian_mix"]
    n, m, d = (45, 45, 7) if estimator == "u-statistic" else (45, 38, 7)
    x64, y64 = sample_xy(n, m, d, seed=13)
    bf = mmd2_terms(case.terms(d), x64.numpy(), y64.numpy(), estimator)
    value = forward(x64.float().to(DEVICE), y64.float().to(DEVICE), case.make(d), estimator, 2, monkeypatch)
    assert_value_close(value, bf.mmd2, bf.value_scale, tolerance(torch.float32).value, "two per SM")


def test_two_programs_per_sm_take_4_warps_and_at_most_3_stages(monkeypatch):
    """The GPU's configurations (not the interpreter's): the tiles of the default, 4 warps, <= 3 stages."""
    monkeypatch.setattr(configs, "interpreting", lambda: False)
    monkeypatch.setattr(configs, "_launchers", {})
    for precision in ("tf32", "bf16"):
        default = configs._tiled_configs(False, torch.float32, precision, grouped=False)[0]
        one = configs.persistent_launcher(None, False, torch.float32, precision, 1).candidates[0]
        two = configs.persistent_launcher(None, False, torch.float32, precision, 2).candidates[0]
        assert one.kwargs == two.kwargs == default.kwargs and one.num_warps == default.num_warps == 8
        assert two.num_warps == 4 and two.num_stages == min(default.num_stages, 3)
        assert two.pre_hook is configs.descriptor_blocks


def test_persistent_setting_is_checked(monkeypatch):
    for value, per_sm in (("0", 0), ("1", 1), ("2", 2)):
        monkeypatch.setenv("FASTMMD_PERSISTENT", value)
        assert launch.persistent_programs_per_sm() == per_sm
    monkeypatch.setenv("FASTMMD_PERSISTENT", "yes")
    with pytest.raises(ValueError, match="FASTMMD_PERSISTENT"):
        launch.persistent_programs_per_sm()
