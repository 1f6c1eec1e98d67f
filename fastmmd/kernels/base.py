"""The kernel interface and its algebra: family codes, parameter checks, `Kernel` and `KernelSum`.

Every kernel knows its formula in torch (`gram`, `diag`), its encoding for the compiled backends
(`terms(d)`, the (T, 5) float64 table of csrc/INTERFACE.md), its form for rescaled data (`in_frame`) and
whether it is translation invariant. Kernels add (`k1 + k2`) and scale (`0.5 * k`), giving a `KernelSum` of
weighted terms. Shapes: `gram(a, b)` with a (n, d), b (m, d) gives (n, m); `diag(a, b)` with a, b (n, d)
gives (n,) (k(a_i, b_i)). Both are differentiable with finite gradients, also where two points coincide.
"""
from __future__ import annotations

import abc
import enum
import math
import numbers
from dataclasses import dataclass, field
from typing import Callable, ClassVar, Dict, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from fastmmd.kernels.geometry import PairGeometry

__all__ = ["Family", "FamilyRules", "RULES", "Kernel", "KernelSum", "TableKernel", "Params", "evaluate_terms",
           "table_rows", "register_rules", "is_learnable", "TRANSLATION_INVARIANT_FAMILIES",
           "SHIFT_INVARIANT_MMD_FAMILIES",
           "MAX_COMPILED_DEGREE"]


class Family(enum.IntEnum):
    """Kernel family codes of the compiled backends (the table in csrc/INTERFACE.md)."""

    GAUSSIAN = 0
    RATIONAL_QUADRATIC = 1
    LAPLACIAN = 2
    INVERSE_MULTIQUADRIC = 3
    ENERGY = 4
    LINEAR = 5
    POLYNOMIAL = 6
    # not a kernel: log(1 + p1 r²)(1 + p1 r²)^(-p2), of which a rational quadratic's derivative in α is made
    RATIONAL_QUADRATIC_LOG = 7
    # not a kernel: r² exp(-p1 r²), of which a Gaussian's derivative in its bandwidth is made
    GAUSSIAN_R2 = 8


TRANSLATION_INVARIANT_FAMILIES = frozenset(
    {Family.GAUSSIAN, Family.RATIONAL_QUADRATIC, Family.LAPLACIAN, Family.INVERSE_MULTIQUADRIC,
     Family.RATIONAL_QUADRATIC_LOG, Family.GAUSSIAN_R2}
)

# Families whose MMD² estimates do not change when x and y are shifted together: the translation-invariant
# kernels, and also Linear and Energy. For those two the kernel changes, but the change is f(a) + f(b) + aᵀc
# terms that cancel between the XX, YY and XY blocks of every quadratic estimator (the same weights multiply
# them), so values and gradients are those of the unshifted inputs. The fused backends centre such inputs.
SHIFT_INVARIANT_MMD_FAMILIES = TRANSLATION_INVARIANT_FAMILIES | {Family.LINEAR, Family.ENERGY}

# The largest polynomial degree of the compiled backends (C++ and Triton unroll the power; csrc checks the
# same bound, exported as MAX_POLYNOMIAL_DEGREE by every fastmmd._C_<variant>).
MAX_COMPILED_DEGREE = 64

Params = Union[float, Tuple[float, ...]]


# ----------------------------------------------------------------------------------------------------------
# Parameter checking (every error is a ValueError naming the parameter)


def _plain(name: str, value: object) -> object:
    """Tensors and numpy arrays as Python numbers / lists."""
    if isinstance(value, torch.Tensor):
        if value.requires_grad:
            raise ValueError(f"{name} must be a constant; got a tensor that requires grad (detach it)")
        return value.detach().cpu().tolist()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value


def is_learnable(value: object) -> bool:
    """Whether `value` is a learnable parameter: a tensor that requires grad."""
    return isinstance(value, torch.Tensor) and value.requires_grad


def _learnable_tensor(name: str, value: torch.Tensor, positive: bool = True) -> torch.Tensor:
    """A learnable parameter checked: a floating 0-dim or 1-D tensor of finite (positive) values."""
    if not value.is_floating_point():
        raise ValueError(f"{name} must be a floating-point tensor; got {value.dtype}")
    if value.dim() > 1 or value.numel() == 0:
        raise ValueError(f"{name} must be a 0-dim or a non-empty 1-D tensor; got shape {tuple(value.shape)}")
    values = value.detach()
    if not bool(torch.isfinite(values).all()) or (positive and not bool((values > 0).all())):
        raise ValueError(f"{name} must be finite{' and > 0' if positive else ''}; got {values.tolist()!r}")
    return value


def _real(name: str, value: object) -> float:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a real number; got {value!r}")
    out = float(value)
    if not math.isfinite(out):
        raise ValueError(f"{name} must be finite; got {value!r}")
    return out


def _positive(name: str, value: object) -> float:
    out = _real(name, _plain(name, value))
    if out <= 0:
        raise ValueError(f"{name} must be > 0; got {value!r}")
    return out


def _positive_or_sequence(name: str, value: object) -> Params:
    """A positive number, or a non-empty sequence of them (stored as a tuple)."""
    value = _plain(name, value)
    if isinstance(value, (str, bytes)):
        raise ValueError(f"{name} must be a positive number or a sequence of them; got {value!r}")
    if isinstance(value, Sequence):
        if len(value) == 0:
            raise ValueError(f"{name} must not be an empty sequence")
        return tuple(_positive(f"{name}[{i}]", v) for i, v in enumerate(value))
    return _positive(name, value)


def _as_tuple(params: Params) -> Tuple[float, ...]:
    return params if isinstance(params, tuple) else (params,)


def _check_dim(d: object) -> int:
    if isinstance(d, (bool, np.bool_)) or not isinstance(d, numbers.Integral) or d < 1:
        raise ValueError(f"d (the feature dimension) must be a positive integer; got {d!r}")
    return int(d)


def _frame_weight(c: float, power: float) -> float:
    """c**power as a finite float, else a ValueError (the kernel has no representable form in that frame)."""
    try:
        out = c ** power
    except OverflowError:
        out = math.inf
    if not (math.isfinite(out) and out > 0):
        raise ValueError(f"the kernel cannot be written for data scaled by {c:g}: a factor {c:g}^{power:g} "
                         f"is outside float64's range")
    return out


def _row(family: Family, weight: float = 1.0, p1: float = 0.0, p2: float = 0.0, p3: float = 0.0) -> list:
    return [float(family), weight, p1, p2, p3]


@dataclass(frozen=True)
class FamilyRules:
    """What the code needs of one family, as functions of a table row (weight w, p1, p2, p3):
    value: (geo, w, p1, p2, p3) -> the row's kernel values over the pairs of a PairGeometry (torch);
    derivative: (w, p1, p2, p3) -> (rows of dk/dr², rows of dk/d(aᵀb)), the derivative kernels of
        `kernel_matmul`'s backward (None: not smooth at a = b, as the kernels of |a - b|);
    at_zero (radial families): (w, p1, p2, p3) -> (g(0), g′(0)) of k = g(r²), for the scaled MMD;
    along_dot (dot-product families): (w, p1, p2, p3, t) -> (f(t), f′(t), f″(t)) of k = f(aᵀb) (tensors)."""

    family: Family
    value: Callable
    derivative: Optional[Callable] = None
    at_zero: Optional[Callable] = None
    along_dot: Optional[Callable] = None


# Every family's rules, registered by fastmmd.kernels.families.
RULES: Dict[Family, FamilyRules] = {}


def register_rules(rules: FamilyRules) -> FamilyRules:
    RULES[rules.family] = rules
    return rules


def table_rows(table: np.ndarray):
    """(rules, (w, p1, p2, p3)) for each row of a (T, 5) table."""
    for family, w, p1, p2, p3 in np.asarray(table, dtype=np.float64).reshape(-1, 5):
        yield RULES[Family(int(family))], (float(w), float(p1), float(p2), float(p3))


def evaluate_terms(table: np.ndarray, geo: PairGeometry) -> torch.Tensor:
    """The kernel of a (T, 5) table over the pairs of `geo` (a sum over its rows, in torch)."""
    return sum(rules.value(geo, *params) for rules, params in table_rows(table))


class Kernel(abc.ABC):
    """A positive-definite (or conditionally so, `Energy`) kernel k(a, b) on R^d."""

    translation_invariant: ClassVar[bool] = False

    @abc.abstractmethod
    def _rows(self, d: int) -> list:
        """The rows [family, weight, p1, p2, p3] of this kernel for feature dimension d."""

    @property
    def learnable(self) -> bool:
        """Whether some parameter is a tensor that requires grad (docs/learned_kernels.md): then `terms`
        holds its current values and only the ops that differentiate in kernel parameters accept it."""
        return bool(getattr(self, "_tensors", None))

    def learnable_tensors(self) -> Dict[str, torch.Tensor]:
        """{parameter name: the tensor given for it} of the parameters given as tensors that require grad."""
        return dict(getattr(self, "_tensors", None) or {})

    def _evaluate(self, geo: PairGeometry) -> torch.Tensor:
        """k over the pairs of `geo`, shaped like its quantities: the sum of its rows' values."""
        return evaluate_terms(self.terms(geo.dim), geo)

    @abc.abstractmethod
    def _in_frame(self, c: float, d: int) -> Kernel:
        """The kernel k′ with k′(c·a, c·b) = k(a, b) for a, b in R^d (c > 0)."""

    def in_frame(self, c: float, d: int) -> Kernel:
        """The same kernel for data multiplied by c > 0: k′(c·a, c·b) = k(a, b) (exact when c is a power of
        2, up to the rounding of the kernel's parameters). fastmmd computes in such a frame when float32
        cannot hold the data's squared norms (docs/numerics.md)."""
        c = _positive("c", c)
        return self if c == 1.0 else self._in_frame(c, _check_dim(d))

    def terms(self, d: int) -> np.ndarray:
        """The (T, 5) float64 encoding of csrc/INTERFACE.md: rows [family, weight, p1, p2, p3]."""
        return np.asarray(self._rows(_check_dim(d)), dtype=np.float64).reshape(-1, 5)

    def gram(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """The Gram matrix K[i, j] = k(a_i, b_j): a (n, d), b (m, d) -> (n, m), in a's dtype.

        When `b is a`, the diagonal distances are exactly 0 (no cancellation error on the true diagonal).
        """
        return self._evaluate(PairGeometry.all_pairs(a, b))

    def diag(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """k(a_i, b_i) for every row: a, b (n, d) -> (n,)."""
        return self._evaluate(PairGeometry.row_pairs(a, b))

    def _parts(self) -> Tuple[Tuple[float, Kernel], ...]:
        """(weight, base kernel) pairs whose weighted sum is this kernel."""
        return ((1.0, self),)

    def __add__(self, other: object) -> KernelSum:
        if not isinstance(other, Kernel):
            return NotImplemented
        return KernelSum(self._parts() + other._parts())

    def __radd__(self, other: object) -> Kernel:
        # sum([k1, k2]) starts from the integer 0.
        if isinstance(other, numbers.Number) and not isinstance(other, bool) and other == 0:
            return self
        return NotImplemented

    def __mul__(self, weight: object) -> KernelSum:
        if isinstance(weight, (Kernel, str)):
            return NotImplemented
        if is_learnable(weight):
            return KernelSum(((weight, self),))
        w = _real("weight", _plain("weight", weight))
        return KernelSum(tuple((w * v, k) for v, k in self._parts()))

    def __rmul__(self, weight: object) -> KernelSum:
        return self.__mul__(weight)


@dataclass(frozen=True)
class KernelSum(Kernel):
    """Σ_t weight_t · k_t over (weight, kernel) parts; nested sums are flattened at construction."""

    parts: Tuple[Tuple[float, Kernel], ...] = field(default=())

    def __post_init__(self):
        flat, live = [], []
        for part in self.parts:
            if not (isinstance(part, tuple) and len(part) == 2 and isinstance(part[1], Kernel)):
                raise ValueError(f"parts must be (weight, kernel) pairs; got {part!r}")
            given = part[0]
            if is_learnable(given):
                given = _learnable_tensor("weight", given, positive=False)
                if given.dim() != 0:
                    raise ValueError(f"a learnable weight must be a 0-dim tensor; got shape {tuple(given.shape)}")
                weight = float(given.detach())
            else:
                weight = _real("weight", _plain("weight", given))
            inner = part[1]._live_weights() if isinstance(part[1], KernelSum) else (None,)
            base = part[1].parts if isinstance(part[1], KernelSum) else ((1.0, part[1]),)
            for (w, k), inner_live in zip(base, inner):
                flat.append((weight * w, k))
                if is_learnable(given) or inner_live is not None:
                    live.append((given if is_learnable(given) else weight) * (w if inner_live is None else inner_live))
                else:
                    live.append(None)
        if not flat:
            raise ValueError("parts must not be empty")
        object.__setattr__(self, "parts", tuple(flat))
        object.__setattr__(self, "_weights", tuple(live))

    def _live_weights(self) -> Tuple[Optional[torch.Tensor], ...]:
        """Per part, the weight as the tensor expression it came from when it is learnable, else None."""
        return getattr(self, "_weights", (None,) * len(self.parts))

    @property
    def learnable(self) -> bool:  # type: ignore[override]
        return any(w is not None for w in self._live_weights()) or any(k.learnable for _, k in self.parts)

    def learnable_tensors(self) -> Dict[str, torch.Tensor]:
        out = {f"parts[{i}].weight": w for i, w in enumerate(self._live_weights()) if w is not None}
        for i, (_, k) in enumerate(self.parts):
            out.update({f"parts[{i}].{name}": t for name, t in k.learnable_tensors().items()})
        return out

    @property
    def translation_invariant(self) -> bool:  # type: ignore[override]
        return all(k.translation_invariant for _, k in self.parts)

    def _parts(self):
        # the learnable weights as their tensors, so that sums and multiples of this sum keep them
        return tuple((w if live is None else live, k) for (w, k), live in zip(self.parts, self._live_weights()))

    def _rows(self, d):
        rows = []
        for w, k in self.parts:
            for row in k._rows(d):
                rows.append([row[0], w * row[1], *row[2:]])
        return rows

    def _in_frame(self, c, d):
        return KernelSum(tuple((w, k._in_frame(c, d)) for w, k in self.parts))

    def __repr__(self) -> str:
        return " + ".join(repr(k) if w == 1.0 else f"{w!r} * {k!r}" for w, k in self.parts)


@dataclass(frozen=True)
class TableKernel(Kernel):
    """The kernel of a (T, 5) table as the backends receive it (csrc/INTERFACE.md): what the reference
    backend evaluates for a table (a derivative kernel, say) that no user kernel spelled out."""

    table: Tuple[Tuple[float, ...], ...]

    @classmethod
    def of(cls, table) -> "TableKernel":
        rows = np.asarray(table, dtype=np.float64).reshape(-1, 5)
        return cls(tuple(tuple(float(v) for v in row) for row in rows))

    @property
    def translation_invariant(self) -> bool:  # type: ignore[override]
        return all(int(row[0]) in TRANSLATION_INVARIANT_FAMILIES for row in self.table)

    def _rows(self, d):
        return [list(row) for row in self.table]

    def _in_frame(self, c, d):
        raise TypeError("a TableKernel has no frame: frames are taken of the kernels users pass")
