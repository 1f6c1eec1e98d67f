"""Benchmark of ``fastmmd.mmd_test``: P permutations in one fused pass, against a Python loop over the
permutations and against the same algebra on a materialised Gram matrix; and the cost of the P permutations
in units of one MMD². Unbiased estimator, one Gaussian of bandwidth sqrt(d), float32.

Run through ``python -m bench.run mmd_test`` (JSON -> CSV -> tables), or directly:
``pytest bench/bench_mmd_test.py --bench-suite quick --benchmark-json out.json``.

Implementations (the CSV's ``impl``):
- ``naive``: a Python loop over the P permutations, each a ``fastmmd.mmd2`` call on the relabelled samples
  (what one writes with an MMD² function in hand); skipped where n > LOOP_MAX_N (it would take minutes).
- ``naive-gram``: K(Z, Z) materialised once (torch), all P statistics from K @ W (the same quadratic forms
  as fastmmd's, with BLAS): memory N² + N·P floats.
- ``fastmmd``: ``fastmmd.mmd_test(permutations=P)``, one fused pass, memory O(N·(d + P)).
- ``fastmmd-one-mmd2``: one ``fastmmd.mmd2(x, y)``, the unit of the ratio "P permutations / one MMD²".
The side-by-side table of ``bench.run`` adds that ratio per case.

Suites (``--bench-suite``), P = 1000 (quick: 100), d = 64, n = m:
cpu full: n in {500, 1000, 2000, 4000}; headline: 2000; quick: 200.
cuda full: n in {4096, 16384, 32768}; headline: 16384 and 32768; quick: 4096.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Callable, Optional

import pytest
import torch

from bench.case_runner import parametrize_cases, run_case, time_ratio_table

BENCH = "mmd_test"
D = 64
LOOP_MAX_N = {"cpu": 2000, "cuda": 4096}


@dataclass(frozen=True)
class PermutationCase:
    """x: (n, d), y: (m, d) float32; `permutations` relabellings."""

    n: int
    m: int
    d: int = D
    permutations: int = 1000
    dtype: str = "float32"

    @property
    def bandwidth(self) -> float:
        return self.d ** 0.5

    @property
    def id(self) -> str:
        return f"n{self.n}-m{self.m}-d{self.d}-P{self.permutations}"

    def params(self) -> dict:
        """The case's columns in the CSV (those of bench_mmd2; P is the suite's, see the module docstring)."""
        return {"mode": "fwd", "n": self.n, "m": self.m, "d": self.d, "kernel": "gaussian1", "dtype": self.dtype}


def cases(suite: str, device: str = "cpu") -> list:
    """The cases of ``suite`` ("full", "headline", "quick") on ``device`` ("cpu", "cuda")."""
    grids = {
        "cpu": {"quick": (200,), "headline": (2000,), "full": (500, 1000, 2000, 4000)},
        "cuda": {"quick": (4096,), "headline": (16384, 32768), "full": (4096, 16384, 32768)},
    }
    if device not in grids:
        raise ValueError(f"unknown device {device!r}")
    if suite not in grids[device]:
        raise ValueError(f"unknown suite {suite!r}")
    permutations = 100 if suite == "quick" else 1000
    return [PermutationCase(n, n, permutations=permutations) for n in grids[device][suite]]


# ------------------------------------------------------------------------------------------ implementations


def _kernel(case: PermutationCase):
    import fastmmd

    return fastmmd.Gaussian(bandwidth=case.bandwidth)


def loop_test(x: torch.Tensor, y: torch.Tensor, case: PermutationCase) -> torch.Tensor:
    """P calls of fastmmd.mmd2 on relabelled pools; returns the p-value."""
    import fastmmd

    kernel = _kernel(case)
    pool, n = torch.cat([x, y]), x.shape[0]
    observed = fastmmd.mmd2(x, y, kernel)
    gen = torch.Generator().manual_seed(0)
    exceed = 0
    for _ in range(case.permutations):
        perm = torch.randperm(pool.shape[0], generator=gen).to(pool.device)
        exceed += int(fastmmd.mmd2(pool[perm[:n]], pool[perm[n:]], kernel) >= observed)
    return torch.tensor((1 + exceed) / (1 + case.permutations), dtype=torch.float64)


def gram_test(x: torch.Tensor, y: torch.Tensor, case: PermutationCase) -> torch.Tensor:
    """The statistics of fastmmd.formulas.permutations with K(Z, Z) materialised (N², float32)."""
    from fastmmd.formulas.permutations import (
        label_weights,
        observed_labels,
        permutation_labels,
        unbiased_coefficients,
    )

    pool, n, m = torch.cat([x, y]), x.shape[0], y.shape[0]
    gram = _kernel(case).gram(pool, pool)
    gram.fill_diagonal_(0.0)
    labels = torch.cat([observed_labels(n, m, pool.device), permutation_labels(n, m, case.permutations, 0,
                                                                               pool.device)], dim=1)
    weights = label_weights(labels, n, m, pool.dtype)
    rows = gram.sum(1)
    quadratic = (weights * (gram @ weights)).sum(0)
    alpha, beta, gamma = unbiased_coefficients(n, m)
    values = alpha * quadratic + 2 * beta * (weights.T @ rows) + gamma * rows.sum()
    return (1 + (values[1:] >= values[0]).sum()).double() / (1 + case.permutations)


def fused_test(x: torch.Tensor, y: torch.Tensor, case: PermutationCase):
    from fastmmd.statistics.mmd_test import mmd_test

    return mmd_test(x, y, _kernel(case), permutations=case.permutations).p_value


def one_mmd2(x: torch.Tensor, y: torch.Tensor, case: PermutationCase) -> torch.Tensor:
    import fastmmd

    return fastmmd.mmd2(x, y, _kernel(case))


IMPLS = {"naive": loop_test, "naive-gram": gram_test, "fastmmd": fused_test, "fastmmd-one-mmd2": one_mmd2}


def unavailable(device: str) -> Optional[str]:
    if device == "cuda" and not torch.cuda.is_available():
        return "CUDA is not available"
    try:
        importlib.import_module("fastmmd")
    except ImportError as exc:
        return f"fastmmd does not import: {exc}"
    return None


def make_call(case: PermutationCase, impl: str, device: str) -> Callable[[], object]:
    """The inputs of ``case`` on ``device`` (the same values every time) and a callable running ``impl``."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(case.n, case.d, generator=gen).to(device)
    y = (1.05 * torch.randn(case.m, case.d, generator=gen)).to(device)
    fn = IMPLS[impl]

    def call():
        with torch.no_grad():
            return fn(x, y, case)

    return call


def estimated_bytes(case: PermutationCase, impl: str) -> int:
    """``naive-gram``'s N² Gram matrix, its N² kernel temporaries and the N·P weights and products."""
    if impl != "naive-gram":
        return 0
    big_n = case.n + case.m
    return 4 * (3 * big_n * big_n + 3 * big_n * (case.permutations + 1))


def side_by_side(rows) -> str:
    """What ``python -m bench.run mmd_test`` prints after the ratio table: the cost of P permutations in
    units of one MMD² (fastmmd / fastmmd-one-mmd2)."""
    table = time_ratio_table([r for r in rows if r["bench"] == BENCH], "fastmmd", "fastmmd-one-mmd2",
                             "P permutations / one MMD²")
    return "cost of the permutations in MMD² evaluations (fastmmd / fastmmd-one-mmd2):\n" + table if table else ""


# ----------------------------------------------------------------------------------------------- the test


def pytest_generate_tests(metafunc):
    parametrize_cases(metafunc, cases, IMPLS)


def test_mmd_test(benchmark, bench_options, bench_not_timed, bench_measured, case, impl):
    device = bench_options.device
    reason = unavailable(device)
    if reason is not None:
        pytest.skip(reason)
    skip = None
    if impl == "naive" and case.n > LOOP_MAX_N[device]:
        skip = f"skipped: n > {LOOP_MAX_N[device]}"  # P mmd2 calls would take minutes
    tiny = PermutationCase(32, 32, case.d, permutations=4)
    run_case(benchmark, bench_options, bench_not_timed, bench_measured, bench=BENCH, params=case.params(),
             impl=impl, make_call=make_call, args=(case, impl, device), tiny_args=(tiny, impl, device),
             estimated_bytes=estimated_bytes(case, impl), skip_reason=skip)
