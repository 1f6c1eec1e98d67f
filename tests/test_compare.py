"""python -m gan.compare: the table and the plot of run folders."""
from __future__ import annotations

import json

from gan.compare import main


def _fake_run(folder, loss, kids):
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"loss": loss}))
    lines = [{"step": 100 * i, "lr": 1e-4, "elapsed": 60.0 * i, "kid": k, "kid_std": k / 10} for i, k in enumerate(kids)]
    (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))


def test_table_and_plot(tmp_path, capsys):
    _fake_run(tmp_path / "a", "smmd", [2.0, 0.5, 0.1])
    _fake_run(tmp_path / "b", "wgan-gp", [2.0, 1.0, 0.4])
    assert main([str(tmp_path / "a"), str(tmp_path / "b"), "--plot", str(tmp_path / "curves.png")]) == 0
    rows = capsys.readouterr().out.splitlines()
    assert rows[2].startswith("| smmd | 200 | 2.000 | 0.1000 ± 0.0100 | 20.0× | 2.0 |")
    assert rows[3].startswith("| wgan-gp | 200 |")
    assert (tmp_path / "curves.png").stat().st_size > 1000


def test_a_run_without_evaluations_is_an_error(tmp_path, capsys):
    _fake_run(tmp_path / "a", "smmd", [2.0])
    assert main([str(tmp_path / "a")]) == 2
    assert "fewer than two" in capsys.readouterr().err
