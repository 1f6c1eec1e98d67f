"""fastmmd.metrics.MMD: the MMD² between everything `update` was given as the two samples, as a metric.

    from fastmmd.metrics import MMD
    metric = MMD(kernel=fastmmd.Gaussian(bandwidth=[1, 2, 4]))
    metric.update(x_batch, real=True); metric.update(y_batch, real=False)
    metric.compute()                                   # 0-dim tensor: Lightning's self.log takes it as it is
"""
from __future__ import annotations

from typing import Callable, Optional

import torch

import fastmmd.distributed as fd
from fastmmd.common.validation import check_estimator, check_precision
from fastmmd.kernels import resolve_kernel
from fastmmd.metrics.base import TwoSampleMetric
from fastmmd.ops.mmd2 import mmd2
from fastmmd.statistics.mmd2_and_variance import mmd2_and_variance

__all__ = ["MMD"]

_SHARDED_ESTIMATORS = ("unbiased", "biased", "u-statistic")


class MMD(TwoSampleMetric):
    """MMD² between the stored "real" (update(..., real=True)) and "fake" samples, over all pairs.

    Args:
        kernel: a `fastmmd.Kernel` or a name (`fastmmd.mmd2`'s kernels).
        estimator: "unbiased" (default), "biased", "u-statistic" or "linear" (one process only).
        return_std: False (default): compute() gives the MMD² alone, a 0-dim tensor. True: (MMD², std), the
            std being the square root of the unbiased estimate of the estimator's variance (unbiased only;
            n, m >= 4 over all ranks).
        feature, reset_real_features, backend, precision, **kwargs: as `KernelInceptionDistance`.

    Over several ranks (sync_on_compute=True) the value is that of every rank's samples together, computed on
    fastmmd.distributed's ring without gathering them.
    """

    def __init__(self, kernel="gaussian", estimator: str = "unbiased", return_std: bool = False,
                 feature: Optional[Callable] = None, reset_real_features: bool = True, backend: str = "auto",
                 precision: str = "highest", **kwargs):
        super().__init__(feature=feature, reset_real_features=reset_real_features, **kwargs)
        self.kernel = resolve_kernel(kernel)
        self.estimator = check_estimator(estimator)
        if not isinstance(return_std, bool):
            raise TypeError(f"return_std must be a bool; got {return_std!r}")
        if return_std and estimator != "unbiased":
            raise ValueError(f"return_std=True needs estimator='unbiased' (its variance is what is estimated); "
                             f"got estimator={estimator!r}")
        self.return_std = return_std
        self.backend = backend
        self.precision = check_precision(precision)

    def _score(self, real: torch.Tensor, fake: torch.Tensor):
        if self.return_std:
            value, variance = mmd2_and_variance(real, fake, kernel=self.kernel, backend=self.backend,
                                                precision=self.precision)
            return value, variance.clamp_min(0.0).sqrt()
        return mmd2(real, fake, kernel=self.kernel, estimator=self.estimator, backend=self.backend,
                    precision=self.precision)

    def _score_sharded(self, real: torch.Tensor, fake: torch.Tensor, group):
        if self.return_std:
            value, variance = fd.mmd2_and_variance(real, fake, kernel=self.kernel, backend=self.backend,
                                                   precision=self.precision, group=group)
            return value, variance.clamp_min(0.0).sqrt()
        if self.estimator not in _SHARDED_ESTIMATORS:
            raise ValueError(f"estimator={self.estimator!r} is not available over several ranks; use one of "
                             f"{', '.join(map(repr, _SHARDED_ESTIMATORS))} or sync_on_compute=False")
        return fd.mmd2(real, fake, kernel=self.kernel, estimator=self.estimator, backend=self.backend,
                       precision=self.precision, group=group)
