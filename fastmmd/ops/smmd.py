"""Scaled MMD (Arbel, Sutherland, Bińkowski, Gretton, NeurIPS 2018; docs/smmd.md).

For a deep kernel k(x, y) = K(φ(x), φ(y)) and a sample S (the real batch),
    σ² = 1 / (λ + E_{X∼S}[ v·k(X, X) + w·Σ_i ∂²k(y, z)/∂y_i∂z_i |_{y=z=X} ]),
    SMMD² = σ² · MMD²_u(φ(fake), φ(real)),
with v ∈ {0, 1} (`kernel_value`) and w ≥ 0 (`gradient_weight`). Two published forms:
    the paper's (Arbel et al. 2018, the definition of σ_{S,k,λ}):   v = 1, w = 1, λ > 0 (the defaults here);
    the reference code's (Scaled-MMD-GAN, `add_scaling`, scaling_variant="grad", scaling_coeff=10):
        v = 0, w = 10, λ = 1, i.e. σ² = 1 / (1 + 10·E‖J‖²_F) with its Gaussian of bandwidth 1.
With J the Jacobian of φ at X and a = φ(X), the trace term is tr(Jᵀ H J), H = ∂²K/∂a∂b at a = b:
    radial K = g(‖a − b‖²):  H = −2 g′(0) I     ->  −2 g′(0) ‖J‖²_F   (‖J‖²_F / s² for a Gaussian, bandwidth s)
    dot K = f(aᵀb):         H = f′ I + f″ a aᵀ  ->  f′(‖a‖²) ‖J‖²_F + f″(‖a‖²) ‖Jᵀa‖²
and sums of kernels add. Laplacian and Energy have no finite g′(0): they are refused.
σ² is differentiable in the critic's parameters (its Jacobian norms are taken with create_graph=True), so
a critic step that maximises SMMD² backpropagates through the scale; a generator step treats it as given.
"""
from __future__ import annotations

from typing import Tuple

import numpy as np
import torch

from fastmmd.common.validation import check_choice, check_seed, real_number, whole_number
from fastmmd.kernels import resolve_kernel
from fastmmd.kernels.derivatives import dot_along, radial_at_zero, smooth_reason
from fastmmd.ops.mmd2 import mmd2

__all__ = ["jacobian_sqnorm", "smmd_scale", "smmd_terms", "scale_terms", "smmd2", "check_scale_form", "critic_outputs",
           "JACOBIAN_METHODS"]

JACOBIAN_METHODS = ("exact", "hutchinson")


def check_critic_input(x, name: str) -> None:
    """A floating-point torch tensor batch (B, ...), B >= 1: what a critic module takes."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor batch (B, ...) for the critic; got {type(x).__name__}")
    if not x.is_floating_point() or x.dim() < 1 or x.shape[0] == 0:
        raise ValueError(f"{name} must be a non-empty floating-point batch (B, ...); got {x.dtype} of shape "
                         f"{tuple(x.shape)}")


def critic_outputs(critic, x: torch.Tensor) -> torch.Tensor:
    """critic(x) as (B, D): a floating-point tensor of one row per sample."""
    out = critic(x)
    if not isinstance(out, torch.Tensor):
        raise TypeError(f"critic must return a torch.Tensor; got {type(out).__name__}")
    if not out.is_floating_point():
        raise ValueError(f"critic must return floating-point features; got {out.dtype}")
    if out.dim() == 1:
        out = out[:, None]
    if out.dim() != 2 or out.shape[0] != x.shape[0]:
        raise ValueError(f"critic must map a batch (B, ...) to (B,) or (B, D); got {tuple(out.shape)} for "
                         f"a batch of {x.shape[0]}")
    return out


def _check_differentiable(outputs: torch.Tensor, x: torch.Tensor) -> None:
    if not outputs.requires_grad:
        raise ValueError("critic(real) does not depend on real through autograd (a constant critic, a detached "
                         "output, or one computed outside torch): SMMD's scale needs the critic's input gradient")


def _vjps(outputs: torch.Tensor, x: torch.Tensor, directions: torch.Tensor) -> torch.Tensor:
    """Jᵀv for each sample and each of the K directions (K, B, D): (K, B, prod(x.shape[1:])), with graph."""
    grads = torch.autograd.grad(outputs, x, directions, create_graph=True, is_grads_batched=True)[0]
    return grads.reshape(directions.shape[0], x.shape[0], -1)


def jacobian_sqnorm(critic, x: torch.Tensor, jacobian: str = "exact", probes: int = 8, seed: int = 0,
                    outputs: torch.Tensor = None) -> torch.Tensor:
    """‖J(x_b)‖²_F for each sample of the batch x (B, ...), J the Jacobian of critic at x_b: (B,).

    critic maps (B, ...) to (B, D) (or (B,)), each output row depending on its own input row only (no batch
    norm). jacobian="exact": one vector-Jacobian product per output dimension, batched (D backward passes in
    one vmapped call); "hutchinson": E_v ‖Jᵀv‖² with `probes` Gaussian v drawn from a generator seeded with
    `seed` on x's device (unbiased, for wide outputs; pass a new seed per step for fresh probes). The result
    is differentiable in the critic's parameters and in x. `outputs`: critic(x) if already computed (x must
    then require grad and be the tensor it was computed from).
    """
    check_choice("jacobian", jacobian, JACOBIAN_METHODS)
    if outputs is None:
        check_critic_input(x, "x")
        x = x if x.requires_grad else x.detach().requires_grad_(True)
        outputs = critic_outputs(critic, x)
    _check_differentiable(outputs, x)
    dim = outputs.shape[1]
    if jacobian == "exact":
        eye = torch.eye(dim, dtype=outputs.dtype, device=outputs.device)
        directions = eye[:, None, :].expand(dim, outputs.shape[0], dim)
        return _vjps(outputs, x, directions).pow(2).sum(dim=(0, 2))
    probes = whole_number(probes, "probes")
    generator = torch.Generator(device=outputs.device).manual_seed(check_seed(seed))
    directions = torch.randn((probes, *outputs.shape), dtype=outputs.dtype, device=outputs.device,
                             generator=generator)
    return _vjps(outputs, x, directions).pow(2).sum(dim=2).mean(0)


def check_scale_form(lam, gradient_weight, kernel_value) -> Tuple[float, float, bool]:
    """(λ, w, v) as numbers: λ finite ≥ 0 (> 0 when k(X, X) is left out, else a flat critic divides by 0), the
    trace term's weight w finite ≥ 0, kernel_value a bool. Python, numpy or one-element tensor numbers."""
    lam = real_number(lam, "lam", 0.0)
    gradient_weight = real_number(gradient_weight, "gradient_weight", 0.0)
    if not isinstance(kernel_value, (bool, np.bool_)):
        raise TypeError(f"kernel_value must be True or False; got {kernel_value!r}")
    if not kernel_value and lam == 0:
        raise ValueError("lam must be > 0 when kernel_value is False (σ² = 1 / (λ + w·E[trace]) is unbounded "
                         "for a critic flat on the real batch)")
    return lam, gradient_weight, bool(kernel_value)


def smmd_terms(critic, real: torch.Tensor, kernel="gaussian", jacobian: str = "exact", probes: int = 8,
               seed: int = 0, outputs: torch.Tensor = None, need_trace: bool = True):
    """(k(X, X), tr(Jᵀ H J)) for each sample X of the real batch (B, ...): two (B,) tensors, differentiable in
    the critic's parameters (arguments as `smmd_scale`); need_trace=False skips the Jacobian (zeros)."""
    kernel = resolve_kernel(kernel)
    if outputs is None:
        check_critic_input(real, "real")
        real = real if real.requires_grad else real.detach().requires_grad_(True)
        outputs = critic_outputs(critic, real)
    table = kernel.terms(outputs.shape[1])
    reason = smooth_reason(table)
    if reason is not None:
        raise ValueError(f"smmd: {reason}; SMMD needs the kernel's second derivative at a = b")
    g0, slope = radial_at_zero(table)
    sq_norm = outputs.pow(2).sum(1)
    f, f1, f2 = dot_along(table, sq_norm)
    value = g0 + f
    if not need_trace:
        return value, torch.zeros_like(value)
    jac = jacobian_sqnorm(critic, real, jacobian, probes, seed, outputs=outputs)
    trace = (-2.0 * slope + f1) * jac
    if (f2 != 0).any():
        (jt_phi,) = torch.autograd.grad(outputs, real, outputs, create_graph=True)
        trace = trace + f2 * jt_phi.reshape(real.shape[0], -1).pow(2).sum(1)
    return value, trace


def scale_terms(critic, real: torch.Tensor, kernel="gaussian", gradient_weight: float = 1.0,
                kernel_value: bool = True, jacobian: str = "exact", probes: int = 8, seed: int = 0,
                outputs: torch.Tensor = None) -> torch.Tensor:
    """v·k(X, X) + w·tr(Jᵀ H J) for each sample of the real batch (B, ...): (B,); σ² adds their mean to λ."""
    value, trace = smmd_terms(critic, real, kernel, jacobian, probes, seed, outputs,
                              need_trace=gradient_weight != 0)
    terms = gradient_weight * trace
    return terms + value if kernel_value else terms


def smmd_scale(critic, real: torch.Tensor, kernel="gaussian", lam: float = 1.0, gradient_weight: float = 1.0,
               kernel_value: bool = True, jacobian: str = "exact", probes: int = 8, seed: int = 0,
               outputs: torch.Tensor = None) -> torch.Tensor:
    """σ² = 1 / (λ + mean over the real batch of [v·k(X, X) + w·trace term]) (0-dim), differentiable in the
    critic's parameters. real (B, ...): the sample S; outputs: critic(real) if already computed from a real
    that requires grad. kernel: a Kernel or a name, smooth at a = b (not Laplacian or Energy).

    The defaults are the paper's form (λ + E[k(X, X) + trace]); gradient_weight=10, kernel_value=False,
    lam=1 is the reference implementation's 1 / (1 + 10·E‖J‖²_F) (with a Gaussian of bandwidth 1).
    """
    lam, gradient_weight, kernel_value = check_scale_form(lam, gradient_weight, kernel_value)
    terms = scale_terms(critic, real, kernel, gradient_weight, kernel_value, jacobian, probes, seed, outputs)
    return 1.0 / (lam + terms.mean())


def smmd2(critic, real: torch.Tensor, fake: torch.Tensor, kernel="gaussian", lam: float = 1.0,
          gradient_weight: float = 1.0, kernel_value: bool = True, jacobian: str = "exact", probes: int = 8,
          backend: str = "auto", precision: str = "highest", seed: int = 0) -> torch.Tensor:
    """SMMD² = σ² · MMD²_u(critic(fake), critic(real)) (0-dim), σ² from `smmd_scale` on the real batch.

    critic: a module or function mapping a batch (B, ...) to (B, D) or (B,); real, fake: batches of inputs.
    kernel (default Gaussian of bandwidth 1, as the reference implementation); lam, gradient_weight and
    kernel_value choose the scale's form (`smmd_scale`: the paper's by default, the reference code's with
    gradient_weight=10, kernel_value=False); jacobian ("exact" or "hutchinson" with `probes` and `seed`);
    backend and
    precision (of the fused MMD²) as in `fastmmd.mmd2`.
    Differentiable in the critic's parameters (double backprop through the scale) and in fake.
    """
    lam, gradient_weight, kernel_value = check_scale_form(lam, gradient_weight, kernel_value)
    check_critic_input(real, "real")
    check_critic_input(fake, "fake")
    real = real if real.requires_grad else real.detach().requires_grad_(True)
    phi_real = critic_outputs(critic, real)
    phi_fake = critic_outputs(critic, fake)
    scale = smmd_scale(critic, real, kernel, lam, gradient_weight, kernel_value, jacobian, probes, seed,
                       outputs=phi_real)
    return scale * mmd2(phi_fake, phi_real, kernel=kernel, estimator="unbiased", backend=backend,
                        precision=precision)
