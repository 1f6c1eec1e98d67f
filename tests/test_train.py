"""python -m gan.train: the files of a run, exact resumption after an interruption, clear errors, and the
same losses with the materialised reference backend as with the fused one (a convergence test)."""
from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from gan.config import build_parser
from gan.run_files import read_metrics
from gan.train import CHECKPOINT, main

TINY = ["--width", "4", "--batch-size", "16", "--eval-samples", "40", "--eval-real", "60", "--no-progress"]


def _run(out: Path, *flags) -> int:
    return main([*TINY, "--out", str(out), *flags])


def _parameters(out: Path):
    state = torch.load(out / CHECKPOINT, weights_only=True)["trainer"]
    return state["generator"], state["critic"]


def _records_without_time(out: Path):
    return [{k: v for k, v in r.items() if k != "elapsed"} for r in read_metrics(out / "metrics.jsonl")]


def _assert_same_run(a: Path, b: Path):
    for left, right in zip(_parameters(a), _parameters(b)):
        assert left.keys() == right.keys()
        for key in left:
            assert torch.equal(left[key], right[key]), key
    assert _records_without_time(a) == _records_without_time(b)


def test_help_explains_every_flag(capsys):
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(["--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for action in build_parser()._actions:
        for flag in action.option_strings:
            assert flag in text
        assert action.help
    for loss in ("smmd", "sn-smmd", "mmd-gp", "wgan-gp", "sn-gan", "fgan-js"):
        assert loss in text


def test_a_run_writes_metrics_samples_curve_and_checkpoint(tmp_path, gan_cache):
    assert _run(tmp_path, "--steps", "6", "--eval-every", "3", "--log-every", "2", "--critic-steps", "1") == 0
    records = read_metrics(tmp_path / "metrics.jsonl")
    assert [r["step"] for r in records] == [0, 2, 3, 4, 6]
    assert all(isinstance(r["step"], int) and r["lr"] == 1e-4 for r in records)
    assert [r["step"] for r in records if "kid" in r] == [0, 3, 6]
    assert all("critic_smmd2" in r and "generator_loss" in r for r in records[1:])
    for step in (0, 3, 6):
        assert (tmp_path / f"samples_{step:06d}.png").stat().st_size > 500
    assert (tmp_path / "kid_curve.png").stat().st_size > 1000
    payload = torch.load(tmp_path / CHECKPOINT, weights_only=True)
    assert payload["trainer"]["step"] == 6 and payload["config"]["loss"] == "smmd"
    assert not list(tmp_path.glob(".*"))  # no temporary file left behind


@pytest.mark.parametrize("loss", ["smmd", "mmd-gp"])
def test_resuming_makes_exactly_the_uninterrupted_run(tmp_path, gan_cache, loss):
    flags = ["--loss", loss, "--eval-every", "4", "--log-every", "1", "--checkpoint-every", "3",
             "--critic-steps", "2"]
    assert _run(tmp_path / "whole", *flags, "--steps", "8") == 0
    assert _run(tmp_path / "parts", *flags, "--steps", "4") == 0
    assert _run(tmp_path / "parts", *flags, "--steps", "8", "--resume") == 0
    _assert_same_run(tmp_path / "whole", tmp_path / "parts")


def test_a_killed_run_resumes_from_its_last_checkpoint_and_loses_nothing(tmp_path, gan_cache):
    flags = ["--eval-every", "1000", "--log-every", "1", "--checkpoint-every", "2", "--critic-steps", "1"]
    killed = tmp_path / "killed"
    process = subprocess.Popen([sys.executable, "-m", "gan.train", *TINY, "--out", str(killed), *flags,
                                "--steps", "100000"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if (killed / CHECKPOINT).exists() and len(read_metrics(killed / "metrics.jsonl")) >= 6:
                break
            time.sleep(0.2)
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait(timeout=60)
    saved = torch.load(killed / CHECKPOINT, weights_only=True)["trainer"]["step"]
    assert saved >= 2
    steps = str(saved + 3)
    assert _run(killed, *flags, "--steps", steps, "--resume") == 0
    assert _run(tmp_path / "whole", *flags, "--steps", steps) == 0
    _assert_same_run(tmp_path / "whole", killed)


def test_sigterm_stops_at_a_step_boundary_with_a_checkpoint(tmp_path, gan_cache):
    out = tmp_path / "stopped"
    process = subprocess.Popen([sys.executable, "-m", "gan.train", *TINY, "--out", str(out), "--eval-every",
                                "1000", "--log-every", "1", "--checkpoint-every", "1000", "--critic-steps", "1",
                                "--steps", "100000"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(read_metrics(out / "metrics.jsonl")) < 4 \
            if (out / "metrics.jsonl").exists() else time.monotonic() < deadline:
        time.sleep(0.2)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 0 and "--resume" in stderr
    step = torch.load(out / CHECKPOINT, weights_only=True)["trainer"]["step"]
    assert step >= 3 and read_metrics(out / "metrics.jsonl")[-1]["step"] <= step


def test_an_existing_run_is_not_overwritten_and_a_resume_keeps_its_settings(tmp_path, gan_cache, capsys):
    assert _run(tmp_path, "--steps", "1", "--critic-steps", "1") == 0
    assert _run(tmp_path, "--steps", "1", "--critic-steps", "1") == 2
    assert "--resume" in capsys.readouterr().err
    assert _run(tmp_path, "--steps", "2", "--critic-steps", "1", "--loss", "wgan-gp", "--resume") == 2
    assert "--loss differ" in capsys.readouterr().err
    assert _run(tmp_path, "--steps", "2", "--resume") == 0  # flags left at their defaults keep the saved ones
    assert torch.load(tmp_path / CHECKPOINT, weights_only=True)["config"]["critic_steps"] == 1


@pytest.mark.parametrize("dataset", ["npz:/nonexistent/images.npz", "folder:/nonexistent", "mnist"])
def test_bad_data_is_one_line_and_exit_status_2(tmp_path, dataset, capsys):
    assert _run(tmp_path, "--dataset", dataset, "--steps", "1") == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err


@pytest.mark.parametrize("loss", ["smmd", "mmd-gp"])
def test_reference_and_fused_backends_train_the_same(tmp_path, gan_cache, loss):
    """200 generator steps in float64: the losses of the materialised reference backend and of the fused
    C++ backend agree step by step."""
    flags = ["--loss", loss, "--steps", "200", "--log-every", "1", "--eval-every", "200", "--critic-steps", "1",
             "--dtype", "float64", "--width", "2", "--batch-size", "8"]
    curves = {}
    for backend in ("reference", "cpu"):
        assert _run(tmp_path / backend, *flags, "--mmd-backend", backend) == 0
        curves[backend] = [(r["critic_loss"], r["generator_loss"]) for r in read_metrics(
            tmp_path / backend / "metrics.jsonl")[1:]]
    assert len(curves["cpu"]) == 200
    torch.testing.assert_close(torch.tensor(curves["cpu"]), torch.tensor(curves["reference"]), rtol=1e-6,
                               atol=1e-9)


def test_learning_rate_adaptation_logs_its_tests(tmp_path, gan_cache):
    assert _run(tmp_path, "--steps", "12", "--critic-steps", "1", "--log-every", "1", "--eval-every", "100",
                "--lr-adapt", "--adapt-every", "1") == 0
    records = read_metrics(tmp_path / "metrics.jsonl")
    tested = [r for r in records if "lr_test_p" in r]
    assert [r["step"] for r in tested] == [11, 12]  # the first test needs 10 earlier feature sets
    assert all(0 <= r["lr_test_p"] <= 1 and r["lr_decayed"] in (0, 1) for r in tested)
    payload = torch.load(tmp_path / CHECKPOINT, weights_only=True)
    assert len(payload["adapter"]["history"]) == 10
