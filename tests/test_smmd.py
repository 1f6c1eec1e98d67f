"""Scaled MMD: the kernel-gradient trace term against autograd's mixed second derivatives on small critics,
SMMD² and its gradients (through the scale: double backprop) against a direct autograd computation in
float64, the Hutchinson estimate of ‖J‖²_F, and the refusals."""
from __future__ import annotations

import pytest
import torch

import fastmmd
from fastmmd.ops.smmd import jacobian_sqnorm, smmd2, smmd_scale

KERNELS = {
    "gaussian": fastmmd.Gaussian(bandwidth=0.7),
    "rq_mix": fastmmd.RationalQuadratic(alpha=[0.5, 2.0], scale=1.3),
    "imq": fastmmd.InverseMultiquadric(c=1.2, beta=0.7),
    "linear": fastmmd.Linear(),
    "polynomial": fastmmd.Polynomial(degree=3, gamma=0.3, coef0=0.5),
    "sum": fastmmd.Gaussian(bandwidth=[0.5, 2.0]) + 0.5 * fastmmd.Linear() + fastmmd.Polynomial(degree=2, gamma=0.2),
}


def critic(out_dim=2, seed=0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(3, 5), torch.nn.Tanh(), torch.nn.Linear(5, out_dim)).double()


def trace_by_autograd(net, kernel, x):
    """k(X, X) + Σ_i ∂²k(y, z)/∂y_i∂z_i at y = z = X, for each row X of x, by autograd (no formulas)."""
    values = []
    for row in x:
        y = row.clone().requires_grad_(True)
        z = row.clone().requires_grad_(True)
        k = kernel.diag(net(y[None]), net(z[None]))[0]  # from the difference: exact at y = z
        (dz,) = torch.autograd.grad(k, z, create_graph=True)
        mixed = sum(torch.autograd.grad(dz[i], y, create_graph=True)[0][i] for i in range(row.shape[0]))
        values.append(k + mixed)
    return torch.stack(values)


@pytest.mark.parametrize("name", list(KERNELS))
def test_scale_matches_autograd_second_derivatives(name):
    net, kernel = critic(), KERNELS[name]
    x = torch.randn(6, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    expected = 1.0 / (0.25 + trace_by_autograd(net, kernel, x).mean())
    assert torch.allclose(smmd_scale(net, x, kernel, lam=0.25), expected, rtol=1e-10)


def test_smmd2_and_its_gradients_equal_a_direct_autograd_computation():
    kernel = KERNELS["sum"]
    real = torch.randn(7, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    fake = (0.3 + torch.randn(5, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(3))).requires_grad_()

    net = critic(seed=4)
    value = smmd2(net, real, fake, kernel, lam=1.0, backend="cpu")
    grads = torch.autograd.grad(value, [*net.parameters(), fake])

    reference_net = critic(seed=4)
    fake_ref = fake.detach().clone().requires_grad_()
    scale = 1.0 / (1.0 + trace_by_autograd(reference_net, kernel, real).mean())
    direct = scale * fastmmd.mmd2(reference_net(fake_ref), reference_net(real), kernel, backend="reference")
    reference_grads = torch.autograd.grad(direct, [*reference_net.parameters(), fake_ref])
    assert torch.allclose(value, direct, rtol=1e-10)
    for got, want in zip(grads, reference_grads):
        assert torch.allclose(got, want, rtol=1e-8, atol=1e-12)


def test_exact_jacobian_norm_equals_the_full_jacobian():
    net = critic(out_dim=4, seed=5)
    x = torch.randn(3, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(6))
    full = torch.stack([torch.autograd.functional.jacobian(lambda r: net(r[None])[0], row).pow(2).sum() for row in x])
    assert torch.allclose(jacobian_sqnorm(net, x), full, rtol=1e-12)


def test_hutchinson_estimate_is_unbiased_and_differentiable():
    net = critic(out_dim=4, seed=7)
    x = torch.randn(5, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(8))
    exact = jacobian_sqnorm(net, x)
    estimate = jacobian_sqnorm(net, x, method="hutchinson", probes=4000,
                               generator=torch.Generator().manual_seed(9))
    assert torch.allclose(estimate, exact, rtol=0.1)
    (grad,) = torch.autograd.grad(estimate.sum(), net[0].weight)
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(kernel=fastmmd.Laplacian(1.0)), ValueError, "laplacian"),
        (dict(kernel=fastmmd.Energy()), ValueError, "energy"),
        (dict(jacobian="approximate"), ValueError, "method"),
        (dict(lam=-1.0), ValueError, "lam"),
        (dict(jacobian="hutchinson", probes=0), ValueError, "probes"),
    ],
)
def test_bad_arguments_are_refused(kwargs, error, match):
    real = torch.randn(4, 3, dtype=torch.float64)
    with pytest.raises(error, match=match):
        smmd_scale(critic(), real, **kwargs)


def test_critic_output_shape_is_checked():
    with pytest.raises(ValueError, match="critic must map a batch"):
        smmd_scale(lambda x: x.sum(), torch.randn(4, 3, dtype=torch.float64))
