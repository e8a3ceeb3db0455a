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


def _by_definition(frames: np.ndarray, t: int, sigma: float, h: float, temporal: int = 0, reach: int = 0) -> np.ndarray:
    """Non-local means of frame ``t`` as the module docstring defines it, pixel by pixel: its own
    frame searched SEARCH pixels around, the ``temporal`` frames either side ``reach`` pixels."""
    c, P = PATCH // 2, PATCH
    pad = 2 * max(SEARCH, reach) + c
    xp = np.pad(frames.astype(np.float64), ((0, 0), (pad, pad), (pad, pad)), mode="reflect")
    out = np.empty(frames.shape[1:])
    near = [(0, SEARCH)] + [(dt, reach) for dt in range(-temporal, temporal + 1) if dt and 0 <= t + dt < len(frames)]
    for i in range(out.shape[0]):
        for j in range(out.shape[1]):
            pi, pj = i + pad, j + pad
            patch = xp[t, pi - c : pi + c + 1, pj - c : pj + c + 1]
            num = den = 0.0
            for dt, r in near:
                for dy in range(-r, r + 1):
                    for dx in range(-r, r + 1):
                        other = xp[t + dt, pi + dy - c : pi + dy + c + 1, pj + dx - c : pj + dx + c + 1]
                        d2 = float(np.sum((patch - other) ** 2))
                        w = np.exp(-max(d2 - 2 * sigma**2 * P**2, 0.0) / (h**2 * P**2))
                        num += w * xp[t + dt, pi + dy, pj + dx]
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
        np.testing.assert_allclose(got[k], _by_definition(frames, k, float(sigma[k]), float(h[k])), atol=2e-5)


def test_nonlocal_means_searches_the_neighbouring_frames_of_each_group():
    rng = np.random.default_rng(6)
    frames = rng.random((5, 11, 13)).astype(np.float32)  # two groups: frames 0-2 and 3-4
    sigma, h = np.full(5, 0.2, np.float32), np.array([0.3, 0.25, 0.35, 0.3, 0.2], np.float32)
    got = nonlocal_means(
        torch.from_numpy(frames), torch.from_numpy(sigma), torch.from_numpy(h), group=3, temporal=2, temporal_search=1
    ).numpy()
    for t in range(5):
        first = 0 if t < 3 else 3
        run = frames[first : first + 3]  # only the frames of its own group
        want = _by_definition(run, t - first, float(sigma[t]), float(h[t]), temporal=2, reach=1)
        np.testing.assert_allclose(got[t], want, atol=2e-5)
    alone = nonlocal_means(torch.from_numpy(frames), torch.from_numpy(sigma), torch.from_numpy(h)).numpy()
    assert np.abs(got - alone).max() > 1e-3  # the neighbours count


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
    around = nonlocal_means(frames, sigma, 0.8 * sigma + 0.01, group=3, temporal=2)
    monkeypatch.setattr(emtcs.finish, "_CPU_PIECE", 1)  # one frame per piece
    torch.testing.assert_close(nonlocal_means(frames, sigma, 0.8 * sigma + 0.01), whole, rtol=0, atol=0)
    # the pairs of neighbouring frames add up in another order
    torch.testing.assert_close(nonlocal_means(frames, sigma, 0.8 * sigma + 0.01, group=3, temporal=2), around)


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
        # (to float32 rounding: the ladder's frames go in other pieces, its neighbours' pairs add up in another order)
        np.testing.assert_allclose(finish(one, yt, Ct, epus[t]), fixed[expect](one), atol=1e-5)
        chosen.append(expect)
    assert chosen[0] > LADDER[0] and chosen[1] == LADDER[0]
    np.testing.assert_allclose(finish(tiles), fixed[0.5](tiles), atol=1e-5)  # no measurement: the fixed strength
    # another ladder: its weakest rung where none keeps the residual (the lattice tile)
    one = finisher("nlm", "cpu", ladder=(1.25, 1.5))(tiles[1:], y[1:], C[1:], epus[1])
    np.testing.assert_allclose(one, fixed[1.25](tiles[1:]), atol=1e-5)
