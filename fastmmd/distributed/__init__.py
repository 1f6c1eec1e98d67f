"""fastmmd.distributed: MMD², its variance, KID and SMMD² over samples sharded across the ranks of a
torch.distributed process group ("gloo" on CPUs, "nccl" on GPUs).

Every rank passes its shard; the result is that of the concatenated samples (all pairs across all shards),
returned on every rank. The shards travel around a ring one at a time (fastmmd.distributed._ring), so no
rank holds all the data; each block runs on the rank's backend as in the single-process ops.

    import torch.distributed as dist, fastmmd.distributed as fd
    dist.init_process_group("gloo")                      # under torchrun
    value = fd.mmd2(x_shard, y_shard, kernel="gaussian")  # same value on every rank
    result = fd.kid(real_shard, fake_shard)              # exact KID and its std over all shards
"""
from fastmmd.distributed.collectives import all_gather_rows, all_reduce_sum
from fastmmd.distributed.mmd2 import mmd2
from fastmmd.distributed.smmd import smmd2, smmd_scale
from fastmmd.distributed.statistics import kid, mmd2_and_variance

__all__ = ["mmd2", "mmd2_and_variance", "kid", "smmd2", "smmd_scale", "all_reduce_sum", "all_gather_rows"]
