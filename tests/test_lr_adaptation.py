"""The relative-test learning-rate rule (REFERENCES.md §6): a generator that stops improving decays the
learning rates after `patience` failures in a row; one that keeps improving does not."""
from __future__ import annotations

import torch

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
