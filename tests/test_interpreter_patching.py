"""tests/interpreter_patching.py changes only the interpreter's speed: a forward and a fused gradient (device
functions nested several deep, triton.language's own jit functions among them) give bitwise the same
numbers with Triton's own per-call patching."""
from __future__ import annotations

import os

import pytest
import torch

import fastmmd
from conftest import sample_xy
from fastmmd.backends import get_backend

if os.environ.get("TRITON_INTERPRET", "0") in ("", "0"):
    pytest.skip("the interpreter's set-up (a GPU run compiles)", allow_module_level=True)
if get_backend("triton").unavailable_reason() is not None:
    pytest.skip(f"triton backend unavailable: {get_backend('triton').unavailable_reason()}", allow_module_level=True)

from triton.runtime import interpreter  # noqa: E402 (after the skips)


def _value_and_grads(x, y, kernel, precision):
    xg, yg = x.clone().requires_grad_(True), y.clone().requires_grad_(True)
    value = fastmmd.mmd2(xg, yg, kernel, backend="triton", precision=precision)
    value.backward()
    return value.detach(), xg.grad, yg.grad


@pytest.mark.parametrize("precision", ["highest", "tf32"])
def test_skipping_nested_patching_gives_the_same_numbers(precision, monkeypatch):
    if not getattr(interpreter._patch_lang, "skips_nested", False):
        pytest.skip("this triton's interpreter runs with its own patching (the skip did not apply)")
    x64, y64 = sample_xy(41, 35, 6, seed=3)
    x, y = x64.float(), y64.float()
    kernel = fastmmd.Gaussian(bandwidth=[1.0, 2.5]) + fastmmd.Linear()
    skipped = _value_and_grads(x, y, kernel, precision)
    monkeypatch.setattr(interpreter, "_patch_lang", interpreter._patch_lang.original)
    patched = _value_and_grads(x, y, kernel, precision)
    for a, b in zip(skipped, patched):
        assert torch.equal(a, b)
