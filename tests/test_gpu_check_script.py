"""bench/gpu_check.py, the prepared GPU run, kept working where no GPU is: its --tiny mode on the CPU under the
Triton interpreter writes every section's rows (tests skipped), and without CUDA the full run is refused on
stderr with exit 2."""
from __future__ import annotations

import csv

import pytest
import torch

from fastmmd.backends import get_backend

pytestmark = pytest.mark.skipif(get_backend("triton").unavailable_reason() is not None,
                                reason="the script times the triton backend")


@pytest.mark.skipif(torch.cuda.is_available(), reason="the tiny CPU mode; on a GPU run the script itself")
def test_tiny_run_writes_every_section(tmp_path):
    from bench.gpu_check import SCHEDULES, SMALL_D_VARIANTS, main

    assert main(["--tiny", "--skip-tests", "--out", str(tmp_path)]) == 0
    with open(tmp_path / "gpu_check.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    sections = {(r["bench"], r["impl"], r["precision"], r["mode"]) for r in rows if r["status"] == "ok"}
    for precision in ("tf32", "bf16", "highest"):
        for mode in ("fwd", "fwdbwd"):
            assert ("mmd2", "fastmmd", precision, mode) in sections
        assert ("kid", "fastmmd exact", precision, "") in sections
    assert {r["bench"] for r in rows} == {"ceiling", "mmd2", "kid"}
    # The forward's schedules at d > 256 give the value of the default schedule.
    for precision in ("tf32", "bf16"):
        base = [r for r in rows if r["case"] == "20x20x260" and r["impl"] == "fastmmd"
                and r["precision"] == precision and r["mode"] == "fwd"][0]
        schedules = [r for r in rows if r["impl"].startswith("fastmmd[p") and r["precision"] == precision]
        assert sorted(r["impl"] for r in schedules) == sorted(f"fastmmd[{s}]" for s, _ in SCHEDULES)
        for row in schedules:
            assert row["status"] == "ok", row
            assert float(row["value"]) == pytest.approx(float(base["value"]), rel=1e-5, abs=1e-7), row
        for label, _ in SMALL_D_VARIANTS:
            small = [r for r in rows if r["impl"] == f"fastmmd[{label}]" and r["precision"] == precision]
            assert len(small) == 2 and all(r["status"] == "ok" for r in small), small
        larger = [r for r in rows if r["impl"].startswith("fastmmd[chunk=") and r["precision"] == precision]
        assert [r["status"] for r in larger] == ["ok"], larger
    kid = {r["precision"]: r for r in rows if r["bench"] == "kid" and r["impl"] == "fastmmd exact"}
    assert float(kid["highest"]["rel_error"]) < 1e-5  # float32 against the float64 inputs' value
    # The log names the tile configuration of each launcher the run used (the autotuner's choices on a GPU).
    log = (tmp_path / "gpu_check.log").read_text()
    assert "configuration value_rows torch.float32 tf32 " in log and "configuration value_rows torch.bfloat16 " in log


@pytest.mark.skipif(torch.cuda.is_available(), reason="refuses only where there is no GPU")
def test_full_run_without_a_gpu_is_refused(tmp_path, capsys):
    from bench.gpu_check import main

    assert main(["--out", str(tmp_path)]) == 2
    assert "no CUDA device" in capsys.readouterr().err
