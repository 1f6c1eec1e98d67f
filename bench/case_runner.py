"""One benchmark case from start to rows, for every bench file (bench_mmd2.py, bench_kid.py,
bench_mmd_test.py): a memory verdict before running, the peak memory (a fresh child process on the CPU, the
allocator on CUDA), out of memory as an outcome, the first call recorded on its own on CUDA, then timed
rounds planned from a warm run; and the parametrization of a bench file's cases and implementations.
"""
from __future__ import annotations

import gc
import time
from typing import Callable, Optional, Sequence

import pytest
import torch

from bench.harness import (
    cpu_peak_memory,
    cuda_peak_memory,
    is_out_of_memory,
    memory_budget_verdict,
    plan_rounds,
    synchronized,
    time_callable,
)
from bench.records import case_record, first_call_bench, measured_record


def run_case(benchmark, options, not_timed_list: list, measured_list: list, *, bench: str, params: dict,
             impl: str, make_call: Callable[..., Callable[[], object]], args: tuple, tiny_args: tuple,
             estimated_bytes: int = 0, skip_reason: Optional[str] = None, preload: Sequence[str] = (),
             group: Optional[str] = None) -> None:
    """Times `make_call(*args)()` for the case `params` of `bench` with the implementation `impl`.

    tiny_args: the arguments of a tiny case, run first in the memory probe's child so that one-time set-up
    is not counted. estimated_bytes: what the case needs beyond its inputs (0: not estimated); over the
    memory limit it is recorded as skipped. skip_reason: recorded as the case's status instead of running
    it (e.g. a baseline that would take too long). `make_call` must be a module-level function (the CPU
    memory probe pickles it). group: pytest-benchmark's group (default: bench, d, n, m).
    """
    device = options.device

    def not_timed(status: str) -> None:
        not_timed_list.append(case_record(bench, params, impl, status))
        pytest.skip(status)

    if skip_reason is not None:
        not_timed(skip_reason)
    if device == "cuda":  # what an earlier case left (an out-of-memory's frames, cached blocks)
        gc.collect()
        torch.cuda.empty_cache()
    verdict = memory_budget_verdict(estimated_bytes, options.max_bytes)
    if verdict is not None:
        not_timed(verdict)

    memory = None
    if device == "cpu":
        memory = cpu_peak_memory(make_call, args, warm_args=tiny_args, limit_bytes=options.max_bytes,
                                 preload=("fastmmd", "torch._dynamo", *preload))
        if memory.status != "ok":
            not_timed(memory.status)

    run = make_call(*args)
    try:
        first = time_callable(run, device=device, warmup=0, repeats=1)
    except Exception as exc:  # out-of-memory is a result; anything else fails the test
        if not is_out_of_memory(exc):
            raise
        not_timed("oom")
    warm_s = first.best_s
    if device == "cuda":
        measured_list.append(measured_record(first_call_bench(bench), params, impl, first.best_s))
        start = time.perf_counter()
        memory = cuda_peak_memory(run)
        warm_s = time.perf_counter() - start
        if memory.status != "ok":
            not_timed(memory.status)

    benchmark.group = group or f"{bench} d={params['d']} n={params['n']} m={params['m']}"
    benchmark.extra_info.update(case_record(bench, params, impl, "ok", memory.peak_mb))
    rounds = plan_rounds(warm_s, budget_s=options.budget_s)
    benchmark.pedantic(synchronized(run, device), rounds=rounds, iterations=1, warmup_rounds=0)


def parametrize_cases(metafunc, cases: Callable[[str, str], Sequence], impls: Sequence[str]) -> None:
    """pytest_generate_tests of a bench file: `case` over cases(suite, device) of the run's options, `impl`
    over impls."""
    if "case" in metafunc.fixturenames:
        suite_cases = cases(metafunc.config.getoption("bench_suite"), metafunc.config.getoption("bench_device"))
        metafunc.parametrize("case", suite_cases, ids=[c.id for c in suite_cases])
    if "impl" in metafunc.fixturenames:
        metafunc.parametrize("impl", list(impls))


def time_ratio_table(rows: Sequence[dict], numerator: str, denominator: str, label: str) -> str:
    """Per case (d, n, m): time of `numerator` / time of `denominator` among `rows` (ok rows only)."""
    from bench.run import text_table

    by_case: dict = {}
    for r in rows:
        if r["status"] == "ok" and r["time_s"] != "":
            by_case.setdefault((int(r["d"]), int(r["n"]), int(r["m"])), {})[r["impl"]] = float(r["time_s"])
    lines = [["d", "n", "m", label]]
    for key in sorted(by_case):
        times = by_case[key]
        if numerator in times and denominator in times:
            lines.append([*map(str, key), f"{times[numerator] / times[denominator]:.3g}"])
    return text_table(lines) if len(lines) > 1 else ""
