"""The GAN objectives: the f-GAN closed forms equal f*(g_f(v)) of Nowozin et al.'s table, the MMD losses equal
fastmmd's ops, and the MMD-GP penalty equals autograd on a materialised witness (float64)."""
from __future__ import annotations

import math

import pytest
import torch

import fastmmd
from gan.losses import FGAN_DIVERGENCES, LOSSES, LossContext, get_loss, gradient_penalty
from gan.recipes import CriticSchedule, recipe_for

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


def _critic(out_dim=3):
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 8), torch.nn.Tanh(),
                               torch.nn.Linear(8, out_dim)).double()


def _batches():
    g = torch.Generator().manual_seed(1)
    return (torch.randn(6, 3, 2, 2, generator=g, dtype=torch.float64),
            torch.randn(5, 3, 2, 2, generator=g, dtype=torch.float64) + 0.5)


def test_smmd_loss_is_fastmmd_smmd2():
    critic, (real, fake) = _critic(1), _batches()
    ctx = LossContext(kernel=fastmmd.Gaussian(1.0), lam=1.0)
    critic_loss, _ = get_loss("smmd").critic_loss(critic, real, fake, ctx)
    generator_loss, _ = get_loss("smmd").generator_loss(critic, real, fake, ctx)
    expected = fastmmd.smmd2(critic, real, fake, kernel=fastmmd.Gaussian(1.0), lam=1.0, backend="reference")
    torch.testing.assert_close(-critic_loss, expected)
    torch.testing.assert_close(generator_loss, expected)
    fake = fake.clone().requires_grad_(True)
    (got,) = torch.autograd.grad(get_loss("smmd").generator_loss(critic, real, fake, ctx)[0], fake)
    (want,) = torch.autograd.grad(fastmmd.smmd2(critic, real, fake, kernel=fastmmd.Gaussian(1.0), lam=1.0), fake)
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-14)


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
    ctx = LossContext(kernel=recipe.kernel, lam=recipe.lam, penalty=recipe.penalty,
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
