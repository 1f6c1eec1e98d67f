"""Side-by-side timings of the Triton backend's code paths on one GPU, in one run, for tuning them.

    python -m bench.triton_paths                 # the headline shapes: d = 2048 and d = 64
    python -m bench.triton_paths --only d2048    # one of them
    python -m bench.triton_paths --out FILE      # also append the lines to FILE

Per shape (Gaussian kernel, bandwidth sqrt(d), unbiased estimator, float32 inputs), it prints:
- the cuBLAS roofline of the same run (8192³ products in TF32 and bf16);
- the forward in each precision, with the tiled kernels reading through pointers and through tensor
  descriptors (FASTMMD_TMA=1), as ms, useful TFLOP/s (2·d FLOPs per necessary pair), fraction of the TF32
  roofline and kernel evaluations per second;
- at d = 2048, the bf16 forward when the kernels read bf16 copies of the inputs (what a bf16 input costs);
- forward + backward per precision, its ratio to the forward, and the peak memory beyond the inputs;
- the per-kernel CUDA time of one forward + backward (torch.profiler), and the tile sizes the autotuner chose.

The timings are CUDA-event medians; this is a tuning aid beside `python -m bench.run mmd2 --device cuda`,
which records the published figures.
"""
from __future__ import annotations

import argparse
import time
from typing import Callable, List

import torch

import fastmmd
from bench.harness import environment
from bench.roofline import pair_count

SHAPES = {"d2048": (32768, 2048), "d64": (65536, 64)}


def median_ms(fn: Callable[[], object], repeats: int, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times: List[float] = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end))
    return sorted(times)[len(times) // 2]


def tma(enabled: bool):
    """The block with the tiled kernels reading through tensor descriptors (FASTMMD_TMA) or not."""
    return environment(FASTMMD_TMA="1" if enabled else "0")


def samples(n: int, d: int) -> tuple:
    gen = torch.Generator(device="cuda").manual_seed(0)
    x = torch.randn(n, d, device="cuda", generator=gen)
    y = torch.randn(n, d, device="cuda", generator=gen) + 0.1
    return x, y


def roofline(say) -> float:
    """TF32 TFLOP/s of an 8192³ cuBLAS product (and bf16, printed)."""
    a, b = torch.randn(8192, 8192, device="cuda"), torch.randn(8192, 8192, device="cuda")
    flops = 2 * 8192 ** 3
    before = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = True
    try:
        tf32 = flops / median_ms(lambda: a @ b, 10) / 1e9
    finally:
        torch.backends.cuda.matmul.allow_tf32 = before
    ab, bb = a.bfloat16(), b.bfloat16()
    bf16 = flops / median_ms(lambda: ab @ bb, 10) / 1e9
    say(f"roofline ({torch.cuda.get_device_name()}): cuBLAS TF32 {tf32:.0f} TFLOP/s, bf16 {bf16:.0f} TFLOP/s")
    return tf32


def bf16_copies_forward(x, y, kernel) -> Callable[[], torch.Tensor]:
    """The bf16 forward's three pair sums with the kernels reading bf16 copies of x and y."""
    from fastmmd.backends._triton import launch
    from fastmmd.kernels import SHIFT_INVARIANT_MMD_FAMILIES

    prep = launch.prepare(x, y, kernel.terms(x.shape[1]).ravel().tolist(), "bf16", SHIFT_INVARIANT_MMD_FAMILIES)
    xb, yb = x.bfloat16(), y.bfloat16()
    n, m = x.shape[0], y.shape[0]

    def run():
        s_xx = launch.block_value(xb, xb, prep.sq_x, prep.sq_x, prep, True, True)
        s_yy = launch.block_value(yb, yb, prep.sq_y, prep.sq_y, prep, True, True)
        s_xy = launch.block_value(xb, yb, prep.sq_x, prep.sq_y, prep, False, False)
        return s_xx / (n * (n - 1)) + s_yy / (m * (m - 1)) - 2 * s_xy / (n * m)

    return run


def kernel_breakdown(step: Callable[[], None], say) -> None:
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        step()
        torch.cuda.synchronize()
    say(prof.key_averages().table(sort_by="cuda_time_total", row_limit=10, max_name_column_width=50))


def run_shape(name: str, roof: float, say) -> None:
    n, d = SHAPES[name]
    x, y = samples(n, d)
    kernel = fastmmd.Gaussian(bandwidth=d ** 0.5)
    pairs = pair_count(n, n)
    say(f"\n== n = m = {n}, d = {d}: {pairs:.3g} necessary pairs ==")
    forward_ms = {}
    for precision in ("tf32", "bf16", "highest"):
        for descriptors in (False, True):
            with tma(descriptors):
                def call(precision=precision):
                    return fastmmd.mmd2(x, y, kernel, backend="triton", precision=precision)

                started = time.perf_counter()
                value = float(call())
                first_s = time.perf_counter() - started
                ms = median_ms(call, 10)
            forward_ms[precision] = min(forward_ms.get(precision, float("inf")), ms)
            tflops = 2 * d * pairs / ms / 1e9
            say(f"fwd {precision:8s} tma={int(descriptors)}: {ms:8.2f} ms  {tflops:6.0f} TFLOP/s  "
                f"{tflops / roof:5.0%} of TF32 roof  {pairs / ms / 1e9:5.2f}e12 evals/s  "
                f"first call {first_s:5.1f} s  MMD² {value:.6g}")
    if d > 256:
        ms = median_ms(bf16_copies_forward(x, y, kernel), 10)
        say(f"fwd bf16 from bf16 copies of the inputs: {ms:.2f} ms")
    xg, yg = x.clone().requires_grad_(True), y.clone().requires_grad_(True)
    for precision, descriptors in (("tf32", False), ("tf32", True), ("bf16", False)):
        def step(precision=precision):
            fastmmd.mmd2(xg, yg, kernel, backend="triton", precision=precision).backward()

        with tma(descriptors):
            step()
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            base = torch.cuda.memory_allocated()
            ms = median_ms(step, 5)
            extra = (torch.cuda.max_memory_allocated() - base) / 2 ** 20
            say(f"fwd+bwd {precision} tma={int(descriptors)}: {ms:.1f} ms = {ms / forward_ms[precision]:.2f}x "
                f"the forward; peak beyond inputs and gradients {extra:.0f} MiB")
            if precision == "tf32" and not descriptors:
                kernel_breakdown(step, say)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=sorted(SHAPES), action="append", help="shapes to run (default all)")
    parser.add_argument("--out", help="also append the printed lines to this file")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        raise SystemExit("bench.triton_paths needs a CUDA GPU")
    sink = open(args.out, "a", buffering=1) if args.out else None

    def say(line: str) -> None:
        print(line, flush=True)
        if sink:
            print(line, file=sink)

    roof = roofline(say)
    for name in args.only or sorted(SHAPES):
        run_shape(name, roof, say)
    from fastmmd.backends._triton import configs

    for key, launcher in configs._launchers.items():
        best = getattr(launcher.fn, "best_config", None)
        if best is not None:
            say(f"autotuned {key}: {best}")


if __name__ == "__main__":
    main()
