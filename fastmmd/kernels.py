"""Kernels as small immutable value objects.

Every kernel knows its formula in torch (`gram`, `diag`), its encoding for the compiled backends
(`terms(d)`, the (T, 5) float64 table of csrc/INTERFACE.md), and whether it is translation invariant.
Kernels add (`k1 + k2`) and scale (`0.5 * k`), giving a `KernelSum` of weighted terms:

    >>> Gaussian(bandwidth=[2, 5]) + 0.5 * Linear()
    Gaussian(bandwidth=(2.0, 5.0)) + 0.5 * Linear()

Shapes: `gram(a, b)` with a (n, d), b (m, d) gives (n, m); `diag(a, b)` with a, b (n, d) gives (n,)
(k(a_i, b_i)). Both are differentiable with finite gradients, also where two points coincide.
"""
from __future__ import annotations

import abc
import enum
import math
import numbers
from dataclasses import dataclass, field
from typing import ClassVar, Sequence, Tuple, Union

import numpy as np
import torch

from fastmmd._pairwise import PairGeometry

__all__ = [
    "Family",
    "Kernel",
    "Gaussian",
    "RationalQuadratic",
    "Linear",
    "Polynomial",
    "Laplacian",
    "InverseMultiquadric",
    "Energy",
    "KernelSum",
    "KERNEL_NAMES",
    "get_kernel",
    "resolve_kernel",
]


class Family(enum.IntEnum):
    """Kernel family codes of the compiled backends (the table in csrc/INTERFACE.md)."""

    GAUSSIAN = 0
    RATIONAL_QUADRATIC = 1
    LAPLACIAN = 2
    INVERSE_MULTIQUADRIC = 3
    ENERGY = 4
    LINEAR = 5
    POLYNOMIAL = 6


TRANSLATION_INVARIANT_FAMILIES = frozenset(
    {Family.GAUSSIAN, Family.RATIONAL_QUADRATIC, Family.LAPLACIAN, Family.INVERSE_MULTIQUADRIC}
)

Params = Union[float, Tuple[float, ...]]


# ----------------------------------------------------------------------------------------------------------
# Parameter checking (every error is a ValueError naming the parameter)


def _plain(name: str, value: object) -> object:
    """Tensors and numpy arrays as Python numbers / lists."""
    if isinstance(value, torch.Tensor):
        if value.requires_grad:
            raise ValueError(f"{name} must be a constant; got a tensor that requires grad (detach it)")
        return value.detach().cpu().tolist()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value


def _real(name: str, value: object) -> float:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a real number; got {value!r}")
    out = float(value)
    if not math.isfinite(out):
        raise ValueError(f"{name} must be finite; got {value!r}")
    return out


def _positive(name: str, value: object) -> float:
    out = _real(name, _plain(name, value))
    if out <= 0:
        raise ValueError(f"{name} must be > 0; got {value!r}")
    return out


def _positive_or_sequence(name: str, value: object) -> Params:
    """A positive number, or a non-empty sequence of them (stored as a tuple)."""
    value = _plain(name, value)
    if isinstance(value, (str, bytes)):
        raise ValueError(f"{name} must be a positive number or a sequence of them; got {value!r}")
    if isinstance(value, Sequence):
        if len(value) == 0:
            raise ValueError(f"{name} must not be an empty sequence")
        return tuple(_positive(f"{name}[{i}]", v) for i, v in enumerate(value))
    return _positive(name, value)


def _as_tuple(params: Params) -> Tuple[float, ...]:
    return params if isinstance(params, tuple) else (params,)


def _check_dim(d: object) -> int:
    if isinstance(d, (bool, np.bool_)) or not isinstance(d, numbers.Integral) or d < 1:
        raise ValueError(f"d (the feature dimension) must be a positive integer; got {d!r}")
    return int(d)


def _frame_weight(c: float, power: float) -> float:
    """c**power as a finite float, else a ValueError (the kernel has no representable form in that frame)."""
    try:
        out = c ** power
    except OverflowError:
        out = math.inf
    if not (math.isfinite(out) and out > 0):
        raise ValueError(f"the kernel cannot be written for data scaled by {c:g}: a factor {c:g}^{power:g} "
                         f"is outside float64's range")
    return out


def _row(family: Family, weight: float = 1.0, p1: float = 0.0, p2: float = 0.0, p3: float = 0.0) -> list:
    return [float(family), weight, p1, p2, p3]


# ----------------------------------------------------------------------------------------------------------
# The kernel interface and its algebra


class Kernel(abc.ABC):
    """A positive-definite (or conditionally so, `Energy`) kernel k(a, b) on R^d."""

    translation_invariant: ClassVar[bool] = False

    @abc.abstractmethod
    def _rows(self, d: int) -> list:
        """The rows [family, weight, p1, p2, p3] of this kernel for feature dimension d."""

    @abc.abstractmethod
    def _evaluate(self, geo: PairGeometry) -> torch.Tensor:
        """k over the pairs of `geo`, shaped like its quantities."""

    @abc.abstractmethod
    def _in_frame(self, c: float, d: int) -> Kernel:
        """The kernel k′ with k′(c·a, c·b) = k(a, b) for a, b in R^d (c > 0)."""

    def in_frame(self, c: float, d: int) -> Kernel:
        """The same kernel for data multiplied by c > 0: k′(c·a, c·b) = k(a, b) (exact when c is a power of
        2, up to the rounding of the kernel's parameters). fastmmd computes in such a frame when float32
        cannot hold the data's squared norms (docs/numerics.md)."""
        c = _positive("c", c)
        return self if c == 1.0 else self._in_frame(c, _check_dim(d))

    def terms(self, d: int) -> np.ndarray:
        """The (T, 5) float64 encoding of csrc/INTERFACE.md: rows [family, weight, p1, p2, p3]."""
        return np.asarray(self._rows(_check_dim(d)), dtype=np.float64).reshape(-1, 5)

    def gram(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """The Gram matrix K[i, j] = k(a_i, b_j): a (n, d), b (m, d) -> (n, m), in a's dtype.

        When `b is a`, the diagonal distances are exactly 0 (no cancellation error on the true diagonal).
        """
        return self._evaluate(PairGeometry.all_pairs(a, b))

    def diag(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """k(a_i, b_i) for every row: a, b (n, d) -> (n,)."""
        return self._evaluate(PairGeometry.row_pairs(a, b))

    def _parts(self) -> Tuple[Tuple[float, Kernel], ...]:
        """(weight, base kernel) pairs whose weighted sum is this kernel."""
        return ((1.0, self),)

    def __add__(self, other: object) -> KernelSum:
        if not isinstance(other, Kernel):
            return NotImplemented
        return KernelSum(self._parts() + other._parts())

    def __radd__(self, other: object) -> Kernel:
        # sum([k1, k2]) starts from the integer 0.
        if isinstance(other, numbers.Number) and not isinstance(other, bool) and other == 0:
            return self
        return NotImplemented

    def __mul__(self, weight: object) -> KernelSum:
        if isinstance(weight, (Kernel, str)):
            return NotImplemented
        w = _real("weight", _plain("weight", weight))
        return KernelSum(tuple((w * v, k) for v, k in self._parts()))

    def __rmul__(self, weight: object) -> KernelSum:
        return self.__mul__(weight)


# ----------------------------------------------------------------------------------------------------------
# The kernels


@dataclass(frozen=True)
class Gaussian(Kernel):
    """exp(-|a - b|² / (2σ²)); a sequence of bandwidths σ is the sum of the Gaussians."""

    bandwidth: Params = 1.0
    translation_invariant: ClassVar[bool] = True

    def __post_init__(self):
        object.__setattr__(self, "bandwidth", _positive_or_sequence("bandwidth", self.bandwidth))

    def _rows(self, d):
        # 0.5 / s / s, not 1 / (2 s²): s² can underflow to 0 where the quotient is merely beyond range (inf,
        # which fastmmd._numerics refuses with its reason).
        return [_row(Family.GAUSSIAN, 1.0, 0.5 / s / s) for s in _as_tuple(self.bandwidth)]

    def _evaluate(self, geo):
        return sum(torch.exp(-geo.sq_dist / (2.0 * s * s)) for s in _as_tuple(self.bandwidth))

    def _in_frame(self, c, d):
        return Gaussian(bandwidth=tuple(s * c for s in _as_tuple(self.bandwidth)))


@dataclass(frozen=True)
class RationalQuadratic(Kernel):
    """Σ_α (1 + |a - b|² / (2α·scale²))^(-α); alpha may be a sequence (the sum over α)."""

    alpha: Params = 1.0
    scale: float = 1.0
    translation_invariant: ClassVar[bool] = True

    def __post_init__(self):
        object.__setattr__(self, "alpha", _positive_or_sequence("alpha", self.alpha))
        object.__setattr__(self, "scale", _positive("scale", self.scale))

    def _rows(self, d):
        s = self.scale
        return [_row(Family.RATIONAL_QUADRATIC, 1.0, 0.5 / al / s / s, al) for al in _as_tuple(self.alpha)]

    def _evaluate(self, geo):
        # exp(-α log1p(t)), not (1 + t)^(-α): 1 + t rounds away the digits of a small t that a large α needs.
        s2 = self.scale * self.scale
        return sum(torch.exp(-al * torch.log1p(geo.sq_dist / (2.0 * al * s2))) for al in _as_tuple(self.alpha))

    def _in_frame(self, c, d):
        return RationalQuadratic(alpha=self.alpha, scale=self.scale * c)


@dataclass(frozen=True)
class Laplacian(Kernel):
    """exp(-|a - b| / σ); a sequence of bandwidths σ is the sum. Gradient taken as 0 at a = b."""

    bandwidth: Params = 1.0
    translation_invariant: ClassVar[bool] = True

    def __post_init__(self):
        object.__setattr__(self, "bandwidth", _positive_or_sequence("bandwidth", self.bandwidth))

    def _rows(self, d):
        return [_row(Family.LAPLACIAN, 1.0, 1.0 / s) for s in _as_tuple(self.bandwidth)]

    def _evaluate(self, geo):
        return sum(torch.exp(-geo.dist / s) for s in _as_tuple(self.bandwidth))

    def _in_frame(self, c, d):
        return Laplacian(bandwidth=tuple(s * c for s in _as_tuple(self.bandwidth)))


@dataclass(frozen=True)
class InverseMultiquadric(Kernel):
    """(c² + |a - b|²)^(-β)."""

    c: float = 1.0
    beta: float = 0.5
    translation_invariant: ClassVar[bool] = True

    def __post_init__(self):
        object.__setattr__(self, "c", _positive("c", self.c))
        object.__setattr__(self, "beta", _positive("beta", self.beta))

    def _rows(self, d):
        return [_row(Family.INVERSE_MULTIQUADRIC, 1.0, self.c * self.c, self.beta)]

    def _evaluate(self, geo):
        return (self.c * self.c + geo.sq_dist) ** (-self.beta)

    def _in_frame(self, c, d):
        # (c_k² + r²)^(−β) = c^(2β) · ((c·c_k)² + (c·r)²)^(−β)
        return KernelSum(((_frame_weight(c, 2.0 * self.beta), InverseMultiquadric(c=self.c * c, beta=self.beta)),))


@dataclass(frozen=True)
class Energy(Kernel):
    """|a| + |b| - |a - b| (the distance-induced kernel: MMD² with it is the energy distance).

    The gradient of |v| is taken as 0 at v = 0, so gradients are finite where points coincide.
    """

    def _rows(self, d):
        return [_row(Family.ENERGY)]

    def _evaluate(self, geo):
        return geo.norm_a + geo.norm_b - geo.dist

    def _in_frame(self, c, d):
        return KernelSum(((_frame_weight(c, -1.0), self),))


@dataclass(frozen=True)
class Linear(Kernel):
    """aᵀb."""

    def _rows(self, d):
        return [_row(Family.LINEAR)]

    def _evaluate(self, geo):
        return geo.dot

    def _in_frame(self, c, d):
        return KernelSum(((_frame_weight(c, -2.0), self),))


@dataclass(frozen=True)
class Polynomial(Kernel):
    """(γ·aᵀb + coef0)^degree; gamma None means 1/d (the KID kernel with the defaults)."""

    degree: int = 3
    gamma: Union[float, None] = None
    coef0: float = 1.0

    def __post_init__(self):
        degree = _plain("degree", self.degree)
        if isinstance(degree, (bool, np.bool_)) or not isinstance(degree, numbers.Integral) or degree < 1:
            raise ValueError(f"degree must be a positive integer; got {self.degree!r}")
        object.__setattr__(self, "degree", int(degree))
        if self.gamma is not None:
            object.__setattr__(self, "gamma", _positive("gamma", self.gamma))
        object.__setattr__(self, "coef0", _real("coef0", _plain("coef0", self.coef0)))

    def resolved_gamma(self, d: int) -> float:
        """γ for feature dimension d: `gamma`, or 1/d when it is None."""
        return 1.0 / _check_dim(d) if self.gamma is None else self.gamma

    def _rows(self, d):
        return [_row(Family.POLYNOMIAL, 1.0, self.resolved_gamma(d), self.coef0, float(self.degree))]

    def _evaluate(self, geo):
        return (self.resolved_gamma(geo.dim) * geo.dot + self.coef0) ** self.degree

    def _in_frame(self, c, d):
        return Polynomial(degree=self.degree, gamma=_frame_weight(c, -2.0) * self.resolved_gamma(d),
                          coef0=self.coef0)


@dataclass(frozen=True)
class KernelSum(Kernel):
    """Σ_t weight_t · k_t over (weight, kernel) parts; nested sums are flattened at construction."""

    parts: Tuple[Tuple[float, Kernel], ...] = field(default=())

    def __post_init__(self):
        flat = []
        for part in self.parts:
            if not (isinstance(part, tuple) and len(part) == 2 and isinstance(part[1], Kernel)):
                raise ValueError(f"parts must be (weight, kernel) pairs; got {part!r}")
            weight = _real("weight", _plain("weight", part[0]))
            flat.extend((weight * w, k) for w, k in part[1]._parts())
        if not flat:
            raise ValueError("parts must not be empty")
        object.__setattr__(self, "parts", tuple(flat))

    @property
    def translation_invariant(self) -> bool:  # type: ignore[override]
        return all(k.translation_invariant for _, k in self.parts)

    def _parts(self):
        return self.parts

    def _rows(self, d):
        rows = []
        for w, k in self.parts:
            for row in k._rows(d):
                rows.append([row[0], w * row[1], *row[2:]])
        return rows

    def _evaluate(self, geo):
        return sum(w * k._evaluate(geo) for w, k in self.parts)

    def _in_frame(self, c, d):
        return KernelSum(tuple((w, k._in_frame(c, d)) for w, k in self.parts))

    def __repr__(self) -> str:
        return " + ".join(repr(k) if w == 1.0 else f"{w!r} * {k!r}" for w, k in self.parts)


# ----------------------------------------------------------------------------------------------------------
# Names

_MIX_RQ = RationalQuadratic(alpha=(0.1, 1.0, 10.0))

_NAMED = {
    "gaussian": Gaussian(bandwidth=1.0),
    "rq": RationalQuadratic(alpha=1.0),
    "polynomial": Polynomial(),
    "linear": Linear(),
    "laplacian": Laplacian(bandwidth=1.0),
    "imq": InverseMultiquadric(),
    "energy": Energy(),
    # MMD-GAN presets (Bińkowski et al. 2018)
    "mix_rbf": Gaussian(bandwidth=(2.0, 5.0, 10.0, 20.0, 40.0, 80.0)),
    "mix_rq": _MIX_RQ,
    "mix_rq_1dot": _MIX_RQ + Linear(),
}

KERNEL_NAMES = tuple(_NAMED)


def get_kernel(name_or_kernel: Union[str, Kernel]) -> Kernel:
    """A kernel from its name (see `KERNEL_NAMES`), or the kernel itself when given one."""
    if isinstance(name_or_kernel, Kernel):
        return name_or_kernel
    if not isinstance(name_or_kernel, str):
        raise TypeError(f"kernel must be a fastmmd Kernel or a name; got {type(name_or_kernel).__name__}")
    kernel = _NAMED.get(name_or_kernel.lower())
    if kernel is None:
        valid = ", ".join(repr(n) for n in KERNEL_NAMES)
        raise ValueError(f"unknown kernel {name_or_kernel!r}; valid names: {valid}")
    return kernel


resolve_kernel = get_kernel
