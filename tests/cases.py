"""The kernel cases the correctness tests share (each a fastmmd kernel and the brute-force terms of
tests/brute_force.py built from the same numbers), and the comparisons with the brute force under the
tolerances of tests/tolerances.py."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

import fastmmd
from brute_force import Term


@dataclass(frozen=True)
class KernelCase:
    name: str
    make: Callable[[int], object]  # d -> fastmmd kernel (or name)
    terms: Callable[[int], list]  # d -> brute-force Terms
    characteristic: bool = False

    def __repr__(self):
        return self.name


def _s(d):
    """Bandwidth on the scale of the distances between points of N(0, I_d): |x - x'| ≈ sqrt(2d)."""
    return math.sqrt(d)


CASES = [
    KernelCase(
        "gaussian",
        lambda d: fastmmd.Gaussian(bandwidth=_s(d)),
        lambda d: [Term("gaussian", 1.0, {"sigma": _s(d)})],
        characteristic=True,
    ),
    KernelCase(
        "gaussian_mix",
        lambda d: fastmmd.Gaussian(bandwidth=[0.5 * _s(d), _s(d), 2.0 * _s(d)]),
        lambda d: [Term("gaussian", 1.0, {"sigma": f * _s(d)}) for f in (0.5, 1.0, 2.0)],
        characteristic=True,
    ),
    KernelCase(
        "rq_mix",
        lambda d: fastmmd.RationalQuadratic(alpha=[0.5, 2.0], scale=_s(d)),
        lambda d: [Term("rq", 1.0, {"alpha": a, "scale": _s(d)}) for a in (0.5, 2.0)],
        characteristic=True,
    ),
    KernelCase(
        "rq_1dot",  # mix_rq_1dot-like: the true diagonal is not constant
        lambda d: fastmmd.RationalQuadratic(alpha=[0.2, 1.0, 5.0], scale=_s(d)) + fastmmd.Linear(),
        lambda d: [Term("rq", 1.0, {"alpha": a, "scale": _s(d)}) for a in (0.2, 1.0, 5.0)] + [Term("linear")],
    ),
    KernelCase(  # not a kernel: a Gaussian's derivative in its bandwidth, r² e^(-p r²)
        "gaussian_bandwidth_derivative",
        lambda d: fastmmd.kernels.GaussianBandwidthDerivative(bandwidth=_s(d)),
        lambda d: [Term("gaussian_dsigma", 1.0, {"sigma": _s(d)})],
    ),
    KernelCase(  # not a kernel: a rational quadratic's derivative in α, with the log family in it
        "rq_alpha_derivative",
        lambda d: fastmmd.kernels.RationalQuadraticAlphaDerivative(alpha=1.5, scale=0.5 * _s(d)),
        lambda d: [Term("rq_dalpha", 1.0, {"alpha": 1.5, "scale": 0.5 * _s(d)})],
    ),
    KernelCase("linear", lambda d: fastmmd.Linear(), lambda d: [Term("linear")]),
    KernelCase(
        "polynomial",
        lambda d: fastmmd.Polynomial(),
        lambda d: [Term("polynomial", 1.0, {"degree": 3, "gamma": None, "coef0": 1.0})],
    ),
    KernelCase(
        "polynomial_2",
        lambda d: fastmmd.Polynomial(degree=2, gamma=0.5 / d, coef0=0.5),
        lambda d: [Term("polynomial", 1.0, {"degree": 2, "gamma": 0.5 / d, "coef0": 0.5})],
    ),
    KernelCase(
        "laplacian",
        lambda d: fastmmd.Laplacian(bandwidth=1.5 * _s(d)),
        lambda d: [Term("laplacian", 1.0, {"sigma": 1.5 * _s(d)})],
        characteristic=True,
    ),
    KernelCase(
        "imq",
        lambda d: fastmmd.InverseMultiquadric(c=_s(d), beta=0.5),
        lambda d: [Term("imq", 1.0, {"c": _s(d), "beta": 0.5})],
        characteristic=True,
    ),
    KernelCase("energy", lambda d: fastmmd.Energy(), lambda d: [Term("energy")], characteristic=True),
    KernelCase(
        "weighted_sum",
        lambda d: 0.5 * fastmmd.Gaussian(bandwidth=_s(d))
        + 2.0 * fastmmd.Laplacian(bandwidth=2.0 * _s(d))
        + fastmmd.InverseMultiquadric(c=_s(d), beta=1.5),
        lambda d: [
            Term("gaussian", 0.5, {"sigma": _s(d)}),
            Term("laplacian", 2.0, {"sigma": 2.0 * _s(d)}),
            Term("imq", 1.0, {"c": _s(d), "beta": 1.5}),
        ],
        characteristic=True,
    ),
]
CASE_BY_NAME = {c.name: c for c in CASES}


def assert_value_close(actual, expected, scale, tol, what):
    assert math.isfinite(scale)
    if scale == 0.0:
        # All three terms vanish (the energy kernel in d = 1 is 0 for points of opposite signs):
        # kernel values are measured in units of 1.
        scale = 1.0
    err = abs(actual - expected)
    assert math.isfinite(actual), f"{what}: non-finite result {actual!r}"
    assert err <= tol * scale, (
        f"{what}: |{actual!r} - {expected!r}| = {err:.3e} > {tol:.0e} * scale {scale:.3e} (relative {err / scale:.2e})"
    )


def assert_grad_close(actual, expected, scale, tol, what):
    assert math.isfinite(scale)
    assert np.all(np.isfinite(actual)), f"{what}: non-finite gradient entries"
    if scale == 0.0:
        # Every term's gradient vanishes identically (the energy kernel in d = 1, where
        # ∇_a k = sign(a) - sign(a - b), on some samples): the per-pair gradients are O(1) unit vectors,
        # so the error is measured in those units.
        scale = 1.0
    err = float(np.max(np.abs(actual - expected)))
    assert err <= tol * scale, (
        f"{what}: max |g - g_ref| = {err:.3e} > {tol:.0e} * scale {scale:.3e} (relative {err / scale:.2e})"
    )
