"""Test power as an objective, and the two-sample test with a kernel learned on half of the data
(Sutherland et al., ICLR 2017; Liu et al., ICML 2020; docs/learned_kernels.md).

Under the alternative, MMD²_u is asymptotically normal with variance Var; a test at level α rejects when
MMD²_u > c_α, so its power is about Φ(MMD² / sqrt(Var) − c_α / sqrt(Var)), and for large n the first term
dominates: J = MMD²_u / sqrt(Var) is the criterion to maximise over the kernel. The kernel must be chosen on
data the test does not see (else the test is no longer of level α), hence the split.
"""
from __future__ import annotations

import math
from typing import Iterable, NamedTuple, Optional

import torch

from fastmmd.common.arrays import as_tensors
from fastmmd.common.validation import check_seed, whole_number
from fastmmd.kernels import Kernel
from fastmmd.statistics.mmd2_and_variance import mmd2_and_variance
from fastmmd.statistics.mmd_test import mmd_test

__all__ = ["power_criterion", "learned_kernel_test", "LearnedTestResult", "DEFAULT_REG"]

# opt-mmd's min_var_est, and Liu et al.'s regulariser: keeps J finite where the variance estimate is ~0.
DEFAULT_REG = 1e-8


def _check_reg(reg) -> float:
    if isinstance(reg, bool) or not isinstance(reg, (int, float)) or not (math.isfinite(reg) and reg > 0):
        raise ValueError(f"reg must be a positive number; got {reg!r}")
    return float(reg)


def power_criterion(x, y, kernel="gaussian", reg: float = DEFAULT_REG, backend="auto", precision="highest"):
    """J = MMD²_u / sqrt(max(Var̂, reg)) of x (n, d) and y (m, d), n, m >= 4 -> 0-dim float64.

    Var̂ is the unbiased estimate of the variance of MMD²_u (`mmd2_and_variance`); J is differentiable in x,
    y and the kernel's learnable parameters (a `fastmmd.DeepKernel`, `Gaussian(bandwidth=log_s.exp())`),
    through fused passes: maximise it to learn a kernel for a test (`learned_kernel_test`). Below reg the
    denominator is sqrt(reg) (no gradient through the variance there). numpy in gives a numpy scalar.
    """
    reg = _check_reg(reg)
    (x, y), output = as_tensors(x=x, y=y)
    value, variance = mmd2_and_variance(x, y, kernel=kernel, backend=backend, precision=precision)
    return output(value / torch.sqrt(torch.clamp(variance, min=reg)))


class LearnedTestResult(NamedTuple):
    """statistic, p_value, null_samples: the permutation test on the held-out halves (fastmmd.mmd_test);
    criterion: J on the training halves after each step (steps,) float64; kernel: the kernel as trained."""

    statistic: object
    p_value: object
    null_samples: object
    criterion: torch.Tensor
    kernel: object


def _split(t: torch.Tensor, fraction: float, generator: torch.Generator):
    order = torch.randperm(t.shape[0], generator=generator).to(t.device)
    cut = int(round(fraction * t.shape[0]))
    return t[order[:cut]], t[order[cut:]]


def learned_kernel_test(x, y, kernel, parameters: Optional[Iterable[torch.Tensor]] = None, steps: int = 1000,
                        lr: float = 1e-3, train_fraction: float = 0.5, permutations: int = 200, seed: int = 0,
                        reg: float = DEFAULT_REG, optimizer=None, backend="auto", precision="highest"
                        ) -> LearnedTestResult:
    """A two-sample test with a learned kernel: split x and y, maximise `power_criterion` over the kernel's
    parameters on the training parts (full batch, Adam), then the permutation test on the held-out parts.

    Args:
        x (n, d), y (m, d): the samples (tensors; each part needs at least 4 rows).
        kernel: a kernel that learns (a `fastmmd.DeepKernel`, an nn.Module), or a callable returning one
            (for `Gaussian(bandwidth=log_s.exp())`: `lambda: fastmmd.Gaussian(bandwidth=log_s.exp())`).
        parameters: the tensors to optimise (default: `kernel.parameters()` of an nn.Module).
        steps, lr: Adam's steps and learning rate, unless `optimizer` (a torch optimizer over the parameters)
            is given. train_fraction: the share of each sample the kernel is trained on (its order drawn
            with `seed`). permutations, seed: the test (fastmmd.mmd_test, alternative "greater").
    Returns LearnedTestResult; the test is of level α for any training, since it never sees the training
    parts. Liu et al. (2020) train 1000 full-batch steps (docs/learned_kernels.md has their settings).
    """
    (x, y), _ = as_tensors(x=x, y=y)
    steps = whole_number(steps, "steps", minimum=0)
    if isinstance(kernel, Kernel) and kernel.learnable:
        raise TypeError("kernel holds tensors computed from the parameters before the first step; pass a callable "
                        "that builds it from them at each step, e.g. lambda: fastmmd.Gaussian(bandwidth=log_s.exp())")
    if not (isinstance(train_fraction, (int, float)) and 0 < train_fraction < 1):
        raise ValueError(f"train_fraction must be in (0, 1); got {train_fraction!r}")
    seed = check_seed(seed)
    make = kernel if callable(kernel) and not isinstance(kernel, torch.nn.Module) else (lambda: kernel)
    if parameters is None:
        if not isinstance(kernel, torch.nn.Module):
            raise TypeError("parameters must be given unless kernel is an nn.Module")
        parameters = kernel.parameters()
    parameters = [p for p in parameters if p.requires_grad]
    if optimizer is None:
        if not parameters:
            raise ValueError("parameters holds no tensor that requires grad: there is nothing to learn")
        optimizer = torch.optim.Adam(parameters, lr=lr)
    generator = torch.Generator().manual_seed(seed)
    x_train, x_test = _split(x, train_fraction, generator)
    y_train, y_test = _split(y, train_fraction, generator)
    history = torch.empty(steps, dtype=torch.float64)
    for step in range(steps):
        optimizer.zero_grad()
        criterion = power_criterion(x_train, y_train, make(), reg=reg, backend=backend, precision=precision)
        (-criterion).backward()
        optimizer.step()
        history[step] = criterion.detach()
    trained = make()
    result = mmd_test(x_test, y_test, trained, permutations=permutations, seed=seed, backend=backend,
                      precision=precision)
    return LearnedTestResult(result.statistic, result.p_value, result.null_samples, history, trained)
