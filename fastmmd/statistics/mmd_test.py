"""mmd_test: the two-sample permutation test with the MMD² statistic, every permutation in one fused pass.

The pool Z = [x; y] (N = n + m rows) is relabelled `permutations` times; the statistic of every relabelling
(and of the observed labels) is a quadratic form of its label weights with K(Z, Z) (derivation in
fastmmd.formulas.permutations), so one fused product K̃(Z, Z) @ [W | 1] (N × (P + 2) columns) gives them
all: O(N²·(d + P)) work, O(N·(d + P)) memory, no N×N matrix.
"""
from __future__ import annotations

from typing import NamedTuple

import torch

from fastmmd.backends import select_backend
from fastmmd.common.arrays import as_tensors
from fastmmd.common.validation import (
    check_choice,
    check_finite,
    check_pair,
    check_precision,
    check_request,
    check_seed,
    whole_number,
)
from fastmmd.formulas.permutations import (
    PERMUTATION_ESTIMATORS,
    check_labels,
    columns_per_pass,
    observed_labels,
    permutation_label_chunks,
    permutation_labels,
)
from fastmmd.kernels import resolve_kernel
from fastmmd.kernels.views import is_view_kernel, view_terms
from fastmmd.ops.numerics import frame_for
from fastmmd.statistics.relabelled import relabelled_statistics

__all__ = ["TestResult", "mmd_test", "mmd2_of_relabellings", "permutation_labels", "ALTERNATIVES"]

ALTERNATIVES = ("greater", "less", "two-sided")
# Null statistics within TIE_ULPS · eps(dtype) · max(typical |k|, largest |statistic|) of the observed one
# count as ties (as in scipy's permutation_test): the observed labels and a relabelling that repeats them give
# the same statistic up to the order of the float32 sums, and a tie must not turn into a rejection.
TIE_ULPS = 64


class TestResult(NamedTuple):
    """statistic: MMD² of (x, y) (0-dim float64: numpy for numpy inputs, else a tensor); p_value: the
    permutation p-value with the +1 correction (0-dim float64, same kind); null_samples: the statistic of
    each random relabelling (permutations,) float64."""

    __test__ = False  # not a pytest test class, whatever its name

    statistic: object
    p_value: object
    null_samples: object


def _prepare(x, y, kernel, estimator, backend, precision):
    """Checks shared by the public functions: -> (x, y, pool in its frame, the frame (its kernel), chosen
    backend, output kind)."""
    (x, y), output = as_tensors(x=x, y=y)
    kernel = resolve_kernel(kernel)
    check_choice("estimator", estimator, PERMUTATION_ESTIMATORS)
    check_precision(precision)
    check_pair(x, y, estimator)
    check_finite(x, "x")  # a NaN statistic would compare as neither >= nor <=: a silent rejection
    check_finite(y, "y")
    pool = torch.cat([x.detach(), y.detach()])
    chosen = select_backend(backend, pool, pool, kernel, None, precision, op="kernel_matmul")
    frame = frame_for(kernel, pool)
    return x, y, frame.apply(pool), frame, chosen, output


def mmd_test(x, y, kernel="gaussian", permutations=1000, seed=0, alternative="greater", estimator="unbiased",
             backend="auto", precision="highest") -> TestResult:
    """Permutation test of P = Q for x (n, d) ~ P and y (m, d) ~ Q with the MMD² statistic.

    Args:
        x, y: tensors or numpy arrays (same d, dtype, device, finite); n, m >= 2 for the unbiased estimator.
        kernel: a `fastmmd.kernels.Kernel` or a name, e.g. `Gaussian(bandwidth=median_bandwidth(x, y))`, or
            a learned one (a `fastmmd.DeepKernel`, learnable parameters): its current values, each term's
            statistics from the same relabellings, weighted (docs/learned_kernels.md).
        permutations: the number P of random relabellings (the pool [x; y] shuffled by `torch.randperm`
            from a CPU torch.Generator seeded with `seed`; `permutation_labels(n, m, P, seed)` gives them).
        alternative: "greater" (default: MMD² larger than under the null, the usual test),
            p = (1 + #{null >= statistic}) / (1 + P); "less": p = (1 + #{null <= statistic}) / (1 + P);
            "two-sided": min(1, 2·min(p_greater, p_less)). Null statistics equal to the observed one up to
            rounding (within 64 ulp of the larger of the typical |k| and the largest |statistic|) count as
            ties, on the side of not rejecting.
        estimator: "unbiased" (MMD²_u) or "biased" (the V-statistic) for the statistic.
        backend: "auto", "triton", "cpu" or "reference" (one with the kernel_matmul op).
        precision: "highest", "tf32", "bf16" (GPU).

    Returns TestResult(statistic, p_value, null_samples): the statistic of the observed labels comes from the
    same fused pass as the null samples (it equals `fastmmd.mmd2(x, y, kernel, estimator)` up to rounding).
    Memory: O(N·d) plus the relabellings of one pass (weights and products of at most 256 MiB; more
    permutations take more passes) plus 8 bytes per permutation; a request whose null samples alone exceed
    2 GiB is refused before any work.
    """
    permutations = whole_number(permutations, "permutations")
    check_request("permutations", permutations, 8)
    seed = check_seed(seed)
    check_choice("alternative", alternative, ALTERNATIVES)
    if is_view_kernel(kernel):  # a learned kernel: Σ_t w_t × the statistics of term t, same relabellings
        (x, y), output = as_tensors(x=x, y=y)
        check_pair(x, y, estimator)
        check_finite(x, "x")
        check_finite(y, "y")
        with torch.no_grad():
            terms = [(float(t.weight), t.views, t.kernel) for t in view_terms(kernel, x.detach(), y.detach())]
    else:
        terms = [(1.0, (x, y), kernel)]
    values = scale = None
    for weight, (tx, ty), term_kernel in terms:
        tx, ty, pool, frame, chosen, output = _prepare(tx, ty, term_kernel, estimator, backend, precision)
        part, part_scale = _all_statistics(pool, tx.shape[0], ty.shape[0], frame.kernel, estimator, chosen,
                                           precision, permutations, seed)
        tolerance_unit = TIE_ULPS * torch.finfo(pool.dtype).eps
        part, part_scale = weight * frame.unscale(part), abs(weight) * frame.unscale(part_scale)
        values = part if values is None else values + part
        scale = part_scale if scale is None else scale + part_scale
    statistic, null = values[0], values[1:]
    tolerance = tolerance_unit * torch.maximum(scale, values.abs().max())
    p_value = permutation_p_value(statistic, null, alternative, tolerance)
    return TestResult(output(statistic), output(p_value), output(null))


def _all_statistics(pool: torch.Tensor, n: int, m: int, kernel, estimator: str, chosen, precision: str,
                    permutations: int, seed: int):
    """(statistics (1 + P,) float64: the observed labels' first, then the relabellings', the typical |k|) of the
    pool in its frame, in passes of `columns_per_pass` relabellings."""
    per_pass = columns_per_pass(n + m, pool.dtype)
    values, scales = [], []
    with torch.no_grad():
        for index, labels in enumerate(permutation_label_chunks(n, m, permutations, seed, per_pass, pool.device)):
            if index == 0:
                labels = torch.cat([observed_labels(n, m, pool.device), labels], dim=1)
            part, scale = relabelled_statistics(pool, labels, n, kernel, estimator, chosen, precision)
            values.append(part)
            scales.append(scale)
    return torch.cat(values), scales[0]


def permutation_p_value(statistic: torch.Tensor, null: torch.Tensor, alternative: str,
                        tolerance: torch.Tensor) -> torch.Tensor:
    """p-value (0-dim float64) of `statistic` against the null samples (P,) with the +1 correction."""
    count = null.shape[0]
    greater = (1 + (null >= statistic - tolerance).sum()).to(torch.float64) / (1 + count)
    less = (1 + (null <= statistic + tolerance).sum()).to(torch.float64) / (1 + count)
    if alternative == "greater":
        return greater
    if alternative == "less":
        return less
    return torch.clamp(2 * torch.minimum(greater, less), max=1.0)


def mmd2_of_relabellings(x, y, labels, kernel="gaussian", estimator="unbiased", backend="auto",
                         precision="highest"):
    """MMD² of the pool [x; y] split by each column of labels, all in one fused pass.

    labels: (n + m, P) bool tensor on the samples' device; column p marks the n rows labelled x (its
    statistic is `fastmmd.mmd2(pool[labels[:, p]], pool[~labels[:, p]])`). Returns (P,) float64 (numpy for
    numpy samples). The building block of `mmd_test`, exposed to check it and for custom resampling schemes.
    """
    x, y, pool, frame, chosen, output = _prepare(x, y, kernel, estimator, backend, precision)
    check_labels(labels, x.shape[0], y.shape[0], pool.device)
    with torch.no_grad():
        values, _ = relabelled_statistics(pool, labels, x.shape[0], frame.kernel, estimator, chosen, precision)
    return output(frame.unscale(values))
