"""fastmmd.metrics over 2 and 3 CPU processes (gloo): each rank updates with its uneven shard in batches;
compute() equals one process scoring the concatenated features (float64, FLOAT64_RTOL), the exact KID moves
no features between ranks (only row sums), the subset mode equals torchmetrics' own metric on the same ranks,
and a rank without features makes every rank raise the same error."""
from __future__ import annotations

import pytest
import torch

import fastmmd
from metrics_workers import SEED, SUBSET_SIZE, SUBSETS, D, global_features, shard
from spawn import spawn_ranks
from tolerances import FLOAT64_RTOL, PEER_RTOL

pytest.importorskip("torchmetrics")
pytestmark = pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed is unavailable")


@pytest.fixture(scope="module", params=(2, 3), ids=lambda w: f"{w}-ranks")
def ranks(request, tmp_path_factory):
    from metrics_workers import run_cases

    world = request.param
    return world, spawn_ranks(run_cases, world, tmp_path_factory.mktemp(f"metrics{world}"))


def _close(got, want, rtol=FLOAT64_RTOL):
    for g, w in zip(got, want):
        assert float(g) == pytest.approx(float(w), rel=rtol, abs=1e-15), (got, want)


def test_exact_kid_is_that_of_the_union_on_every_rank(ranks):
    world, results = ranks
    real, fake, _, _ = global_features(world)
    want = fastmmd.kid(real, fake, subsets=None)
    for out in results:
        _close(out["kid/exact"], want)
        _close(out["kid/exact/again"], want)
        _close(out["kid/after_sync"], want)


def test_exact_kid_gathers_row_sums_not_features(ranks):
    world, results = ranks
    real, fake, _, _ = global_features(world)
    for out in results:
        # Two float64 row sums per point at most (fastmmd.distributed), never the (N + M, d) features.
        assert out["kid/exact/largest_gather"] <= 2 * (real.shape[0] + fake.shape[0])
        assert out["kid/exact/largest_gather"] < real.shape[0] * D


def test_sync_on_compute_false_scores_each_rank_alone(ranks):
    world, results = ranks
    real, fake, real_sizes, fake_sizes = global_features(world)
    for rank, out in enumerate(results):
        want = fastmmd.kid(shard(real, real_sizes, rank), shard(fake, fake_sizes, rank), subsets=None)
        _close(out["kid/local"], want)


def test_subset_mode_equals_torchmetrics_on_the_same_ranks(ranks):
    world, results = ranks
    real, fake, _, _ = global_features(world)
    want = fastmmd.kid(real, fake, subsets=SUBSETS, subset_size=SUBSET_SIZE, seed=SEED)
    for out in results:
        _close(out["kid/subsets"], want)
        _close(out["kid/subsets"], out["kid/torchmetrics"], PEER_RTOL)


def test_mmd_is_that_of_the_union(ranks):
    world, results = ranks
    real, fake, _, _ = global_features(world)
    kernel = fastmmd.Gaussian(bandwidth=[0.5, 2.0])
    value, variance = fastmmd.mmd2_and_variance(real, fake, kernel=kernel)
    for out in results:
        for estimator in ("unbiased", "biased", "u-statistic"):
            if f"mmd/{estimator}" in out:
                _close([out[f"mmd/{estimator}"]], [fastmmd.mmd2(real, fake, kernel=kernel, estimator=estimator)])
        _close(out["mmd/with_std"], (value, variance.sqrt()))


def test_reset_keeps_the_real_features_of_every_rank(ranks):
    world, results = ranks
    real, fake, _, _ = global_features(world)
    want = fastmmd.kid(real, fake * 1.1, subsets=None)
    for out in results:
        _close(out["kid/second_round"], want)


def test_a_rank_without_features_makes_every_rank_raise(ranks):
    world, results = ranks
    for out in results:
        for name in ("exact", "subsets"):
            message = out[f"error/{name}"]
            assert message != "no error"
            assert f"rank {world - 1}" in message or f"[{world - 1}]" in message, message
    assert len({out["error/exact"] for out in results}) == 1
