"""Plots of a results CSV (bench/records.py): time, and peak memory, against n; log-log.

One panel per (mode, d) — rows fwd / fwd+bwd, columns d — and one line per implementation. A CSV holds
many runs: the plot takes one device (by default that of the last row), the rows of one bench (by default
the CSV's name up to its first "_": mmd2_cuda.csv -> "mmd2"; the roofline and first-call rows of the same
file are not drawn) and, for each case and implementation, the last row (optionally only rows of one
commit). Cases that ended without a time (out of memory, over the memory limit) are listed in their panel.

    python -m bench.plot bench/results/mmd2_cpu.csv          # -> bench/results/mmd2_cpu.png, ..._memory.png
    python -m bench.plot bench/results/mmd2_cuda.csv         # -> bench/results/mmd2_cuda.png, ..._memory.png
"""
from __future__ import annotations

import argparse
import textwrap
from pathlib import Path
from typing import Optional, Sequence

from bench.records import FIRST_CALL_SUFFIX, read_rows
from bench.roofline import ROOFLINE_BENCH

MODE_TITLES = {"fwd": "forward", "fwdbwd": "forward + backward", "update+compute": "metric: update + compute"}
METRICS = {"time_s": ("time (s)", ""), "peak_mem_mb": ("peak memory beyond inputs (MB)", "_memory")}
_CASE_KEYS = ("bench", "impl", "mode", "d", "n", "m", "kernel", "dtype")


def select_rows(rows: Sequence[dict], device: Optional[str] = None, commit: Optional[str] = None,
                bench: Optional[str] = None) -> list:
    """Rows of one device (default: the last row's), optionally of one bench and one commit; for each
    case and implementation only the last such row."""
    if not rows:
        return []
    device = device if device is not None else rows[-1]["device"]
    latest = {}
    for row in rows:
        if row["device"] != device or (commit is not None and row["commit"] != commit):
            continue
        if bench is not None and row["bench"] != bench:
            continue
        latest[tuple(row[k] for k in _CASE_KEYS)] = row
    return list(latest.values())


def _order(values) -> list:
    return sorted(set(values), key=lambda v: (len(v), v))  # numeric strings sort by length first


def plot_metric(rows: Sequence[dict], metric: str, out: Path, title: str) -> Path:
    """Draws ``metric`` ("time_s" or "peak_mem_mb") of ``rows`` (already selected) into ``out``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    label, _ = METRICS[metric]
    modes = [m for m in MODE_TITLES if any(r["mode"] == m for r in rows)]
    ds = _order(r["d"] for r in rows)
    impls = list(dict.fromkeys(r["impl"] for r in rows))
    fig, axes = plt.subplots(
        len(modes), len(ds), figsize=(4.2 * len(ds), 3.6 * len(modes)), squeeze=False, sharex=True
    )
    colors = {impl: f"C{i}" for i, impl in enumerate(impls)}
    for i, mode in enumerate(modes):
        for j, d in enumerate(ds):
            ax = axes[i][j]
            panel = [r for r in rows if r["mode"] == mode and r["d"] == d]
            notes = []
            for impl in impls:
                mine = sorted((r for r in panel if r["impl"] == impl), key=lambda r: int(r["n"]))
                ok = [r for r in mine if r["status"] == "ok" and r[metric] != ""]
                if ok:
                    ax.plot(
                        [int(r["n"]) for r in ok],
                        [max(float(r[metric]), 1e-3 if metric == "peak_mem_mb" else 0.0) for r in ok],
                        marker="o",
                        linestyle="-" if impl.startswith("fastmmd") else "--",
                        color=colors[impl],
                        label=impl,
                    )
                notes += [f"{impl} n={r['n']}: {r['status']}" for r in mine if r["status"] != "ok"]
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            sizes = sorted({int(r["n"]) for r in rows})
            ax.set_xticks(sizes, [str(n) for n in sizes], fontsize=8)
            ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
            ax.set_title(f"{MODE_TITLES[mode]}, d = {d}", fontsize=10)
            ax.grid(True, which="both", alpha=0.3)
            if notes:
                ax.text(0.02, 0.98, "\n".join(notes), transform=ax.transAxes, fontsize=7, va="top")
            if i == len(modes) - 1:
                ax.set_xlabel("n = m")
            if j == 0:
                ax.set_ylabel(label)
            if i == 0 and j == len(ds) - 1:
                ax.legend(fontsize=8, loc="lower right")
    # one panel is narrower than the title: wrap it at the figure's width
    fig.suptitle(textwrap.fill(title, width=max(40, int(11 * fig.get_figwidth()))), fontsize=10)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out


def default_bench(csv_path: Path, rows: Sequence[dict]) -> Optional[str]:
    """The bench a CSV's plots show: its name up to the first "_" (mmd2_cuda.csv: "mmd2") where rows have
    it, else the most frequent bench of its rows other than the roofline and the first calls."""
    benches = [r["bench"] for r in rows if r["bench"] != ROOFLINE_BENCH and not r["bench"].endswith(FIRST_CALL_SUFFIX)]
    prefix = Path(csv_path).stem.split("_")[0]
    if prefix in benches or not benches:
        return prefix
    return max(dict.fromkeys(benches), key=benches.count)


def plot_csv(csv_path: Path, out: Optional[Path] = None, device: Optional[str] = None,
             commit: Optional[str] = None, bench: Optional[str] = None) -> list:
    """Draws the time plot (``out``, default: the CSV's path with .png) and the memory plot (same name
    with _memory) of a results CSV, for the rows of ``bench`` (default: :func:`default_bench`). Returns the
    paths written (none when no row matches)."""
    csv_path = Path(csv_path)
    all_rows = read_rows(csv_path)
    bench = bench if bench is not None else default_bench(csv_path, all_rows)
    rows = select_rows(all_rows, device, commit, bench)
    if not rows:
        return []
    out = Path(out) if out is not None else csv_path.with_suffix(".png")
    commits = ", ".join(sorted({r["commit"] for r in rows}))
    dates = sorted(r["date"] for r in rows)
    threads = ", ".join(sorted({r["threads"] for r in rows}))
    kernels = ", ".join(sorted({r["kernel"] for r in rows}))
    dtypes = ", ".join(sorted({r["dtype"] for r in rows}))
    title = (
        f"{bench} ({kernels}, {dtypes}) on {rows[0]['device']}, "
        f"{threads} threads; commit {commits}; {dates[0][:10]}..{dates[-1][:10]}"
    )
    written = []
    for metric, (_, suffix) in METRICS.items():
        target = out.with_name(out.stem + suffix + out.suffix)
        written.append(plot_metric(rows, metric, target, title))
    return written


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("csv", type=Path, help="a CSV in bench/results/")
    parser.add_argument("--out", type=Path, help="the time plot's path (default: the CSV's with .png)")
    parser.add_argument("--device", help="rows of this device only (default: the last row's)")
    parser.add_argument("--commit", help="rows of this commit only")
    parser.add_argument("--bench", help="rows of this bench only (default: the CSV's name up to its first _)")
    args = parser.parse_args(argv)
    for path in plot_csv(args.csv, args.out, args.device, args.commit, args.bench):
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
