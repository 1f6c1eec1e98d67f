"""Learned-kernel two-sample tests on Liu et al.'s (ICML 2020) Blob and HDGM problems
(bench/two_sample_problems.py): test power against sample size for a Gaussian with the median bandwidth,
MMD-O (an optimised bandwidth) and MMD-D (their deep kernel), and the time of one kernel-training step
against the same step on materialised Gram matrices.

    python -m bench.learned_kernels power --problem blob [--sizes 10,40,100] [--trials 5] [--tests 100]
    python -m bench.learned_kernels power --problem blob --null       # Type-I error instead of power
    python -m bench.learned_kernels power --problem hdgm --sizes 500 --first-trial 3 --trials 7  # more trials
    python -m bench.learned_kernels report --problem blob               # the table and plot of the CSV
    python -m bench.learned_kernels timing [--repeats 3] [--cases hdgm:20000]
    python -m bench.learned_kernels terms [--repeats 3]              # the cost of learnable mixture terms

Protocol (theirs, with the trial count as an option): per trial, one training pair of N points per sample,
the kernel trained on all of it (full batch, Adam, 1000 steps, their learning rates and initial values), then
--tests fresh pairs of the same size tested with it (fastmmd.mmd_test: 200 permutations for MMD-D, 100 for
the others, as they do); power = the share of rejections at α = 0.05, averaged over the trials. The
objective is fastmmd.power_criterion (the unbiased variance estimate, max(Var, 1e-8)), not their
V-statistic variance (docs/learned_kernels.md). Rows go to bench/results/learned_kernels/*.csv.
"""
from __future__ import annotations

import argparse
import csv
import statistics
import sys
import time

import numpy as np
import torch

import fastmmd
from bench.records import RESULTS_DIR, collect_environment
from bench.two_sample_problems import LiuDeepKernel, MMDOKernel, blob, hdgm, latent_network, median_kernel

OUT = RESULTS_DIR / "learned_kernels"
ALPHA = 0.05
STEPS = 1000
# The paper's Blob sizes are n = 10..100 points per blob (N = 9n per sample); HDGM's n per mode (N = 2n).
DEFAULT_SIZES = {"blob": [10, 40, 100], "hdgm": [250, 500]}
HDGM_D = 10


def draw(problem: str, size: int, rng: np.random.Generator, alternative: bool):
    x, y = blob(9 * size, rng, alternative) if problem == "blob" else hdgm(size, HDGM_D, rng, alternative)
    return torch.from_numpy(x).float(), torch.from_numpy(y).float()


def train(kernel_module: torch.nn.Module, make, x, y, lr: float, steps: int = STEPS) -> float:
    """Adam on -power_criterion over the module's parameters, full batch; returns the last criterion."""
    optimizer = torch.optim.Adam(kernel_module.parameters(), lr=lr)
    criterion = torch.tensor(float("nan"))
    for _ in range(steps):
        optimizer.zero_grad()
        criterion = fastmmd.power_criterion(x, y, make())
        (-criterion).backward()
        optimizer.step()
    return float(criterion.detach())


def trained_kernel(method: str, problem: str, x, y, seed: int):
    """(the kernel to test with, permutations, final criterion or None, training seconds)."""
    torch.manual_seed(seed)
    start = time.perf_counter()
    if method == "median":
        return median_kernel(x, y), 100, None, 0.0
    if method == "mmd-o":
        if problem == "blob":  # median of the squared X-Y distances times 2^-2.1
            s = float(torch.cdist(x, y).pow(2).median()) * 2 ** -2.1
            lr = 5e-4
        else:
            s, lr = 2 * HDGM_D * float(torch.rand(())), 1e-3
        module = MMDOKernel(s)
        final = train(module, module, x, y, lr)
        bandwidth = float(torch.sqrt(module.s.detach().abs() / 2))
        return fastmmd.Gaussian(bandwidth=bandwidth), 100, final, time.perf_counter() - start
    d = x.shape[1]
    if problem == "blob":
        net = latent_network(2, 50, 50)
        module = LiuDeepKernel(net, eps_opt=float(torch.rand(()) * 1e-10), sigma_opt=float(torch.rand(()) * 0.3) ** 0.5,
                               sigma0_opt=float(torch.rand(()) * 0.002) ** 0.5)
        lr = 5e-4
    else:
        net = latent_network(d, 3 * d, 3 * d)
        module = LiuDeepKernel(net, eps_opt=float(np.log(float(torch.rand(())) * 1e-10)),
                               sigma_opt=(2 * d) ** 0.5, sigma0_opt=0.1 ** 0.5)
        lr = 5e-5
    final = train(module, lambda: module, x, y, lr)
    for p in module.parameters():
        p.requires_grad_(False)
    return module, 200, final, time.perf_counter() - start


def power_run(args) -> int:
    problem, sizes = args.problem, args.sizes or DEFAULT_SIZES[args.problem]
    env = collect_environment("cpu")
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"{'type1' if args.null else 'power'}_{problem}.csv"
    fields = ["problem", "size", "points", "method", "trial", "rejections", "tests", "rate", "final_criterion",
              "train_s", "test_s", "steps", "device", "threads", "torch", "commit", "date"]
    new = not path.exists()
    with path.open("a", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        if new:
            writer.writeheader()
        for size in sizes:
            for trial in range(args.first_trial, args.first_trial + args.trials):
                x, y = draw(problem, size, np.random.default_rng(1000 * trial + size), alternative=True)
                for method in args.methods:
                    kernel, permutations, final, train_s = trained_kernel(method, problem, x, y, seed=trial)
                    start = time.perf_counter()
                    rejections = 0
                    for k in range(args.tests):
                        tx, ty = draw(problem, size, np.random.default_rng(10 ** 6 + 1000 * k + size + trial),
                                      alternative=not args.null)
                        result = fastmmd.mmd_test(tx, ty, kernel, permutations=permutations, seed=k)
                        rejections += int(float(result.p_value) <= ALPHA)
                    row = {"problem": problem, "size": size, "points": x.shape[0], "method": method, "trial": trial,
                           "rejections": rejections, "tests": args.tests, "rate": rejections / args.tests,
                           "final_criterion": "" if final is None else f"{final:.5g}", "train_s": f"{train_s:.1f}",
                           "test_s": f"{time.perf_counter() - start:.1f}", "steps": 0 if final is None else STEPS,
                           "device": env.device, "threads": env.threads, "torch": env.torch, "commit": env.commit,
                           "date": env.date}
                    writer.writerow(row)
                    handle.flush()
                    print(f"{problem} n={size} N={x.shape[0]} {method} trial {trial}: "
                          f"{rejections}/{args.tests} rejected, train {train_s:.0f} s", flush=True)
    return 0


def _materialised_criterion(module: LiuDeepKernel, x, y, reg: float = 1e-8):
    """power_criterion's J with the three Gram matrices materialised (torch autograd)."""
    from fastmmd.formulas.moments import CrossBlock, SelfBlock, mmd2_unbiased_variance

    def off(k):
        return k - torch.diag_embed(torch.diagonal(k))

    kxx, kyy, kxy = off(module.gram(x, x)).double(), off(module.gram(y, y)).double(), module.gram(x, y).double()
    xx, yy = SelfBlock(kxx.sum(1), (kxx * kxx).sum()), SelfBlock(kyy.sum(1), (kyy * kyy).sum())
    xy = CrossBlock(kxy.sum(1), kxy.sum(0), (kxy * kxy).sum())
    value = xx.mean + yy.mean - 2 * xy.mean
    return value / torch.sqrt(torch.clamp(mmd2_unbiased_variance(xx, yy, xy), min=reg))


def _step_seconds(module, criterion, x, y, repeats: int) -> tuple:
    optimizer = torch.optim.Adam(module.parameters(), lr=1e-6)
    times, value = [], None
    for _ in range(repeats + 1):
        start = time.perf_counter()
        optimizer.zero_grad()
        value = criterion(x, y)
        (-value).backward()
        optimizer.step()
        times.append(time.perf_counter() - start)
    return statistics.median(times[1:]), float(value.detach())


TIMING_CASES = [("blob", 40), ("blob", 100), ("blob", 400), ("blob", 1000), ("hdgm", 2000), ("hdgm", 5000)]
MATERIALISED_LIMIT = 12000  # points per sample beyond which the Gram matrices and their graph exceed ~20 GB


def timing_run(args) -> int:
    env = collect_environment("cpu")
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / "step_time_cpu.csv"
    new = not path.exists()
    lines = [["problem", "N", "d", "fastmmd s", "materialised s", "materialised/fastmmd", "|ΔJ|/J"]]
    with path.open("a", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["problem", "size", "points", "impl", "step_s", "criterion",
                                                    "device", "threads", "torch", "commit", "date"])
        if new:
            writer.writeheader()
        for problem, size in args.cases or TIMING_CASES:
            x, y = draw(problem, size, np.random.default_rng(size), alternative=True)
            d = x.shape[1]
            torch.manual_seed(0)
            net = latent_network(d, 50, 50) if problem == "blob" else latent_network(d, 3 * d, 3 * d)
            module = LiuDeepKernel(net, 0.0, 0.5, 0.05 if problem == "blob" else 0.3)
            fused = _step_seconds(module, lambda a, b, k=module: fastmmd.power_criterion(a, b, k), x, y,
                                  args.repeats)
            rows = [("fastmmd", fused)]
            if x.shape[0] <= MATERIALISED_LIMIT:
                rows.append(("materialised", _step_seconds(
                    module, lambda a, b, k=module: _materialised_criterion(k, a, b), x, y, args.repeats)))
            for impl, (seconds, value) in rows:
                writer.writerow({"problem": problem, "size": size, "points": x.shape[0], "impl": impl,
                                 "step_s": f"{seconds:.4g}", "criterion": f"{value:.6g}", **{
                                     k: v for k, v in env.as_dict().items()}})
            handle.flush()
            mat = rows[1][1] if len(rows) > 1 else None
            lines.append([problem, x.shape[0], d, f"{fused[0]:.3g}", "-" if mat is None else f"{mat[0]:.3g}",
                          "-" if mat is None else f"{mat[0] / fused[0]:.2f}",
                          "-" if mat is None else f"{abs(mat[1] - fused[1]) / abs(mat[1]):.1e}"])
            print(lines[-1], flush=True)
    from bench.run import text_table

    print(f"{env.device}, {env.threads} threads, commit {env.commit}: one training step (J forward + backward + Adam)")
    print(text_table(lines))
    return 0


TERM_CASES = [(4096, 64), (4096, 512), (2048, 2048)]
MIXTURE = (0.5, 1.0, 2.0, 4.0, 8.0, 16.0)  # bandwidths in units of sqrt(d)


def _mixture_step(x, y, objective: str, learnable: bool, count: int):
    """One forward + backward of `objective` ("mmd2" or "criterion") with `count` Gaussians of MIXTURE;
    learnable: their log-bandwidths require grad (else only x does)."""
    scales = [s * x.shape[1] ** 0.5 for s in MIXTURE[:count]]

    def step():
        xg = x.clone().requires_grad_(True)
        if learnable:
            log_s = torch.tensor([float(np.log(s)) for s in scales], dtype=torch.float64, requires_grad=True)
            kernel = fastmmd.Gaussian(bandwidth=log_s.exp())
        else:
            kernel = fastmmd.Gaussian(bandwidth=scales)
        op = fastmmd.mmd2 if objective == "mmd2" else fastmmd.power_criterion
        op(xg, y, kernel).backward()
    return step


def terms_run(args) -> int:
    env = collect_environment("cpu")
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / "term_cost_cpu.csv"
    new = not path.exists()
    lines = [["objective", "n = m", "d", "constant 6 (s)", "learnable 6 (s)", "ratio", "constant 1", "learnable 1",
              "ratio"]]
    with path.open("a", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["objective", "n", "d", "bandwidths", "learnable", "step_s",
                                                    "device", "threads", "torch", "commit", "date"])
        if new:
            writer.writeheader()
        for objective in ("mmd2", "criterion"):
            for n, d in TERM_CASES:
                gen = torch.Generator().manual_seed(n + d)
                x, y = torch.randn(n, d, generator=gen), torch.randn(n, d, generator=gen) + 0.1
                times = {}
                for count in (6, 1):
                    for learnable in (False, True):
                        step = _mixture_step(x, y, objective, learnable, count)
                        step()
                        runs = []
                        for _ in range(args.repeats):
                            start = time.perf_counter()
                            step()
                            runs.append(time.perf_counter() - start)
                        times[count, learnable] = statistics.median(runs)
                        writer.writerow({"objective": objective, "n": n, "d": d, "bandwidths": count,
                                         "learnable": learnable, "step_s": f"{times[count, learnable]:.4g}",
                                         **env.as_dict()})
                handle.flush()
                lines.append([objective, n, d] + [f"{times[c, lr]:.3g}" if lr is not None else
                                                  f"{times[c, True] / times[c, False]:.2f}"
                                                  for c in (6, 1) for lr in (False, True, None)])
                print(lines[-1], flush=True)
    from bench.run import text_table

    print(f"{env.device}, {env.threads} threads, commit {env.commit}: one forward + backward, seconds")
    print(text_table(lines))
    return 0


# The only figures of the paper found in text form: MMD-D's power as paperswithcode lists it for the paper
# (Blob with 40 points per blob; HDGM, d = 10, N = 4000). Their figures' other values are in plots only.
PAPER_MMD_D = {"blob": {40: 0.985}, "hdgm": {}}
METHOD_NAMES = {"median": "Gaussian, median bandwidth", "mmd-o": "MMD-O", "mmd-d": "MMD-D"}


def summary(rows: list) -> dict:
    """{(size, method): (points, mean rate, std over trials, trials)}."""
    groups = {}
    for r in rows:
        groups.setdefault((int(r["size"]), r["method"]), []).append((int(r["points"]), float(r["rate"])))
    return {key: (v[0][0], statistics.mean(x for _, x in v), statistics.stdev(x for _, x in v) if len(v) > 1 else 0.0,
                  len(v)) for key, v in sorted(groups.items())}


def report_run(args) -> int:
    path = OUT / f"{'type1' if args.null else 'power'}_{args.problem}.csv"
    with path.open() as handle:
        rows = list(csv.DictReader(handle))
    table = summary(rows)
    methods = [m for m in METHOD_NAMES if any(k[1] == m for k in table)]
    sizes = sorted({k[0] for k in table})
    what = "Type-I error" if args.null else "power"
    print(f"| n per {'blob' if args.problem == 'blob' else 'mode'} | N per sample | "
          + " | ".join(METHOD_NAMES[m] for m in methods) + " |")
    print("|---|---|" + "---|" * len(methods))
    for size in sizes:
        cells = []
        for m in methods:
            points, mean, std, trials = table.get((size, m), (None, float("nan"), 0.0, 0))
            cells.append(f"{mean:.3f} ± {std:.3f}")
        print(f"| {size} | {table[(size, methods[0])][0]} | " + " | ".join(cells) + " |")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for m in methods:
        points = [table[(s, m)][0] for s in sizes if (s, m) in table]
        means = [table[(s, m)][1] for s in sizes if (s, m) in table]
        stds = [table[(s, m)][2] for s in sizes if (s, m) in table]
        ax.errorbar(points, means, yerr=stds, marker="o", capsize=3, label=METHOD_NAMES[m])
    reported = PAPER_MMD_D[args.problem] if not args.null else {}
    if reported:
        per = 9 if args.problem == "blob" else 2
        ax.scatter([per * s for s in reported], list(reported.values()), marker="*", s=120, color="black",
                   zorder=5, label="MMD-D, reported for the paper")
    if args.null:
        ax.axhline(ALPHA, color="gray", linestyle="--", linewidth=1)
    trials = max(v[3] for v in table.values())
    ax.set_xlabel("N (points per sample)")
    ax.set_ylabel(what)
    ax.set_title(f"{args.problem}: {what} at α = {ALPHA}, mean ± std over {trials} trials × {rows[0]['tests']} tests",
                 fontsize=9)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path.with_suffix(".png"), dpi=120)
    print(f"wrote {path.with_suffix('.png')}")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    power = sub.add_parser("power")
    power.add_argument("--problem", choices=["blob", "hdgm"], default="blob")
    power.add_argument("--sizes", type=lambda s: [int(v) for v in s.split(",")], default=None)
    power.add_argument("--trials", type=int, default=5)
    power.add_argument("--first-trial", type=int, default=0, help="the first trial's index (its seeds)")
    power.add_argument("--tests", type=int, default=100)
    power.add_argument("--methods", type=lambda s: s.split(","), default=["median", "mmd-o", "mmd-d"])
    power.add_argument("--null", action="store_true", help="both samples from P: the Type-I error")
    report = sub.add_parser("report", help="the table and plot of a power (or --null) CSV")
    report.add_argument("--problem", choices=["blob", "hdgm"], default="blob")
    report.add_argument("--null", action="store_true")
    timing = sub.add_parser("timing")
    timing.add_argument("--repeats", type=int, default=3)
    timing.add_argument("--cases", type=lambda s: [(c.split(":")[0], int(c.split(":")[1])) for c in s.split(",")],
                        default=None, help="problem:size,... (default: the paper's sizes and up to 10x them)")
    terms = sub.add_parser("terms", help="learnable Gaussian mixtures against constant ones, per step")
    terms.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    return {"power": power_run, "report": report_run, "timing": timing_run, "terms": terms_run}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
