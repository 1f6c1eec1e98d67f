"""What a backend declares: the devices, dtypes, precisions, estimators and kernels it can run.

`Backend.reasons(...)` turns those declarations into the list of reasons it cannot run a given input
(empty: it can). Dispatch (`fastmmd.backends.select_backend`) relies on nothing else.
"""
from __future__ import annotations

import abc
from dataclasses import dataclass
from types import ModuleType
from typing import Callable, ClassVar, List, Optional, Tuple

import numpy as np
import torch

from fastmmd.kernels import Family, Kernel


@dataclass(frozen=True)
class Capabilities:
    """The inputs a backend accepts. `devices` holds device types ("cpu", "cuda"); None means any."""

    devices: Optional[Tuple[str, ...]]
    dtypes: Tuple[torch.dtype, ...]
    precisions: Tuple[str, ...]
    estimators: Tuple[str, ...]


class Backend(abc.ABC):
    """A way of computing the ops: what it can run (`capabilities`, `kernel_reasons`, `op_reasons`), and four
    passes with one signature on every backend. `terms` is the kernel's (T, 5) table (csrc/INTERFACE.md, a
    float64 array or its flattened list); `precision` is the public name ("highest", "tf32", "bf16"),
    `num_threads` the CPU threads (0: the default). A backend ignores what it has no use for (the CPU backend
    runs only "highest"; the GPU one has no threads to set).

    A fused backend (`fused = True`) is reached through the custom ops `fastmmd::mmd2_fused` and
    `fastmmd::kernel_matmul_fused`; the unfused reference backend is called directly, and its `mmd2` and
    `kernel_matmul` results are torch graphs that autograd differentiates to any order.
    """

    name: ClassVar[str]
    fused: ClassVar[bool]
    capabilities: ClassVar[Capabilities]

    def unavailable_reason(self) -> Optional[str]:
        """Why this backend cannot run at all in this installation (None: it can)."""
        return None

    def auto_reasons(self, x: torch.Tensor) -> List[str]:
        """Why `backend="auto"` should pass over this backend for inputs like x although it could run them
        (empty: it may take them)."""
        return []

    def kernel_reasons(self, kernel: Kernel, d: int) -> List[str]:
        """Why this backend cannot evaluate `kernel` in dimension d (empty: it can)."""
        return []

    @abc.abstractmethod
    def mmd2_with_grads(self, x: torch.Tensor, y: torch.Tensor, terms, estimator: str, need_grad: bool,
                        precision: str, num_threads: int) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(MMD², d MMD²/dx, d MMD²/dy) of x (n, d) and y (m, d) for a quadratic estimator: the value 0-dim in
        x's dtype, the gradients in the inputs' dtypes, or empty (0,) tensors without need_grad."""

    @abc.abstractmethod
    def pair_sum(self, a: torch.Tensor, b: torch.Tensor, terms, symmetric: bool, exclude_diag: bool,
                 need_grad: bool, precision: str, num_threads: int) -> tuple:
        """(S, dS/da, dS/db) of one block, S = Σ_{i,j} k(a_i, b_j) over the ordered pairs of a (n, d) and b (m, d)
        (without i = j when exclude_diag, n = m): S a 0-dim float64 tensor, the gradients in a's dtype, or None
        without need_grad. With `symmetric` (b is a) dS/da is the derivative through both arguments and dS/db
        is None. The per-block primitive of fastmmd.distributed."""

    @abc.abstractmethod
    def pair_stats(self, a: torch.Tensor, b: torch.Tensor, terms, symmetric: bool, exclude_diag: bool,
                   precision: str, num_threads: int) -> Optional[tuple]:
        """One pass giving (total, rows (n,), cols (m,) or None when symmetric, squares) of the block K(a, b)
        (rows: Σ_j k(a_i, b_j); squares: Σ k²), float64; None when this backend has no such pass (callers then
        take two kernel_matmul products)."""

    @abc.abstractmethod
    def kernel_matmul(self, a: torch.Tensor, b: torch.Tensor, v: torch.Tensor, terms, exclude_diag: bool,
                      want_sq: bool, precision: str, num_threads: int) -> Tuple[torch.Tensor, torch.Tensor]:
        """(K(a, b) @ v (n, p), row sums of K∘K (n,) or an empty (0,) tensor without want_sq) for a (n, d),
        b (m, d), v (m, p), in a's dtype; exclude_diag (n = m) leaves out the pairs i = j."""

    def op_reasons(self, op: str) -> List[str]:
        """Why this backend cannot run the op `op` ("mmd2", "kernel_matmul") at all (empty: it can)."""
        return []

    def reasons(self, x: torch.Tensor, y: torch.Tensor, kernel: Kernel, estimator: Optional[str], precision: str,
                op: str = "mmd2") -> List[str]:
        """Every reason this backend cannot run `op` for x (n, d), y (m, d) (with `estimator` for mmd2, None
        for the other ops); empty if it can."""
        missing = self.unavailable_reason()
        if missing is not None:  # the other checks may need what is missing (triton's, say)
            return [missing]
        out = list(self.op_reasons(op))
        caps = self.capabilities
        if caps.devices is not None and x.device.type not in caps.devices:
            out.append(f"inputs on {x.device}; it runs on {', '.join(caps.devices)} tensors only")
        if x.dtype not in caps.dtypes:
            dtypes = ", ".join(str(t).replace("torch.", "") for t in caps.dtypes)
            out.append(f"dtype {x.dtype} not supported (supports {dtypes})")
        if precision not in caps.precisions:
            out.append(f"precision {precision!r} not supported (supports {', '.join(map(repr, caps.precisions))})")
        if estimator is not None and estimator not in caps.estimators:
            out.append(f"estimator {estimator!r} not supported")
        out.extend(self.kernel_reasons(kernel, x.shape[1]))
        return out


class LazyImport:
    """A module imported on first use, with the reason it cannot be used when that fails.

    `get()` -> (module, None) or (None, reason). `explain(exc)` words an ImportError; `check()`, run after a
    successful import, may give another reason (e.g. no device). A plain attribute rather than
    functools.lru_cache, which torch.compile warns about when it traces dispatch.
    """

    def __init__(self, load: Callable[[], ModuleType], explain: Callable[[ImportError], str],
                 check: Callable[[], Optional[str]] = lambda: None):
        self._load, self._explain, self._check = load, explain, check
        self._result: Optional[Tuple[Optional[ModuleType], Optional[str]]] = None

    def get(self) -> Tuple[Optional[ModuleType], Optional[str]]:
        if self._result is None:
            try:
                module = self._load()
            except ImportError as exc:
                self._result = (None, self._explain(exc))
            else:
                reason = self._check()
                self._result = (None, reason) if reason else (module, None)
        return self._result

    def require(self, backend: str) -> ModuleType:
        """The module, or a RuntimeError saying why `backend` cannot run."""
        module, missing = self.get()
        if module is None:
            raise RuntimeError(f"backend {backend!r} is unavailable: {missing}")
        return module


def polynomial_degree_reasons(terms: np.ndarray, max_degree: int) -> List[str]:
    """The refusal of a kernel table (T, 5) whose polynomial degrees exceed what a backend evaluates."""
    degrees = terms[terms[:, 0] == int(Family.POLYNOMIAL), 4]
    if (degrees > max_degree).any():
        return [f"polynomial degree {int(degrees.max())} > {max_degree} not supported"]
    return []
