"""Finishing decoded tiles with non-local means (emtcs.finish)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile

torch = pytest.importorskip("torch")

import emtcs  # noqa: E402
from emtcs.decoding import DecodeSettings  # noqa: E402
from emtcs.errors import InputError  # noqa: E402
from emtcs.finish import PATCH, SEARCH, finisher, noise_sigma, nonlocal_means  # noqa: E402
from emtcs.metrics import psnr  # noqa: E402


def _by_definition(frame: np.ndarray, sigma: float, h: float) -> np.ndarray:
    """Non-local means as the module docstring defines it, pixel by pixel."""
    c, P = PATCH // 2, PATCH
    pad = 2 * SEARCH + c
    xp = np.pad(frame.astype(np.float64), pad, mode="reflect")
    out = np.empty(frame.shape)
    for i in range(frame.shape[0]):
        for j in range(frame.shape[1]):
            pi, pj = i + pad, j + pad
            patch = xp[pi - c : pi + c + 1, pj - c : pj + c + 1]
            num = den = 0.0
            for dy in range(-SEARCH, SEARCH + 1):
                for dx in range(-SEARCH, SEARCH + 1):
                    other = xp[pi + dy - c : pi + dy + c + 1, pj + dx - c : pj + dx + c + 1]
                    d2 = float(np.sum((patch - other) ** 2))
                    w = np.exp(-max(d2 - 2 * sigma**2 * P**2, 0.0) / (h**2 * P**2))
                    num += w * xp[pi + dy, pj + dx]
                    den += w
            out[i, j] = num / den
    return out


def test_nonlocal_means_follows_its_definition():
    rng = np.random.default_rng(0)
    frames = rng.random((3, 13, 17)).astype(np.float32)
    # the third frame's weights are mostly far below exp(-80)
    sigma, h = np.array([0.1, 0.3, 0.001], np.float32), np.array([0.2, 0.25, 0.002], np.float32)
    got = nonlocal_means(torch.from_numpy(frames), torch.from_numpy(sigma), torch.from_numpy(h)).numpy()
    for k in range(3):
        np.testing.assert_allclose(got[k], _by_definition(frames[k], float(sigma[k]), float(h[k])), atol=2e-5)


def test_noise_sigma_of_white_noise_on_smooth_content():
    rng = np.random.default_rng(1)
    ramp = np.add.outer(np.linspace(0, 5, 128), np.linspace(0, 3, 128))
    frames = np.stack([ramp + rng.normal(0, s, ramp.shape) for s in (0.05, 0.2)]).astype(np.float32)
    np.testing.assert_allclose(noise_sigma(torch.from_numpy(frames)).numpy(), [0.05, 0.2], rtol=0.05)


def test_finishing_removes_noise_and_leaves_flat_tiles_alone():
    rng = np.random.default_rng(2)
    yy, xx = np.mgrid[:64, :64]
    clean = (1 + 0.5 * np.sin(xx / 3.0) * np.cos(yy / 4.0)).astype(np.float32)
    tiles = np.stack([np.stack([clean + rng.normal(0, 0.1, clean.shape) for _ in range(3)])]).astype(np.float32)
    finish = finisher("nlm", "cpu")
    out = finish(tiles)
    assert out.shape == tiles.shape and out.dtype == np.float32
    before = psnr(clean, tiles[0, 0], data_range=1.0)
    assert psnr(clean, out[0, 0], data_range=1.0) > before  # the default is a light touch
    full = finisher("nlm", "cpu", strength=1.0)(tiles)  # told the noise as estimated: it removes most of it
    assert psnr(clean, full[0, 0], data_range=1.0) > before + 3
    flat = np.full((1, 2, 32, 32), 0.7, np.float32)
    np.testing.assert_array_equal(finish(flat), flat)
    assert finisher("none") is None
    with pytest.raises(ValueError, match="unknown finishing"):
        finisher("bm3d")
    with pytest.raises(InputError, match="--finish"):
        DecodeSettings(finish="bm3d")


def test_decompress_finishes_learned_decoders_unless_told_not_to(tmp_path):
    from conftest import drifting_movie

    tifffile.imwrite(tmp_path / "m.tif", drifting_movie(n=12, shape=(48, 40), seed=3))
    emtcs.compress(tmp_path / "m.tif", B=6)
    out = {}
    for decoder in ("gapunet", "gaptv"):
        for finish in ("none", "nlm"):
            name = f"{decoder}-{finish}"
            report = emtcs.decompress(tmp_path / "m.tcs", tmp_path / f"{name}.tif", decoder=decoder, finish=finish)
            assert report.decoder.get("finish") == (finish if decoder == "gapunet" else None)  # what was done
            json.dumps(report.decoder)  # reported as it is
            out[name] = tifffile.imread(tmp_path / f"{name}.tif").astype(np.float64)
    plain, done = out["gapunet-none"], out["gapunet-nlm"]
    assert not np.array_equal(plain, done)
    assert np.abs(plain - done).mean() < 0.2 * plain.std()  # a light touch, not another movie
    np.testing.assert_array_equal(out["gaptv-none"], out["gaptv-nlm"])  # GAP-TV's frames are left alone


def test_strengths_share_their_patch_distances():
    rng = np.random.default_rng(3)
    frames = torch.from_numpy(rng.random((2, 20, 24)).astype(np.float32))
    sigma = torch.tensor([[0.05, 0.1], [0.2, 0.3]])
    both = nonlocal_means(frames, sigma, 0.8 * sigma)
    for k in range(2):
        np.testing.assert_allclose(both[k].numpy(), nonlocal_means(frames, sigma[k], 0.8 * sigma[k]).numpy(), atol=1e-6)


def test_frames_in_pieces_give_the_same_result(monkeypatch):
    import emtcs.finish

    frames = torch.from_numpy(np.random.default_rng(5).random((5, 20, 24)).astype(np.float32))
    sigma = torch.tensor([[0.05, 0.1, 0.2, 0.0, 0.3], [0.2, 0.3, 0.1, 0.1, 0.0]])
    whole = nonlocal_means(frames, sigma, 0.8 * sigma + 0.01)
    monkeypatch.setattr(emtcs.finish, "_CPU_PIECE", 1)  # one frame per piece
    torch.testing.assert_close(nonlocal_means(frames, sigma, 0.8 * sigma + 0.01), whole, rtol=0, atol=0)


def test_measurement_guided_strength_keeps_the_residual_at_the_noise():
    from emtcs.decoders.guard import noise_ratio
    from emtcs.finish import LADDER, SLACK

    rng = np.random.default_rng(4)
    B, n = 6, 64
    yy, xx = np.mgrid[:n, :n]
    smooth = 1 + 0.3 * np.cos(2 * np.pi * xx / 17) * np.cos(2 * np.pi * yy / 23)
    lattice = 1 + 0.3 * np.cos(2 * np.pi * xx / 3.1) * np.cos(2 * np.pi * yy / 3.4)
    C = (rng.random((2, B, n, n)) < 0.5).astype(np.float32)
    epu = 10.0  # electrons per unit
    # tile 0: a decoder that kept the shot noise in its frames, which the measurement
    # allows to be removed; tile 1: clean fine fringes the measurement knows to the
    # electron, told so by a tiny noise, so any blur of them leaves the data
    noisy = rng.poisson(np.broadcast_to(smooth, (B, n, n)) * epu) / epu
    tiles = np.stack([noisy, np.broadcast_to(lattice, (B, n, n))]).astype(np.float32)
    y = np.einsum("nbhw,nbhw->nhw", C, tiles)
    epus = (epu, 1e6)
    fixed = {s: finisher("nlm", "cpu", strength=s) for s in LADDER}
    finish = finisher("nlm", "cpu")
    chosen = []
    for t in range(2):
        one, yt, Ct = tiles[t : t + 1], y[t : t + 1], C[t : t + 1]
        ratio = {s: float(noise_ratio(yt, Ct, fixed[s](one), epus[t])[0]) for s in LADDER}
        allowed = max(1.0, float(noise_ratio(yt, Ct, one, epus[t])[0]) + SLACK)
        expect = max([s for s in LADDER if ratio[s] <= allowed], default=LADDER[0])
        np.testing.assert_allclose(finish(one, yt, Ct, epus[t]), fixed[expect](one), atol=1e-6)
        chosen.append(expect)
    assert chosen[0] > LADDER[0] and chosen[1] == LADDER[0]
    np.testing.assert_allclose(finish(tiles), fixed[0.5](tiles), atol=1e-6)  # no measurement: the fixed strength
