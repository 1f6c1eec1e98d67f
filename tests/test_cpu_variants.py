"""The C++ backend's instruction-set variants (setup.py, fastmmd.backends.cpu_variants): each variant this CPU
runs, forced, gives the reference backend's values and gradients on odd shapes (float64 and float32, every
kernel family); each was compiled for what its name says; the best one is chosen, and a variant asked for
that cannot run is an error naming FASTMMD_CPU_ISA, never a silent substitute."""
from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
import tempfile

import pytest
import torch

import fastmmd
import fastmmd.backends.cpu as cpu_backend
from cases import CASES
from conftest import RUNNABLE_VARIANTS, sample_xy
from fastmmd.backends._base import LazyImport
from fastmmd.backends.cpu_variants import (
    ENV_VARIABLE,
    REQUIRED_FEATURES,
    VARIANTS,
    built_variants,
    choose_variant,
    cpu_features,
    import_variant,
)
from tolerances import TOLERANCES

pytestmark = pytest.mark.skipif(not RUNNABLE_VARIANTS, reason="the C++ extension is not built")

X86 = platform.machine().lower() in ("x86_64", "amd64") and sys.platform != "win32"


@pytest.fixture(params=RUNNABLE_VARIANTS)
def forced(request, monkeypatch):
    """The cpu backend running `variant`, as FASTMMD_CPU_ISA=variant would make it."""
    variant = request.param
    monkeypatch.setattr(cpu_backend, "_variant", LazyImport(lambda: choose_variant(variant), str))
    assert cpu_backend.cpu_variant()[0].name == variant
    return variant


def _close(actual, expected, scale, tol):
    actual, expected = actual.detach(), expected.detach()
    assert float((actual - expected).abs().max()) <= tol * max(float(scale), 1e-300), (actual, expected)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=str)
@pytest.mark.parametrize("case", CASES, ids=repr)
def test_each_variant_equals_the_reference(forced, case, dtype):
    n, m, d = 131, 97, 13  # more than one tile of 96 rows, ragged; d not a multiple of any vector width
    x, y = sample_xy(n, m, d, dtype=torch.float64, seed=5)
    kernel = case.make(d)
    tol = TOLERANCES[dtype]
    xr, yr = x.clone().requires_grad_(True), y.clone().requires_grad_(True)
    want = fastmmd.mmd2(xr, yr, kernel=kernel, backend="reference")
    want_gx, want_gy = torch.autograd.grad(want, (xr, yr))
    xc, yc = x.to(dtype).requires_grad_(True), y.to(dtype).requires_grad_(True)
    got = fastmmd.mmd2(xc, yc, kernel=kernel, backend="cpu")
    got_gx, got_gy = torch.autograd.grad(got, (xc, yc))
    # The scale of the summed kernel values and gradients (MMD² itself can be near 0).
    scale = fastmmd.mmd2(x, y, kernel=kernel, estimator="biased", backend="reference").abs() + 1.0
    _close(got.double(), want.detach(), scale, tol.value)
    _close(got_gx.double(), want_gx, want_gx.abs().max() + want_gy.abs().max(), tol.grad)
    _close(got_gy.double(), want_gy, want_gx.abs().max() + want_gy.abs().max(), tol.grad)

    v = torch.linspace(-1, 1, m * 3, dtype=torch.float64).reshape(m, 3)
    product = fastmmd.kernel_matmul(x.to(dtype), y.to(dtype), v.to(dtype), kernel=kernel, backend="cpu")
    expected = fastmmd.kernel_matmul(x, y, v, kernel=kernel, backend="reference")
    _close(product.double(), expected, expected.abs().max() + 1.0, tol.value)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=str)
def test_each_variant_gives_the_variance(forced, dtype):
    x, y = sample_xy(103, 89, 21, dtype=torch.float64, seed=9)
    kernel = fastmmd.Gaussian(bandwidth=[2.0, 6.0])
    want = fastmmd.mmd2_and_variance(x, y, kernel=kernel, backend="reference")
    got = fastmmd.mmd2_and_variance(x.to(dtype), y.to(dtype), kernel=kernel, backend="cpu")
    tol = TOLERANCES[dtype].value
    for g, w in zip(got, want):
        _close(g.double(), w, 1.0, tol)


@pytest.mark.parametrize("variant", RUNNABLE_VARIANTS)
def test_each_variant_was_compiled_for_its_instruction_sets(variant):
    ext = import_variant(variant)
    assert ext.VARIANT == variant
    assert set(REQUIRED_FEATURES[variant]) <= set(ext.COMPILED_FOR)
    if variant == "avx2":
        assert "avx512f" not in ext.COMPILED_FOR
    if variant == "baseline" and X86:
        assert "avx2" not in ext.COMPILED_FOR and "sse2" in ext.COMPILED_FOR


def _instructions(variant: str) -> list:
    """The mnemonics and operands of every instruction in the variant's shared library (objdump -d)."""
    path = import_variant(variant).__file__
    listing = subprocess.run(["objdump", "-d", "--no-show-raw-insn", path], capture_output=True, text=True,
                             check=True).stdout
    return [line.split("\t", 1)[1] for line in listing.splitlines() if line.startswith(" ") and "\t" in line]


@pytest.mark.skipif(not X86 or shutil.which("objdump") is None, reason="reads x86-64 machine code with objdump")
@pytest.mark.parametrize("variant", [v for v in VARIANTS if v in built_variants()])
def test_each_variant_s_machine_code_stays_within_its_instruction_sets(variant):
    """What the CPU will execute, not what the macros say: the baseline has no VEX/EVEX instruction (every
    AVX mnemonic starts with v), AVX2 no 512-bit register, AVX-512 uses them (else it is no faster)."""
    code = _instructions(variant)
    assert len(code) > 10000
    wide = sum("%zmm" in op for op in code)
    if variant == "baseline":
        assert not [op for op in code if op.startswith("v") or "%ymm" in op][:5]
    elif variant == "avx2":
        assert wide == 0 and sum("%ymm" in op for op in code) > 100
    else:
        assert wide > 100


def test_x86_builds_every_variant_and_other_platforms_the_baseline():
    assert built_variants() == (VARIANTS if X86 else ("baseline",))


def test_the_best_variant_the_cpu_supports_is_chosen(monkeypatch):
    monkeypatch.delenv(ENV_VARIABLE, raising=False)
    features = cpu_features()
    best = next(v for v in built_variants() if all(features.get(f, False) for f in REQUIRED_FEATURES[v]))
    choice = choose_variant()
    assert (choice.name, choice.requested) == (best, False)


def test_a_cpu_without_avx512_gets_avx2_and_one_without_either_the_baseline(monkeypatch):
    if not X86:
        pytest.skip("x86-64 variants")
    import fastmmd.backends.cpu_variants as variants

    monkeypatch.delenv(ENV_VARIABLE, raising=False)
    monkeypatch.setattr(variants, "cpu_features", lambda: {"sse2": True, "avx2": True, "fma": True})
    assert variants.choose_variant().name == "avx2"
    monkeypatch.setattr(variants, "cpu_features", lambda: {"sse2": True, "avx2": True})  # no FMA
    assert variants.choose_variant().name == "baseline"
    with pytest.raises(ImportError, match="FASTMMD_CPU_ISA='avx512': this CPU lacks avx512f, avx512dq"):
        variants.choose_variant("avx512")


@pytest.mark.parametrize("requested,match", [
    ("sse9", "is not a variant; valid: avx512, avx2, baseline"),
    ("AVX2", "is not a variant"),
])  # fmt: skip
def test_a_bad_request_is_an_error(requested, match):
    with pytest.raises(ImportError, match=match):
        choose_variant(requested)


def _run(code: str, **env) -> subprocess.CompletedProcess:
    # the fastmmd under test, whether installed, editable or run from the source tree
    path = os.pathsep.join(filter(None, [os.path.dirname(os.path.dirname(fastmmd.__file__)),
                                         os.environ.get("PYTHONPATH")]))
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**os.environ, **env, "PYTHONPATH": path}, cwd=tempfile.gettempdir())


def test_the_environment_variable_forces_a_variant_and_info_says_which():
    variant = RUNNABLE_VARIANTS[-1]  # the baseline: never the one chosen by default on x86 with AVX2
    done = _run("import fastmmd.cli.info as i; print(i.report())", FASTMMD_CPU_ISA=variant)
    assert done.returncode == 0, done.stderr
    assert f"C++ backend: variant {variant} (forced by FASTMMD_CPU_ISA" in done.stdout
    assert "cpu        [cpu] usable" in done.stdout


def test_a_variant_that_cannot_run_leaves_the_cpu_backend_unavailable_with_the_reason():
    code = ("import torch, fastmmd\n"
            "try:\n"
            "    fastmmd.mmd2(torch.randn(5, 2), torch.randn(6, 2), backend='cpu')\n"
            "except RuntimeError as error:\n"
            "    print(error)\n")
    done = _run(code, FASTMMD_CPU_ISA="sse9")
    assert done.returncode == 0, done.stderr
    assert "FASTMMD_CPU_ISA='sse9' is not a variant" in done.stdout
    assert "pip install" not in done.stdout  # building again would not help
