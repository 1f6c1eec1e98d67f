"""Which build of the C++ backend runs here: setup.py compiles csrc/ once per instruction-set variant
(fastmmd._C_avx512, fastmmd._C_avx2, fastmmd._C_baseline on x86-64; fastmmd._C_baseline elsewhere), and the
first variant of VARIANTS that is built and that the CPU supports is imported.

FASTMMD_CPU_ISA=<variant> in the environment asks for one variant instead (to compare them, or to rule one
out); a variant that is not built or that the CPU lacks is then an error, never a silent substitute.
"""
from __future__ import annotations

import importlib
import importlib.util
import os
from dataclasses import dataclass
from types import ModuleType
from typing import Dict, Optional, Tuple

__all__ = ["VARIANTS", "REQUIRED_FEATURES", "ENV_VARIABLE", "VariantChoice", "built_variants", "cpu_features",
           "import_variant", "choose_variant"]

# Best first.
VARIANTS = ("avx512", "avx2", "baseline")
# What the CPU (and its operating system) must support to run each variant: the flags setup.py gives it.
REQUIRED_FEATURES: Dict[str, Tuple[str, ...]] = {
    "avx512": ("avx512f", "avx512dq", "avx512bw", "avx512vl", "avx2", "fma"),
    "avx2": ("avx2", "fma"),
    "baseline": (),
}
ENV_VARIABLE = "FASTMMD_CPU_ISA"


@dataclass(frozen=True)
class VariantChoice:
    """name: the variant imported; module: its extension; requested: whether FASTMMD_CPU_ISA chose it;
    built: the variants this installation has."""

    name: str
    module: ModuleType
    requested: bool
    built: Tuple[str, ...]


def _module_name(variant: str) -> str:
    return f"fastmmd._C_{variant}"


def built_variants() -> Tuple[str, ...]:
    """The variants this installation has, best first (whether this CPU can run them or not)."""
    return tuple(v for v in VARIANTS if importlib.util.find_spec(_module_name(v)) is not None)


def import_variant(variant: str) -> ModuleType:
    """The extension of `variant`, imported without checking the CPU (the caller must: an instruction the CPU
    lacks ends the process with SIGILL)."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown CPU variant {variant!r}; valid: {', '.join(VARIANTS)}")
    return importlib.import_module(_module_name(variant))


def cpu_features() -> Dict[str, bool]:
    """{feature: supported} as the baseline build reads it (__builtin_cpu_supports); empty off x86."""
    return dict(import_variant("baseline").cpu_features())


def _missing(variant: str, features: Dict[str, bool]) -> Tuple[str, ...]:
    return tuple(f for f in REQUIRED_FEATURES[variant] if not features.get(f, False))


def choose_variant(requested: Optional[str] = None) -> VariantChoice:
    """The variant to run: `requested` (default: $FASTMMD_CPU_ISA) if given, else the best one built that
    this CPU supports. ImportError, saying why, when none can run or the requested one cannot."""
    if requested is None:
        requested = os.environ.get(ENV_VARIABLE) or None
    built = built_variants()
    if "baseline" not in built:
        raise ImportError("the C++ extension is not built (no fastmmd._C_baseline)")
    features = cpu_features()
    if requested is not None:
        if requested not in VARIANTS:
            raise ImportError(f"{ENV_VARIABLE}={requested!r} is not a variant; valid: {', '.join(VARIANTS)}")
        if requested not in built:
            raise ImportError(f"{ENV_VARIABLE}={requested!r}: that variant is not built here (built: "
                              f"{', '.join(built)})")
        missing = _missing(requested, features)
        if missing:
            raise ImportError(f"{ENV_VARIABLE}={requested!r}: this CPU lacks {', '.join(missing)}")
        return VariantChoice(requested, import_variant(requested), True, built)
    for variant in built:
        if not _missing(variant, features):
            return VariantChoice(variant, import_variant(variant), False, built)
    raise ImportError("no built variant of the C++ extension runs on this CPU")  # the baseline always should
