"""The files a training run writes in its folder: metrics.jsonl (appended line by line, cut back to the
checkpoint's length on resume), sample grids and the KID curve (PNG, written atomically)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, List

import torch

from gan.atomic import save_figure_atomically, write_atomically

__all__ = ["MetricsLog", "save_grid", "plot_kid_curve", "read_metrics"]


class MetricsLog:
    """metrics.jsonl: one JSON object per line; `size()` is the byte length to store in a checkpoint and
    `truncate(size)` drops what was logged after it (the steps a resumed run will redo)."""

    def __init__(self, path):
        self.path = Path(path)

    def size(self) -> int:
        return self.path.stat().st_size if self.path.exists() else 0

    def truncate(self, size: int) -> None:
        if self.path.exists():
            with open(self.path, "r+b") as f:
                f.truncate(size)

    def append(self, record: Dict) -> None:
        line = json.dumps(record, allow_nan=False) + "\n"
        with open(self.path, "a") as f:
            f.write(line)


def read_metrics(path) -> List[Dict]:
    """The records of a metrics.jsonl file, in order."""
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def save_grid(images: torch.Tensor, path, rows: int = 8) -> None:
    """images (N, C, H, W) in [-1, 1] as a PNG grid of `rows` per row."""
    from torchvision.utils import save_image

    grid = (images.detach().float().cpu().clamp(-1, 1) + 1) / 2
    write_atomically(path, lambda name: save_image(grid, name, nrow=rows, padding=2, format="png"))


def plot_kid_curve(records: List[Dict], path, title: str) -> None:
    """KID ± std against the generator step, log scale, from the records that have a "kid"."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = [(r["step"], r["kid"], r.get("kid_std", 0.0)) for r in records if r.get("kid") is not None]
    if not points:
        return
    steps, kids, stds = zip(*points)
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.errorbar(steps, kids, yerr=stds, marker="o", ms=3, capsize=2)
    if all(k > 0 for k in kids):
        ax.set_yscale("log")
    ax.set_xlabel("generator step")
    ax.set_ylabel("KID (exact, ± std)")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    save_figure_atomically(fig, path)
