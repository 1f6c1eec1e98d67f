"""fastmmd.kid: the exact estimate against the float64 reference backend, each compatibility mode against a
straightforward numpy re-implementation of the published code (which draws its own subsets the way that
code does), the errors, and numpy in / numpy out."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from fastmmd.backends import get_backend
from fastmmd.formulas.kid_subsets import KID_MODES, kid_subsets
from fastmmd.kernels import Polynomial
from fastmmd.statistics.kid import KIDResult, kid
from fastmmd.statistics.mmd2_and_variance import mmd2_and_variance
from tolerances import FLOAT32_SUM_RTOL


def features(n, d, seed, shift=0.0):
    """Nonnegative (ReLU) features, float64, like pooled CNN activations; `shift` changes the distribution."""
    rng = np.random.default_rng(seed)
    return np.maximum(rng.standard_normal((n, d)) + shift * np.linspace(-1, 1, d) - 0.2, 0.0)


# ------------------------------------------------------------------ the published conventions, in numpy


def poly(a, b, degree=3, gamma=None, coef0=1.0):
    gamma = 1.0 / a.shape[1] if gamma is None else gamma
    return (a @ b.T * gamma + coef0) ** degree


def mmd2_equal_sizes(k_xx, k_xy, k_yy):
    """torchmetrics `maximum_mean_discrepancy` / torch-fidelity `mmd2(..., "unbiased")` (m = subset size)."""
    m = k_xx.shape[0]
    kt_xx = k_xx.sum() - np.trace(k_xx)
    kt_yy = k_yy.sum() - np.trace(k_yy)
    return (kt_xx + kt_yy) / (m * (m - 1)) - 2 * k_xy.sum() / (m * m)


def torchmetrics_kid(real, fake, subsets, size, seed, **kernel):
    """KernelInceptionDistance.compute: torch.randperm from the global generator, real then fake; mean and
    std(unbiased=False)."""
    torch.manual_seed(seed)
    scores = []
    for _ in range(subsets):
        f_real = real[torch.randperm(real.shape[0])[:size].numpy()]
        f_fake = fake[torch.randperm(fake.shape[0])[:size].numpy()]
        scores.append(mmd2_equal_sizes(poly(f_real, f_real, **kernel), poly(f_real, f_fake, **kernel),
                                       poly(f_fake, f_fake, **kernel)))
    scores = np.array(scores)
    return scores.mean(), scores.std(ddof=0)


def torch_fidelity_kid(real, fake, subsets, size, seed, **kernel):
    """kid_features_to_metric: RandomState(rng_seed).choice without replacement, features_1 then
    features_2; np.mean and np.std."""
    rng = np.random.RandomState(seed)
    mmds = np.zeros(subsets)
    for i in range(subsets):
        f1 = real[rng.choice(len(real), size, replace=False)]
        f2 = fake[rng.choice(len(fake), size, replace=False)]
        mmds[i] = mmd2_equal_sizes(poly(f1, f1, **kernel), poly(f1, f2, **kernel), poly(f2, f2, **kernel))
    return np.mean(mmds), np.std(mmds)


def clean_fid_kid(feats1, feats2, num_subsets, size, seed):
    """cleanfid.fid.kernel_distance (global np.random, feats2 drawn first), and the std over its subsets,
    which clean-fid does not report."""
    np.random.seed(seed)
    n = feats1.shape[1]
    m = min(min(feats1.shape[0], feats2.shape[0]), size)
    t = 0
    per_subset = []
    for _ in range(num_subsets):
        x = feats2[np.random.choice(feats2.shape[0], m, replace=False)]
        y = feats1[np.random.choice(feats1.shape[0], m, replace=False)]
        a = (x @ x.T / n + 1) ** 3 + (y @ y.T / n + 1) ** 3
        b = (x @ y.T / n + 1) ** 3
        term = (a.sum() - np.diag(a).sum()) / (m - 1) - b.sum() * 2 / m
        t += term
        per_subset.append(term / m)
    return t / num_subsets / m, np.std(per_subset)


def tf_gan_kid(activations1, activations2, max_block_size):
    """kernel_classifier_distance_and_std_from_activations, its index arithmetic transcribed."""
    n_r, n_g = activations1.shape[0], activations2.shape[0]
    n_blocks = int(np.ceil(max(n_r, n_g) / max_block_size))
    v_r, v_g = n_r // n_blocks, n_g // n_blocks
    n_plusone_r, n_plusone_g = n_r - v_r * n_blocks, n_g - v_g * n_blocks
    sizes_r = [v_r] * (n_blocks - n_plusone_r) + [v_r + 1] * n_plusone_r
    sizes_g = [v_g] * (n_blocks - n_plusone_g) + [v_g + 1] * n_plusone_g
    inds_r, inds_g = np.concatenate([[0], np.cumsum(sizes_r)]), np.concatenate([[0], np.cumsum(sizes_g)])
    dim = activations1.shape[1]
    ests = []
    for i in range(n_blocks):
        r = activations1[inds_r[i]:inds_r[i + 1]]
        g = activations2[inds_g[i]:inds_g[i + 1]]
        m, n = r.shape[0], g.shape[0]
        k_rr = (r @ r.T / dim + 1) ** 3
        k_rg = (r @ g.T / dim + 1) ** 3
        k_gg = (g @ g.T / dim + 1) ** 3
        ests.append(-2 * k_rg.mean() + (k_rr.sum() - np.trace(k_rr)) / (m * (m - 1))
                    + (k_gg.sum() - np.trace(k_gg)) / (n * (n - 1)))
    ests = np.array(ests)
    mn = ests.mean()
    var = np.nan if n_blocks <= 1 else ((ests - mn) ** 2).sum() / (n_blocks - 1)
    return mn, np.sqrt(var / n_blocks)


def exact_kid(real, fake, degree=3, gamma=None, coef0=1.0):
    """The unbiased MMD² over all pairs, materialised."""
    n, m = len(real), len(fake)
    k_xx, k_yy = poly(real, real, degree, gamma, coef0), poly(fake, fake, degree, gamma, coef0)
    return ((k_xx.sum() - np.trace(k_xx)) / (n * (n - 1)) + (k_yy.sum() - np.trace(k_yy)) / (m * (m - 1))
            - 2 * poly(real, fake, degree, gamma, coef0).mean())


def assert_close(got, want, rtol, scale):
    """|got - want| <= rtol * max(|want|, scale): relative, with the term scale as the floor near 0."""
    assert abs(float(got) - float(want)) <= rtol * max(abs(float(want)), scale), (float(got), float(want))


# ------------------------------------------------------------------------------------------ the tests

REAL = features(263, 40, seed=1)
FAKE = features(301, 40, seed=2, shift=0.4)


@pytest.mark.parametrize("mode,published", [
    ("torchmetrics", lambda r, f, seed: torchmetrics_kid(r, f, 7, 90, seed)),
    ("torch-fidelity", lambda r, f, seed: torch_fidelity_kid(r, f, 7, 90, seed)),
    ("clean-fid", lambda r, f, seed: clean_fid_kid(r, f, 7, 90, seed)),
])  # fmt: skip
@pytest.mark.parametrize("seed", [0, 2020])
def test_random_subset_modes_reproduce_the_published_code(mode, published, seed):
    got = kid(REAL, FAKE, subsets=7, subset_size=90, seed=seed, mode=mode, backend="cpu")
    mean, std = published(REAL, FAKE, seed)
    assert_close(got.mean, mean, 1e-6, 1e-3 * std)
    assert_close(got.std, std, 1e-6, 0.0)
    assert (got.mode, got.subsets, got.subset_size) == (mode, 7, 90)


def test_tf_gan_mode_reproduces_its_blocks_mean_and_standard_error():
    # 301 = 5 * 60 + 1 and 263 = 5 * 52 + 3: blocks of unequal sizes in both sets.
    got = kid(REAL, FAKE, subset_size=64, mode="tf-gan", backend="cpu")
    mean, std = tf_gan_kid(REAL, FAKE, 64)
    assert_close(got.mean, mean, 1e-6, 0.0)
    assert_close(got.std, std, 1e-6, 0.0)
    assert (got.subsets, got.subset_size) == (5, 64)


def test_tf_gan_with_one_block_has_no_standard_error():
    got = kid(REAL[:50], FAKE[:60], mode="tf-gan", backend="cpu")  # default block size 1024
    assert got.subsets == 1 and got.subset_size == 1024
    assert_close(got.mean, exact_kid(REAL[:50], FAKE[:60]), 1e-9, 0.0)
    assert math.isnan(got.std)


def test_tf_gan_blocks_follow_its_split():
    blocks = kid_subsets(263, 301, "tf-gan", subsets=0, subset_size=64)
    assert [len(r) for r, _ in blocks] == [52, 52, 53, 53, 53]
    assert [len(f) for _, f in blocks] == [60, 60, 60, 60, 61]
    assert np.array_equal(np.concatenate([r for r, _ in blocks]), np.arange(263))


@pytest.mark.parametrize("mode", KID_MODES)
def test_each_subset_is_the_unbiased_mmd2_of_the_helpers_index_sets(mode):
    """Through the helper that gives the index sets: the mean over them of the materialised MMD²."""
    kernel = dict(degree=2, gamma=0.3, coef0=0.5)
    index_sets = kid_subsets(len(REAL), len(FAKE), mode, subsets=5, subset_size=70, seed=3)
    values = [exact_kid(REAL[r], FAKE[f], **kernel) for r, f in index_sets]
    got = kid(REAL, FAKE, subsets=5, subset_size=70, seed=3, mode=mode, backend="cpu", **kernel)
    assert_close(got.mean, np.mean(values), 1e-9, 1e-3 * np.std(values))


@pytest.mark.parametrize("n,m,d", [(5, 4, 1), (97, 61, 130), (130, 97, 3)])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_exact_equals_the_float64_reference_backend(n, m, d, dtype):
    real, fake = features(n, d, seed=n), features(m, d, seed=m, shift=0.3)
    got = kid(real.astype(dtype), fake.astype(dtype), subsets=None, backend="cpu")
    ref = kid(real, fake, subsets=None, backend="reference")
    assert (got.mode, got.subsets, got.subset_size) == ("exact", None, None)
    assert_close(ref.mean, exact_kid(real, fake), 1e-10, 0.0)
    # float32: within 1e-5 of the size of the kernel terms (tests/tolerances.py's rule); float64: 1e-10.
    scale = float(np.abs(poly(real, real)).mean())
    rtol = 1e-10 if dtype == np.float64 else 1e-5
    assert abs(float(got.mean) - float(ref.mean)) <= rtol * scale
    assert_close(got.std, ref.std, 1e-8 if dtype == np.float64 else 1e-3, 0.0)


def test_exact_std_is_the_square_root_of_the_estimators_variance():
    """The std of the exact mode is that of the estimator (fastmmd.mmd2_and_variance, checked against a Monte
    Carlo estimate in tests/test_variance.py), clamped at 0."""
    got = kid(REAL, FAKE, subsets=None, degree=2, backend="cpu")
    value, variance = mmd2_and_variance(REAL, FAKE, kernel=Polynomial(degree=2), backend="reference")
    assert_close(got.mean, value, 1e-10, 0.0)
    assert_close(got.std, math.sqrt(variance), 1e-8, 0.0)
    assert float(got.std) < float(kid(REAL, FAKE, subsets=20, subset_size=100, degree=2).std)


def test_float32_features_agree_with_float64_to_1e_4_on_inception_like_features():
    real, fake = features(400, 2048, seed=5), features(300, 2048, seed=6, shift=0.05)
    exact64 = kid(real, fake, subsets=None, backend="cpu")
    exact32 = kid(real.astype(np.float32), fake.astype(np.float32), subsets=None, backend="cpu")
    assert abs(float(exact32.mean) / float(exact64.mean) - 1) < 1e-4
    sub64 = kid(real, fake, subsets=5, subset_size=250, backend="cpu")
    sub32 = kid(real.astype(np.float32), fake.astype(np.float32), subsets=5, subset_size=250, backend="cpu")
    assert abs(float(sub32.mean) / float(sub64.mean) - 1) < 1e-4


def test_numpy_in_numpy_out_and_tensors_in_tensors_out():
    out = kid(REAL, FAKE, subsets=3, subset_size=50)
    assert isinstance(out, KIDResult)
    assert isinstance(out.mean, np.float64) and isinstance(out.std, np.float64)
    t = kid(torch.from_numpy(REAL).float(), torch.from_numpy(FAKE).float(), subsets=3, subset_size=50)
    assert isinstance(t.mean, torch.Tensor) and t.mean.dim() == 0 and t.mean.dtype == torch.float64
    assert float(t.mean) == pytest.approx(float(out.mean), rel=FLOAT32_SUM_RTOL)
    exact = kid(REAL, FAKE, subsets=None)
    assert isinstance(exact.mean, np.float64) and isinstance(exact.std, np.float64)


def test_the_seed_picks_the_subsets():
    a = kid(REAL, FAKE, subsets=4, subset_size=50, seed=1)
    assert float(kid(REAL, FAKE, subsets=4, subset_size=50, seed=1).mean) == float(a.mean)
    assert float(kid(REAL, FAKE, subsets=4, subset_size=50, seed=2).mean) != float(a.mean)


def test_the_default_kernel_is_the_kid_kernel():
    got = kid(REAL, FAKE, subsets=None, backend="reference")
    assert_close(got.mean, exact_kid(REAL, FAKE, 3, 1.0 / REAL.shape[1], 1.0), 1e-10, 0.0)
    custom = kid(REAL, FAKE, subsets=None, degree=2, gamma=0.1, coef0=2.0, backend="reference")
    assert_close(custom.mean, exact_kid(REAL, FAKE, 2, 0.1, 2.0), 1e-10, 0.0)


def _fused_backends():
    """The fused backends that can run the op here ("triton" under the interpreter on CPU tensors)."""
    x = torch.zeros(4, 3, dtype=torch.float64)
    out = []
    for name, op in (("cpu", "mmd2"), ("cpu", "kernel_matmul"), ("triton", "mmd2"), ("triton", "kernel_matmul")):
        reasons = get_backend(name).reasons(x, x, Polynomial(), None if op == "kernel_matmul" else "unbiased",
                                            "highest", op)
        out.append(pytest.param(name, op, marks=pytest.mark.skipif(bool(reasons), reason="; ".join(reasons))))
    return out


@pytest.mark.parametrize("backend,op", _fused_backends())
def test_every_fused_backend_with_the_op_agrees_with_the_reference(backend, op):
    real, fake = REAL[:40, :7], FAKE[:33, :7]
    if op == "kernel_matmul":  # the exact estimate and its std
        got, ref = (kid(real, fake, subsets=None, backend=b) for b in (backend, "reference"))
        assert_close(got.std, ref.std, 1e-8, 0.0)
    else:  # the subsets: one fused mmd2 each
        got, ref = (kid(real, fake, subsets=2, subset_size=30, backend=b) for b in (backend, "reference"))
    assert_close(got.mean, ref.mean, 1e-9, 1e-9)


# ---------------------------------------------------------------------------------------------- errors


@pytest.mark.parametrize("mode", ["torchmetrics", "torch-fidelity", "clean-fid"])
def test_too_few_samples_for_a_subset_is_an_error_not_a_smaller_subset(mode):
    with pytest.raises(ValueError, match=r"subset_size=300 is larger than the 263 samples of real_feats"):
        kid(REAL, FAKE, subset_size=300, mode=mode)
    with pytest.raises(ValueError, match=r"subset_size=250 .* fake_feats \(real_feats has 301, fake_feats 200\)"):
        kid(FAKE, REAL[:200], subset_size=250, mode=mode)
    with pytest.raises(ValueError, match=r"subset_size=1000 is larger than the 263 samples"):
        kid(REAL, FAKE, mode=mode)  # the default subset size


def test_tf_gan_needs_two_rows_of_each_set_per_block():
    with pytest.raises(ValueError, match=r"mode='tf-gan' splits both sets into 10 blocks .* real_feats \(15 rows\)"):
        kid(REAL[:15], FAKE[:300], subset_size=30, mode="tf-gan")


def test_exact_needs_four_samples_of_each_set():
    with pytest.raises(ValueError, match="fake_feats needs at least 4 samples"):
        kid(REAL, FAKE[:3], subsets=None)


def test_mismatched_feature_dimensions():
    with pytest.raises(ValueError, match="real_feats and fake_feats must have the same number of features"):
        kid(REAL, FAKE[:, :10], subsets=None)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_features(bad):
    fake = FAKE.copy()
    fake[17, 3] = bad
    with pytest.raises(ValueError, match="fake_feats must be finite; row 17 holds NaN or inf"):
        kid(REAL, fake, subsets=2, subset_size=10)
    with pytest.raises(ValueError, match="fake_feats must be finite"):
        kid(REAL, fake, subsets=None)


@pytest.mark.parametrize("kwargs,message", [
    (dict(mode="inception"), "unknown mode 'inception'"),
    (dict(subsets=0), "subsets must be a positive integer"),
    (dict(subsets=2.5), "subsets must be a positive integer"),
    (dict(subset_size=1), "subset_size must be an integer >= 2"),
    (dict(degree=0), "degree must be a positive integer"),
    (dict(gamma=-1.0), "gamma must be > 0"),
    (dict(precision="fp8"), "unknown precision 'fp8'"),
    (dict(backend="gpu"), "unknown backend 'gpu'"),
])  # fmt: skip
def test_bad_arguments_name_themselves(kwargs, message):
    with pytest.raises(ValueError, match=message):
        kid(REAL, FAKE, **{"subset_size": 50, **kwargs})


def test_bad_feature_arrays():
    with pytest.raises(TypeError, match="real_feats must be a torch.Tensor or a numpy.ndarray"):
        kid(REAL.tolist(), FAKE)
    with pytest.raises(ValueError, match=r"fake_feats must be 2-D \(n, d\)"):
        kid(REAL, FAKE[0])
    with pytest.raises(TypeError, match="real_feats must be a floating-point array"):
        kid(REAL.astype(np.int64), FAKE)


def _relu_features(n, d, shift, seed):
    g = torch.Generator().manual_seed(seed)
    direction = torch.randn(d, generator=g) * 0.05 * shift
    return (torch.randn(n, d, generator=g) * 0.6 + 0.15 + direction).clamp_min(0.0)


@pytest.mark.skipif(get_backend("triton").unavailable_reason() is not None, reason="needs the triton backend")
@pytest.mark.parametrize("precision", ["tf32", "bf16"])
@pytest.mark.parametrize("degree", [3, 4])
def test_low_precision_exact_kid_keeps_its_low_degrees_exact(precision, degree, monkeypatch):
    """In tf32/bf16 the exact KID takes its degree <= 2 part from float64 Gram matrices and only the rest from
    the pairs (fastmmd.statistics.kid_split): ten times closer to float64, or more, than the whole kernel in
    the same precision, the std within 1e-2."""
    import fastmmd.statistics.kid as kid_module

    device = "cuda" if torch.cuda.is_available() else "cpu"
    x, y = _relu_features(96, 64, 0.0, 1).to(device), _relu_features(80, 64, 1.0, 2).to(device)
    exact = kid(x.double(), y.double(), subsets=None, degree=degree, backend="reference")
    split = kid(x, y, subsets=None, degree=degree, backend="triton", precision=precision)
    monkeypatch.setattr(kid_module, "_split_backend", lambda *args: None)
    whole = kid(x, y, subsets=None, degree=degree, backend="triton", precision=precision)
    truth = float(exact.mean)
    split_error, whole_error = abs(float(split.mean) - truth), abs(float(whole.mean) - truth)
    assert split_error <= whole_error / 10, (split_error, whole_error)
    assert split_error <= {"tf32": 1e-4, "bf16": 1e-3}[precision] * abs(truth)
    assert abs(float(split.std) - float(exact.std)) <= 1e-2 * float(exact.std)


@pytest.mark.skipif(get_backend("triton").unavailable_reason() is not None, reason="needs the triton backend")
def test_low_precision_exact_kid_with_gradients_takes_the_differentiable_path():
    device = "cuda" if torch.cuda.is_available() else "cpu"
    x = _relu_features(24, 16, 0.0, 3).to(device).requires_grad_(True)
    y = _relu_features(20, 16, 1.0, 4).to(device)
    result = kid(x, y, subsets=None, backend="triton", precision="tf32")
    (grad,) = torch.autograd.grad(result.mean, x)
    assert grad.shape == x.shape and bool(torch.isfinite(grad).all())
