"""Shared fixtures and markers.

Nothing here touches a GPU at import or collection time: CUDA is only queried when a test marked
``cuda`` is about to run.
"""
from __future__ import annotations

import os

import numpy as np
import pytest
import torch

# Without a GPU the Triton kernels run under Triton's interpreter on CPU tensors; the variable must be set
# before triton is first imported.
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")
if os.environ.get("TRITON_INTERPRET", "0") not in ("", "0"):
    from interpreter_patching import skip_nested_language_patching

    skip_nested_language_patching()


def pytest_runtest_setup(item):
    if item.get_closest_marker("cuda") is not None and not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")


def sample_xy(n, m, d, dtype=torch.float64, seed=0, *, shift=0.3, spread=1.2):
    """x ~ N(0, 1), y ~ N(shift, spread²): a meaningful difference, drawn in float64 then cast."""
    gen = np.random.default_rng(seed)
    x = gen.standard_normal((n, d))
    y = shift + spread * gen.standard_normal((m, d))
    return torch.from_numpy(x).to(dtype), torch.from_numpy(y).to(dtype)


def moments_of_grams(kxx: torch.Tensor, kyy: torch.Tensor, kxy: torch.Tensor):
    """(MMD²_u, its unbiased variance estimate) from the three materialised Gram matrices (diagonals left out
    here), by fastmmd.formulas.moments in torch: differentiable by autograd, the oracle of the fused gradients."""
    from fastmmd.formulas.moments import CrossBlock, SelfBlock, mmd2_unbiased_variance

    kxx, kyy = kxx - torch.diag_embed(torch.diagonal(kxx)), kyy - torch.diag_embed(torch.diagonal(kyy))
    xx, yy = SelfBlock(kxx.sum(1), (kxx * kxx).sum()), SelfBlock(kyy.sum(1), (kyy * kyy).sum())
    xy = CrossBlock(kxy.sum(1), kxy.sum(0), (kxy * kxy).sum())
    return xx.mean + yy.mean - 2 * xy.mean, mmd2_unbiased_variance(xx, yy, xy)


@pytest.fixture
def make_xy():
    """make_xy(n, m, d, dtype=torch.float64, seed=0) -> (x, y), fresh tensors every call."""
    return sample_xy


@pytest.fixture
def restore_num_threads():
    """Restore torch's intra-op thread count after a test that changes it."""
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def digits_cache(tmp_path_factory):
    """A cache folder holding the digits classifier, trained once for the whole session."""
    from gan.digits_classifier import load_digits_classifier

    folder = tmp_path_factory.mktemp("gan-cache")
    load_digits_classifier(cache_dir=folder)
    return folder


@pytest.fixture
def gan_cache(digits_cache, monkeypatch):
    """GAN_CACHE pointing at the session's trained digits classifier."""
    monkeypatch.setenv("GAN_CACHE", str(digits_cache))
    return digits_cache


def runnable_cpu_variants():
    """The built variants of the C++ backend that this CPU can run (fastmmd.backends.cpu_variants)."""
    from fastmmd.backends.cpu_variants import REQUIRED_FEATURES, built_variants, cpu_features

    if "baseline" not in built_variants():
        return []
    features = cpu_features()
    return [v for v in built_variants() if all(features.get(f, False) for f in REQUIRED_FEATURES[v])]


RUNNABLE_VARIANTS = runnable_cpu_variants()
