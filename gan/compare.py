"""python -m gan.compare RUN [RUN ...]: a markdown table of training runs (KID at step 0 and at the end,
its fall, FID, training time) and one plot of their KID curves; with --group, the runs of one loss (and
one form of the SMMD scale) are pooled over their seeds: final KID mean ± std over the seeds, each seed's
value, and the curves' mean with a band from the lowest to the highest seed.

    python -m gan.compare runs/smmd-digits runs/wgan-gp-digits --plot kid_curves.png
    python -m gan.compare runs/gan_digits/*-seed* --group --plot kid_curves.png
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path
from typing import Dict, List

from gan.atomic import save_figure_atomically
from gan.run_files import read_metrics

__all__ = ["summarise", "run_label", "group_runs", "markdown_table", "grouped_table", "plot_curves",
           "plot_groups", "main"]

SMMD_LOSSES = ("smmd", "sn-smmd")


def run_label(config: Dict) -> str:
    """The loss, and the SMMD scale's form when it is not the default (the reference code's)."""
    loss = config["loss"]
    form = config.get("smmd_scale", "reference")
    return f"{loss} ({form} scale)" if loss in SMMD_LOSSES and form != "reference" else loss


def summarise(folder) -> Dict:
    """{"run", "label", "loss", "seed", "steps", "kid0", "kid", "kid_std", "fid", "fall", "minutes",
    "curve"} of a run folder (fid None when the run did not log it)."""
    folder = Path(folder)
    records = read_metrics(folder / "metrics.jsonl")
    evaluated = [r for r in records if "kid" in r]
    if len(evaluated) < 2:
        raise ValueError(f"{folder}: fewer than two KID evaluations in metrics.jsonl")
    config = json.loads((folder / "config.json").read_text())
    first, last = evaluated[0], evaluated[-1]
    return {"run": folder.name, "label": run_label(config), "loss": config["loss"], "seed": config.get("seed"),
            "steps": last["step"], "kid0": first["kid"], "kid": last["kid"], "kid_std": last["kid_std"],
            "fid": last.get("fid"), "fall": first["kid"] / last["kid"], "minutes": records[-1]["elapsed"] / 60,
            "curve": [(r["step"], r["kid"]) for r in evaluated]}


def group_runs(summaries: List[Dict]) -> List[Dict]:
    """Pool the runs of each label: {"label", "runs", "seeds", "steps", "kid0", "kids", "kid_mean", "kid_spread"
    (sample std over seeds; 0 for one run), "fids", "minutes", "curve_steps", "curve_mean", "curve_low",
    "curve_high"}, best mean first. The runs of a label must share their evaluation steps."""
    labels: Dict[str, List[Dict]] = {}
    for s in summaries:
        labels.setdefault(s["label"], []).append(s)
    groups = []
    for label, runs in labels.items():
        steps = [step for step, _ in runs[0]["curve"]]
        if any([step for step, _ in r["curve"]] != steps for r in runs):
            raise ValueError(f"the runs of {label} were evaluated at different steps")
        kids = [r["kid"] for r in runs]
        by_step = list(zip(*[[kid for _, kid in r["curve"]] for r in runs]))
        fids = [r["fid"] for r in runs if r["fid"] is not None]
        groups.append({"label": label, "runs": [r["run"] for r in runs], "seeds": [r["seed"] for r in runs],
                       "steps": runs[0]["steps"], "kid0": statistics.mean(r["kid0"] for r in runs), "kids": kids,
                       "kid_mean": statistics.mean(kids),
                       "kid_spread": statistics.stdev(kids) if len(kids) > 1 else 0.0, "fids": fids,
                       "minutes": statistics.mean(r["minutes"] for r in runs), "curve_steps": steps,
                       "curve_mean": [statistics.mean(v) for v in by_step], "curve_low": [min(v) for v in by_step],
                       "curve_high": [max(v) for v in by_step]})
    return sorted(groups, key=lambda g: g["kid_mean"])


def markdown_table(summaries: List[Dict]) -> str:
    lines = ["| run | loss | generator steps | KID at step 0 | final KID ± std | fall | FID | training minutes |",
             "|---|---|---|---|---|---|---|---|"]
    for s in sorted(summaries, key=lambda s: s["kid"]):
        fid = f"{s['fid']:.2f}" if s["fid"] is not None else "–"
        lines.append(f"| {s['run']} | {s['label']} | {s['steps']} | {s['kid0']:.3f} | {s['kid']:.4f} ± "
                     f"{s['kid_std']:.4f} | {s['fall']:.1f}× | {fid} | {s['minutes']:.1f} |")
    return "\n".join(lines)


def _mean_and_spread(values: List[float], digits: int) -> str:
    if not values:
        return "–"
    spread = f" ± {statistics.stdev(values):.{digits}f}" if len(values) > 1 else ""
    return f"{statistics.mean(values):.{digits}f}{spread}"


def grouped_table(groups: List[Dict]) -> str:
    lines = ["| loss | seeds | final KID, mean ± std over seeds | each seed's final KID | fall from step 0 | "
             "final FID, mean ± std | training minutes (mean) |", "|---|---|---|---|---|---|---|"]
    for g in groups:
        each = ", ".join(f"{k:.4f}" for k in g["kids"])
        lines.append(f"| {g['label']} | {len(g['kids'])} | {_mean_and_spread(g['kids'], 4)} | {each} | "
                     f"{g['kid0'] / g['kid_mean']:.0f}× | {_mean_and_spread(g['fids'], 2)} | {g['minutes']:.1f} |")
    return "\n".join(lines)


def _axes():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.set_yscale("log")
    ax.set_xlabel("generator step")
    ax.set_ylabel("KID (exact)")
    ax.grid(True, which="both", alpha=0.3)
    return fig, ax


def plot_curves(summaries: List[Dict], path) -> None:
    fig, ax = _axes()
    for s in summaries:
        steps, kids = zip(*s["curve"])
        ax.plot(steps, kids, marker="o", ms=3, label=s["run"] if s["run"] != s["label"] else s["label"])
    ax.legend()
    save_figure_atomically(fig, path)


def plot_groups(groups: List[Dict], path) -> None:
    """Each label's mean curve over its seeds, with the band from the lowest to the highest seed."""
    fig, ax = _axes()
    for g in groups:
        line, = ax.plot(g["curve_steps"], g["curve_mean"], marker="o", ms=3,
                        label=f"{g['label']} ({len(g['kids'])} seeds)")
        if len(g["kids"]) > 1:
            ax.fill_between(g["curve_steps"], g["curve_low"], g["curve_high"], color=line.get_color(), alpha=0.2,
                            linewidth=0)
    ax.set_title("KID: mean over seeds, band from the lowest to the highest seed", fontsize=10)
    ax.legend(fontsize=8)
    save_figure_atomically(fig, path)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gan.compare", description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="run folders written by gan.train")
    parser.add_argument("--group", action="store_true",
                        help="pool the runs of each loss over their seeds (mean ± std, curves with a band)")
    parser.add_argument("--plot", default=None, help="write the KID curves of all runs to this PNG")
    args = parser.parse_args(argv)
    try:
        summaries = [summarise(folder) for folder in args.runs]
        groups = group_runs(summaries) if args.group else None
    except (OSError, ValueError, KeyError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(grouped_table(groups) if args.group else markdown_table(summaries))
    if args.plot:
        (plot_groups(groups, args.plot) if args.group else plot_curves(summaries, args.plot))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
