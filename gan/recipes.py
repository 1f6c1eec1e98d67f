"""Each loss with its published training defaults; every setting, its source and every departure from the
reference code are in docs/gan_recipes.md.

Pixel units: the images here are in [−1, 1] (generators end in tanh); the Scaled-MMD-GAN code trains on
[0, 1] (its generator ends in a sigmoid). For the same critic function of the image, x₀₁ = (x + 1)/2 gives
∂f/∂x = ½·∂f/∂x₀₁, so ‖J‖²_F here is a quarter of the reference's: its weight c on [0, 1] is 4c here
(`PIXEL_GRADIENT_FACTOR`), and 1 / (1 + 10·E‖J₀₁‖²) is 1 / (1 + 40·E‖J‖²).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

import fastmmd
from gan.losses import LOSSES, ScaleForm

__all__ = ["Recipe", "CriticSchedule", "recipe_for", "SCALE_FORMS", "PIXEL_GRADIENT_FACTOR"]

PIXEL_GRADIENT_FACTOR = 4.0  # ‖J‖² in [0, 1] pixel units / ‖J‖² in [−1, 1] pixel units

# SMMD's scale, its weights converted from the [0, 1] pixels where they were published.
SCALE_FORMS = {
    # Scaled-MMD-GAN code, add_scaling, scaling_variant="grad", scaling_coeff=10: 1 / (1 + 10·E‖J₀₁‖²).
    "reference": ScaleForm(lam=1.0, gradient_weight=10.0 * PIXEL_GRADIENT_FACTOR, kernel_value=False),
    # Arbel et al. 2018, the definition of σ_{S,k,λ}: 1 / (λ + E[k(X, X) + ‖J₀₁‖²]) (Gaussian, bandwidth 1).
    "paper": ScaleForm(lam=1.0, gradient_weight=1.0 * PIXEL_GRADIENT_FACTOR, kernel_value=True),
}


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
    dimension; kernel: on the critic's outputs (MMD losses); scale: SMMD's scale form (its default; the
    `--smmd-scale` flag picks another of SCALE_FORMS); penalty: gradient-penalty weight; l2_penalty: weight
    of the L2 penalty on the critic's layers; weight_clip: clip every critic parameter to [−c, c] after each
    step; grad_clip: per-tensor gradient-norm clipping; init: weight initialisation (gan.initialisation);
    lr_adapt: the relative-test learning-rate adaptation on by default; lr_decay: its decay factor."""

    loss: str
    constraint: str = "none"
    critic_out: int = 1
    kernel: object = None
    scale: ScaleForm = ScaleForm()
    penalty: float = 0.0
    l2_penalty: float = 0.0
    weight_clip: Optional[float] = None
    optimizer: str = "adam"
    lr: float = 1e-4
    betas: Tuple[float, float] = (0.5, 0.9)
    schedule: CriticSchedule = CriticSchedule()
    grad_clip: Optional[float] = None
    init: str = "torch"
    lr_adapt: bool = False
    lr_decay: float = 0.8


_MMD_COMMON = dict(grad_clip=1.0, schedule=CriticSchedule())
_SMMD = dict(kernel=fastmmd.Gaussian(1.0), scale=SCALE_FORMS["reference"], init="scaled-mmd-gan",
             lr_adapt=True, **_MMD_COMMON)
_RECIPES = {
    "smmd": Recipe("smmd", **_SMMD),
    "sn-smmd": Recipe("sn-smmd", constraint="spectral-scaled", **_SMMD),
    "mmd": Recipe("mmd", critic_out=16, kernel="mix_rq_1dot", weight_clip=0.01, lr_decay=0.5, **_MMD_COMMON),
    "mmd-gp": Recipe("mmd-gp", critic_out=16, kernel="mix_rq_1dot", penalty=1.0, l2_penalty=1.0, lr_adapt=True,
                     lr_decay=0.5, grad_clip=1.0, schedule=CriticSchedule(5, 5, 0, 0)),
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
