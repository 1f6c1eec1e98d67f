"""fastmmd.mmd_test: the statistics of explicit relabellings against fastmmd.mmd2 on the relabelled samples,
the p-value, the level under the null and the power under a shift, and the errors."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from fastmmd.backends import get_backend
from fastmmd.kernels import Gaussian, Linear, Polynomial
from fastmmd.ops.mmd2 import mmd2
from fastmmd.statistics.mmd_test import TestResult, mmd2_of_relabellings, mmd_test, permutation_labels
from tolerances import FLOAT64_ATOL, FLOAT64_GRADIENT_RTOL, FLOAT64_RTOL, SAME_ARITHMETIC_ATOL, SAME_ARITHMETIC_RTOL

GAUSSIAN = Gaussian(bandwidth=1.5)
# Not translation invariant and not constant on the diagonal: the biased form's diagonal term matters.
MIXED = Linear() + Polynomial(degree=2, gamma=0.5) + Gaussian(bandwidth=[0.7, 2.0])


def samples(n, m, d, seed, shift=0.0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, d)).astype(dtype), (rng.standard_normal((m, d)) + shift).astype(dtype)


def relabelled(x, y, column):
    pool = np.concatenate([x, y])
    return pool[column], pool[~column]


def hand_labels(n, m):
    """The observed split, the swapped one, one that keeps half of x, and a few random ones."""
    big_n = n + m
    observed = np.arange(big_n) < n
    last = np.arange(big_n) >= big_n - n  # the last n rows as x
    mixed = np.zeros(big_n, bool)
    mixed[np.r_[0:n // 2, n:n + n - n // 2]] = True
    columns = [observed, last, mixed] + [c for c in permutation_labels(n, m, 3, seed=11).numpy().T]
    return torch.from_numpy(np.stack(columns, axis=1))


@pytest.mark.parametrize("estimator", ["unbiased", "biased"])
@pytest.mark.parametrize("kernel", [GAUSSIAN, MIXED], ids=["gaussian", "mixed"])
@pytest.mark.parametrize("n,m,d", [(7, 7, 3), (13, 8, 1), (5, 31, 130)])
@pytest.mark.parametrize("backend,dtype", [("cpu", np.float64), ("cpu", np.float32), ("reference", np.float64)])
def test_relabelled_statistics_equal_mmd2_of_the_relabelled_samples(estimator, kernel, n, m, d, backend, dtype):
    x, y = samples(n, m, d, seed=n + m, shift=0.4)
    labels = hand_labels(n, m)
    got = mmd2_of_relabellings(x.astype(dtype), y.astype(dtype), labels, kernel, estimator, backend)
    assert got.shape == (labels.shape[1],) and got.dtype == np.float64
    for p in range(labels.shape[1]):
        a, b = relabelled(x, y, labels[:, p].numpy())
        want = float(mmd2(a, b, kernel, estimator, backend="reference"))
        # Relative to the size of the kernel terms (tests/tolerances.py): float64 1e-10, float32 1e-5.
        pool = np.concatenate([x, y])
        scale = float(np.abs(kernel.gram(torch.from_numpy(pool), torch.from_numpy(pool)).numpy()).mean())
        rtol = 1e-10 if dtype == np.float64 else 1e-5
        assert abs(got[p] - want) <= rtol * scale, (p, got[p], want)


def test_the_test_statistic_and_null_samples_are_those_of_its_relabellings():
    x, y = samples(20, 26, 4, seed=1, shift=0.3)
    result = mmd_test(x, y, GAUSSIAN, permutations=50, seed=7)
    assert isinstance(result, TestResult)
    assert result.statistic == pytest.approx(float(mmd2(x, y, GAUSSIAN, backend="reference")), rel=FLOAT64_RTOL)
    want = mmd2_of_relabellings(x, y, permutation_labels(20, 26, 50, seed=7), GAUSSIAN)
    np.testing.assert_allclose(result.null_samples, want, rtol=SAME_ARITHMETIC_RTOL, atol=SAME_ARITHMETIC_ATOL)
    count = int((want >= result.statistic).sum())
    assert result.p_value == (1 + count) / 51


def test_permutation_labels_are_seeded_randperms():
    labels = permutation_labels(3, 4, 5, seed=9)
    gen = torch.Generator().manual_seed(9)
    for p in range(5):
        want = torch.zeros(7, dtype=torch.bool)
        want[torch.randperm(7, generator=gen)[:3]] = True
        assert torch.equal(labels[:, p], want)
    assert not torch.equal(permutation_labels(3, 4, 5, seed=10), labels)


def test_alternatives():
    x, y = samples(15, 15, 2, seed=3, shift=1.5)
    greater = mmd_test(x, y, GAUSSIAN, permutations=199)
    less = mmd_test(x, y, GAUSSIAN, permutations=199, alternative="less")
    two = mmd_test(x, y, GAUSSIAN, permutations=199, alternative="two-sided")
    null, stat = greater.null_samples, greater.statistic
    assert greater.p_value == (1 + (null >= stat).sum()) / 200
    assert less.p_value == (1 + (null <= stat).sum()) / 200
    assert two.p_value == min(1.0, 2 * min(greater.p_value, less.p_value))
    assert greater.p_value < 0.05 < less.p_value  # a clear shift: large statistic


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_ties_count_against_rejection(dtype):
    """Every point equal: every relabelling has the same statistic (0 up to rounding), so p = 1."""
    x = np.ones((6, 3), dtype)
    result = mmd_test(x, x.copy(), GAUSSIAN, permutations=30)
    assert result.p_value == 1.0
    assert mmd_test(x, x.copy(), GAUSSIAN, permutations=30, alternative="less").p_value == 1.0


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_relabellings_that_repeat_the_observed_split_are_ties(dtype):
    """y repeats x's two points: 4 of the 6 splits put one copy of each point on each side, the observed
    statistic; with a linear kernel the statistics are far from 0, so only the relative tie rule holds them."""
    x = np.array([[1.0, 0.5], [0.2, 2.0]], dtype)
    result = mmd_test(x, x.copy(), Linear(), permutations=200, seed=1)
    pool = np.concatenate([x, x]).astype(np.float64)
    labels = permutation_labels(2, 2, 200, seed=1).numpy()
    exact = np.array([float(mmd2(pool[c], pool[~c], Linear(), backend="reference")) for c in labels.T])
    observed = float(mmd2(x.astype(np.float64), x.astype(np.float64), Linear(), backend="reference"))
    ties = np.isclose(exact, observed, rtol=SAME_ARITHMETIC_RTOL, atol=0)
    assert 0 < ties.sum() < 200 and abs(observed) > 0.1
    assert result.p_value == (1 + (ties | (exact > observed)).sum()) / 201


def test_level_under_the_null():
    """Same distribution: over 200 data sets the test at alpha = 0.05 rejects between 2 % and 9 % of the time
    (exact level 5/100 with 99 permutations: the p-value is (1 + k) / 100)."""
    rejections = 0
    for seed in range(200):
        rng = np.random.default_rng(seed)
        x, y = rng.standard_normal((25, 2)), rng.standard_normal((20, 2))
        rejections += mmd_test(x, y, GAUSSIAN, permutations=99, seed=seed).p_value <= 0.05
    assert 0.02 <= rejections / 200 <= 0.09


def test_power_under_a_clear_shift():
    rejections = 0
    for seed in range(40):
        x, y = samples(25, 20, 2, seed=1000 + seed, shift=1.2)
        rejections += mmd_test(x, y, GAUSSIAN, permutations=99, seed=seed).p_value <= 0.05
    assert rejections / 40 >= 0.95


def test_biased_estimator_gives_the_same_decisions_as_its_own_statistic():
    x, y = samples(12, 9, 3, seed=4, shift=0.8)
    result = mmd_test(x, y, MIXED, permutations=40, estimator="biased")
    assert result.statistic == pytest.approx(float(mmd2(x, y, MIXED, "biased", backend="reference")), rel=FLOAT64_RTOL)
    assert result.p_value == pytest.approx((1 + (result.null_samples >= result.statistic).sum()) / 41)


def test_thousands_of_permutations():
    x, y = samples(60, 40, 5, seed=5)
    result = mmd_test(x.astype(np.float32), y.astype(np.float32), GAUSSIAN, permutations=3000)
    assert result.null_samples.shape == (3000,)
    assert 1 / 3001 <= result.p_value <= 1.0


def test_numpy_in_numpy_out_and_tensors_in_tensors_out():
    x, y = samples(10, 12, 2, seed=6)
    out = mmd_test(x, y, permutations=20)
    assert isinstance(out.statistic, np.float64) and isinstance(out.p_value, np.float64)
    assert isinstance(out.null_samples, np.ndarray) and out.null_samples.shape == (20,)
    t = mmd_test(torch.from_numpy(x), torch.from_numpy(y), permutations=20)
    assert isinstance(t.statistic, torch.Tensor) and t.statistic.dim() == 0
    assert float(t.p_value) == float(out.p_value)
    np.testing.assert_array_equal(t.null_samples.numpy(), out.null_samples)


def _kernel_matmul_backends():
    x = torch.zeros(4, 3, dtype=torch.float64)
    out = []
    for name in ("cpu", "triton"):
        reasons = get_backend(name).reasons(x, x, GAUSSIAN, None, "highest", "kernel_matmul")
        out.append(pytest.param(name, marks=pytest.mark.skipif(bool(reasons), reason="; ".join(reasons))))
    return out


@pytest.mark.parametrize("backend", _kernel_matmul_backends())
def test_every_backend_with_kernel_matmul_agrees_with_the_reference(backend):
    x, y = samples(9, 14, 3, seed=8, shift=0.2)
    got = mmd_test(x, y, MIXED, permutations=20, backend=backend)
    ref = mmd_test(x, y, MIXED, permutations=20, backend="reference")
    np.testing.assert_allclose(got.null_samples, ref.null_samples, rtol=FLOAT64_GRADIENT_RTOL, atol=FLOAT64_ATOL)
    assert got.p_value == ref.p_value


# ---------------------------------------------------------------------------------------------- errors


@pytest.mark.parametrize("kwargs,error,message", [
    (dict(permutations=0), ValueError, "permutations must be a positive integer"),
    (dict(permutations=10.0), ValueError, "permutations must be a positive integer"),
    (dict(seed="a"), ValueError, "seed must be an integer"),
    (dict(alternative="two_sided"), ValueError, "unknown alternative 'two_sided'"),
    (dict(estimator="linear"), ValueError, "unknown estimator 'linear'; valid: 'unbiased', 'biased'"),
    (dict(kernel="gausian"), ValueError, "unknown kernel 'gausian'"),
    (dict(backend="cuda"), ValueError, "unknown backend 'cuda'"),
    (dict(precision="fp16"), ValueError, "unknown precision 'fp16'"),
])  # fmt: skip
def test_bad_arguments_name_themselves(kwargs, error, message):
    x, y = samples(5, 6, 2, seed=0)
    with pytest.raises(error, match=message):
        mmd_test(x, y, **kwargs)


def test_bad_samples():
    x, y = samples(5, 6, 2, seed=0)
    with pytest.raises(ValueError, match="x and y must have the same number of features"):
        mmd_test(x, y[:, :1])
    with pytest.raises(ValueError, match="needs at least 2 samples in y; got m=1"):
        mmd_test(x, y[:1])
    with pytest.raises(TypeError, match="x and y must have the same dtype"):
        mmd_test(x, y.astype(np.float32))
    with pytest.raises(ValueError, match=r"y must be 2-D \(n, d\)"):
        mmd_test(x, y[0])
    x[3, 1] = np.nan
    with pytest.raises(ValueError, match="x must be finite; row 3 holds NaN or inf"):
        mmd_test(x, y)
    with pytest.raises(ValueError, match="x must be finite"):
        mmd2_of_relabellings(x, y, permutation_labels(5, 6, 2))


def test_bad_labels():
    x, y = samples(5, 6, 2, seed=0)
    good = permutation_labels(5, 6, 3)
    with pytest.raises(ValueError, match="labels must be a 2-D bool tensor"):
        mmd2_of_relabellings(x, y, good.float())
    with pytest.raises(ValueError, match="labels must have n \\+ m = 11 rows"):
        mmd2_of_relabellings(x, y, good[:10])
    bad = good.clone()
    bad[0, 1] = ~bad[0, 1]
    with pytest.raises(ValueError, match="each column of labels must mark n = 5 rows as x; column 1 marks"):
        mmd2_of_relabellings(x, y, bad)
