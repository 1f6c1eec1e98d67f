"""The relative-test learning-rate rule (docs/gan_recipes.md): a generator that stops improving decays the
learning rates after `patience` failures in a row; one that keeps improving does not; the kept features
follow the reference code's bookkeeping."""
from __future__ import annotations

from types import SimpleNamespace

import torch

import gan.lr_adaptation
from gan.lr_adaptation import MIN_LR, RelativeTestLR


def _optimizer(lr=1e-4):
    return torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=lr)


def _features(shift, n=200, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 8, generator=g, dtype=torch.float64) + shift


def test_a_generator_that_gets_worse_decays_after_three_failures_and_the_count_resets():
    real = _features(0.0, seed=1)
    optimizer = _optimizer()
    rule = RelativeTestLR(decay=0.5, every=10, lookback=2, patience=3)
    logs = [rule.update(real, _features(0.5 * i, seed=10 + i), [optimizer]) for i in range(8)]
    assert logs[:2] == [None, None]  # nothing `lookback` tests back yet
    assert all(log["lr_test_p"] > 0.1 for log in logs[2:])
    assert [log["lr_decayed"] for log in logs[2:]] == [0, 0, 1, 0, 0, 1]
    assert optimizer.param_groups[0]["lr"] == 1e-4 * 0.25


def test_an_improving_generator_keeps_its_learning_rate():
    real = _features(0.0, seed=1)
    optimizer = _optimizer()
    rule = RelativeTestLR(decay=0.5, every=10, lookback=2, patience=1)
    for i in range(6):
        log = rule.update(real, _features(3.0 - 0.5 * i, seed=10 + i), [optimizer])
        assert log is None or log["lr_test_p"] < 0.1
    assert optimizer.param_groups[0]["lr"] == 1e-4


def test_floor_state_and_schedule():
    optimizer = _optimizer(lr=1.5e-6)
    rule = RelativeTestLR(decay=0.5, lookback=1, patience=1)
    real = _features(0.0, seed=1)
    for i in range(3):
        rule.update(real, _features(1.0, seed=20 + i), [optimizer])
    assert optimizer.param_groups[0]["lr"] == MIN_LR
    copy = RelativeTestLR(decay=0.5, lookback=1, patience=1)
    copy.load_state_dict(rule.state_dict())
    assert copy.failures == rule.failures and torch.equal(copy.history[0], rule.history[0])
    assert [RelativeTestLR(0.8, every=2000).due(s) for s in (0, 1999, 2000, 4000)] == [False, False, True, True]


def test_the_kept_features_follow_the_reference_scorer(monkeypatch):
    """Scripted p-values: a failure drops Y and keeps Z; the patience-th failure keeps the newest `patience`
    features and waits until `lookback` are kept again; a success replaces the oldest by Y."""
    p_values = iter([0.5, 0.01, 0.5, 0.5, 0.5, 0.01])
    tested = []

    def scripted_test(x, y, z):
        tested.append((int(y[0, 0]), int(z[0, 0])))
        return SimpleNamespace(p_value=next(p_values))

    monkeypatch.setattr(gan.lr_adaptation.fastmmd, "relative_mmd_test", scripted_test)
    optimizer = _optimizer()
    rule = RelativeTestLR(decay=0.5, lookback=4, patience=3)
    real = torch.zeros(2, 1)
    logs = [rule.update(real, torch.full((2, 1), float(i)), [optimizer]) for i in range(11)]
    # 0-3 kept; 4 fails vs 0 (dropped); 5 succeeds vs 0 (kept: 1, 2, 3, 5); 6, 7, 8 fail vs 1, the decay at 8
    # keeps 3, 5, 8; 9 is kept; 10 succeeds vs 3 (kept: 5, 8, 9, 10).
    assert [i for i, log in enumerate(logs) if log is None] == [0, 1, 2, 3, 9]
    assert tested == [(4, 0), (5, 0), (6, 1), (7, 1), (8, 1), (10, 3)]
    assert [log["lr_decayed"] for log in logs[4:9]] == [0, 0, 0, 0, 1]
    assert [int(h[0, 0]) for h in rule.history] == [5, 8, 9, 10] and rule.failures == 0
    assert optimizer.param_groups[0]["lr"] == 1e-4 * 0.5
