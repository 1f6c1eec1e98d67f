"""`python -m fastmmd.cli.info`: the versions, threads and backends of this installation, and why a backend
cannot run here when it cannot."""
from __future__ import annotations

import os

import numpy as np
import torch

import fastmmd
from fastmmd.backends import backend_statuses


def report() -> str:
    """The report as text."""
    lines = [
        f"fastmmd {fastmmd.__version__}",
        f"torch {torch.__version__}, numpy {np.__version__}",
        f"threads: torch.get_num_threads() = {torch.get_num_threads()}, "
        f"OMP_NUM_THREADS = {os.environ.get('OMP_NUM_THREADS', '(unset)')}",
        "CUDA: " + (torch.cuda.get_device_name(0) if torch.cuda.is_available() else "not available"),
        "backends (backend='auto' tries those marked *, in order):",
    ]
    for status in backend_statuses():
        devices = ", ".join(status.devices) if status.devices else "any device"
        mark = "*" if status.in_auto else " "
        state = "usable" if status.usable else f"unavailable: {status.reason}"
        lines.append(f"  {mark} {status.name:<10} [{devices}] {state}")
    return "\n".join(lines)


if __name__ == "__main__":
    print(report())
