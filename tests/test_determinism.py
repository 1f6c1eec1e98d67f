"""The fused backends give the same bits for the same input: run to run, and whatever the thread count."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import fastmmd
from conftest import RUNNABLE_VARIANTS, sample_xy
from fastmmd.backends.cpu_variants import choose_variant

# Fast backends with a fixed reduction order on the CPU; the Triton backend's repeatability is tested on the GPU
# (tests/test_triton.py, marked cuda): the interpreter is too slow for these sizes.
BACKENDS = ["cpu", "auto"]
KERNEL = fastmmd.RationalQuadratic(alpha=[0.2, 1.0, 5.0], scale=2.0) + fastmmd.Linear() + fastmmd.Energy()

# Larger than one tile in both directions, with ragged edges.
N, M, D = 611, 577, 9


def _run(x, y, estimator, backend, kernel=KERNEL):
    x = x.detach().clone().requires_grad_(True)
    y = y.detach().clone().requires_grad_(True)
    out = fastmmd.mmd2(x, y, kernel=kernel, estimator=estimator, backend=backend)
    gx, gy = torch.autograd.grad(out, (x, y))
    return out.detach(), gx, gy


def _assert_same_bits(a, b):
    for u, v in zip(a, b):
        assert u.dtype == v.dtype and u.shape == v.shape
        # bitwise: compare the integer views (also distinguishes -0.0 from 0.0, and works for NaN)
        iu = u.view(torch.int64 if u.dtype == torch.float64 else torch.int32)
        iv = v.view(torch.int64 if v.dtype == torch.float64 else torch.int32)
        assert torch.equal(iu, iv), f"differ by up to {float((u - v).abs().max()):.3e}"


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize("estimator", ["unbiased", "biased", "u-statistic", "linear"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_same_input_same_bits(backend, estimator, dtype):
    m = N if estimator in ("u-statistic", "linear") else M
    x, y = sample_xy(N, m, D, dtype=dtype, seed=30)
    first = _run(x, y, estimator, backend)
    second = _run(x, y, estimator, backend)
    _assert_same_bits(first, second)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize("estimator", ["unbiased", "biased", "u-statistic"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_same_bits_with_one_or_more_threads(backend, estimator, dtype, restore_num_threads):
    m = N if estimator == "u-statistic" else M
    x, y = sample_xy(N, m, D, dtype=dtype, seed=31)
    results = []
    for threads in (1, 2, 3):
        torch.set_num_threads(threads)
        results.append(_run(x, y, estimator, backend))
    _assert_same_bits(results[0], results[1])
    _assert_same_bits(results[0], results[2])


def test_same_bits_without_gradients(restore_num_threads):
    """The forward-only path (no input requires grad) is deterministic too."""
    x, y = sample_xy(N, M, D, dtype=torch.float32, seed=32)
    torch.set_num_threads(1)
    one = fastmmd.mmd2(x, y, kernel=KERNEL, backend="cpu")
    torch.set_num_threads(2)
    two = fastmmd.mmd2(x, y, kernel=KERNEL, backend="cpu")
    again = fastmmd.mmd2(x, y, kernel=KERNEL, backend="cpu")
    _assert_same_bits((one,), (two,))
    _assert_same_bits((two,), (again,))


@pytest.mark.parametrize("variant", RUNNABLE_VARIANTS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("symmetric", [True, False], ids=["xx", "xy"])
def test_extension_pair_sum_bits_do_not_depend_on_num_threads(symmetric, dtype, variant):
    """csrc/INTERFACE.md: the C++ pair sums are bitwise identical whatever `num_threads` (0: OpenMP's default),
    in every instruction-set variant this CPU runs."""
    _C = choose_variant(variant).module
    x, y = sample_xy(N, M, D, seed=33)
    a = np.ascontiguousarray(x.numpy().astype(dtype))
    b = a if symmetric else np.ascontiguousarray(y.numpy().astype(dtype))
    exclude_diag = symmetric
    terms = KERNEL.terms(D)
    results = [_C.pair_sum(a, b, terms, symmetric, exclude_diag, True, t) for t in (1, 2, 4, 7, 0)]
    for total, grad_a, grad_b in results[1:]:
        assert total == results[0][0]
        assert np.array_equal(grad_a, results[0][1])
        if symmetric:
            assert grad_b is None
        else:
            assert np.array_equal(grad_b, results[0][2])
