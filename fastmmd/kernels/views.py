"""Kernels that learn: sums of constant kernels on learned views of the points (docs/learned_kernels.md).

    k(a, b) = Σ_t w_t κ_t(V_t(a), V_t(b))

with weights w_t and maps V_t that may depend on tensors requiring grad, and κ_t constant fastmmd kernels.
Every op then runs on the fused backends as it does for a constant kernel, once per term, on the views:
MMD², K·V and the row sums are linear in k, so their derivatives in w_t and V_t (and through V_t in
bandwidths, scales and networks) come from the fused backward passes. The sums of squares the variance
needs are sums of products κ_t κ_s: on one view a product of tables (fastmmd.kernels.products), on two
views, for Gaussians, one Gaussian on the two views side by side (e^(-p|u|²) e^(-q|v|²) = e^(-|(√p u, √q v)|²)).

A kernel whose parameters are tensors that require grad (`Gaussian(bandwidth=log_s.exp())`, a
`RationalQuadratic`'s α and scale, a weight `w * k`) is such a sum. A rational quadratic's scale is the view
a/scale of the kernel of scale 1. A Gaussian's bandwidths and a rational quadratic's α stay in the term's
kernel, with the kernels ∂κ/∂θ beside them (`ParameterTerm`): the ops are linear in κ, so their derivative
in θ is the same op with ∂κ/∂θ, and a mixture of learnable bandwidths is one term on the points (its value,
point gradients and squares in the passes of a constant mixture). `DeepKernel` is Liu et al.'s (2020) deep
kernel in this form.
"""
from __future__ import annotations

import abc
import math
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from fastmmd.kernels.base import Family, Kernel, KernelSum
from fastmmd.kernels.families import (
    Gaussian,
    GaussianBandwidthDerivative,
    RationalQuadratic,
    RationalQuadraticAlphaDerivative,
    _as_tuple,
)
from fastmmd.kernels.products import product_table

__all__ = ["ViewTerm", "ParameterTerm", "ViewKernel", "DeepKernel", "view_terms", "is_view_kernel", "product_term"]

Weight = Union[float, torch.Tensor]


@dataclass(frozen=True)
class ParameterTerm:
    """A learnable number θ inside a term's kernel: value (a 0-dim tensor that requires grad) and derivative
    (the constant kernel ∂κ/∂θ at θ's current value, on the term's views)."""

    value: torch.Tensor
    derivative: Kernel


@dataclass(frozen=True)
class ViewTerm:
    """One term w·κ(V(a), V(b)): weight (a float or a 0-dim tensor), kernel κ (constant, at the current values
    of its parameters), views (V of each sample the op was given, in order, (n_i, d_t) each), key (terms with
    equal keys have the same map V), parameters (the learnable numbers of κ, `ParameterTerm`)."""

    weight: Weight
    kernel: Kernel
    views: Tuple[torch.Tensor, ...]
    key: object
    parameters: Tuple[ParameterTerm, ...] = ()


class ViewKernel(abc.ABC):
    """A kernel Σ_t w_t κ_t(V_t(a), V_t(b)) given by its terms on the samples of an op."""

    @abc.abstractmethod
    def view_terms(self, *samples: torch.Tensor) -> List[ViewTerm]:
        """The terms, with the views of each sample (n_i, d) -> (n_i, d_t)."""


def is_view_kernel(kernel: object) -> bool:
    """Whether `kernel` needs the per-term ops: a ViewKernel, or a Kernel with learnable parameters."""
    return isinstance(kernel, ViewKernel) or (isinstance(kernel, Kernel) and kernel.learnable)


def _scaled(samples: Sequence[torch.Tensor], scale: torch.Tensor) -> Tuple[torch.Tensor, ...]:
    return tuple(s * scale.to(s.dtype) for s in samples)


def _kernel_terms(kernel: Kernel, samples: Sequence[torch.Tensor]) -> List[ViewTerm]:
    """The terms of a Kernel: a learnable rational quadratic's scale as a view, learnable bandwidths and α's
    as ParameterTerms of their term, everything else on the points."""
    if isinstance(kernel, KernelSum):
        out = []
        for (weight, part), live in zip(kernel.parts, kernel._live_weights()):
            w = weight if live is None else live
            out += [ViewTerm(w * t.weight, t.kernel, t.views, t.key, t.parameters)
                    for t in _kernel_terms(part, samples)]
        return out
    tensors = kernel.learnable_tensors()
    if isinstance(kernel, Gaussian) and "bandwidth" in tensors:
        # one term on the points: the mixture in one pass, each σ_t's derivative a pass of ∂κ/∂σ_t (and the
        # products the variance needs stay Gaussians on one view)
        sigma = tensors["bandwidth"].reshape(-1)
        parameters = tuple(ParameterTerm(sigma[t], GaussianBandwidthDerivative(bandwidth=s))
                           for t, s in enumerate(_as_tuple(kernel.bandwidth)))
        return [ViewTerm(1.0, Gaussian(bandwidth=kernel.bandwidth), tuple(samples), "points", parameters)]
    if isinstance(kernel, RationalQuadratic) and tensors:
        return _rational_quadratic_terms(kernel, tensors, samples)
    if tensors:
        raise ValueError(f"learnable parameters {sorted(tensors)} of {type(kernel).__name__} are not supported: "
                         "a Gaussian's bandwidth, a rational quadratic's α and scale and the weights of a sum are")
    return [ViewTerm(1.0, kernel, tuple(samples), "points")]


def _rational_quadratic_terms(kernel: RationalQuadratic, tensors: dict, samples: Sequence[torch.Tensor]
                              ) -> List[ViewTerm]:
    """One term: a learnable scale as the view a/scale, each learnable α a ParameterTerm (as bandwidths)."""
    scale = tensors.get("scale")
    if scale is None:
        views, unit, key = tuple(samples), kernel.scale, "points"
    else:
        views, unit, key = _scaled(samples, 1.0 / scale), 1.0, ("scale", id(scale), 0)
    alpha = tensors.get("alpha")
    parameters = () if alpha is None else tuple(
        ParameterTerm(alpha.reshape(-1)[t], RationalQuadraticAlphaDerivative(alpha=al, scale=unit))
        for t, al in enumerate(_as_tuple(kernel.alpha)))
    return [ViewTerm(1.0, RationalQuadratic(alpha=kernel.alpha, scale=unit), views, key, parameters)]


def view_terms(kernel, *samples: torch.Tensor) -> List[ViewTerm]:
    """The terms of a ViewKernel, a Kernel with learnable parameters, or a constant Kernel (one term)."""
    if isinstance(kernel, ViewKernel):
        return kernel.view_terms(*samples)
    return _kernel_terms(kernel, samples)


def _single_gaussian(table: np.ndarray) -> Optional[Tuple[float, float]]:
    """(weight, p1) of a table of one Gaussian row, else None."""
    if table.shape[0] == 1 and int(table[0, 0]) == Family.GAUSSIAN:
        return float(table[0, 1]), float(table[0, 2])
    return None


def product_term(a: ViewTerm, b: ViewTerm, d_a: int, d_b: int
                 ) -> Tuple[np.ndarray, Tuple[torch.Tensor, ...], Optional[Tuple[float, float]]]:
    """The product κ_a(V_a) κ_b(V_b) as (table, views, None) on the shared view when the two terms have the
    same map, or (Gaussian table, views side by side, (√p_a, √p_b)) for two Gaussians on different maps (the
    pair of factors that multiply each view's columns). ValueError otherwise."""
    table_a, table_b = a.kernel.terms(d_a), b.kernel.terms(d_b)
    if a.key == b.key:
        return product_table(table_a, table_b), a.views, None
    ga, gb = _single_gaussian(table_a), _single_gaussian(table_b)
    if ga is None or gb is None:
        raise ValueError("the variance of a sum of kernels on different views needs each of them to be a single "
                         f"Gaussian (their products are Gaussians on the views side by side); got {a.kernel!r} "
                         f"and {b.kernel!r}")
    factors = (math.sqrt(ga[1]), math.sqrt(gb[1]))
    views = tuple(torch.cat([va * factors[0], vb * factors[1]], dim=1) for va, vb in zip(a.views, b.views))
    table = np.asarray([[float(Family.GAUSSIAN), ga[0] * gb[0], 1.0, 0.0, 0.0]], dtype=np.float64)
    return table, views, factors


class DeepKernel(torch.nn.Module, ViewKernel):
    """Liu et al.'s (ICML 2020) deep kernel k(a, b) = [(1 − ε) κ(φ(a), φ(b)) + ε] q(a, b), κ and q Gaussian:

        κ(u, v) = exp(−|u − v|² / (2σ_φ²)),  q(a, b) = exp(−|a − b|² / (2σ_q²)),  0 < ε < 1.

    Args:
        features: the network φ, an nn.Module (n, d) -> (n, d_φ).
        sigma_phi, sigma_q: the initial bandwidths (> 0); eps: the initial ε in (0, 1).
        learn_eps: whether ε is learned (else fixed at `eps`).
    Parametrisation (the positivity it keeps): σ_φ = exp(log_sigma_phi), σ_q = exp(log_sigma_q),
    ε = sigmoid(eps_logit). Liu et al.'s code writes exp(−D/s) with s = 2σ² (docs/learned_kernels.md).
    As a sum on views: (1 − ε)·exp(−|V₁(a) − V₁(b)|²/2) + ε·exp(−|V₂(a) − V₂(b)|²/2), V₁ = (φ/σ_φ, a/σ_q),
    V₂ = a/σ_q: fused on every backend, differentiable in the network and the three parameters.
    """

    def __init__(self, features: torch.nn.Module, sigma_phi: float, sigma_q: float, eps: float = 0.1,
                 learn_eps: bool = True):
        super().__init__()
        for name, value in (("sigma_phi", sigma_phi), ("sigma_q", sigma_q)):
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a positive number; got {value!r}")
        if not (isinstance(eps, (int, float)) and 0 < eps < 1):
            raise ValueError(f"eps must be in (0, 1); got {eps!r}")
        if not isinstance(features, torch.nn.Module):
            raise TypeError(f"features must be an nn.Module; got {type(features).__name__}")
        self.features = features
        self.log_sigma_phi = torch.nn.Parameter(torch.tensor(math.log(sigma_phi), dtype=torch.float64))
        self.log_sigma_q = torch.nn.Parameter(torch.tensor(math.log(sigma_q), dtype=torch.float64))
        logit = torch.tensor(math.log(eps) - math.log1p(-eps), dtype=torch.float64)
        self.eps_logit = torch.nn.Parameter(logit, requires_grad=learn_eps)

    @property
    def eps(self) -> torch.Tensor:
        return torch.sigmoid(self.eps_logit)

    def view_terms(self, *samples: torch.Tensor) -> List[ViewTerm]:
        sigma_phi, sigma_q, eps = self.log_sigma_phi.exp(), self.log_sigma_q.exp(), self.eps
        joint, inputs = [], []
        for s in samples:
            phi = self.features(s)
            if phi.dim() != 2 or phi.shape[0] != s.shape[0]:
                raise ValueError(f"features must map (n, d) to (n, d_phi); got {tuple(phi.shape)} for "
                                 f"{tuple(s.shape)}")
            scaled = s / sigma_q.to(s.dtype)
            joint.append(torch.cat([phi.to(s.dtype) / sigma_phi.to(s.dtype), scaled], dim=1))
            inputs.append(scaled)
        unit = Gaussian(bandwidth=1.0)
        return [ViewTerm(1.0 - eps, unit, tuple(joint), ("deep", id(self), "joint")),
                ViewTerm(eps, unit, tuple(inputs), ("deep", id(self), "inputs"))]

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """The Gram matrix K[i, j] = k(a_i, b_j), (n, m): materialised, for checks and small samples."""
        return sum(t.weight * t.kernel.gram(t.views[0], t.views[1]) for t in self.view_terms(a, b))
