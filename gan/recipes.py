"""Each loss with its published training defaults (REFERENCES.md §3, §4, §7).

| loss | critic | kernel / objective | optimiser | critic steps |
|---|---|---|---|---|
| smmd | no constraint, 1-d output | SMMD², Gaussian σ = 1, λ = 1 (Arbel et al. 2018) | Adam 1e-4 (0.5, 0.9) | 5 (10 early / every 500th) |
| sn-smmd | spectral parametrization with scale | as smmd | as smmd | as smmd |
| mmd | weight clipping 0.01, 16-d output | MMD², mix_rq_1dot (MMD-GAN, Li et al. 2017) | as smmd | as smmd |
| mmd-gp | 16-d output | MMD² − 1·witness-gradient penalty (Bińkowski et al. 2018) | as smmd | as smmd |
| wgan | weight clipping 0.01 | E D(real) − E D(fake) (Arjovsky et al. 2017) | RMSProp 5e-5 | 5 (100 early / every 500th) |
| wgan-gp | no constraint | as wgan − 10·gradient penalty (Gulrajani et al. 2017) | Adam 1e-4 (0, 0.9) | 5 |
| sn-gan | spectral normalisation | hinge loss (Miyato et al. 2018) | Adam 2e-4 (0, 0.9) | 5 |
| gan, fgan-* | no constraint | f-GAN bound, non-saturating generator (Goodfellow 2014; Nowozin 2016) | Adam 2e-4 (0.5, 0.999) | 1 |

The MMD losses clip each gradient tensor's norm at 1 (both reference codes) and adapt the learning rate
with the relative test by decay 0.8 (Scaled-MMD) or 0.5 (MMD-GAN) when asked.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

import fastmmd
from gan.losses import LOSSES

__all__ = ["Recipe", "CriticSchedule", "recipe_for"]


@dataclass(frozen=True)
class CriticSchedule:
    """steps critic updates per generator step; `boosted` of them during the first `boost_until` generator
    steps and on every `boost_every`-th one."""

    steps: int = 5
    boosted: int = 10
    boost_until: int = 20
    boost_every: int = 500

    def at(self, generator_step: int) -> int:
        if generator_step < self.boost_until or (self.boost_every and generator_step % self.boost_every == 0):
            return self.boosted
        return self.steps


@dataclass(frozen=True)
class Recipe:
    """constraint: on the critic's weights ("none", "spectral", "spectral-scaled"); critic_out: critic output
    dimension; kernel: on the critic's outputs (MMD losses); lam: SMMD's λ; penalty: gradient-penalty
    weight; weight_clip: clip every critic parameter to [−c, c] after each step; grad_clip: per-tensor
    gradient-norm clipping; lr_decay: of the relative-test learning-rate adaptation."""

    loss: str
    constraint: str = "none"
    critic_out: int = 1
    kernel: object = None
    lam: float = 1.0
    penalty: float = 0.0
    weight_clip: Optional[float] = None
    optimizer: str = "adam"
    lr: float = 1e-4
    betas: Tuple[float, float] = (0.5, 0.9)
    schedule: CriticSchedule = CriticSchedule()
    grad_clip: Optional[float] = None
    lr_decay: float = 0.8


_MMD_COMMON = dict(grad_clip=1.0, schedule=CriticSchedule())
_RECIPES = {
    "smmd": Recipe("smmd", kernel=fastmmd.Gaussian(1.0), **_MMD_COMMON),
    "sn-smmd": Recipe("sn-smmd", constraint="spectral-scaled", kernel=fastmmd.Gaussian(1.0), **_MMD_COMMON),
    "mmd": Recipe("mmd", critic_out=16, kernel="mix_rq_1dot", weight_clip=0.01, lr_decay=0.5, **_MMD_COMMON),
    "mmd-gp": Recipe("mmd-gp", critic_out=16, kernel="mix_rq_1dot", penalty=1.0, lr_decay=0.5, **_MMD_COMMON),
    "wgan": Recipe("wgan", weight_clip=0.01, optimizer="rmsprop", lr=5e-5, betas=(0.0, 0.0),
                   schedule=CriticSchedule(5, 100, 25, 500)),
    "wgan-gp": Recipe("wgan-gp", penalty=10.0, betas=(0.0, 0.9), schedule=CriticSchedule(5, 5, 0, 0)),
    "sn-gan": Recipe("sn-gan", constraint="spectral", lr=2e-4, betas=(0.0, 0.9), schedule=CriticSchedule(5, 5, 0, 0)),
}


def recipe_for(loss: str) -> Recipe:
    """The published defaults of `loss` (a name of gan.losses.LOSSES)."""
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {tuple(LOSSES)}; got {loss!r}")
    if loss in _RECIPES:
        return _RECIPES[loss]
    return Recipe(loss, lr=2e-4, betas=(0.5, 0.999), schedule=CriticSchedule(1, 1, 0, 0))
