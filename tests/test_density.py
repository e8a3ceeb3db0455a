"""The masks' density chosen for a movie (emtcs.density): how much of its first group moves."""

from __future__ import annotations

import numpy as np
import tifffile

import emtcs
from emtcs.density import MOVING_SHARE, density_for, moving_share


def _moving_disc(
    n: int, shape: tuple[int, int], speed: float, rng: np.random.Generator, radius: float = 12
) -> np.ndarray:
    """Poisson frames of a bright disc crossing a dim field at ``speed`` pixels a frame."""
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]]
    frames = []
    for t in range(n):
        disc = (yy - shape[0] / 2) ** 2 + (xx - radius - 8 - speed * t) ** 2 < radius**2
        frames.append(rng.poisson(20 + 60 * disc))
    return np.array(frames, dtype=np.uint16)


def test_noise_alone_moves_a_few_blocks_and_a_crossing_particle_many():
    rng = np.random.default_rng(0)
    still = rng.poisson(50, (20, 96, 96)).astype(np.uint16)
    assert moving_share(still) < 0.15  # about 7 % by chance at B = 20
    assert moving_share(_moving_disc(20, (64, 96), 2.0, rng)) > MOVING_SHARE
    assert moving_share(np.full((5, 16, 16), 7, np.uint8)) == 0.0  # nothing changes at all


def test_a_small_particle_in_a_still_field_is_not_a_moving_movie():
    """Sparser masks pay for the moving blocks with the still ones' electrons: the share of
    the field that moves counts, not how fast its fastest part does."""
    rng = np.random.default_rng(5)
    small = _moving_disc(20, (256, 256), 2.0, rng, radius=6)
    assert moving_share(small) < MOVING_SHARE
    assert moving_share(small[:, 112:144, 0:64]) > MOVING_SHARE  # the same particle, cropped close


def test_a_still_movie_that_flickers_does_not_move():
    """A frame brighter or darker as a whole (the beam's current) is not motion: sparser masks
    lost 1.7 dB on such a movie (session 61)."""
    rng = np.random.default_rng(4)
    yy, xx = np.mgrid[0:96, 0:96]
    scene = 200 + 100 * np.sin(xx / 5.0) * np.cos(yy / 7.0) + 150 * ((yy - 48) ** 2 + (xx - 48) ** 2 < 20**2)
    gains = 1 + 0.05 * rng.standard_normal(20)
    frames = rng.poisson(scene * gains[:, None, None]).astype(np.uint16)
    assert moving_share(frames) < 0.15


def test_a_large_frame_is_measured_on_its_central_window():
    from emtcs.density import WINDOW

    frames = np.random.default_rng(3).poisson(30, (3, WINDOW + 100, WINDOW + 36)).astype(np.uint16)
    assert moving_share(frames) == moving_share(frames[:, 50 : 50 + WINDOW, 18 : 18 + WINDOW])


def test_the_density_sums_about_five_frames_a_pixel_where_the_movie_moves():
    assert density_for(20, 0.8) == 0.25 and density_for(30, 0.8) == 11 / 64
    assert density_for(10, 0.8) == 0.5  # 0.5 already sums five frames
    assert density_for(20, MOVING_SHARE) == 0.5 and density_for(60, 1.0) == 0.5
    assert density_for(31, 0.8) == 0.5  # longer groups: not measured better


def test_compress_chooses_the_density_and_says_why(tmp_path):
    rng = np.random.default_rng(1)
    tifffile.imwrite(tmp_path / "moving.tif", _moving_disc(20, (64, 96), 2.0, rng), photometric="minisblack")
    tifffile.imwrite(tmp_path / "still.tif", rng.poisson(50, (20, 64, 96)).astype(np.uint16), photometric="minisblack")
    moving = emtcs.compress(tmp_path / "moving.tif", tmp_path / "moving.tcs", B=20)
    assert moving["mask_density"] == 0.25 and moving["format_version"] == "4.3"
    assert moving["moving_share"] > MOVING_SHARE
    still = emtcs.compress(tmp_path / "still.tif", tmp_path / "still.tcs", B=20)
    assert still["mask_density"] == 0.5 and still["moving_share"] < MOVING_SHARE
    given = emtcs.compress(tmp_path / "moving.tif", tmp_path / "given.tcs", B=20, density=0.5)
    assert given["mask_density"] == 0.5 and given["mask_generator"] == "emtcs-hash32-v1"
    frames = emtcs.read_frames(tmp_path / "moving.tcs", decoder="gaptv")
    assert frames.shape == (20, 64, 96)


def test_the_command_line_names_a_density_other_than_the_default(tmp_path):
    import subprocess
    import sys

    tifffile.imwrite(tmp_path / "m.tif", _moving_disc(20, (64, 96), 2.0, np.random.default_rng(2)))
    run = subprocess.run(
        [sys.executable, "-m", "emtcs", "compress", str(tmp_path / "m.tif"), "-B", "20"], capture_output=True, text=True
    )
    assert run.returncode == 0, run.stderr
    assert "masks: density 0.25, about 5 frames per pixel: the first group moves" in run.stderr
    info = subprocess.run(
        [sys.executable, "-m", "emtcs", "info", str(tmp_path / "m.tcs")], capture_output=True, text=True
    ).stdout
    assert "emtcs-hash32-v2, seed 0, density 0.25" in info
    still = np.random.default_rng(3).poisson(50, (10, 64, 64)).astype(np.uint16)
    tifffile.imwrite(tmp_path / "still.tif", still, photometric="minisblack")
    run = subprocess.run(
        [sys.executable, "-m", "emtcs", "compress", str(tmp_path / "still.tif"), "-B", "10", "--density", "0.25"],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr
    assert "masks: density 0.25, about 2 frames per pixel, as --density gave" in run.stderr  # not "moves"
