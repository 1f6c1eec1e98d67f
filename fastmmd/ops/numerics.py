"""The numerical rules every op follows before it computes (docs/numerics.md).

1. Non-finite input gives NaN out, never a finite number: `scan` finds NaN and ±inf in one pass over the
   inputs; the ops then return NaN (`nan_like`; per row where only some rows of the evaluation points are
   bad) or, for the tests and KID, raise their documented ValueError.
2. Data too large or too small for the compute dtype's squared norms are moved to a frame where they fit:
   x′ = c·x with c a power of 2 (exact), and the kernel k′(c·a, c·b) = k(a, b) (`Kernel.in_frame`).
   Almost every call has c = 1 and runs exactly as written.
3. A kernel whose parameters or values the compute dtype cannot hold on this data (a Gaussian bandwidth
   of 1e-30 in float32, a cubic polynomial on features of 1e20) is refused with a ValueError that says
   which quantity and what to do, instead of computing with infinities.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, List, Optional

import torch

from fastmmd.kernels import Family, Kernel

__all__ = ["Frame", "magnitudes", "scan", "frame_for", "nan_like", "bad_rows", "with_bad_rows"]

# Magnitudes of the data left as they are; outside, the data move to a frame of magnitude about 1.
# float32: squared norms of d <= 2^24 features stay below 2^104 and above 2^-80 (normal numbers).
_WINDOW = {torch.float32: (2.0 ** -40, 2.0 ** 40), torch.float64: (2.0 ** -400, 2.0 ** 400)}
# The largest kernel parameter a dtype holds (products with r² then overflow to inf, never inf·0), and the
# largest kernel value it computes with (headroom for the sums over the pairs).
_LARGEST_PARAMETER = {torch.float32: 2.0 ** 126, torch.float64: 2.0 ** 1020}
_LARGEST_VALUE = {torch.float32: 2.0 ** 120, torch.float64: 2.0 ** 1000}
# Kernel values computed as they are; outside, the kernel is scaled by a power of 2 to values about 1 (tiny
# ones would lose their digits as denormal numbers, large ones overflow in the sums of squares).
_VALUE_WINDOW = {torch.float32: (2.0 ** -60, 2.0 ** 40), torch.float64: (2.0 ** -600, 2.0 ** 400)}


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


def magnitudes(*tensors: torch.Tensor) -> List[float]:
    """max |value| of each tensor as a float: NaN if it holds a NaN, inf if it holds ±inf, 0 if empty (one
    pass over each, one host synchronisation for all)."""
    extremes = []
    for t in tensors:
        if t.numel():
            low, high = torch.aminmax(t.detach())
            extremes.append(torch.stack([low, high]).to(torch.float64))
        else:
            extremes.append(torch.zeros(2, dtype=torch.float64, device=t.device))
    if not extremes:
        return []
    values = torch.stack([e.to(extremes[0].device) for e in extremes])
    nan = torch.isnan(values).any(dim=1)
    out = torch.where(nan, torch.full_like(values[:, 0], math.nan), values.abs().amax(dim=1))
    return out.tolist()


def scan(*tensors: torch.Tensor) -> float:
    """max |value| over all the tensors (NaN if any holds a NaN, inf if any holds ±inf)."""
    values = magnitudes(*tensors)
    if any(math.isnan(v) for v in values):
        return math.nan
    return max(values, default=0.0)


@dataclass(frozen=True)
class Frame:
    """How an op computes: `finite` (every input value finite), the power of 2 `factor` the data are
    multiplied by, and the kernel in that frame, itself multiplied by the power of 2 `value_factor` when
    its values would otherwise fall below the dtype's normal numbers (both factors 1 almost always)."""

    finite: bool
    factor: float
    kernel: Kernel
    value_factor: float = 1.0

    def apply(self, t: torch.Tensor) -> torch.Tensor:
        """t in the frame (differentiable; t itself when the factor is 1)."""
        return t if self.factor == 1.0 else t * self.factor

    def unscale(self, result, power: int = 1):
        """A result linear in the kernel (power 1: MMD², K @ v) or quadratic (power 2: a variance) back in
        the kernel's own units."""
        return result if self.value_factor == 1.0 else result / self.value_factor ** power


def frame_for(kernel: Kernel, *samples: torch.Tensor, magnitude: Optional[float] = None) -> Frame:
    """The frame of an op on `samples` (the points the kernel sees, (n_i, d) each, one dtype), whose largest
    |value| is `magnitude` (scanned here when None). ValueError when the compute dtype cannot hold the
    kernel on these data (rule 3)."""
    dtype = _compute_dtype(samples[0].dtype)
    d = samples[0].shape[1]
    if magnitude is None:
        magnitude = scan(*samples)
    if not math.isfinite(magnitude):
        return Frame(False, 1.0, kernel)
    low, high = _WINDOW[dtype]
    factor = 1.0
    if magnitude > high or 0 < magnitude < low:
        factor = 2.0 ** -round(math.log2(magnitude))
    framed = kernel.in_frame(factor, d) if factor != 1.0 else kernel
    largest = _check_representable(kernel, framed, d, magnitude, factor, dtype)
    small, big = _VALUE_WINDOW[dtype]
    if not small <= largest <= big and factor == 1.0 and magnitude > 0:
        # Values out of range on data in range (a kernel scaled to the data, like an inverse multiquadric
        # with c of 1e10): the data's frame brings the parameters to magnitude 1 too.
        factor = 2.0 ** -round(math.log2(magnitude))
        framed = kernel.in_frame(factor, d)
        largest = _check_representable(kernel, framed, d, magnitude, factor, dtype)
    value_factor = 1.0
    if largest > 0 and not small <= largest <= big:
        # A power of 2 the dtype holds, so that the result can be divided by it in its own dtype.
        limit = round(math.log2(_LARGEST_VALUE[dtype]))
        value_factor = 2.0 ** max(-limit, min(limit, -round(math.log2(largest))))
        framed = value_factor * framed
    return Frame(True, factor, framed, value_factor)


_DESCRIPTIONS = {
    Family.GAUSSIAN: "1/(2·bandwidth²)",
    Family.RATIONAL_QUADRATIC: "1/(2·alpha·scale²)",
    Family.LAPLACIAN: "1/bandwidth",
    Family.INVERSE_MULTIQUADRIC: "c²",
    Family.POLYNOMIAL: "gamma",
    Family.RATIONAL_QUADRATIC_LOG: "1/(2·alpha·scale²)",
    Family.GAUSSIAN_R2: "1/(2·bandwidth²)",
}


def _value_bound(family: Family, weight: float, p1: float, p2: float, p3: float, sq_norm: float) -> float:
    """The largest |k(a, b)| of one term over data with squared norms at most sq_norm (in the frame)."""
    weight = abs(weight)
    if family == Family.INVERSE_MULTIQUADRIC:
        return weight * math.exp(-p2 * math.log(p1))  # at a = b
    if family == Family.ENERGY:
        return weight * 2.0 * math.sqrt(sq_norm)
    if family == Family.GAUSSIAN_R2:  # r² e^(-p1 r²) peaks at r² = 1/p1
        return weight / (p1 * math.e) if p1 > 0 else math.inf
    if family == Family.RATIONAL_QUADRATIC_LOG:  # L e^(-p2 L), L = log(1 + p1 r²) >= 0, peaks at L = 1/p2
        return weight / (p2 * math.e) if p2 > 0 else math.inf
    if family == Family.LINEAR:
        return weight * sq_norm
    if family == Family.POLYNOMIAL:
        base = p1 * sq_norm + abs(p2)
        try:
            return weight * base ** p3
        except OverflowError:
            return math.inf
    return weight


def _check_representable(kernel: Kernel, framed: Kernel, d: int, magnitude: float, factor: float,
                         dtype: torch.dtype) -> float:
    """The largest |value| of `framed` (the kernel in the frame of the data multiplied by factor) on the
    data, after a ValueError unless every parameter and value bound fits the compute dtype."""
    name = "float32" if dtype == torch.float32 else "float64"

    def refuse(what: str):  # the message is built only when needed (a kernel's repr is not free)
        advice = "pass float64 data" if dtype == torch.float32 else "rescale the data and the kernel together"
        return ValueError(f"kernel {kernel!r} on data of magnitude {magnitude:.3g}: {what} {name}'s range; "
                          f"{advice}")

    scaled = magnitude * factor
    largest = 0.0
    for family, weight, p1, p2, p3 in framed.terms(d):
        family = Family(int(family))
        description = _DESCRIPTIONS.get(family)
        if description is not None and (abs(p1) > _LARGEST_PARAMETER[dtype] or (
                family == Family.INVERSE_MULTIQUADRIC and p1 < 1.0 / _LARGEST_PARAMETER[dtype])):
            framed_note = " (with the data rescaled to magnitude about 1)" if factor != 1.0 else ""
            raise refuse(f"its {description} is {p1:.3g}{framed_note}, outside")
        bound = _value_bound(family, weight, p1, p2, p3, scaled * scaled * d)
        if not bound <= _LARGEST_VALUE[dtype]:
            raise refuse(f"its values reach about {bound:.3g}, beyond")
        largest = max(largest, bound)
    return largest


def nan_like(shape, *inputs: torch.Tensor) -> torch.Tensor:
    """A NaN tensor of `shape` in the inputs' dtype and device whose gradient in every input is NaN."""
    anchor = sum(t.sum() for t in inputs) * math.nan
    return anchor.expand(shape) if len(shape) else anchor


def bad_rows(t: torch.Tensor) -> torch.Tensor:
    """(n,) bool: the rows of t (n, d) holding a NaN or an infinity."""
    return ~torch.isfinite(t.detach()).all(dim=1)


def with_bad_rows(points: torch.Tensor, compute: Callable[[torch.Tensor], torch.Tensor], width: int) -> torch.Tensor:
    """compute(points), an (n, width) result with a row per point, for points (n, d) some of whose rows are
    not finite: compute runs on the finite rows alone (so that they see the data they would have seen), and
    the bad rows are NaN, with NaN gradients."""
    bad = bad_rows(points)
    marks = (points * math.nan).sum(1)[:, None].expand(-1, width)  # NaN, and NaN gradients, for bad rows
    good = (~bad).nonzero()[:, 0]
    if good.numel() == 0:
        return marks
    return marks.index_copy(0, good, compute(points[good]))
