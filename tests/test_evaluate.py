"""python -m gan.evaluate: the metrics of a checkpoint, and clear errors."""
from __future__ import annotations

import json

import pytest

from gan.evaluate import main as evaluate
from gan.train import main as train


@pytest.fixture
def checkpoint(tmp_path, gan_cache):
    assert train(["--steps", "1", "--critic-steps", "1", "--width", "4", "--batch-size", "8", "--eval-samples",
                  "20", "--eval-real", "30", "--no-progress", "--out", str(tmp_path / "run")]) == 0
    return tmp_path / "run" / "checkpoint.pt"


def test_metrics_of_a_checkpoint(checkpoint, tmp_path, capsys):
    assert evaluate(["--checkpoint", str(checkpoint), "--samples", "40", "--real", "50", "--json",
                     str(tmp_path / "metrics.json")]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == json.loads((tmp_path / "metrics.json").read_text())
    assert printed["step"] == 1 and printed["features"] == "digits-classifier" and printed["real"] == 50
    assert printed["kid"] > 0 and printed["fid"] > 0 and 1 <= printed["inception_score"] <= 10
    assert printed["kid_mode"] == "exact"


def test_subset_mode(checkpoint, capsys):
    assert evaluate(["--checkpoint", str(checkpoint), "--samples", "40", "--real", "50", "--kid-mode",
                     "torchmetrics"]) == 0
    assert json.loads(capsys.readouterr().out)["kid_mode"] == "torchmetrics"


def test_missing_checkpoint_is_one_line(tmp_path, capsys):
    assert evaluate(["--checkpoint", str(tmp_path / "none.pt")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err
