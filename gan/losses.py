"""The GAN objectives (docs/gan_recipes.md): each loss gives the critic's loss (minimised by the
critic) and the generator's loss, from the critic and a batch of real and fake images.

MMD losses use fastmmd's fused ops on the critic's features: `smmd2` (scaled MMD, double backprop through
the scale), `mmd2` and `witness` (the MMD-GP penalty backpropagates through ∇ₜf, a second derivative of the
fused op). The f-GAN family follows Nowozin et al. (2016): T = g_f(V) with the output activation g_f, the
critic maximises E_P[T] − E_Q[f*(T)], and the generator maximises E_Q[g_f(V)] (their non-saturating
variant); f*(g_f(v)) is written in closed form so that it stays finite.
"""
from __future__ import annotations

import math
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Callable, Dict, Tuple

import torch
import torch.nn.functional as F

import fastmmd
import fastmmd.distributed
from gan.layer_penalty import layer_penalty, recording_layers
from gan.sharding import SINGLE, Shards

__all__ = ["ScaleForm", "LossContext", "GANLoss", "LOSSES", "FGAN_DIVERGENCES", "gradient_penalty", "get_loss"]

Losses = Tuple[torch.Tensor, Dict[str, float]]


@dataclass(frozen=True)
class ScaleForm:
    """SMMD's σ² = 1 / (lam + E_real[v·k(X, X) + gradient_weight·trace term]), v = 1 if kernel_value else 0
    (fastmmd.smmd_scale); the weight is in the units of the images that the critic sees."""

    lam: float = 1.0
    gradient_weight: float = 1.0
    kernel_value: bool = True

    def arguments(self) -> Dict[str, object]:
        return {"lam": self.lam, "gradient_weight": self.gradient_weight, "kernel_value": self.kernel_value}


@dataclass(frozen=True)
class LossContext:
    """What a loss needs besides the batches: the kernel on the critic's features (MMD losses), the form of
    SMMD's scale, the gradient-penalty weight, the weight of the L2 penalty on the critic's layers (MMD-GP),
    fastmmd's backend, the random generator (interpolation coefficients), and the ranks whose batches make
    the global batch (the MMD losses then run on fastmmd.distributed)."""

    kernel: object = None
    scale: ScaleForm = ScaleForm()
    penalty: float = 0.0
    l2_penalty: float = 0.0
    backend: str = "auto"
    rng: torch.Generator = None
    shards: Shards = SINGLE

    @property
    def ops(self):
        """fastmmd, or fastmmd.distributed on several ranks (the same mmd2, smmd2 and smmd_scale, over the
        global batch)."""
        return fastmmd.distributed if self.shards.distributed else fastmmd


def _number(value: torch.Tensor) -> float:
    return float(value.detach())


def _interpolates(real: torch.Tensor, fake: torch.Tensor, rng, shards: Shards = SINGLE) -> torch.Tensor:
    """x̂ = (1 − α) real + α fake, α ~ U[0, 1] per sample (batches of equal size; on several ranks α is
    drawn for the global batch and each rank keeps its rows); requires grad."""
    if real.shape != fake.shape:
        raise ValueError(f"the gradient penalty pairs real and fake samples: shapes {tuple(real.shape)} and "
                         f"{tuple(fake.shape)} differ")
    alpha = torch.rand((real.shape[0] * shards.world,) + (1,) * (real.dim() - 1), generator=rng,
                       dtype=real.dtype, device=real.device)
    alpha = shards.take(alpha)
    return ((1 - alpha) * real + alpha * fake).requires_grad_(True)


def gradient_penalty(score: Callable[[torch.Tensor], torch.Tensor], real, fake, rng,
                     shards: Shards = SINGLE) -> torch.Tensor:
    """mean((‖∇ score(x̂)‖ − 1)²) over interpolates x̂, the norm over each whole flattened sample; score maps
    (B, ...) to (B,); differentiable in score's parameters (create_graph)."""
    points = _interpolates(real, fake.detach(), rng, shards)
    (grads,) = torch.autograd.grad(score(points).sum(), points, create_graph=True)
    return (grads.flatten(1).norm(dim=1) - 1).pow(2).mean()


class GANLoss:
    """Base: critic_loss and generator_loss return (loss, logs of floats)."""

    def critic_loss(self, critic, real, fake, ctx: LossContext) -> Losses:
        raise NotImplementedError

    def generator_loss(self, critic, real, fake, ctx: LossContext) -> Losses:
        raise NotImplementedError


class SMMDLoss(GANLoss):
    """Scaled MMD²: the critic maximises SMMD²(φ(fake), φ(real)), the generator minimises it (the scale
    depends on the real batch only, so it is a constant for the generator)."""

    def critic_loss(self, critic, real, fake, ctx):
        value = ctx.ops.smmd2(critic, real, fake.detach(), kernel=ctx.kernel, backend=ctx.backend,
                              **ctx.scale.arguments())
        return -value, {"smmd2": _number(value)}

    def generator_loss(self, critic, real, fake, ctx):
        # The scale depends on the critic and the real batch only: detached, the generator's backward pass
        # skips the double backward through the Jacobian norms.
        real = real.detach().requires_grad_(True)
        phi_real = critic(real)
        scale = ctx.ops.smmd_scale(critic, real, kernel=ctx.kernel, outputs=phi_real, **ctx.scale.arguments())
        scale = scale.detach()
        value = scale * ctx.ops.mmd2(critic(fake), phi_real.detach(), kernel=ctx.kernel, backend=ctx.backend)
        return value, {"smmd2": _number(value)}


class MMDLoss(GANLoss):
    """MMD²_u(φ(fake), φ(real)) with the critic's constraint left to weight clipping (MMD-GAN, Li et al.
    2017) or, with a penalty weight, to MMD-GP's penalty on the witness gradient, optionally with the L2
    penalty on the critic's layers (Bińkowski et al. 2018; gan.layer_penalty)."""

    def critic_loss(self, critic, real, fake, ctx):
        fake = fake.detach()

        def layers():
            return recording_layers(critic) if ctx.l2_penalty > 0 else nullcontext([])

        with layers() as real_layers:
            phi_real = critic(real)
        with layers() as fake_layers:
            phi_fake = critic(fake)
        value = ctx.ops.mmd2(phi_fake, phi_real, kernel=ctx.kernel, backend=ctx.backend)
        logs = {"mmd2": _number(value)}
        loss = -value
        if ctx.l2_penalty > 0:
            l2 = layer_penalty(real_layers + [phi_real]) + layer_penalty(fake_layers + [phi_fake])
            loss = loss + ctx.l2_penalty * l2
            logs["l2_penalty"] = _number(l2)
        if ctx.penalty > 0:
            # The witness of the global batch: on several ranks, every rank's features (a batch of critic
            # outputs, small) gathered with their gradients.
            centres = [phi_real, phi_fake]
            if ctx.shards.distributed:
                centres = [fastmmd.distributed.all_gather_rows(c, ctx.shards.group) for c in centres]

            def witness(points):
                return fastmmd.witness(critic(points), *centres, kernel=ctx.kernel, backend=ctx.backend)

            penalty = gradient_penalty(witness, real, fake, ctx.rng, ctx.shards)
            loss = loss + ctx.penalty * penalty
            logs["penalty"] = _number(penalty)
        return loss, logs

    def generator_loss(self, critic, real, fake, ctx):
        value = ctx.ops.mmd2(critic(fake), critic(real), kernel=ctx.kernel, backend=ctx.backend)
        return value, {"mmd2": _number(value)}


class WassersteinLoss(GANLoss):
    """WGAN: the critic maximises E[D(real)] − E[D(fake)] (weight clipping, or WGAN-GP's penalty)."""

    def critic_loss(self, critic, real, fake, ctx):
        fake = fake.detach()
        distance = critic(real).mean() - critic(fake).mean()
        logs = {"wasserstein": _number(distance)}
        loss = -distance
        if ctx.penalty > 0:
            penalty = gradient_penalty(lambda p: critic(p)[:, 0], real, fake, ctx.rng, ctx.shards)
            loss = loss + ctx.penalty * penalty
            logs["penalty"] = _number(penalty)
        return loss, logs

    def generator_loss(self, critic, real, fake, ctx):
        loss = -critic(fake).mean()
        return loss, {"generator": _number(loss)}


class HingeLoss(GANLoss):
    """SN-GAN's hinge loss: critic E[relu(1 − D(real))] + E[relu(1 + D(fake))], generator −E[D(fake)]."""

    def critic_loss(self, critic, real, fake, ctx):
        loss = F.relu(1 - critic(real)).mean() + F.relu(1 + critic(fake.detach())).mean()
        return loss, {"critic": _number(loss)}

    def generator_loss(self, critic, real, fake, ctx):
        loss = -critic(fake).mean()
        return loss, {"generator": _number(loss)}


def _kl(v):
    return v, torch.exp(v - 1)


def _reverse_kl(v):
    return -torch.exp(-v), v - 1


def _pearson(v):
    return v, v * v / 4 + v


def _hellinger(v):
    return 1 - torch.exp(-v), torch.expm1(v)


def _jensen_shannon(v):
    return math.log(2.0) - F.softplus(-v), F.softplus(v) - math.log(2.0)


def _gan(v):
    return -F.softplus(-v), F.softplus(v)


# name -> v ↦ (g_f(v), f*(g_f(v))), Nowozin et al. (2016) Table 6.
FGAN_DIVERGENCES = {"kl": _kl, "reverse-kl": _reverse_kl, "pearson": _pearson, "hellinger": _hellinger,
                    "js": _jensen_shannon, "gan": _gan}


class FGANLoss(GANLoss):
    """f-GAN: critic loss −(E_P[g_f(V)] − E_Q[f*(g_f(V))]), generator loss −E_Q[g_f(V)]. The divergence
    "gan" is the minimax GAN with the non-saturating generator loss −log D(G(z)) (D = sigmoid(V))."""

    def __init__(self, divergence: str):
        if divergence not in FGAN_DIVERGENCES:
            raise ValueError(f"divergence must be one of {tuple(FGAN_DIVERGENCES)}; got {divergence!r}")
        self.divergence = divergence
        self._terms = FGAN_DIVERGENCES[divergence]

    def critic_loss(self, critic, real, fake, ctx):
        t_real, _ = self._terms(critic(real))
        _, conjugate_fake = self._terms(critic(fake.detach()))
        bound = t_real.mean() - conjugate_fake.mean()
        return -bound, {"divergence_bound": _number(bound)}

    def generator_loss(self, critic, real, fake, ctx):
        t_fake, _ = self._terms(critic(fake))
        loss = -t_fake.mean()
        return loss, {"generator": _number(loss)}


LOSSES = {"smmd": SMMDLoss, "sn-smmd": SMMDLoss, "mmd": MMDLoss, "mmd-gp": MMDLoss, "wgan": WassersteinLoss,
          "wgan-gp": WassersteinLoss, "sn-gan": HingeLoss, "gan": lambda: FGANLoss("gan")}
LOSSES.update({f"fgan-{name}": (lambda name=name: FGANLoss(name)) for name in FGAN_DIVERGENCES if name != "gan"})


def get_loss(name: str) -> GANLoss:
    if name not in LOSSES:
        raise ValueError(f"loss must be one of {tuple(LOSSES)}; got {name!r}")
    return LOSSES[name]()
