"""Work counts and rates of the mmd2 benchmark, and its roofline: the TF32 matmul measured in the same run.

Useful work counts each pair of points the unbiased estimator needs once: the n(n-1)/2 and m(m-1)/2
off-diagonal pairs of the symmetric XX and YY blocks and the n·m pairs of XY. Per pair:
- FLOPs: 2·d for the forward pass (the inner product, or the distance), 3 · 2·d for forward + backward
  (the forward's, plus the two gradient products, K'·Y into x and K'ᵀ·X into y, of 2·d each). Work an
  implementation does beyond that (both triangles of XX, recomputing distances in the backward pass) is not
  useful work and is not counted, so a materialising implementation reads low by design.
- kernel evaluations: one per Gaussian term, whatever the mode (the figure of merit for small d, where the
  exponentials rather than the products bound the time).

Rates are useful work / median time. The fraction of the roofline divides the useful FLOP/s by the FLOP/s
of ``torch.matmul`` of two 8192 × 8192 float32 matrices with TF32 allowed (row bench "matmul", impl
"torch-tf32"), timed the same way in the same run: 1.0 would be a kernel as busy as cuBLAS's TF32 GEMM.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional, Sequence

ROOFLINE_BENCH = "matmul"
ROOFLINE_SIZE = 8192
ROOFLINE_IMPL = "torch-tf32"  # the reference of the fraction


def pair_count(n: int, m: int) -> int:
    """Pairs the unbiased MMD² needs, each once: n(n-1)/2 + m(m-1)/2 + n·m."""
    return n * (n - 1) // 2 + m * (m - 1) // 2 + n * m


def useful_flops(mode: str, n: int, m: int, d: int) -> int:
    """FLOPs of the unbiased MMD² over ``pair_count`` pairs: 2·d per pair forward ("fwd"), 3 times that
    forward + backward ("fwdbwd")."""
    per_pass = 2 * d * pair_count(n, m)
    if mode == "fwd":
        return per_pass
    if mode == "fwdbwd":
        return 3 * per_pass
    raise ValueError(f"unknown mode {mode!r}")


def kernel_terms(kernel: str) -> int:
    """Number of terms of a kernel column such as "gaussian3" (a sum of 3 Gaussians); 1 without a count."""
    match = re.search(r"(\d+)$", kernel)
    return int(match.group(1)) if match else 1


def kernel_evaluations(n: int, m: int, terms: int) -> int:
    """Kernel terms evaluated by the unbiased MMD², each needed pair once."""
    return pair_count(n, m) * terms


def matmul_flops(n: int, m: int, k: int) -> int:
    """FLOPs of an (n × k) @ (k × m) matrix product: 2·n·m·k."""
    return 2 * n * m * k


def _ok_time(row: dict) -> Optional[float]:
    if row.get("status") != "ok" or row.get("time_s", "") == "":
        return None
    t = float(row["time_s"])
    return t if t > 0 else None


def matmul_rates(rows: Sequence[dict]) -> dict:
    """impl -> FLOP/s of the timed "matmul" rows (the last row of each impl wins)."""
    rates = {}
    for row in rows:
        t = _ok_time(row) if row["bench"] == ROOFLINE_BENCH else None
        if t is not None:
            rates[row["impl"]] = matmul_flops(int(row["n"]), int(row["m"]), int(row["d"])) / t
    return rates


@dataclass(frozen=True)
class Throughput:
    """Rates of one timed mmd2 row: useful FLOP/s, its fraction of the TF32 roofline (None without a
    roofline row), kernel evaluations per second."""

    row: dict
    flops_per_s: float
    roofline_fraction: Optional[float]
    evaluations_per_s: float


def throughputs(rows: Sequence[dict], bench: str = "mmd2") -> list:
    """One :class:`Throughput` per timed row of ``bench`` in ``rows``; the roofline is the "torch-tf32"
    matmul row among ``rows``."""
    roofline = matmul_rates(rows).get(ROOFLINE_IMPL)
    out = []
    for row in rows:
        t = _ok_time(row) if row["bench"] == bench else None
        if t is None:
            continue
        n, m, d = int(row["n"]), int(row["m"]), int(row["d"])
        flops_per_s = useful_flops(row["mode"], n, m, d) / t
        out.append(
            Throughput(
                row=row,
                flops_per_s=flops_per_s,
                roofline_fraction=None if roofline is None else flops_per_s / roofline,
                evaluations_per_s=kernel_evaluations(n, m, kernel_terms(row["kernel"])) / t,
            )
        )
    return out
