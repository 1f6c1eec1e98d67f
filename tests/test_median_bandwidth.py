"""fastmmd.median_bandwidth: the median distance of the pool against numpy, reproducible subsampling, the
result's kind (a tensor, numpy for numpy input), and the errors."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import fastmmd
from conftest import sample_xy
from tolerances import SAME_ARITHMETIC_RTOL, SAMPLING_RTOL


def test_median_bandwidth_is_the_median_distance_of_the_pool():
    x, y = sample_xy(40, 31, 3, seed=7)
    pool = np.concatenate([x.numpy(), y.numpy()])
    distances = np.sqrt(((pool[:, None] - pool[None]) ** 2).sum(-1))
    expected = np.median(distances[np.triu_indices(len(pool), 1)])
    got = fastmmd.median_bandwidth(x, y)
    assert isinstance(got, torch.Tensor) and got.dim() == 0 and got.dtype == torch.float64
    assert float(got) == pytest.approx(expected, rel=SAME_ARITHMETIC_RTOL)
    from_numpy = fastmmd.median_bandwidth(x.numpy())
    assert isinstance(from_numpy, np.float64)
    assert from_numpy == pytest.approx(np.median(distances[:40, :40][np.triu_indices(40, 1)]), rel=SAME_ARITHMETIC_RTOL)
    assert fastmmd.Gaussian(bandwidth=got).bandwidth == pytest.approx(expected, rel=SAME_ARITHMETIC_RTOL)


def test_median_bandwidth_subsamples_reproducibly():
    x, y = sample_xy(900, 900, 2, seed=8)
    first = fastmmd.median_bandwidth(x, y, max_points=300, seed=1)
    assert torch.equal(first, fastmmd.median_bandwidth(x, y, max_points=300, seed=1))
    assert float(first) == pytest.approx(float(fastmmd.median_bandwidth(x, y, max_points=1800)), rel=SAMPLING_RTOL)


@pytest.mark.parametrize(
    "args, match",
    [
        (dict(x=torch.zeros(10, 2, dtype=torch.float64)), "median distance between the points is 0"),
        (dict(x=torch.ones(1, 2, dtype=torch.float64)), "at least 2 points"),
        (dict(x=torch.randn(5, 2, dtype=torch.float64), max_points=1), "max_points"),
        (dict(x=torch.tensor([[0.0, float("nan")], [1.0, 2.0]], dtype=torch.float64)), "finite"),
    ],
)
def test_median_bandwidth_errors(args, match):
    with pytest.raises(ValueError, match=match):
        fastmmd.median_bandwidth(**args)
