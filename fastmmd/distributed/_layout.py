"""Who holds what: the shard sizes of every rank, gathered once per call, and input checks whose errors are
raised on every rank alike.

A check that failed on one rank only would leave the others waiting in a collective for ever, so local
problems (a bad shape, a NaN) are only recorded; the ranks exchange a flag with their sizes, and if any rank
has a problem every rank raises the same ValueError naming the ranks and their problems.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, List, Optional, Tuple

import torch
import torch.distributed as dist

from fastmmd.ops.numerics import scan

__all__ = ["ShardLayout", "gather_layout", "require_process_group"]

# dtype <-> integer code in the exchanged sizes.
_DTYPE_CODES = {torch.float16: 1, torch.bfloat16: 2, torch.float32: 3, torch.float64: 4}
_DTYPE_NAMES = {code: str(dtype).replace("torch.", "") for dtype, code in _DTYPE_CODES.items()}


def require_process_group(group) -> None:
    """RuntimeError unless torch.distributed has a default process group (group None) or `group` is usable."""
    if not dist.is_available():
        raise RuntimeError("fastmmd.distributed needs torch.distributed, which this torch build does not have")
    if not dist.is_initialized():
        raise RuntimeError("fastmmd.distributed needs an initialised process group: call "
                           "torch.distributed.init_process_group (e.g. under torchrun) first")
    if group is not None and dist.get_rank(group) < 0:
        raise ValueError("group: this process is not a member of the given process group")


@dataclass(frozen=True)
class ShardLayout:
    """The shards of x and y on each rank of `group` (None: the default group), in rank order.

    rank, world: this process's rank in the group and the group's size; x_sizes, y_sizes: rows per rank;
    d: features; magnitude: the largest |value| of every shard (NaN if one holds a NaN, inf if one holds
    ±inf), which fixes the computing frame alike on every rank (fastmmd.ops.numerics). The global samples are
    the concatenations of the shards in rank order."""

    rank: int
    world: int
    x_sizes: Tuple[int, ...]
    y_sizes: Tuple[int, ...]
    d: int
    group: Optional[object]
    magnitude: float = 0.0

    @property
    def n(self) -> int:
        return sum(self.x_sizes)

    @property
    def m(self) -> int:
        return sum(self.y_sizes)

    def rows(self, rank: int) -> int:
        """Rows of the packed shard [x; y] of `rank`."""
        return self.x_sizes[rank] + self.y_sizes[rank]

    def global_rank(self, rank: int) -> int:
        """The default group's rank of the group rank `rank` (what point-to-point calls address)."""
        return rank if self.group is None else dist.get_global_rank(self.group, rank)


def _local_problem(checks: List[Callable[[], None]]) -> Optional[str]:
    for check in checks:
        try:
            check()
        except (ValueError, TypeError) as error:
            return str(error)
    return None


def gather_layout(x: torch.Tensor, y: torch.Tensor, group, checks: List[Callable[[], None]],
                  names: Tuple[str, str] = ("x_local", "y_local")) -> ShardLayout:
    """Runs this rank's `checks` (callables raising ValueError/TypeError), exchanges the shard sizes, and
    raises on every rank if any rank's checks failed or the shards do not fit together (different d or dtype
    across ranks). Collective: every rank of the group must call it."""
    require_process_group(group)
    problem = _local_problem(checks)
    well_formed = problem is None or (x.dim() == 2 and y.dim() == 2)
    shape_x = tuple(x.shape) if well_formed and x.dim() == 2 else (0, 0)
    shape_y = tuple(y.shape) if well_formed and y.dim() == 2 else (0, 0)
    magnitude = scan(x, y) if problem is None else 0.0
    meta = torch.tensor([shape_x[0], shape_y[0], shape_x[1], shape_y[1], _DTYPE_CODES.get(x.dtype, 0),
                         int(problem is not None), 0], dtype=torch.int64, device=x.device)
    meta[6:] = torch.tensor([magnitude], dtype=torch.float64, device=x.device).view(torch.int64)
    world = dist.get_world_size(group)
    gathered = [torch.empty_like(meta) for _ in range(world)]
    dist.all_gather(gathered, meta, group=group)
    rows = [tuple(int(v) for v in t.cpu()) for t in gathered]
    if any(r[5] for r in rows):
        problems: List[Optional[str]] = [None] * world
        dist.all_gather_object(problems, problem, group=group)
        listed = "; ".join(f"rank {k}: {p}" for k, p in enumerate(problems) if p is not None)
        raise ValueError(f"fastmmd.distributed: bad input on {sum(p is not None for p in problems)} of "
                         f"{world} ranks: {listed}")
    dims = {r[2] for r in rows} | {r[3] for r in rows}
    if len(dims) != 1:
        listed = ", ".join(f"rank {k}: {r[2]}/{r[3]}" for k, r in enumerate(rows))
        raise ValueError(f"{names[0]} and {names[1]} must have the same number of features on every rank; "
                         f"got {listed}")
    dtypes = {r[4] for r in rows}
    if len(dtypes) != 1:
        listed = ", ".join(f"rank {k}: {_DTYPE_NAMES.get(r[4], '?')}" for k, r in enumerate(rows))
        raise TypeError(f"{names[0]} must have the same dtype on every rank; got {listed}")
    sizes = torch.stack(gathered)[:, 6].cpu().view(torch.float64).tolist()
    magnitude = math.nan if any(math.isnan(v) for v in sizes) else max(sizes)
    return ShardLayout(rank=dist.get_rank(group), world=world, x_sizes=tuple(r[0] for r in rows),
                       y_sizes=tuple(r[1] for r in rows), d=rows[0][2], group=group, magnitude=magnitude)
