"""fastmmd.distributed over 2, 3 and 4 CPU processes (gloo): MMD², its gradients, the variance, exact KID,
SMMD² and the gathered rows equal the single-process values on the concatenated samples (float64, 1e-10 relative), with
uneven shards; bad input on one rank raises on every rank instead of hanging. 2 ranks exercise the split
half step of the ring only, 3 its full steps only, 4 both."""
from __future__ import annotations

import pytest
import torch

import fastmmd
from distributed_workers import (
    ESTIMATORS,
    KERNELS,
    SMMD_FORMS,
    global_samples,
    make_kernel,
    mixed_scale_shards,
    run_cases,
    shard,
    small_critic,
)
from spawn import spawn_ranks
from tolerances import FLOAT32_ATOL, FLOAT32_SUM_RTOL

pytestmark = pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed is unavailable")

WORLDS = (2, 3, 4)
RTOL = 1e-10


@pytest.fixture(scope="module", params=WORLDS, ids=lambda w: f"{w}-ranks")
def ranks(request, tmp_path_factory):
    """(world, [results of rank 0, 1, ...]) from one spawn of `world` processes running every case."""
    world = request.param
    return world, spawn_ranks(run_cases, world, tmp_path_factory.mktemp(f"ring{world}"))


def _close(actual, expected, scale=None):
    actual, expected = torch.as_tensor(actual, dtype=torch.float64), torch.as_tensor(expected, dtype=torch.float64)
    scale = expected.abs().max() if scale is None else scale
    assert (actual - expected).abs().max() <= RTOL * max(float(scale), 1e-300), (actual, expected)


@pytest.mark.parametrize("estimator", ESTIMATORS)
@pytest.mark.parametrize("kernel", KERNELS)
def test_mmd2_and_gradients_equal_single_process(ranks, estimator, kernel):
    world, results = ranks
    x, y, xs, ys = global_samples(world, equal=estimator == "u-statistic")
    x, y = x.clone().requires_grad_(True), y.clone().requires_grad_(True)
    expected = fastmmd.mmd2(x, y, kernel=make_kernel(kernel), estimator=estimator, backend="reference")
    gx, gy = torch.autograd.grad(expected, (x, y))
    # Relative to the size of the kernel sums that make up MMD² (it can be near 0 itself).
    scale = fastmmd.mmd2(x.detach(), y.detach(), kernel=make_kernel(kernel), estimator="biased").abs() + 1.0
    backends = ("cpu", "reference") if kernel == "gaussian_mix" else ("cpu",)
    for rank, out in enumerate(results):
        for backend in backends:
            value, grad_x, grad_y = out[f"mmd2/{estimator}/{kernel}/{backend}"]
            _close(value, expected.detach(), scale)
            _close(grad_x, shard(gx, xs, rank), gx.abs().max())
            _close(grad_y, shard(gy, ys, rank), gy.abs().max())


def test_float32_and_numpy_shards(ranks):
    world, results = ranks
    x, y, _, _ = global_samples(world)
    expected = float(fastmmd.mmd2(x, y, kernel=make_kernel("gaussian_mix")))
    for out in results:
        assert out["mmd2/float32"].dtype == torch.float32
        assert float(out["mmd2/float32"]) == pytest.approx(expected, abs=FLOAT32_ATOL)
        assert out["mmd2/numpy"] == pytest.approx(float(fastmmd.mmd2(x, y)), rel=RTOL)


def test_variance_and_kid_equal_single_process(ranks):
    world, results = ranks
    x, y, _, _ = global_samples(world)
    variance = fastmmd.mmd2_and_variance(x, y, kernel=make_kernel("rq_linear"), backend="reference")
    kid = fastmmd.kid(x.abs(), y.abs(), subsets=None, backend="reference")
    for out in results:
        _close(out["variance"][0], variance.mmd2)
        _close(out["variance"][1], variance.variance)
        _close(out["kid"][0], kid.mean)
        _close(out["kid"][1], kid.std)


@pytest.mark.parametrize("form", list(SMMD_FORMS))
def test_smmd2_and_critic_gradients_equal_single_process(ranks, form):
    world, results = ranks
    x, y, _, ys = global_samples(world)
    critic = small_critic()
    fake = y.clone().requires_grad_(True)
    value = fastmmd.smmd2(critic, x, fake, kernel=make_kernel("gaussian_mix"), backend="reference",
                          **SMMD_FORMS[form])
    value.backward()
    grads = torch.cat([p.grad.reshape(-1) for p in critic.parameters()])
    for rank, out in enumerate(results):
        got_value, got_grads, got_fake = out[f"smmd2_{form}"]
        _close(got_value, value.detach())
        _close(got_grads, grads)
        _close(got_fake, shard(fake.grad, ys, rank), fake.grad.abs().max())


def test_all_gather_rows_and_its_gradient(ranks):
    world, results = ranks
    x, _, xs, _ = global_samples(world)
    x = x.clone().requires_grad_(True)
    loss = (x.sin() * x.sum(0)).sum()
    loss.backward()
    for rank, out in enumerate(results):
        gathered, got_loss, grad = out["gather"]
        assert torch.equal(gathered, x.detach())
        _close(got_loss, loss.detach())
        _close(grad, shard(x.grad, xs, rank), x.grad.abs().max())


@pytest.mark.parametrize("case,words", [
    ("nan", ["must be finite", "rank {last}"]),
    ("features", ["same number of features", "rank 1: 2/2"]),
    ("shape", ["rank 0", "must be 2-D"]),
    ("u-statistic", ["u-statistic", "as many rows"]),
])
def test_bad_input_on_one_rank_raises_on_every_rank(ranks, case, words):
    world, results = ranks
    for out in results:
        message = out[f"error/{case}"]
        assert message.startswith(("ValueError", "TypeError")), message
        for word in words:
            assert word.format(last=world - 1) in message


def test_a_nan_on_one_rank_is_nan_on_every_rank_and_the_frame_is_shared(ranks):
    world, results = ranks
    shards = [mixed_scale_shards(rank, world) for rank in range(world)]
    big_x, big_y = torch.cat([s[0] for s in shards]), torch.cat([s[1] for s in shards])
    expected = fastmmd.mmd2(big_x, big_y, kernel=fastmmd.Gaussian(bandwidth=1e20))
    for out in results:
        assert torch.isnan(out["nan/mmd2"]) and torch.isnan(out["nan/variance"]).all()
        assert float(out["frame/mmd2"]) == pytest.approx(float(expected), rel=FLOAT32_SUM_RTOL, abs=FLOAT32_ATOL)


def test_needs_an_initialised_process_group():
    import fastmmd.distributed as fd

    if torch.distributed.is_initialized():
        pytest.skip("a process group is initialised in this process")
    with pytest.raises(RuntimeError, match="init_process_group"):
        fd.mmd2(torch.zeros(3, 2), torch.ones(3, 2))
