"""fastmmd.metrics in one process: KernelInceptionDistance and MMD score what update() stored, in any batch
split, as fastmmd.kid / fastmmd.mmd2 score the concatenated features; the subset mode equals torchmetrics'
own KernelInceptionDistance on the same features and random state; the update/compute/reset loop of a
training script; the metrics without torchmetrics installed; bad arguments named."""
from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

import fastmmd
from fastmmd.metrics import MMD, KernelInceptionDistance
from tolerances import FLOAT32_SUM_RTOL, FLOAT64_RTOL, PEER_RTOL, SAME_ARITHMETIC_RTOL

torchmetrics = pytest.importorskip("torchmetrics")
from torchmetrics.image.kid import KernelInceptionDistance as TorchmetricsKID  # noqa: E402

pytestmark = [pytest.mark.filterwarnings("ignore:Metric `Kernel Inception Distance` will save"),
              pytest.mark.filterwarnings("ignore:The ``compute`` method of metric")]


def features(n, d, seed, shift=0.0, dtype=torch.float64):
    gen = np.random.default_rng(seed)
    return torch.from_numpy(np.abs(shift + gen.standard_normal((n, d)))).to(dtype)


REAL, FAKE = features(157, 12, 1), features(131, 12, 2, shift=0.8)


def fed(metric, real=REAL, fake=FAKE, batch=32):
    for start in range(0, real.shape[0], batch):
        metric.update(real[start:start + batch], real=True)
    for start in range(0, fake.shape[0], batch):
        metric.update(fake[start:start + batch], real=False)
    return metric


def close(got, want, rtol=FLOAT64_RTOL):
    for g, w in zip(got, want):
        assert float(g) == pytest.approx(float(w), rel=rtol, abs=1e-15), (got, want)


def test_the_metrics_are_torchmetrics_metrics_when_it_is_installed():
    assert fastmmd.metrics.TORCHMETRICS_AVAILABLE
    assert isinstance(KernelInceptionDistance(), torchmetrics.Metric)
    assert isinstance(MMD(), torchmetrics.Metric)


@pytest.mark.parametrize("batch", [1, 17, 500])
def test_exact_kid_is_fastmmd_kid_of_everything_stored(batch):
    got = fed(KernelInceptionDistance(), batch=batch).compute()
    close(got, fastmmd.kid(REAL, FAKE, subsets=None))


def test_float32_features_are_scored_as_fastmmd_kid_scores_them():
    real, fake = REAL.float(), FAKE.float()
    got = fed(KernelInceptionDistance(), real, fake).compute()
    close(got, fastmmd.kid(real, fake, subsets=None), SAME_ARITHMETIC_RTOL)
    close(got, fastmmd.kid(REAL, FAKE, subsets=None), FLOAT32_SUM_RTOL)


@pytest.mark.parametrize("seed", [0, 7, 2020])
@pytest.mark.parametrize("degree,gamma,coef", [(3, None, 1.0), (2, 0.25, 0.5)])
def test_subset_mode_equals_torchmetrics_on_the_same_random_state(seed, degree, gamma, coef):
    kernel = dict(degree=degree, gamma=gamma, coef=coef)
    ours = fed(KernelInceptionDistance(subsets=9, subset_size=60, seed=seed, **kernel))
    theirs = fed(TorchmetricsKID(feature=torch.nn.Identity(), subsets=9, subset_size=60, **kernel))
    torch.manual_seed(seed)
    close(ours.compute(), theirs.compute(), PEER_RTOL)


@pytest.mark.parametrize("mode", ["torch-fidelity", "clean-fid", "tf-gan"])
def test_other_subset_modes_are_fastmmd_kid(mode):
    got = fed(KernelInceptionDistance(subsets=4, subset_size=50, mode=mode, seed=3)).compute()
    close(got, fastmmd.kid(REAL, FAKE, subsets=4, subset_size=50, mode=mode, seed=3))


def test_a_training_loop_updates_computes_and_resets():
    """A fixed real set kept across epochs (reset_real_features=False), fresh fakes each epoch."""
    metric = KernelInceptionDistance(reset_real_features=False)
    for start in range(0, REAL.shape[0], 40):
        metric.update(REAL[start:start + 40], real=True)
    scores = []
    for epoch, shift in enumerate((0.6, 0.3, 0.0)):
        fake = features(90, 12, 10 + epoch, shift=shift)
        for start in range(0, 90, 25):
            metric(fake[start:start + 25], real=False)  # forward is update
        scores.append(metric.compute())
        close(scores[-1], fastmmd.kid(REAL, fake, subsets=None))
        metric.reset()
        assert metric.fake_features == [] and sum(t.shape[0] for t in metric.real_features) == REAL.shape[0]
    assert float(scores[0][0]) > float(scores[2][0])  # the fakes approach the real features
    with pytest.raises(ValueError, match="no fake features"):
        metric.compute()


def test_reset_empties_both_samples_by_default():
    metric = fed(KernelInceptionDistance())
    metric.compute()
    metric.reset()
    assert metric.real_features == [] and metric.fake_features == []
    with pytest.raises(ValueError, match="no real features"):
        metric.compute()


def test_compute_after_more_updates_scores_the_new_features():
    metric = fed(KernelInceptionDistance(), fake=FAKE[:60])
    first = metric.compute()
    metric.update(FAKE[60:], real=False)
    close(metric.compute(), fastmmd.kid(REAL, FAKE, subsets=None))
    assert float(first[0]) != float(metric.compute()[0])


class _Features(torch.nn.Module):
    """A fixed feature network: (batch, 3, 4, 4) images -> (batch, 12)."""

    def __init__(self):
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(48, 12), torch.nn.ReLU()).double()

    def forward(self, images):
        return self.net(images)


def test_a_feature_network_maps_the_inputs():
    net = _Features()
    images_real = torch.rand(70, 3, 4, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    images_fake = torch.rand(50, 3, 4, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(1)) * 0.8
    metric = KernelInceptionDistance(feature=net)
    assert dict(metric.named_children())["feature"] is net  # a submodule: .to(device) moves it
    fed(metric, images_real, images_fake, batch=16)
    with torch.no_grad():
        want = fastmmd.kid(net(images_real), net(images_fake), subsets=None)
    close(metric.compute(), want)
    assert not metric.real_features[0].requires_grad


def test_mmd_metric_matches_the_ops():
    kernel = fastmmd.Gaussian(bandwidth=[0.5, 2.0])
    for estimator in ("unbiased", "biased"):
        got = fed(MMD(kernel, estimator=estimator)).compute()
        close([got], [fastmmd.mmd2(REAL, FAKE, kernel=kernel, estimator=estimator)])
    value, variance = fastmmd.mmd2_and_variance(REAL, FAKE, kernel=kernel)
    close(fed(MMD(kernel, return_std=True)).compute(), (value, variance.sqrt()))
    linear = fed(MMD(kernel, estimator="linear"), REAL[:100], FAKE[:100]).compute()
    close([linear], [fastmmd.mmd2(REAL[:100], FAKE[:100], kernel=kernel, estimator="linear")])


def test_non_finite_features_follow_the_numerics_rule():
    bad = FAKE.clone()
    bad[3, 1] = float("nan")
    with pytest.raises(ValueError, match="fake_feats must be finite"):
        fed(KernelInceptionDistance(), fake=bad).compute()
    assert torch.isnan(fed(MMD(), fake=bad).compute())


@pytest.mark.parametrize("make,error,match", [
    (lambda: KernelInceptionDistance(feature=2048), TypeError, "feature must be None"),
    (lambda: KernelInceptionDistance(subsets=0), ValueError, "subsets"),
    (lambda: KernelInceptionDistance(subset_size=1), ValueError, "subset_size"),
    (lambda: KernelInceptionDistance(degree=0), ValueError, "degree"),
    (lambda: KernelInceptionDistance(gamma=-1.0), ValueError, "gamma"),
    (lambda: KernelInceptionDistance(mode="fid"), ValueError, "mode"),
    (lambda: KernelInceptionDistance(seed=-1), ValueError, "seed"),
    (lambda: KernelInceptionDistance(reset_real_features=1), TypeError, "reset_real_features"),
    (lambda: KernelInceptionDistance(sync_on_compute="yes"), TypeError, "sync_on_compute"),
    (lambda: KernelInceptionDistance(precision="fp8"), ValueError, "precision"),
    (lambda: MMD(estimator="biased", return_std=True), ValueError, "return_std"),
    (lambda: MMD(kernel="nope"), ValueError, "nope"),
])  # fmt: skip
def test_bad_arguments_are_named(make, error, match):
    with pytest.raises(error, match=match):
        make()


@pytest.mark.parametrize("inputs,real,error,match", [
    (REAL, 1, TypeError, "real must be a bool"),
    (REAL[0], True, ValueError, "2-D"),
    (REAL[:, :5], False, ValueError, "5 features, earlier batches 12"),
    (REAL.float(), False, TypeError, "dtype torch.float32, earlier batches torch.float64"),
    (torch.ones(4, 12, dtype=torch.int64), False, TypeError, "floating point"),
    (REAL.numpy(), False, TypeError, "torch.Tensor"),
])  # fmt: skip
def test_bad_updates_are_named(inputs, real, error, match):
    metric = KernelInceptionDistance()
    metric.update(REAL[:10], real=True)
    with pytest.raises(error, match=match):
        metric.update(inputs, real=real)


def test_the_metrics_work_without_torchmetrics(tmp_path):
    """A fresh interpreter in which torchmetrics cannot be imported: plain nn.Modules, the same numbers."""
    script = textwrap.dedent(f"""
        import sys
        sys.modules["torchmetrics"] = None  # import torchmetrics now raises ImportError
        import torch, fastmmd
        from fastmmd.metrics import MMD, KernelInceptionDistance, TORCHMETRICS_AVAILABLE
        assert not TORCHMETRICS_AVAILABLE
        real, fake = torch.load({str(tmp_path / 'feats.pt')!r}, weights_only=True)
        metric = KernelInceptionDistance(reset_real_features=False)
        assert isinstance(metric, torch.nn.Module)
        for start in range(0, real.shape[0], 30):
            metric.update(real[start:start + 30], real=True)
        metric(fake, real=False)
        got, want = metric.compute(), fastmmd.kid(real, fake, subsets=None)
        assert abs(float(got[0]) - float(want.mean)) <= 1e-12 * abs(float(want.mean)), (got, want)
        assert abs(float(got[1]) - float(want.std)) <= 1e-12 * abs(float(want.std)), (got, want)
        assert metric.update_count == 7
        metric.reset()
        assert metric.fake_features == [] and sum(t.shape[0] for t in metric.real_features) == real.shape[0]
        subsets = KernelInceptionDistance(subsets=3, subset_size=40, seed=5)
        subsets.update(real, real=True); subsets.update(fake, real=False)
        want = fastmmd.kid(real, fake, subsets=3, subset_size=40, seed=5)
        assert float(subsets.compute()[0]) == float(want.mean)
        mmd = MMD(); mmd.update(real, real=True); mmd.update(fake, real=False)
        assert float(mmd.compute()) == float(fastmmd.mmd2(real, fake))
        try:
            KernelInceptionDistance(compute_on_cpu=True)
        except TypeError as error:
            assert "compute_on_cpu" in str(error) and "torchmetrics" in str(error)
        else:
            raise AssertionError("an unknown option was accepted")
        print("ok")
    """)
    torch.save((REAL, FAKE), tmp_path / "feats.pt")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr
