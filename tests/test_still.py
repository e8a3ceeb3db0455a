"""The still stage (emtcs.still): tiles whose measurement equals a neighbouring group's to the
shot noise are given back from the measurement, which keeps a fine lattice the decoders lose;
a moving specimen is left to the decoder."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile
from click.testing import CliRunner

import emtcs
from emtcs.cli import main
from emtcs.still import BLOCK, BLOCK_BAR, STILL_BAR, StillTiles, hold_still, shot_variance, still_score

pytest.importorskip("torch")


def _fringes(period: float, side: int = 128, shift: float = 0.0) -> np.ndarray:
    """Mean 1, contrast 0.5, turned 0.3 rad, moved ``shift`` px across the fringes."""
    y, x = np.mgrid[:side, :side]
    return 1.0 + 0.5 * np.cos(2 * np.pi * (x * np.cos(0.3) + y * np.sin(0.3) - shift) / period)


def _score(y: np.ndarray, other: np.ndarray, epu: np.ndarray, block: int = 0) -> float:
    """The still score of one tile of Poisson measurements."""
    return float(still_score(y, other, shot_variance(y, other, np.ones((1, 1) + y.shape[1:]), epu, None), block)[0])


def _psnr(x: np.ndarray, ref: np.ndarray) -> float:
    peak = float(ref.max() - ref.min())
    return float(10 * np.log10(peak**2 / np.mean((x.astype(np.float64) - ref) ** 2)))


@pytest.mark.parametrize("dose", [0.5, 5.0, 500.0])
def test_the_score_of_two_counts_of_one_image_is_one_at_any_dose(dose):
    rng = np.random.default_rng(0)
    image = dose * _fringes(6)[None]
    epu = np.array([2.0])  # normalised units: counts / 2
    y, other = rng.poisson(image) / 2.0, rng.poisson(image) / 2.0
    assert abs(_score(y, other, epu) - 1) < 0.05
    # a third of a period across the fringes is far beyond the noise at 5 e/px and above
    moved = rng.poisson(dose * _fringes(6, shift=2.0)[None]) / 2.0
    if dose >= 5:
        assert _score(y, moved, epu) > STILL_BAR + 0.5


def test_no_electrons_or_no_neighbour_is_never_still():
    zeros, epu = np.zeros((1, 8, 8)), np.ones(1)
    assert np.isnan(_score(zeros, zeros, epu))
    assert np.isnan(_score(np.ones((1, 8, 8)), np.full((1, 8, 8), np.nan), epu))
    stage = StillTiles(1)
    frames = np.zeros((1, 4, 8, 8), dtype=np.float32)
    out = stage(frames, np.ones((1, 8, 8)), np.ones((1, 4, 8, 8)), epu, [np.full((1, 8, 8), np.nan)])
    assert out is frames and stage.take(0) == 0


def test_a_lost_lattice_comes_back_and_noise_removed_stays_removed():
    rng = np.random.default_rng(1)
    B, dose = 8, 200.0
    truth = _fringes(4, side=64)
    masks = (rng.random((1, B, 64, 64)) < 0.5).astype(np.float32)
    y, other = (rng.poisson(dose * truth * masks.sum(1)) / dose for _ in range(2))  # normalised: 1 = dose e
    lost = np.ones((1, B, 64, 64), dtype=np.float32)  # a decoder that kept the mean, lost the fringes
    held = hold_still(lost, y, [other], masks)
    assert held.shape == y.shape
    estimate = (y + other) / np.maximum(2 * masks.sum(1), 1)  # the still estimate, noise and all
    assert _psnr(held[0], truth) > _psnr(estimate[0], truth) > _psnr(lost[0, 0], truth) + 10
    # a decoder that kept everything: what the still estimate adds is below its noise, so little is added
    kept = np.broadcast_to(truth, lost.shape).astype(np.float32)
    assert _psnr(hold_still(kept, y, [other], masks)[0], truth) > _psnr(estimate[0], truth) + 6


def test_both_neighbours_that_held_still_are_used_and_one_that_moved_is_not():
    """Three still groups lower the still estimate's noise by a third against two; a
    neighbour that moved is left out of the estimate, whichever side it is on."""
    rng = np.random.default_rng(3)
    B, dose, side = 8, 5.0, 64
    truth = _fringes(4, side=side)
    masks = (rng.random((1, B, side, side)) < 0.5).astype(np.float32)
    k = masks.sum(1)
    y, before, after = (rng.poisson(dose * truth * k) / dose for _ in range(3))
    moved = rng.poisson(dose * _fringes(4, side=side, shift=1.0) * k) / dose
    lost = np.ones((1, B, side, side), dtype=np.float32)
    two, three = (_psnr(hold_still(lost, y, others, masks)[0], truth) for others in ([before], [before, after]))
    assert three > two + 0.4  # +0.6 … +1.4 dB over seeds and doses; 10 log10(3/2) = 1.76 where all of S is kept
    epu = np.array([dose])
    for neighbours, expected in (([before, after], three), ([moved, after], None), ([before, moved], two)):
        stage = StillTiles(1)
        out = stage(lost, y, masks, epu, neighbours)
        assert stage.last_still.tolist() == [True]
        score = _psnr(out[0, 0], truth)
        if expected is None:  # only `after` held still
            expected = _psnr(hold_still(lost, y, [after], masks)[0], truth)
        assert score == pytest.approx(expected, abs=0.1)  # not exact: the neighbours are brought to its level


def test_one_atom_that_moved_is_not_averaged_away():
    """A strong atom column hops 3 px between the groups of an otherwise still lattice at 200
    e/px: too few pixels change to lift the tile's score, but its block's score is far up,
    and the windows around it are left to the decoder while the rest is held still."""
    rng = np.random.default_rng(6)
    side = 256
    yy, xx = np.mgrid[:side, :side]
    masks = (rng.random((1, 10, side, side)) < 0.5).astype(np.float32)
    k = masks.sum(1)

    def counts(x0: float) -> np.ndarray:
        atom = 0.3 * np.exp(-((yy - 64) ** 2 + (xx - x0) ** 2) / (2 * 1.5**2))
        return rng.poisson(200 * (_fringes(6, side=side) + atom) * k) / 200.0

    y, epu = counts(64), np.array([200.0])
    frames = np.ones((1, 10, side, side), np.float32)
    for other, moved in ((counts(64), False), (counts(67), True)):
        assert _score(y, other, epu) <= STILL_BAR
        stage = StillTiles(1)
        out = stage(frames, y, masks, epu, [other])
        assert stage.last_still.tolist() == [True]
        around = np.s_[0, :, 48:80, 48:84]  # the atom, and beyond it to the windows that hold none of it
        assert np.array_equal(out[around], frames[around]) == moved
        assert not np.array_equal(out[0, :, 192:, 192:], frames[0, :, 192:, 192:])  # far from it: still
    assert _score(y, other, epu, BLOCK) > BLOCK_BAR + 0.3


def test_a_part_that_moved_is_left_to_the_decoder_and_the_rest_held_still():
    rng = np.random.default_rng(4)
    side, dose = 192, 100.0
    masks = (rng.random((1, 8, side, side)) < 0.5).astype(np.float32)
    k = masks.sum(1)
    truth = _fringes(5, side=side)
    moved = truth.copy()
    moved[:40, :40] = _fringes(5, side=side, shift=2.5)[:40, :40]
    y, other = (rng.poisson(dose * image * k) / dose for image in (truth, moved))
    frames = np.ones((1, 8, side, side), np.float32)  # a decoder that lost the fringes
    stage = StillTiles(1)
    out = stage(frames, y, masks, np.array([dose]), [other])
    assert stage.last_still.tolist() == [True]
    assert np.array_equal(out[0, :, :32, :32], frames[0, :, :32, :32])  # only the moved window holds these
    assert np.all(out[0, :, 96:, 96:] == out[0, :1, 96:, 96:])  # held still: one image
    assert _psnr(out[0, 0, 96:, 96:], truth[96:, 96:]) > _psnr(frames[0, 0, 96:, 96:], truth[96:, 96:]) + 10


def test_the_beam_brightening_between_groups_is_not_taken_for_motion():
    """At 200 e/px a neighbour 3 % brighter throughout scores far above the bar as it
    stands; brought to the tile's level it is still, and the still image keeps the tile's
    own level."""
    rng = np.random.default_rng(5)
    masks = (rng.random((1, 10, 128, 128)) < 0.5).astype(np.float32)
    k = masks.sum(1)
    truth = _fringes(6)
    y, brighter = (rng.poisson(200 * level * truth * k) / 200.0 for level in (1.0, 1.03))
    epu = np.array([200.0])
    assert _score(y, brighter, epu) > STILL_BAR + 0.3
    stage = StillTiles(1)
    out = stage(np.ones((1, 10, 128, 128), np.float32), y, masks, epu, [brighter])
    assert stage.last_still.tolist() == [True]
    assert abs(out.mean() / truth.mean() - 1) < 0.002
    assert _psnr(out[0, 0], truth) > 30  # the decoder that lost the fringes: 9 dB


def test_tiles_are_counted_by_their_group():
    rng = np.random.default_rng(2)
    image = 100 * _fringes(5, side=32)
    y = rng.poisson(np.stack([image] * 4)) / 100.0  # positions 0, 1 of groups 0, 1 (position-major)
    moved = rng.poisson(100 * _fringes(5, side=32, shift=2.0)) / 100.0
    neighbour = rng.poisson(np.stack([image, image, image, image])) / 100.0
    neighbour[3] = moved  # position 1, group 1: its neighbour moved
    stage = StillTiles(2)
    frames = np.ones((4, 2, 32, 32), dtype=np.float32)
    out = stage(frames, y, np.ones((4, 2, 32, 32)), np.full(4, 100.0), [neighbour])
    assert stage.last_still.tolist() == [True, True, True, False]
    assert (stage.take(0), stage.take(1), stage.take(1)) == (2, 1, 0)
    assert np.array_equal(out[3], frames[3]) and not np.array_equal(out[0], frames[0])


def _compressed(tmp_path, movie: np.ndarray, name: str, B: int = 10):
    src, tcs = tmp_path / f"{name}-source.tif", tmp_path / f"{name}.tcs"
    tifffile.imwrite(src, movie)
    emtcs.compress(src, tcs, B=B)
    return tcs


def test_a_still_lattice_decodes_from_its_measurement_and_a_moving_one_does_not(tmp_path):
    """The still-specimen case of docs/benchmarks.md at test size: 5-px fringes held still for
    three groups at 200 e/px, which the decoders alone lose (128 x 128: the smallest frames
    whose detector gain compress measures, which the still test needs)."""
    rng = np.random.default_rng(3)
    truth = 200 * np.repeat(_fringes(5)[None], 30, axis=0)
    tcs = _compressed(tmp_path, rng.poisson(truth).astype(np.uint16), "still")
    held = emtcs.decompress(tcs, tmp_path / "held.tif")
    alone = emtcs.decompress(tcs, tmp_path / "alone.tif", still=False)
    assert held.still == {0: 1, 1: 1, 2: 1} and alone.still == {}
    assert held.decoder["still"] is True and "3 tiles (3 groups)" in (held.still_summary() or "")
    gain = _psnr(tifffile.imread(tmp_path / "held.tif"), truth) - _psnr(tifffile.imread(tmp_path / "alone.tif"), truth)
    assert gain > 6
    # the same fringes drifting 0.1 px a frame: every group differs from its neighbours
    moving = np.stack([200 * _fringes(5, shift=0.1 * t) for t in range(30)])
    tcs = _compressed(tmp_path, rng.poisson(moving).astype(np.uint16), "moving")
    assert emtcs.decompress(tcs, tmp_path / "moving.tif").still == {}


def test_a_file_with_one_noise_sigma_is_tested_with_it(tmp_path):
    """Frames whose noise has one size everywhere (8-bit, Gaussian): the file holds that
    sigma (gaussian-v1), and the test takes each pixel's noise from it and its mask sum."""
    rng = np.random.default_rng(5)
    xx = np.mgrid[0:64, 0:96][1]
    for name, shift, taken in (("still", 0.0, 3), ("moving", 0.3, 0)):
        clean = np.stack([110 + 30 * np.sin((xx - shift * t) / 3.0) for t in range(24)])
        movie = np.clip(np.rint(clean + rng.normal(0, 5.0, clean.shape)), 0, 255).astype(np.uint8)
        tcs = _compressed(tmp_path, movie, name, B=8)
        with emtcs.open(tcs) as reader:
            assert reader.info()["measurement_coding"] == "gaussian-v1"
        assert sum(emtcs.decompress(tcs, tmp_path / f"{name}.tif").still.values()) == taken


def test_the_cli_says_which_tiles_held_still(tmp_path):
    rng = np.random.default_rng(4)
    tcs = _compressed(tmp_path, rng.poisson(200 * np.repeat(_fringes(5)[None], 20, axis=0)).astype(np.uint16), "m")
    report = tmp_path / "report.json"
    result = CliRunner().invoke(main, ["decompress", str(tcs), "-o", str(tmp_path / "o.tif"), "--report", str(report)])
    assert result.exit_code == 0, result.output
    assert "still: 2 tiles (2 groups) held still" in result.output
    assert json.loads(report.read_text())["still_tiles"] == {"0": 1, "1": 1}
    result = CliRunner().invoke(main, ["decompress", str(tcs), "-o", str(tmp_path / "n.tif"), "--no-still", "-q"])
    assert result.exit_code == 0 and "still:" not in result.output
