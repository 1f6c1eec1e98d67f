"""Builds the C++ extension fastmmd._C (pybind11 + OpenMP, no torch headers).

FASTMMD_NATIVE=0 builds for the generic x86-64 target instead of the machine it is built on.
"""
import os
import sys

from pybind11.setup_helpers import Pybind11Extension, build_ext
from setuptools import setup


def _compile_args():
    if sys.platform == "win32":
        return ["/O2", "/openmp", "/std:c++17"]
    args = ["-O3", "-fopenmp", "-std=c++17", "-fno-math-errno"]
    if os.environ.get("FASTMMD_NATIVE", "1") != "0":
        args.append("-march=native")
    return args


ext = Pybind11Extension(
    "fastmmd._C",
    sources=sorted(os.path.join("csrc", f) for f in os.listdir("csrc") if f.endswith(".cpp")),
    include_dirs=["csrc"],
    extra_compile_args=_compile_args(),
    extra_link_args=[] if sys.platform == "win32" else ["-fopenmp"],
    cxx_std=17,
)

setup(ext_modules=[ext], cmdclass={"build_ext": build_ext})
