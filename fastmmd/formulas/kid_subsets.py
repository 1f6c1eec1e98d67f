"""The subsets on which the published KID implementations average the unbiased MMD², drawn exactly as they
draw them, so that `fastmmd.kid(..., mode=...)` reproduces their numbers given the same random state.

Each mode is one published convention (read from the libraries' sources; commit and file in each entry):
- "torchmetrics" (Lightning-AI/torchmetrics, src/torchmetrics/image/kid.py, `KernelInceptionDistance.compute`,
  at dab0333): per subset `torch.randperm(n_real)[:subset_size]`, then `torch.randperm(n_fake)[:subset_size]`,
  from torch's global CPU generator. Here a `torch.Generator` seeded with `seed` draws the same sequence, so
  the subsets are those torchmetrics draws after `torch.manual_seed(seed)`.
- "torch-fidelity" (toshas/torch-fidelity, torch_fidelity/metric_kid.py, `kid_features_to_metric`, at
  5e211a9): `rng = np.random.RandomState(rng_seed)`; per subset `rng.choice(n_real, subset_size,
  replace=False)`, then the same for the fake set. seed = its `rng_seed` (torch-fidelity's default is 2020).
- "clean-fid" (GaParmar/clean-fid, cleanfid/fid.py, `kernel_distance`, at e88c4d6): the global numpy
  generator; per subset the *fake* set first (`feats2`), then the real one, `np.random.choice(n, size,
  replace=False)`. Here `np.random.RandomState(seed)`: clean-fid's subsets after `np.random.seed(seed)`.
  clean-fid shrinks the subset silently to min(n_real, n_fake, 1000); here too few samples is an error.
- "tf-gan" (tensorflow/gan, tensorflow_gan/python/eval/classifier_metrics.py,
  `kernel_classifier_distance_and_std_from_activations`, at bc369b7): no randomness; B = ceil(max(n_real,
  n_fake) / max_block_size) consecutive blocks of each set in the given order, each set split into
  B - (n mod B) blocks of n // B rows followed by (n mod B) blocks of n // B + 1 rows; block i of the real
  set is paired with block i of the fake set. TF-GAN assumes the rows are in random order.

Indices are int64 numpy arrays; a subset is the pair (real rows, fake rows).
"""
from __future__ import annotations

import math
from typing import Iterator, List, Tuple

import numpy as np
import torch

from fastmmd.common.validation import NUMPY_SEED_LIMIT, TORCH_SEED_LIMIT, check_request, check_seed, whole_number

__all__ = ["RANDOM_SUBSET_MODES", "BLOCK_MODES", "KID_MODES", "kid_subsets", "iter_kid_subsets",
           "subset_count", "check_subset_sizes", "check_subset_seed", "tf_gan_block_count"]

RANDOM_SUBSET_MODES = ("torchmetrics", "torch-fidelity", "clean-fid")
BLOCK_MODES = ("tf-gan",)
KID_MODES = RANDOM_SUBSET_MODES + BLOCK_MODES

Subset = Tuple[np.ndarray, np.ndarray]


def kid_subsets(n_real: int, n_fake: int, mode: str, subsets: int, subset_size: int,
                seed: int = 0) -> List[Subset]:
    """The (real rows, fake rows) index pairs that `mode` averages over, for n_real real and n_fake fake
    samples (a list; `iter_kid_subsets` yields them one at a time).

    Random-subset modes: `subsets` pairs of `subset_size` distinct rows of each set (rows drawn without
    replacement within a subset, independently across subsets), drawn with `seed`. "tf-gan": the disjoint
    blocks of at most `subset_size` rows described in the module docstring; `subsets` and `seed` are not
    used. Sizes must already be checked (`check_subset_sizes`).
    """
    return list(iter_kid_subsets(n_real, n_fake, mode, subsets, subset_size, seed))


def iter_kid_subsets(n_real: int, n_fake: int, mode: str, subsets: int, subset_size: int,
                     seed: int = 0) -> Iterator[Subset]:
    """The subsets of `kid_subsets`, drawn one at a time (memory O(subset_size) whatever their number)."""
    if mode == "tf-gan":
        yield from _tf_gan_blocks(n_real, n_fake, subset_size)
        return
    if mode == "torchmetrics":
        gen = torch.Generator().manual_seed(seed)
        for _ in range(subsets):
            real = torch.randperm(n_real, generator=gen)[:subset_size]
            fake = torch.randperm(n_fake, generator=gen)[:subset_size]
            yield real.numpy(), fake.numpy()
        return
    if mode not in RANDOM_SUBSET_MODES:
        raise ValueError(f"unknown mode {mode!r}; valid: {', '.join(map(repr, KID_MODES))}")
    rng = np.random.RandomState(seed)
    for _ in range(subsets):
        if mode == "torch-fidelity":
            real = rng.choice(n_real, subset_size, replace=False)
            fake = rng.choice(n_fake, subset_size, replace=False)
        else:  # clean-fid
            fake = rng.choice(n_fake, subset_size, replace=False)
            real = rng.choice(n_real, subset_size, replace=False)
        yield real.astype(np.int64), fake.astype(np.int64)


def subset_count(n_real: int, n_fake: int, mode: str, subsets: int, subset_size: int) -> int:
    """How many subsets (or TF-GAN blocks) `mode` averages over."""
    return tf_gan_block_count(n_real, n_fake, subset_size) if mode == "tf-gan" else subsets


def check_subset_seed(mode: str, seed: object) -> int:
    """The seed of a random-subset mode: an integer in [0, 2**64) for torchmetrics' torch.Generator, in
    [0, 2**32) for numpy's RandomState (torch-fidelity, clean-fid); None is refused in every mode."""
    return check_seed(seed, TORCH_SEED_LIMIT if mode == "torchmetrics" else NUMPY_SEED_LIMIT)


def tf_gan_block_count(n_real: int, n_fake: int, max_block_size: int) -> int:
    """TF-GAN's number of blocks: ceil(max(n_real, n_fake) / max_block_size)."""
    return math.ceil(max(n_real, n_fake) / max_block_size)


def _block_bounds(n: int, blocks: int) -> np.ndarray:
    """Start of each block and the end of the last (blocks + 1,): blocks - n % blocks blocks of n // blocks
    rows, then n % blocks blocks of one more row (TF-GAN's split)."""
    small, plus_one = n // blocks, n % blocks
    sizes = [small] * (blocks - plus_one) + [small + 1] * plus_one
    return np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)


def _tf_gan_blocks(n_real: int, n_fake: int, max_block_size: int) -> List[Subset]:
    blocks = tf_gan_block_count(n_real, n_fake, max_block_size)
    real, fake = _block_bounds(n_real, blocks), _block_bounds(n_fake, blocks)
    return [(np.arange(real[i], real[i + 1]), np.arange(fake[i], fake[i + 1])) for i in range(blocks)]


def check_subset_sizes(n_real: int, n_fake: int, mode: str, subsets: int, subset_size: int) -> None:
    """ValueError naming the argument when the samples cannot give `mode` its subsets: a random-subset mode
    needs subset_size >= 2 rows (the unbiased MMD² pairs distinct rows) and at least subset_size rows in
    each set; "tf-gan" needs at least 2 rows of each set in every block."""
    try:
        whole_number(subset_size, "subset_size", 2)
    except ValueError as error:
        raise ValueError(f"{error} (the unbiased MMD² needs 2 rows)") from None
    if mode == "tf-gan":
        blocks = tf_gan_block_count(n_real, n_fake, subset_size)
        for name, n in (("real_feats", n_real), ("fake_feats", n_fake)):
            if n // blocks < 2:
                raise ValueError(
                    f"mode='tf-gan' splits both sets into {blocks} blocks (ceil(max({n_real}, {n_fake}) / "
                    f"subset_size={subset_size})), which leaves fewer than 2 rows of {name} ({n} rows) in a "
                    f"block; use a larger subset_size or more samples"
                )
        return
    try:
        whole_number(subsets, "subsets")
    except ValueError as error:
        raise ValueError(f"{error} (or None for the exact estimate)") from None
    check_request("subsets", int(subsets), 8)
    for name, n in (("real_feats", n_real), ("fake_feats", n_fake)):
        if n < subset_size:
            raise ValueError(
                f"subset_size={subset_size} is larger than the {n} samples of {name} (real_feats has {n_real}, "
                f"fake_feats {n_fake}); pass a subset_size <= {min(n_real, n_fake)} or subsets=None for the "
                f"exact estimate over all pairs"
            )
