"""Builds the C++ CPU backend (pybind11 + OpenMP, no torch headers) once per instruction-set variant, each
as its own extension module fastmmd._C_<variant>; fastmmd/backends/cpu_variants.py imports the best one the
CPU supports. The same sources compiled with different flags go into separate modules (not one), so that
the inline functions they share (std::vector's, our headers') can never be merged across variants by the
linker and run on a CPU without the instructions they were compiled with.

Variants: on x86-64 "avx512" (AVX-512 F/DQ/BW/VL, AVX2, FMA; tuned for a core that has them, since
-mtune=generic schedules AVX-512 code worse by 4-16% at small d), "avx2" (AVX2, FMA) and "baseline" (x86-64:
SSE2); elsewhere (aarch64: NEON) and with MSVC, "baseline" only, for the compiler's default target. No
variant uses -march=native: a wheel built here runs on any CPU of its platform.
"""
import os
import platform
import sys

from pybind11.setup_helpers import Pybind11Extension, build_ext
from setuptools import setup

SOURCES = sorted(os.path.join("csrc", f) for f in os.listdir("csrc") if f.endswith(".cpp"))
X86_VARIANTS = {
    "avx512": ["-mavx512f", "-mavx512dq", "-mavx512bw", "-mavx512vl", "-mavx2", "-mfma",
               "-mprefer-vector-width=512", "-mtune=icelake-server"],
    "avx2": ["-mavx2", "-mfma"],
    "baseline": ["-march=x86-64", "-mtune=generic"],
}


def _is_x86_64() -> bool:
    return platform.machine().lower() in ("x86_64", "amd64")


def variants() -> dict:
    """{variant: its instruction-set flags} for this platform and compiler."""
    if sys.platform == "win32" or not _is_x86_64():
        return {"baseline": []}
    return X86_VARIANTS


def _common_args():
    if sys.platform == "win32":
        return ["/O2", "/openmp", "/std:c++17"]
    # -fno-trapping-math: no program of ours traps on floating-point exceptions, and without it GCC will not
    # if-convert a select around a division or exp (x > 0 ? y / x : 0), so those epilogue loops stay scalar
    # wherever AVX-512's masks are missing (the AVX2 build ran the Gaussian 3-7x slower than AVX-512). It
    # changes no result: unlike -ffast-math it keeps IEEE rounding, NaN and infinities.
    return ["-O3", "-fopenmp", "-std=c++17", "-fno-math-errno", "-fno-trapping-math"]


def extension(variant: str, flags: list) -> Pybind11Extension:
    module = f"_C_{variant}"
    return Pybind11Extension(
        f"fastmmd.{module}",
        sources=SOURCES,
        include_dirs=["csrc"],
        define_macros=[("FASTMMD_MODULE", module), ("FASTMMD_VARIANT", f'"{variant}"')],
        extra_compile_args=_common_args() + flags,
        extra_link_args=[] if sys.platform == "win32" else ["-fopenmp"],
        cxx_std=17,
    )


class BuildVariants(build_ext):
    """build_ext with a temporary folder per extension: the variants compile the same sources, and their
    object files must not overwrite (or, being up to date, stand in for) each other's."""

    def build_extension(self, ext):
        shared = self.build_temp
        self.build_temp = os.path.join(shared, ext.name)
        try:
            super().build_extension(ext)
        finally:
            self.build_temp = shared


setup(ext_modules=[extension(v, flags) for v, flags in variants().items()], cmdclass={"build_ext": BuildVariants})
