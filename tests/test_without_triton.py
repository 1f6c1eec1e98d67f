"""fastmmd on a machine without triton (a CPU build of torch): the triton backend reports why it is
unavailable, and everything else runs on the cpu backend with backend="auto"."""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile

import pytest

import fastmmd

SCRIPT = """
import sys
sys.modules["triton"] = None  # as if it were not installed: `import triton` raises ImportError
import torch, fastmmd
from fastmmd.backends import get_backend
reason = get_backend("triton").unavailable_reason()
assert reason is not None and "triton" in reason, reason
x, y = torch.randn(40, 5), torch.randn(30, 5) + 0.5
assert get_backend("triton").reasons(x, y, fastmmd.Gaussian(), "unbiased", "highest") == [reason]
try:
    fastmmd.mmd2(x, y, backend="triton")
except RuntimeError as error:  # the reasons, not an ImportError from the checks
    assert "triton" in str(error)
else:
    raise AssertionError("backend='triton' ran without triton")
assert torch.isfinite(fastmmd.mmd2(x, y))
assert torch.isfinite(fastmmd.kid(x.abs(), y.abs(), subsets=None).mean)
assert 0 < float(fastmmd.mmd_test(x, y, permutations=20).p_value) <= 1
assert torch.isfinite(fastmmd.mmd2_and_variance(x, y).variance)
print("ok")
"""


def test_everything_but_the_triton_backend_runs_without_triton():
    path = os.pathsep.join(filter(None, [os.path.dirname(os.path.dirname(fastmmd.__file__)),
                                         os.environ.get("PYTHONPATH")]))
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=300,
                          cwd=tempfile.gettempdir(), env={**os.environ, "PYTHONPATH": path})
    assert done.returncode == 0 and done.stdout.strip().endswith("ok"), done.stderr[-3000:]


def test_a_triton_older_than_the_backend_needs_is_named(monkeypatch):
    triton = pytest.importorskip("triton")
    from fastmmd.backends import triton as backend

    monkeypatch.setattr(triton, "__version__", "3.0.0")
    with pytest.raises(ImportError, match="triton 3.0.0 is older than 3.3"):
        backend._import_launch()
    assert backend._version("3.3.1+git0a1b") == (3, 3) and backend._version("3.10.0") == (3, 10)
