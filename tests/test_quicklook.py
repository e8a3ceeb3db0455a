"""``emtcs preview``: one frame per group, the mean of its frames, from the measurement alone."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

import emtcs
from conftest import drifting_movie
from emtcs.container import TcsReader
from emtcs.quicklook import group_mean


def _tcs(tmp_path, frames: np.ndarray, B: int, **kwargs):
    src, tcs = tmp_path / "m.tif", tmp_path / "m.tcs"
    tifffile.imwrite(src, frames, imagej=True, resolution=(4.0, 4.0), metadata={"unit": "nm", "finterval": 0.01})
    emtcs.compress(src, tcs, B=B, **kwargs)
    return tcs


@pytest.mark.parametrize("B", [2, 5])
def test_a_still_specimen_comes_back_as_it_is(tmp_path, B):
    """Held still and stored exactly, every pixel's mean is the frame, also where no frame
    of the group recorded it (a quarter of the pixels at B = 2, filled from neighbours)."""
    frame = np.full((32, 40), 1000, np.uint16)
    frame[:, 20:] = 3000  # an edge the filled pixels must not smear much
    tcs = _tcs(tmp_path, np.repeat(frame[None], 2 * B, 0), B, quantise=0)
    with TcsReader(tcs) as r:
        unrecorded = r.frame_counts(0) == 0
        mean = group_mean(r, 0)
    assert unrecorded.any()  # about one pixel in 2**B
    recorded = ~unrecorded
    assert np.array_equal(mean[recorded], frame[recorded].astype(np.float32))
    inside = unrecorded.copy()
    inside[:, 18:22] = False  # beside the edge a filled pixel averages both sides
    assert np.array_equal(mean[inside], frame[inside].astype(np.float32))


@pytest.mark.parametrize("dtype", [np.uint16, np.float32, np.int16, np.uint8])
def test_a_moving_specimen_comes_back_near_its_group_mean(tmp_path, dtype):
    frames = drifting_movie(20, (48, 48), dtype=dtype)
    tcs = _tcs(tmp_path, frames, 10)
    out = tmp_path / "p.tif"
    spans = emtcs.preview(tcs, out)
    assert spans == [range(0, 10), range(10, 20)]
    got = tifffile.imread(out)
    assert got.dtype == frames.dtype  # in the source's values (float and signed sources are mapped to levels)
    got = got.astype(float)
    for k, span in enumerate(spans):
        truth = frames[span.start : span.stop].astype(float).mean(0)
        first = frames[span.start].astype(float)
        # closer to the group's mean than its first frame is (the movie drifts 0.36 px a frame)
        assert np.abs(got[k] - truth).mean() < 0.5 * np.abs(first - truth).mean()


def test_bin_frames_and_calibration(tmp_path):
    frames = drifting_movie(25, (50, 44))
    tcs = _tcs(tmp_path, frames, 10)  # groups 0:10, 10:20, 20:25
    out = tmp_path / "p.tif"
    spans = emtcs.preview(tcs, out, binning=4, frames="12:21")
    assert spans == [range(10, 20), range(20, 25)]
    with tifffile.TiffFile(out) as tif:
        got = tif.asarray()
        xres = tif.pages[0].tags["XResolution"].value
        assert tif.imagej_metadata["finterval"] == pytest.approx(0.1)  # B frames
    assert got.shape == (2, 12, 11) and got.dtype == frames.dtype
    assert xres[0] / xres[1] == pytest.approx(1.0)  # 4 pixels per nm, binned 4 x 4
    truth = frames[10:20, :48, :44].astype(float).mean(0).reshape(12, 4, 11, 4).mean((1, 3))
    span = float(frames.max() - frames.min())
    assert np.abs(got[0] - truth).mean() < 0.01 * span, np.abs(got[0] - truth).mean() / span


def test_cli_errors_and_no_partial_output(run, tmp_path):
    tcs = _tcs(tmp_path, drifting_movie(6, (16, 16)), 3)
    assert run("preview", tcs, "-q").exit_code == 0
    assert (tmp_path / "m-preview.tif").exists()
    r = run("preview", tcs, "-q")
    assert r.exit_code == 1 and "exists (use --force" in r.output
    for args, message in (
        (("--bin", "0"), "--bin must be a whole number"),
        (("--bin", "17"), "--bin 17 is larger than the 16x16 frames"),
        (("--frames", "7:9"), "selects no frames"),
    ):
        r = run("preview", tcs, "-o", tmp_path / "x.tif", *args)
        assert r.exit_code == 1 and message in r.output and len(r.output.strip().splitlines()) == 1, r.output
    assert not (tmp_path / "x.tif").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m-preview.tif", "m.tcs", "m.tif"]
    other = tmp_path / "n.tcs"
    other.write_bytes(tcs.read_bytes())
    r = run("preview", tcs, other, "-o", tmp_path / "x.tif")
    assert r.exit_code == 2 and "-o names the output of one INPUT" in r.output
    assert run("preview", tcs, other, "--bin", "2", "--force", "-q").exit_code == 0  # one preview beside each
    assert [tifffile.imread(tmp_path / f"{n}-preview.tif").shape for n in "mn"] == [(2, 8, 8)] * 2
