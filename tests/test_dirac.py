"""DiracGAN: the scaled MMD drives θ to 0, the critic-optimised unscaled MMD stalls; the landscapes are
discontinuous (MMD) and continuous (SMMD) at θ = 0; the command writes its files."""
from __future__ import annotations

import json

import pytest

from gan.dirac import SCALE_FORMS, DiracConfig, main, optimised_mmd, optimised_smmd, train

CONFIG = DiracConfig(steps=400)


def test_smmd_converges_and_the_optimised_mmd_does_not():
    smmd = train("smmd", CONFIG)  # the reference code's scale, 1 / (1 + 10ψ²)
    mmd = train("mmd", CONFIG)
    assert abs(smmd[-1].theta) < 0.05
    assert all(abs(b.theta) < abs(a.theta) for a, b in zip(smmd, smmd[1:]))
    assert abs(mmd[-1].theta) > 0.5
    assert mmd[-1].psi > mmd[len(mmd) // 2].psi > mmd[0].psi  # the critic keeps sharpening


def test_the_paper_form_converges_too():
    smmd = train("smmd", DiracConfig(steps=150, scale=SCALE_FORMS["paper"]))
    assert abs(smmd[-1].theta) < 0.1


def test_landscapes():
    assert optimised_mmd(1e-3) == pytest.approx(2 ** 0.5) and optimised_mmd(0.0) == 0.0
    for form in SCALE_FORMS.values():
        assert optimised_smmd(1e-3, form) < 1e-3 < optimised_smmd(0.5, form)
        assert optimised_smmd(0.0, form) == 0.0


def test_command_writes_the_summary_and_the_plot(tmp_path):
    pytest.importorskip("matplotlib")
    assert main(["--out", str(tmp_path), "--steps", "5", "--critic-steps", "2"]) == 0
    summary = json.loads((tmp_path / "dirac.json").read_text())
    assert set(summary["final"]) == {"smmd", "mmd"} and summary["final"]["smmd"]["step"] == 5
    assert (tmp_path / "dirac.png").stat().st_size > 1000


def test_unknown_loss():
    with pytest.raises(ValueError, match="unknown loss"):
        train("wgan", CONFIG)
