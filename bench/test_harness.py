"""Checks of the benchmark harness itself (not of fastmmd's numbers); run when asked:

    python -m pytest bench/test_harness.py -q

About 20 s on two cores; the slowest parts measure the naive path's peak at n = 3072 and trace the
compiled peer with dynamo. Everything but the two CUDA checks runs on the CPU, including the CUDA suites'
case lists, implementations, memory verdicts and the roofline arithmetic of their report.
"""
from __future__ import annotations

import json
import os
import time

import pytest
import torch

from bench import bench_mmd2, naive, run
from bench.bench_mmd2 import (
    IMPLS,
    ROOFLINE_IMPLS,
    Mmd2Case,
    cases,
    estimated_bytes,
    impls,
    make_call,
    roofline_params,
    unavailable,
)
from bench.harness import (
    GB,
    MB,
    cpu_peak_memory,
    cublas_tf32,
    cuda_peak_memory,
    is_out_of_memory,
    memory_budget_verdict,
    plan_rounds,
    time_callable,
)
from bench.plot import plot_csv, select_rows
from bench.records import (
    ENV_KEY,
    MEASURED_KEY,
    NOT_TIMED_KEY,
    RUN_KEY,
    append_rows,
    case_record,
    git_commit,
    measured_record,
    read_rows,
    rows_from_benchmark_json,
)
from bench.roofline import (
    kernel_evaluations,
    kernel_terms,
    matmul_flops,
    matmul_rates,
    pair_count,
    throughputs,
    useful_flops,
)
from bench.run import baseline_of, pytest_command, ratio_table, report

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
    assert {c.kernel for c in full} == {"gaussian3"}


def test_cuda_suites_hold_the_gpu_targets():
    single = dict(scales=(1.0,))
    headline = cases("headline", "cuda")
    assert headline == [
        Mmd2Case(32768, 32768, 2048, "fwd", **single),
        Mmd2Case(65536, 65536, 64, "fwd", **single),
        Mmd2Case(32768, 32768, 2048, "fwdbwd", **single),
        Mmd2Case(65536, 65536, 64, "fwdbwd", **single),
    ]
    assert headline[0].bandwidths == [2048**0.5] and headline[0].params()["kernel"] == "gaussian1"
    full = cases("full", "cuda")
    grid = {(c.mode, c.d) for c in full}
    for mode in ("fwd", "fwdbwd"):
        assert sorted(c.n for c in full if (c.mode, c.d) == (mode, 64)) == [4096, 8192, 16384, 32768, 65536]
        assert sorted(c.n for c in full if (c.mode, c.d) == (mode, 2048)) == [4096, 8192, 16384, 32768]
    assert set(grid) == {(m, d) for m in ("fwd", "fwdbwd") for d in (64, 2048)}
    assert set(headline) <= set(full)
    assert all(c.n == c.m and c.kernel == "gaussian1" for c in full)
    quick = cases("quick", "cuda")
    assert max(c.n for c in quick) <= 4096 and {c.d for c in quick} == {64, 2048}
    assert len({c.id for c in full}) == len(full)
    with pytest.raises(ValueError, match="suite"):
        cases("nope", "cuda")


def test_implementations_per_device():
    optional = {"pykeops"}
    assert set(impls("cpu")) - optional == {"naive", "fastmmd"}
    assert set(impls("cuda")) - optional == {
        "naive-fp32", "naive-tf32", "naive-compile-tf32", "fastmmd-tf32", "fastmmd-highest", "fastmmd-bf16",
    }  # fmt: skip
    assert IMPLS["naive-fp32"].cublas_tf32 is False and IMPLS["naive-tf32"].cublas_tf32 is True
    assert IMPLS["naive-compile-tf32"].compiles and IMPLS["naive-compile-tf32"].cublas_tf32
    assert {IMPLS[i].fastmmd_backend for i in impls("cuda") if i.startswith("fastmmd")} == {"triton"}
    assert set(ROOFLINE_IMPLS) == {"torch-tf32", "torch-bf16", "torch-fp32"}
    assert roofline_params("torch-bf16") == {
        "mode": "fwd", "n": 8192, "m": 8192, "d": 8192, "kernel": "none", "dtype": "bfloat16",
    }  # fmt: skip


def test_without_cuda_every_cuda_implementation_says_why():
    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    for impl in impls("cuda"):
        assert unavailable(impl, "cuda") == "CUDA is not available"


def test_materialising_implementations_are_skipped_over_an_h100_budget():
    limit = 70 * GB  # what the GPU runs pass as --max-gb
    need = {(c.mode, c.n, c.d): estimated_bytes(c, "naive-fp32") for c in cases("headline", "cuda")}
    assert need[("fwd", 32768, 2048)] == 6 * 32768**2 * 4  # 25.8 GB: runs
    assert need[("fwdbwd", 32768, 2048)] == 11 * 32768**2 * 4  # 47.2 GB: runs
    assert memory_budget_verdict(need[("fwdbwd", 32768, 2048)], limit) is None
    assert memory_budget_verdict(need[("fwd", 65536, 64)], limit) == "skipped: would need 103 GB"
    assert memory_budget_verdict(need[("fwdbwd", 65536, 64)], limit) == "skipped: would need 189 GB"
    case = cases("headline", "cuda")[1]
    assert estimated_bytes(case, "naive-compile-tf32") == estimated_bytes(case, "naive-tf32") > limit
    assert estimated_bytes(case, "fastmmd-tf32") == 0


def _value_and_grads(impl: str, case: Mmd2Case):
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(case.n, case.d, generator=gen).requires_grad_()
    y = (torch.randn(case.m, case.d, generator=gen) + 0.2).requires_grad_()
    value = IMPLS[impl].build()(x, y, case)
    value.backward()
    return value.detach(), x.grad, y.grad


@pytest.mark.parametrize("impl", [i for i in IMPLS if i != "naive"])
def test_peers_compute_the_same_value_and_gradients_as_naive(impl, monkeypatch):
    reason = unavailable(impl, "cpu")  # the CUDA impls run on CPU tensors too, but for fastmmd-*'s backend
    if reason is not None:
        pytest.skip(reason)
    if IMPLS[impl].compiles:  # dynamo's trace without Inductor's code generation: seconds, not a minute
        monkeypatch.setattr(bench_mmd2, "_compile", lambda fn: torch.compile(fn, backend="eager", dynamic=False))
    case = Mmd2Case(97, 61, 33, "fwdbwd")
    # bf16 keeps 8 bits of each operand (about 4e-3 relative); the rest agree to float32 rounding.
    rtol = 1e-2 if "bf16" in impl else 1e-3
    for ref, got in zip(_value_and_grads("naive", case), _value_and_grads(impl, case)):
        assert torch.allclose(got, ref, rtol=rtol, atol=1e-6), (ref, got)


@pytest.mark.parametrize("mode", ["fwd", "fwdbwd"])
@pytest.mark.parametrize("impl, tf32", [("naive-fp32", False), ("naive-tf32", True), ("naive", None)])
def test_the_tf32_setting_holds_during_the_call_only(impl, tf32, mode, monkeypatch):
    seen = []
    original = naive.mmd2_unbiased

    def spy(x, y, bandwidths):
        seen.append(torch.backends.cuda.matmul.allow_tf32)
        return original(x, y, bandwidths)

    monkeypatch.setattr(naive, "mmd2_unbiased", spy)
    before = torch.backends.cuda.matmul.allow_tf32
    with cublas_tf32(not before):  # whatever the setting outside, the call has its own
        make_call(Mmd2Case(8, 9, 3, mode), impl, "cpu")()
        assert torch.backends.cuda.matmul.allow_tf32 is (not before)
    assert seen == [(not before) if tf32 is None else tf32]
    assert torch.backends.cuda.matmul.allow_tf32 is before


def test_cublas_tf32_restores_the_setting_after_an_error():
    before = torch.backends.cuda.matmul.allow_tf32
    with pytest.raises(ZeroDivisionError):
        with cublas_tf32(not before):
            assert torch.backends.cuda.matmul.allow_tf32 is (not before)
            raise ZeroDivisionError("an error inside the block")
    assert torch.backends.cuda.matmul.allow_tf32 is before


# ------------------------------------------------------------------------------------------- roofline


def test_work_counts_of_the_unbiased_estimator():
    assert pair_count(3, 2) == 3 + 1 + 6
    assert pair_count(32768, 32768) == 32768 * 32767 + 32768**2
    assert useful_flops("fwd", 3, 2, 5) == 2 * 5 * 10
    assert useful_flops("fwdbwd", 3, 2, 5) == 3 * 2 * 5 * 10
    with pytest.raises(ValueError, match="mode"):
        useful_flops("bwd", 3, 2, 5)
    assert kernel_terms("gaussian3") == 3 and kernel_terms("gaussian1") == 1 and kernel_terms("energy") == 1
    assert kernel_evaluations(3, 2, 3) == 30
    assert matmul_flops(8192, 8192, 8192) == 2 * 8192**3


def _row(bench, mode, n, d, kernel, impl, time_s, status="ok"):
    return {"bench": bench, "mode": mode, "n": str(n), "m": str(n), "d": str(d), "kernel": kernel,
            "impl": impl, "time_s": "" if time_s is None else str(time_s), "status": status}  # fmt: skip


def test_fraction_of_the_tf32_roofline_and_evaluations_per_second():
    tf32_s = 2 * 8192**3 / 400e12  # a 400 TFLOP/s TF32 matmul
    rows = [
        _row("matmul", "fwd", 8192, 8192, "none", "torch-tf32", tf32_s),
        _row("matmul", "fwd", 8192, 8192, "none", "torch-fp32", 2 * 8192**3 / 50e12),
        _row("mmd2", "fwd", 32768, 2048, "gaussian1", "fastmmd-tf32", 0.05),
        _row("mmd2", "fwdbwd", 65536, 64, "gaussian1", "fastmmd-tf32", 0.1),
        _row("mmd2", "fwd", 65536, 64, "gaussian1", "naive-fp32", None, "skipped: would need 103 GB"),
        _row("mmd2-first-call", "fwd", 32768, 2048, "gaussian1", "fastmmd-tf32", 3.0),
    ]
    rates = matmul_rates(rows)
    assert rates["torch-tf32"] == pytest.approx(400e12) and rates["torch-fp32"] == pytest.approx(50e12)
    got = {(t.row["mode"], t.row["d"]): t for t in throughputs(rows)}
    assert set(got) == {("fwd", "2048"), ("fwdbwd", "64")}  # timed mmd2 rows only
    useful = 2 * 2048 * (32768 * 32767 + 32768**2)
    assert got["fwd", "2048"].flops_per_s == pytest.approx(useful / 0.05)
    assert got["fwd", "2048"].roofline_fraction == pytest.approx(useful / 0.05 / 400e12)
    pairs = 65536 * 65535 + 65536**2
    assert got["fwdbwd", "64"].evaluations_per_s == pytest.approx(pairs / 0.1)
    assert got["fwdbwd", "64"].flops_per_s == pytest.approx(3 * 2 * 64 * pairs / 0.1)
    assert all(t.roofline_fraction is None for t in throughputs(rows[2:]))  # no roofline row: no fraction


# -------------------------------------------------------------------------------------- rows and plots


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
    assert baseline_of(["fastmmd-tf32", "naive-tf32", "naive-fp32"]) == "naive-fp32"
    assert baseline_of(["fastmmd-tf32"]) is None
    assert "fastmmd-tf32 s" in ratio_table([_row("mmd2", "fwd", 64, 16, "gaussian1", "fastmmd-tf32", 0.1)])


def _cuda_benchmark_json() -> dict:
    """A CUDA run as the bench file writes it, where fastmmd-bf16 was unavailable (no rows at all)."""
    env = {"device": "Test GPU", "threads": 16, "torch": "2.x", "commit": "abc1234",
           "date": "2026-01-01T00:00:00+00:00"}  # fmt: skip
    timed, measured, skipped = [], [], []
    times = {"fastmmd-tf32": 0.04, "fastmmd-highest": 0.2, "naive-fp32": 0.3, "naive-compile-tf32": 0.1}
    for impl, rate in (("torch-tf32", 400e12), ("torch-bf16", 800e12), ("torch-fp32", 50e12)):
        record = case_record("matmul", roofline_params(impl), impl, "ok")
        t = 2 * 8192**3 / rate
        timed.append({"extra_info": record, "stats": {"median": t, "min": t, "rounds": 40}})
    for mode in ("fwd", "fwdbwd"):
        for n, d in ((32768, 2048), (65536, 64)):
            case = Mmd2Case(n, n, d, mode, scales=(1.0,))
            for impl, t in times.items():
                if impl.startswith("naive") and n == 65536:
                    need = estimated_bytes(case, impl) / GB
                    skipped.append(case_record("mmd2", case.params(), impl, f"skipped: would need {need:.3g} GB"))
                    continue
                record = case_record("mmd2", case.params(), impl, "ok", 0.5 if impl.startswith("fastmmd") else 25e3)
                timed.append({"extra_info": record, "stats": {"median": t, "min": t, "rounds": 3}})
                measured.append(measured_record("mmd2-first-call", case.params(), impl, 12.5))
    return {
        "machine_info": {ENV_KEY: env},
        "benchmarks": timed,
        MEASURED_KEY: measured,
        NOT_TIMED_KEY: skipped,
        RUN_KEY: {"suite": "headline", "device": "cuda"},
    }


def test_a_cuda_run_goes_from_json_to_csv_report_and_plots(tmp_path, monkeypatch, capsys):
    data = _cuda_benchmark_json()
    rows = rows_from_benchmark_json(data)
    assert len(rows) == 3 + 12 + 12 + 4
    first_calls = [r for r in rows if r["bench"] == "mmd2-first-call"]
    assert len(first_calls) == 12 and {r["rounds"] for r in first_calls} == {1}
    assert {r["time_s"] for r in first_calls} == {"12.5"}

    text = report(rows, "mmd2")
    assert "naive-fp32/fastmmd-tf32" in text and "7.5x" in text  # 0.3 s / 0.04 s
    assert next(ln for ln in text.splitlines() if "torch-tf32" in ln).split()[-1] == "400.0"  # TFLOP/s
    useful = 2 * 2048 * (32768 * 32767 + 32768**2)
    fraction = f"{100 * useful / 0.04 / 400e12:.1f}%"
    fwd_line = next(ln for ln in text.splitlines() if "32768" in ln and "fastmmd-tf32" in ln and ln.split()[0] == "fwd")
    assert fraction in fwd_line and "12.5" in fwd_line
    assert "skip>103 GB" in text

    json_path = tmp_path / "run.json"
    json_path.write_text(json.dumps(data))
    csv_path = tmp_path / "mmd2_cuda.csv"
    monkeypatch.setattr(run, "have_matplotlib", lambda: False)  # the GPU machine may not have it
    assert run.main(["mmd2", "--from-json", str(json_path), "--csv", str(csv_path)]) == 0
    out = capsys.readouterr().out
    assert "matplotlib is not installed" in out and "of TF32 roofline" in out
    assert len(read_rows(csv_path)) == len(rows)
    assert not list(tmp_path.glob("*.png"))

    drawn = select_rows(read_rows(csv_path), bench="mmd2")
    assert {r["bench"] for r in drawn} == {"mmd2"} and len(drawn) == 16
    written = plot_csv(csv_path)
    assert [p.name for p in written] == ["mmd2_cuda.png", "mmd2_cuda_memory.png"]


def test_the_command_line_takes_the_suite_and_leaves_the_memory_limit_to_the_device(tmp_path):
    cmd = pytest_command("mmd2", "headline", "cuda", None, tmp_path / "x.json")
    assert "--bench-suite=headline" in cmd and "--bench-device=cuda" in cmd
    assert not any(c.startswith("--bench-max-gb") for c in cmd)
    assert "--bench-max-gb=70.0" in pytest_command("mmd2", "full", "cuda", 70.0, tmp_path / "x.json", ["-k", "d64"])


def test_git_commit_is_a_short_hash_maybe_dirty():
    commit = git_commit()
    assert commit == "unknown" or len(commit.removesuffix("+dirty")) >= 7


def test_environment_sets_and_restores(monkeypatch):
    from bench.harness import environment

    monkeypatch.setenv("FASTMMD_TEST_SET", "before")
    monkeypatch.delenv("FASTMMD_TEST_UNSET", raising=False)
    with environment(FASTMMD_TEST_SET="1", FASTMMD_TEST_UNSET="2"):
        assert os.environ["FASTMMD_TEST_SET"] == "1" and os.environ["FASTMMD_TEST_UNSET"] == "2"
    assert os.environ["FASTMMD_TEST_SET"] == "before" and "FASTMMD_TEST_UNSET" not in os.environ
    with pytest.raises(RuntimeError):
        with environment(FASTMMD_TEST_SET="3"):
            raise RuntimeError
    assert os.environ["FASTMMD_TEST_SET"] == "before"
