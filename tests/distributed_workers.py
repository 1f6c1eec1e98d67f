"""What the processes of tests/test_distributed.py run: each rank computes fastmmd.distributed's results on
its shards of fixed global samples and saves them; the test compares them with the single-process ops on
the concatenated samples. Spawned children import this module by name (tests/ is on their sys.path)."""
from __future__ import annotations

from typing import Callable, Dict

import numpy as np
import torch
import torch.distributed as dist

import fastmmd
from spawn import run_rank

# Uneven shards: rank q holds X_SIZES[q] rows of x and Y_SIZES[q] of y (the first `world` entries).
X_SIZES = (5, 9, 2, 7)
Y_SIZES = (8, 3, 6, 4)
EQUAL_SIZES = (6, 4, 7, 5)  # x and y alike, for the u-statistic
D = 3
KERNELS = ("gaussian_mix", "rq_linear", "polynomial", "energy")
ESTIMATORS = ("unbiased", "biased", "u-statistic")
# The scale's two published forms (fastmmd.smmd_scale): the paper's and the reference code's.
SMMD_FORMS = {"paper": dict(lam=0.5), "reference": dict(lam=1.0, gradient_weight=10.0, kernel_value=False)}


def make_kernel(name: str):
    import fastmmd

    return {"gaussian_mix": fastmmd.Gaussian(bandwidth=[0.7, 1.5, 3.0]),
            "rq_linear": fastmmd.RationalQuadratic(alpha=[0.5, 2.0]) + fastmmd.Linear(),
            "polynomial": fastmmd.Polynomial(),
            "energy": fastmmd.Energy()}[name]


def global_samples(world: int, equal: bool = False, seed: int = 0):
    """(x, y, x_sizes, y_sizes): float64 samples whose shards the ranks hold, y shifted from x."""
    x_sizes = (EQUAL_SIZES if equal else X_SIZES)[:world]
    y_sizes = (EQUAL_SIZES if equal else Y_SIZES)[:world]
    gen = np.random.default_rng(seed)
    x = torch.from_numpy(gen.standard_normal((sum(x_sizes), D)))
    y = torch.from_numpy(0.4 + 1.3 * gen.standard_normal((sum(y_sizes), D)))
    return x, y, x_sizes, y_sizes


def shard(t: torch.Tensor, sizes, rank: int) -> torch.Tensor:
    start = sum(sizes[:rank])
    return t[start:start + sizes[rank]].clone()


def small_critic() -> torch.nn.Module:
    """The same small critic on every rank (a fixed seed): (B, D) -> (B, 4)."""
    torch.manual_seed(7)
    return torch.nn.Sequential(torch.nn.Linear(D, 8), torch.nn.Tanh(), torch.nn.Linear(8, 4)).double()


def _mmd2_cases(rank: int, world: int, out: Dict) -> None:
    import fastmmd.distributed as fd

    for estimator in ESTIMATORS:
        x, y, xs, ys = global_samples(world, equal=estimator == "u-statistic")
        for kernel in KERNELS:
            for backend in ("cpu", "reference"):
                if backend == "reference" and kernel != "gaussian_mix":
                    continue
                xl = shard(x, xs, rank).requires_grad_(True)
                yl = shard(y, ys, rank).requires_grad_(True)
                value = fd.mmd2(xl, yl, kernel=make_kernel(kernel), estimator=estimator, backend=backend)
                (value / world).backward()
                key = f"mmd2/{estimator}/{kernel}/{backend}"
                out[key] = (value.detach(), xl.grad, yl.grad)
    x, y, xs, ys = global_samples(world)
    value = fd.mmd2(shard(x, xs, rank).float(), shard(y, ys, rank).float(), kernel=make_kernel("gaussian_mix"))
    out["mmd2/float32"] = value
    out["mmd2/numpy"] = float(fd.mmd2(shard(x, xs, rank).numpy(), shard(y, ys, rank).numpy()))


def _statistics_cases(rank: int, world: int, out: Dict) -> None:
    import fastmmd.distributed as fd

    x, y, xs, ys = global_samples(world)
    result = fd.mmd2_and_variance(shard(x, xs, rank), shard(y, ys, rank), kernel=make_kernel("rq_linear"))
    out["variance"] = torch.stack([result.mmd2, result.variance])
    real, fake = x.abs(), y.abs()
    result = fd.kid(shard(real, xs, rank), shard(fake, ys, rank))
    out["kid"] = torch.stack([result.mean, result.std])


def _smmd_cases(rank: int, world: int, out: Dict) -> None:
    import fastmmd.distributed as fd

    x, y, xs, ys = global_samples(world)
    for form, scale_form in SMMD_FORMS.items():
        critic = small_critic()
        fake = shard(y, ys, rank).requires_grad_(True)
        value = fd.smmd2(critic, shard(x, xs, rank), fake, kernel=make_kernel("gaussian_mix"), **scale_form)
        (value / world).backward()
        grads = torch.cat([p.grad.reshape(-1) for p in critic.parameters()])
        dist.all_reduce(grads)
        out[f"smmd2_{form}"] = (value.detach(), grads, fake.grad)


def _collective_cases(rank: int, world: int, out: Dict) -> None:
    """all_gather_rows of uneven shards, and its gradient, under a loss that is not linear in them."""
    import fastmmd.distributed as fd

    x, _, xs, _ = global_samples(world)
    local = shard(x, xs, rank).requires_grad_(True)
    gathered = fd.all_gather_rows(local)
    loss = (gathered.sin() * gathered.sum(0)).sum()
    (loss / world).backward()
    out["gather"] = (gathered.detach(), loss.detach(), local.grad)


def _numerics_cases(rank: int, world: int, out: Dict) -> None:
    """The rules of docs/numerics.md over shards: a NaN on the last rank alone makes MMD² (and the variance)
    NaN on every rank; data of 1e20 in float32 take one frame on every rank (the largest |value| of any)."""
    import fastmmd.distributed as fd

    x, y, xs, ys = global_samples(world)
    xl, yl = shard(x, xs, rank), shard(y, ys, rank)
    poisoned = yl.clone()
    if rank == world - 1:
        poisoned[0, 0] = float("nan")
    out["nan/mmd2"] = fd.mmd2(xl, poisoned, kernel=make_kernel("gaussian_mix"))
    out["nan/variance"] = torch.stack(list(fd.mmd2_and_variance(xl, poisoned, kernel=make_kernel("gaussian_mix"))))
    out["frame/mmd2"] = fd.mmd2(*mixed_scale_shards(rank, world), kernel=fastmmd.Gaussian(bandwidth=1e20))


def mixed_scale_shards(rank: int, world: int):
    """float32 shards of x of magnitude 1e20 on rank 0 and 1e15 elsewhere, of y 1e20: the ranks' own
    magnitudes would choose different frames."""
    x, y, xs, ys = global_samples(world)
    xl, yl = shard(x, xs, rank), shard(y, ys, rank)
    return (xl * (1e20 if rank == 0 else 1e15)).float(), (yl * 1e20).float()


def _error_cases(rank: int, world: int, out: Dict) -> None:
    """Bad input on one rank: every rank must raise (a rank raising alone would leave the others hanging)."""
    import fastmmd.distributed as fd

    x, y, xs, ys = global_samples(world)
    xl, yl = shard(x, xs, rank), shard(y, ys, rank)
    attempts: Dict[str, Callable[[], object]] = {
        "nan": lambda: fd.kid(xl.abs(), yl.abs() if rank != world - 1 else torch.full_like(yl, float("nan"))),
        "features": lambda: fd.mmd2(xl if rank != 1 else xl[:, :2], yl if rank != 1 else yl[:, :2]),
        "shape": lambda: fd.mmd2(xl if rank != 0 else xl[0], yl),
        "u-statistic": lambda: fd.mmd2(xl, yl, estimator="u-statistic"),
    }
    for name, attempt in attempts.items():
        try:
            attempt()
        except (ValueError, TypeError) as error:
            out[f"error/{name}"] = f"{type(error).__name__}: {error}"
        else:
            out[f"error/{name}"] = "no error"


def _all_cases(rank: int, world: int, out: Dict) -> None:
    _mmd2_cases(rank, world, out)
    _statistics_cases(rank, world, out)
    _smmd_cases(rank, world, out)
    _collective_cases(rank, world, out)
    _numerics_cases(rank, world, out)
    _error_cases(rank, world, out)


def run_cases(rank: int, world: int, store: str, results: str) -> None:
    """The entry point of each spawned rank: every case, results saved per rank (tests/spawn.py)."""
    run_rank(rank, world, store, results, _all_cases)
