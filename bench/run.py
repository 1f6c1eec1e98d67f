"""Runs one op's benchmark through pytest-benchmark, appends its rows to the results CSV, prints the
ratios against the naive implementation, the peak memory, the throughput (useful FLOP/s, fraction of the
run's TF32 matmul roofline, kernel evaluations per second) and redraws the plots.

    python -m bench.run mmd2 --quick                 # smoke test, about a minute; -> results/mmd2_cpu_quick.csv
    python -m bench.run mmd2 --headline              # the two headline cases -> results/mmd2_cpu.csv
    python -m bench.run mmd2                         # the full grid            -> results/mmd2_cpu.csv
    python -m bench.run mmd2 --device cuda --bench-suite headline --max-gb 70   # -> results/mmd2_cuda.csv
    python -m bench.run mmd2 -- -k "fwdbwd and d64"  # anything after -- goes to pytest
    python -m bench.run mmd2 --from-json FILE        # convert a pytest-benchmark JSON written before
    python -m bench.run kid                          # KID: exact fused vs subsets vs materialised
    python -m bench.run mmd_test                     # permutation test: one fused pass vs a loop
    python -m bench.run metrics                      # the KID metric: fastmmd.metrics vs torchmetrics

The raw JSON of each run is kept under bench/results/raw/ (not tracked). Quick runs go to their own CSV, so
that smoke tests never mix with the figures of record.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import Optional, Sequence

if __package__ in (None, ""):  # run as a script: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.plot import plot_csv
from bench.records import REPO_ROOT, RESULTS_DIR, RUN_KEY, append_rows, first_call_bench, rows_from_benchmark_json
from bench.roofline import ROOFLINE_BENCH, matmul_rates, throughputs

BASELINES = ("naive", "naive-fp32", "torchmetrics")  # the first of these in the rows is the reference of the ratios
THROUGHPUT_BENCHES = ("mmd2",)  # bench/roofline.py counts the work of these benches only
SUITES = ("full", "quick", "headline")


def _cell(row: Optional[dict], field: str) -> str:
    if row is None:
        return "-"
    if row["status"] != "ok":
        return "oom" if row["status"].startswith("oom") else row["status"].replace("skipped: would need ", "skip>")
    if row[field] == "":
        return "-"
    return f"{float(row[field]):.3g}" if field == "time_s" else row[field]


def text_table(lines: Sequence[Sequence[str]]) -> str:
    """Right-aligned columns; the first line is the header."""
    lines = [[str(v) for v in line] for line in lines]
    widths = [max(len(line[c]) for line in lines) for c in range(len(lines[0]))]
    return "\n".join("  ".join(v.rjust(w) for v, w in zip(line, widths)) for line in lines)


def _by_case(rows: Sequence[dict]) -> dict:
    by_case: dict = {}
    for r in rows:
        by_case.setdefault((r["mode"], int(r["d"]), int(r["n"]), int(r["m"])), {})[r["impl"]] = r
    return by_case


def baseline_of(impls: Sequence[str]) -> Optional[str]:
    """The reference of the ratios among ``impls``: the first of BASELINES there, else None."""
    return next((b for b in BASELINES if b in impls), None)


def ratio_table(rows: Sequence[dict]) -> str:
    """Text table of one op's rows: per case, each implementation's median time, and baseline time /
    implementation time (> 1: faster than the naive baseline, "naive" or "naive-fp32")."""
    impls = list(dict.fromkeys(r["impl"] for r in rows))
    baseline = baseline_of(impls)
    impls = sorted(impls, key=lambda i: i != baseline)  # stable: the baseline first
    others = [i for i in impls if i != baseline] if baseline else []
    header = ["mode", "d", "n", "m"] + [f"{i} s" for i in impls] + [f"{baseline}/{i}" for i in others]
    lines = [header]
    by_case = _by_case(rows)
    for key in sorted(by_case):
        case = by_case[key]
        line = [key[0], *map(str, key[1:])] + [_cell(case.get(i), "time_s") for i in impls]
        base = case.get(baseline)
        for i in others:
            other = case.get(i)
            ok = base and other and base["status"] == other["status"] == "ok"
            line.append(f"{float(base['time_s']) / float(other['time_s']):.3g}x" if ok else "-")
        lines.append(line)
    return text_table(lines)


def memory_table(rows: Sequence[dict]) -> str:
    """Text table of one op's rows: per case, each implementation's peak memory beyond the inputs (MB)."""
    impls = list(dict.fromkeys(r["impl"] for r in rows))
    lines = [["mode", "d", "n", "m"] + [f"{i} MB" for i in impls]]
    by_case = _by_case(rows)
    for key in sorted(by_case):
        lines.append([key[0], *map(str, key[1:])] + [_cell(by_case[key].get(i), "peak_mem_mb") for i in impls])
    return text_table(lines)


def roofline_table(rows: Sequence[dict]) -> str:
    """The roofline rows (bench "matmul") as achieved TFLOP/s; empty when there are none."""
    rates = matmul_rates(rows)
    if not rates:
        return ""
    size = next(r["n"] for r in rows if r["bench"] == ROOFLINE_BENCH)
    lines = [["matmul", "TFLOP/s"]] + [[f"{impl} {size}^3", f"{rate / 1e12:.1f}"] for impl, rate in rates.items()]
    return text_table(lines)


def throughput_table(rows: Sequence[dict], bench: str) -> str:
    """Per timed row of ``bench``: useful TFLOP/s, its fraction of the TF32 matmul roofline ("-" without a
    roofline row), kernel evaluations per second, and the case's first call (compilation included) where
    it was recorded (bench/roofline.py defines the counts)."""
    first_bench = first_call_bench(bench)

    def key(r: dict) -> tuple:
        return tuple(str(r[k]) for k in ("mode", "d", "n", "m", "impl"))

    first_calls = {key(r): r for r in rows if r["bench"] == first_bench}
    lines = [["mode", "d", "n", "m", "impl", "time s", "TFLOP/s", "of TF32 roofline", "Geval/s", "first call s"]]
    for t in sorted(throughputs(rows, bench), key=lambda t: (t.row["mode"], int(t.row["d"]), int(t.row["n"]))):
        r = t.row
        first = first_calls.get(key(r))
        lines.append([
            *key(r), f"{float(r['time_s']):.3g}",
            f"{t.flops_per_s / 1e12:.3g}",
            "-" if t.roofline_fraction is None else f"{100 * t.roofline_fraction:.1f}%",
            f"{t.evaluations_per_s / 1e9:.3g}",
            "-" if first is None else _cell(first, "time_s"),
        ])  # fmt: skip
    return text_table(lines)


def report(rows: Sequence[dict], op: str) -> str:
    """What a run prints: the ratio and memory tables of ``op``'s rows, the roofline, the throughput (mmd2),
    and the op's own side-by-side table (``side_by_side`` of its bench file, where it has one)."""
    mine = [r for r in rows if r["bench"] == op]
    parts = []
    if mine:
        parts += [ratio_table(mine), "peak memory beyond the inputs:\n" + memory_table(mine)]
    roofline = roofline_table(rows)
    if roofline:
        parts.append("roofline (torch.matmul, median time):\n" + roofline)
    if op in THROUGHPUT_BENCHES and any(r["status"] == "ok" for r in mine):
        parts.append("throughput (useful work / median time):\n" + throughput_table(rows, op))
    extra = side_by_side(rows, op)
    if extra:
        parts.append(extra)
    return "\n\n".join(parts)


def side_by_side(rows: Sequence[dict], op: str) -> str:
    """The op's own comparison table: `side_by_side(rows)` of bench/bench_<op>.py where it defines one."""
    module = importlib.import_module(f"bench.bench_{op}")
    table = getattr(module, "side_by_side", None)
    return table(rows) if table is not None else ""


def have_matplotlib() -> bool:
    return importlib.util.find_spec("matplotlib") is not None


def pytest_command(op: str, suite: str, device: str, max_gb: Optional[float], json_path: Path,
                   extra: Sequence[str] = ()) -> list:
    """The child pytest's command line."""
    cmd = [
        sys.executable, "-m", "pytest", f"bench/bench_{op}.py", "-p", "no:cacheprovider", "-q",
        "-rs", f"--bench-suite={suite}", f"--bench-device={device}",
        f"--benchmark-json={json_path}", "--benchmark-columns=min,median,rounds", "--benchmark-sort=name",
    ]  # fmt: skip
    if max_gb is not None:
        cmd.append(f"--bench-max-gb={max_gb}")
    return cmd + list(extra)


def run_pytest(op: str, suite: str, device: str, max_gb: Optional[float], json_path: Path,
               threads: Optional[int], extra: Sequence[str]) -> int:
    """Runs bench/bench_<op>.py in a child pytest writing ``json_path``; returns pytest's exit code."""
    cmd = pytest_command(op, suite, device, max_gb, json_path, extra)
    env = dict(os.environ)
    if threads is not None:
        env["OMP_NUM_THREADS"] = str(threads)
    print("+", " ".join(cmd), flush=True)
    return subprocess.run(cmd, cwd=REPO_ROOT, env=env).returncode


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    argv = argv[: argv.index("--")] if "--" in argv else argv
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("op", help="the op: runs bench/bench_<op>.py")
    suite = parser.add_mutually_exclusive_group()
    suite.add_argument("--quick", action="store_const", dest="suite", const="quick", help="small cases, ~1 min")
    suite.add_argument("--headline", action="store_const", dest="suite", const="headline",
                       help="only the headline cases")
    suite.add_argument("--suite", "--bench-suite", choices=SUITES, dest="suite", help="the suite (default: full)")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--max-gb", type=float,
                        help="skip cases estimated to need more memory than this (default: 8 on the CPU, "
                             "0.85 of the GPU's memory on CUDA)")
    parser.add_argument("--threads", type=int, help="OMP_NUM_THREADS for the run (default: the machine's)")
    parser.add_argument("--csv", type=Path, help="CSV to append to (default: bench/results/<op>_<device>.csv)")
    parser.add_argument("--from-json", type=Path,
                        help="convert this JSON (from bench/bench_<op>.py) instead of running; its suite and device "
                             "are used")
    parser.add_argument("--no-plot", action="store_true")
    args = parser.parse_args(argv)
    args.suite = args.suite or "full"

    returncode = 0
    if args.from_json is not None:
        json_path = args.from_json
        data = json.loads(json_path.read_text())
        args.suite, args.device = data[RUN_KEY]["suite"], data[RUN_KEY]["device"]
    else:
        stamp = datetime.now().strftime("%Y%m%dT%H%M%S")
        json_path = RESULTS_DIR / "raw" / f"{args.op}_{args.device}_{args.suite}_{stamp}.json"
        json_path.parent.mkdir(parents=True, exist_ok=True)
        returncode = run_pytest(args.op, args.suite, args.device, args.max_gb, json_path, args.threads, extra)
        if not json_path.exists():
            print(f"pytest wrote no {json_path} (exit code {returncode})", file=sys.stderr)
            return returncode or 1
        data = json.loads(json_path.read_text())

    suffix = "_quick" if args.suite == "quick" else ""
    csv_path = args.csv or RESULTS_DIR / f"{args.op}_{args.device}{suffix}.csv"
    rows = rows_from_benchmark_json(data)
    written = append_rows(csv_path, rows)
    print(f"\nappended {written} rows to {csv_path}")
    if rows:
        env = rows[0]
        print(f"{args.op} on {env['device']}, {env['threads']} threads, torch {env['torch']}, "
              f"commit {env['commit']}, {env['date']}")
        print(report(rows, args.op))
    if not args.no_plot:
        if not have_matplotlib():
            print("matplotlib is not installed: no plots (the CSV is written; draw them elsewhere with "
                  f"python -m bench.plot {csv_path})")
        else:
            for path in plot_csv(csv_path, bench=args.op):
                print(f"wrote {path}")
    return returncode


if __name__ == "__main__":
    sys.exit(main())
