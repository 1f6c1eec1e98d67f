"""python -m gan.evaluate: the metrics of a checkpoint, and clear errors."""
from __future__ import annotations

import json

import pytest

from cli_errors import assert_one_line_error, assert_parser_refuses
from gan.evaluate import main as evaluate
from gan.train import main as train
from test_train import bad_checkpoints


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
    """Subsets of --kid-subset-size (1000 by default) rows, never shrunk to fit: too small a set is an error
    naming the flag."""
    flags = ["--checkpoint", str(checkpoint), "--samples", "40", "--real", "50"]
    assert evaluate([*flags, "--kid-mode", "torchmetrics", "--kid-subset-size", "40"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["kid_mode"] == "torchmetrics" and printed["kid_subset_size"] == 40
    for mode in ("torchmetrics", "torch-fidelity", "clean-fid", "tf-gan"):
        assert evaluate([*flags, "--kid-mode", mode]) == 2
        assert_one_line_error(capsys, f"--kid-mode {mode} takes subsets of 1000", "--samples is 40",
                       "--kid-subset-size <= 40")
    assert evaluate([*flags, "--kid-mode", "clean-fid", "--kid-subset-size", "45"]) == 2
    assert_one_line_error(capsys, "subsets of 45", "--samples is 40", "pass --samples >= 45 or --kid-subset-size <= 40")
    assert evaluate(["--checkpoint", str(checkpoint), "--samples", "60", "--real", "50", "--kid-mode",
                     "clean-fid", "--kid-subset-size", "55"]) == 2
    assert_one_line_error(capsys, "subsets of 55", "--real is 50", "pass --real >= 55 or --kid-subset-size <= 50")
    assert evaluate(["--checkpoint", str(checkpoint), "--samples", "2000", "--kid-mode", "torchmetrics",
                     "--kid-subset-size", "1500"]) == 2
    assert_one_line_error(capsys, "digits holds only 1437 images; pass --kid-subset-size <= 1437")


def test_bad_checkpoints_are_one_line(checkpoint, tmp_path, capsys):
    cases = bad_checkpoints(checkpoint, tmp_path / "bad")
    for name, path in cases.items():
        assert evaluate(["--checkpoint", str(path), "--samples", "20", "--real", "30"]) == 2, name
        err = assert_one_line_error(capsys, f"{path} is not a readable gan.train checkpoint: ")
        assert "weights_only=False" not in err and "weights_only` set to `False" not in err, err
    assert evaluate(["--checkpoint", str(tmp_path / "bad")]) == 2
    assert_one_line_error(capsys, f"{tmp_path / 'bad'} is a folder, not a gan.train checkpoint")
    assert evaluate(["--checkpoint", str(checkpoint), "--samples", "20", "--real", "30", "--json",
                     str(tmp_path / "absent" / "metrics.json")]) == 2
    assert_one_line_error(capsys, f"--json {tmp_path / 'absent' / 'metrics.json'}: cannot write it")


@pytest.mark.parametrize("flag, value, fragment", [
    ("--samples", "3", "at least 4"),
    ("--real", "1", "at least 4"),
    ("--kid-subset-size", "1", "at least 2"),
    ("--samples", "many", "integer"),
])  # fmt: skip
def test_too_small_sizes_are_refused_by_the_parser(tmp_path, capsys, flag, value, fragment):
    assert_parser_refuses(capsys, lambda: evaluate(["--checkpoint", str(tmp_path / "none.pt"), flag, value]),
                          "gan.evaluate", flag, fragment)


def test_missing_checkpoint_is_one_line(tmp_path, capsys):
    assert evaluate(["--checkpoint", str(tmp_path / "none.pt")]) == 2
    assert_one_line_error(capsys, f"{tmp_path / 'none.pt'} does not exist")
