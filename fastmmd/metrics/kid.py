"""fastmmd.metrics.KernelInceptionDistance: torchmetrics' KID metric with the exact estimate by default.

    from fastmmd.metrics import KernelInceptionDistance
    kid = KernelInceptionDistance(feature=inception)   # or feature=None and update() with features
    kid.update(real_images, real=True)
    kid.update(fake_images, real=False)
    kid_mean, kid_std = kid.compute()                  # exact over all pairs, and its standard deviation

compute() is `fastmmd.kid` on the stored features (docs/kid.md): subsets=None (the default) gives the unbiased
MMD² over all pairs and the square root of the unbiased estimate of its variance; subsets=100 with
mode="torchmetrics" gives torchmetrics' number (its subsets after torch.manual_seed(seed)).
"""
from __future__ import annotations

from typing import Callable, Optional, Tuple

import torch

import fastmmd.distributed as fd
from fastmmd.common.validation import check_choice, check_precision, real_number, whole_number
from fastmmd.formulas.kid_subsets import KID_MODES, check_subset_seed
from fastmmd.metrics.base import TwoSampleMetric
from fastmmd.statistics.kid import kid

__all__ = ["KernelInceptionDistance"]


class KernelInceptionDistance(TwoSampleMetric):
    """KID between the stored real and fake features: the unbiased MMD² with the kernel
    k(a, b) = (gamma·aᵀb + coef)^degree (gamma None: 1/d).

    Args:
        feature: None (update receives (batch, d) features) or a callable, typically an nn.Module (then a
            submodule, moved by .to()), mapping a batch of inputs to (batch, d) features.
        subsets: None (default) for the exact estimate over all pairs with its standard deviation; an
            integer for the mean and spread over that many random subsets, as `mode` draws them.
        subset_size: rows per subset (default 1000; for mode="tf-gan" the maximum block size, default 1024).
        degree, gamma, coef: the polynomial kernel (KID: 3, 1/d, 1).
        reset_real_features: False keeps the real features across reset() (a fixed reference set).
        mode: the published subset convention (`fastmmd.kid`): "torchmetrics" (default), "torch-fidelity",
            "clean-fid" or "tf-gan".
        seed: seeds the subset draw: seed=s draws torchmetrics' subsets after torch.manual_seed(s).
        backend, precision: as `fastmmd.kid`.
        **kwargs: torchmetrics' Metric options (process_group, sync_on_compute, compute_on_cpu, ...);
            without torchmetrics, process_group and sync_on_compute only.

    compute() -> (kid_mean, kid_std), 0-dim float64 tensors. Over several ranks (sync_on_compute=True) the
    exact estimate is that of every rank's features together, computed on fastmmd.distributed's ring
    without gathering them; the subset modes gather them first, as torchmetrics does.
    """

    def __init__(self, feature: Optional[Callable] = None, subsets: Optional[int] = None,
                 subset_size: Optional[int] = None, degree: int = 3, gamma: Optional[float] = None,
                 coef: float = 1.0, reset_real_features: bool = True, mode: str = "torchmetrics", seed: int = 0,
                 backend: str = "auto", precision: str = "highest", **kwargs):
        super().__init__(feature=feature, reset_real_features=reset_real_features, **kwargs)
        self.subsets = None if subsets is None else whole_number(subsets, "subsets")
        self.subset_size = None if subset_size is None else whole_number(subset_size, "subset_size", 2)
        self.degree = whole_number(degree, "degree")
        self.gamma = None if gamma is None else real_number(gamma, "gamma", 0.0, strict=True)
        self.coef = real_number(coef, "coef", 0.0)
        self.mode = check_choice("mode", mode, KID_MODES)
        self.seed = check_subset_seed(mode, seed) if mode != "tf-gan" else seed
        self.backend = backend
        self.precision = check_precision(precision)

    @property
    def _needs_union(self) -> bool:
        return self.subsets is not None

    def _score(self, real: torch.Tensor, fake: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        result = kid(real, fake, subsets=self.subsets, subset_size=self.subset_size, seed=self.seed,
                     degree=self.degree, gamma=self.gamma, coef0=self.coef, mode=self.mode, backend=self.backend,
                     precision=self.precision)
        return result.mean, result.std

    def _score_sharded(self, real: torch.Tensor, fake: torch.Tensor, group) -> Tuple[torch.Tensor, torch.Tensor]:
        result = fd.kid(real, fake, degree=self.degree, gamma=self.gamma, coef0=self.coef, backend=self.backend,
                        precision=self.precision, group=group)
        return result.mean, result.std
