"""Runs a test's ranks: `world` spawned processes calling target(rank, world, store, folder), each saving
its results to folder/rank<r>.pt; a hang fails the test instead of blocking the suite."""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Callable, List

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

SPAWN_TIMEOUT_S = 300
# Once every rank has saved its results, how long the processes may take to tear the group down: with
# torch <= 2.7, gloo's destroy_process_group sometimes never returns on one rank (seen on Python 3.9-3.13
# with torch 2.4.1 and 2.7.1, about one run in three with 3 ranks); the results are complete by then.
TEARDOWN_GRACE_S = 20


def run_rank(rank: int, world: int, store: str, folder: str, cases: Callable[[int, int, dict], None]) -> None:
    """What each spawned rank does: one thread, gloo over a file store, cases(rank, world, out), then out saved
    to folder/rank<r>.pt (atomically, before the group's teardown, which can hang: TEARDOWN_GRACE_S)."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world)
    try:
        out: dict = {}
        cases(rank, world, out)
        dist.barrier()
        path = Path(folder) / f"rank{rank}.pt"
        torch.save(out, path.with_suffix(".tmp"))
        os.replace(path.with_suffix(".tmp"), path)
    finally:
        dist.destroy_process_group()


def spawn_ranks(target: Callable, world: int, folder: Path, timeout_s: float = SPAWN_TIMEOUT_S) -> List[dict]:
    """[results of rank 0, 1, ...] from one spawn of `world` processes running target."""
    context = mp.start_processes(target, args=(world, str(folder / "store"), str(folder)), nprocs=world,
                                 join=False, start_method="spawn")
    deadline = time.monotonic() + timeout_s
    files = [folder / f"rank{r}.pt" for r in range(world)]
    teardown_deadline = None
    # join returns False each time one process ends while others still run; it raises if one failed.
    while not context.join(timeout=1.0):
        now = time.monotonic()
        if teardown_deadline is None and all(f.exists() for f in files):
            teardown_deadline = now + TEARDOWN_GRACE_S
        if teardown_deadline is not None and now > teardown_deadline:
            _kill(context)  # a rank stuck in the group's teardown, its results saved
            break
        if now > deadline:
            _kill(context)
            pytest.fail(f"{world} ranks did not finish within {timeout_s} s (a hang?)")
    return [torch.load(f, weights_only=True) for f in files]


def _kill(context) -> None:
    for process in context.processes:
        if process.is_alive():
            process.kill()
