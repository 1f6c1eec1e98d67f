"""Weight constraints of the critics: spectral normalisation (Miyato et al. 2018) and the spectral
parametrization with a learnable scale of SN-SMMD-GAN (Arbel et al. 2018; docs/gan_recipes.md).

Both divide a weight W by σ̂(W), the largest singular value of W viewed as (out, in·kh·kw), estimated by
power iteration with u, v held without gradient:
    "spectral":        W̄ = W / σ̂(W)          (torch's own parametrization: one iteration on every forward
                                              pass in training mode, as SN-GAN's code)
    "spectral-scaled": W̄ = s · W / σ̂(W)      (s a learnable scalar per layer, initialised to 1; one iteration
                                              per training update, `power_iteration`, as the Scaled-MMD-GAN
                                              code, which iterates in the real batch's pass and stores u)
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import spectral_norm

__all__ = ["CONSTRAINTS", "ScaledSpectralNorm", "constrain", "power_iteration"]

CONSTRAINTS = ("none", "spectral", "spectral-scaled")


class ScaledSpectralNorm(nn.Module):
    """Parametrization W ↦ s·W/σ̂(W), σ̂ = uᵀ M v for M = W viewed as (out, rest) and the stored unit vectors
    u (out,) and v (rest,); forward passes read them, `iterate` advances them by one power iteration
    (v ← M ᵀu / ‖·‖, u ← M v / ‖·‖, the reference's order, so σ̂ = ‖M v‖)."""

    def __init__(self, weight: torch.Tensor, eps: float = 1e-12):
        super().__init__()
        matrix = weight.detach().flatten(1)
        u = nn.functional.normalize(torch.randn(matrix.shape[0], dtype=weight.dtype, device=weight.device),
                                    dim=0, eps=eps)
        self.register_buffer("u", u)
        self.register_buffer("v", nn.functional.normalize(matrix.t() @ u, dim=0, eps=eps))
        self.scale = nn.Parameter(torch.ones((), dtype=weight.dtype, device=weight.device))
        self.eps = eps

    @torch.no_grad()
    def iterate(self, weight: torch.Tensor) -> None:
        matrix = weight.flatten(1)
        self.v.copy_(nn.functional.normalize(matrix.t() @ self.u, dim=0, eps=self.eps))
        self.u.copy_(nn.functional.normalize(matrix @ self.v, dim=0, eps=self.eps))

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        sigma = torch.dot(self.u, weight.flatten(1) @ self.v)
        return self.scale * weight / sigma


def constrain(module: nn.Module, constraint: str) -> nn.Module:
    """Apply `constraint` ("none", "spectral", "spectral-scaled") to every Conv2d and Linear weight of
    module, in place; returns module. With "spectral-scaled", call `power_iteration(module)` once per
    training update."""
    if constraint not in CONSTRAINTS:
        raise ValueError(f"constraint must be one of {CONSTRAINTS}; got {constraint!r}")
    if constraint == "none":
        return module
    for layer in list(module.modules()):
        if isinstance(layer, (nn.Conv2d, nn.Linear)):
            if constraint == "spectral":
                spectral_norm(layer, n_power_iterations=1)
            else:
                parametrize.register_parametrization(layer, "weight", ScaledSpectralNorm(layer.weight))
    return module


def power_iteration(module: nn.Module) -> None:
    """One power iteration in every "spectral-scaled" layer of module (a no-op for other layers)."""
    for layer in module.modules():
        if parametrize.is_parametrized(layer, "weight"):
            for parametrization in layer.parametrizations.weight:
                if isinstance(parametrization, ScaledSpectralNorm):
                    parametrization.iterate(layer.parametrizations.weight.original)
