"""Benchmark of ``fastmmd.metrics.KernelInceptionDistance`` against torchmetrics' own
``KernelInceptionDistance``, as a training script uses them: a fresh metric, ``update`` with batches of 500
feature rows of each sample (copies, as a network's outputs would be), then ``compute()``. Time and peak
memory are those of the whole sequence, so the stored features count (n·d·4 bytes per sample).

Run through ``python -m bench.run metrics``, or directly:
``pytest bench/bench_metrics.py --bench-suite quick --benchmark-json out.json``.

Implementations (the CSV's ``impl``):
- ``torchmetrics``: torchmetrics.image.kid.KernelInceptionDistance(feature=nn.Identity()), its defaults:
  the mean and population std over 100 random subsets of 1000, three materialised 1000 × 1000 Gram
  matrices per subset.
- ``fastmmd-exact``: fastmmd.metrics.KernelInceptionDistance(): the unbiased MMD² over all pairs and the
  std of that estimator, fused (no Gram matrix).
- ``fastmmd-subsets``: fastmmd.metrics.KernelInceptionDistance(subsets=100): torchmetrics' subsets and
  numbers, one fused MMD² per subset.
Features: ReLU of Gaussians (nonnegative, like pool3 activations), float32, d = 2048.

Suites (``--bench-suite``): cpu full: n = m in {10000, 50000}; headline: 10000; quick: 1000 (10 subsets of
500). cuda: full {10000, 50000, 100000}, headline {50000}, quick {10000}.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import pytest
import torch

from bench.bench_kid import features
from bench.case_runner import parametrize_cases, run_case

BENCH = "metrics"
D = 2048
KERNEL = "poly3"
BATCH = 500


@dataclass(frozen=True)
class MetricCase:
    """n real and m fake feature rows of dimension d, fed in batches; the subset impls use `subsets`
    subsets of `subset_size` rows."""

    n: int
    m: int
    d: int = D
    subsets: int = 100
    subset_size: int = 1000

    @property
    def id(self) -> str:
        return f"n{self.n}-m{self.m}-d{self.d}-s{self.subsets}x{self.subset_size}"

    def params(self) -> dict:
        return {"mode": "update+compute", "n": self.n, "m": self.m, "d": self.d, "kernel": KERNEL,
                "dtype": "float32"}


def cases(suite: str, device: str = "cpu") -> list:
    """The cases of ``suite`` ("full", "headline", "quick") on ``device`` ("cpu", "cuda")."""
    if suite not in ("full", "headline", "quick"):
        raise ValueError(f"unknown suite {suite!r}")
    if device == "cpu":
        if suite == "quick":
            return [MetricCase(1000, 1000, subsets=10, subset_size=500)]
        return [MetricCase(n, n) for n in ((10000,) if suite == "headline" else (10000, 50000))]
    if device != "cuda":
        raise ValueError(f"unknown device {device!r}")
    sizes = {"quick": (10000,), "headline": (50000,), "full": (10000, 50000, 100000)}[suite]
    return [MetricCase(n, n) for n in sizes]


def _torchmetrics(case: MetricCase):
    from torchmetrics.image.kid import KernelInceptionDistance

    return KernelInceptionDistance(feature=torch.nn.Identity(), subsets=case.subsets, subset_size=case.subset_size)


def _fastmmd(exact: bool) -> Callable:
    def make(case: MetricCase):
        from fastmmd.metrics import KernelInceptionDistance

        if exact:
            return KernelInceptionDistance()
        return KernelInceptionDistance(subsets=case.subsets, subset_size=case.subset_size)

    return make


IMPLS = {"torchmetrics": _torchmetrics, "fastmmd-exact": _fastmmd(True), "fastmmd-subsets": _fastmmd(False)}


def make_call(case: MetricCase, impl: str, device: str) -> Callable[[], object]:
    """The features of ``case`` on ``device`` and a callable that feeds them to a fresh ``impl`` metric
    and computes it."""
    import warnings

    real, fake = features(case.n, case.d, 0, 0.0, device), features(case.m, case.d, 1, 0.05, device)
    make = IMPLS[impl]

    def call():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torchmetrics' notice that it stores the features
            metric = make(case).to(device)
        for start in range(0, case.n, BATCH):
            metric.update(real[start:start + BATCH].clone(), real=True)
        for start in range(0, case.m, BATCH):
            metric.update(fake[start:start + BATCH].clone(), real=False)
        torch.manual_seed(0)  # torchmetrics draws its subsets from the global generator
        return metric.compute()

    return call


def unavailable(impl: str, device: str):
    if device == "cuda" and not torch.cuda.is_available():
        return "CUDA is not available"
    try:
        import torchmetrics  # noqa: F401
    except ImportError:
        return "torchmetrics is not installed"
    return None


def pytest_generate_tests(metafunc):
    parametrize_cases(metafunc, cases, IMPLS)


def test_metrics(benchmark, bench_options, bench_not_timed, bench_measured, case, impl):
    reason = unavailable(impl, bench_options.device)
    if reason is not None:
        pytest.skip(reason)
    tiny = MetricCase(64, 64, case.d, subsets=2, subset_size=32)
    run_case(benchmark, bench_options, bench_not_timed, bench_measured, bench=BENCH, params=case.params(),
             impl=impl, make_call=make_call, args=(case, impl, bench_options.device),
             tiny_args=(tiny, impl, bench_options.device), preload=("torchmetrics", "fastmmd.metrics"))
