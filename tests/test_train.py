"""python -m gan.train: the files of a run, exact resumption after an interruption, clear errors, and the
same losses with the materialised reference backend as with the fused one (a convergence test)."""
from __future__ import annotations

import copy
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from cli_errors import assert_one_line_error, assert_parser_refuses
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


def bad_checkpoints(good: Path, folder: Path):
    """{name: path} of checkpoints gan.train and gan.evaluate must refuse with a one-line RunError: damaged
    files, a torch file without the entries, and payloads with nested entries missing or malformed."""
    folder.mkdir()
    data = good.read_bytes()
    payload = torch.load(good, weights_only=True)
    written = {}

    def payload_without(name, edit):
        changed = copy.deepcopy(payload)
        edit(changed)
        torch.save(changed, folder / name)

    (folder / "truncated.pt").write_bytes(data[:len(data) // 2])
    (folder / "empty.pt").write_bytes(b"")
    (folder / "random.pt").write_bytes(np.random.default_rng(0).bytes(4096))
    (folder / "text.pt").write_text("not a checkpoint\n")
    torch.save({"format": 2}, folder / "no_keys.pt")
    payload_without("no_generator.pt", lambda p: p["trainer"].pop("generator"))
    payload_without("no_step.pt", lambda p: p["trainer"].pop("step"))
    payload_without("foreign_generator.pt", lambda p: p["trainer"].update(generator={"w": torch.zeros(2)}))
    payload_without("no_networks.pt", lambda p: p.pop("networks"))
    for path in sorted(folder.iterdir()):
        written[path.stem] = path
    return written


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


def _metric_lines(out: Path) -> int:
    path = out / "metrics.jsonl"
    return len(read_metrics(path)) if path.exists() else 0


def _wait_for(process: subprocess.Popen, ready) -> None:
    """Wait until ready() holds for the files the training process writes, however slow the machine; fail
    with its output if the process ends first (no timer: a slow runner only waits longer)."""
    while not ready():
        if process.poll() is not None:
            output = process.stderr.read() if process.stderr is not None else ""
            raise AssertionError(f"the training process ended (status {process.returncode}) before it wrote what "
                                 f"the test waits for: {output[-2000:]}")
        time.sleep(0.2)


def test_a_killed_run_resumes_from_its_last_checkpoint_and_loses_nothing(tmp_path, gan_cache):
    flags = ["--eval-every", "1000", "--log-every", "1", "--checkpoint-every", "2", "--critic-steps", "1"]
    killed = tmp_path / "killed"
    process = subprocess.Popen([sys.executable, "-m", "gan.train", *TINY, "--out", str(killed), *flags,
                                "--steps", "100000"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for(process, lambda: (killed / CHECKPOINT).exists() and _metric_lines(killed) >= 6)
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
    _wait_for(process, lambda: _metric_lines(out) >= 4)
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


def test_a_bad_checkpoint_on_resume_is_one_line_and_exit_status_2(tmp_path, gan_cache, capsys):
    run = tmp_path / "run"
    assert _run(run, "--steps", "1", "--critic-steps", "1") == 0
    capsys.readouterr()
    good = run / CHECKPOINT
    payload = torch.load(good, weights_only=True)
    cases = bad_checkpoints(good, tmp_path / "bad")
    for name, edit in [("no_critic_optimizer", lambda p: p["trainer"].pop("critic_optimizer")),
                       ("no_metrics_bytes", lambda p: p.pop("metrics_bytes")),
                       ("bad_averages", lambda p: p["trainer"].update(averages={})),
                       ("bad_optimizer", lambda p: p["trainer"].update(critic_optimizer={"lr": 1}))]:
        changed = copy.deepcopy(payload)
        edit(changed)
        torch.save(changed, tmp_path / "bad" / f"{name}.pt")
        cases[name] = tmp_path / "bad" / f"{name}.pt"
    for name, source in cases.items():
        out = tmp_path / name
        out.mkdir()
        (out / CHECKPOINT).write_bytes(source.read_bytes())
        (out / "metrics.jsonl").write_bytes((run / "metrics.jsonl").read_bytes())
        assert _run(out, "--steps", "2", "--resume") == 2, name
        err = assert_one_line_error(capsys, str(out / CHECKPOINT), "gan.train checkpoint")
        assert "weights_only=False" not in err and "weights_only` set to `False" not in err, err
        assert (out / "metrics.jsonl").read_bytes() == (run / "metrics.jsonl").read_bytes(), name


def test_resume_without_a_checkpoint_is_an_error(tmp_path, capsys):
    assert _run(tmp_path / "new", "--steps", "1", "--resume") == 2
    assert_one_line_error(capsys, f"--resume: {tmp_path / 'new'} holds no {CHECKPOINT}; drop --resume")
    assert not (tmp_path / "new").exists()


def test_out_naming_a_file_is_one_line(tmp_path, capsys):
    (tmp_path / "file").write_text("")
    assert _run(tmp_path / "file", "--steps", "1") == 2
    assert_one_line_error(capsys, f"--out {tmp_path / 'file'} is an existing file")
    assert _run(tmp_path / "file" / "below", "--steps", "1") == 2
    assert_one_line_error(capsys, f"--out {tmp_path / 'file' / 'below'}")


@pytest.mark.parametrize("flag, value, fragment", [
    ("--lr", "inf", "finite positive number"),
    ("--lr", "nan", "finite positive number"),
    ("--lr", "0", "finite positive number"),
    ("--eval-samples", "3", "at least 4"),
    ("--eval-real", "1", "at least 4"),
    ("--steps", "ten", "integer"),
    ("--seed", str(2 ** 70), "[0, 2**63 - 2]"),
    ("--seed", "-1", "[0, 2**63 - 2]"),
])  # fmt: skip
def test_the_parser_refuses_bad_numbers_in_one_line(tmp_path, capsys, flag, value, fragment):
    assert_parser_refuses(capsys, lambda: _run(tmp_path, flag, value), "gan.train", flag, fragment)
    assert not list(tmp_path.iterdir())


def test_too_few_real_images_for_kid_is_one_line(tmp_path, gan_cache, capsys):
    np.savez(tmp_path / "three.npz", images=np.zeros((3, 8, 8), np.uint8))
    assert _run(tmp_path / "run", "--dataset", f"npz:{tmp_path / 'three.npz'}", "--steps", "1") == 2
    assert_one_line_error(capsys, "holds 3 images", "--eval-real", "at least 4")


def test_a_training_failure_is_one_line(tmp_path, gan_cache, capsys, monkeypatch):
    from gan.trainer import Trainer

    def diverge(self):
        raise FloatingPointError("the smmd loss became nan at generator step 1;\nlower --lr")

    monkeypatch.setattr(Trainer, "step", diverge)
    assert _run(tmp_path, "--steps", "2", "--critic-steps", "1") == 2
    assert_one_line_error(capsys, "error: the smmd loss became nan at generator step 1; lower --lr")
