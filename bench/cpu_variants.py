"""The C++ backend's instruction-set variants side by side with a build for this very machine
(-march=native, what setup.py compiled before the variants, with the same other flags), on the same inputs
in one run.

    python -m bench.cpu_variants                 # builds the native copy in a temporary folder (about 30 s)
    python -m bench.cpu_variants --quick         # small shapes, for a smoke test

Each variant built here that the CPU runs (fastmmd._C_avx512, _C_avx2, _C_baseline) and the native build
run the extension's three passes directly (csrc/INTERFACE.md): pair_sum with gradients (one block of MMD²'s
forward and backward), pair_stats (the variance's pass) and kernel_matmul with p = 64 columns, float32, all
cores, median of --repeats calls after a warm-up. The table gives each time and native time / variant time
(1.0: as fast as the native build). Rows go to bench/results/cpu_variants_cpu.csv with machine, commit and
date.
"""
from __future__ import annotations

import argparse
import importlib
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np

from bench.records import REPO_ROOT, RESULTS_DIR, append_rows, collect_environment

KERNELS = {"gaussian_mix": "gaussian", "poly3": "polynomial"}
FULL_CASES = [(4096, 4096, 64), (4096, 4096, 2048), (8192, 8192, 16)]
QUICK_CASES = [(512, 512, 32)]
CSV = RESULTS_DIR / "cpu_variants_cpu.csv"


def build_native(folder: Path) -> object:
    """csrc/ compiled with -march=native as the top-level module _C_native in `folder`, imported."""
    script = textwrap.dedent(f"""
        import os
        from pybind11.setup_helpers import Pybind11Extension, build_ext
        from setuptools import setup
        csrc = {str(REPO_ROOT / 'csrc')!r}
        ext = Pybind11Extension("_C_native", sources=sorted(os.path.join(csrc, f) for f in os.listdir(csrc)
                                                            if f.endswith(".cpp")),
                                include_dirs=[csrc], define_macros=[("FASTMMD_MODULE", "_C_native"),
                                                                    ("FASTMMD_VARIANT", '"native"')],
                                extra_compile_args=["-O3", "-fopenmp", "-std=c++17", "-fno-math-errno",
                                                    "-fno-trapping-math", "-march=native"],
                                extra_link_args=["-fopenmp"], cxx_std=17)
        setup(name="fastmmd-native-bench", ext_modules=[ext], cmdclass={{"build_ext": build_ext}},
              script_args=["build_ext", "--build-lib", {str(folder)!r}, "--build-temp",
                           {str(folder / 'tmp')!r}])
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=folder)
    if done.returncode != 0:
        raise RuntimeError(f"the native build failed:\n{done.stderr[-3000:]}")
    sys.path.insert(0, str(folder))
    return importlib.import_module("_C_native")


def _terms(kernel: str, d: int) -> np.ndarray:
    import fastmmd

    if kernel == "poly3":
        return fastmmd.Polynomial().terms(d)
    scale = np.sqrt(d)
    return fastmmd.Gaussian(bandwidth=[0.5 * scale, scale, 2.0 * scale]).terms(d)


def _median_s(call, repeats: int) -> float:
    call()  # warm-up: OpenMP's pool, first touch of the buffers
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def passes(ext, a: np.ndarray, b: np.ndarray, v: np.ndarray, terms: np.ndarray) -> dict:
    """{pass name: callable} of one extension on one case."""
    return {
        "pair_sum+grad": lambda: ext.pair_sum(a, b, terms, False, False, True, 0),
        "pair_stats": lambda: ext.pair_stats(a, b, terms, False, False, 0),
        "kernel_matmul": lambda: ext.kernel_matmul(a, b, v, terms, False, False, 0),
    }


def runnable_variants() -> list:
    """(name, module) of every built variant this CPU runs, best first."""
    from fastmmd.backends.cpu_variants import REQUIRED_FEATURES, built_variants, cpu_features, import_variant

    features = cpu_features()
    return [(v, import_variant(v)) for v in built_variants()
            if all(features.get(f, False) for f in REQUIRED_FEATURES[v])]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="one small case (a smoke test; not recorded)")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)

    from fastmmd.backends.cpu import cpu_variant

    chosen, reason = cpu_variant()
    if chosen is None:
        print(f"the C++ backend cannot run: {reason}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as folder:
        builds = [("native", build_native(Path(folder)))] + runnable_variants()
        env = collect_environment("cpu")
        rows = []
        gen = np.random.default_rng(0)
        header = ["pass", "kernel", "n", "m", "d"] + [f"{name} s" for name, _ in builds] + [
            f"native/{name}" for name, _ in builds[1:]]
        lines = [header]
        for n, m, d in QUICK_CASES if args.quick else FULL_CASES:
            a = np.abs(gen.standard_normal((n, d))).astype(np.float32)
            b = np.abs(0.1 + gen.standard_normal((m, d))).astype(np.float32)
            v = gen.standard_normal((m, 64)).astype(np.float32)
            for kernel in KERNELS:
                terms = _terms(kernel, d)
                times = {}
                for name, ext in builds:
                    for op, call in passes(ext, a, b, v, terms).items():
                        times[(op, name)] = _median_s(call, args.repeats)
                for op in passes(builds[0][1], a, b, v, terms):
                    native = times[(op, "native")]
                    lines.append([op, kernel, n, m, d] + [f"{times[(op, name)]:.3g}" for name, _ in builds] + [
                        f"{native / times[(op, name)]:.2f}" for name, _ in builds[1:]])
                    rows += [{"bench": "cpu_variants", "mode": op, "n": n, "m": m, "d": d, "kernel": kernel,
                              "dtype": "float32", "impl": name, **env.as_dict(),
                              "time_s": f"{times[(op, name)]:.6g}", "time_best_s": "", "rounds": args.repeats,
                              "peak_mem_mb": "", "status": "ok"} for name, _ in builds]
    from bench.run import text_table

    print(f"{env.device}, {env.threads} threads, commit {env.commit}; dispatched here: {chosen.name}")
    print(text_table(lines))
    if not args.quick:
        append_rows(CSV, rows)
        print(f"appended {len(rows)} rows to {CSV}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
