"""MMD² of many relabellings of one pooled sample from a single fused product K̃(Z, Z) @ W (no N×N matrix).

Pool Z = [x; y] (N = n + m rows). A relabelling is a column of booleans (N,) with n entries True ("labelled
x"); its weight vector is w = a/n - b/m, with a the indicator of the True rows and b = 1 - a. K̃ is K(Z, Z)
with its diagonal set to 0, r = K̃·1 its row sums and T = 1ᵀK̃1 its total (the same for every relabelling).

Unbiased estimator (docs/mmd.md). It sums k(z_i, z_j) over pairs i ≠ j with the weight h(label_i,
label_j): h(x, x) = 1/(n(n-1)), h(y, y) = 1/(m(m-1)), h(x, y) = h(y, x) = -1/(nm). A symmetric 2×2 table
is a combination of the three forms u uᵀ, u 1ᵀ + 1 uᵀ and 1 1ᵀ of the label weights u = (1/n, -1/m), so
    MMD²_u = α·wᵀK̃w + 2β·wᵀr + γ·T,
    α = nm(N-1)(N-2) / ((n-1)(m-1)N²),  β = (m-n)(N-1) / ((n-1)(m-1)N²),  γ = (N-2) / ((n-1)(m-1)N²)
(solve the table's three entries for α, β, γ; β = 0 when n = m). The diagonal is absent from every term.
Biased estimator (V-statistic): MMD²_b = wᵀKw = wᵀK̃w + Σ_i k(z_i, z_i)·w_i².

So one fused pass of K̃ over the columns [W | 1] (N, P + 1) gives every statistic: q_p = w_pᵀ(K̃W)_p,
wᵀr = Wᵀ(K̃1); the rest is O(N·P) float64 arithmetic. Cost: N²·d kernel evaluations + 2·N²·(P + 1) FLOPs.
"""
from __future__ import annotations

from typing import Iterator, Tuple

import torch

from fastmmd.common.validation import check_request, check_seed, whole_number

__all__ = ["unbiased_coefficients", "observed_labels", "permutation_labels", "permutation_label_chunks",
           "label_weights", "check_labels", "columns_per_pass"]

PERMUTATION_ESTIMATORS = ("unbiased", "biased")
_PASS_BYTES = 2 ** 28  # the label weights and products of one fused pass: at most 256 MiB


def columns_per_pass(big_n: int, dtype: torch.dtype) -> int:
    """Relabellings per fused pass: their weights and products (N × columns each, in dtype) and labels
    (bool) within _PASS_BYTES."""
    per_column = big_n * (2 * torch.finfo(dtype).bits // 8 + 1)
    return max(1, _PASS_BYTES // per_column)


def unbiased_coefficients(n: int, m: int) -> Tuple[float, float, float]:
    """(α, β, γ) of MMD²_u = α·wᵀK̃w + 2β·wᵀr + γ·T for n points labelled x and m labelled y (n, m >= 2)."""
    big_n = n + m
    denominator = (n - 1) * (m - 1) * big_n * big_n
    alpha = n * m * (big_n - 1) * (big_n - 2) / denominator
    beta = (m - n) * (big_n - 1) / denominator
    gamma = (big_n - 2) / denominator
    return alpha, beta, gamma


def observed_labels(n: int, m: int, device=None) -> torch.Tensor:
    """The labels of the pool [x; y] as given: (N, 1) bool, the first n rows True."""
    labels = torch.zeros((n + m, 1), dtype=torch.bool, device=device)
    labels[:n] = True
    return labels


def permutation_label_chunks(n: int, m: int, permutations: int, seed: int, chunk: int,
                             device=None) -> Iterator[torch.Tensor]:
    """The relabellings of `permutation_labels`, `chunk` columns at a time: (N, ≤ chunk) bool each, in order
    (the same draws: one CPU torch.Generator seeded with `seed` over all chunks)."""
    big_n = n + m
    gen = torch.Generator().manual_seed(seed)
    for start in range(0, permutations, chunk):
        count = min(chunk, permutations - start)
        labels = torch.zeros((big_n, count), dtype=torch.bool)
        for p in range(count):
            labels[torch.randperm(big_n, generator=gen)[:n], p] = True
        yield labels.to(device)


def permutation_labels(n: int, m: int, permutations: int, seed: int = 0, device=None) -> torch.Tensor:
    """Random relabellings of the pool [x; y]: (N, permutations) bool, column p True on the first n entries
    of `torch.randperm(N)` (the p-th draw of a CPU torch.Generator seeded with `seed`). n, m >= 1;
    ValueError for a request beyond 2 GiB of labels."""
    n = whole_number(n, "n")
    m = whole_number(m, "m")
    permutations = whole_number(permutations, "permutations")
    seed = check_seed(seed)
    check_request("permutations", permutations, n + m)
    return next(permutation_label_chunks(n, m, permutations, seed, permutations, device))


def label_weights(labels: torch.Tensor, n: int, m: int, dtype: torch.dtype) -> torch.Tensor:
    """w = a/n - b/m for each column of labels (N, P) bool -> (N, P) in `dtype` (1/n and 1/m rounded once,
    to `dtype`)."""
    weights = torch.full(labels.shape, -1.0 / m, dtype=dtype, device=labels.device)
    weights[labels] = 1.0 / n
    return weights


def check_labels(labels: torch.Tensor, n: int, m: int, device: torch.device) -> None:
    """labels must be (n + m, P) bool, P >= 1, with n True entries per column, on `device`."""
    if not isinstance(labels, torch.Tensor) or labels.dtype != torch.bool or labels.dim() != 2:
        shape = tuple(labels.shape) if isinstance(labels, torch.Tensor) else type(labels).__name__
        raise ValueError(f"labels must be a 2-D bool tensor (n + m, P); got {shape}")
    if labels.shape[0] != n + m or labels.shape[1] == 0:
        raise ValueError(f"labels must have n + m = {n + m} rows and at least one column; got {tuple(labels.shape)}")
    if labels.device != device:
        raise ValueError(f"labels must be on the device of the samples ({device}); got {labels.device}")
    counts = labels.sum(0)
    if bool((counts != n).any()):
        bad = int((counts != n).nonzero()[0, 0])
        raise ValueError(f"each column of labels must mark n = {n} rows as x; column {bad} marks {int(counts[bad])}")
