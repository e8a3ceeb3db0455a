"""Scene cuts (emtcs.cuts): found where a movie jumps to other content, not in a moving
movie, recorded in the .tcs with the groups that straddle them."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile

import emtcs
from emtcs.cuts import find_cuts
from emtcs.simulate import MovieSimulator, SimulationConfig


def _movie(seed: int, n: int = 20, mode: str = "hrtem", dose: float = 50.0) -> np.ndarray:
    sim = MovieSimulator(SimulationConfig(n_frames=n, shape=(128, 128), dose=dose, seed=seed, mode=mode))
    return np.stack([sim.noisy_frame(t) for t in range(n)])


@pytest.mark.parametrize("mode", ["hrtem", "bright-field", "liquid-cell", "stem"])
@pytest.mark.parametrize("dose", [5.0, 1000.0])
def test_a_joined_movie_cuts_where_it_was_joined_and_nowhere_else(mode, dose):
    a, b = _movie(1, mode=mode, dose=dose), _movie(11, mode=mode, dose=dose)
    assert find_cuts(a) == []  # drift, particles moving, noise: no cut
    assert find_cuts(np.concatenate([a[:17], b[:13]])) == [17]
    # one frame from elsewhere: it starts a scene, and the next frame returns
    assert find_cuts(np.concatenate([a[:10], b[:1], a[10:]])) == [10, 11]


def test_compress_records_cuts_and_the_groups_across_them(tmp_path):
    src = tmp_path / "joined.tif"
    tifffile.imwrite(src, np.concatenate([_movie(1)[:17], _movie(11)[:13]]))
    info = emtcs.compress(src, tmp_path / "j.tcs", B=10)
    assert info["cuts"] == [17] and info["groups_across_cuts"] == [1]  # frames 10..19 hold 16 and 17
    from click.testing import CliRunner

    from emtcs.cli import main

    shown = json.loads(CliRunner().invoke(main, ["info", str(tmp_path / "j.tcs"), "--json"]).output)
    assert shown["cuts"] == [17] and shown["groups_across_cuts"] == [1]
    # a cut on a group boundary splits no group
    assert emtcs.compress(src, tmp_path / "k.tcs", B=17, force=True)["groups_across_cuts"] == []
    off = emtcs.compress(src, tmp_path / "o.tcs", B=10, cuts=False)
    assert off["cuts"] is None and off["groups_across_cuts"] == []
