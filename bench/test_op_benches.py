"""Checks of bench_kid.py and bench_mmd_test.py (not of the timings): every implementation of a case computes
the same thing, the suites hold the stated cases, and the run's report has the side-by-side table.

    python -m pytest bench/test_op_benches.py -q      # a few seconds, CPU only
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from bench import bench_kid, bench_mmd_test
from bench.records import case_record, rows_from_benchmark_json
from bench.run import report


def test_kid_implementations_agree():
    case = bench_kid.KidCase(150, 120, d=32, subsets=4, subset_size=60)
    results = {impl: bench_kid.make_call(case, impl, "cpu")() for impl in bench_kid.IMPLS}
    exact = float(results["fastmmd-exact"].mean)
    assert float(results["naive"]) == pytest.approx(exact, rel=1e-4)
    # naive-subsets draws from the global generator after torch.manual_seed(0), as torchmetrics does, and
    # mode "torchmetrics" with seed 0 draws the same subsets.
    mean, std = results["naive-subsets"]
    assert float(mean) == pytest.approx(float(results["fastmmd-subsets"].mean), rel=1e-4)
    assert float(std) == pytest.approx(float(results["fastmmd-subsets"].std), rel=1e-3)


def test_kid_suites():
    assert [(c.n, c.d, c.subsets, c.subset_size) for c in bench_kid.cases("headline")] == [(10000, 2048, 100, 1000)]
    assert {c.n for c in bench_kid.cases("full", "cuda")} == {10000, 50000, 100000}
    assert bench_kid.estimated_bytes(bench_kid.KidCase(100000, 100000), "naive") > 80e9  # skipped on an H100
    assert bench_kid.estimated_bytes(bench_kid.KidCase(100000, 100000), "fastmmd-exact") == 0


def test_permutation_implementations_agree():
    case = bench_mmd_test.PermutationCase(40, 40, d=3, permutations=60)
    p = {impl: float(bench_mmd_test.make_call(case, impl, "cpu")()) for impl in bench_mmd_test.IMPLS}
    # The loop and the fused pass draw the same permutations (randperm from a generator seeded with 0).
    assert p["naive"] == p["naive-gram"] == p["fastmmd"]
    assert 1 / 61 <= p["fastmmd"] <= 1
    assert np.isfinite(p["fastmmd-one-mmd2"])


def test_permutation_suites():
    assert [(c.n, c.permutations) for c in bench_mmd_test.cases("headline")] == [(2000, 1000)]
    assert [c.permutations for c in bench_mmd_test.cases("quick")] == [100]
    assert max(c.n for c in bench_mmd_test.cases("full")) > bench_mmd_test.LOOP_MAX_N["cpu"]


def test_the_report_has_the_cost_of_the_permutations_in_mmd2_units():
    env = {"device": "Test CPU", "threads": 2, "torch": "2.x", "commit": "abc1234", "date": "2026-01-01T00:00:00"}
    params = bench_mmd_test.PermutationCase(2000, 2000).params()
    times = {"naive": 20.0, "naive-gram": 0.5, "fastmmd": 1.0, "fastmmd-one-mmd2": 0.02}
    data = {"machine_info": {"fastmmd_environment": env}, "benchmarks": [
        {"extra_info": case_record("mmd_test", params, impl, "ok", 1.0), "stats": {"median": t, "min": t, "rounds": 3}}
        for impl, t in times.items()
    ]}  # fmt: skip
    text = report(rows_from_benchmark_json(data), "mmd_test")
    assert "naive/fastmmd" in text and "20x" in text
    assert "P permutations / one MMD²" in text and " 50\n" in text + "\n"
    assert "TFLOP/s" not in text  # the mmd2 work counts do not apply


def test_tiny_cases_run_under_torch_no_grad():
    case = bench_mmd_test.PermutationCase(8, 8, d=2, permutations=3)
    with torch.enable_grad():
        assert bench_mmd_test.make_call(case, "fastmmd", "cpu")() is not None
