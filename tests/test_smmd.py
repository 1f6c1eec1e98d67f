"""Scaled MMD: the kernel-gradient trace term against autograd's mixed second derivatives on small critics,
SMMD² and its gradients (through the scale: double backprop) against a direct autograd computation in
float64, in both published forms of the scale (the paper's λ + E[k(X, X) + trace] and the reference code's
1 / (1 + 10·E‖J‖²)), the Hutchinson estimate of ‖J‖²_F, and the refusals."""
from __future__ import annotations

import pytest
import torch

import fastmmd
from fastmmd.ops.smmd import jacobian_sqnorm, smmd2, smmd_scale
from tolerances import FLOAT64_ATOL, FLOAT64_DERIVATIVE_RTOL, FLOAT64_RTOL, SAME_ARITHMETIC_RTOL, SAMPLING_RTOL

KERNELS = {
    "gaussian": fastmmd.Gaussian(bandwidth=0.7),
    "rq_mix": fastmmd.RationalQuadratic(alpha=[0.5, 2.0], scale=1.3),
    "imq": fastmmd.InverseMultiquadric(c=1.2, beta=0.7),
    "linear": fastmmd.Linear(),
    "polynomial": fastmmd.Polynomial(degree=3, gamma=0.3, coef0=0.5),
    "sum": fastmmd.Gaussian(bandwidth=[0.5, 2.0]) + 0.5 * fastmmd.Linear() + fastmmd.Polynomial(degree=2, gamma=0.2),
}


# lam, gradient_weight, kernel_value of fastmmd.smmd_scale; expected σ² = 1 / (λ + E[v·k(X, X) + w·trace]).
FORMS = {"paper": dict(lam=0.25), "reference": dict(lam=1.0, gradient_weight=10.0, kernel_value=False),
         "weighted": dict(lam=0.5, gradient_weight=3.0, kernel_value=True)}


def expected_scale(net, kernel, x, lam=1.0, gradient_weight=1.0, kernel_value=True):
    value, trace = value_and_trace_by_autograd(net, kernel, x)
    return 1.0 / (lam + (float(kernel_value) * value + gradient_weight * trace).mean())


def critic(out_dim=2, seed=0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(3, 5), torch.nn.Tanh(), torch.nn.Linear(5, out_dim)).double()


def value_and_trace_by_autograd(net, kernel, x):
    """k(X, X) and Σ_i ∂²k(y, z)/∂y_i∂z_i at y = z = X, for each row X of x, by autograd (no formulas)."""
    values, traces = [], []
    for row in x:
        y = row.clone().requires_grad_(True)
        z = row.clone().requires_grad_(True)
        k = kernel.diag(net(y[None]), net(z[None]))[0]  # from the difference: exact at y = z
        (dz,) = torch.autograd.grad(k, z, create_graph=True)
        mixed = sum(torch.autograd.grad(dz[i], y, create_graph=True)[0][i] for i in range(row.shape[0]))
        values.append(k)
        traces.append(mixed)
    return torch.stack(values), torch.stack(traces)


@pytest.mark.parametrize("form", list(FORMS))
@pytest.mark.parametrize("name", list(KERNELS))
def test_scale_matches_autograd_second_derivatives(name, form):
    net, kernel = critic(), KERNELS[name]
    x = torch.randn(6, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    expected = expected_scale(net, kernel, x, **FORMS[form])
    assert torch.allclose(smmd_scale(net, x, kernel, **FORMS[form]), expected, rtol=FLOAT64_RTOL)


def test_reference_form_is_one_over_one_plus_ten_jacobian_norms():
    """Scaled-MMD-GAN's add_scaling: 1 / (1 + 10·mean ‖J‖²_F) with its Gaussian of bandwidth 1."""
    net = critic(out_dim=1, seed=3)
    x = torch.randn(9, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    reference = 1.0 / (1.0 + 10.0 * jacobian_sqnorm(net, x).mean())
    got = smmd_scale(net, x, fastmmd.Gaussian(1.0), **FORMS["reference"])
    assert torch.allclose(got, reference, rtol=SAME_ARITHMETIC_RTOL)


@pytest.mark.parametrize("form", ["paper", "reference"])
@pytest.mark.parametrize("name", ["gaussian", "polynomial", "sum"])
def test_smmd2_and_its_gradients_equal_a_direct_autograd_computation(name, form):
    kernel = KERNELS[name]
    real = torch.randn(7, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    fake = (0.3 + torch.randn(5, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(3))).requires_grad_()

    net = critic(seed=4)
    value = smmd2(net, real, fake, kernel, backend="cpu", **FORMS[form])
    grads = torch.autograd.grad(value, [*net.parameters(), fake])

    reference_net = critic(seed=4)
    fake_ref = fake.detach().clone().requires_grad_()
    scale = expected_scale(reference_net, kernel, real, **FORMS[form])
    direct = scale * fastmmd.mmd2(reference_net(fake_ref), reference_net(real), kernel, backend="reference")
    reference_grads = torch.autograd.grad(direct, [*reference_net.parameters(), fake_ref])
    assert torch.allclose(value, direct, rtol=FLOAT64_RTOL)
    for got, want in zip(grads, reference_grads):
        assert torch.allclose(got, want, rtol=FLOAT64_DERIVATIVE_RTOL, atol=FLOAT64_ATOL)


def test_a_zero_gradient_weight_needs_no_jacobian():
    """w = 0 leaves σ² = 1 / (λ + E k(X, X)); the critic need not be differentiable in its input."""
    net = critic(seed=5)
    x = torch.randn(4, 3, dtype=torch.float64)
    kernel = fastmmd.Gaussian(1.0) + fastmmd.Linear()
    expected = 1.0 / (0.5 + (1.0 + net(x).pow(2).sum(1)).mean())
    got = smmd_scale(lambda t: net(t.detach()), x, kernel, lam=0.5, gradient_weight=0.0)
    assert torch.allclose(got, expected, rtol=SAME_ARITHMETIC_RTOL)


def test_exact_jacobian_norm_equals_the_full_jacobian():
    net = critic(out_dim=4, seed=5)
    x = torch.randn(3, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(6))
    full = torch.stack([torch.autograd.functional.jacobian(lambda r: net(r[None])[0], row).pow(2).sum() for row in x])
    assert torch.allclose(jacobian_sqnorm(net, x), full, rtol=SAME_ARITHMETIC_RTOL)


def test_hutchinson_estimate_is_unbiased_and_differentiable():
    net = critic(out_dim=4, seed=7)
    x = torch.randn(5, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(8))
    exact = jacobian_sqnorm(net, x)
    estimate = jacobian_sqnorm(net, x, jacobian="hutchinson", probes=4000, seed=9)
    assert torch.equal(estimate, jacobian_sqnorm(net, x, jacobian="hutchinson", probes=4000, seed=9))
    assert torch.allclose(estimate, exact, rtol=SAMPLING_RTOL)
    (grad,) = torch.autograd.grad(estimate.sum(), net[0].weight)
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(kernel=fastmmd.Laplacian(1.0)), ValueError, "laplacian"),
        (dict(kernel=fastmmd.Energy()), ValueError, "energy"),
        (dict(jacobian="approximate"), ValueError, "jacobian"),
        (dict(jacobian="hutchinson", seed=-1), ValueError, "seed"),
        (dict(lam=-1.0), ValueError, "lam"),
        (dict(lam=float("inf")), ValueError, "lam"),
        (dict(gradient_weight=-1.0), ValueError, "gradient_weight"),
        (dict(gradient_weight=float("nan")), ValueError, "gradient_weight"),
        (dict(gradient_weight="10"), ValueError, "gradient_weight"),
        (dict(kernel_value="no"), TypeError, "kernel_value"),
        (dict(lam=0.0, kernel_value=False), ValueError, "lam must be > 0"),
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
