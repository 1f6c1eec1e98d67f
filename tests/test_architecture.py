"""The layout of ARCHITECTURE.md holds: each folder of fastmmd is one layer and imports point down only, gan
uses fastmmd's public API only, and the compiled backends agree with fastmmd.kernels on the family codes
and the polynomial degree limit."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

import fastmmd
from conftest import RUNNABLE_VARIANTS
from fastmmd.backends.cpu_variants import import_variant
from fastmmd.kernels import MAX_COMPILED_DEGREE, Family

ROOT = Path(__file__).resolve().parents[1]
# Bottom to top: a module may import its own layer and the ones before it.
LAYERS = ("common", "kernels", "formulas", "backends", "ops", "statistics", "distributed", "metrics", "cli")
# What gan may import from fastmmd: the package and its distributed layer (both public).
PUBLIC = ("fastmmd", "fastmmd.distributed")


def _imports(path: Path):
    """The fastmmd modules a file imports (absolute names; `from fastmmd import x` gives fastmmd.x)."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names if a.name.split(".")[0] == "fastmmd")
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "fastmmd":
            if node.module == "fastmmd":
                yield from (f"fastmmd.{a.name}" for a in node.names)
            else:
                yield node.module


def _layer(module: str):
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in LAYERS else None


def _modules():
    for path in sorted((ROOT / "fastmmd").rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        yield path, ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def test_every_module_of_fastmmd_sits_in_a_layer():
    loose = [name for path, name in _modules() if _layer(name) is None and name != "fastmmd"]
    assert loose == [], f"modules outside the layers of ARCHITECTURE.md: {loose}"


def test_imports_point_down():
    upward = []
    for path, name in _modules():
        mine = _layer(name)
        if mine is None:
            continue  # the package's __init__: the public API, above every layer
        for target in _imports(path):
            other = _layer(target)
            if other is None and target != "fastmmd" and mine != "cli":
                upward.append(f"{name} imports {target}")
            elif other is not None and LAYERS.index(other) > LAYERS.index(mine):
                upward.append(f"{name} ({mine}) imports {target} ({other})")
    assert upward == []


def test_gan_uses_the_public_api_only():
    private = [f"{path.name}: {target}" for path in sorted((ROOT / "gan").glob("*.py")) for target in _imports(path)
               if target not in PUBLIC]
    assert private == []


@pytest.mark.parametrize("variant", RUNNABLE_VARIANTS)
def test_the_compiled_backend_agrees_with_fastmmd_kernels(variant):
    ext = import_variant(variant)
    assert {f.name: int(getattr(ext, f.name)) for f in Family} == {f.name: int(f) for f in Family}
    assert ext.MAX_POLYNOMIAL_DEGREE == MAX_COMPILED_DEGREE


def test_the_public_api_is_importable_and_lists_itself():
    missing = [name for name in fastmmd.__all__ if not hasattr(fastmmd, name)]
    assert missing == []
