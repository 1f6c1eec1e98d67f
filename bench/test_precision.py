"""bench/precision.py's emulation on small shapes (python -m pytest bench/test_precision.py): float32 is
near float64, truncating TF32 operands errs far more than rounding them, and the split KID with the cubic
term alone in low precision errs less than the whole KID in it."""
from __future__ import annotations

from bench.precision import run


def test_the_emulated_errors_order_as_their_operands():
    rows = run(300, 256, seed=0)
    error = {(r["difference"], r["quantity"], r["operands"]): float(r["relative_error"]) for r in rows}
    assert error["large", "kid", "fp32"] < 1e-6
    assert error["large", "kid", "tf32 truncated"] > 5 * error["large", "kid", "tf32 rounded"]
    for operands in ("tf32 rounded", "bf16 rounded"):
        assert error["large", "kid split", operands] < error["large", "kid", operands] / 5
    assert {r["quantity"] for r in rows} == {"kid", "kid split", "gaussian, norms of x",
                                             "gaussian, norms of the operands"}
