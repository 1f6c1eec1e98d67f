"""The GAN objectives: the f-GAN closed forms equal f*(g_f(v)) of Nowozin et al.'s table, the MMD losses equal
fastmmd's ops (SMMD in both forms of its scale), the MMD-GP penalty equals autograd on a materialised
witness, and its L2 penalty on the critic's layers equals the reference code's sum (float64)."""
from __future__ import annotations

import math

import pytest
import torch

import fastmmd
from gan.losses import FGAN_DIVERGENCES, LOSSES, LossContext, ScaleForm, get_loss, gradient_penalty
from gan.networks import NetworkConfig, build_critic
from gan.recipes import SCALE_FORMS, CriticSchedule, recipe_for

# Nowozin et al. (2016), Table 6: output activation g_f and conjugate f*, written naively.
NAIVE = {
    "kl": (lambda v: v, lambda t: torch.exp(t - 1)),
    "reverse-kl": (lambda v: -torch.exp(-v), lambda t: -1 - torch.log(-t)),
    "pearson": (lambda v: v, lambda t: t * t / 4 + t),
    "hellinger": (lambda v: 1 - torch.exp(-v), lambda t: t / (1 - t)),
    "js": (lambda v: math.log(2) - torch.log1p(torch.exp(-v)), lambda t: -torch.log(2 - torch.exp(t))),
    "gan": (lambda v: -torch.log1p(torch.exp(-v)), lambda t: -torch.log(1 - torch.exp(t))),
}


@pytest.mark.parametrize("name", sorted(FGAN_DIVERGENCES))
def test_fgan_conjugates_match_the_table(name):
    v = torch.linspace(-3, 3, 61, dtype=torch.float64)
    activation, conjugate = NAIVE[name]
    t, conjugate_of_t = FGAN_DIVERGENCES[name](v)
    torch.testing.assert_close(t, activation(v))
    torch.testing.assert_close(conjugate_of_t, conjugate(activation(v)))


def test_fgan_terms_stay_finite_where_the_naive_form_overflows():
    v = torch.tensor([-60.0, 60.0], dtype=torch.float64)
    for name in ("js", "gan", "reverse-kl"):
        assert torch.isfinite(torch.stack(FGAN_DIVERGENCES[name](v))).all()


class _SmallCritic(torch.nn.Module):
    """(B, 3, 2, 2) -> (B, out_dim) through one tanh layer, its hidden layer exposed as gan.networks' are."""

    def __init__(self, out_dim):
        super().__init__()
        self.body = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 8), torch.nn.Tanh())
        self.head = torch.nn.Linear(8, out_dim)

    def hidden_layers(self):
        return [self.body[2]]

    def forward(self, x):
        return self.head(self.body(x))


def _critic(out_dim=3):
    torch.manual_seed(0)
    return _SmallCritic(out_dim).double()


def _batches():
    g = torch.Generator().manual_seed(1)
    return (torch.randn(6, 3, 2, 2, generator=g, dtype=torch.float64),
            torch.randn(5, 3, 2, 2, generator=g, dtype=torch.float64) + 0.5)


@pytest.mark.parametrize("form", [SCALE_FORMS["reference"], SCALE_FORMS["paper"], ScaleForm(0.3, 2.0, True)],
                         ids=["reference", "paper", "other"])
def test_smmd_loss_is_fastmmd_smmd2(form):
    critic, (real, fake) = _critic(1), _batches()
    ctx = LossContext(kernel=fastmmd.Gaussian(1.0), scale=form)
    arguments = dict(kernel=fastmmd.Gaussian(1.0), lam=form.lam, gradient_weight=form.gradient_weight,
                     kernel_value=form.kernel_value)
    critic_loss, _ = get_loss("smmd").critic_loss(critic, real, fake, ctx)
    generator_loss, _ = get_loss("smmd").generator_loss(critic, real, fake, ctx)
    expected = fastmmd.smmd2(critic, real, fake, backend="reference", **arguments)
    torch.testing.assert_close(-critic_loss, expected)
    torch.testing.assert_close(generator_loss, expected)
    fake = fake.clone().requires_grad_(True)
    (got,) = torch.autograd.grad(get_loss("smmd").generator_loss(critic, real, fake, ctx)[0], fake)
    (want,) = torch.autograd.grad(fastmmd.smmd2(critic, real, fake, **arguments), fake)
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-14)


def test_the_reference_scale_is_ten_jacobian_norms_in_unit_interval_pixels():
    """1 / (1 + 10·E‖J₀₁‖²) of the critic on [0, 1] images equals the recipe's scale on [−1, 1] images."""
    critic, (real, _) = _critic(1), _batches()
    real = real.tanh()  # images in [−1, 1]

    def critic_01(x01):  # the same critic function, on [0, 1] pixels
        return critic(2 * x01 - 1)

    x01 = ((real + 1) / 2).requires_grad_(True)
    (jac,) = torch.autograd.grad(critic_01(x01).sum(), x01)  # one output: J₀₁ is the gradient
    expected = 1.0 / (1.0 + 10.0 * jac.flatten(1).pow(2).sum(1).mean())
    got = fastmmd.smmd_scale(critic, real, fastmmd.Gaussian(1.0), **SCALE_FORMS["reference"].arguments())
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=0)


def test_mmd_gp_l2_penalty_is_the_reference_sum_over_the_critics_layers():
    torch.manual_seed(0)
    critic = build_critic(NetworkConfig(channels=1, width=2, critic_out=4)).double()
    g = torch.Generator().manual_seed(2)
    real = torch.rand(3, 1, 32, 32, generator=g, dtype=torch.float64) * 2 - 1
    fake = torch.rand(3, 1, 32, 32, generator=g, dtype=torch.float64) * 2 - 1

    def layers_by_hand(x):  # every leaky-ReLU activation, then the output
        out = []
        for module in critic.features:
            x = module(x)
            if isinstance(module, torch.nn.LeakyReLU):
                out.append(x)
        return out + [critic.head(x)]

    expected = sum(layer.flatten(1).pow(2).mean(1) for layer in layers_by_hand(real) + layers_by_hand(fake)).mean()
    assert len(layers_by_hand(real)) == 8
    with_l2 = LossContext(kernel="mix_rq_1dot", l2_penalty=2.0, backend="reference")
    without = LossContext(kernel="mix_rq_1dot", backend="reference")
    loss, logs = get_loss("mmd-gp").critic_loss(critic, real, fake, with_l2)
    plain, _ = get_loss("mmd-gp").critic_loss(critic, real, fake, without)
    torch.testing.assert_close(loss - plain, 2.0 * expected, rtol=1e-10, atol=0)
    assert logs["l2_penalty"] == pytest.approx(float(expected.detach()), rel=1e-12)
    (grad,) = torch.autograd.grad(loss - plain, critic.head.weight)
    (want,) = torch.autograd.grad(2.0 * expected, critic.head.weight)
    torch.testing.assert_close(grad, want, rtol=1e-10, atol=1e-14)


def test_the_l2_penalty_needs_a_critic_that_shows_its_layers():
    critic = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 2)).double()
    real, fake = _batches()
    with pytest.raises(TypeError, match="hidden_layers"):
        get_loss("mmd-gp").critic_loss(critic, real, fake, LossContext(kernel="mix_rq_1dot", l2_penalty=1.0))


def _materialised_witness(points, phi_real, phi_fake):
    def k(a, b):
        return sum((1 + torch.cdist(a, b) ** 2 / (2 * alpha)) ** (-alpha) for alpha in (0.1, 1.0, 10.0)) + a @ b.T

    return k(points, phi_real).mean(1) - k(points, phi_fake).mean(1)


@pytest.mark.parametrize("backend", ["cpu", "reference"])
def test_mmd_gp_penalty_and_its_gradient_match_autograd_on_the_materialised_witness(backend):
    critic, (real, fake) = _critic(), _batches()
    real, fake = real[:5], fake
    ctx = LossContext(kernel="mix_rq_1dot", penalty=1.0, backend=backend, rng=torch.Generator().manual_seed(3))
    loss, logs = get_loss("mmd-gp").critic_loss(critic, real, fake, ctx)
    grads = torch.autograd.grad(loss, list(critic.parameters()))

    rng = torch.Generator().manual_seed(3)
    phi_real, phi_fake = critic(real), critic(fake)
    mmd2 = fastmmd.mmd2(phi_fake, phi_real, kernel="mix_rq_1dot", backend="reference")
    penalty = gradient_penalty(lambda p: _materialised_witness(critic(p), phi_real, phi_fake), real, fake, rng)
    expected_loss = -mmd2 + penalty
    expected_grads = torch.autograd.grad(expected_loss, list(critic.parameters()))
    torch.testing.assert_close(loss, expected_loss, rtol=1e-9, atol=1e-12)
    assert logs["penalty"] == pytest.approx(float(penalty.detach()), rel=1e-9)
    for got, want in zip(grads, expected_grads):
        torch.testing.assert_close(got, want, rtol=1e-8, atol=1e-11)


def test_gradient_penalty_takes_the_norm_over_the_whole_sample():
    # score(x) = sum of all entries: its gradient is all ones, norm sqrt(12) for a (3, 2, 2) sample.
    real, fake = _batches()
    penalty = gradient_penalty(lambda p: p.flatten(1).sum(1), real[:5], fake, torch.Generator().manual_seed(0))
    assert float(penalty) == pytest.approx((math.sqrt(12) - 1) ** 2)


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_every_loss_gives_finite_losses_and_generator_gradients(name):
    recipe = recipe_for(name)
    critic, (real, fake) = _critic(recipe.critic_out), _batches()
    real = real[:5]
    fake = fake.clone().requires_grad_(True)
    ctx = LossContext(kernel=recipe.kernel, scale=recipe.scale, penalty=recipe.penalty, l2_penalty=recipe.l2_penalty,
                      rng=torch.Generator().manual_seed(0))
    loss = get_loss(name)
    critic_loss, critic_logs = loss.critic_loss(critic, real, fake, ctx)
    critic_loss.backward()
    assert fake.grad is None  # the critic's loss does not reach the generator
    generator_loss, _ = loss.generator_loss(critic, real, fake, ctx)
    (grad,) = torch.autograd.grad(generator_loss, fake)
    assert torch.isfinite(critic_loss) and torch.isfinite(generator_loss) and grad.abs().sum() > 0
    assert all(math.isfinite(v) for v in critic_logs.values())


def test_critic_schedule():
    schedule = CriticSchedule(steps=5, boosted=10, boost_until=20, boost_every=500)
    assert [schedule.at(s) for s in (0, 19, 20, 499, 500, 501, 1000)] == [10, 10, 5, 5, 10, 5, 10]
    assert CriticSchedule(5, 5, 0, 0).at(0) == 5


def test_unknown_names():
    with pytest.raises(ValueError, match="loss must be one of"):
        get_loss("lsgan")
    with pytest.raises(ValueError, match="loss must be one of"):
        recipe_for("lsgan")
