"""Data-parallel training over the processes torchrun starts: which rank this is, its rows of each global
batch, and the networks wrapped in DistributedDataParallel.

    torchrun --nproc-per-node 2 -m gan.train --loss smmd      # global batch 2 × --batch-size

Every rank draws the same global batch and noise from the run's seeded generator and keeps its own rows,
so a run on P ranks makes the updates of one process with P times the batch (the losses over the global
batch go through fastmmd.distributed; DDP averages the parameter gradients, which for those losses are P
times each rank's share: see fastmmd.distributed.mmd2). Rank 0 evaluates and writes the run's files.
"""
from __future__ import annotations

import gc
import inspect
import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Dict, List, Optional

import torch
import torch.distributed as dist
from torch import nn

__all__ = ["Shards", "SINGLE", "close_process_group", "shards_from_environment"]


@dataclass(frozen=True)
class Shards:
    """This process's place in the run: rank of world (1: not distributed), and the process group."""

    rank: int = 0
    world: int = 1
    group: Optional[object] = None

    @property
    def distributed(self) -> bool:
        return self.world > 1

    @property
    def main(self) -> bool:
        """The rank that evaluates and writes files."""
        return self.rank == 0

    def take(self, batch: torch.Tensor) -> torch.Tensor:
        """This rank's rows of a global batch (world · B, ...) -> (B, ...)."""
        if not self.distributed:
            return batch
        size = batch.shape[0] // self.world
        return batch[self.rank * size:(self.rank + 1) * size]

    def wrap(self, module: nn.Module, device: torch.device) -> nn.Module:
        """DistributedDataParallel(module) on several ranks, else the module. Buffers are not broadcast:
        every rank computes the same ones (global batch norm, spectral norm's power iteration)."""
        if not self.distributed:
            return module
        device_ids = [device.index if device.index is not None else torch.cuda.current_device()] \
            if device.type == "cuda" else None
        ddp = nn.parallel.DistributedDataParallel
        # torch >= 2.14 renames the option (and deprecates the old name); it syncs buffers once at start.
        option = "forward_sync_buffers" if "forward_sync_buffers" in inspect.signature(ddp).parameters \
            else "broadcast_buffers"
        return ddp(module, device_ids=device_ids, process_group=self.group, **{option: False})

    def any(self, flag: bool) -> bool:
        """Whether `flag` is set on any rank (collective; the flag itself on one rank)."""
        if not self.distributed:
            return flag
        value = torch.tensor([int(flag)], device=self._device())
        dist.all_reduce(value, op=dist.ReduceOp.MAX, group=self.group)
        return bool(value.item())

    def mean(self, logs: Dict[str, float]) -> Dict[str, float]:
        """The mean over the ranks of each logged number (the same keys on every rank; collective)."""
        if not self.distributed or not logs:
            return logs
        keys = sorted(logs)
        values = torch.tensor([logs[k] for k in keys], dtype=torch.float64, device=self._device())
        dist.all_reduce(values, group=self.group)
        return {k: float(v) / self.world for k, v in zip(keys, values.tolist())}

    def broadcast(self, values: List[float]) -> List[float]:
        """Rank 0's `values` on every rank (collective)."""
        if not self.distributed:
            return values
        tensor = torch.tensor(values, dtype=torch.float64, device=self._device())
        dist.broadcast(tensor, src=dist.get_global_rank(self.group, 0) if self.group is not None else 0,
                       group=self.group)
        return tensor.tolist()

    def _device(self) -> torch.device:
        if dist.get_backend(self.group) == "nccl":
            return torch.device("cuda", torch.cuda.current_device())
        return torch.device("cpu")


SINGLE = Shards()
COLLECTIVE_TIMEOUT = timedelta(hours=2)


def shards_from_environment(device_name: str) -> Shards:
    """The Shards of a process started by torchrun (WORLD_SIZE > 1 in its environment): initialises the
    default process group ("nccl" for CUDA runs, "gloo" otherwise) and, for CUDA, selects the GPU
    LOCAL_RANK. SINGLE for a plain `python -m gan.train`."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return SINGLE
    cuda = device_name == "cuda" or (device_name == "auto" and torch.cuda.is_available())
    if cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    if not dist.is_initialized():
        # The other ranks wait in a collective while rank 0 evaluates: allow long evaluations.
        dist.init_process_group("nccl" if cuda else "gloo", timeout=COLLECTIVE_TIMEOUT)
    return Shards(rank=dist.get_rank(), world=dist.get_world_size())


def close_process_group() -> None:
    """Destroys the default process group, if there is one, so that its worker threads end here.

    The finished run's DDP wrappers hold the group and sit in reference cycles, so they are collected first:
    otherwise the group outlives destroy_process_group, and a gloo worker that drops the last reference to a
    finished all-reduce during interpreter shutdown aborts the process ("terminate called without an active
    exception") after a successful run."""
    if not (dist.is_available() and dist.is_initialized()):
        return
    gc.collect()
    dist.destroy_process_group()
