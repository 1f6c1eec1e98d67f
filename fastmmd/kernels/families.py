"""The kernel families, each in one place (docs/kernels.md): its parameters and their checks, its encoding
as rows [family, weight, p1, p2, p3] of the table the backends read (csrc/INTERFACE.md), its form for
rescaled data (`_in_frame`), and its `FamilyRules`: the value of a row in torch (what `Kernel.gram` and
the reference backend evaluate; csrc/kernel_terms.h and fastmmd/backends/_triton/terms.py are its compiled
forms, tested against it), the derivative kernels of a row, and its values at a = b for the scaled MMD.
"""
from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import ClassVar, Union

import numpy as np
import torch

from fastmmd.kernels.base import (
    Family,
    FamilyRules,
    Kernel,
    KernelSum,
    Params,
    _as_tuple,
    _check_dim,
    _frame_weight,
    _learnable_tensor,
    _plain,
    _positive,
    _positive_or_sequence,
    _real,
    _row,
    is_learnable,
    register_rules,
)

__all__ = ["Gaussian", "GaussianBandwidthDerivative", "RationalQuadratic", "RationalQuadraticAlphaDerivative",
           "Laplacian", "InverseMultiquadric", "Energy", "Linear", "Polynomial"]


def _keep_learnable(kernel: Kernel, name: str, vector: bool = True) -> None:
    """A parameter given as a tensor that requires grad: kept (checked) in kernel._tensors, and its current
    values put in its field for the table (docs/learned_kernels.md)."""
    value = getattr(kernel, name)
    if not is_learnable(value):
        return
    value = _learnable_tensor(name, value)
    if not vector and value.dim() != 0:
        raise ValueError(f"{name} must be a 0-dim tensor; got shape {tuple(value.shape)}")
    tensors = dict(getattr(kernel, "_tensors", None) or {})
    tensors[name] = value
    object.__setattr__(kernel, "_tensors", tensors)
    values = value.detach().cpu().double()
    object.__setattr__(kernel, name, float(values) if value.dim() == 0 else tuple(values.tolist()))


def _constant(weight: float) -> list:
    """The constant `weight` as a row: (0·aᵀb + 1)^1."""
    return _row(Family.POLYNOMIAL, weight, 0.0, 1.0, 1.0)


@dataclass(frozen=True)
class Gaussian(Kernel):
    """exp(-|a - b|² / (2σ²)); a sequence of bandwidths σ is the sum of the Gaussians."""

    bandwidth: Params = 1.0
    translation_invariant: ClassVar[bool] = True

    def __post_init__(self):
        _keep_learnable(self, "bandwidth")
        object.__setattr__(self, "bandwidth", _positive_or_sequence("bandwidth", self.bandwidth))

    def _rows(self, d):
        return [_row(Family.GAUSSIAN, 1.0, _gaussian_p1(s)) for s in _as_tuple(self.bandwidth)]

    def _in_frame(self, c, d):
        return Gaussian(bandwidth=tuple(s * c for s in _as_tuple(self.bandwidth)))

    # w·exp(-p1 r²): dk/dr² = -w·p1·exp(-p1 r²), a Gaussian; g(0) = w, g′(0) = -w·p1
    rules: ClassVar[FamilyRules] = register_rules(FamilyRules(
        Family.GAUSSIAN,
        value=lambda geo, w, p1, p2, p3: w * torch.exp(-p1 * geo.sq_dist),
        derivative=lambda w, p1, p2, p3: ([_row(Family.GAUSSIAN, -w * p1, p1)], []),
        at_zero=lambda w, p1, p2, p3: (w, -w * p1),
    ))


def _gaussian_p1(bandwidth: float) -> float:
    """p1 = 1 / (2σ²) of a Gaussian's row as 0.5 / σ / σ: σ² can underflow to 0 where the quotient is merely
    beyond range (inf, which fastmmd.ops.numerics refuses with its reason); one way everywhere, since
    products of rows need equal p1's to the bit."""
    return 0.5 / bandwidth / bandwidth


@dataclass(frozen=True)
class GaussianBandwidthDerivative(Kernel):
    """∂/∂σ of one Gaussian exp(−|a − b|²/(2σ²)), times `scale`: scale·(|a − b|²/σ³)·exp(−|a − b|²/(2σ²)).

    Not a kernel: the derivative the ops of a learnable bandwidth evaluate (docs/learned_kernels.md).
    """

    bandwidth: float = 1.0
    scale: float = 1.0
    translation_invariant: ClassVar[bool] = True

    def __post_init__(self):
        object.__setattr__(self, "bandwidth", _positive("bandwidth", self.bandwidth))
        object.__setattr__(self, "scale", _positive("scale", self.scale))

    def _rows(self, d):
        s = self.bandwidth
        return [_row(Family.GAUSSIAN_R2, self.scale / s / s / s, _gaussian_p1(s))]

    def _in_frame(self, c, d):
        # r'² / σ'³ = (c² r²) / (c σ)³ = r² / (c σ³): the scale takes the factor c back
        return GaussianBandwidthDerivative(bandwidth=self.bandwidth * c, scale=self.scale * c)


# w·r²·e^(-p1 r²): dk/dr² = w·e^(-p1 r²) − w·p1·r²·e^(-p1 r²), a Gaussian and a term of this family;
# g(0) = 0, g′(0) = w
register_rules(FamilyRules(
    Family.GAUSSIAN_R2,
    value=lambda geo, w, p1, p2, p3: w * geo.sq_dist * torch.exp(-p1 * geo.sq_dist),
    derivative=lambda w, p1, p2, p3: ([_row(Family.GAUSSIAN, w, p1), _row(Family.GAUSSIAN_R2, -w * p1, p1)], []),
    at_zero=lambda w, p1, p2, p3: (0.0, w),
))


def _rq_p1(alpha: float, scale: float) -> float:
    """p1 = 1 / (2α·scale²) of a rational quadratic's row, computed one way everywhere (products of rows
    need equal p1's to the bit)."""
    return 0.5 / alpha / scale / scale


@dataclass(frozen=True)
class RationalQuadratic(Kernel):
    """Σ_α (1 + |a - b|² / (2α·scale²))^(-α); alpha may be a sequence (the sum over α)."""

    alpha: Params = 1.0
    scale: float = 1.0
    translation_invariant: ClassVar[bool] = True

    def __post_init__(self):
        _keep_learnable(self, "alpha")
        object.__setattr__(self, "alpha", _positive_or_sequence("alpha", self.alpha))
        _keep_learnable(self, "scale", vector=False)
        object.__setattr__(self, "scale", _positive("scale", self.scale))

    def _rows(self, d):
        return [_row(Family.RATIONAL_QUADRATIC, 1.0, _rq_p1(al, self.scale), al) for al in _as_tuple(self.alpha)]

    def _in_frame(self, c, d):
        return RationalQuadratic(alpha=self.alpha, scale=self.scale * c)

    # w·(1 + p1 r²)^-p2, as exp(-p2·log1p(p1 r²)) (1 + p1 r² rounds away the digits a large α needs):
    # dk/dr² = -w·p1·p2·(1 + p1 r²)^-(p2 + 1), a rational quadratic; g(0) = w, g′(0) = -w·p1·p2
    rules: ClassVar[FamilyRules] = register_rules(FamilyRules(
        Family.RATIONAL_QUADRATIC,
        value=lambda geo, w, p1, p2, p3: w * torch.exp(-p2 * torch.log1p(p1 * geo.sq_dist)),
        derivative=lambda w, p1, p2, p3: ([_row(Family.RATIONAL_QUADRATIC, -w * p1 * p2, p1, p2 + 1.0)], []),
        at_zero=lambda w, p1, p2, p3: (w, -w * p1 * p2),
    ))


@dataclass(frozen=True)
class RationalQuadraticAlphaDerivative(Kernel):
    """∂/∂α of one rational quadratic (1 + u)^(-α), u = |a - b|² / (2α·scale²), p1 held at 1 / (2α·scale²):

        (1 + u)^(-α) [u / (1 + u) − log(1 + u)] = (1 + u)^(-α) − (1 + u)^(-(α + 1)) − log(1 + u)(1 + u)^(-α).

    Not a kernel (it is negative): the derivative the ops of a learnable α evaluate (docs/learned_kernels.md).
    """

    alpha: float = 1.0
    scale: float = 1.0
    translation_invariant: ClassVar[bool] = True

    def __post_init__(self):
        object.__setattr__(self, "alpha", _positive("alpha", self.alpha))
        object.__setattr__(self, "scale", _positive("scale", self.scale))

    def _rows(self, d):
        p1, al = _rq_p1(self.alpha, self.scale), self.alpha
        return [_row(Family.RATIONAL_QUADRATIC, 1.0, p1, al), _row(Family.RATIONAL_QUADRATIC, -1.0, p1, al + 1.0),
                _row(Family.RATIONAL_QUADRATIC_LOG, -1.0, p1, al)]

    def _in_frame(self, c, d):
        return RationalQuadraticAlphaDerivative(alpha=self.alpha, scale=self.scale * c)


def _rq_log_value(geo, w, p1, p2):
    log_base = torch.log1p(p1 * geo.sq_dist)
    return w * log_base * torch.exp(-p2 * log_base)


# w·L·e^(-p2·L), L = log(1 + p1 r²): dk/dr² = w·p1·(1 + p1 r²)^-(p2 + 1) − w·p1·p2·L·(1 + p1 r²)^-(p2 + 1),
# a rational quadratic and a term of this family; g(0) = 0, g′(0) = w·p1
register_rules(FamilyRules(
    Family.RATIONAL_QUADRATIC_LOG,
    value=lambda geo, w, p1, p2, p3: _rq_log_value(geo, w, p1, p2),
    derivative=lambda w, p1, p2, p3: ([_row(Family.RATIONAL_QUADRATIC, w * p1, p1, p2 + 1.0),
                                       _row(Family.RATIONAL_QUADRATIC_LOG, -w * p1 * p2, p1, p2 + 1.0)], []),
    at_zero=lambda w, p1, p2, p3: (0.0, w * p1),
))


@dataclass(frozen=True)
class Laplacian(Kernel):
    """exp(-|a - b| / σ); a sequence of bandwidths σ is the sum. Gradient taken as 0 at a = b."""

    bandwidth: Params = 1.0
    translation_invariant: ClassVar[bool] = True

    def __post_init__(self):
        object.__setattr__(self, "bandwidth", _positive_or_sequence("bandwidth", self.bandwidth))

    def _rows(self, d):
        return [_row(Family.LAPLACIAN, 1.0, 1.0 / s) for s in _as_tuple(self.bandwidth)]

    def _in_frame(self, c, d):
        return Laplacian(bandwidth=tuple(s * c for s in _as_tuple(self.bandwidth)))

    # w·exp(-p1 |a - b|): not smooth at a = b (no derivative kernels, no scaled MMD)
    rules: ClassVar[FamilyRules] = register_rules(FamilyRules(
        Family.LAPLACIAN,
        value=lambda geo, w, p1, p2, p3: w * torch.exp(-p1 * geo.dist),
    ))


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

    def _in_frame(self, c, d):
        # (c_k² + r²)^(−β) = c^(2β) · ((c·c_k)² + (c·r)²)^(−β)
        return KernelSum(((_frame_weight(c, 2.0 * self.beta), InverseMultiquadric(c=self.c * c, beta=self.beta)),))

    # w·(p1 + r²)^-p2: dk/dr² = -w·p2·(p1 + r²)^-(p2 + 1), an inverse multiquadric;
    # g(0) = w·p1^-p2, g′(0) = -w·p2·p1^-(p2 + 1)
    rules: ClassVar[FamilyRules] = register_rules(FamilyRules(
        Family.INVERSE_MULTIQUADRIC,
        value=lambda geo, w, p1, p2, p3: w * (p1 + geo.sq_dist) ** (-p2),
        derivative=lambda w, p1, p2, p3: ([_row(Family.INVERSE_MULTIQUADRIC, -w * p2, p1, p2 + 1.0)], []),
        at_zero=lambda w, p1, p2, p3: (w * p1 ** (-p2), -w * p2 * p1 ** (-p2 - 1.0)),
    ))


@dataclass(frozen=True)
class Energy(Kernel):
    """|a| + |b| - |a - b| (the distance-induced kernel: MMD² with it is the energy distance).

    The gradient of |v| is taken as 0 at v = 0, so gradients are finite where points coincide.
    """

    def _rows(self, d):
        return [_row(Family.ENERGY)]

    def _in_frame(self, c, d):
        return KernelSum(((_frame_weight(c, -1.0), self),))

    # w·(|a| + |b| - |a - b|): not smooth at a = b
    rules: ClassVar[FamilyRules] = register_rules(FamilyRules(
        Family.ENERGY,
        value=lambda geo, w, p1, p2, p3: w * (geo.norm_a + geo.norm_b - geo.dist),
    ))


@dataclass(frozen=True)
class Linear(Kernel):
    """aᵀb."""

    def _rows(self, d):
        return [_row(Family.LINEAR)]

    def _in_frame(self, c, d):
        return KernelSum(((_frame_weight(c, -2.0), self),))

    # w·aᵀb: dk/d(aᵀb) = w, a constant; along aᵀb = t: f = w·t, f′ = w, f″ = 0
    rules: ClassVar[FamilyRules] = register_rules(FamilyRules(
        Family.LINEAR,
        value=lambda geo, w, p1, p2, p3: w * geo.dot,
        derivative=lambda w, p1, p2, p3: ([], [_constant(w)]),
        along_dot=lambda w, p1, p2, p3, t: (w * t, torch.full_like(t, w), torch.zeros_like(t)),
    ))


def _polynomial_derivative(w: float, p1: float, p2: float, degree: int) -> list:
    """dk/d(aᵀb) of w·(p1 aᵀb + p2)^degree: w·degree·p1·(p1 aᵀb + p2)^(degree - 1), a constant for degree 1."""
    if degree == 1:
        return _constant(w * p1)
    return _row(Family.POLYNOMIAL, w * degree * p1, p1, p2, float(degree - 1))


def _polynomial_along_dot(w: float, p1: float, p2: float, degree: int, t: torch.Tensor):
    """(f, f′, f″) of f(t) = w·(p1 t + p2)^degree."""
    base = p1 * t + p2
    f1 = w * degree * p1 * base ** (degree - 1)
    f2 = w * degree * (degree - 1) * p1 * p1 * base ** (degree - 2) if degree >= 2 else torch.zeros_like(t)
    return w * base ** degree, f1, f2


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

    def _in_frame(self, c, d):
        return Polynomial(degree=self.degree, gamma=_frame_weight(c, -2.0) * self.resolved_gamma(d),
                          coef0=self.coef0)

    # w·(p1 aᵀb + p2)^p3, p3 a positive integer
    rules: ClassVar[FamilyRules] = register_rules(FamilyRules(
        Family.POLYNOMIAL,
        value=lambda geo, w, p1, p2, p3: w * (p1 * geo.dot + p2) ** int(p3),
        derivative=lambda w, p1, p2, p3: ([], [_polynomial_derivative(w, p1, p2, int(p3))]),
        along_dot=lambda w, p1, p2, p3, t: _polynomial_along_dot(w, p1, p2, int(p3), t),
    ))
