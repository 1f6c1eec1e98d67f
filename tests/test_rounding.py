"""fastmmd.common.rounding: float32 rounded to TF32's and bfloat16's mantissas, to nearest with ties to even,
against torch's own bfloat16 conversion and a float64 oracle; truncation as the tensor cores do it; NaN and
infinities kept; bad arguments refused by name."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from fastmmd.common.rounding import BF16_BITS, TF32_BITS, operand_bits, round_mantissa, truncate_mantissa

SPECIALS = [0.0, -0.0, float("inf"), -float("inf"), float("nan"), 3.4028235e38, -3.4028235e38, 1e-45, -1.17e-38,
            1.0 + 2.0 ** -11, 1.0 + 3 * 2.0 ** -11, 1.0 + 2.0 ** -8, 1.0 + 3 * 2.0 ** -8]  # the last four are ties


def _values(count=20000, seed=0):
    g = torch.Generator().manual_seed(seed)
    spread = 10.0 ** torch.randint(-40, 38, (count,), generator=g).float()
    return torch.cat([torch.randn(count, generator=g) * spread, torch.tensor(SPECIALS)])


def _nearest(x: torch.Tensor, bits: int) -> torch.Tensor:
    """Round half to even at `bits` mantissa bits, in float64 (exact for float32 inputs); overflow to inf."""
    v = x.double().numpy()
    out = v.copy()
    finite = np.isfinite(v) & (v != 0)
    exponent = np.maximum(np.floor(np.log2(np.abs(v[finite]))), -126)  # subnormals share the smallest quantum
    quantum = 2.0 ** (exponent - bits)
    out[finite] = np.round(v[finite] / quantum) * quantum
    with np.errstate(over="ignore"):
        return torch.from_numpy(out.astype(np.float32))


def _same(a, b):
    """Equal values with equal signs (-0.0 is not 0.0), NaN where the other is NaN (of any sign)."""
    nan = torch.isnan(a) & torch.isnan(b)
    return bool(((a == b) & (torch.signbit(a) == torch.signbit(b)) | nan).all())


def test_bf16_rounding_is_torchs_conversion():
    x = _values()
    assert _same(round_mantissa(x, BF16_BITS), x.to(torch.bfloat16).float())


@pytest.mark.parametrize("bits", [TF32_BITS, BF16_BITS, 1, 22])
def test_rounding_is_to_nearest_with_ties_to_even(bits):
    x = _values(seed=bits)
    assert _same(round_mantissa(x, bits), _nearest(x, bits))


def test_ties_go_to_even_and_truncation_drops_the_bits():
    x = torch.tensor([1.0 + 2.0 ** -11, 1.0 + 3 * 2.0 ** -11, -(1.0 + 3 * 2.0 ** -11), 1.0 + 2.0 ** -12 * 3])
    assert round_mantissa(x, TF32_BITS).tolist() == [1.0, 1.0 + 2.0 ** -9, -(1.0 + 2.0 ** -9), 1.0 + 2.0 ** -10]
    assert truncate_mantissa(x, TF32_BITS).tolist() == [1.0, 1.0 + 2.0 ** -10, -(1.0 + 2.0 ** -10), 1.0]


def test_truncation_rounds_toward_zero():
    x = _values(seed=3)
    t = truncate_mantissa(x, TF32_BITS)
    finite = torch.isfinite(x)
    assert bool((t[finite].abs() <= x[finite].abs()).all())
    assert _same(round_mantissa(t, TF32_BITS), t)  # already representable
    assert _same(t[~finite], x[~finite])


def test_rounding_keeps_nan_and_infinities():
    x = torch.tensor([float("nan"), float("inf"), -float("inf")])
    x = torch.cat([x, torch.tensor([1], dtype=torch.int32).view(torch.float32) + torch.tensor([float("nan")])])
    # a NaN whose payload lies in the dropped bits: masking them alone would make it an infinity
    nan_low_bits = torch.tensor([0x7F800001], dtype=torch.int32).view(torch.float32)
    for out in (round_mantissa(torch.cat([x, nan_low_bits]), TF32_BITS),
                truncate_mantissa(torch.cat([x, nan_low_bits]), TF32_BITS)):
        assert torch.isnan(out[0]) and out[1] == float("inf") and out[2] == -float("inf") and torch.isnan(out[-1])


def test_arguments_are_checked():
    with pytest.raises(TypeError, match="x"):
        round_mantissa(torch.ones(2, dtype=torch.float64), TF32_BITS)
    with pytest.raises(ValueError, match="bits"):
        round_mantissa(torch.ones(2), 23)
    with pytest.raises(ValueError, match="bits"):
        truncate_mantissa(torch.ones(2), 0)
    assert (operand_bits("tf32"), operand_bits("bf16"), operand_bits("highest")) == (TF32_BITS, BF16_BITS, None)
