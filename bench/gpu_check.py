"""One prepared run on a GPU (at most about 8 minutes on an H100/H200): the CUDA tests, then the headline
figures side by side, written as CSV and PNG to bring back.

    python -m bench.gpu_check --out DIR                # on the GPU machine; DIR/gpu_check.csv, .png, .log
    python -m bench.gpu_check --out DIR --skip-tests   # the figures only
    TRITON_INTERPRET=1 python -m bench.gpu_check --tiny --out DIR   # CPU smoke test of the script itself

Sections, each skipped with a line saying so once --budget-s (default 450 s) is spent:
1. tests: `pytest -m cuda tests` with FASTMMD_AUTOTUNE=0 (the first tile configuration, no autotuning).
2. ceilings: cuBLAS 8192³ products in fp32, TF32 and bf16 (the roofline of this run).
3. mmd2 at 32768 × 2048 and 65536 × 64 (Gaussian, bandwidth √d, unbiased, float32 inputs): naive torch
   (materialised Gram matrices) in fp32 and TF32, `torch.compile` of it, and fastmmd's triton backend in
   tf32, bf16 and highest; forward and forward + backward, median ms, peak memory beyond the inputs, useful
   TFLOP/s (2·d per necessary pair) and its fraction of the TF32 roofline, kernel evaluations per second.
   A naive case that would not fit is skipped with the memory it would need. At d > 256 also the forward's
   schedules side by side: one program per tile or the persistent kernel, pointer or TMA reads; and the
   forward + backward with gradient chunks of 8192 instead of 2048. At d <= 256 the streaming forward's
   general epilogue beside the folded Gaussian, and its TMA reads.
4. exact KID ± std at 50,000 × 50,000 × 2048 (ReLU-like features) in highest, tf32 and bf16, with its
   error against the float64 value, and torchmetrics' convention (100 subsets of 1000) for the time.

Rows: bench, case, impl, precision, mode, ms, peak_mb, tflops, roof_fraction, evals_per_s, value,
rel_error, status, with the device, torch and triton versions and the commit.
"""
from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, List, Optional

import torch

import fastmmd
from bench.harness import cuda_peak_memory, environment, is_out_of_memory, time_callable
from bench.naive import mmd2_unbiased, peak_bytes_estimate
from bench.records import REPO_ROOT, collect_environment
from bench.roofline import pair_count

FULL = {"shapes": [(32768, 2048), (65536, 64)], "kid": (50_000, 2048), "subsets": (100, 1000), "roof": 8192}
TINY = {"shapes": [(24, 16), (32, 8), (20, 260)], "kid": (24, 8), "subsets": (2, 8), "roof": 32}
FIELDS = ["bench", "case", "impl", "precision", "mode", "ms", "peak_mb", "tflops", "roof_fraction", "evals_per_s",
          "value", "rel_error", "status"]


class Run:
    """The clock, the budget, the device and the rows of one check."""

    def __init__(self, out: Path, device: str, budget_s: float, repeats: int):
        self.out, self.device, self.budget_s, self.repeats = out, device, budget_s, repeats
        self.started = time.perf_counter()
        self.rows: List[dict] = []
        self.log = open(out / "gpu_check.log", "a", buffering=1)

    def say(self, line: str) -> None:
        print(line, flush=True)
        print(line, file=self.log)

    def left_s(self) -> float:
        return self.budget_s - (time.perf_counter() - self.started)

    def median_ms(self, fn: Callable[[], object], repeats: Optional[int] = None) -> float:
        """Median wall-clock ms of `repeats` calls after one warm-up (synchronised on CUDA)."""
        return time_callable(fn, device=self.device, warmup=1, repeats=repeats or self.repeats).median_s * 1e3

    def peak_mb(self, fn: Callable[[], object]) -> Optional[float]:
        """Peak CUDA memory of one call beyond what was allocated before it (None on the CPU)."""
        if self.device != "cuda":
            return None
        return cuda_peak_memory(fn).peak_mb

    def add(self, **row) -> None:
        self.rows.append({k: row.get(k, "") for k in FIELDS})
        shown = "  ".join(f"{k}={v}" for k, v in row.items() if v not in ("", None))
        self.say(shown)


def _fmt(v: Optional[float], digits: int = 4) -> str:
    return "" if v is None else f"{v:.{digits}g}"


def run_tests(run: Run) -> None:
    env = dict(os.environ, FASTMMD_AUTOTUNE="0")
    budget = max(30, int(run.left_s() * 0.45))
    start = time.perf_counter()
    try:
        done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-m", "cuda", "-p", "no:cacheprovider",
                               "tests"], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=budget)
        tail = (done.stdout + done.stderr).strip().splitlines()[-1:] or ["(no output)"]
        status = "ok" if done.returncode == 0 else f"failed (exit {done.returncode})"
        (run.out / "gpu_check_tests.txt").write_text(done.stdout + done.stderr)
    except subprocess.TimeoutExpired as exc:
        tail, status = [f"stopped after {budget} s"], "timeout"
        (run.out / "gpu_check_tests.txt").write_text(str(exc.stdout or "") + str(exc.stderr or ""))
    run.add(bench="tests", case="pytest -m cuda, FASTMMD_AUTOTUNE=0", impl="pytest", status=status,
            ms=_fmt((time.perf_counter() - start) * 1e3), value=tail[0])


def ceilings(run: Run, size: int) -> float:
    """The TF32 TFLOP/s of a size³ cuBLAS product (fp32 and bf16 recorded too); 0 on the CPU."""
    a, b = torch.randn(size, size, device=run.device), torch.randn(size, size, device=run.device)
    flops = 2 * size ** 3
    rates = {}
    before = torch.backends.cuda.matmul.allow_tf32
    for name, operands, tf32 in (("fp32", (a, b), False), ("tf32", (a, b), True),
                                 ("bf16", (a.bfloat16(), b.bfloat16()), False)):
        torch.backends.cuda.matmul.allow_tf32 = tf32
        try:
            ms = run.median_ms(lambda operands=operands: operands[0] @ operands[1])
        finally:
            torch.backends.cuda.matmul.allow_tf32 = before
        rates[name] = flops / ms / 1e9
        run.add(bench="ceiling", case=f"matmul {size}^3", impl="cublas", precision=name, ms=_fmt(ms),
                tflops=_fmt(rates[name]), status="ok")
    return rates["tf32"] if run.device == "cuda" else 0.0


def _naive_fits(run: Run, n: int, backward: bool) -> Optional[str]:
    if run.device != "cuda":
        return None
    need = peak_bytes_estimate(n, n, 1, 4, backward)
    free = torch.cuda.mem_get_info()[0]
    return None if need < 0.9 * free else f"skipped: would need {need / 1e9:.3g} GB"


def mmd2_cases(run: Run, n: int, d: int, roof: float) -> None:
    gen = torch.Generator(device=run.device).manual_seed(0)
    x = torch.randn(n, d, device=run.device, generator=gen)
    y = torch.randn(n, d, device=run.device, generator=gen) + 0.1
    sigma = d ** 0.5
    kernel = fastmmd.Gaussian(bandwidth=sigma)
    pairs = pair_count(n, n)
    case = f"{n}x{n}x{d}"
    naive_compiled = torch.compile(mmd2_unbiased) if run.device == "cuda" else None
    impls = [("naive", "fp32", lambda a, b: mmd2_unbiased(a, b, [sigma]), False),
             ("naive", "tf32", lambda a, b: mmd2_unbiased(a, b, [sigma]), True),
             ("torch.compile(naive)", "tf32", lambda a, b: naive_compiled(a, b, [sigma]), True)]
    impls = [i for i in impls if i[0] == "naive" or naive_compiled is not None]
    impls += [("fastmmd", p, lambda a, b, p=p: fastmmd.mmd2(a, b, kernel, backend="triton", precision=p), None)
              for p in ("tf32", "bf16", "highest")]
    forward_ms = {}
    for impl, precision, fn, tf32 in impls:
        for mode in ("fwd", "fwdbwd"):
            if run.left_s() < 0:
                run.add(bench="mmd2", case=case, impl=impl, precision=precision, mode=mode, status="skipped: budget")
                continue
            verdict = _naive_fits(run, n, mode == "fwdbwd") if impl != "fastmmd" else None
            if verdict:
                run.add(bench="mmd2", case=case, impl=impl, precision=precision, mode=mode, status=verdict)
                continue
            xg, yg = x.clone().requires_grad_(mode == "fwdbwd"), y.clone().requires_grad_(mode == "fwdbwd")

            def call(fn=fn, mode=mode, xg=xg, yg=yg):
                value = fn(xg, yg)
                if mode == "fwdbwd":
                    value.backward()
                return value

            before = torch.backends.cuda.matmul.allow_tf32
            torch.backends.cuda.matmul.allow_tf32 = bool(tf32)
            try:
                value = float(call().detach())
                ms = run.median_ms(call)
                peak = run.peak_mb(call)
            except Exception as exc:  # out of memory is an outcome; anything else is a failure of the check
                if not is_out_of_memory(exc):
                    raise
                if run.device == "cuda":
                    torch.cuda.empty_cache()
                run.add(bench="mmd2", case=case, impl=impl, precision=precision, mode=mode, status="oom")
                continue
            finally:
                torch.backends.cuda.matmul.allow_tf32 = before
            forward_ms[(impl, precision, mode)] = ms
            tflops = 2 * d * pairs / ms / 1e9 if mode == "fwd" else None
            run.add(bench="mmd2", case=case, impl=impl, precision=precision, mode=mode, ms=_fmt(ms),
                    peak_mb=_fmt(peak), tflops=_fmt(tflops),
                    roof_fraction=_fmt(tflops / roof if tflops and roof else None, 3),
                    evals_per_s=_fmt(pairs / ms * 1e3), value=_fmt(value, 9), status="ok")
    forward_variants(run, x, y, kernel, case, d, pairs, roof)
    if d > 256:
        larger_chunks(run, x, y, kernel, case, pairs)
    for precision in ("tf32", "bf16", "highest"):
        fwd, both = forward_ms.get(("fastmmd", precision, "fwd")), forward_ms.get(("fastmmd", precision, "fwdbwd"))
        compiled = forward_ms.get(("torch.compile(naive)", "tf32", "fwdbwd"))
        if fwd and both:
            run.say(f"{case} fastmmd {precision}: fwd+bwd = {both / fwd:.2f}x fwd"
                    + (f"; torch.compile fwd+bwd / fastmmd's = {compiled / both:.2f}" if compiled else ""))


# The forward's variants, each a set of environment settings: at d > 256 the tiled forward's schedules (one
# program per tile, or the persistent kernel over the needed tiles with one 8-warp or two 4-warp programs per
# SM; pointer or TMA reads; all opt-in); at d <= 256 the streaming kernel's general epilogue beside the
# default folded one of a lone Gaussian, and its reads through tensor descriptors (opt-in).
SCHEDULES = [("per-tile", {"FASTMMD_PERSISTENT": "0", "FASTMMD_TMA": "0"}),
             ("per-tile+tma", {"FASTMMD_PERSISTENT": "0", "FASTMMD_TMA": "1"}),
             ("persistent", {"FASTMMD_PERSISTENT": "1", "FASTMMD_TMA": "0"}),
             ("persistent+tma", {"FASTMMD_PERSISTENT": "1", "FASTMMD_TMA": "1"}),
             ("persistent-2", {"FASTMMD_PERSISTENT": "2", "FASTMMD_TMA": "0"}),
             ("persistent-2+tma", {"FASTMMD_PERSISTENT": "2", "FASTMMD_TMA": "1"})]
SMALL_D_VARIANTS = [("general-epilogue", {"FASTMMD_FOLD": "0"}), ("tma", {"FASTMMD_TMA": "1"})]


def forward_variants(run: Run, x, y, kernel, case: str, d: int, pairs: int, roof: float) -> None:
    """fastmmd's forward in tf32 and bf16 under each of SCHEDULES (d > 256) or SMALL_D_VARIANTS, side by
    side with the default rows."""
    variants = SCHEDULES if d > 256 else SMALL_D_VARIANTS
    for precision in ("tf32", "bf16"):
        for label, settings in variants:
            impl = f"fastmmd[{label}]"
            if run.left_s() < 0:
                run.add(bench="mmd2", case=case, impl=impl, precision=precision, mode="fwd", status="skipped: budget")
                continue

            def call(precision=precision):
                with torch.no_grad():
                    return fastmmd.mmd2(x, y, kernel, backend="triton", precision=precision)

            with environment(**settings):
                value = float(call())
                ms = run.median_ms(call)
            tflops = 2 * d * pairs / ms / 1e9
            run.add(bench="mmd2", case=case, impl=impl, precision=precision, mode="fwd", ms=_fmt(ms),
                    tflops=_fmt(tflops), roof_fraction=_fmt(tflops / roof if roof else None, 3),
                    evals_per_s=_fmt(pairs / ms * 1e3), value=_fmt(value, 9), status="ok")


# The large-d gradient's chunk (launch.CHUNK rows and columns by default) at this size as well.
LARGER_CHUNK = 8192


def larger_chunks(run: Run, x, y, kernel, case: str, pairs: int) -> None:
    """fastmmd's forward + backward in tf32 and bf16 with FASTMMD_CHUNK=LARGER_CHUNK (fewer, larger GEMMs;
    LARGER_CHUNK² coefficients in memory), beside the default chunk's rows."""
    chunk = min(LARGER_CHUNK, x.shape[0])
    for precision in ("tf32", "bf16"):
        impl = f"fastmmd[chunk={chunk}]"
        if run.left_s() < 0:
            run.add(bench="mmd2", case=case, impl=impl, precision=precision, mode="fwdbwd", status="skipped: budget")
            continue
        xg, yg = x.clone().requires_grad_(True), y.clone().requires_grad_(True)

        def call(precision=precision, xg=xg, yg=yg):
            value = fastmmd.mmd2(xg, yg, kernel, backend="triton", precision=precision)
            value.backward()
            return value

        with environment(FASTMMD_CHUNK=str(chunk)):
            value = float(call().detach())
            ms = run.median_ms(call)
            peak = run.peak_mb(call)
        run.add(bench="mmd2", case=case, impl=impl, precision=precision, mode="fwdbwd", ms=_fmt(ms),
                peak_mb=_fmt(peak), evals_per_s=_fmt(pairs / ms * 1e3), value=_fmt(value, 9), status="ok")


def relu_features(n: int, d: int, shift: float, device: str, seed: int) -> torch.Tensor:
    gen = torch.Generator(device=device).manual_seed(seed)
    direction = torch.randn(d, device=device, generator=gen) * 0.05 * shift
    return (torch.randn(n, d, device=device, generator=gen) * 0.6 + 0.15 + direction).clamp_min(0.0)


def kid_cases(run: Run, n: int, d: int, subsets: int, size: int) -> None:
    real, fake = relu_features(n, d, 0.0, run.device, 1), relu_features(n, d, 1.0, run.device, 2)
    case = f"{n}x{n}x{d}"
    exact = fastmmd.kid(real.double(), fake.double(), subsets=None, backend="triton")
    truth = float(exact.mean)
    run.add(bench="kid", case=case, impl="fastmmd exact", precision="float64 inputs", value=_fmt(truth, 10),
            status="ok")
    for precision in ("highest", "tf32", "bf16"):
        if run.left_s() < 0:
            run.add(bench="kid", case=case, impl="fastmmd exact", precision=precision, status="skipped: budget")
            continue

        def call(precision=precision):
            return fastmmd.kid(real, fake, subsets=None, backend="triton", precision=precision)

        result = call()
        ms = run.median_ms(call, repeats=3)
        run.add(bench="kid", case=case, impl="fastmmd exact", precision=precision, ms=_fmt(ms),
                value=_fmt(float(result.mean), 10), rel_error=_fmt(abs(float(result.mean) - truth) / abs(truth), 3),
                status="ok")

    def subsets_call():
        return fastmmd.kid(real, fake, subsets=subsets, subset_size=size, backend="triton")

    ms = run.median_ms(subsets_call, repeats=3)
    run.add(bench="kid", case=case, impl=f"fastmmd {subsets} x {size} subsets", precision="highest", ms=_fmt(ms),
            value=_fmt(float(subsets_call().mean), 10), status="ok")


def log_configurations(run: Run) -> None:
    """The tile configuration each Triton launcher ran with (the autotuner's choices), one log line each."""
    from fastmmd.backends._triton.configs import chosen_configurations

    for launcher, config in sorted(chosen_configurations().items()):
        run.say(f"configuration {launcher}: {config}")


def write(run: Run) -> None:
    env = collect_environment(run.device).as_dict()
    try:
        import triton
        env["triton"] = triton.__version__
    except ImportError:
        env["triton"] = ""
    path = run.out / "gpu_check.csv"
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=FIELDS + list(env))
        writer.writeheader()
        for row in run.rows:
            writer.writerow(dict(row, **env))
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        run.say("no matplotlib: no PNG")
        return
    timed = [r for r in run.rows if r["bench"] == "mmd2" and r["status"] == "ok"]
    cases = sorted({r["case"] for r in timed})
    if not cases:
        return
    fig, axes = plt.subplots(1, len(cases), figsize=(7 * len(cases), 4.5), squeeze=False)
    for ax, case in zip(axes[0], cases):
        rows = [r for r in timed if r["case"] == case]
        labels = [f"{r['impl']} {r['precision']} {r['mode']}" for r in rows]
        ax.barh(labels, [float(r["ms"]) for r in rows], color=["C0" if r["impl"] == "fastmmd" else "C7" for r in rows])
        ax.set_xscale("log")
        ax.set_xlabel("ms (median)")
        ax.set_title(f"mmd2, {case}, {env['device']}")
    fig.tight_layout()
    fig.savefig(run.out / "gpu_check.png", dpi=120)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="folder for gpu_check.csv, .png, .log")
    parser.add_argument("--tiny", action="store_true", help="small shapes (a smoke test, also on the CPU)")
    parser.add_argument("--skip-tests", action="store_true")
    parser.add_argument("--budget-s", type=float, default=450.0)
    args = parser.parse_args(argv)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cpu" and not args.tiny:
        print("bench.gpu_check: no CUDA device; run with --tiny (and TRITON_INTERPRET=1) for a smoke test",
              file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    plan = TINY if args.tiny else FULL
    run = Run(out, device, args.budget_s, repeats=2 if args.tiny else 5)
    run.say(f"bench.gpu_check on {collect_environment(device).device}, torch {torch.__version__}")
    if not args.skip_tests:
        run_tests(run)
    roof = ceilings(run, plan["roof"])
    for n, d in plan["shapes"]:
        mmd2_cases(run, n, d, roof)
    n, d = plan["kid"]
    kid_cases(run, n, d, *plan["subsets"])
    log_configurations(run)
    write(run)
    run.say(f"done in {time.perf_counter() - run.started:.0f} s: {out / 'gpu_check.csv'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
