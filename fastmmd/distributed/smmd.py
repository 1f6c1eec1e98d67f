"""fastmmd.distributed.smmd2 and smmd_scale: the scaled MMD² of a deep kernel over batches sharded across
ranks (docs/smmd.md). The scale's expectation over the real sample is the mean over every rank's real
shard (a differentiable all_reduce of the local sums and counts), and the MMD² is the ring's
(fastmmd.distributed.mmd2); both follow that op's gradient convention (sums over the ranks' losses)."""
from __future__ import annotations

import torch

from fastmmd.distributed.collectives import all_reduce_sum
from fastmmd.distributed.mmd2 import mmd2
from fastmmd.ops.smmd import check_scale_form, critic_outputs, scale_terms

__all__ = ["smmd_scale", "smmd2"]


def smmd_scale(critic, real_local: torch.Tensor, kernel="gaussian", lam: float = 1.0,
               gradient_weight: float = 1.0, kernel_value: bool = True, jacobian: str = "exact", probes: int = 8,
               seed: int = 0, outputs: torch.Tensor = None, group=None) -> torch.Tensor:
    """σ² = 1 / (λ + mean over the real samples of every rank of [v·k(X, X) + w·trace term]) (0-dim, the same
    on every rank), differentiable in the critic's parameters; arguments (and the two published forms of the
    scale) as `fastmmd.smmd_scale`, real_local this rank's shard of the real batch. Collective."""
    lam, gradient_weight, kernel_value = check_scale_form(lam, gradient_weight, kernel_value)
    terms = scale_terms(critic, real_local, kernel, gradient_weight, kernel_value, jacobian, probes, seed,
                        outputs)
    count = torch.full((), terms.shape[0], dtype=terms.dtype, device=terms.device)
    totals = all_reduce_sum(torch.stack([terms.sum(), count]), group)
    return 1.0 / (lam + totals[0] / totals[1])


def smmd2(critic, real_local: torch.Tensor, fake_local: torch.Tensor, kernel="gaussian", lam: float = 1.0,
          gradient_weight: float = 1.0, kernel_value: bool = True, jacobian: str = "exact", probes: int = 8,
          backend: str = "auto", precision: str = "highest", seed: int = 0, group=None) -> torch.Tensor:
    """SMMD² = σ² · MMD²_u(critic(fake), critic(real)) over the batches whose shards the ranks hold (0-dim,
    on every rank); arguments as `fastmmd.smmd2`. Collective; every rank must backpropagate through it (see
    `fastmmd.distributed.mmd2` for the gradient convention)."""
    lam, gradient_weight, kernel_value = check_scale_form(lam, gradient_weight, kernel_value)
    real = real_local if real_local.requires_grad else real_local.detach().requires_grad_(True)
    phi_real = critic_outputs(critic, real)
    phi_fake = critic_outputs(critic, fake_local)
    scale = smmd_scale(critic, real, kernel, lam, gradient_weight, kernel_value, jacobian, probes, seed,
                       outputs=phi_real, group=group)
    return scale * mmd2(phi_fake, phi_real, kernel=kernel, estimator="unbiased", backend=backend,
                        precision=precision, group=group)
