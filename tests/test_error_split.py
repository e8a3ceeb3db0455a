"""benchmarks/error_split.py: a movie's error split into its groups' means and the departures from them."""

from __future__ import annotations

import math

import numpy as np
import pytest

from scripts import load_script


@pytest.fixture(scope="module")
def error_split():
    return load_script("benchmarks/error_split.py")


def db(mse: float) -> float:
    return 10 * math.log10(1.0 / mse)


def test_an_error_shared_by_a_group_is_all_in_its_mean_and_one_that_alternates_all_in_its_departures(error_split):
    clean = np.random.default_rng(0).random((8, 6, 6))
    shared = np.repeat([0.1, -0.1], 4)[:, None, None]  # one offset per group of 4
    alternating = np.tile([0.02, -0.02], 4)[:, None, None]  # sums to zero in every group
    s = error_split.split(clean + shared + alternating, clean, 4, data_range=1.0)
    assert s["mean_part"] == pytest.approx(db(0.01))
    assert s["departures"] == pytest.approx(db(0.0004))
    assert s["psnr"] == pytest.approx(db(0.0104))  # the parts' squared errors add up


def test_the_groups_mean_for_every_frame_keeps_whole_groups_only(error_split):
    frames = np.arange(10, dtype=float)[:, None, None] * np.ones((1, 2, 2))
    means = error_split.group_means(frames, 4)
    assert means.shape == (8, 2, 2)
    np.testing.assert_array_equal(means[:, 0, 0], [1.5] * 4 + [5.5] * 4)
