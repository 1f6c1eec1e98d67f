"""DiracGAN (Mescheder et al. 2018; docs/smmd.md): why the critic of an MMD GAN must be scaled.

Real distribution P = δ₀, generator Q_θ = δ_θ, critic features φ_ψ(x) = ψx, Gaussian kernel of bandwidth 1.
For samples of Diracs, MMD²_u(φ(Q_θ), φ(P)) = 2 − 2 exp(−ψ²θ²/2):
- optimised over the critic, sup_ψ MMD = √2 for every θ ≠ 0 and 0 at θ = 0: discontinuous, and a critic
  trained towards that sup (ψ → ∞) leaves the generator the gradient 2ψ²θ exp(−ψ²θ²/2) → 0: θ stalls;
- the scaled MMD divides by λ + E_P[v·k(X, X) + w·‖∇φ‖²] = λ + v + w·ψ² (the reference code's form
  1 + 10ψ² by default, the paper's λ + 1 + ψ² with --smmd-scale paper): its sup over ψ is finite, continuous
  in θ and vanishes at θ = 0, and the same training drives θ to 0.

    python -m gan.dirac --out runs/dirac      # trains both, writes dirac.png and dirac.json, prints the ends

The training uses fastmmd.smmd2 (critic steps, through the scale) and fastmmd.mmd2 on batches of identical
points; the landscapes in the plot use the closed forms above.
"""
from __future__ import annotations

import argparse
import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import List

import torch

import fastmmd
from gan.atomic import save_figure_atomically, write_text_atomically
from gan.losses import ScaleForm

KERNEL = fastmmd.Gaussian(bandwidth=1.0)
LOSSES = ("smmd", "mmd")
# The toy has no pixel units: the published weights as they are (gan.recipes converts them for images).
SCALE_FORMS = {"reference": ScaleForm(lam=1.0, gradient_weight=10.0, kernel_value=False),
               "paper": ScaleForm(lam=1.0, gradient_weight=1.0, kernel_value=True)}


@dataclass(frozen=True)
class DiracConfig:
    """steps: generator steps; critic_steps per generator step; critic_lr (ascent on ψ), generator_lr
    (descent on θ); scale: the form of SMMD's scale; batch: copies of each Dirac per sample (the unbiased
    MMD² needs 2)."""

    steps: int = 400
    critic_steps: int = 20
    critic_lr: float = 0.5
    generator_lr: float = 0.05
    theta0: float = 1.0
    psi0: float = 1.0
    scale: ScaleForm = SCALE_FORMS["reference"]
    batch: int = 4


@dataclass(frozen=True)
class DiracState:
    step: int
    theta: float
    psi: float
    loss: float


def _loss(kind: str, psi: torch.Tensor, theta: torch.Tensor, form: ScaleForm, batch: int, scale_fixed: bool):
    real = torch.zeros(batch, 1, dtype=torch.float64)
    fake = theta.expand(batch, 1)

    def critic(x):
        return x * psi

    if kind == "mmd":
        return fastmmd.mmd2(critic(fake), critic(real), KERNEL, backend="cpu")
    if scale_fixed:  # the generator's step: the scale is a constant for it
        scale = fastmmd.smmd_scale(critic, real, KERNEL, **form.arguments()).detach()
        return scale * fastmmd.mmd2(critic(fake), critic(real), KERNEL, backend="cpu")
    return fastmmd.smmd2(critic, real, fake, KERNEL, backend="cpu", **form.arguments())


def train(kind: str, config: DiracConfig = DiracConfig()) -> List[DiracState]:
    """Alternating gradient ascent on ψ (critic_steps per step) and descent on θ; the state after each step."""
    if kind not in LOSSES:
        raise ValueError(f"unknown loss {kind!r}; valid: {', '.join(LOSSES)}")
    psi = torch.tensor([config.psi0], dtype=torch.float64, requires_grad=True)
    theta = torch.tensor([config.theta0], dtype=torch.float64, requires_grad=True)
    history = []
    for step in range(config.steps):
        for _ in range(config.critic_steps):
            value = _loss(kind, psi, theta.detach(), config.scale, config.batch, scale_fixed=False)
            (grad,) = torch.autograd.grad(value, psi)
            with torch.no_grad():
                psi += config.critic_lr * grad
        value = _loss(kind, psi.detach(), theta, config.scale, config.batch, scale_fixed=True)
        (grad,) = torch.autograd.grad(value, theta)
        with torch.no_grad():
            theta -= config.generator_lr * grad
        history.append(DiracState(step + 1, theta.item(), psi.item(), value.item()))
    return history


def optimised_mmd(theta: float) -> float:
    """sup_ψ MMD(φ_ψ(δ_θ), φ_ψ(δ₀)) = √2 for θ ≠ 0, 0 at θ = 0."""
    return math.sqrt(2.0) if theta != 0 else 0.0


def optimised_smmd(theta: float, form: ScaleForm = SCALE_FORMS["reference"], grid: int = 4000) -> float:
    """sup_ψ sqrt((2 − 2 exp(−ψ²θ²/2)) / (λ + v + w·ψ²)), maximised over a grid of ψ in [0, 100]."""
    psi = torch.linspace(0.0, 100.0, grid, dtype=torch.float64)
    denominator = form.lam + float(form.kernel_value) + form.gradient_weight * psi ** 2
    value = (2.0 - 2.0 * torch.exp(-0.5 * (psi * theta) ** 2)) / denominator
    return float(value.max().sqrt())


def plot(histories: dict, form: ScaleForm, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    thetas = [t / 200.0 for t in range(-400, 401)]
    left.plot(thetas, [optimised_mmd(t) for t in thetas], label="optimised MMD (√2 for θ ≠ 0)")
    label = (f"optimised SMMD, σ² = 1/({form.lam + float(form.kernel_value):g} + "
             f"{form.gradient_weight:g}ψ²)")
    left.plot(thetas, [optimised_smmd(t, form) for t in thetas], label=label)
    left.set_xlabel("θ")
    left.set_title("critic-optimised distance between δ_θ and δ_0")
    left.legend()
    for kind, history in histories.items():
        right.plot([s.step for s in history], [s.theta for s in history], label=f"{kind}: θ")
    right.axhline(0.0, color="grey", lw=0.5)
    right.set_xlabel("generator step")
    right.set_title("training the generator δ_θ towards δ_0")
    right.legend()
    save_figure_atomically(fig, path, dpi=110)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gan.dirac", description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/dirac", help="folder for dirac.png and dirac.json")
    parser.add_argument("--steps", type=int, default=DiracConfig.steps, help="generator steps")
    parser.add_argument("--critic-steps", type=int, default=DiracConfig.critic_steps,
                        help="critic steps per generator step")
    parser.add_argument("--smmd-scale", default="reference", choices=tuple(SCALE_FORMS),
                        help="form of the SMMD scale: reference = 1/(1 + 10 E||grad phi||^2) (the Scaled-MMD-GAN "
                             "code), paper = 1/(1 + E[k(X,X) + ||grad phi||^2])")
    parser.add_argument("--no-plot", action="store_true", help="skip the PNG (no matplotlib needed)")
    args = parser.parse_args(argv)
    config = DiracConfig(steps=args.steps, critic_steps=args.critic_steps, scale=SCALE_FORMS[args.smmd_scale])
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    histories = {kind: train(kind, config) for kind in LOSSES}
    summary = {kind: asdict(history[-1]) for kind, history in histories.items()}
    write_text_atomically(out / "dirac.json", json.dumps({"config": asdict(config), "final": summary}, indent=2))
    if not args.no_plot:
        plot(histories, config.scale, out / "dirac.png")
    for kind, end in summary.items():
        print(f"{kind:5s}: after {end['step']} generator steps θ = {end['theta']:.3g}, ψ = {end['psi']:.3g}")
    print(f"wrote {out / 'dirac.json'}" + ("" if args.no_plot else f" and {out / 'dirac.png'}"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
