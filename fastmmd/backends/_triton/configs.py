"""Tile sizes of the Triton kernels: autotuned on a GPU among a few configurations per (kernel, precision,
dtype, d), one fixed small configuration under the interpreter. FASTMMD_AUTOTUNE=0 takes the first configuration of
each list without tuning (fast start, e.g. for tests).

A `Launcher` launches a kernel and returns the meta-parameters it ran with (the host needs BM and BN to
know how many partial sums were written).
"""
from __future__ import annotations

import os
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch
import triton

from fastmmd.backends.interpreter import interpreting

MIN_TILE = 16  # smallest BM / BN of any configuration: bounds the number of partial-sum slots
GROUP = 8

# Constexpr flags that change the code, so each combination is tuned on its own.
_FLAG_KEYS = ["FAMS", "NT", "NEEDS_NORM", "NEEDS_DOT", "EXPLICIT", "CENTER", "PRECISION"]


def padded_dim(d: int) -> int:
    """Features held by the owner kernels: the next power of two >= d, at least 16."""
    return max(16, triton.next_power_of_2(d))


def _config(bm: int, bn: int, warps: int, stages: int, **extra) -> triton.Config:
    return triton.Config(dict(BM=bm, BN=bn, **extra), num_warps=warps, num_stages=stages)


def descriptor_blocks(nargs: dict) -> None:
    """Pre-hook of the tiled kernels' configurations: with TMA, the tensor descriptors A and B read blocks of
    [BM, BK] and [BN, BK] rows x features (the block shape belongs to the descriptor, the tile size to
    the configuration, so the autotuner sets one from the other before each launch)."""
    if nargs.get("TMA"):
        nargs["A"].block_shape = [nargs["BM"], nargs["BK"]]
        nargs["B"].block_shape = [nargs["BN"], nargs["BK"]]


def _tiled_configs(explicit: bool, dtype: torch.dtype, precision: str, grouped: bool) -> List[triton.Config]:
    """Square (BM == BN) tiles with a BK loop: the value kernel (grouped: takes GROUP) and the
    coefficient-chunk kernel."""
    group = dict(GROUP=GROUP) if grouped else {}
    if interpreting():
        return [_config(16, 16, 4, 1, BK=16, **group)]
    if explicit:
        shapes = [(32, 32, 8, 4, 1), (32, 32, 4, 4, 1), (64, 64, 4, 8, 1), (16, 16, 16, 4, 1)]
    elif dtype == torch.float64:
        shapes = [(64, 64, 16, 4, 3), (32, 32, 16, 4, 2), (64, 64, 32, 8, 2)]
    elif precision == "ieee":
        shapes = [(64, 64, 32, 4, 3), (128, 128, 32, 8, 3), (64, 64, 16, 4, 4), (128, 128, 16, 8, 4)]
    elif precision == "bf16":
        shapes = [(128, 128, 64, 8, 3), (128, 128, 64, 8, 4), (128, 128, 32, 8, 4), (64, 64, 64, 4, 4)]
    else:  # tf32
        shapes = [(128, 128, 32, 8, 3), (128, 128, 32, 8, 4), (128, 128, 64, 8, 3), (64, 64, 64, 4, 4),
                  (128, 128, 32, 4, 4), (128, 128, 32, 8, 5)]
    configs = [_config(bm, bn, w, s, BK=bk, **group) for bm, bn, bk, w, s in shapes]
    for config in configs:
        config.pre_hook = descriptor_blocks
    return configs


def _owner_configs(explicit: bool, dtype: torch.dtype, d: int) -> List[triton.Config]:
    """Row blocks of BM owned rows, BN rows of B per step; the owner kernel holds (BM, padded_dim(d))."""
    if interpreting():
        return [_config(16, 16, 4, 1)]
    bd = padded_dim(d)
    if explicit:
        shapes = [(16, 16, 8, 1), (32, 16, 8, 1), (16, 32, 8, 1), (16, 16, 4, 1)]
    elif dtype == torch.float64:
        shapes = [(32, 32, 4, 2), (64, 32, 4, 2), (32, 64, 8, 2), (16, 16, 4, 1)]
    elif bd <= 64:
        shapes = [(128, 64, 8, 3), (128, 128, 8, 2), (64, 64, 4, 3), (64, 128, 4, 2), (128, 32, 4, 3)]
    elif bd <= 128:
        shapes = [(128, 64, 8, 2), (64, 64, 4, 2), (64, 32, 4, 3), (128, 32, 8, 3)]
    else:
        shapes = [(64, 32, 8, 2), (32, 32, 4, 2), (64, 16, 4, 2), (16, 16, 4, 1)]
    return _fitting_configs(shapes, bd, dtype)


# Shared memory a configuration may plan for (the H100 has 227 KiB per block; A100 163 KiB).
_SHARED_BUDGET = 150 * 1024


def _fitting_configs(shapes, bd: int, dtype: torch.dtype) -> List[triton.Config]:
    """The (BM, BN, warps, stages) shapes of a row-block kernel whose shared memory fits the budget."""
    size = torch.finfo(dtype).bits // 8
    fits = [s for s in shapes if _owner_shared_bytes(s, bd, size) <= _SHARED_BUDGET]
    return [_config(bm, bn, w, st) for bm, bn, w, st in (fits or [(16, 16, 4, 1)])]


def _owner_shared_bytes(shape, bd: int, size: int) -> int:
    """Rough shared memory of the owner kernel: the owned rows, `stages` copies of B's rows, one tile."""
    bm, bn, _, stages = shape
    return (bm + max(stages, 1) * bn) * bd * size + bm * bn * 4


def rows_descriptor_blocks(nargs: dict) -> None:
    """Pre-hook of the streaming value kernel's configurations: with TMA, its descriptors read blocks of
    [BM, BD] rows of A and [BN, BD] rows of B."""
    if nargs.get("TMA"):
        nargs["A"].block_shape = [nargs["BM"], nargs["BD"]]
        nargs["B"].block_shape = [nargs["BN"], nargs["BD"]]


def _value_rows_configs(dtype: torch.dtype, d: int, precision: str) -> List[triton.Config]:
    """Owner-style value kernel: BM rows held, B streamed BN rows at a time (BM a multiple of BN)."""
    configs = _value_rows_shapes(dtype, d, precision)
    for config in configs:
        config.pre_hook = rows_descriptor_blocks
    return configs


def _value_rows_shapes(dtype: torch.dtype, d: int, precision: str) -> List[triton.Config]:
    if interpreting():
        return [_config(16, 16, 4, 1)]
    bd = padded_dim(d)
    tensor_cores = precision != "ieee"
    if dtype == torch.float64:
        shapes = [(32, 32, 4, 2), (64, 32, 4, 2), (16, 16, 4, 1)]
    elif bd <= 64 and tensor_cores:
        # 4 warps on 128 x 32 tiles: under 200 registers in tf32 and 141 reading bfloat16 copies, so an SM
        # runs 2 or 3 programs at once, with fewer instructions per pair than 8 warps on 128 x 64 (one
        # program; bench/results/sass_sm90.csv). Not for IEEE products: there 4 warps spill thousands of
        # instructions.
        shapes = [(128, 32, 4, 3), (128, 64, 8, 3), (128, 128, 8, 2), (64, 64, 4, 3), (256, 64, 8, 3)]
    elif bd <= 64:
        shapes = [(128, 64, 8, 3), (128, 128, 8, 2), (64, 64, 4, 3), (256, 64, 8, 3)]
    elif bd <= 128 and tensor_cores:
        shapes = [(128, 64, 8, 3), (128, 32, 4, 3), (64, 64, 4, 3), (128, 32, 8, 3), (64, 32, 4, 3)]
    elif bd <= 128:
        shapes = [(128, 64, 8, 3), (64, 64, 4, 3), (128, 32, 8, 3), (64, 32, 4, 3)]
    else:
        shapes = [(64, 32, 8, 2), (32, 32, 4, 2), (64, 16, 4, 2), (16, 16, 4, 1)]
    return _fitting_configs(shapes, bd, dtype)


def matvec_column_block(p: int, dtype: torch.dtype) -> int:
    """PB, the columns of v one program of the kernel-matrix product holds: p rounded up to a power of two
    (at least 16, tl.dot's smallest), at most 128 (64 in float64); wider v takes several column blocks."""
    return min(max(MIN_TILE, triton.next_power_of_2(p)), 64 if dtype == torch.float64 else 128)


def _matvec_configs(explicit: bool, dtype: torch.dtype, precision: str, pb: int) -> List[triton.Config]:
    """(BM, BN, BK) tiles of the kernel-matrix product: BM rows of a, BN rows of b per step, a BK loop over
    the features; those whose shared memory (with PB columns of v) fits the budget."""
    if interpreting():
        return [_config(16, 16, 4, 1, BK=16)]
    # With the four-family kernel of tests/aot_compile_triton.py, the first of each list spills at most a few
    # dozen bytes of registers on sm_90 for PB = 16 and 128 (64); 128 x 128 tiles and BK = 64 spilled KiBs.
    if explicit:
        shapes = [(32, 32, 8, 4, 1), (64, 32, 8, 4, 1), (64, 32, 8, 8, 1), (64, 64, 4, 8, 1)]
    elif dtype == torch.float64:
        shapes = [(64, 32, 16, 8, 2), (64, 64, 16, 8, 2), (32, 32, 16, 4, 2), (32, 64, 16, 4, 2)]
    elif precision == "ieee":
        shapes = [(64, 64, 32, 8, 3), (128, 32, 32, 8, 3), (64, 32, 32, 4, 3), (128, 64, 32, 8, 3)]
    elif precision == "bf16":
        shapes = [(64, 64, 32, 8, 3), (128, 64, 32, 8, 3), (64, 128, 32, 8, 3), (128, 32, 32, 8, 3)]
    else:  # tf32
        shapes = [(64, 64, 32, 8, 3), (128, 32, 32, 8, 3), (64, 128, 32, 8, 3), (128, 64, 32, 8, 3)]
    size = torch.finfo(dtype).bits // 8
    fits = [s for s in shapes if _matvec_shared_bytes(s, pb, size) <= _SHARED_BUDGET]
    return [_config(bm, bn, w, st, BK=bk) for bm, bn, bk, w, st in (fits or [(16, 16, 16, 4, 1)])]


def _matvec_shared_bytes(shape, pb: int, size: int) -> int:
    """Shared memory of the product kernel, an upper bound of what the compiler allocated for sm_90: either
    `stages` copies of the a and b tiles of the feature loop, or the v tile and the K tile staged for
    tl.dot (the two are not live at the same time)."""
    bm, bn, bk, _, stages = shape
    return max(max(stages, 1) * (bm + bn) * bk, bn * pb + bm * bn) * size


def segment_alignment() -> int:
    """A multiple of every BN of _value_rows_configs: the streaming kernel's segments must not split tiles."""
    return 16 if interpreting() else 256


class Launcher:
    """A kernel with its configurations: `launcher(grid, *args, **kwargs)` runs it and returns the chosen
    meta-parameters. grid: a function of those meta-parameters."""

    def __init__(self, kernel, candidates: Sequence[triton.Config], key: List[str],
                 restore: Optional[List[str]] = None):
        self.kernel = kernel
        self.candidates = list(candidates)
        if os.environ.get("FASTMMD_AUTOTUNE", "1") == "0":
            self.candidates = self.candidates[:1]
        if len(self.candidates) == 1:
            self.fn = kernel
        else:
            self.fn = triton.autotune(self.candidates, key=key, restore_value=restore or [])(kernel)

    def __call__(self, grid: Callable[[dict], Tuple[int, ...]], *args, **kwargs) -> dict:
        if len(self.candidates) == 1:
            config = self.candidates[0]
            meta = dict(config.kwargs)
            if config.pre_hook is not None:
                config.pre_hook({**dict(zip(self.kernel.arg_names, args)), **kwargs, **meta})
            self.fn[grid(meta)](*args, **kwargs, **meta, num_warps=config.num_warps,
                                num_stages=config.num_stages)
            return meta
        self.fn[grid](*args, **kwargs)
        return dict(self.fn.best_config.kwargs)


_launchers: Dict[tuple, Launcher] = {}


def chosen_configurations() -> Dict[str, str]:
    """The tile configuration each launcher made so far runs with: the autotuner's choice for the last shapes
    it tuned, or the one configuration of an untuned launcher; keyed by the launcher ("value_rows
    torch.float32 bf16 64" -> "BM=128 BN=32 warps=4 stages=3"). For benchmark logs."""
    out = {}
    for key, launcher in _launchers.items():
        config = getattr(launcher.fn, "best_config", None) if len(launcher.candidates) > 1 else launcher.candidates[0]
        if config is not None:
            tiles = " ".join(f"{k}={v}" for k, v in config.kwargs.items())
            out[" ".join(str(part) for part in key)] = f"{tiles} warps={config.num_warps} stages={config.num_stages}"
    return out


def _cached(key: tuple, make: Callable[[], Launcher]) -> Launcher:
    if key not in _launchers:
        _launchers[key] = make()
    return _launchers[key]


def value_launcher(kernel, explicit: bool, dtype: torch.dtype, precision: str) -> Launcher:
    return _cached(("value", explicit, dtype, precision), lambda: Launcher(
        kernel, _tiled_configs(explicit, dtype, precision, grouped=True),
        key=["d", "size_class", "SYMMETRIC", "EXCLUDE_DIAG", "TMA", *_FLAG_KEYS]))


def persistent_launcher(kernel, explicit: bool, dtype: torch.dtype, precision: str, per_sm: int = 1) -> Launcher:
    """The persistent forward in one configuration, not tuned (its tile list is built for the tile size
    and its grid for the programs per SM before the launch): the untuned default of the tiled kernels, or
    for two programs per SM (per_sm=2) the same tiles with 4 warps and at most 3 stages (at 128 x 128 the
    Gaussian's 232-253 registers and 96 KiB of shared memory let two run on an SM)."""
    def make() -> Launcher:
        config = _tiled_configs(explicit, dtype, precision, grouped=False)[0]
        if per_sm == 2 and config.num_warps > 4:
            config = _config(config.kwargs["BM"], config.kwargs["BN"], 4, min(config.num_stages, 3),
                             BK=config.kwargs["BK"])
            config.pre_hook = descriptor_blocks
        return Launcher(kernel, [config], key=[])

    return _cached(("persistent", explicit, dtype, precision, per_sm), make)


def value_rows_launcher(kernel, dtype: torch.dtype, precision: str, d: int) -> Launcher:
    return _cached(("value_rows", dtype, precision, padded_dim(d)), lambda: Launcher(
        kernel, _value_rows_configs(dtype, d, precision),
        key=["d", "size_class", "SYMMETRIC", "EXCLUDE_DIAG", "FOLD", "TMA", *_FLAG_KEYS]))


def chunk_launcher(kernel, explicit: bool, dtype: torch.dtype, precision: str) -> Launcher:
    return _cached(("chunk", explicit, dtype, precision), lambda: Launcher(
        kernel, _tiled_configs(explicit, dtype, precision, grouped=False),
        key=["d", "size_class", "EXCLUDE_DIAG", "SAME", "TMA", *_FLAG_KEYS]))


def stats_launcher(kernel, explicit: bool, dtype: torch.dtype, precision: str) -> Launcher:
    return _cached(("stats", explicit, dtype, precision), lambda: Launcher(
        kernel, _tiled_configs(explicit, dtype, precision, grouped=False),
        key=["d", "size_class", "SYMMETRIC", "EXCLUDE_DIAG", *_FLAG_KEYS]))


def owner_launcher(kernel, explicit: bool, dtype: torch.dtype, precision: str, d: int) -> Launcher:
    bd = padded_dim(d)
    return _cached(("owner", explicit, dtype, precision, bd), lambda: Launcher(
        kernel, _owner_configs(explicit, dtype, d),
        key=["d", "size_class", "EXCLUDE_DIAG", "SAME", "ACCUMULATE", "WANT_VALUE", *_FLAG_KEYS],
        restore=["GRAD"]))


def matvec_launcher(kernel, explicit: bool, dtype: torch.dtype, precision: str, pb: int) -> Launcher:
    return _cached(("matvec", explicit, dtype, precision, pb), lambda: Launcher(
        kernel, _matvec_configs(explicit, dtype, precision, pb),
        key=["d", "size_class", "EXCLUDE_DIAG", "WANT_SQ", *_FLAG_KEYS]))
