"""witness against the float64 brute force; its first and second derivatives (the MMD-GP penalty
backpropagated through ∇_t f) against the reference backend's autograd."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import fastmmd
from brute_force import gram
from cases import CASE_BY_NAME
from conftest import sample_xy
from tolerances import FLOAT64_ATOL, FLOAT64_GRADIENT_RTOL


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("case_name", ["gaussian_mix", "rq_1dot", "laplacian", "energy", "polynomial"])
def test_witness_matches_brute_force(case_name, dtype):
    case = CASE_BY_NAME[case_name]
    x, y = sample_xy(37, 29, 5, seed=1)
    t, _ = sample_xy(13, 1, 5, seed=2)
    f = fastmmd.witness(t.to(dtype), x.to(dtype), y.to(dtype), case.make(5), backend="cpu")
    terms = case.terms(5)
    k_tx, k_ty = gram(terms, t.numpy(), x.numpy()), gram(terms, t.numpy(), y.numpy())
    expected = k_tx.mean(1) - k_ty.mean(1)
    scale = float(np.max(np.abs(k_tx).mean(1) + np.abs(k_ty).mean(1)))
    tol = 1e-10 if dtype == torch.float64 else 1e-5
    assert f.shape == (13,) and float(np.max(np.abs(f.double().numpy() - expected))) <= tol * scale


def _penalty_gradients(backend, kernel, t, x, y):
    """d/d(x, y) of mean_l (‖∇_t f(t_l)‖ - 1)²: the MMD-GP penalty of the critic outputs x, y."""
    x, y = x.clone().requires_grad_(True), y.clone().requires_grad_(True)
    t = t.clone().requires_grad_(True)
    (grad_t,) = torch.autograd.grad(fastmmd.witness(t, x, y, kernel, backend=backend).sum(), t, create_graph=True)
    penalty = ((grad_t.norm(dim=1) - 1.0) ** 2).mean()
    return torch.autograd.grad(penalty, (x, y, t))


@pytest.mark.parametrize("case_name", ["gaussian_mix", "rq_1dot", "imq"])
def test_gradient_penalty_backpropagates_like_autograd(case_name):
    kernel = CASE_BY_NAME[case_name].make(4)
    x, y = sample_xy(19, 17, 4, seed=3)
    t, _ = sample_xy(11, 1, 4, seed=4)
    fused = _penalty_gradients("cpu", kernel, t, x, y)
    reference = _penalty_gradients("reference", kernel, t, x, y)
    for a, b, name in zip(fused, reference, ("x", "y", "t")):
        assert torch.allclose(a, b, rtol=FLOAT64_GRADIENT_RTOL, atol=FLOAT64_ATOL), name


def test_witness_gradgradcheck():
    x, y = sample_xy(6, 5, 3, seed=5)
    t, _ = sample_xy(4, 1, 3, seed=6)
    args = tuple(v.clone().requires_grad_(True) for v in (t, x, y))
    kernel = fastmmd.Gaussian(bandwidth=[1.0, 2.0]) + fastmmd.Linear()

    def f(t, x, y):
        return fastmmd.witness(t, x, y, kernel, backend="cpu")

    assert torch.autograd.gradcheck(f, args) and torch.autograd.gradgradcheck(f, args)


def test_witness_errors_name_the_argument():
    x = torch.randn(5, 3, dtype=torch.float64)
    with pytest.raises(ValueError, match="t and x must have the same number of features"):
        fastmmd.witness(torch.randn(2, 4, dtype=torch.float64), x, x)
    with pytest.raises(ValueError, match="y is empty"):
        fastmmd.witness(x, x, x[:0])
