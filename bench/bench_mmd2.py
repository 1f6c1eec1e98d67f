"""Benchmark of ``fastmmd.mmd2``: fused backend vs materialised PyTorch (bench/naive.py), and pykeops when
it is installed; forward and forward+backward; unbiased estimator, sum of 3 Gaussians, float32.

Run through ``python -m bench.run mmd2`` (JSON -> CSV -> table and plot), or directly:
``pytest bench/bench_mmd2.py --bench-suite quick --benchmark-json out.json``.

Suites (``--bench-suite``):
- full: n = m in {1024, 2048, 4096, 8192, 16384} x d in {16, 64}, and n <= 8192 for d = 2048 (the fused
  O(n²d) work at n = 16384, d = 2048 takes minutes per run on a few cores). The naive path is skipped,
  with the memory it would need, where that is over ``--bench-max-gb``.
- headline: the two figures quoted for the project: n = m = 8192, d = 64, fwd+bwd; n = m = 4096,
  d = 2048, fwd+bwd.
- quick: n = m in {128, 256} x d in {16, 64, 2048}, a smoke test of the whole chain.

Each case: (CPU) its peak memory in a fresh child process, which also catches an out-of-memory without
harm; one warm-up run, timed; then as many timed rounds as fit in the budget, at least 3.
"""
from __future__ import annotations

import dataclasses
import importlib.util
from dataclasses import dataclass
from typing import Callable, Optional

import pytest
import torch

from bench import naive, peers
from bench.harness import (
    cpu_peak_memory,
    cuda_peak_memory,
    is_out_of_memory,
    memory_budget_verdict,
    plan_rounds,
    synchronized,
    time_callable,
)
from bench.records import case_record

BENCH = "mmd2"
MODES = ("fwd", "fwdbwd")
BANDWIDTH_SCALES = (0.5, 1.0, 2.0)
FASTMMD_BACKEND = {"cpu": "cpu", "cuda": "triton"}


@dataclass(frozen=True)
class Mmd2Case:
    """x: (n, d), y: (m, d) in ``dtype``; mode "fwd" (no grad) or "fwdbwd" (backward into x and y);
    kernel: sum of Gaussians with bandwidths sqrt(d) * scale."""

    n: int
    m: int
    d: int
    mode: str
    dtype: str = "float32"

    @property
    def bandwidths(self) -> list:
        return [self.d**0.5 * s for s in BANDWIDTH_SCALES]

    @property
    def id(self) -> str:
        return f"{self.mode}-n{self.n}-m{self.m}-d{self.d}"

    def params(self) -> dict:
        """The case's columns in the CSV."""
        kernel = f"gaussian{len(BANDWIDTH_SCALES)}"
        return {"mode": self.mode, "n": self.n, "m": self.m, "d": self.d, "kernel": kernel, "dtype": self.dtype}


def cases(suite: str) -> list:
    if suite == "headline":
        return [Mmd2Case(8192, 8192, 64, "fwdbwd"), Mmd2Case(4096, 4096, 2048, "fwdbwd")]
    if suite == "quick":
        grid = [(n, d) for d in (16, 64, 2048) for n in (128, 256)]
    elif suite == "full":
        sizes = (1024, 2048, 4096, 8192, 16384)
        grid = [(n, d) for d in (16, 64, 2048) for n in sizes if d < 2048 or n <= 8192]
    else:
        raise ValueError(f"unknown suite {suite!r}")
    return [Mmd2Case(n, n, d, mode) for mode in MODES for n, d in grid]


def impls() -> list:
    """Implementations to run: pykeops only where it is installed (it is never a requirement)."""
    names = ["naive", "fastmmd"]
    if importlib.util.find_spec("pykeops") is not None:
        names.append("pykeops")
    return names


# ------------------------------------------------------------------------------------ implementations


def _fastmmd(x: torch.Tensor, y: torch.Tensor, case: Mmd2Case) -> torch.Tensor:
    import fastmmd

    kernel = fastmmd.Gaussian(case.bandwidths)
    return fastmmd.mmd2(x, y, kernel=kernel, estimator="unbiased", backend=FASTMMD_BACKEND[x.device.type])


IMPLS: dict = {
    "naive": lambda x, y, case: naive.mmd2_unbiased(x, y, case.bandwidths),
    "fastmmd": _fastmmd,
    "pykeops": lambda x, y, case: peers.keops_mmd2_unbiased(x, y, case.bandwidths),
}
_MODULE_OF = {"fastmmd": "fastmmd", "pykeops": "pykeops"}
# Imported once by the memory probe's forkserver instead of in each probe: fastmmd's op is a torch.library
# custom op, and its first call imports torch._dynamo (seconds).
_PROBE_PRELOAD = ("fastmmd", "torch._dynamo", "pykeops")


def unavailable(impl: str, device: str) -> Optional[str]:
    """Why ``impl`` cannot run on ``device`` here, or None."""
    if device == "cuda" and not torch.cuda.is_available():
        return "CUDA is not available"
    module = _MODULE_OF.get(impl)
    if module is None:
        return None
    try:
        importlib.import_module(module)
    except ImportError as exc:
        return f"{module} does not import: {exc}"
    if impl == "fastmmd":
        import fastmmd

        wanted = FASTMMD_BACKEND[device]
        status = {s.name: s for s in fastmmd.backend_statuses()}.get(wanted)
        if status is None:
            return f"fastmmd has no {wanted!r} backend"
        if not status.usable:
            return f"fastmmd's {wanted!r} backend is unavailable: {status.reason}"
    return None


def make_call(case: Mmd2Case, impl: str, device: str) -> Callable[[], None]:
    """Builds the inputs of ``case`` on ``device`` (same values every time) and returns a callable that
    runs ``impl`` once: forward only, or forward and backward into x and y."""
    gen = torch.Generator().manual_seed(0)
    dtype = getattr(torch, case.dtype)
    x = torch.randn(case.n, case.d, generator=gen, dtype=dtype).to(device)
    y = (1.1 * torch.randn(case.m, case.d, generator=gen, dtype=dtype) + 0.1).to(device)
    fn = IMPLS[impl]
    if case.mode == "fwd":
        return lambda: fn(x, y, case)
    x.requires_grad_(True)
    y.requires_grad_(True)

    def forward_backward() -> None:
        x.grad = y.grad = None
        fn(x, y, case).backward()

    return forward_backward


def _estimated_bytes(case: Mmd2Case, impl: str) -> int:
    """What a case needs beyond its inputs, where that grows with n·m (the naive path); 0 otherwise."""
    if impl != "naive":
        return 0
    itemsize = torch.empty(0, dtype=getattr(torch, case.dtype)).element_size()
    return naive.peak_bytes_estimate(case.n, case.m, len(BANDWIDTH_SCALES), itemsize, case.mode == "fwdbwd")


# ------------------------------------------------------------------------------------------- the test


def pytest_generate_tests(metafunc):
    if "case" in metafunc.fixturenames:
        suite_cases = cases(metafunc.config.getoption("bench_suite"))
        metafunc.parametrize("case", suite_cases, ids=[c.id for c in suite_cases])
    if "impl" in metafunc.fixturenames:
        metafunc.parametrize("impl", impls())


def test_mmd2(benchmark, bench_options, bench_not_timed, case, impl):
    device = bench_options.device
    reason = unavailable(impl, device)
    if reason is not None:
        pytest.skip(reason)

    def not_timed(status: str, peak_mb: Optional[float] = None):
        bench_not_timed.append(case_record(BENCH, case.params(), impl, status, peak_mb))
        pytest.skip(status)

    verdict = memory_budget_verdict(_estimated_bytes(case, impl), bench_options.max_bytes)
    if verdict is not None:
        not_timed(verdict)

    memory = None
    if device == "cpu":
        tiny = dataclasses.replace(case, n=min(case.n, 64), m=min(case.m, 64))
        memory = cpu_peak_memory(
            make_call,
            (case, impl, device),
            warm_args=(tiny, impl, device),
            limit_bytes=bench_options.max_bytes,
            preload=_PROBE_PRELOAD,
        )
        if memory.status != "ok":
            not_timed(memory.status)

    run = make_call(case, impl, device)
    try:
        warmup = time_callable(run, device=device, warmup=0, repeats=1)
    except Exception as exc:  # out-of-memory is a result; anything else fails the test
        if not is_out_of_memory(exc):
            raise
        not_timed("oom")
    if device == "cuda":
        memory = cuda_peak_memory(run)
        if memory.status != "ok":
            not_timed(memory.status)

    benchmark.group = f"{BENCH} {case.mode} d={case.d} n={case.n} m={case.m}"
    benchmark.extra_info.update(case_record(BENCH, case.params(), impl, "ok", memory.peak_mb))
    rounds = plan_rounds(warmup.best_s, budget_s=bench_options.budget_s)
    benchmark.pedantic(synchronized(run, device), rounds=rounds, iterations=1, warmup_rounds=0)
