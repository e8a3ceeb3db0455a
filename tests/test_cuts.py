"""Scene cuts (emtcs.cuts): found where a movie jumps to other content, not in a moving
movie; compress ends groups there, and frames after a cut decode as in a movie of their own."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile
from click.testing import CliRunner

import emtcs
from emtcs.cli import main
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


def _psnr(x: np.ndarray, ref: np.ndarray) -> float:
    peak = float(ref.max() - ref.min())
    return float(10 * np.log10(peak**2 / np.mean((x.astype(np.float64) - ref) ** 2)))


def test_no_group_straddles_a_cut_and_frames_after_it_decode_as_well_as_alone(tmp_path):
    """Issue 9 §3: two movies joined at frame 17."""
    sims = [MovieSimulator(SimulationConfig(n_frames=30, shape=(128, 128), dose=50.0, seed=s)) for s in (1, 11)]
    a, b = ([sim.noisy_frame(t) for t in range(30)] for sim in sims)
    clean_b = np.stack([sims[1].clean_frame(t) for t in range(13)])
    tifffile.imwrite(tmp_path / "joined.tif", np.stack(a[:17] + b[:13]))
    tifffile.imwrite(tmp_path / "alone.tif", np.stack(b[:13]))
    info = emtcs.compress(tmp_path / "joined.tif", B=10)
    assert info["cuts"] == [17] and info["groups_across_cuts"] == []
    assert info["groups"] == [
        {"start": 0, "length": 10},
        {"start": 10, "length": 7},
        {"start": 17, "length": 10},
        {"start": 27, "length": 3},
    ]
    assert info["format_version"] == "4.0"
    emtcs.compress(tmp_path / "alone.tif", B=10)
    for name in ("joined", "alone"):
        emtcs.decompress(tmp_path / f"{name}.tcs", tmp_path / f"{name}-out.tif", decoder="gaptv")
    after_cut = _psnr(tifffile.imread(tmp_path / "joined-out.tif")[17:], clean_b)
    alone = _psnr(tifffile.imread(tmp_path / "alone-out.tif"), clean_b)
    assert after_cut > alone - 0.1  # the noise model and step come from the first scene
    # without cut detection frames 10..19 make one group: frames 17..19 come back worse
    off = emtcs.compress(tmp_path / "joined.tif", tmp_path / "off.tcs", B=10, cuts=False)
    assert off["cuts"] is None and off["format_version"] == "4.0" and len(off["groups"]) == 3
    emtcs.decompress(tmp_path / "off.tcs", tmp_path / "off-out.tif", decoder="gaptv")
    straddled = _psnr(tifffile.imread(tmp_path / "off-out.tif")[17:20], clean_b[:3])
    assert straddled < _psnr(tifffile.imread(tmp_path / "joined-out.tif")[17:20], clean_b[:3]) - 0.5


def test_a_frame_between_two_cuts_is_stored_alone_and_decoded_exactly(tmp_path):
    a, b = _movie(1), _movie(11)
    src = tmp_path / "flash.tif"
    tifffile.imwrite(src, np.concatenate([a[:10], b[:1], a[10:]]))
    info = emtcs.compress(src, B=6, quantise=0)
    assert info["cuts"] == [10, 11]
    assert [(g["start"], g["length"]) for g in info["groups"]] == [(0, 6), (6, 4), (10, 1), (11, 6), (17, 4)]
    emtcs.decompress(tmp_path / "flash.tcs", tmp_path / "out.tif", decoder="gaptv", frames="10:11")
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "out.tif"), b[0])


def test_a_cut_among_the_frames_read_for_the_noise_model(tmp_path):
    """The first B frames are read before encoding starts (noise model); a cut among them
    still starts a group, whose measurement is the second movie's own."""
    a, b = _movie(1), _movie(11)
    tifffile.imwrite(tmp_path / "early.tif", np.concatenate([a[:4], b[:16]]))
    tifffile.imwrite(tmp_path / "b.tif", b[:16])
    info = emtcs.compress(tmp_path / "early.tif", B=10, quantise=0)
    assert info["cuts"] == [4]
    assert [(g["start"], g["length"]) for g in info["groups"]] == [(0, 4), (4, 10), (14, 6)]
    emtcs.compress(tmp_path / "b.tif", B=10, quantise=0)
    with emtcs.open(tmp_path / "early.tcs") as joined, emtcs.open(tmp_path / "b.tcs") as alone:
        for g in (0, 1):
            np.testing.assert_array_equal(joined.measurement(g + 1), alone.measurement(g))


def test_info_shows_the_groups_and_the_cuts(tmp_path):
    src = tmp_path / "joined.tif"
    tifffile.imwrite(src, np.concatenate([_movie(1)[:17], _movie(11)[:13]]))
    emtcs.compress(src, B=10)
    from click.testing import CliRunner

    from emtcs.cli import main

    shown = json.loads(CliRunner().invoke(main, ["info", str(tmp_path / "joined.tcs"), "--json"]).output)
    assert shown["cuts"] == [17] and shown["groups"][2] == {"start": 17, "length": 10}
    text = CliRunner().invoke(main, ["info", str(tmp_path / "joined.tcs")]).output
    assert "4 measurements of B=10 frames (2 shorter)" in text and "no group holds frames from both sides" in text


def _panning(step: int, n: int = 12) -> np.ndarray:
    """Counted frames of one smooth specimen, panned ``step`` pixels per frame."""
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(5)
    field = gaussian_filter(rng.standard_normal((160, 128 + step * n)), 10.0)
    field = 200.0 * (1.0 + field / field.std() / 4)
    return rng.poisson([field[16:144, t * step : t * step + 128] for t in range(n)]).astype(np.uint16)


def test_frames_that_change_faster_than_a_group_can_follow_are_reported(tmp_path):
    """A time-lapse whose frames share little (the view moved by more than its structure's
    size) is reported by compress; the same specimen panned slowly is not."""
    for step, too_fast in ((1, False), (40, True)):
        src = tmp_path / f"pan{step}.tif"
        tifffile.imwrite(src, _panning(step))
        info = emtcs.compress(src, tmp_path / f"pan{step}.tcs", B=4)
        assert info["coherence"]["too_fast"] is too_fast, info["coherence"]
        assert info["coherence"]["within_frames"] > 0.5
    result = CliRunner().invoke(main, ["compress", str(src), "-B", "4", "--force"])
    assert result.exit_code == 0 and "change faster than a group of 4" in result.output
    assert emtcs.compress(src, tmp_path / "off.tcs", B=4, cuts=False)["coherence"] is None


def _fringes(n: int, dose: float, turn: float, seed: int = 0) -> np.ndarray:
    """Counts of lattice fringes 5 px apart over a flat background, the lattice turned by
    ``turn`` radians a frame (a crystal turning in place)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[:96, :96]
    frames = []
    for t in range(n):
        a = 0.3 + turn * t
        frames.append(1.0 + 0.5 * np.cos(2 * np.pi * (x * np.cos(a) + y * np.sin(a)) / 5))
    return rng.poisson(dose * np.stack(frames)).astype(np.uint16)


@pytest.mark.parametrize(
    ("dose", "turn", "loses"),
    [(200.0, 0.01, True), (200.0, 0.0, False), (0.5, 0.01, False)],
)
def test_fine_detail_that_changes_within_a_group_is_reported(tmp_path, dose, turn, loses):
    """Fringes well above the noise that turn from frame to frame are reported (binned, they
    hardly change: not too fast); still fringes are not, nor turning fringes under the
    noise (0.5 e/px), where there is little detail to lose."""
    src = tmp_path / "fringes.tif"
    tifffile.imwrite(src, _fringes(20, dose, turn))
    coherence = emtcs.compress(src, tmp_path / "fringes.tcs", B=10)["coherence"]
    assert coherence["lag"] == 5 and coherence["loses_detail"] is loses, coherence
    assert coherence["too_fast"] is False
    if dose > 1:
        assert coherence["detail_next"] >= 0.3
    result = CliRunner().invoke(main, ["compress", str(src), "-B", "10", "--force"])
    said = " ".join(result.output.split())  # as the console wrapped it
    assert result.exit_code == 0 and ("changes within a group of 10" in said) is loses


def test_fine_detail_is_followed_only_with_a_lag():
    from emtcs.cuts import CutDetector

    frames = _fringes(8, 200.0, 0.01)
    plain = CutDetector()
    for f in frames:
        plain.add(f)
    coherence = plain.coherence()
    assert coherence.detail_next is None and coherence.loses_detail is False
    assert coherence.to_json()["detail_next"] is None
    with pytest.raises(ValueError, match="at least 2"):
        CutDetector(lag=1)


def _still_then_turning(dose: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Counts and truth of fringes 10 px apart: 15 frames still, then 15 turning by 0.03
    radians a frame from where they stood."""
    y, x = np.mgrid[:96, :96]
    angles = [0.3] * 15 + [0.3 + 0.03 * k for k in range(1, 16)]
    truth = dose * np.stack([1.0 + 0.5 * np.cos(2 * np.pi * (x * np.cos(a) + y * np.sin(a)) / 10) for a in angles])
    return np.random.default_rng(seed).poisson(truth).astype(np.uint16), truth


def test_the_report_says_how_many_frames_keep_the_detail_and_that_b_keeps_it(tmp_path):
    """Turning fringes keep half their detail's correlation over a few frames: compress says
    how many, and at that B the turning frames decode closer to the truth than at B = 10."""
    from emtcs.metrics import psnr

    counts, truth = _still_then_turning(200.0)
    src = tmp_path / "turn.tif"
    tifffile.imwrite(src, counts)
    coherence = emtcs.compress(src, tmp_path / "b10.tcs", B=10)["coherence"]
    assert coherence["loses_detail"] and 2 <= coherence["detail_frames"] <= 5, coherence
    suggested = max(2, round(coherence["detail_frames"]))
    emtcs.compress(src, tmp_path / "short.tcs", B=suggested)
    turning = slice(15, 30)
    scores = {}
    for name in ("b10", "short"):
        emtcs.decompress(tmp_path / f"{name}.tcs", tmp_path / f"{name}.tif")
        decoded = tifffile.imread(tmp_path / f"{name}.tif").astype(np.float64)
        scores[name] = psnr(truth[turning], decoded[turning], data_range=float(np.ptp(truth)))
    assert scores["short"] > scores["b10"] + 1.0, scores
    result = CliRunner().invoke(main, ["compress", str(src), "-B", "10", "--force"])
    said = " ".join(result.output.split())
    assert result.exit_code == 0 and f"-B {suggested} would keep it" in said, said


@pytest.mark.parametrize(("dose", "turn"), [(200.0, 0.0), (0.5, 0.01)])
def test_no_run_of_detail_ends_where_it_stands_still_or_under_the_noise(dose, turn):
    """Still fringes, and turning fringes under the noise, give no length to keep."""
    from emtcs.cuts import CutDetector

    detector = CutDetector(lag=5)
    for frame in _fringes(20, dose, turn):
        detector.add(frame)
    assert detector.coherence().detail_frames is None
