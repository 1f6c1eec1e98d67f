"""Benchmark of ``fastmmd.mmd2``: the fused backend against MMD² written plainly in PyTorch (bench/naive.py),
and pykeops when it is installed; forward and forward+backward; unbiased estimator, float32.

Run through ``python -m bench.run mmd2`` (JSON -> CSV -> tables and plots), or directly:
``pytest bench/bench_mmd2.py --bench-suite quick --benchmark-json out.json``.

Implementations (the CSV's ``impl``), per ``--bench-device``:
- cpu: ``naive``, ``fastmmd`` (backend "cpu"), ``pykeops``.
- cuda: ``fastmmd-tf32`` (backend "triton", precision "tf32": the headline), ``fastmmd-highest``,
  ``fastmmd-bf16``; ``naive-fp32`` (cuBLAS TF32 off), ``naive-tf32`` (TF32 allowed during the call),
  ``naive-compile-tf32`` (``torch.compile`` of the naive code, TF32 allowed: the strongest plain-PyTorch
  peer; compiled afresh for each case by its first call, which is not timed), ``pykeops``.
  The roofline of the run, ``torch.matmul`` of two 8192 × 8192 matrices (bench "matmul"; impls
  ``torch-tf32``, ``torch-bf16``, ``torch-fp32``), is timed first; bench/roofline.py turns the rows into
  useful FLOP/s, the fraction of the TF32 roofline and kernel evaluations per second.
An implementation that cannot run here (no CUDA, fastmmd's backend unusable, pykeops not installed) is
skipped with its reason.

Suites (``--bench-suite``). The CPU cases use a sum of 3 Gaussians (bandwidths sqrt(d)·{0.5, 1, 2}, kernel
"gaussian3"); the CUDA cases one Gaussian of bandwidth sqrt(d) ("gaussian1"), as the GPU targets are stated.
- cpu full: n = m in {1024, 2048, 4096, 8192, 16384} x d in {16, 64}, and n <= 8192 for d = 2048 (the fused
  O(n²d) work at n = 16384, d = 2048 takes minutes per run on a few cores).
- cpu headline: n = m = 8192, d = 64, fwd+bwd; n = m = 4096, d = 2048, fwd+bwd.
- cpu quick: n = m in {128, 256} x d in {16, 64, 2048}, a smoke test of the whole chain.
- cuda full: n = m in {4096, ..., 65536} for d = 64 and in {4096, ..., 32768} for d = 2048, fwd and fwd+bwd.
- cuda headline: n = m = 32768, d = 2048 and n = m = 65536, d = 64, fwd and fwd+bwd.
- cuda quick: n = m in {1024, 4096} x d in {64, 2048}.
The materialising implementations (naive, its compiled form) are skipped, with the memory they would need,
where that is over ``--bench-max-gb``.

Each case: (CPU) its peak memory in a fresh child process, which also catches an out-of-memory without
harm; one warm-up run, timed; (CUDA) its first call, timed and recorded as bench "mmd2-first-call" (it
includes torch.compile, Triton's compilation and autotuning), then one run measuring the allocator's peak;
then as many timed rounds as fit in the budget, at least 3.
"""
from __future__ import annotations

import dataclasses
import importlib.util
from dataclasses import dataclass
from typing import Callable, Optional, Tuple

import pytest
import torch

from bench import naive, peers
from bench.case_runner import parametrize_cases, run_case
from bench.harness import cublas_tf32, plan_rounds, synchronized, time_callable
from bench.records import case_record
from bench.roofline import ROOFLINE_BENCH, ROOFLINE_SIZE

BENCH = "mmd2"
MODES = ("fwd", "fwdbwd")
MIXTURE = (0.5, 1.0, 2.0)  # bandwidth scales of the CPU cases: a sum of 3 Gaussians
SINGLE = (1.0,)  # of the CUDA cases: one Gaussian of bandwidth sqrt(d)


@dataclass(frozen=True)
class Mmd2Case:
    """x: (n, d), y: (m, d) in ``dtype``; mode "fwd" (no grad) or "fwdbwd" (backward into x and y);
    kernel: sum of Gaussians with bandwidths sqrt(d) * scale over ``scales``."""

    n: int
    m: int
    d: int
    mode: str
    dtype: str = "float32"
    scales: Tuple[float, ...] = MIXTURE

    @property
    def bandwidths(self) -> list:
        return [self.d**0.5 * s for s in self.scales]

    @property
    def kernel(self) -> str:
        return f"gaussian{len(self.scales)}"

    @property
    def id(self) -> str:
        return f"{self.mode}-n{self.n}-m{self.m}-d{self.d}-{self.kernel}"

    def params(self) -> dict:
        """The case's columns in the CSV."""
        return {"mode": self.mode, "n": self.n, "m": self.m, "d": self.d, "kernel": self.kernel, "dtype": self.dtype}


def cases(suite: str, device: str = "cpu") -> list:
    """The cases of ``suite`` ("full", "headline", "quick") on ``device`` ("cpu", "cuda")."""
    if device == "cuda":
        return _cuda_cases(suite)
    if device != "cpu":
        raise ValueError(f"unknown device {device!r}")
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


def _cuda_cases(suite: str) -> list:
    if suite == "headline":
        grid = [(32768, 2048), (65536, 64)]
    elif suite == "quick":
        grid = [(n, d) for d in (64, 2048) for n in (1024, 4096)]
    elif suite == "full":
        grid = [(n, 64) for n in (4096, 8192, 16384, 32768, 65536)]
        grid += [(n, 2048) for n in (4096, 8192, 16384, 32768)]
    else:
        raise ValueError(f"unknown suite {suite!r}")
    return [Mmd2Case(n, n, d, mode, scales=SINGLE) for mode in MODES for n, d in grid]


# ------------------------------------------------------------------------------------ implementations


@dataclass(frozen=True)
class Impl:
    """One implementation of the benchmark.

    build: called once per case (by :func:`make_call`), returns ``fn(x, y, case) -> 0-dim tensor``.
    devices: where it is listed by :func:`impls` (it may still be called on another device).
    module: an optional library it needs. fastmmd_backend: the fastmmd backend it calls, if any.
    cublas_tf32: TF32 cuBLAS matmuls allowed (True), forbidden (False) during the call, forward and
    backward; None leaves the setting alone. materialises: needs the n×m buffers of bench/naive.py, so it
    is skipped where their estimate is over the memory limit. compiles: compiled by its first call.
    """

    name: str
    build: Callable[[], Callable]
    devices: Tuple[str, ...]
    module: Optional[str] = None
    fastmmd_backend: Optional[str] = None
    cublas_tf32: Optional[bool] = None
    materialises: bool = False
    compiles: bool = False


def _naive(x: torch.Tensor, y: torch.Tensor, case: Mmd2Case) -> torch.Tensor:
    return naive.mmd2_unbiased(x, y, case.bandwidths)


def _keops(x: torch.Tensor, y: torch.Tensor, case: Mmd2Case) -> torch.Tensor:
    return peers.keops_mmd2_unbiased(x, y, case.bandwidths)


def _fastmmd(backend: str, precision: Optional[str]) -> Callable:
    def run(x: torch.Tensor, y: torch.Tensor, case: Mmd2Case) -> torch.Tensor:
        import fastmmd

        options = {} if precision is None else {"precision": precision}
        kernel = fastmmd.Gaussian(bandwidth=case.bandwidths)
        return fastmmd.mmd2(x, y, kernel=kernel, estimator="unbiased", backend=backend, **options)

    return run


def _compile(fn: Callable) -> Callable:
    """torch.compile as the compiled peer uses it: default mode, shapes of the case (no dynamic shapes)."""
    return torch.compile(fn, dynamic=False)


def _compiled_naive() -> Callable:
    # A fresh compilation per case: dynamo's per-function recompile limit cannot send a later case back to
    # eager mode, and each case's first call shows the whole compile time.
    torch._dynamo.reset()
    compiled = _compile(naive.mmd2_unbiased)
    return lambda x, y, case: compiled(x, y, case.bandwidths)


_CPU, _CUDA, _BOTH = ("cpu",), ("cuda",), ("cpu", "cuda")
IMPLS: dict = {
    impl.name: impl
    for impl in (
        Impl("naive", lambda: _naive, _CPU, materialises=True),
        Impl("fastmmd", lambda: _fastmmd("cpu", None), _CPU, fastmmd_backend="cpu"),
        Impl("naive-fp32", lambda: _naive, _CUDA, cublas_tf32=False, materialises=True),
        Impl("naive-tf32", lambda: _naive, _CUDA, cublas_tf32=True, materialises=True),
        Impl("naive-compile-tf32", _compiled_naive, _CUDA, cublas_tf32=True, materialises=True, compiles=True),
        Impl("fastmmd-tf32", lambda: _fastmmd("triton", "tf32"), _CUDA, fastmmd_backend="triton"),
        Impl("fastmmd-highest", lambda: _fastmmd("triton", "highest"), _CUDA, fastmmd_backend="triton"),
        Impl("fastmmd-bf16", lambda: _fastmmd("triton", "bf16"), _CUDA, fastmmd_backend="triton"),
        Impl("pykeops", lambda: _keops, _BOTH, module="pykeops"),
    )
}
# Imported once by the memory probe's forkserver instead of in each probe: fastmmd's op is a torch.library
# custom op, and its first call imports torch._dynamo (seconds).
_PROBE_PRELOAD = ("fastmmd", "torch._dynamo", "pykeops")

# The roofline: torch.matmul of two ROOFLINE_SIZE² matrices; impl -> (dtype, TF32 allowed).
ROOFLINE_IMPLS = {"torch-tf32": ("float32", True), "torch-bf16": ("bfloat16", None), "torch-fp32": ("float32", False)}


def impls(device: str = "cpu") -> list:
    """Implementations to run on ``device``: pykeops only where it is installed (it is never a
    requirement)."""
    names = []
    for name, impl in IMPLS.items():
        if device in impl.devices and (impl.module is None or importlib.util.find_spec(impl.module) is not None):
            names.append(name)
    return names


def unavailable(impl: str, device: str) -> Optional[str]:
    """Why ``impl`` cannot run on ``device`` here, or None."""
    if device == "cuda" and not torch.cuda.is_available():
        return "CUDA is not available"
    spec = IMPLS[impl]
    module = spec.module or ("fastmmd" if spec.fastmmd_backend else None)
    if module is not None:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            return f"{module} does not import: {exc}"
    if spec.compiles and device == "cuda" and importlib.util.find_spec("triton") is None:
        return "torch.compile needs triton for CUDA and it is not installed"
    if spec.fastmmd_backend is not None:
        import fastmmd

        status = {s.name: s for s in fastmmd.backend_statuses()}.get(spec.fastmmd_backend)
        if status is None:
            return f"fastmmd has no {spec.fastmmd_backend!r} backend"
        if not status.usable:
            return f"fastmmd's {spec.fastmmd_backend!r} backend is unavailable: {status.reason}"
    return None


def make_call(case: Mmd2Case, impl: str, device: str) -> Callable[[], None]:
    """Builds the inputs of ``case`` on ``device`` (same values every time, on every device) and returns a
    callable that runs ``impl`` once: forward only, or forward and backward into x and y."""
    gen = torch.Generator().manual_seed(0)
    dtype = getattr(torch, case.dtype)
    x = torch.randn(case.n, case.d, generator=gen, dtype=dtype).to(device)
    y = (1.1 * torch.randn(case.m, case.d, generator=gen, dtype=dtype) + 0.1).to(device)
    spec = IMPLS[impl]
    fn = spec.build()
    if case.mode == "fwd":

        def forward() -> torch.Tensor:
            with cublas_tf32(spec.cublas_tf32):
                return fn(x, y, case)

        return forward
    x.requires_grad_(True)
    y.requires_grad_(True)

    def forward_backward() -> None:
        x.grad = y.grad = None
        with cublas_tf32(spec.cublas_tf32):
            fn(x, y, case).backward()

    return forward_backward


def estimated_bytes(case: Mmd2Case, impl: str) -> int:
    """What a case needs beyond its inputs, where that grows with n·m (the materialising
    implementations: naive's estimate, an upper bound for its compiled form); 0 otherwise."""
    if not IMPLS[impl].materialises:
        return 0
    itemsize = torch.empty(0, dtype=getattr(torch, case.dtype)).element_size()
    return naive.peak_bytes_estimate(case.n, case.m, len(case.scales), itemsize, case.mode == "fwdbwd")


def roofline_params(impl: str) -> dict:
    """The CSV columns of the roofline matmul ``impl``: n = m = d = ROOFLINE_SIZE (d is the inner size)."""
    size = ROOFLINE_SIZE
    return {"mode": "fwd", "n": size, "m": size, "d": size, "kernel": "none", "dtype": ROOFLINE_IMPLS[impl][0]}


# ------------------------------------------------------------------------------------------- the tests


def pytest_generate_tests(metafunc):
    parametrize_cases(metafunc, cases, impls(metafunc.config.getoption("bench_device")))
    if "matmul_impl" in metafunc.fixturenames:
        metafunc.parametrize("matmul_impl", list(ROOFLINE_IMPLS))


def test_matmul_roofline(benchmark, bench_options, matmul_impl):
    """The run's roofline, timed before the cases: torch.matmul of two ROOFLINE_SIZE² matrices."""
    if bench_options.device != "cuda":
        pytest.skip("the matmul roofline is measured on CUDA only")
    if not torch.cuda.is_available():
        pytest.skip("CUDA is not available")
    dtype_name, tf32 = ROOFLINE_IMPLS[matmul_impl]
    gen = torch.Generator(device="cuda").manual_seed(0)
    a, b = (
        torch.randn(ROOFLINE_SIZE, ROOFLINE_SIZE, generator=gen, device="cuda", dtype=getattr(torch, dtype_name))
        for _ in range(2)
    )

    def run() -> None:
        with cublas_tf32(tf32):
            torch.matmul(a, b)

    warm = time_callable(run, device="cuda", warmup=3, repeats=1)  # cuBLAS heuristics, clocks
    benchmark.group = f"{ROOFLINE_BENCH} {ROOFLINE_SIZE}"
    benchmark.extra_info.update(case_record(ROOFLINE_BENCH, roofline_params(matmul_impl), matmul_impl, "ok"))
    rounds = plan_rounds(warm.best_s, budget_s=bench_options.budget_s)
    benchmark.pedantic(synchronized(run, "cuda"), rounds=rounds, iterations=1, warmup_rounds=0)


def test_mmd2(benchmark, bench_options, bench_not_timed, bench_measured, case, impl):
    device = bench_options.device
    reason = unavailable(impl, device)
    if reason is not None:
        pytest.skip(reason)
    tiny = dataclasses.replace(case, n=min(case.n, 64), m=min(case.m, 64))
    run_case(benchmark, bench_options, bench_not_timed, bench_measured, bench=BENCH, params=case.params(),
             impl=impl, make_call=make_call, args=(case, impl, device), tiny_args=(tiny, impl, device),
             estimated_bytes=estimated_bytes(case, impl), preload=_PROBE_PRELOAD,
             group=f"{BENCH} {case.mode} d={case.d} n={case.n} m={case.m}")
