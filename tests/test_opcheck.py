"""The fused op fastmmd::mmd2_fused as a torch custom op: opcheck, and torch.compile against eager."""
from __future__ import annotations

import pytest
import torch

import fastmmd
from conftest import sample_xy
from tolerances import FLOAT64_RTOL, SAME_ARITHMETIC_ATOL, SAME_ARITHMETIC_RTOL

KERNELS = {
    "gaussian_mix": fastmmd.Gaussian(bandwidth=[0.5, 1.0, 2.0]),
    "rq_1dot": fastmmd.RationalQuadratic(alpha=[0.2, 1.0, 5.0]) + fastmmd.Linear(),
    "energy": fastmmd.Energy(),
    "polynomial": fastmmd.Polynomial(),
}
FUSED_ESTIMATORS = ["unbiased", "biased", "u-statistic"]  # "linear" is O(n·d) torch code, not the fused op


def _op():
    return torch.ops.fastmmd.mmd2_fused.default


def _args(kernel, estimator, dtype, need_grad, n=7, m=7, d=3):
    x, y = sample_xy(n, m, d, dtype=dtype, seed=20)
    if need_grad:
        x.requires_grad_(True)
        y.requires_grad_(True)
    terms = kernel.terms(d).ravel().tolist()
    return (x, y, terms, estimator, need_grad, 1, "cpu", "highest")


def test_op_is_registered():
    assert hasattr(torch.ops.fastmmd, "mmd2_fused")
    schema = str(_op()._schema)
    assert schema.startswith("fastmmd::mmd2_fused(")


OPCHECK_CASES = [
    # every kernel and estimator with gradients in float64, and the other dtype / the value-only path
    *[(k, e, torch.float64, True) for k in KERNELS for e in FUSED_ESTIMATORS],
    *[(k, "unbiased", torch.float32, True) for k in KERNELS],
    *[(k, e, torch.float32, False) for k in ("rq_1dot",) for e in FUSED_ESTIMATORS],
]


@pytest.mark.parametrize(
    "kernel_name,estimator,dtype,need_grad",
    OPCHECK_CASES,
    ids=[f"{k}-{e}-{str(t)[6:]}-{'grad' if g else 'value'}" for k, e, t, g in OPCHECK_CASES],
)
def test_opcheck(kernel_name, estimator, dtype, need_grad):
    args = _args(KERNELS[kernel_name], estimator, dtype, need_grad)
    torch.library.opcheck(_op(), args)


@pytest.mark.parametrize("estimator", FUSED_ESTIMATORS)
def test_op_outputs(estimator):
    """The op gives (MMD², dMMD²/dx, dMMD²/dy), matching the public function and its autograd."""
    kernel = KERNELS["rq_1dot"]
    x, y, terms, _, _, _, backend, precision = _args(kernel, estimator, torch.float64, need_grad=False, n=9, m=9)
    value, gx, gy = _op()(x, y, terms, estimator, True, 1, backend, precision)
    xr, yr = x.clone().requires_grad_(True), y.clone().requires_grad_(True)
    ref = fastmmd.mmd2(xr, yr, kernel=kernel, estimator=estimator, backend="reference")
    ref_gx, ref_gy = torch.autograd.grad(ref, (xr, yr))
    ref = ref.detach()
    scale = float(ref_gx.abs().max() + ref_gy.abs().max())
    assert value.shape == () and gx.shape == x.shape and gy.shape == y.shape
    assert abs(float(value) - float(ref)) <= 1e-10 * max(1.0, abs(float(ref)))
    assert float((gx - ref_gx).abs().max()) <= 1e-10 * scale
    assert float((gy - ref_gy).abs().max()) <= 1e-10 * scale
    value_only, ex, ey = _op()(x, y, terms, estimator, False, 1, backend, precision)
    # (a different pass: equal to rounding, not necessarily to the bit)
    assert abs(float(value_only) - float(value)) <= 1e-13 * max(1.0, abs(float(value)))
    assert ex.numel() == 0 and ey.numel() == 0


@pytest.mark.parametrize("estimator", ["unbiased", "biased", "u-statistic", "linear"])
def test_compile_matches_eager(estimator):
    torch._dynamo.reset()
    kernel = KERNELS["gaussian_mix"]
    fn = lambda a, b: fastmmd.mmd2(a, b, kernel=kernel, estimator=estimator, backend="cpu")  # noqa: E731
    x, y = sample_xy(33, 33, 4, seed=21)
    xe, ye = x.clone().requires_grad_(True), y.clone().requires_grad_(True)
    xc, yc = x.clone().requires_grad_(True), y.clone().requires_grad_(True)
    eager = fn(xe, ye)
    compiled = torch.compile(fn)(xc, yc)
    assert torch.allclose(compiled, eager, rtol=SAME_ARITHMETIC_RTOL, atol=0)
    ge = torch.autograd.grad(eager, (xe, ye))
    gc = torch.autograd.grad(compiled, (xc, yc))
    for a, b in zip(gc, ge):
        assert torch.allclose(a, b, rtol=FLOAT64_RTOL, atol=SAME_ARITHMETIC_ATOL)


def test_compile_default_call_matches_eager():
    """The brief's form: torch.compile(lambda x, y: fastmmd.mmd2(x, y)), float32, auto backend."""
    torch._dynamo.reset()
    fn = torch.compile(lambda x, y: fastmmd.mmd2(x, y))
    x, y = sample_xy(50, 40, 3, dtype=torch.float32, seed=22)
    assert torch.equal(fn(x, y), fastmmd.mmd2(x, y))
