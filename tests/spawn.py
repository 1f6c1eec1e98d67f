"""Runs a test's ranks: `world` spawned processes calling target(rank, world, store, folder), each saving
its results to folder/rank<r>.pt; a hang fails the test instead of blocking the suite."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Callable, List

import pytest
import torch
import torch.multiprocessing as mp

SPAWN_TIMEOUT_S = 300


def spawn_ranks(target: Callable, world: int, folder: Path, timeout_s: float = SPAWN_TIMEOUT_S) -> List[dict]:
    """[results of rank 0, 1, ...] from one spawn of `world` processes running target."""
    context = mp.start_processes(target, args=(world, str(folder / "store"), str(folder)), nprocs=world,
                                 join=False, start_method="spawn")
    deadline = time.monotonic() + timeout_s
    # join returns False each time one process ends while others still run; it raises if one failed.
    while not context.join(timeout=max(deadline - time.monotonic(), 0.1)):
        if time.monotonic() > deadline:
            for process in context.processes:
                process.kill()
            pytest.fail(f"{world} ranks did not finish within {timeout_s} s (a hang?)")
    return [torch.load(folder / f"rank{r}.pt", weights_only=True) for r in range(world)]
