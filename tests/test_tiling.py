"""Tiled reconstruction: stitching agrees with untiled decoding, at every size and edge."""

from __future__ import annotations

import numpy as np
import pytest

import emtcs
from conftest import drifting_movie
from emtcs.decoders.base import Decoder
from emtcs.metrics import psnr
from emtcs.sensing import ArrayMasks, encode, masks
from emtcs.tiling import blend_window, reconstruct_group, tile_starts


def test_tile_grid_covers_every_pixel_with_overlap():
    for length in (1, 7, 256, 257, 300, 480, 481, 1000):
        starts = tile_starts(length, 256, 32)
        covered = np.zeros(length, bool)
        for s in starts:
            covered[s : s + 256] = True
            assert 0 <= s and s + min(256, length) <= length
        assert covered.all()
        assert all(b - a <= 224 for a, b in zip(starts, starts[1:]))


def test_blend_window_positive_and_tapers_only_towards_neighbours():
    w = blend_window(64, 16, left=True, right=False)
    assert (w > 0).all() and w[-1] == 1 and w[0] < 0.05
    assert np.all(np.diff(w[:16]) > 0)
    np.testing.assert_array_equal(blend_window(10, 16, False, False), np.ones(10))


def _group(shape, B=8, seed=3):
    frames = drifting_movie(B, shape, np.float32) + 0.6
    m = masks(seed, B, shape)
    return frames, m, encode(frames, m).astype(np.float32)


def test_stitched_equals_untiled_gaptv():
    frames, m, y = _group((200, 230))
    untiled = emtcs.reconstruct(y, m, "gaptv", tile=256, scale=1.0)
    tiled = emtcs.reconstruct(y, m, "gaptv", tile=96, overlap=32, scale=1.0)
    rng = float(untiled.max() - untiled.min())
    assert psnr(untiled, tiled, data_range=rng) >= 45.0
    assert psnr(frames, tiled, data_range=float(frames.max() - frames.min())) > 25.0


@pytest.mark.parametrize("shape", [(5, 9), (1, 40), (31, 257)])
def test_small_and_odd_frames(shape):
    frames, m, y = _group(shape, B=4)
    out = emtcs.reconstruct(y, m, "gaptv", iterations=5, tile=16, overlap=4)
    assert out.shape == frames.shape and out.dtype == np.float32 and np.isfinite(out).all()


class _Oracle(Decoder):
    """Returns the truth for each tile: isolates stitching from reconstruction error."""

    name = "test-oracle"

    def __init__(self, truth: np.ndarray, y: np.ndarray, scale: float):
        self.truth, self.y, self.scale = truth, y, scale
        self.calls: list[tuple[int, int]] = []

    def decode(self, y, masks, electrons_per_unit=None):
        out = []
        for tile in y:
            # locate the tile in the measurement by exact match of its content
            h, w = tile.shape
            for r in range(self.y.shape[0] - h + 1):
                hits = [
                    c
                    for c in range(self.y.shape[1] - w + 1)
                    if np.array_equal(self.y[r : r + h, c : c + w] / self.scale, tile)
                ]
                if hits:
                    out.append(self.truth[:, r : r + h, hits[0] : hits[0] + w])
                    self.calls.append((r, hits[0]))
                    break
        return np.stack(out).astype(np.float32) / self.scale


def test_stitching_is_exact_for_consistent_tiles_and_residual_is_zero():
    rng = np.random.default_rng(0)
    truth = rng.random((3, 45, 61)).astype(np.float32) + 0.5
    m = masks(1, 3, (45, 61))
    y = encode(truth, m).astype(np.float32) + rng.random((45, 61)).astype(np.float32) * 1e-3
    dec = _Oracle(truth, y, 2.0)
    out = np.empty_like(truth)
    rows_seen = []

    def emit(rows, block):
        rows_seen.append((rows.start, rows.stop))
        out[:, rows] = block

    res = reconstruct_group(y, ArrayMasks(m), dec, emit, tile=20, overlap=6, scale=2.0)
    np.testing.assert_allclose(out, truth, rtol=1e-5)
    assert res < 1e-3
    assert rows_seen[0][0] == 0 and rows_seen[-1][1] == 45
    assert all(a[1] == b[0] for a, b in zip(rows_seen, rows_seen[1:]))
    assert len(dec.calls) == len(tile_starts(45, 20, 6)) * len(tile_starts(61, 20, 6))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"guard": -1.0}, "guard"),
        ({"batch": 0}, "batch"),
        ({"gain": 0.0}, "gain"),
        ({"tile": 8, "overlap": 8}, "overlap"),
    ],
)
def test_reconstruct_refuses_bad_settings(kwargs, message):
    from emtcs.errors import InputError

    with pytest.raises(InputError, match=message):
        emtcs.reconstruct(np.ones((16, 16)), np.ones((4, 16, 16)), **kwargs)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_reconstruct_refuses_a_measurement_that_is_not_finite(bad):
    from emtcs.errors import InputError

    y = np.ones((16, 16))
    y[3, 5] = bad
    with pytest.raises(InputError, match="all finite"):
        emtcs.reconstruct(y, np.ones((4, 16, 16)))


def test_a_pedestal_is_taken_off_for_the_decoder_and_put_back():
    from emtcs.decoders import get_decoder
    from emtcs.tiling import decode_run_bands

    frames, m, y = _group((40, 56))
    C = ArrayMasks(m)
    pedestal = 37.5
    lifted = y + pedestal * m.sum(axis=0)

    def decoded(meas, **kw):
        bands = decode_run_bands(meas[None], C, get_decoder("gaptv"), tile=32, overlap=8, gain=2.0, **kw)
        return np.concatenate([block[0] for _, block, _ in bands], axis=1)

    np.testing.assert_allclose(decoded(lifted, pedestal=pedestal), decoded(y) + pedestal, rtol=1e-5, atol=1e-3)
    assert not np.allclose(decoded(lifted), decoded(y) + pedestal, atol=1e-2)  # without it the decoder sees other data


def test_reconstruct_takes_the_detectors_offset_and_read_noise_off_for_the_decoder():
    from emtcs.errors import InputError

    frames, m, y = _group((40, 56))
    gain, offset, read_noise = 2.0, 50.0, 3.0
    pedestal = offset - gain * read_noise**2
    lifted = y + pedestal * m.sum(axis=0)
    plain = emtcs.reconstruct(y, m, "gaptv", tile=32, overlap=8, gain=gain)
    told = emtcs.reconstruct(lifted, m, "gaptv", tile=32, overlap=8, gain=gain, offset=offset, read_noise=read_noise)
    np.testing.assert_allclose(told, plain + pedestal, rtol=1e-5, atol=1e-3)
    untold = emtcs.reconstruct(lifted, m, "gaptv", tile=32, overlap=8, gain=gain)
    assert not np.allclose(untold, plain + pedestal, atol=1e-2)
    with pytest.raises(InputError, match="give gain"):
        emtcs.reconstruct(y, m, "gaptv", offset=offset)
    with pytest.raises(InputError, match="read noise"):
        emtcs.reconstruct(y, m, "gaptv", gain=gain, read_noise=-1.0)


def test_noise_pedestal_folds_the_read_noise_into_the_offset():
    from types import SimpleNamespace

    from emtcs.decoding import noise_pedestal
    from emtcs.noise import NoiseModel

    def header(noise, max_level=1000):
        return SimpleNamespace(noise=noise, value_scale=2.0, value_offset=100.0, max_level=max_level)

    # in levels: gain 2, offset (200 - 100) / 2 = 50; less gain x read noise² = 2 x 9
    assert noise_pedestal(header(NoiseModel(4.0, 200.0, 3.0))) == pytest.approx(50.0 - 18.0)
    assert noise_pedestal(header(None)) == 0.0
    assert noise_pedestal(header(NoiseModel(4.0, 1e9), max_level=255)) == 0.0  # a model far from these data
