"""Backend.pair_sum, the per-block primitive of fastmmd.distributed: the sum of one kernel block and its
gradients, on the cpu and triton backends (the Triton interpreter without CUDA; both gradient paths)
against the reference backend's float64 Gram matrix and autograd, for every kernel case."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from cases import CASES
from conftest import sample_xy
from fastmmd.backends import get_backend
from tolerances import FLOAT64_GRADIENT_RTOL, FLOAT64_RTOL, SAME_ARITHMETIC_RTOL

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
# (n, m, d): odd sizes; a block of one row.
SHAPES = [(13, 7, 3), (1, 9, 5), (10, 10, 2)]


def _fast_backends():
    names = ["cpu"]
    if get_backend("triton").unavailable_reason() is None:
        names.append("triton")
    return names


# The Triton block has two gradient paths: owner kernels (small d) and coefficient chunks + GEMMs.
PATHS = ["cpu"] + (["triton-fused", "triton-chunked"] if "triton" in _fast_backends() else [])


@pytest.fixture(params=PATHS)
def backend(request, monkeypatch):
    if request.param == "triton-chunked":
        from fastmmd.backends._triton import launch  # only where the triton backend runs

        monkeypatch.setattr(launch, "OWNER_MAX_D", 0)
        monkeypatch.setattr(launch, "OWNER_MAX_D_EXPLICIT", 0)
        monkeypatch.setattr(launch, "CHUNK", 4)
    return request.param.split("-")[0]


def _block(backend: str, a, b, kernel, symmetric: bool, exclude_diag: bool, need_grad: bool):
    device = DEVICE if backend == "triton" else "cpu"
    total, grad_a, grad_b = get_backend(backend).pair_sum(a.to(device), b.to(device), kernel.terms(a.shape[1]),
                                                          symmetric, exclude_diag, need_grad, "highest", 1)
    assert total.dtype == torch.float64 and total.dim() == 0
    def as_np(g):
        return None if g is None else g.double().cpu().numpy()

    return float(total), as_np(grad_a), as_np(grad_b)


LAYOUTS = [(shape, layout) for shape in SHAPES for layout in ("cross", "cross-diag", "symmetric", "symmetric-diag")
           if not (shape[0] == 1 and layout.endswith("diag"))]  # a one-row block without its diagonal is empty


@pytest.mark.parametrize("case", CASES, ids=repr)
@pytest.mark.parametrize("shape,layout", LAYOUTS, ids=str)
def test_block_sum_and_gradients_match_reference(case, backend, layout, shape):
    n, m, d = shape
    symmetric, exclude_diag = layout.startswith("symmetric"), layout.endswith("diag")
    a, b = sample_xy(n, n if exclude_diag and not symmetric else m, d, seed=n * 31 + m + d)
    if symmetric:
        b = a
    kernel = case.make(d)
    smooth = case.name not in ("laplacian", "energy", "weighted_sum")
    need_grad = smooth or exclude_diag or not symmetric
    expected = _block("reference", a, b, kernel, symmetric, exclude_diag, need_grad)
    actual = _block(backend, a, b, kernel, symmetric, exclude_diag, need_grad)
    scale = max(1.0, abs(expected[0]))
    assert abs(actual[0] - expected[0]) <= 1e-10 * scale * a.shape[0] * b.shape[0]
    if not need_grad:
        return
    if not smooth and not symmetric:
        # Laplacian and Energy have no derivative where a_i = b_j; the random points never meet.
        assert np.abs(a.numpy()[:, None] - b.numpy()[None]).sum(-1).min() > 1e-3
    for got, want in zip(actual[1:], expected[1:]):
        if want is None:
            assert got is None
            continue
        np.testing.assert_allclose(got, want, rtol=FLOAT64_GRADIENT_RTOL,
                                   atol=FLOAT64_RTOL * max(1.0, np.abs(want).max()))


def test_value_only_has_no_gradients(backend):
    a, b = sample_xy(6, 5, 3)
    kernel = CASES[0].make(3)
    total, grad_a, grad_b = _block(backend, a, b, kernel, False, False, need_grad=False)
    assert grad_a is None and grad_b is None
    assert total == pytest.approx(_block("reference", a, b, kernel, False, False, False)[0], rel=SAME_ARITHMETIC_RTOL)
