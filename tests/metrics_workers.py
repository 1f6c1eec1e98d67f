"""What the processes of tests/test_metrics_distributed.py run: each rank feeds its shard of fixed global
features to fastmmd.metrics (and to torchmetrics' own KID) in batches, computes, and saves the results; the
test compares them with one process scoring the concatenated features. Spawned children import this module
by name (tests/ is on their sys.path)."""
from __future__ import annotations

from typing import Dict

import numpy as np
import torch
import torch.distributed as dist

from spawn import run_rank

# Uneven shards: rank q holds REAL_SIZES[q] real rows and FAKE_SIZES[q] fake rows (the first `world`).
REAL_SIZES = (23, 40, 17)
FAKE_SIZES = (31, 12, 35)
D = 8
BATCH = 10
SUBSETS, SUBSET_SIZE, SEED = 5, 20, 11


def global_features(world: int):
    """(real, fake, real_sizes, fake_sizes): float64 features, the fake ones shifted and wider."""
    real_sizes, fake_sizes = REAL_SIZES[:world], FAKE_SIZES[:world]
    gen = np.random.default_rng(3)
    real = torch.from_numpy(np.abs(gen.standard_normal((sum(real_sizes), D))))
    fake = torch.from_numpy(np.abs(0.2 + 1.2 * gen.standard_normal((sum(fake_sizes), D))))
    return real, fake, real_sizes, fake_sizes


def shard(t: torch.Tensor, sizes, rank: int) -> torch.Tensor:
    start = sum(sizes[:rank])
    return t[start:start + sizes[rank]].clone()


def feed(metric, real: torch.Tensor, fake: torch.Tensor):
    """update() in batches of BATCH rows, real and fake interleaved as a validation loop would."""
    for start in range(0, max(real.shape[0], fake.shape[0]), BATCH):
        if start < real.shape[0]:
            metric.update(real[start:start + BATCH], real=True)
        if start < fake.shape[0]:
            metric.update(fake[start:start + BATCH], real=False)
    return metric


class _GatherSizes:
    """Records the largest tensor any all_gather of torch.distributed moves while installed."""

    def __init__(self):
        self.largest = 0
        self._original = dist.all_gather

    def __enter__(self):
        def recording(tensor_list, tensor, *args, **kwargs):
            self.largest = max(self.largest, tensor.numel())
            return self._original(tensor_list, tensor, *args, **kwargs)
        dist.all_gather = recording
        return self

    def __exit__(self, *exc):
        dist.all_gather = self._original


def _cases(rank: int, world: int, out: Dict) -> None:
    from torchmetrics.image.kid import KernelInceptionDistance as TorchmetricsKID

    import fastmmd
    from fastmmd.metrics import MMD, KernelInceptionDistance

    real, fake, real_sizes, fake_sizes = global_features(world)
    mine_real, mine_fake = shard(real, real_sizes, rank), shard(fake, fake_sizes, rank)

    exact = feed(KernelInceptionDistance(), mine_real, mine_fake)
    with _GatherSizes() as gathered:
        out["kid/exact"] = exact.compute()
    out["kid/exact/largest_gather"] = gathered.largest
    out["kid/exact/again"] = exact.compute()  # cached by torchmetrics, or recomputed: the same numbers
    out["kid/local"] = feed(KernelInceptionDistance(sync_on_compute=False), mine_real, mine_fake).compute()

    subsets = feed(KernelInceptionDistance(subsets=SUBSETS, subset_size=SUBSET_SIZE, seed=SEED), mine_real,
                   mine_fake)
    out["kid/subsets"] = subsets.compute()
    # torchmetrics gathers each stored batch of its list states separately, so its ranks must have stored
    # as many batches: one per sample here (fastmmd.metrics concatenates first and takes any batch count).
    theirs = TorchmetricsKID(feature=torch.nn.Identity(), subsets=SUBSETS, subset_size=SUBSET_SIZE)
    theirs.update(mine_real, real=True)
    theirs.update(mine_fake, real=False)
    torch.manual_seed(SEED)
    out["kid/torchmetrics"] = theirs.compute()

    synced = feed(KernelInceptionDistance(), mine_real, mine_fake)
    synced.sync()  # torchmetrics' own gather of the "cat" states: the union, scored in the process
    out["kid/after_sync"] = synced.compute()  # (compute unsyncs afterwards, as torchmetrics' compute does)

    kernel = fastmmd.Gaussian(bandwidth=[0.5, 2.0])
    for estimator in ("unbiased", "biased", "u-statistic"):
        if estimator == "u-statistic" and sum(real_sizes) != sum(fake_sizes):
            continue
        out[f"mmd/{estimator}"] = feed(MMD(kernel, estimator=estimator), mine_real, mine_fake).compute()
    out["mmd/with_std"] = feed(MMD(kernel, return_std=True), mine_real, mine_fake).compute()

    # The next round of a training loop: reset keeps the real features when asked.
    kept = feed(KernelInceptionDistance(reset_real_features=False), mine_real, mine_fake)
    kept.compute()
    kept.reset()
    for start in range(0, mine_fake.shape[0], BATCH):
        kept.update(mine_fake[start:start + BATCH] * 1.1, real=False)
    out["kid/second_round"] = kept.compute()

    # A rank without fake features: the same error on every rank, no hang.
    for name, metric in (("exact", KernelInceptionDistance()),
                         ("subsets", KernelInceptionDistance(subsets=2, subset_size=4))):
        metric.update(mine_real, real=True)
        if rank != world - 1:
            metric.update(mine_fake, real=False)
        try:
            metric.compute()
            out[f"error/{name}"] = "no error"
        except ValueError as error:
            out[f"error/{name}"] = str(error)


def run_cases(rank: int, world: int, store: str, results: str) -> None:
    """The entry point of each spawned rank: every case, results saved per rank (tests/spawn.py)."""
    run_rank(rank, world, store, results, _cases)
