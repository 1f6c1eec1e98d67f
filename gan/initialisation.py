"""Weight initialisations of the generators and critics.

"torch":          PyTorch's defaults (Kaiming-uniform weights and biases).
"scaled-mmd-gan": the Scaled-MMD-GAN code's (github.com/MichaelArbel/Scaled-MMD-GAN, `gan/core/snops.py`
                  and the `SNGANDiscriminator` of `architecture.py`): convolution weights N(0, 0.02²)
                  truncated at two standard deviations (TensorFlow's truncated_normal_initializer),
                  transposed convolutions N(0, 0.02²), the generator's input linear layer N(0, 0.01²), the
                  critic's output linear layer N(0, 0.02²), every bias 0, batch norm γ = 1, β = 0.
Applied before any weight constraint, so that spectral estimates start from the initialised weights.
"""
from __future__ import annotations

import torch
from torch import nn

__all__ = ["INITIALISATIONS", "initialise"]

INITIALISATIONS = ("torch", "scaled-mmd-gan")
CONV_STD = 0.02
GENERATOR_LINEAR_STD = 0.01
CRITIC_LINEAR_STD = 0.02


@torch.no_grad()
def initialise(module: nn.Module, scheme: str, role: str) -> nn.Module:
    """Initialise every layer of module (role "generator" or "critic") by `scheme`, in place; returns module."""
    if scheme not in INITIALISATIONS:
        raise ValueError(f"init must be one of {INITIALISATIONS}; got {scheme!r}")
    if role not in ("generator", "critic"):
        raise ValueError(f"role must be 'generator' or 'critic'; got {role!r}")
    if scheme == "torch":
        return module
    linear_std = GENERATOR_LINEAR_STD if role == "generator" else CRITIC_LINEAR_STD
    for layer in module.modules():
        if isinstance(layer, nn.ConvTranspose2d):
            nn.init.normal_(layer.weight, 0.0, CONV_STD)
        elif isinstance(layer, nn.Conv2d):
            nn.init.trunc_normal_(layer.weight, 0.0, CONV_STD, -2 * CONV_STD, 2 * CONV_STD)
        elif isinstance(layer, nn.Linear):
            nn.init.normal_(layer.weight, 0.0, linear_std)
        elif isinstance(layer, nn.modules.batchnorm._BatchNorm):
            nn.init.ones_(layer.weight)
        else:
            continue
        if layer.bias is not None:
            nn.init.zeros_(layer.bias)
    return module
