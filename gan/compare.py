"""python -m gan.compare RUN [RUN ...]: a markdown table of training runs (KID at step 0 and at the end,
its fall, training time) and one plot of their KID curves.

    python -m gan.compare runs/smmd-digits runs/wgan-gp-digits --plot kid_curves.png
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Dict, List

from gan.atomic import save_figure_atomically
from gan.run_files import read_metrics

__all__ = ["summarise", "markdown_table", "plot_curves", "main"]


def summarise(folder) -> Dict:
    """{"run", "loss", "steps", "kid0", "kid", "kid_std", "fall", "minutes"} of a run folder."""
    folder = Path(folder)
    records = read_metrics(folder / "metrics.jsonl")
    evaluated = [r for r in records if "kid" in r]
    if len(evaluated) < 2:
        raise ValueError(f"{folder}: fewer than two KID evaluations in metrics.jsonl")
    config = json.loads((folder / "config.json").read_text())
    first, last = evaluated[0], evaluated[-1]
    return {"run": folder.name, "loss": config["loss"], "steps": last["step"], "kid0": first["kid"],
            "kid": last["kid"], "kid_std": last["kid_std"], "fall": first["kid"] / last["kid"],
            "minutes": records[-1]["elapsed"] / 60, "curve": [(r["step"], r["kid"]) for r in evaluated]}


def markdown_table(summaries: List[Dict]) -> str:
    lines = ["| loss | generator steps | KID at step 0 | final KID ± std | fall | training minutes |",
             "|---|---|---|---|---|---|"]
    for s in sorted(summaries, key=lambda s: s["kid"]):
        lines.append(f"| {s['loss']} | {s['steps']} | {s['kid0']:.3f} | {s['kid']:.4f} ± {s['kid_std']:.4f} | "
                     f"{s['fall']:.1f}× | {s['minutes']:.1f} |")
    return "\n".join(lines)


def plot_curves(summaries: List[Dict], path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for s in summaries:
        steps, kids = zip(*s["curve"])
        ax.plot(steps, kids, marker="o", ms=3, label=s["loss"])
    ax.set_yscale("log")
    ax.set_xlabel("generator step")
    ax.set_ylabel("KID (exact)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    save_figure_atomically(fig, path)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gan.compare", description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="run folders written by gan.train")
    parser.add_argument("--plot", default=None, help="write the KID curves of all runs to this PNG")
    args = parser.parse_args(argv)
    try:
        summaries = [summarise(folder) for folder in args.runs]
    except (OSError, ValueError, KeyError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(markdown_table(summaries))
    if args.plot:
        plot_curves(summaries, args.plot)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
