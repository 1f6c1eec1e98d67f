"""Measuring one benchmark case: wall-clock time, peak memory, and running out of memory as an outcome.

A case is a zero-argument callable (inputs already built) that runs the op once, forward or forward and
backward. Out of memory is a result of the case, not a crash of the run: :func:`is_out_of_memory` names the
exceptions that mean it, :func:`memory_budget_verdict` skips a case whose estimated need is over a limit
before it runs (on the CPU a real out-of-memory takes the machine down with it), and the CPU memory probe
runs the case in a child process, so even the kernel's OOM killer only ends the child.
"""
from __future__ import annotations

import contextlib
import gc
import math
import multiprocessing
import os
import signal
import statistics
import threading
import time
import traceback
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Optional, Sequence

import torch

GB = 1e9
MB = 1e6

# ----------------------------------------------------------------------------------------------- timing


@dataclass(frozen=True)
class Timing:
    """Wall-clock seconds of each timed repeat (warm-up runs excluded)."""

    times_s: tuple

    @property
    def best_s(self) -> float:
        return min(self.times_s)

    @property
    def median_s(self) -> float:
        return statistics.median(self.times_s)


def synchronized(fn: Callable[[], Any], device: str) -> Callable[[], None]:
    """``fn`` followed by ``torch.cuda.synchronize()`` when ``device`` is CUDA, so a wall clock around it
    measures the work and not just the launch."""
    if torch.device(device).type != "cuda":
        return fn

    def run() -> None:
        fn()
        torch.cuda.synchronize()

    return run


def time_callable(fn: Callable[[], Any], *, device: str = "cpu", warmup: int = 1, repeats: int = 3) -> Timing:
    """Runs ``fn`` ``warmup`` times untimed, then ``repeats`` times, each timed with ``time.perf_counter``."""
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    run = synchronized(fn, device)
    for _ in range(warmup):
        run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return Timing(tuple(times))


def plan_rounds(first_s: float, *, budget_s: float, min_rounds: int = 3, max_rounds: int = 50) -> int:
    """How many timed rounds fit in ``budget_s`` given that one run took ``first_s`` (the warm-up),
    clamped to [min_rounds, max_rounds]: a slow case gets ``min_rounds``, a fast one more to steady the
    median."""
    if first_s <= 0:
        return max_rounds
    return max(min_rounds, min(max_rounds, math.ceil(budget_s / first_s)))


@contextlib.contextmanager
def cublas_tf32(allowed: Optional[bool]) -> Iterator[None]:
    """Sets ``torch.backends.cuda.matmul.allow_tf32`` (TF32 tensor cores for float32 cuBLAS matmuls) for
    the duration of the block and restores the previous value after it; ``None`` leaves it as it is."""
    if allowed is None:
        yield
        return
    matmul = torch.backends.cuda.matmul
    before = matmul.allow_tf32
    matmul.allow_tf32 = allowed
    try:
        yield
    finally:
        matmul.allow_tf32 = before


@contextlib.contextmanager
def environment(**settings: str) -> Iterator[None]:
    """Sets the environment variables `settings` (e.g. FASTMMD_TMA="1") for the duration of the block and
    restores each one's previous value (or absence) after it."""
    before = {name: os.environ.get(name) for name in settings}
    os.environ.update(settings)
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


# ------------------------------------------------------------------------------------- out of memory


def is_out_of_memory(exc: BaseException) -> bool:
    """True for the exceptions that mean an allocation failed: ``torch.OutOfMemoryError`` (CUDA),
    ``MemoryError``, and the ``RuntimeError`` torch's CPU allocator raises ("can't allocate memory")."""
    if isinstance(exc, (torch.OutOfMemoryError, MemoryError)):
        return True
    return isinstance(exc, RuntimeError) and "can't allocate memory" in str(exc)


def memory_budget_verdict(need_bytes: int, limit_bytes: float) -> Optional[str]:
    """``"skipped: would need X GB"`` when ``need_bytes`` is over ``limit_bytes``, else None."""
    if need_bytes > limit_bytes:
        return f"skipped: would need {need_bytes / GB:.3g} GB"
    return None


# ------------------------------------------------------------------------------------------ peak memory


@dataclass(frozen=True)
class MemoryOutcome:
    """``status`` is "ok" (then ``peak_bytes`` is set) or starts with "oom"."""

    status: str
    peak_bytes: Optional[int] = None

    @property
    def peak_mb(self) -> Optional[float]:
        return None if self.peak_bytes is None else self.peak_bytes / MB


def cuda_peak_memory(fn: Callable[[], Any]) -> MemoryOutcome:
    """Peak of ``torch.cuda.max_memory_allocated`` over one run of ``fn``, less what was allocated before
    it (so the inputs do not count). An out-of-memory is returned as ``status="oom"``."""
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    before = torch.cuda.memory_allocated()
    try:
        fn()
        torch.cuda.synchronize()
    except Exception as exc:  # only out-of-memory is an outcome; anything else propagates
        if not is_out_of_memory(exc):
            raise
        torch.cuda.empty_cache()
        return MemoryOutcome("oom")
    return MemoryOutcome("ok", torch.cuda.max_memory_allocated() - before)


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


def _rss_bytes() -> int:
    return _status_kib("VmRSS") * 1024


def _reset_peak_rss() -> bool:
    """Resets VmHWM (the kernel's peak-RSS counter) to the current RSS; False where not allowed."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        return False
    return True


class _RssWatchdog(threading.Thread):
    """Samples VmRSS every ``interval_s``; keeps the maximum, and ends the process (exit code
    ``OVER_LIMIT_EXIT``) as soon as RSS grows more than ``limit_bytes`` over ``base_bytes``."""

    OVER_LIMIT_EXIT = 86

    def __init__(self, base_bytes: int, limit_bytes: float, interval_s: float = 0.002):
        super().__init__(daemon=True)
        self.base_bytes, self.limit_bytes, self.interval_s = base_bytes, limit_bytes, interval_s
        self.max_bytes = base_bytes
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            rss = _rss_bytes()
            self.max_bytes = max(self.max_bytes, rss)
            if rss - self.base_bytes > self.limit_bytes:
                os._exit(self.OVER_LIMIT_EXIT)
            self._stop_event.wait(self.interval_s)

    def stop(self) -> None:
        self._stop_event.set()
        self.join()


def _probe_in_child(conn, factory, args, warm_args, limit_bytes) -> None:
    """Body of the child process of :func:`cpu_peak_memory`; sends ("ok", bytes), ("oom", msg) or
    ("error", traceback) through ``conn``."""
    try:
        if warm_args is not None:
            factory(*warm_args)()  # thread pools, lazy library set-up: not the case's memory
        fn = factory(*args)
        gc.collect()
        exact = _reset_peak_rss()
        base = _rss_bytes()
        watchdog = _RssWatchdog(base, limit_bytes)
        watchdog.start()
        fn()
        watchdog.stop()
        peak = max(watchdog.max_bytes, _status_kib("VmHWM") * 1024 if exact else 0)
        conn.send(("ok", peak - base))
    except Exception as exc:  # reported to the parent, which re-raises what is not out-of-memory
        conn.send(("oom", str(exc)) if is_out_of_memory(exc) else ("error", traceback.format_exc()))
    finally:
        conn.close()


_forkserver: Optional[multiprocessing.context.BaseContext] = None


def _context(preload: Sequence[str]):
    global _forkserver
    if _forkserver is None:
        _forkserver = multiprocessing.get_context("forkserver")
        _forkserver.set_forkserver_preload(["torch", __name__, *preload])
    return _forkserver


def cpu_peak_memory(
    factory: Callable[..., Callable[[], Any]],
    args: tuple,
    *,
    warm_args: Optional[tuple] = None,
    limit_bytes: float = 8 * GB,
    preload: Sequence[str] = (),
) -> MemoryOutcome:
    """Peak resident-memory growth of one run of ``factory(*args)()`` on the CPU, in a fresh process.

    ``factory`` (a module-level function, ``args`` picklable) builds the inputs and returns the callable;
    the growth is measured from after the inputs exist, so they do not count. ``warm_args`` builds a tiny
    case run first, so one-time set-up (OpenMP thread pools, library initialisation) is not counted either.

    Why a fresh process: resident memory is a per-process number, and in a long-lived process memory freed
    by an earlier case stays in the allocator's free lists and is reused without showing as growth, so the
    same case would measure differently depending on what ran before it. The child comes from a forkserver
    that imported torch, the factory's module and the modules in ``preload`` once (the first call's list
    counts), so each probe costs a fork, not those imports. The peak is the kernel's own
    counter (VmHWM, reset through /proc/self/clear_refs just before the run) and, where that reset is not
    allowed, the maximum of a VmRSS sampler at 2 ms (a lower bound: a shorter spike can be missed).

    As with any multiprocessing start method but fork, a script that calls this must keep its own work
    under ``if __name__ == "__main__":`` (pytest and ``python -m bench.run`` do).

    Safety: the sampler ends the child as soon as its growth passes ``limit_bytes``, and if the kernel's OOM
    killer ends it instead, only the child dies. Both are returned as ``status="oom..."``; a MemoryError or
    allocator failure inside the child is "oom" too. Any other exception in the child is raised here.
    """
    ctx = _context([factory.__module__, *preload])
    parent_conn, child_conn = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_probe_in_child, args=(child_conn, factory, args, warm_args, limit_bytes))
    proc.start()
    child_conn.close()
    try:
        kind, payload = parent_conn.recv()
    except EOFError:  # the child died without reporting
        kind, payload = None, None
    proc.join()
    if kind == "ok":
        return MemoryOutcome("ok", int(payload))
    if kind == "oom":
        return MemoryOutcome("oom")
    if kind == "error":
        raise RuntimeError(f"the memory probe of {factory.__name__}{args} failed in its child:\n{payload}")
    if proc.exitcode == _RssWatchdog.OVER_LIMIT_EXIT:
        return MemoryOutcome(f"oom: grew past {limit_bytes / GB:.3g} GB")
    if proc.exitcode == -signal.SIGKILL:
        return MemoryOutcome("oom: killed")
    raise RuntimeError(f"the memory probe of {factory.__name__}{args} exited with code {proc.exitcode}")
