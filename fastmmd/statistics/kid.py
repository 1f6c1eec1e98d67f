"""kid: the Kernel Inception Distance, the unbiased MMD² with the cubic polynomial kernel between two sets
of features (docs/kid.md), exactly over all pairs or in the published subset conventions.

No Gram matrix is formed: each MMD² is one fused pass (`fastmmd.mmd2`), the exact estimate and its standard
deviation come from fused row sums (`fastmmd.mmd2_and_variance`); memory O((n + m)·d).

Precision: with precision="highest" (the default) float32 features are computed in IEEE float32 (float32
kernel values, float64 totals). Measured on the CPU backend (2-core AMD EPYC, AVX-512) with 10,000 × 2048
synthetic nonnegative (ReLU, inception-like) features per set and KID from 5.7e-4 to 3.2e-2, float32
features give the KID of the same features in float64 to within 2e-7 relative (exact) and 7e-7 (100
subsets of 1000), under 5e-10 absolute, and the std to within 3e-6: well inside 1e-4. float64 (pass
float64 features) costs 2.1-2.4× the time there (exact KID with its std: 5.8 s vs 12-13 s; 100 subsets of
1000: 7-8 s vs 14-17 s). On a GPU, precision="tf32" and "bf16" are faster and multiply operands rounded to
10 and 7 mantissa bits: emulated on the CPU (docs/numerics.md, section 5), exact KID moves by up to 8e-6
(tf32) and 2e-5 (bf16) relative for a KID near 3.7e-3, and by up to 2e-4 and 5e-3 for one near 2e-5. Use
them for monitoring, not for numbers to report.
"""
from __future__ import annotations

import math
from typing import NamedTuple, Optional

import numpy as np
import torch

from fastmmd.backends import select_backend
from fastmmd.common.arrays import as_tensors
from fastmmd.common.validation import check_choice, check_finite, check_precision, check_same_space, check_samples
from fastmmd.formulas.kid_subsets import (
    KID_MODES,
    check_subset_seed,
    check_subset_sizes,
    iter_kid_subsets,
    subset_count,
)
from fastmmd.kernels import Polynomial
from fastmmd.ops.mmd2 import mmd2
from fastmmd.ops.numerics import frame_for
from fastmmd.statistics.kid_split import split_kid
from fastmmd.statistics.mmd2_and_variance import check_in_range, check_variance_sizes, mmd2_and_variance

__all__ = ["KIDResult", "kid", "default_subset_size"]

DEFAULT_SUBSET_SIZE = 1000  # torchmetrics, torch-fidelity, clean-fid
TF_GAN_BLOCK_SIZE = 1024  # TF-GAN's max_block_size


class KIDResult(NamedTuple):
    """mean: the KID (numpy float64 for numpy inputs, else a 0-dim float64 tensor); std: its spread in the
    convention of `mode` (see `kid`); mode: "exact" or the compatibility mode used; subsets: the number of
    subsets (blocks for "tf-gan") averaged, None for "exact"; subset_size: rows per subset (the maximum block
    size for "tf-gan"), None for "exact"."""

    mean: object
    std: object
    mode: str
    subsets: Optional[int]
    subset_size: Optional[int]


def default_subset_size(mode: str) -> int:
    """The subset size of `mode` when none is given: 1024 for "tf-gan" (its max_block_size), else 1000."""
    return TF_GAN_BLOCK_SIZE if mode == "tf-gan" else DEFAULT_SUBSET_SIZE


def kid(real_feats, fake_feats, subsets=100, subset_size=None, seed=0, degree=3, gamma=None, coef0=1,
        mode="torchmetrics", backend="auto", precision="highest") -> KIDResult:
    """KID between real_feats (n, d) and fake_feats (m, d): the unbiased MMD² with the kernel
    k(a, b) = (gamma·aᵀb + coef0)^degree (gamma None: 1/d), as KIDResult(mean, std, mode, subsets,
    subset_size).

    Args:
        real_feats, fake_feats: features (tensors or numpy arrays, float32 or float64, same d, device and
            dtype, finite). numpy in gives numpy float64 scalars out.
        subsets: the number of random subsets; None for the exact estimate over all pairs of the full sets
            (then `mode`, `subset_size` and `seed` are not used).
        subset_size: rows drawn from each set per subset (default 1000; for "tf-gan" the maximum block size,
            default 1024). Each set must hold at least subset_size rows: never shrunk silently.
        seed: seeds the subset draw (see `mode`).
        mode: the published convention to reproduce (fastmmd.formulas.kid_subsets gives the sources read):
            "torchmetrics": per subset, subset_size rows of each set drawn without replacement
                (torch.randperm, real then fake, from a torch.Generator seeded with `seed`: the subsets
                torchmetrics draws after torch.manual_seed(seed)); mean and population std (ddof = 0,
                torchmetrics' `kid_scores.std(unbiased=False)`) of the per-subset MMD².
            "torch-fidelity": the same with numpy: np.random.RandomState(seed).choice(..., replace=False),
                real then fake, as torch-fidelity with rng_seed=seed (its default is 2020); mean and
                np.std (ddof = 0).
            "clean-fid": np.random.RandomState(seed).choice, fake then real, as clean-fid after
                np.random.seed(seed); the mean is clean-fid's KID. clean-fid reports no std; the std here is
                the population std (ddof = 0) over its subsets.
            "tf-gan": TF-GAN's kernel_classifier_distance_and_std: ceil(max(n, m) / subset_size) disjoint
                consecutive blocks of each set in the given order (rows should be in random order), mean
                over blocks and its standard error sqrt(Σ(e_b - mean)² / (B - 1) / B) (NaN for one block,
                as TF-GAN).
        degree, gamma, coef0: the polynomial kernel (KID: 3, 1/d, 1).
        backend: "auto", "triton", "cpu" or "reference" (the exact estimate needs one with kernel_matmul).
        precision: "highest" (IEEE float32 for float32 features: agrees with float64 to ~1e-6 relative, see
            the module docstring), "tf32" or "bf16" (GPU; faster, less accurate). The exact estimate in those
            without gradients takes its degree <= 2 part exactly in float64 and only the rest from the
            low-precision pairs (fastmmd.statistics.kid_split; docs/numerics.md, section 5).

    Returns KIDResult. For subsets=None: mean = the unbiased MMD² over all pairs (n, m >= 4), std = the
    square root of the unbiased estimate of that estimator's variance (clamped at 0): the standard deviation
    of the estimator over fresh samples of sizes n and m, not a spread across subsets, so it is much
    smaller than the subset modes' std. Both are differentiable in features that require grad (KID as a
    training objective, on every backend through fused passes; docs/learned_kernels.md); the subset modes
    are not (their results carry no gradient).
    """
    (x, y), output = as_tensors(real_feats=real_feats, fake_feats=fake_feats)
    check_samples(x, "real_feats")
    check_samples(y, "fake_feats")
    check_same_space(x, y, ("real_feats", "fake_feats"))
    check_choice("mode", mode, KID_MODES)
    check_precision(precision)
    kernel = Polynomial(degree=degree, gamma=gamma, coef0=coef0)
    check_finite(x, "real_feats")
    check_finite(y, "fake_feats")
    if subsets is None:  # differentiable in the features that require grad: KID as a loss
        check_variance_sizes(real_feats=x, fake_feats=y)
        split = _split_backend(x, y, kernel, backend, precision)
        if split is not None:  # a low precision without gradients: the degrees <= 2 exact (kid_split)
            value, variance = split_kid(x, y, kernel, split, precision)
            check_in_range(value, variance)
        else:
            value, variance = mmd2_and_variance(x, y, kernel=kernel, backend=backend, precision=precision)
        std = variance.clamp_min(0.0).sqrt()
        return KIDResult(output(value), output(std), "exact", None, None)
    x, y = x.detach(), y.detach()

    size = default_subset_size(mode) if subset_size is None else subset_size
    check_subset_sizes(x.shape[0], y.shape[0], mode, subsets, size)
    size = int(size)
    if mode != "tf-gan":
        subsets, seed = int(subsets), check_subset_seed(mode, seed)
    count = subset_count(x.shape[0], y.shape[0], mode, subsets, size)
    # The subsets of a random mode all have `size` rows: gathered into the same two buffers (a fresh 8 MB
    # gather per subset leaves glibc's heap holding hundreds of MB); TF-GAN's blocks are row ranges (views).
    buffers = (x.new_empty((size, x.shape[1])), y.new_empty((size, y.shape[1]))) if mode != "tf-gan" else None
    values = torch.empty(count, dtype=torch.float64, device=x.device)
    with torch.no_grad():
        for i, (real, fake) in enumerate(iter_kid_subsets(x.shape[0], y.shape[0], mode, subsets, size, seed)):
            if buffers is None:  # consecutive rows
                xs, ys = x[int(real[0]):int(real[-1]) + 1], y[int(fake[0]):int(fake[-1]) + 1]
            else:
                xs, ys = _gather(x, real, buffers[0]), _gather(y, fake, buffers[1])
            values[i] = mmd2(xs, ys, kernel=kernel, estimator="unbiased", backend=backend, precision=precision)
    mean, std = _aggregate(values, mode)
    return KIDResult(output(mean), output(std), mode, count, size)


def _split_backend(x: torch.Tensor, y: torch.Tensor, kernel: Polynomial, backend: str, precision: str):
    """The fused backend that computes exact KID split by degree (fastmmd.statistics.kid_split): in a low
    precision, without gradients, on data in the compute dtype's range; None otherwise."""
    if precision == "highest" or (torch.is_grad_enabled() and (x.requires_grad or y.requires_grad)):
        return None
    chosen = select_backend(backend, x, y, kernel, None, precision, op="kernel_matmul")
    frame = frame_for(kernel, x, y)
    if not chosen.fused or not frame.finite or frame.factor != 1.0 or frame.value_factor != 1.0:
        return None
    return chosen


def _gather(t: torch.Tensor, index: np.ndarray, out: torch.Tensor) -> torch.Tensor:
    """The rows `index` of t (n, d) written into out (len(index), d)."""
    return torch.index_select(t, 0, torch.from_numpy(index).to(t.device), out=out)


def _aggregate(values: torch.Tensor, mode: str):
    """(mean, std) of the per-subset estimates (B,) float64 in `mode`'s convention."""
    mean = values.mean()
    count = values.shape[0]
    if mode == "tf-gan":
        if count < 2:
            return mean, values.new_tensor(math.nan)
        return mean, (values.var(correction=1) / count).sqrt()
    return mean, values.std(correction=0)
