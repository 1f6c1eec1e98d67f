"""Benchmark of ``fastmmd.kid``: the exact KID over all pairs (fused, with its std) and the torchmetrics-style
KID over random subsets (one fused MMD² per subset), against the same two computations with materialised
Gram matrices, as the published implementations compute them; float32 features, cubic polynomial kernel.

Run through ``python -m bench.run kid`` (JSON -> CSV -> tables), or directly:
``pytest bench/bench_kid.py --bench-suite quick --benchmark-json out.json``.

Implementations (the CSV's ``impl``):
- ``naive``: the exact KID (unbiased MMD² of the full sets) with the three Gram matrices materialised in
  torch, mean only (as a user would write it; memory 3·n² floats and a temporary).
- ``naive-subsets``: torchmetrics' KernelInceptionDistance.compute: per subset two ``torch.randperm`` draws,
  three materialised subset-size² Gram matrices; mean and std over the subsets.
- ``fastmmd-exact``: ``fastmmd.kid(subsets=None)``: unbiased MMD² over all pairs and its std (four fused
  passes of n·m pairs each: twice the pairs of one ``fastmmd.mmd2``).
- ``fastmmd-subsets``: ``fastmmd.kid(mode="torchmetrics")``: one fused MMD² per subset.
Subsets: 100 of 1000 (quick suite: 10 of 500). Features: ReLU of Gaussians (nonnegative, like pool3
activations), d = 2048.

Suites (``--bench-suite``): cpu full and headline: n = m = 10000; cpu quick: n = m = 1000. cuda full:
n = m in {10000, 50000, 100000}; headline: 50000 and 100000; quick: 10000. ``naive`` is skipped, with the
memory it would need, where that is over ``--bench-max-gb``.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Callable, Optional

import pytest
import torch

from bench import naive
from bench.case_runner import parametrize_cases, run_case

BENCH = "kid"
D = 2048
KERNEL = "poly3"  # (aᵀb / d + 1)³


@dataclass(frozen=True)
class KidCase:
    """real: (n, d), fake: (m, d) float32; the subset impls use `subsets` subsets of `subset_size` rows."""

    n: int
    m: int
    d: int = D
    subsets: int = 100
    subset_size: int = 1000
    dtype: str = "float32"

    @property
    def id(self) -> str:
        return f"n{self.n}-m{self.m}-d{self.d}-s{self.subsets}x{self.subset_size}"

    def params(self) -> dict:
        """The case's columns in the CSV (those of bench_mmd2: every KID case is a forward pass)."""
        return {"mode": "fwd", "n": self.n, "m": self.m, "d": self.d, "kernel": KERNEL, "dtype": self.dtype}


def cases(suite: str, device: str = "cpu") -> list:
    """The cases of ``suite`` ("full", "headline", "quick") on ``device`` ("cpu", "cuda")."""
    if suite not in ("full", "headline", "quick"):
        raise ValueError(f"unknown suite {suite!r}")
    if device == "cpu":
        if suite == "quick":
            return [KidCase(1000, 1000, subsets=10, subset_size=500)]
        return [KidCase(n, n) for n in ((10000,) if suite == "headline" else (10000, 50000))]
    if device != "cuda":
        raise ValueError(f"unknown device {device!r}")
    sizes = {"quick": (10000,), "headline": (50000, 100000), "full": (10000, 50000, 100000)}[suite]
    return [KidCase(n, n) for n in sizes]


# ------------------------------------------------------------------------------------------ implementations


def _poly_gram(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a @ b.T / a.shape[1] + 1.0) ** 3


def naive_exact(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The unbiased MMD² with the three Gram matrices materialised."""
    n, m = x.shape[0], y.shape[0]
    k_xx = _poly_gram(x, x)
    term_xx = (k_xx.sum() - k_xx.diagonal().sum()) / (n * (n - 1))
    del k_xx
    k_yy = _poly_gram(y, y)
    term_yy = (k_yy.sum() - k_yy.diagonal().sum()) / (m * (m - 1))
    del k_yy
    return term_xx + term_yy - 2 * _poly_gram(x, y).mean()


def naive_subsets(x: torch.Tensor, y: torch.Tensor, subsets: int, size: int):
    """torchmetrics' KernelInceptionDistance.compute (poly_mmd on randperm subsets; mean, std ddof 0)."""
    scores = []
    for _ in range(subsets):
        f_real = x[torch.randperm(x.shape[0])[:size].to(x.device)]
        f_fake = y[torch.randperm(y.shape[0])[:size].to(y.device)]
        k_11, k_22, k_12 = _poly_gram(f_real, f_real), _poly_gram(f_fake, f_fake), _poly_gram(f_real, f_fake)
        m = size
        value = (k_11.sum() - k_11.diagonal().sum() + k_22.sum() - k_22.diagonal().sum()) / (m * (m - 1))
        scores.append(value - 2 * k_12.sum() / (m * m))
    scores = torch.stack(scores)
    return scores.mean(), scores.std(unbiased=False)


def _fastmmd_kid(exact: bool) -> Callable:
    def run(x: torch.Tensor, y: torch.Tensor, case: KidCase):
        from fastmmd.statistics.kid import kid

        if exact:
            return kid(x, y, subsets=None)
        return kid(x, y, subsets=case.subsets, subset_size=case.subset_size, mode="torchmetrics")

    return run


IMPLS = {
    "naive": lambda x, y, case: naive_exact(x, y),
    "naive-subsets": lambda x, y, case: naive_subsets(x, y, case.subsets, case.subset_size),
    "fastmmd-exact": _fastmmd_kid(True),
    "fastmmd-subsets": _fastmmd_kid(False),
}


def unavailable(impl: str, device: str) -> Optional[str]:
    if device == "cuda" and not torch.cuda.is_available():
        return "CUDA is not available"
    if impl.startswith("fastmmd"):
        try:
            importlib.import_module("fastmmd")
        except ImportError as exc:
            return f"fastmmd does not import: {exc}"
    return None


def features(n: int, d: int, seed: int, shift: float, device: str) -> torch.Tensor:
    """Nonnegative float32 features: ReLU of Gaussians, the fake ones shifted."""
    gen = torch.Generator().manual_seed(seed)
    return torch.relu(torch.randn(n, d, generator=gen) + shift - 0.2).to(device)


def make_call(case: KidCase, impl: str, device: str) -> Callable[[], object]:
    """The inputs of ``case`` on ``device`` (the same values every time) and a callable running ``impl``."""
    x, y = features(case.n, case.d, 0, 0.0, device), features(case.m, case.d, 1, 0.05, device)
    fn = IMPLS[impl]

    def call():
        with torch.no_grad():
            torch.manual_seed(0)  # naive-subsets draws from the global generator, as torchmetrics does
            return fn(x, y, case)

    return call


def estimated_bytes(case: KidCase, impl: str) -> int:
    """What ``naive`` needs beyond its inputs (bench/naive.py's forward estimate); 0 for the others."""
    if impl != "naive":
        return 0
    return naive.peak_bytes_estimate(case.n, case.m, 1, 4, backward=False)


# ----------------------------------------------------------------------------------------------- the test


def pytest_generate_tests(metafunc):
    parametrize_cases(metafunc, cases, IMPLS)


def test_kid(benchmark, bench_options, bench_not_timed, bench_measured, case, impl):
    reason = unavailable(impl, bench_options.device)
    if reason is not None:
        pytest.skip(reason)
    tiny = KidCase(64, 64, case.d, subsets=2, subset_size=32)
    run_case(benchmark, bench_options, bench_not_timed, bench_measured, bench=BENCH, params=case.params(),
             impl=impl, make_call=make_call, args=(case, impl, bench_options.device),
             tiny_args=(tiny, impl, bench_options.device), estimated_bytes=estimated_bytes(case, impl))
