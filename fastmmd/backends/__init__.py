"""Backends and declarative dispatch.

Each backend declares what it can run (`Backend.capabilities`, `Backend.kernel_reasons`) and says why it
cannot run an input (`Backend.reasons`). `select_backend("auto", ...)` takes the first backend of
`AUTO_ORDER` with no reasons; if none can run, the RuntimeError lists every backend's reasons. There is no
fallback: the reference backend is used only when asked for by name.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

import torch

from fastmmd.backends._base import Backend, Capabilities
from fastmmd.backends.cpu import CpuBackend
from fastmmd.backends.reference import ReferenceBackend
from fastmmd.backends.triton import TritonBackend
from fastmmd.common.validation import check_choice
from fastmmd.kernels import Kernel

__all__ = [
    "Backend",
    "Capabilities",
    "BackendStatus",
    "BACKENDS",
    "AUTO_ORDER",
    "BACKEND_NAMES",
    "get_backend",
    "select_backend",
    "backend_statuses",
]

BACKENDS: Dict[str, Backend] = {b.name: b for b in (TritonBackend(), CpuBackend(), ReferenceBackend())}
AUTO_ORDER: Tuple[str, ...] = ("triton", "cpu")
BACKEND_NAMES: Tuple[str, ...] = ("auto", *BACKENDS)


@dataclass(frozen=True)
class BackendStatus:
    """Whether a backend can run in this installation, and if not, why."""

    name: str
    usable: bool
    reason: Optional[str]
    in_auto: bool
    devices: Optional[Tuple[str, ...]]


def get_backend(name: str) -> Backend:
    """The backend registered under `name` (not "auto")."""
    check_choice("backend", name, tuple(BACKENDS))
    return BACKENDS[name]


def select_backend(
    name: str, x: torch.Tensor, y: torch.Tensor, kernel: Kernel, estimator: Optional[str], precision: str,
    op: str = "mmd2",
) -> Backend:
    """The backend that runs `op` (mmd2 with `estimator`; kernel_matmul with estimator None) for x (n, d)
    and y (m, d) with `kernel`.

    A named backend that cannot run the input, or "auto" when no backend of `AUTO_ORDER` can, raises a
    RuntimeError giving the reasons.
    """
    check_choice("backend", name, BACKEND_NAMES)
    if name != "auto":
        backend = BACKENDS[name]
        reasons = backend.reasons(x, y, kernel, estimator, precision, op)
        if reasons:
            raise RuntimeError(f"backend {name!r} cannot run this input: " + "; ".join(reasons))
        return backend
    refused: List[str] = []
    for candidate in AUTO_ORDER:
        backend = BACKENDS[candidate]
        # auto_reasons first: it is cheap, and spares importing a backend that would not be taken anyway.
        reasons = backend.auto_reasons(x) or backend.reasons(x, y, kernel, estimator, precision, op)
        if not reasons:
            return BACKENDS[candidate]
        refused.append(f"  {candidate}: " + "; ".join(reasons))
    raise RuntimeError(
        "no backend can run this input (backend='auto'):\n"
        + "\n".join(refused)
        + "\nbackend='reference' runs on any device and dtype (in float64, with precision='highest'; "
        "slow: it materialises the Gram matrices)."
    )


def backend_statuses() -> List[BackendStatus]:
    """Every registered backend with whether it can run here (for `python -m fastmmd.cli.info`)."""
    out = []
    for name, backend in BACKENDS.items():
        reason = backend.unavailable_reason()
        out.append(BackendStatus(name, reason is None, reason, name in AUTO_ORDER, backend.capabilities.devices))
    return out
