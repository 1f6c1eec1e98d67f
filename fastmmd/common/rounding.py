"""float32 values rounded to fewer mantissa bits, as the tensor cores read them (docs/numerics.md).

A float32 has 23 explicit mantissa bits; TF32 keeps 10 and bfloat16 7. Fed raw float32 operands in TF32 mode,
the tensor cores drop the low 13 bits (truncation, a bias toward zero of half a TF32 ulp on average); rounding
the operands to nearest once, before the kernels, halves the largest error and removes the bias, and lets
the squared norms be those of the very numbers the products use, so that |a|² + |b|² − 2aᵀb is the squared
distance of the rounded points. `round_mantissa` rounds to nearest (ties to even); `truncate_mantissa` is the
hardware's truncation, for measuring what rounding changes. NaN and ±inf pass through unchanged.
"""
from __future__ import annotations

import torch

__all__ = ["TF32_BITS", "BF16_BITS", "round_mantissa", "truncate_mantissa", "operand_bits"]

TF32_BITS = 10
BF16_BITS = 7
_FLOAT32_BITS = 23
_SIGN = -(1 << 31)  # 0x80000000 as an int32
_MAGNITUDE = (1 << 31) - 1


def _check(x: torch.Tensor, bits: int) -> int:
    if x.dtype != torch.float32:
        raise TypeError(f"x must be a float32 tensor; got {x.dtype}")
    if not (isinstance(bits, int) and 0 < bits < _FLOAT32_BITS):
        raise ValueError(f"bits must be an integer in 1..{_FLOAT32_BITS - 1}; got {bits!r}")
    return _FLOAT32_BITS - bits


def round_mantissa(x: torch.Tensor, bits: int) -> torch.Tensor:
    """x (float32, any shape) rounded to the nearest float32 with `bits` explicit mantissa bits, ties to even
    (a new tensor); an overflow rounds to ±inf as IEEE rounding does, NaN and ±inf are kept."""
    drop = _check(x, bits)
    u = x.contiguous().view(torch.int32)
    magnitude = u & _MAGNITUDE
    magnitude = (magnitude + ((1 << (drop - 1)) - 1) + ((magnitude >> drop) & 1)) & -(1 << drop)
    out = (magnitude | (u & _SIGN)).view(torch.float32)
    return torch.where(torch.isnan(x), x, out)


def truncate_mantissa(x: torch.Tensor, bits: int) -> torch.Tensor:
    """x (float32) with the mantissa bits beyond `bits` set to zero (rounding toward zero), NaN kept."""
    drop = _check(x, bits)
    out = (x.contiguous().view(torch.int32) & -(1 << drop)).view(torch.float32)
    return torch.where(torch.isnan(x), x, out)


def operand_bits(precision: str):
    """The mantissa bits of the tensor-core operands of a public precision ("tf32", "bf16"), None for
    "highest" (IEEE float32)."""
    return {"tf32": TF32_BITS, "bf16": BF16_BITS}.get(precision)
