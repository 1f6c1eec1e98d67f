"""Runs one op's benchmark through pytest-benchmark, appends its rows to the results CSV, prints the
ratios against the naive implementation and redraws the plots.

    python -m bench.run mmd2 --quick                 # smoke test, about a minute; -> results/mmd2_cpu_quick.csv
    python -m bench.run mmd2 --headline              # the two headline cases -> results/mmd2_cpu.csv
    python -m bench.run mmd2                         # the full grid            -> results/mmd2_cpu.csv
    python -m bench.run mmd2 --device cuda
    python -m bench.run mmd2 -- -k "fwdbwd and d64"  # anything after -- goes to pytest
    python -m bench.run mmd2 --from-json FILE        # convert a pytest-benchmark JSON written before

The raw JSON of each run is kept under bench/results/raw/ (not tracked). Quick runs go to their own CSV, so
that smoke tests never mix with the figures of record.
"""
from __future__ import annotations

import argparse
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
from bench.records import REPO_ROOT, RESULTS_DIR, RUN_KEY, append_rows, rows_from_benchmark_json

BASELINE = "naive"


def _cell(row: Optional[dict], field: str) -> str:
    if row is None:
        return "-"
    if row["status"] != "ok":
        return "oom" if row["status"].startswith("oom") else row["status"].replace("skipped: would need ", "skip>")
    if row[field] == "":
        return "-"
    return f"{float(row[field]):.3g}" if field == "time_s" else row[field]


def ratio_table(rows: Sequence[dict]) -> str:
    """Text table of one run's rows: per case, each implementation's median time and peak memory, and
    naive time / implementation time (> 1: faster than naive)."""
    impls = sorted(dict.fromkeys(r["impl"] for r in rows), key=lambda i: i != BASELINE)  # stable: naive first
    others = [i for i in impls if i != BASELINE]
    by_case: dict = {}
    for r in rows:
        by_case.setdefault((r["mode"], int(r["d"]), int(r["n"]), int(r["m"])), {})[r["impl"]] = r
    header = ["mode", "d", "n", "m"] + [f"{i} s" for i in impls]
    header += [f"{BASELINE}/{i}" for i in others if BASELINE in impls] + [f"{i} MB" for i in impls]
    lines = [header]
    for key in sorted(by_case):
        case = by_case[key]
        line = [key[0], *map(str, key[1:])] + [_cell(case.get(i), "time_s") for i in impls]
        base = case.get(BASELINE)
        for i in others if BASELINE in impls else []:
            other = case.get(i)
            ok = base and other and base["status"] == other["status"] == "ok"
            line.append(f"{float(base['time_s']) / float(other['time_s']):.3g}x" if ok else "-")
        line += [_cell(case.get(i), "peak_mem_mb") for i in impls]
        lines.append(line)
    widths = [max(len(line[c]) for line in lines) for c in range(len(header))]
    return "\n".join("  ".join(v.rjust(w) for v, w in zip(line, widths)) for line in lines)


def run_pytest(op: str, suite: str, device: str, max_gb: float, json_path: Path, threads: Optional[int],
               extra: Sequence[str]) -> int:
    """Runs bench/bench_<op>.py in a child pytest writing ``json_path``; returns pytest's exit code."""
    cmd = [
        sys.executable, "-m", "pytest", f"bench/bench_{op}.py", "-p", "no:cacheprovider", "-q",
        "-rs", f"--bench-suite={suite}", f"--bench-device={device}", f"--bench-max-gb={max_gb}",
        f"--benchmark-json={json_path}", "--benchmark-columns=min,median,rounds", "--benchmark-sort=name",
        *extra,
    ]  # fmt: skip
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
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--max-gb", type=float, default=8.0,
                        help="skip cases estimated to need more memory than this (default: 8)")
    parser.add_argument("--threads", type=int, help="OMP_NUM_THREADS for the run (default: the machine's)")
    parser.add_argument("--csv", type=Path, help="CSV to append to (default: bench/results/<op>_<device>.csv)")
    parser.add_argument("--from-json", type=Path,
                        help="convert this JSON (from bench/bench_<op>.py) instead of running; its suite and device are used")
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
        print(ratio_table(rows))
    if not args.no_plot:
        for path in plot_csv(csv_path):
            print(f"wrote {path}")
    return returncode


if __name__ == "__main__":
    sys.exit(main())
