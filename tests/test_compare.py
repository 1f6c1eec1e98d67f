"""python -m gan.compare: the table and the plot of run folders, one row per run or pooled over seeds."""
from __future__ import annotations

import json
import statistics

from gan.compare import main


def _fake_run(folder, loss, kids, seed=0, **config):
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"loss": loss, "seed": seed, **config}))
    lines = [{"step": 100 * i, "lr": 1e-4, "elapsed": 60.0 * i, "kid": k, "kid_std": k / 10, "fid": 10 * k}
             for i, k in enumerate(kids)]
    (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))


def test_table_and_plot(tmp_path, capsys):
    _fake_run(tmp_path / "a", "smmd", [2.0, 0.5, 0.1])
    _fake_run(tmp_path / "b", "wgan-gp", [2.0, 1.0, 0.4])
    assert main([str(tmp_path / "a"), str(tmp_path / "b"), "--plot", str(tmp_path / "curves.png")]) == 0
    rows = capsys.readouterr().out.splitlines()
    assert rows[2].startswith("| a | smmd | 200 | 2.000 | 0.1000 ± 0.0100 | 20.0× | 1.00 | 2.0 |")
    assert rows[3].startswith("| b | wgan-gp | 200 |")
    assert (tmp_path / "curves.png").stat().st_size > 1000


def test_grouped_by_loss_and_scale_form(tmp_path, capsys):
    finals = {"smmd": [0.1, 0.2, 0.3], "wgan-gp": [0.4, 0.5, 0.9]}
    folders = []
    for loss, kids in finals.items():
        for seed, kid in enumerate(kids):
            folders.append(tmp_path / f"{loss}-seed{seed}")
            _fake_run(folders[-1], loss, [2.0, 1.0 + seed, kid], seed=seed)
    folders.append(tmp_path / "paper-seed0")
    _fake_run(folders[-1], "smmd", [2.0, 1.0, 0.05], smmd_scale="paper")
    assert main([*map(str, folders), "--group", "--plot", str(tmp_path / "bands.png")]) == 0
    rows = capsys.readouterr().out.splitlines()
    assert [row.split(" | ")[0] for row in rows[2:]] == ["| smmd (paper scale)", "| smmd", "| wgan-gp"]
    smmd = rows[3].split(" | ")
    assert smmd[1] == "3" and smmd[2] == f"0.2000 ± {statistics.stdev([0.1, 0.2, 0.3]):.4f}"
    assert smmd[3] == "0.1000, 0.2000, 0.3000" and smmd[4] == "10×" and smmd[5] == "2.00 ± 1.00"
    assert rows[2].split(" | ")[2] == "0.0500"  # one seed: no spread
    assert (tmp_path / "bands.png").stat().st_size > 1000


def test_grouped_runs_must_share_their_evaluation_steps(tmp_path, capsys):
    _fake_run(tmp_path / "a", "smmd", [2.0, 0.5, 0.1])
    _fake_run(tmp_path / "b", "smmd", [2.0, 0.5], seed=1)
    assert main([str(tmp_path / "a"), str(tmp_path / "b"), "--group"]) == 2
    assert "different steps" in capsys.readouterr().err


def test_a_run_without_evaluations_is_an_error(tmp_path, capsys):
    _fake_run(tmp_path / "a", "smmd", [2.0])
    assert main([str(tmp_path / "a")]) == 2
    assert "fewer than two" in capsys.readouterr().err
