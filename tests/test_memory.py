"""The fused CPU path never holds an n×m buffer: forward + backward at n = m = 20000, d = 16 adds < 200 MB.

Measured in a fresh subprocess (so nothing else of the test session is in the way): the peak resident set
(VmHWM) is reset through /proc/self/clear_refs after a warm-up call, and the growth is VmHWM after the big
call minus VmRSS before it. A calibration allocation of a known size checks the probe itself.
(A 20000² float32 Gram matrix alone would be 1.6 GB.)
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

LIMIT_MB = 200.0
CALIBRATION_MB = 300.0

_SCRIPT = textwrap.dedent(
    r"""
    import json, sys
    import torch
    import fastmmd

    def status_kb(field):
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
        raise RuntimeError(field)

    def reset_peak():
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")

    def growth_mb(fn):
        reset_peak()
        before = status_kb("VmRSS")
        out = fn()
        return (status_kb("VmHWM") - before) / 1024.0, out

    n, d, dtype, estimator = int(sys.argv[1]), int(sys.argv[2]), getattr(torch, sys.argv[3]), sys.argv[4]
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(n, d, generator=gen, dtype=dtype).requires_grad_(True)
    y = (0.3 + 1.2 * torch.randn(n, d, generator=gen, dtype=dtype)).requires_grad_(True)
    kernel = fastmmd.Gaussian(bandwidth=[2.0, 4.0, 8.0]) + fastmmd.Linear()

    def run(a, b):
        out = fastmmd.mmd2(a, b, kernel=kernel, estimator=estimator, backend="cpu")
        ga, gb = torch.autograd.grad(out, (a, b))
        return float(out), float(ga.abs().sum() + gb.abs().sum())

    run(x[:64].detach().requires_grad_(True), y[:64].detach().requires_grad_(True))  # warm-up
    fused_mb, (value, gsum) = growth_mb(lambda: run(x, y))

    def calibration():
        block = torch.ones(int(float(sys.argv[5]) * 2**20) // 8, dtype=torch.float64)
        return float(block[-1])

    calibration_mb, _ = growth_mb(calibration)
    json.dump({"fused_mb": fused_mb, "calibration_mb": calibration_mb, "value": value, "gsum": gsum}, sys.stdout)
    """
)


def _measure(n, d, dtype, estimator):
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "2"))
    proc = subprocess.run(
        [sys.executable, "-c", _SCRIPT, str(n), str(d), dtype, estimator, str(CALIBRATION_MB)],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout)


@pytest.mark.skipif(not os.path.exists("/proc/self/clear_refs"), reason="needs Linux /proc to measure peak RSS")
def test_forward_backward_memory_at_n_20000():
    result = _measure(20000, 16, "float32", "unbiased")
    # the probe sees a known allocation
    assert CALIBRATION_MB * 0.9 <= result["calibration_mb"] <= CALIBRATION_MB * 1.5, result
    # the computation really ran
    assert result["value"] == result["value"] and result["gsum"] > 0, result
    assert result["fused_mb"] < LIMIT_MB, f"forward+backward grew the peak RSS by {result['fused_mb']:.0f} MB"
