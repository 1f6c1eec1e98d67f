"""The generators and critics: shapes, no batch norm in critics (each output depends on its own input only,
as SMMD's Jacobian term needs), and the spectral constraints' singular values."""
from __future__ import annotations

import pytest
import torch

from gan.networks import NetworkConfig, build_critic, build_generator
from gan.spectral import ScaledSpectralNorm, constrain


@pytest.mark.parametrize("architecture", ["dcgan", "resnet"])
@pytest.mark.parametrize("channels", [1, 3])
def test_shapes(architecture, channels):
    config = NetworkConfig(architecture=architecture, channels=channels, width=4, z_dim=7, critic_out=5)
    images = build_generator(config)(torch.rand(3, 7) * 2 - 1)
    assert images.shape == (3, channels, 32, 32) and images.abs().max() <= 1
    assert build_critic(config)(images).shape == (3, 5)


@pytest.mark.parametrize("architecture", ["dcgan", "resnet"])
@pytest.mark.parametrize("constraint", ["none", "spectral", "spectral-scaled"])
def test_critic_outputs_depend_on_their_own_inputs_only(architecture, constraint):
    torch.manual_seed(0)
    critic = build_critic(NetworkConfig(architecture=architecture, channels=1, width=4, constraint=constraint))
    assert not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in critic.modules())
    critic.eval()
    batch = torch.randn(4, 1, 32, 32)
    alone = critic(batch[:1])
    changed = batch.clone()
    changed[1:] = torch.randn(3, 1, 32, 32)
    torch.testing.assert_close(critic(changed)[:1], alone)


def _top_singular_value(weight):
    return torch.linalg.matrix_norm(weight.detach().flatten(1), ord=2)


def test_spectral_normalisation_bounds_every_layer():
    torch.manual_seed(0)
    critic = build_critic(NetworkConfig(channels=1, width=4, constraint="spectral"))
    for _ in range(30):  # power iterations converge over training steps
        critic(torch.randn(2, 1, 32, 32))
    layers = [m for m in critic.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    assert len(layers) == 8
    for layer in layers:
        assert _top_singular_value(layer.weight) == pytest.approx(1.0, rel=1e-2)


def test_scaled_spectral_parametrization_has_a_learnable_scale():
    torch.manual_seed(0)
    layer = constrain(torch.nn.Sequential(torch.nn.Linear(6, 4)), "spectral-scaled")[0]
    parametrization = layer.parametrizations.weight[0]
    assert isinstance(parametrization, ScaledSpectralNorm)
    with torch.no_grad():
        parametrization.scale.fill_(2.5)
    for _ in range(50):
        layer(torch.randn(1, 6))
    assert _top_singular_value(layer.weight) == pytest.approx(2.5, rel=1e-4)
    layer(torch.randn(3, 6)).sum().backward()
    assert parametrization.scale.grad is not None and parametrization.scale.grad.abs() > 0
    u = parametrization.u.clone()
    layer.eval()
    layer(torch.randn(1, 6))
    assert torch.equal(parametrization.u, u)  # no power iteration outside training


def test_bad_configs():
    with pytest.raises(ValueError, match="architecture"):
        build_generator(NetworkConfig(architecture="vit"))
    with pytest.raises(ValueError, match="width"):
        build_critic(NetworkConfig(width=0))
    with pytest.raises(ValueError, match="constraint"):
        build_critic(NetworkConfig(constraint="clip"))
