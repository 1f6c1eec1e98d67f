"""Interrupt-safe file writes: write a temporary file in the destination's folder, then rename it over the
destination (os.replace is atomic on one file system), so a reader never sees a half-written file."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Callable

import torch

__all__ = ["write_atomically", "save_torch_atomically", "write_text_atomically", "save_figure_atomically"]


def _permissions_of_a_new_file() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def write_atomically(path, write: Callable[[str], None]) -> None:
    """Call write(temporary_name), then rename the temporary file to path; the temporary file is removed
    if write fails. The file gets the permissions of a plainly created one (tempfile's are owner-only)."""
    path = Path(path)
    with tempfile.NamedTemporaryFile(dir=path.parent, delete=False, prefix=f".{path.name}.",
                                     suffix=path.suffix) as tmp:
        name = tmp.name
    try:
        write(name)
        os.chmod(name, _permissions_of_a_new_file())
        os.replace(name, path)
    finally:
        if os.path.exists(name):
            os.unlink(name)


def save_torch_atomically(obj, path) -> None:
    write_atomically(path, lambda name: torch.save(obj, name))


def write_text_atomically(path, text: str) -> None:
    write_atomically(path, lambda name: Path(name).write_text(text))


def save_figure_atomically(fig, path, dpi: int = 100) -> None:
    """A matplotlib figure as a PNG at path, then closed."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    write_atomically(path, lambda name: fig.savefig(name, format="png", dpi=dpi))
    plt.close(fig)
