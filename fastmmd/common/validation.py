"""Input checks shared by the public ops: every error names the argument at fault.

Shapes: samples are 2-D tensors (n, d) and (m, d) with the same d, the same floating dtype and device.
"""
from __future__ import annotations

import math
import numbers
from typing import Optional, Sequence

import numpy as np
import torch

ESTIMATORS = ("unbiased", "biased", "u-statistic", "linear")
PRECISIONS = ("highest", "tf32", "bf16")

# Estimators that average over pairs of distinct samples of one set need two of them.
_NEEDS_TWO = ("unbiased", "u-statistic", "linear")
# Estimators that pair x_i with y_i.
_NEEDS_EQUAL_SIZES = ("u-statistic", "linear")

_CPU_DTYPES = (torch.float32, torch.float64)
_FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def check_choice(argument: str, value: object, choices: Sequence[str]) -> str:
    """`value` if it is one of `choices`, else a ValueError listing them."""
    if not isinstance(value, str) or value not in choices:
        valid = ", ".join(repr(c) for c in choices)
        raise ValueError(f"unknown {argument} {value!r}; valid: {valid}")
    return value


def check_estimator(estimator: object) -> str:
    return check_choice("estimator", estimator, ESTIMATORS)


def check_precision(precision: object) -> str:
    return check_choice("precision", precision, PRECISIONS)


def check_array_like(value: object, name: str) -> None:
    """TypeError unless `value` is a torch.Tensor or a numpy.ndarray."""
    if not isinstance(value, (torch.Tensor, np.ndarray)):
        raise TypeError(f"{name} must be a torch.Tensor or a numpy.ndarray; got {type(value).__name__}")


def check_floating(t: torch.Tensor, name: str) -> None:
    """TypeError for integer, bool and complex tensors, and for 16-bit floats off the GPU."""
    if t.dtype not in _FLOAT_DTYPES:
        raise TypeError(f"{name} must be a floating-point tensor (float32 or float64); got {t.dtype}")
    if t.device.type == "cpu" and t.dtype not in _CPU_DTYPES:
        raise TypeError(f"{name} has dtype {t.dtype}, which is supported on GPU only; use float32 or float64 on CPU")


def check_samples(t: torch.Tensor, name: str) -> None:
    """A non-empty 2-D floating tensor (n, d)."""
    check_floating(t, name)
    if t.dim() != 2:
        raise ValueError(f"{name} must be 2-D (n, d); got shape {tuple(t.shape)}")
    if t.shape[0] == 0:
        raise ValueError(f"{name} is empty (0 samples); shape {tuple(t.shape)}")
    if t.shape[1] == 0:
        raise ValueError(f"{name} has no features (d = 0); shape {tuple(t.shape)}")


def check_same_space(x: torch.Tensor, y: torch.Tensor, names: Sequence[str] = ("x", "y")) -> None:
    """Same feature dimension, dtype and device."""
    nx, ny = names
    if x.shape[1] != y.shape[1]:
        raise ValueError(
            f"{nx} and {ny} must have the same number of features; got {nx} {tuple(x.shape)} and {ny} {tuple(y.shape)}"
        )
    if x.dtype != y.dtype:
        raise TypeError(f"{nx} and {ny} must have the same dtype; got {nx} {x.dtype} and {ny} {y.dtype}")
    if x.device != y.device:
        raise ValueError(f"{nx} and {ny} must be on the same device; got {nx} on {x.device} and {ny} on {y.device}")


def check_sample_sizes(x: torch.Tensor, y: torch.Tensor, estimator: str, names: Sequence[str] = ("x", "y")) -> None:
    """The sample sizes `estimator` needs: n, m >= 2 (unbiased, u-statistic, linear), n = m (u-statistic, linear)."""
    nx, ny = names
    n, m = x.shape[0], y.shape[0]
    if estimator in _NEEDS_EQUAL_SIZES and n != m:
        raise ValueError(
            f"estimator={estimator!r} needs as many samples in {ny} as in {nx}; got n={n} and m={m}"
        )
    if estimator in _NEEDS_TWO:
        for name, count, letter in ((nx, n, "n"), (ny, m, "m")):
            if count < 2:
                raise ValueError(f"estimator={estimator!r} needs at least 2 samples in {name}; got {letter}={count}")


def check_pair(x: torch.Tensor, y: torch.Tensor, estimator: str, names: Sequence[str] = ("x", "y")) -> None:
    """Everything about two samples compared with `estimator` (which must already be a valid name)."""
    check_samples(x, names[0])
    check_samples(y, names[1])
    check_same_space(x, y, names)
    check_sample_sizes(x, y, estimator, names)


def check_finite(t: torch.Tensor, name: str) -> None:
    """ValueError naming `name` and the first row of t (n, d) holding a NaN or an infinity."""
    bad = ~torch.isfinite(t).all(dim=1)
    if bool(bad.any()):
        row = int(bad.nonzero()[0, 0])
        raise ValueError(f"{name} must be finite; row {row} holds NaN or inf ({int(bad.sum())} such rows)")


def _scalar(value: object) -> object:
    """A 0-dim (or one-element) tensor or numpy array as a Python number; anything else as it is."""
    if isinstance(value, torch.Tensor) and value.numel() == 1 and not value.requires_grad:
        return value.item()
    if isinstance(value, np.ndarray) and value.size == 1:
        return value.item()
    return value


def real_number(value: object, name: str, minimum: float = -math.inf, strict: bool = False) -> float:
    """value (a Python, numpy or one-element tensor real number, finite, ≥ or, with strict, > minimum) as a
    float; ValueError naming `name` otherwise."""
    plain = _scalar(value)
    bound = f" > {minimum:g}" if strict else (f" >= {minimum:g}" if minimum > -math.inf else "")
    if isinstance(plain, (bool, np.bool_)) or not isinstance(plain, numbers.Real):
        raise ValueError(f"{name} must be a finite number{bound}; got {value!r}")
    out = float(plain)
    if not math.isfinite(out) or out < minimum or (strict and out == minimum):
        raise ValueError(f"{name} must be a finite number{bound}; got {value!r}")
    return out


def whole_number(value: object, name: str, minimum: int = 1, maximum: Optional[int] = None) -> int:
    """value (a Python, numpy or one-element tensor integer in [minimum, maximum]) as an int; ValueError
    naming `name` otherwise."""
    plain = _scalar(value)
    kind = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
    upper = "" if maximum is None else f" and <= {maximum}"
    if isinstance(plain, (bool, np.bool_)) or not isinstance(plain, numbers.Integral) or plain < minimum or (
            maximum is not None and plain > maximum):
        raise ValueError(f"{name} must be {kind}{upper}; got {value!r}")
    return int(plain)


# Seeds: torch.Generator takes [0, 2**64), numpy's RandomState [0, 2**32).
TORCH_SEED_LIMIT = 2 ** 64 - 1
NUMPY_SEED_LIMIT = 2 ** 32 - 1


def check_seed(seed: object, maximum: int = TORCH_SEED_LIMIT, name: str = "seed") -> int:
    """An integer seed in [0, maximum] (None is refused: every draw here is reproducible)."""
    if seed is None or isinstance(seed, str):
        raise ValueError(f"{name} must be an integer in [0, {maximum}]; got None (draws here are always seeded, "
                         f"so that results can be reproduced)")
    return whole_number(seed, name, 0, maximum)


def check_request(name: str, value: int, bytes_each: int, limit_bytes: int = 2 ** 31) -> None:
    """ValueError when `value` items of `bytes_each` bytes would need more than limit_bytes, before any work."""
    needed = value * bytes_each
    if needed > limit_bytes:
        raise ValueError(f"{name}={value} would need {needed / 2 ** 30:.1f} GiB for its results alone (at most "
                         f"{limit_bytes // bytes_each} fit in {limit_bytes / 2 ** 30:.0f} GiB); ask for fewer")
