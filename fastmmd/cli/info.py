"""`python -m fastmmd.cli.info`: the versions, threads and backends of this installation, and why a backend
cannot run here when it cannot."""
from __future__ import annotations

import os

import numpy as np
import torch

import fastmmd
from fastmmd.backends import backend_statuses
from fastmmd.backends.cpu import cpu_variant
from fastmmd.backends.cpu_variants import ENV_VARIABLE


def cpu_variant_line() -> str:
    """Which build of the C++ backend runs, why, and what the CPU offers."""
    choice, reason = cpu_variant()
    if choice is None:
        return f"C++ backend: {reason}"
    how = f"forced by {ENV_VARIABLE}" if choice.requested else "the best this CPU supports"
    features = choice.module.cpu_features()
    offered = ", ".join(name for name, present in features.items() if present) or "(not read off x86)"
    return (f"C++ backend: variant {choice.name} ({how}; built: {', '.join(choice.built)}; compiled for "
            f"{', '.join(choice.module.COMPILED_FOR) or 'the default target'}); CPU offers {offered}")


def report() -> str:
    """The report as text."""
    lines = [
        f"fastmmd {fastmmd.__version__}",
        f"torch {torch.__version__}, numpy {np.__version__}",
        f"threads: torch.get_num_threads() = {torch.get_num_threads()}, "
        f"OMP_NUM_THREADS = {os.environ.get('OMP_NUM_THREADS', '(unset)')}",
        "CUDA: " + (torch.cuda.get_device_name(0) if torch.cuda.is_available() else "not available"),
        cpu_variant_line(),
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
