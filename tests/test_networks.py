"""The generators and critics: shapes, no batch norm in critics (each output depends on its own input only,
as SMMD's Jacobian term needs), and the spectral constraints' singular values."""
from __future__ import annotations

import pytest
import torch

from gan.initialisation import initialise
from gan.networks import NetworkConfig, build_critic, build_generator
from gan.spectral import ScaledSpectralNorm, constrain, power_iteration


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
        power_iteration(layer)
    assert _top_singular_value(layer.weight) == pytest.approx(2.5, rel=1e-4)
    layer(torch.randn(3, 6)).sum().backward()
    assert parametrization.scale.grad is not None and parametrization.scale.grad.abs() > 0


def test_scaled_spectral_estimate_moves_once_per_update_as_the_reference():
    """Forward passes (real, fake, any number) read u and v; power_iteration advances them by the reference's
    step v = normalise(Mᵀu), u = normalise(M v), after which σ̂ = ‖M v‖."""
    torch.manual_seed(1)
    critic = build_critic(NetworkConfig(channels=1, width=2, constraint="spectral-scaled"))
    layer = critic.head
    parametrization = layer.parametrizations.weight[0]
    matrix = layer.parametrizations.weight.original.detach().flatten(1)
    u0 = parametrization.u.clone()
    images = torch.randn(2, 1, 32, 32)
    first = critic(images)
    critic(torch.randn(2, 1, 32, 32))
    assert torch.equal(parametrization.u, u0) and torch.equal(critic(images), first)
    power_iteration(critic)
    v = torch.nn.functional.normalize(matrix.t() @ u0, dim=0)
    u = torch.nn.functional.normalize(matrix @ v, dim=0)
    torch.testing.assert_close(parametrization.u, u)
    torch.testing.assert_close(parametrization.v, v)
    torch.testing.assert_close(layer.weight, matrix / (matrix @ v).norm())
    assert not torch.equal(critic(images), first)


def test_reference_initialisation():
    torch.manual_seed(2)
    config = NetworkConfig(channels=3, width=16, init="scaled-mmd-gan")
    generator, critic = build_generator(config), build_critic(config)
    convs = [m for m in critic.modules() if isinstance(m, torch.nn.Conv2d)]
    weights = torch.cat([m.weight.flatten() for m in convs])
    assert weights.abs().max() <= 0.04  # truncated at two standard deviations
    assert weights.std().item() == pytest.approx(0.02 * 0.8796, rel=0.03)  # std of N(0, 1) cut at ±2
    assert critic.head.weight.std().item() == pytest.approx(0.02, rel=0.1)
    assert generator.project[0].weight.std().item() == pytest.approx(0.01, rel=0.05)
    transposed = torch.cat([m.weight.flatten() for m in generator.modules() if isinstance(m, torch.nn.ConvTranspose2d)])
    assert transposed.std().item() == pytest.approx(0.02, rel=0.03) and transposed.abs().max() > 0.04
    for module in (*generator.modules(), *critic.modules()):
        if isinstance(module, (torch.nn.Conv2d, torch.nn.ConvTranspose2d, torch.nn.Linear, torch.nn.BatchNorm2d)):
            assert torch.count_nonzero(module.bias) == 0
    default = build_critic(NetworkConfig(channels=3, width=16))
    assert any(torch.count_nonzero(m.bias) > 0 for m in default.modules() if isinstance(m, torch.nn.Conv2d))
    with pytest.raises(ValueError, match="init must be one of"):
        initialise(critic, "xavier", "critic")


def test_bad_configs():
    with pytest.raises(ValueError, match="architecture"):
        build_generator(NetworkConfig(architecture="vit"))
    with pytest.raises(ValueError, match="width"):
        build_critic(NetworkConfig(width=0))
    with pytest.raises(ValueError, match="constraint"):
        build_critic(NetworkConfig(constraint="clip"))
