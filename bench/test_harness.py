"""Checks of the benchmark harness itself (not of fastmmd's numbers); run when asked:

    python -m pytest bench/test_harness.py -q

About 15 s on two cores; the slowest part measures the naive path's peak at n = 3072.
"""
from __future__ import annotations

import time

import pytest
import torch

from bench import naive
from bench.bench_mmd2 import IMPLS, Mmd2Case, cases, make_call, unavailable
from bench.harness import (
    MB,
    cpu_peak_memory,
    cuda_peak_memory,
    is_out_of_memory,
    memory_budget_verdict,
    plan_rounds,
    time_callable,
)
from bench.plot import plot_csv, select_rows
from bench.records import (
    ENV_KEY,
    NOT_TIMED_KEY,
    append_rows,
    case_record,
    git_commit,
    read_rows,
    rows_from_benchmark_json,
)
from bench.run import ratio_table

# ------------------------------------------------------------------------------------------------ timing


def test_time_callable_warms_up_then_times_each_repeat():
    calls = []

    def fn():
        calls.append(1)
        time.sleep(0.01)

    timing = time_callable(fn, warmup=2, repeats=3)
    assert len(calls) == 5
    assert len(timing.times_s) == 3
    assert 0.01 <= timing.best_s <= timing.median_s < 0.5


@pytest.mark.parametrize(
    "first_s, expected", [(10.0, 3), (1.0, 3), (0.1, 30), (1e-6, 50), (0.0, 50)]
)
def test_plan_rounds_fills_the_budget_within_bounds(first_s, expected):
    assert plan_rounds(first_s, budget_s=3.0) == expected


# --------------------------------------------------------------------------------------- out of memory


def test_is_out_of_memory_names_only_allocation_failures():
    assert is_out_of_memory(MemoryError())
    assert is_out_of_memory(torch.OutOfMemoryError("CUDA out of memory"))
    assert is_out_of_memory(RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to ..."))
    assert not is_out_of_memory(RuntimeError("shape mismatch"))
    assert not is_out_of_memory(ValueError("can't allocate memory"))


def test_memory_budget_verdict():
    assert memory_budget_verdict(10**9, 8e9) is None
    assert memory_budget_verdict(int(19.3e9), 8e9) == "skipped: would need 19.3 GB"


def test_a_real_cpu_allocation_failure_is_recognised():
    with pytest.raises(Exception) as info:
        torch.empty(2**62, dtype=torch.uint8)
    assert is_out_of_memory(info.value)


# ------------------------------------------------------------------------------------------ peak memory
# Factories run in the probe's child process: module-level, picklable arguments.


def allocating(mb: int):
    def run():
        torch.ones(mb * 250_000)  # float32, touched: mb MB resident

    return run


def raising(kind: str):
    def run():
        raise {"memory": MemoryError, "value": ValueError}[kind]("from the case")

    return run


def test_cpu_peak_memory_measures_what_the_case_allocates():
    outcome = cpu_peak_memory(allocating, (200,), warm_args=(1,))
    assert outcome.status == "ok"
    assert 195 <= outcome.peak_mb <= 230, outcome


def test_cpu_peak_memory_stops_a_case_past_the_limit():
    outcome = cpu_peak_memory(allocating, (400,), limit_bytes=100 * MB)
    assert outcome.status.startswith("oom"), outcome
    assert outcome.peak_bytes is None


def test_cpu_peak_memory_reports_out_of_memory_and_raises_other_errors():
    assert cpu_peak_memory(raising, ("memory",)).status == "oom"
    with pytest.raises(RuntimeError, match="ValueError: from the case"):
        cpu_peak_memory(raising, ("value",))


needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


@needs_cuda
def test_cuda_peak_memory_measures_the_allocator_peak_beyond_the_inputs():
    resident = torch.ones(2**20, device="cuda")  # allocated before: not counted

    def run():
        torch.ones(64 * 2**20, device="cuda").sum()  # 256 MiB

    outcome = cuda_peak_memory(run)
    assert outcome.status == "ok"
    assert 256 * 2**20 <= outcome.peak_bytes <= 260 * 2**20, outcome
    del resident


@needs_cuda
def test_cuda_out_of_memory_is_an_outcome():
    total = torch.cuda.get_device_properties(0).total_memory
    outcome = cuda_peak_memory(lambda: torch.empty(2 * total, dtype=torch.uint8, device="cuda"))
    assert outcome.status == "oom"
    torch.ones(1, device="cuda")  # the device still works


# ----------------------------------------------------------------------------------------- naive path


def _mmd2_by_loops(x, y, bandwidths):
    def k(a, b):
        r2 = float(((a - b) ** 2).sum())
        return sum(torch.exp(torch.tensor(-r2 / (2 * s * s), dtype=torch.float64)) for s in bandwidths)

    n, m = len(x), len(y)
    xx = sum(k(x[i], x[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(k(x[i], y[j]) for i in range(n) for j in range(m)) / (n * m)
    return xx + yy - 2 * xy


def test_naive_mmd2_matches_the_definition():
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(5, 3, generator=gen, dtype=torch.float64)
    y = torch.randn(7, 3, generator=gen, dtype=torch.float64) + 0.5
    bandwidths = [0.5, 1.0, 2.0]
    got = naive.mmd2_unbiased(x, y, bandwidths)
    assert torch.allclose(got, _mmd2_by_loops(x, y, bandwidths), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("mode", ["fwd", "fwdbwd"])
def test_naive_peak_estimate_matches_the_measured_peak(mode):
    # 3072² float32 buffers are 36 MB, above glibc's mmap threshold, so freed ones leave the RSS at once.
    case = Mmd2Case(3072, 3072, 16, mode)
    outcome = cpu_peak_memory(make_call, (case, "naive", "cpu"), warm_args=(Mmd2Case(64, 64, 16, mode), "naive", "cpu"))
    estimate = naive.peak_bytes_estimate(3072, 3072, 3, 4, backward=mode == "fwdbwd")
    assert outcome.status == "ok"
    assert 0.9 <= outcome.peak_bytes / estimate <= 1.1, (outcome.peak_bytes, estimate)


def test_headline_cases_are_in_the_full_suite():
    full = cases("full")
    assert Mmd2Case(8192, 8192, 64, "fwdbwd") in full
    assert Mmd2Case(4096, 4096, 2048, "fwdbwd") in full
    assert set(cases("headline")) <= set(full)
    assert max(c.n for c in cases("quick")) <= 256


@pytest.mark.parametrize("impl", [i for i in IMPLS if i != "naive"])
def test_peers_compute_the_same_value_and_gradients_as_naive(impl):
    reason = unavailable(impl, "cpu")
    if reason is not None:
        pytest.skip(reason)
    case = Mmd2Case(97, 61, 33, "fwdbwd")
    gen = torch.Generator().manual_seed(2)
    x0 = torch.randn(case.n, case.d, generator=gen)
    y0 = torch.randn(case.m, case.d, generator=gen) + 0.2
    results = {}
    for name in ("naive", impl):
        x, y = x0.clone().requires_grad_(), y0.clone().requires_grad_()
        value = IMPLS[name](x, y, case)
        value.backward()
        results[name] = (value.detach(), x.grad, y.grad)
    for ref, got in zip(results["naive"], results[impl]):
        assert torch.allclose(got, ref, rtol=1e-3, atol=1e-6), (ref, got)


# -------------------------------------------------------------------------------------- rows and plots


def _benchmark_json() -> dict:
    env = {"device": "Test CPU", "threads": 2, "torch": "2.x", "commit": "abc1234", "date": "2026-01-01T00:00:00+00:00"}
    timed = []
    for impl, t in (("naive", 0.8), ("fastmmd", 0.1)):
        for n in (1024, 2048):
            record = case_record("mmd2", Mmd2Case(n, n, 64, "fwdbwd").params(), impl, "ok", 12.5)
            timed.append({"extra_info": record, "stats": {"median": t * n / 1024, "min": t, "rounds": 3}})
    skipped = case_record("mmd2", Mmd2Case(4096, 4096, 64, "fwdbwd").params(), "naive", "skipped: would need 9.0 GB")
    return {"machine_info": {ENV_KEY: env}, "benchmarks": timed, NOT_TIMED_KEY: [skipped]}


def test_json_rows_append_to_a_csv_that_plots(tmp_path):
    rows = rows_from_benchmark_json(_benchmark_json())
    assert len(rows) == 5
    assert {r["status"] for r in rows} == {"ok", "skipped: would need 9.0 GB"}
    assert rows[0]["time_s"] == "0.8" and rows[0]["commit"] == "abc1234" and rows[0]["n"] == 1024
    path = tmp_path / "mmd2_cpu.csv"
    assert append_rows(path, rows) == 5
    assert append_rows(path, rows) == 5  # appends, one header
    stored = read_rows(path)
    assert len(stored) == 10 and stored[0]["device"] == "Test CPU"
    assert len(select_rows(stored)) == 5  # the latest row of each case
    with pytest.raises(ValueError, match="columns"):
        append_rows(path, [{"other": 1}])
    written = plot_csv(path)
    assert [p.name for p in written] == ["mmd2_cpu.png", "mmd2_cpu_memory.png"]
    assert all(p.stat().st_size > 10_000 for p in written)


def test_ratio_table_divides_naive_by_each_implementation():
    table = ratio_table(rows_from_benchmark_json(_benchmark_json()))
    lines = table.splitlines()
    assert "naive/fastmmd" in lines[0]
    assert "8x" in lines[1] and "skip>9.0 GB" in lines[3]


def test_git_commit_is_a_short_hash_maybe_dirty():
    commit = git_commit()
    assert commit == "unknown" or len(commit.removesuffix("+dirty")) >= 7
