"""Weight constraints of the critics: spectral normalisation (Miyato et al. 2018) and the spectral
parametrization with a learnable scale of SN-SMMD-GAN (REFERENCES.md §3).

Both divide a weight W by σ̂(W), the largest singular value of W viewed as (out, in·kh·kw), estimated by one
power iteration per training forward pass with u, v held without gradient:
    "spectral":        W̄ = W / σ̂(W)          (torch's own parametrization)
    "spectral-scaled": W̄ = s · W / σ̂(W)      (s a learnable scalar per layer, initialised to 1)
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import spectral_norm

__all__ = ["CONSTRAINTS", "ScaledSpectralNorm", "constrain"]

CONSTRAINTS = ("none", "spectral", "spectral-scaled")


class ScaledSpectralNorm(nn.Module):
    """Parametrization W ↦ s·W/σ̂(W) for a weight of shape (out, ...); u (out,) is a buffer, updated by one
    power iteration on each forward in training mode; in eval mode the stored u is used as it is."""

    def __init__(self, weight: torch.Tensor, eps: float = 1e-12):
        super().__init__()
        matrix = weight.detach().flatten(1)
        u = torch.randn(matrix.shape[0], dtype=weight.dtype, device=weight.device)
        self.register_buffer("u", nn.functional.normalize(u, dim=0, eps=eps))
        self.scale = nn.Parameter(torch.ones((), dtype=weight.dtype, device=weight.device))
        self.eps = eps

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        matrix = weight.flatten(1)
        with torch.no_grad():
            u = self.u
            v = nn.functional.normalize(matrix.t() @ u, dim=0, eps=self.eps)
            if self.training:
                u = nn.functional.normalize(matrix @ v, dim=0, eps=self.eps)
                self.u.copy_(u)
                v = nn.functional.normalize(matrix.t() @ u, dim=0, eps=self.eps)
        sigma = torch.dot(u, matrix @ v)
        return self.scale * weight / sigma


def constrain(module: nn.Module, constraint: str) -> nn.Module:
    """Apply `constraint` ("none", "spectral", "spectral-scaled") to every Conv2d and Linear weight of
    module, in place; returns module."""
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
