"""What the tensor cores' operand precisions do to exact KID and to a Gaussian MMD², emulated on the CPU
against float64, side by side in one run (docs/numerics.md, "Low precisions").

    python -m bench.precision                 # n = m = 3000, d = 2048 (about a minute on 2 cores)
    python -m bench.precision --n 1000        # smaller

Each path forms the inner products as the GPU would: operands with TF32's or bfloat16's mantissa (truncated,
as the tensor cores treat raw float32 bits, or rounded to nearest, as fastmmd's triton backend now feeds
them: fastmmd.common.rounding), their exact products summed in float32 (a CPU sgemm), then the kernel in
float64. For the Gaussian the squared norms |a|² are those of the original points ("norms of x") or of the
rounded ones ("norms of the operands"): only the latter make |a|² + |b|² − 2aᵀb a squared distance. The
split KID is the estimate of a path not built yet: Σ aᵀb and Σ (aᵀb)² exact from d × d Gram matrices in
float64, only Σ (aᵀb)³ from the low-precision products.

Features: ReLU-like (max(0.6 z + 0.15 + shift, 0), Inception pool-like, mean about 0.35), the second set
shifted for a large or a small KID. Rows go to bench/results/precision_emulation_cpu.csv.
"""
from __future__ import annotations

import argparse
import sys

import torch

from bench.records import RESULTS_DIR, append_rows, collect_environment
from fastmmd.common.rounding import BF16_BITS, TF32_BITS, round_mantissa, truncate_mantissa

OUT = RESULTS_DIR / "precision_emulation_cpu.csv"


def features(n: int, d: int, shift: float, generator: torch.Generator) -> torch.Tensor:
    """(n, d) float32 non-negative features; `shift` moves a random direction of the mean."""
    direction = torch.randn(d, generator=generator, dtype=torch.float64) * 0.05 * shift
    z = torch.randn(n, d, generator=generator, dtype=torch.float64) * 0.6 + 0.15 + direction
    return z.clamp_min(0.0).float()


def products(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """aᵀb of float32 operands, summed in float32, as float64 (n, m)."""
    return (a @ b.T).double()


def unbiased(kxx: torch.Tensor, kyy: torch.Tensor, kxy: torch.Tensor) -> float:
    n, m = kxx.shape[0], kyy.shape[0]
    return float((kxx.sum() - kxx.trace()) / (n * (n - 1)) + (kyy.sum() - kyy.trace()) / (m * (m - 1))
                 - 2 * kxy.mean())


def kid_of_products(sxx, syy, sxy, d: int) -> float:
    def k(s):
        return (s / d + 1.0) ** 3
    return unbiased(k(sxx), k(syy), k(sxy))


def split_kid(x64, y64, cubic, d: int) -> float:
    """KID with Σ s and Σ s² exact (float64, d × d Grams) and Σ s³ from `cubic` = {block: low-precision s}."""
    def block(a, b, s, same):
        count = a.shape[0] * b.shape[0]
        first = a.sum(0) @ b.sum(0)
        second = ((a.T @ a) * (b.T @ b)).sum()
        third = (s ** 3).sum()
        if same:
            diag = (a * a).sum(1)
            first, second, third = first - diag.sum(), second - (diag ** 2).sum(), third - (s.diagonal() ** 3).sum()
            count = a.shape[0] * (a.shape[0] - 1)
        return float((third / d ** 3 + 3 * second / d ** 2 + 3 * first / d + count) / count)
    return (block(x64, x64, cubic["xx"], True) + block(y64, y64, cubic["yy"], True)
            - 2 * block(x64, y64, cubic["xy"], False))


def gaussian_mmd2(sq_x, sq_y, sxx, syy, sxy, bandwidth: float) -> float:
    def k(sa, sb, s):
        return torch.exp(-(sa[:, None] + sb[None, :] - 2 * s).clamp_min(0) / (2 * bandwidth ** 2))
    return unbiased(k(sq_x, sq_x, sxx), k(sq_y, sq_y, syy), k(sq_x, sq_y, sxy))


OPERANDS = {
    "fp32": lambda t: t,
    "tf32 truncated": lambda t: truncate_mantissa(t, TF32_BITS),
    "tf32 rounded": lambda t: round_mantissa(t, TF32_BITS),
    "bf16 rounded": lambda t: round_mantissa(t, BF16_BITS),
}


def run(n: int, d: int, seed: int) -> list:
    generator = torch.Generator().manual_seed(seed)
    x = features(n, d, 0.0, generator)
    rows = []
    for label, shift in (("large", 1.0), ("small", 0.1)):
        y = features(n, d, shift, generator) * (1.0 + 0.02 * shift)
        x64, y64 = x.double(), y.double()
        exact_s = {"xx": x64 @ x64.T, "yy": y64 @ y64.T, "xy": x64 @ y64.T}
        exact_kid = kid_of_products(exact_s["xx"], exact_s["yy"], exact_s["xy"], d)
        sq_x, sq_y = (x64 * x64).sum(1), (y64 * y64).sum(1)
        bandwidth = float(((sq_x.mean() + sq_y.mean()) / 2) ** 0.5)  # about the distances' scale
        exact_gauss = gaussian_mmd2(sq_x, sq_y, exact_s["xx"], exact_s["yy"], exact_s["xy"], bandwidth)
        for name, operand in OPERANDS.items():
            xr, yr = operand(x), operand(y)
            s = {"xx": products(xr, xr), "yy": products(yr, yr), "xy": products(xr, yr)}
            values = {"kid": kid_of_products(s["xx"], s["yy"], s["xy"], d)}
            if name != "fp32":
                values["kid split"] = split_kid(x64, y64, s, d)
            values["gaussian, norms of x"] = gaussian_mmd2(sq_x, sq_y, s["xx"], s["yy"], s["xy"], bandwidth)
            xr64, yr64 = xr.double(), yr.double()
            values["gaussian, norms of the operands"] = gaussian_mmd2((xr64 * xr64).sum(1), (yr64 * yr64).sum(1),
                                                                      s["xx"], s["yy"], s["xy"], bandwidth)
            for quantity, value in values.items():
                exact = exact_kid if quantity.startswith("kid") else exact_gauss
                rows.append({"bench": "precision_emulation", "n": n, "m": n, "d": d, "difference": label,
                             "quantity": quantity, "operands": name, "exact": f"{exact:.9e}",
                             "relative_error": f"{abs(value - exact) / abs(exact):.3e}"})
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=3000, help="points per set (n = m)")
    parser.add_argument("--d", type=int, default=2048)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.n < 4 or args.d < 1:
        print("bench.precision: --n must be >= 4 and --d >= 1", file=sys.stderr)
        return 2
    env = collect_environment("cpu").as_dict()
    rows = [dict(row, **env) for row in run(args.n, args.d, args.seed)]
    append_rows(OUT, rows)
    width = max(len(r["quantity"]) for r in rows)
    for row in rows:
        print(f"{row['difference']:>5} {row['quantity']:<{width}}  {row['operands']:<15} "
              f"relative error {row['relative_error']}  (exact {row['exact']})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
