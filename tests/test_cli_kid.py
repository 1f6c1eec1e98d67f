"""`python -m fastmmd.cli.kid REAL FAKE`: files in, one line out; bad files and bad options give a one-line error
and exit status 2, no traceback."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import fastmmd.cli.kid as cli
from fastmmd.statistics.kid import kid

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def files(tmp_path):
    rng = np.random.default_rng(0)
    real = np.maximum(rng.standard_normal((120, 16)), 0).astype(np.float32)
    fake = np.maximum(rng.standard_normal((90, 16)) + 0.2, 0).astype(np.float32)
    np.save(tmp_path / "real.npy", real)
    np.savez(tmp_path / "fake.npz", logits=np.zeros((90, 3), np.float32), pool=fake)
    np.savez(tmp_path / "only.npz", fake)
    return tmp_path, real, fake


def run(argv, capsys):
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def expected_line(result, n, m, d):
    return cli.format_result(result, n, m, d) + "\n"


def test_subsets_in_the_default_mode(files, capsys):
    tmp, real, fake = files
    code, out, err = run([tmp / "real.npy", tmp / "only.npz", "--subsets", 5, "--subset-size", 50, "--seed", 3],
                         capsys)
    assert code == 0 and err == ""
    result = kid(real, fake, subsets=5, subset_size=50, seed=3)
    assert out == expected_line(result, 120, 90, 16)
    assert out.startswith(f"KID = {float(result.mean):.6g} ± {float(result.std):.6g}  (mode torchmetrics: 5 subsets")


def test_exact_with_an_npz_key(files, capsys):
    tmp, real, fake = files
    code, out, _ = run([tmp / "real.npy", tmp / "fake.npz", "--fake-key", "pool", "--exact", "--degree", 2], capsys)
    assert code == 0
    assert out == expected_line(kid(real, fake, subsets=None, degree=2), 120, 90, 16)
    assert "exact: unbiased MMD² over all pairs" in out


def test_tf_gan_mode_and_float64(files, capsys):
    tmp, real, fake = files
    code, out, _ = run([tmp / "real.npy", tmp / "only.npz", "--mode", "tf-gan", "--subset-size", 40, "--float64"],
                       capsys)
    assert code == 0
    result = kid(real.astype(np.float64), fake.astype(np.float64), subset_size=40, mode="tf-gan")
    assert out == expected_line(result, 120, 90, 16)
    assert "mode tf-gan: 3 blocks of at most 40, ± standard error" in out


def test_the_first_array_of_an_npz_by_default(files, capsys):
    tmp, _, _ = files
    code, _, err = run([tmp / "real.npy", tmp / "fake.npz", "--exact"], capsys)  # "logits": (90, 3)
    assert code == 2
    assert err == ("python -m fastmmd.cli.kid: error: REAL and FAKE must have the same number of features; "
                   "got REAL (120, 16) and FAKE (90, 3)\n")


def _write_bad_files(tmp):
    (tmp / "images").mkdir()
    (tmp / "garbage.npy").write_bytes(b"not an array")
    (tmp / "empty.npy").write_bytes(b"")
    (tmp / "feats.txt").write_text("1 2 3")
    (tmp / "text.npy").write_text("1 2 3\n4 5 6\n")
    (tmp / "text.npz").write_text("1 2 3\n4 5 6\n")
    with open(tmp / "npy.npz", "wb") as f:  # a .npy file named .npz
        np.save(f, np.zeros((5, 2), np.float32))
    np.save(tmp / "vector.npy", np.zeros(5))
    np.save(tmp / "ints.npy", np.zeros((5, 2), np.int64))
    np.save(tmp / "objects.npy", np.array([[1, "a"]], dtype=object), allow_pickle=True)
    np.save(tmp / "nan.npy", np.full((100, 16), np.nan, np.float32))
    np.savez(tmp / "none.npz")
    np.savez(tmp / "objects.npz", feats=np.array([[1, "a"]], dtype=object))


@pytest.mark.parametrize("fake,extra,message", [
    ("images", [], "FAKE ({tmp}/images) is a directory: computing features from a folder of images is not "
                   "available yet (the gan package will provide the Inception feature extractor)"),
    ("missing.npy", [], "FAKE ({tmp}/missing.npy) does not exist"),
    ("feats.txt", [], "FAKE ({tmp}/feats.txt) must be a .npy or .npz file of features (n, d)"),
    ("garbage.npy", [], "FAKE ({tmp}/garbage.npy) is not a .npy file (no NumPy header)"),
    ("text.npy", [], "FAKE ({tmp}/text.npy) is not a .npy file (no NumPy header)"),
    ("text.npz", [], "FAKE ({tmp}/text.npz) is not a .npz file (not a zip archive)"),
    ("npy.npz", [], "FAKE ({tmp}/npy.npz) is not a .npz file (not a zip archive)"),
    ("empty.npy", [], "FAKE ({tmp}/empty.npy) is empty"),
    ("objects.npy", [], "FAKE ({tmp}/objects.npy) holds an object array, which is refused: loading it would "
                        "run pickled code; save the features as a float array"),
    ("objects.npz", [], "FAKE ({tmp}/objects.npz): array 'feats' is an object array, which is refused: "
                        "loading it would run pickled code"),
    ("vector.npy", [], "FAKE ({tmp}/vector.npy) must hold a 2-D array (n, d) of features; got shape (5,)"),
    ("ints.npy", [], "FAKE ({tmp}/ints.npy) must hold floating-point features; got dtype int64"),
    ("none.npz", [], "FAKE ({tmp}/none.npz) holds no arrays"),
    ("fake.npz", ["--fake-key", "pool4"], "FAKE ({tmp}/fake.npz) has no array 'pool4'; it holds logits, pool"),
    ("only.npz", ["--subset-size", 100], "--subset-size=100 is larger than the 90 samples of FAKE"),
    ("nan.npy", [], "FAKE must be finite; row 0 holds NaN or inf"),
    ("only.npz", ["--subsets", 0], "subsets must be a positive integer"),
])  # fmt: skip
def test_bad_input_gives_one_line_and_status_2(files, capsys, fake, extra, message):
    tmp, _, _ = files
    _write_bad_files(tmp)
    code, out, err = run([tmp / "real.npy", tmp / fake, *extra], capsys)
    assert code == 2 and out == ""
    assert err.startswith("python -m fastmmd.cli.kid: error: ") and err.count("\n") == 1
    assert message.format(tmp=tmp) in err
    assert "allow_pickle" not in err and "pickled data" not in err


def test_bad_options_exit_with_status_2(files, capsys):
    tmp, _, _ = files
    with pytest.raises(SystemExit) as info:
        cli.main([str(tmp / "real.npy"), str(tmp / "only.npz"), "--mode", "inception"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("python -m fastmmd.cli.kid: error: argument --mode: invalid choice: 'inception'")
    assert err.count("\n") == 1


def test_the_module_runs_as_a_program_without_tracebacks(files):
    tmp, real, fake = files
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    ok = subprocess.run([sys.executable, "-m", "fastmmd.cli.kid", tmp / "real.npy", tmp / "only.npz", "--exact"],
                        capture_output=True, text=True, env=env, cwd=tmp)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout == expected_line(kid(real, fake, subsets=None), 120, 90, 16)
    bad = subprocess.run([sys.executable, "-m", "fastmmd.cli.kid", tmp / "real.npy", tmp],
                         capture_output=True, text=True, env=env, cwd=tmp)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr and bad.stderr.count("\n") == 1


def test_the_cli_module_leaves_the_function_alone(files):
    """The command line lives in fastmmd.cli.kid: importing it does not rebind fastmmd.kid."""
    import fastmmd
    from fastmmd.statistics.kid import kid as function

    assert fastmmd.kid is function and callable(cli.main)
