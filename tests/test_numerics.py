"""The numerical rules of docs/numerics.md, as properties over the public API (hypothesis) and as the cases
that once broke them.

The rule: for any shapes, dtype, magnitude, offset, kernel parameters and placement of NaN/inf, an op returns
the float64 brute force within the tolerance table, NaN (non-finite input), or a ValueError/TypeError that
names the argument at fault — nothing else (no finite number from a NaN, no bare exception).
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import fastmmd
from brute_force import Term, gram, mmd2_terms
from tolerances import (
    FLOAT32_ATOL,
    FLOAT32_RTOL,
    FLOAT32_SUM_RTOL,
    FLOAT64_GRADIENT_RTOL,
    FLOAT64_RTOL,
    SAME_ARITHMETIC_ATOL,
    SAME_ARITHMETIC_RTOL,
    tolerance,
)

FAMILIES = ("gaussian", "rq", "laplacian", "imq", "energy", "linear", "polynomial")
# Not translation invariant, but their MMD² is: the fused backends compute them on centred points, whose
# terms can be far larger than the raw points' (energy of 1-D points of opposite signs is 0 uncentred).
CENTRED_FAMILIES = ("energy", "linear")
# The relative error of r² = |a|² + |b|² - 2aᵀb at the C++ backend's near-pair threshold r² / (|a|² + |b|²)
# (1e-2 in float32, 1e-5 in float64; below it the pair is recomputed from explicit differences): 8 eps / threshold.
R2_ERROR = {torch.float32: 8 * torch.finfo(torch.float32).eps / 1e-2,
            torch.float64: 8 * torch.finfo(torch.float64).eps / 1e-5}
# The words an error must contain to count as naming its argument.
NAMED = ("kernel", "x", "y", "a", "b", "v", "t", "bandwidth", "alpha", "scale", "c", "beta", "gamma", "degree")


def _needs_triton():
    """Skips unless the triton backend runs here (a triton it supports, a GPU or the interpreter)."""
    from fastmmd.backends import get_backend

    reason = get_backend("triton").unavailable_reason()
    if reason is not None:
        pytest.skip(f"triton backend unavailable: {reason}")


def make_kernel(family: str, size: float, rng: np.random.Generator):
    """(fastmmd kernel, brute-force terms) of `family` with parameters of scale `size` (the data's)."""
    if family == "gaussian":
        sigma = size * 10 ** rng.uniform(-1, 2)
        return fastmmd.Gaussian(bandwidth=sigma), [Term("gaussian", params={"sigma": sigma})]
    if family == "rq":
        alpha, scale = 10 ** rng.uniform(-2, 4), size * 10 ** rng.uniform(-1, 2)
        return (fastmmd.RationalQuadratic(alpha=alpha, scale=scale),
                [Term("rq", params={"alpha": alpha, "scale": scale})])
    if family == "laplacian":
        sigma = size * 10 ** rng.uniform(-1, 2)
        return fastmmd.Laplacian(bandwidth=sigma), [Term("laplacian", params={"sigma": sigma})]
    if family == "imq":
        c, beta = size * 10 ** rng.uniform(-1, 1), rng.uniform(0.2, 2.0)
        return fastmmd.InverseMultiquadric(c=c, beta=beta), [Term("imq", params={"c": c, "beta": beta})]
    if family == "energy":
        return fastmmd.Energy(), [Term("energy")]
    if family == "linear":
        return fastmmd.Linear(), [Term("linear")]
    degree, coef0 = int(rng.integers(1, 4)), float(rng.uniform(-1, 1))
    return fastmmd.Polynomial(degree=degree, coef0=coef0), [Term("polynomial", params={"degree": degree,
                                                                                       "coef0": coef0})]


def samples(n, m, d, dtype, exponent, offset, seed):
    """x, y of magnitude 10**exponent (y shifted), plus `offset` times that magnitude on every coordinate."""
    rng = np.random.default_rng(seed)
    size = 10.0 ** exponent
    x = size * (rng.standard_normal((n, d)) + offset)
    y = size * (0.4 + 1.3 * rng.standard_normal((m, d)) + offset)
    return torch.from_numpy(x).to(dtype), torch.from_numpy(y).to(dtype), size, rng


def poison(t: torch.Tensor, how: str, rng) -> torch.Tensor:
    """t with one entry replaced by NaN, +inf or -inf (how), or unchanged ("none")."""
    if how == "none":
        return t
    t = t.clone()
    i, j = int(rng.integers(t.shape[0])), int(rng.integers(t.shape[1]))
    t[i, j] = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}[how]
    return t


def resolution(dtype) -> float:
    """The absolute resolution of results below the dtype's normal numbers: in float64, 8 of its subnormal
    steps; in float32, 32 of its smallest normal numbers, since the C++ float exp gives about 1e-38 for every
    value below e^-87.3 instead of a subnormal or 0 (csrc/fast_math.h), and a result sums up to ~20 of them."""
    info = torch.finfo(dtype)
    return 32 * info.tiny if dtype == torch.float32 else 8 * info.tiny * info.eps


def conditioning(terms, *samples) -> float:
    """How much the kernel amplifies relative rounding: a value e^(-E) deep in a kernel's tail carries the
    relative error E·δ of its exponent, so errors are allowed to grow with E = log(1 / max |k|) once the
    largest kernel value falls below 1/e. The largest value is over the pairs of distinct points of the pool
    (a point with itself, k = 1 for the radial kernels, would hide every tail)."""
    pool = np.concatenate([s.double().numpy() for s in samples])
    k = gram(terms, pool, pool)
    largest = float(np.abs(k[~np.eye(k.shape[0], dtype=bool)]).max(initial=0.0))
    return max(1.0, -math.log(largest)) if largest > 0 else 1.0


def error_bounds(terms, family: str, dtype, a, b) -> np.ndarray:
    """(n, m): the size of the rounding error of each kernel value k(a_i, b_j), in units of the dtype's
    tolerance. A radial value k = e^(-E) moves by at most E times the relative error of its r² (E bounds
    |d log k / d log r²| for every radial family); r² = |a|² + |b|² - 2aᵀb is accurate to R2_ERROR relative
    above the C++ near-pair threshold (csrc/kernel_terms.h); deep in a tail, E·δ of the exponent as in
    `conditioning`. Energy and linear values are formed from norms (|a| + |b| - |a - b|, aᵀb) and rounded
    at the norms' size."""
    k = gram(terms, a.double().numpy(), b.double().numpy())
    with np.errstate(divide="ignore", invalid="ignore"):
        exponent = np.maximum(-np.log(np.abs(k)), 0.0)  # values above 1 (dot-product kernels): no tail
        bound = np.abs(k) * (np.maximum(1.0, exponent) + exponent * R2_ERROR[dtype] / tolerance(dtype).value)
    bound = np.where(np.abs(k) > 0, bound, 0.0)
    if family in CENTRED_FAMILIES:
        norm_a = np.linalg.norm(a.double().numpy(), axis=1)[:, None]
        norm_b = np.linalg.norm(b.double().numpy(), axis=1)[None, :]
        bound = np.maximum(bound, norm_a + norm_b if family == "energy" else norm_a * norm_b)
    return bound


def unbiased_error_scale(terms, family: str, dtype, x, y) -> float:
    """The error bounds of `error_bounds` weighted as MMD²_u weighs its pairs."""
    def mean_off_diagonal(bounds):
        return bounds[~np.eye(bounds.shape[0], dtype=bool)].mean()

    return float(mean_off_diagonal(error_bounds(terms, family, dtype, x, x))
                 + mean_off_diagonal(error_bounds(terms, family, dtype, y, y))
                 + 2 * error_bounds(terms, family, dtype, x, y).mean())


def assert_names_an_argument(error: Exception) -> None:
    words = str(error).replace("(", " ").replace(")", " ").replace(",", " ").replace("=", " ").split()
    assert any(w in NAMED for w in words) or str(error).startswith("kernel"), str(error)


CASES = dict(
    family=st.sampled_from(FAMILIES),
    dtype=st.sampled_from([torch.float32, torch.float64]),
    exponent=st.integers(-30, 30),
    offset=st.sampled_from([0.0, 0.0, 3.0, 1e4]),
    n=st.integers(2, 9),
    m=st.integers(2, 9),
    d=st.integers(1, 4),
    poisoned=st.sampled_from(["none", "none", "none", "x:nan", "y:inf", "x:-inf", "y:nan"]),
    seed=st.integers(0, 2 ** 16),
)
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _setup(family, dtype, exponent, offset, n, m, d, poisoned, seed):
    x, y, size, rng = samples(n, m, d, dtype, exponent, offset, seed)
    kernel, terms = make_kernel(family, size, rng)
    target, how = poisoned.split(":") if poisoned != "none" else ("", "none")
    if target == "x":
        x = poison(x, how, rng)
    elif target == "y":
        y = poison(y, how, rng)
    return x, y, kernel, terms, poisoned != "none"


@SETTINGS
@given(estimator=st.sampled_from(["unbiased", "biased", "u-statistic", "linear"]),
       backend=st.sampled_from(["cpu", "reference"]), **CASES)
def test_mmd2_is_the_brute_force_nan_or_a_named_error(estimator, backend, family, dtype, exponent, offset, n, m,
                                                      d, poisoned, seed):
    if estimator in ("u-statistic", "linear"):
        m = n
    x, y, kernel, terms, bad = _setup(family, dtype, exponent, offset, n, m, d, poisoned, seed)
    try:
        got = fastmmd.mmd2(x, y, kernel, estimator=estimator, backend=backend)
    except (ValueError, TypeError) as error:
        assert not bad, "a non-finite input must give NaN, not an error"
        assert "range" in str(error)
        assert_names_an_argument(error)
        return
    if bad:
        assert torch.isnan(got), f"non-finite input gave {float(got)}"
        return
    truth = mmd2_terms(terms, x.double().numpy(), y.double().numpy(), estimator)
    assume(math.isfinite(truth.value_scale))
    error = abs(float(got) - truth.mmd2)
    scale = truth.value_scale
    if family in CENTRED_FAMILIES:
        # the fused backends sum the kernel values of the points centred in float32 (the same MMD²): their
        # terms, and the rounding of the centring itself (k ~ |a|, |a|² of a mean's residual), set the scale
        pool = torch.cat([x, y]).double().numpy()
        centred = mmd2_terms(terms, x.double().numpy() - pool.mean(0), y.double().numpy() - pool.mean(0), estimator)
        power = 1 if family == "energy" else 2
        scale = max(scale, centred.value_scale, 4 * float(np.abs(pool).max()) ** power)
    allowed = tolerance(dtype).value * scale * conditioning(terms, x, y) + resolution(dtype)
    assert error <= allowed, (float(got), truth.mmd2)


@SETTINGS
@given(backend=st.sampled_from(["cpu", "reference"]), **CASES)
def test_kernel_matmul_and_witness_are_the_brute_force_nan_or_a_named_error(backend, family, dtype, exponent,
                                                                           offset, n, m, d, poisoned, seed):
    a, b, kernel, terms, bad = _setup(family, dtype, exponent, offset, n, m, d, poisoned, seed)
    v = torch.linspace(-1.0, 2.0, b.shape[0], dtype=dtype)
    a_bad = ~torch.isfinite(a).all(1)
    try:
        out = fastmmd.kernel_matmul(a, b, v, kernel, backend=backend)
        f = fastmmd.witness(a, b, b.flip(0) * 0.5, kernel, backend=backend)
    except (ValueError, TypeError) as error:
        # Only the finite rows of a can be out of float32's range (their rows are computed as usual).
        assert bool(torch.isfinite(b).all()) and "range" in str(error)
        assert_names_an_argument(error)
        return
    if bool((~torch.isfinite(b)).any()):
        assert torch.isnan(out).all() and torch.isnan(f).all()
        return
    assert torch.equal(torch.isnan(out), a_bad) and torch.equal(torch.isnan(f), a_bad)
    good = (~a_bad).numpy()
    k = gram(terms, a.double().numpy()[good], b.double().numpy())
    truth = k @ v.double().numpy()
    amplified = error_bounds(terms, family, dtype, a[good], b)
    scale = amplified @ np.abs(v.double().numpy())
    assume(np.isfinite(scale).all())
    np.testing.assert_array_less(np.abs(out.double().numpy()[good] - truth),
                                 tolerance(dtype).value * scale + resolution(dtype))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(**CASES)
def test_mmd2_and_variance_and_the_tests_follow_the_rule(family, dtype, exponent, offset, n, m, d, poisoned, seed):
    n, m = n + 2, m + 2
    x, y, kernel, terms, bad = _setup(family, dtype, exponent, offset, n, m, d, poisoned, seed)
    try:
        value, variance = fastmmd.mmd2_and_variance(x, y, kernel)
    except ValueError as error:
        assert not bad and "range" in str(error)
        assert_names_an_argument(error)
        return
    if bad:
        assert torch.isnan(value) and torch.isnan(variance)
        with pytest.raises(ValueError, match="must be finite"):
            fastmmd.mmd_test(x, y, kernel, permutations=20)
        with pytest.raises(ValueError, match="must be finite"):
            fastmmd.relative_mmd_test(x, y, y.flip(0), kernel)
        return
    truth = mmd2_terms(terms, x.double().numpy(), y.double().numpy(), "unbiased")
    assume(math.isfinite(truth.value_scale))
    allowed = tolerance(dtype).value * truth.value_scale * conditioning(terms, x, y) + resolution(dtype)
    assert abs(float(value) - truth.mmd2) <= allowed
    assert math.isfinite(float(variance))
    statistic = fastmmd.mmd_test(x, y, kernel, permutations=20).statistic
    assert abs(float(statistic) - truth.mmd2) <= allowed


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(**CASES)
def test_the_triton_kernels_follow_the_rule(family, dtype, exponent, offset, n, m, d, poisoned, seed):
    """The same property for the Triton backend (under the interpreter without a GPU: small shapes)."""
    _needs_triton()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    x, y, kernel, terms, bad = _setup(family, dtype, exponent, offset, n, m, d, poisoned, seed)
    try:
        got = fastmmd.mmd2(x.to(device), y.to(device), kernel, backend="triton")
        out = fastmmd.kernel_matmul(x.to(device), y.to(device), torch.ones(m, dtype=dtype, device=device), kernel,
                                    backend="triton").cpu()
    except ValueError as error:
        assert "range" in str(error) or "Triton" in str(error) or "triton" in str(error), str(error)
        return
    if bad:
        assert torch.isnan(got)
        return
    truth = mmd2_terms(terms, x.double().numpy(), y.double().numpy(), "unbiased")
    assume(math.isfinite(truth.value_scale))
    scale = max(truth.value_scale * conditioning(terms, x, y), unbiased_error_scale(terms, family, dtype, x, y))
    assume(math.isfinite(scale))
    assert abs(float(got) - truth.mmd2) <= tolerance(dtype).value * scale + resolution(dtype)
    k = gram(terms, x.double().numpy(), y.double().numpy())
    rows = error_bounds(terms, family, dtype, x, y).sum(1)
    assume(np.isfinite(rows).all())
    assert (np.abs(out.double().numpy() - k.sum(1)) <= tolerance(dtype).value * rows + resolution(dtype)).all()


# ------------------------------------------------------------------------------------------ fixed cases


def _pair(dtype=torch.float32, n=40, m=30, d=3):
    g = torch.Generator().manual_seed(0)
    return torch.randn(n, d, generator=g).to(dtype), (0.3 + torch.randn(m, d, generator=g)).to(dtype)


@pytest.mark.parametrize("backend", ["cpu", "reference"])
@pytest.mark.parametrize("kernel", ["gaussian", "rq", "imq", "laplacian", "energy", "mix_rq_1dot"])
@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_one_non_finite_entry_gives_nan_and_nan_gradients(backend, kernel, value):
    x, y = _pair(torch.float64)
    x[5, 1] = value
    x.requires_grad_(True)
    result = fastmmd.mmd2(x, y, kernel, backend=backend)
    assert torch.isnan(result)
    result.backward()
    assert torch.isnan(x.grad).all()


def test_an_all_nan_sample_and_a_diverged_critic_give_nan():
    x, y = _pair()
    assert torch.isnan(fastmmd.mmd2(torch.full_like(x, math.nan), y))
    critic = torch.nn.Linear(3, 1)
    loss = fastmmd.smmd2(lambda t: critic(t) * math.nan, x, y)
    assert torch.isnan(loss)


def test_kernel_matmul_gives_nan_rows_where_its_points_are_not_finite():
    a, b = _pair(torch.float64)
    v = torch.randn(b.shape[0], 2, dtype=torch.float64)
    a[3, 0], a[7, 0] = math.nan, math.inf
    out = fastmmd.kernel_matmul(a, b, v)
    assert torch.isnan(out[[3, 7]]).all() and torch.isfinite(out[[0, 1, 2, 4]]).all()
    clean = fastmmd.kernel_matmul(a[[0, 1, 2]], b, v)
    torch.testing.assert_close(out[[0, 1, 2]], clean)
    v[4, 1] = math.nan
    assert torch.isnan(fastmmd.kernel_matmul(a, b, v)).all()


def test_the_three_sample_test_refuses_non_finite_samples():
    x, y = _pair()
    z = y.clone()
    z[0, 0] = math.inf
    with pytest.raises(ValueError, match="z must be finite"):
        fastmmd.relative_mmd_test(x, y, z)


@pytest.mark.parametrize("kernel", [fastmmd.Gaussian(1.0), fastmmd.Gaussian(3.0) + fastmmd.Laplacian(2.0),
                                    fastmmd.Energy(), fastmmd.RationalQuadratic(alpha=2.0)])
@pytest.mark.parametrize("scale", [2.0 ** 70, 1e20, 1e-30, 2.0 ** -110])
def test_data_beyond_float32s_squared_range_are_computed_in_a_frame(kernel, scale):
    """float32 data of magnitude 1e20 or 1e-30 with the kernel scaled alike: the MMD² of the unit data."""
    x, y = _pair()
    unit = float(fastmmd.mmd2(x.double(), y.double(), kernel, backend="reference"))
    framed = kernel.in_frame(scale, 3)  # framed(scale·a, scale·b) = kernel(a, b)
    got = fastmmd.mmd2((x.double() * scale).float(), (y.double() * scale).float(), framed)
    assert float(got) == pytest.approx(unit, rel=FLOAT32_SUM_RTOL, abs=FLOAT32_ATOL)


def test_float64_data_near_its_range_and_the_median_bandwidth():
    x, y = _pair(torch.float64)
    kernel = fastmmd.Gaussian(1.5)
    unit = fastmmd.mmd2(x, y, kernel)
    for scale in (2.0 ** 600, 2.0 ** -600):
        got = fastmmd.mmd2(x * scale, y * scale, kernel.in_frame(scale, 3))
        assert float(got) == pytest.approx(float(unit), rel=FLOAT64_RTOL)
        unit_median = float(fastmmd.median_bandwidth(x))
        scaled_median = float(fastmmd.median_bandwidth(x * scale)) / scale
        assert scaled_median == pytest.approx(unit_median, rel=SAME_ARITHMETIC_RTOL)


@pytest.mark.parametrize("kernel, data_scale, quantity", [
    (fastmmd.Gaussian(1e-30), 1.0, "1/(2·bandwidth²)"),
    (fastmmd.Gaussian(1.0), 1e20, "1/(2·bandwidth²)"),
    (fastmmd.Linear(), 1e20, "values reach"),
    (fastmmd.Polynomial(degree=3), 1e14, "values reach"),
    (fastmmd.InverseMultiquadric(c=1e-25), 1.0, "c²"),
])  # fmt: skip
def test_what_float32_cannot_hold_is_refused_with_the_reason(kernel, data_scale, quantity):
    x, y = _pair()
    with pytest.raises(ValueError, match="kernel .*" + quantity.replace("(", r"\(").replace(")", r"\)")):
        fastmmd.mmd2(x * data_scale, y * data_scale, kernel)
    # float64 holds them (no refusal), and agrees with the materialised reference
    got = fastmmd.mmd2(x.double() * data_scale, y.double() * data_scale, kernel)
    want = fastmmd.mmd2(x.double() * data_scale, y.double() * data_scale, kernel, backend="reference")
    assert float(got) == pytest.approx(float(want), rel=FLOAT64_GRADIENT_RTOL,
                                         abs=SAME_ARITHMETIC_RTOL * abs(float(want)) + 1e-300)


@pytest.mark.parametrize("backend", ["cpu", "triton"])
def test_a_large_rational_quadratic_alpha_keeps_float32_accurate(backend):
    if backend == "triton":
        _needs_triton()
    x, y = _pair(n=60, m=50, d=5)
    kernel = fastmmd.RationalQuadratic(alpha=1e4)
    device = "cuda" if backend == "triton" and torch.cuda.is_available() else "cpu"
    got = float(fastmmd.mmd2(x.to(device), y.to(device), kernel, backend=backend))
    want = float(fastmmd.mmd2(x.double(), y.double(), kernel, backend="reference"))
    assert got == pytest.approx(want, rel=FLOAT32_SUM_RTOL)


@pytest.mark.parametrize("kernel", ["gaussian", "rq", "mix_rq_1dot"])
def test_the_triton_backend_on_data_far_from_the_origin(kernel):
    """Centred in the kernels on the pooled mean rounded to float32, with the norms of those centred rows."""
    _needs_triton()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    x, y = _pair()
    x, y = x + 1e4, y + 1e4
    want = fastmmd.mmd2(x.double(), y.double(), kernel, backend="reference")
    got = fastmmd.mmd2(x.to(device), y.to(device), kernel, backend="triton")
    assert float(got) == pytest.approx(float(want), rel=FLOAT32_SUM_RTOL, abs=FLOAT32_ATOL)
    v = torch.ones(y.shape[0])
    want_km = fastmmd.kernel_matmul(x.double(), y.double(), v.double(), kernel, backend="reference")
    got_km = fastmmd.kernel_matmul(x.to(device), y.to(device), v.to(device), kernel, backend="triton").cpu()
    torch.testing.assert_close(got_km.double(), want_km, rtol=FLOAT32_RTOL,
                               atol=FLOAT32_RTOL * float(want_km.abs().max()))


@pytest.mark.parametrize("backend", ["cpu", "triton", "reference"])
def test_every_backend_keeps_a_nan_distance_nan(backend):
    """Below the op's own check: a kernel pass that meets a NaN squared distance must not clamp it to 0."""
    if backend == "triton":
        _needs_triton()
    from fastmmd.backends import get_backend

    x, y = _pair()
    x[2, 0] = math.nan
    terms = fastmmd.Gaussian(1.0).terms(3).ravel().tolist()
    chosen = get_backend(backend)
    device = "cuda" if backend == "triton" and torch.cuda.is_available() else "cpu"
    x, y = x.to(device), y.to(device)
    assert torch.isnan(chosen.mmd2_with_grads(x, y, terms, "unbiased", False, "highest", 1)[0])
    assert torch.isnan(chosen.pair_sum(x, y, terms, False, False, False, "highest", 1)[0])


@pytest.mark.parametrize("bandwidth", [0.0, -1.0, math.nan, "1"])
def test_kernel_parameters_are_checked_at_construction(bandwidth):
    with pytest.raises(ValueError, match="bandwidth"):
        fastmmd.Gaussian(bandwidth=bandwidth)


@pytest.mark.parametrize("backend", ["cpu", "reference"])
@pytest.mark.parametrize("bandwidth", [1e-200, 1e-160])
def test_a_bandwidth_beyond_float64_is_refused_with_its_reason(bandwidth, backend):
    x, y = _pair(torch.float64)
    with pytest.raises(ValueError, match=r"kernel Gaussian.*1/\(2·bandwidth²\) is inf, outside float64"):
        fastmmd.mmd2(x, y, fastmmd.Gaussian(bandwidth=bandwidth), backend=backend)
    unit = fastmmd.mmd2(x, y, fastmmd.Gaussian(1.0))
    torch.testing.assert_close(fastmmd.mmd2(x * bandwidth, y * bandwidth, fastmmd.Gaussian(bandwidth)), unit)


def test_requests_are_checked_before_any_work():
    x, y = _pair()
    with pytest.raises(ValueError, match=r"permutations=1000000000 would need 7\.5 GiB"):
        fastmmd.mmd_test(x, y, permutations=10 ** 9)
    with pytest.raises(ValueError, match=r"subsets=1000000000 would need"):
        fastmmd.kid(x.abs(), y.abs(), subsets=10 ** 9, subset_size=2)
    with pytest.raises(ValueError, match="n must be a positive integer"):
        fastmmd.permutation_labels(-2, 7, 3)
    with pytest.raises(ValueError, match="permutations must be a positive integer"):
        fastmmd.permutation_labels(9, 7, -1)
    with pytest.raises(ValueError, match="seed must be an integer"):
        fastmmd.mmd_test(x, y, seed=2 ** 70)


def test_many_permutations_run_in_bounded_passes(monkeypatch):
    import fastmmd.formulas.permutations as statistics

    x, y = _pair(n=12, m=9)
    whole = fastmmd.mmd_test(x, y, permutations=300, seed=4)
    monkeypatch.setattr(statistics, "_PASS_BYTES", 21 * 9 * 30)  # 30 relabellings per pass
    assert statistics.columns_per_pass(21, torch.float32) == 30
    parts = fastmmd.mmd_test(x, y, permutations=300, seed=4)
    torch.testing.assert_close(parts.null_samples, whole.null_samples, rtol=SAME_ARITHMETIC_RTOL,
                               atol=SAME_ARITHMETIC_ATOL)
    assert parts.p_value == whole.p_value


@pytest.mark.parametrize("mode", ["torchmetrics", "torch-fidelity", "clean-fid"])
def test_kid_subset_seeds_are_integers_in_every_mode(mode):
    x, y = _pair()
    with pytest.raises(ValueError, match="seed must be an integer"):
        fastmmd.kid(x.abs(), y.abs(), subset_size=10, mode=mode, seed=None)


@pytest.mark.parametrize("lam", [np.float32(1.0), np.int64(1), torch.tensor(1.0), 1])
def test_numbers_of_every_kind_are_accepted(lam):
    x, y = _pair(torch.float64)
    critic = torch.nn.Linear(3, 1).double()
    expected = fastmmd.smmd2(critic, x, y, lam=1.0)
    torch.testing.assert_close(fastmmd.smmd2(critic, x, y, lam=lam), expected)
    assert fastmmd.median_bandwidth(x, max_points=np.int64(20)) > 0


@pytest.mark.parametrize("critic, real, error, match", [
    (lambda t: t.detach().numpy(), None, TypeError, "critic must return a torch.Tensor"),
    (lambda t: [1.0], None, TypeError, "critic must return a torch.Tensor"),
    (lambda t: torch.ones(t.shape[0], 1, dtype=t.dtype), None, ValueError, "does not depend on real"),
    (lambda t: t.sum(1).long(), None, ValueError, "floating-point"),
    (torch.nn.Linear(3, 1).double(), np.zeros((4, 3)), TypeError, "real must be a torch.Tensor"),
])  # fmt: skip
def test_smmd_critics_that_cannot_work_are_named(critic, real, error, match):
    x, y = _pair(torch.float64)
    with pytest.raises(error, match=match):
        fastmmd.smmd2(critic, x if real is None else real, y)


@pytest.mark.parametrize("requires_grad", [False, True], ids=["values", "differentiable"])
def test_a_variance_beyond_float64_is_refused_not_infinite(requires_grad):
    """Polynomial values of 1e157 fit float64; their squares, which the variance sums, do not."""
    gen = np.random.default_rng(18)
    x = torch.from_numpy(1e26 * gen.standard_normal((6, 1))).requires_grad_(requires_grad)
    y = torch.from_numpy(1e26 * gen.standard_normal((5, 1)))
    with pytest.raises(ValueError, match="range") as error:
        fastmmd.mmd2_and_variance(x, y, fastmmd.Polynomial(), backend="cpu")
    assert_names_an_argument(error.value)
