"""`torchrun --nproc-per-node 2 -m gan.train` (gloo, CPU) against one process with the doubled batch: the same
parameters after a few steps (float64), the same metrics; a global batch larger than the dataset is refused
on every rank; every rank's process group is gone (its threads joined) when main returns."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from gan.run_files import read_metrics
from gan.train import CHECKPOINT, main

pytestmark = pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed is unavailable")

COMMON = ["--steps", "2", "--width", "4", "--dtype", "float64", "--eval-every", "2", "--eval-samples", "40",
          "--eval-real", "60", "--log-every", "1", "--no-progress"]
BATCH = 8
RTOL = 1e-9
TIMEOUT_S = 600
RANK_SCRIPT = Path(__file__).with_name("train_rank.py")


def _torchrun(out: Path, *flags) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
               str(RANK_SCRIPT), *COMMON, "--out", str(out), *flags]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=TIMEOUT_S)


def _networks(out: Path):
    state = torch.load(out / CHECKPOINT, weights_only=True)["trainer"]
    return {"generator": state["generator"], "critic": state["critic"]}


# smmd with the relative-test learning-rate adaptation at every step (its noise drawn on every rank),
# mmd-gp (the witness of the gathered features), wgan-gp (per-sample losses, interpolation draws).
CASES = {"smmd": ["--loss", "smmd", "--lr-adapt", "--adapt-every", "1"], "mmd-gp": ["--loss", "mmd-gp"],
         "wgan-gp": ["--loss", "wgan-gp"]}


@pytest.mark.parametrize("case", list(CASES))
def test_two_ranks_equal_one_process_with_the_doubled_batch(tmp_path, gan_cache, case, restore_num_threads):
    two = _torchrun(tmp_path / "two", *CASES[case], "--batch-size", str(BATCH))
    assert two.returncode == 0, two.stderr[-3000:]
    # gloo's worker threads still running at interpreter shutdown abort a finished run (about 1 run in 40).
    left = dict(re.findall(r"rank (\d): gloo threads after main: (\[[^\]]*\])", two.stderr))
    assert left == {"0": "[]", "1": "[]"}, two.stderr[-3000:]
    torch.set_num_threads(1)
    assert main([*COMMON, *CASES[case], "--batch-size", str(2 * BATCH), "--out", str(tmp_path / "one")]) == 0
    distributed, single = _networks(tmp_path / "two"), _networks(tmp_path / "one")
    for net in ("generator", "critic"):
        assert distributed[net].keys() == single[net].keys()
        # Relative to the network's largest parameter: a parameter that only rounding moves (the critic's
        # output bias under a translation-invariant kernel starts at 0 and gets gradients of 1e-17) differs
        # by rounding alone.
        network_scale = max(float(t.abs().max()) for t in single[net].values() if t.is_floating_point())
        for key, expected in single[net].items():
            got = distributed[net][key]
            if expected.is_floating_point():
                scale = max(float(expected.abs().max()), network_scale * 1e-3)
                assert float((got - expected).abs().max()) <= RTOL * scale, (net, key)
            else:
                assert torch.equal(got, expected), (net, key)
    records = [read_metrics(tmp_path / name / "metrics.jsonl") for name in ("two", "one")]
    assert [r["step"] for r in records[0]] == [r["step"] for r in records[1]] == [0, 1, 2]
    for got, expected in zip(*records):
        for key, value in expected.items():
            if key != "elapsed":
                assert got[key] == pytest.approx(value, rel=1e-8, abs=1e-12), key
    # Only rank 0 writes: one metrics line per step, one grid per evaluation.
    assert sorted(p.name for p in (tmp_path / "two").glob("samples_*.png")) == ["samples_000000.png",
                                                                                "samples_000002.png"]


def test_a_global_batch_larger_than_the_dataset_is_refused(tmp_path, gan_cache):
    result = _torchrun(tmp_path / "big", "--batch-size", "1000")
    assert result.returncode != 0
    assert "global batch (2 ranks × --batch-size 1000) is larger than the dataset (1437 images)" in result.stderr
