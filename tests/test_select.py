"""``select`` (what ``auto`` decodes with when GapUNet weights serve B): per tile, GapUNet's
frames or its GAP-TV start, whichever predicts withheld measurement pixels better."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch")

from emtcs import zoo  # noqa: E402
from emtcs.decoders import for_noise, get_decoder, resolve_decoder  # noqa: E402
from emtcs.decoders.gaptv import gap_tv  # noqa: E402
from emtcs.decoders.guard import HOLDOUT_FRACTION, holdout_pixels, prediction_error, withhold  # noqa: E402
from emtcs.decoders.select import BLEND_FROM, BLEND_WEIGHT, MARGIN  # noqa: E402
from emtcs.sensing import encode, masks  # noqa: E402
from emtcs.simulate import MovieSimulator, SimulationConfig  # noqa: E402

B = 10


def _tiles(n=2, size=48, dose=20.0):
    ys, Cs = [], []
    for k in range(n):
        sim = MovieSimulator(SimulationConfig(n_frames=B, shape=(size, size), dose=dose, seed=20 + k))
        x = np.stack([sim.noisy_frame(t) for t in range(B)]).astype(np.float32)
        C = masks(k, B, (size, size)).astype(np.float32)
        ys.append(encode(x, C).astype(np.float32))
        Cs.append(C)
    y, C = np.stack(ys), np.stack(Cs)
    scale = float(np.percentile(y / np.maximum(C.sum(1), 1), 99.9))
    return y / scale, C, scale


def _shipped():
    path = zoo.find_weights("gapunet", B)
    if path is None:
        pytest.skip("no GapUNet weights serve B=10")
    return path


def test_auto_is_select_where_gapunet_weights_serve_b():
    _shipped()
    assert resolve_decoder("auto", B)[0] == "select"


def test_the_network_serves_groups_of_2_to_60_frames():
    """The shipped weights serve B = 2 ... 60 (measured there, models/gapunet-w24s2.md): the
    short groups at a cut or the end of a movie and groups of 21 ... 60 get ``select``
    (``auto`` no longer hands 21 ... 30 to TCS-DL); longer ones than 60 go to GAP-TV."""
    from emtcs.decoders import decoder_for_group
    from emtcs.decoders.gaptv import GapTV

    info = zoo.read_info(_shipped())
    sel = get_decoder("select", B=B, device="cpu")
    assert all(decoder_for_group(sel, n) is sel for n in (2, 5, 21, 30, 40, 60))
    assert not info.serves(1) and not info.serves(61)
    assert isinstance(decoder_for_group(sel, 61), GapTV)
    assert resolve_decoder("auto", 30)[0] == resolve_decoder("auto", 60)[0] == "select"


@pytest.mark.parametrize("blend_from", [BLEND_FROM, 0.0])  # 0: every tile kept is blended
def test_select_keeps_blends_or_replaces_gapunet_s_frames_tile_by_tile(monkeypatch, blend_from):
    import emtcs.decoders.select as select

    monkeypatch.setattr(select, "BLEND_FROM", blend_from)
    y, C, scale = _tiles()
    sel = get_decoder("select", B=B, device="cpu")
    out = sel.decode(y, C, scale)
    net = get_decoder("gapunet", B=B, device="cpu").decode(y, C, scale)
    # the noise-aware GAP-TV (the shipped network starts from the accelerated one)
    tv = get_decoder("gaptv").decode(y, C, scale)
    assert sel.tiles == 2 and sel.scores.shape == (2, 2)
    outcomes = set()
    for k in range(2):
        ratio = sel.scores[k, 0] / sel.scores[k, 1]
        if ratio < blend_from:
            np.testing.assert_array_equal(out[k], net[k])
            outcomes.add("kept")
        elif ratio <= MARGIN:
            np.testing.assert_allclose(out[k], BLEND_WEIGHT * net[k] + (1 - BLEND_WEIGHT) * tv[k], atol=1e-2)
            outcomes.add("blended")
        else:
            np.testing.assert_allclose(out[k], tv[k], atol=1e-2)
            outcomes.add("replaced")
    if blend_from == 0.0:  # both tiles score well below GAP-TV with the shipped weights
        assert outcomes == {"blended"}, sel.scores
        # the quality figure scores the blend of the hold-out decodes, not GapUNet's alone
        hold = holdout_pixels(y.shape[-2:], HOLDOUT_FRACTION)
        y_seen, C_seen = withhold(y, C, hold)
        net_h = get_decoder("gapunet", B=B, device="cpu", mirrors=1, shift=False).decode(
            y_seen, C_seen, scale
        )  # as select judges
        tv_h = get_decoder("gaptv").decode(y_seen, C_seen, scale)
        mixed = BLEND_WEIGHT * net_h + (1 - BLEND_WEIGHT) * tv_h
        assert sel.holdout[1] == 2
        assert sel.holdout[0] == pytest.approx(prediction_error(y, C, mixed, hold, scale).sum(), rel=1e-3)


def test_a_broken_network_is_replaced_by_gap_tv_everywhere(tmp_path):
    import torch

    info, state = zoo.load_weights(_shipped())
    broken = {k: (v + torch.randn_like(v) * 0.5) if v.is_floating_point() else v for k, v in state.items()}
    broken["step"] = torch.full_like(state["step"], 1.5)
    path = tmp_path / "gapunet-broken.safetensors"
    zoo.save_weights(path, broken, info["config"], serves=info.get("serves", "any"))
    y, C, scale = _tiles()
    sel = get_decoder("select", B=B, device="cpu", weights=path)
    out = sel.decode(y, C, scale)
    assert sel.replaced == 2, sel.scores
    np.testing.assert_allclose(out, get_decoder("gaptv").decode(y, C, scale), atol=1e-2)  # torch: no TV early stop
    # where the noise level is a guess, GAP-TV is the reference's, accelerated throughout
    guessed = for_noise(sel, measured=False)
    assert guessed.net is sel.net and not guessed.noise_measured and sel.noise_measured
    np.testing.assert_allclose(guessed.decode(y, C, scale), np.stack([gap_tv(y[k], C[k]) for k in range(2)]), atol=2e-3)
    assert guessed.replaced - sel.replaced == 2  # counters start where the original stood


def test_reports_count_the_tiles_select_gave_to_gap_tv(tmp_path):
    """Broken weights: select gives every tile to GAP-TV, and the report counts each once
    (the guard behind it keeps them), per group, the groups decoded as one run."""
    import torch

    import emtcs

    info, state = zoo.load_weights(_shipped())
    broken = {k: v + torch.randn_like(v) * 0.5 for k, v in state.items()}
    path = tmp_path / "gapunet-broken.safetensors"
    zoo.save_weights(path, broken, info["config"], serves=info.get("serves", "any"))
    movie, tcs = tmp_path / "m.tif", tmp_path / "m.tcs"
    emtcs.codec.write_simulation(movie, n_frames=20, shape=(64, 64), dose=100.0, seed=2)
    emtcs.compress(movie, tcs, B=B, gain=1.0)
    opts = {"decoder": "select", "device": "cpu", "tile": 64, "overlap": 16, "decoder_options": {"weights": path}}
    report = emtcs.decompress(tcs, tmp_path / "m-out.tif", **opts)
    assert report.fallback == {0: (1, 1), 1: (1, 1)}, report.fallback


def test_decompress_reports_how_well_the_frames_predict_withheld_measurements(tmp_path):
    """The hold-out score of the frames select kept, per group: a quality figure without a
    reference, in shot-noise units where the file has a noise model, absent where not."""
    import emtcs

    _shipped()
    movie, tcs = tmp_path / "m.tif", tmp_path / "m.tcs"
    emtcs.codec.write_simulation(movie, n_frames=20, shape=(64, 64), dose=100.0, seed=2)
    emtcs.compress(movie, tcs, B=B, gain=1.0)
    report = emtcs.decompress(tcs, tmp_path / "m-out.tif", decoder="select", device="cpu", tile=64, overlap=16)
    scores = report.holdout_scores()
    assert sorted(scores) == [0, 1] and all(0.8 < s < 3.0 for s in scores.values()), scores
    assert report.to_json()["holdout_scores"] == {str(g): s for g, s in scores.items()}
    plain = emtcs.decompress(tcs, tmp_path / "gaptv.tif", decoder="gaptv", tile=64, overlap=16)
    assert plain.holdout_scores() == {} and plain.to_json()["holdout_scores"] == {}


def test_decompress_reports_the_tiles_select_blended(tmp_path, monkeypatch):
    import emtcs
    import emtcs.decoders.select as select

    _shipped()
    movie, tcs = tmp_path / "m.tif", tmp_path / "m.tcs"
    emtcs.codec.write_simulation(movie, n_frames=20, shape=(64, 64), dose=100.0, seed=2)
    emtcs.compress(movie, tcs, B=B, gain=1.0)
    opts = {"decoder": "select", "device": "cpu", "tile": 64, "overlap": 16}
    kept = emtcs.decompress(tcs, tmp_path / "kept.tif", **opts)
    monkeypatch.setattr(select, "BLEND_FROM", 0.0)  # every tile GapUNet keeps is blended
    mixed = emtcs.decompress(tcs, tmp_path / "mixed.tif", **opts)
    assert kept.blended == {} and kept.guard_summary() is None
    assert mixed.blended == {0: 1, 1: 1}, mixed.blended
    assert mixed.to_json()["blended_tiles"] == {"0": 1, "1": 1}
    assert "select: 2 of 2 tiles (2 of 2 groups) blended 0.75:0.25 with GAP-TV" in mixed.guard_summary()


def test_holdout_scores_need_a_measured_noise(tmp_path):
    """A movie quantised at its measured sigma (gaussian-v1) is scored in units of that noise;
    one whose noise could not be measured at all gets no score (its unit would be a guess)."""
    import tifffile
    from scipy.ndimage import gaussian_filter

    import emtcs

    _shipped()
    rng = np.random.default_rng(4)
    yy, xx = np.mgrid[0:96, 0:96]
    clean = 110 + 60 * np.sin(xx / 7.0) * np.cos(yy / 9.0)
    noisy = np.clip(np.rint(clean + rng.normal(0, 5.0, (B, 96, 96))), 0, 255).astype(np.uint8)
    changing = np.clip(np.rint(gaussian_filter(rng.normal(100, 30, (B, 96, 96)), (0, 3, 3))), 0, 255).astype(np.uint8)
    scores = {}
    for name, frames in (("noisy", noisy), ("changing", changing)):
        tifffile.imwrite(tmp_path / f"{name}.tif", frames)
        info = emtcs.compress(tmp_path / f"{name}.tif", B=B)
        assert info["noise"] is None
        report = emtcs.decompress(
            tmp_path / f"{name}.tcs", tmp_path / f"{name}-out.tif", decoder="select", device="cpu", tile=64, overlap=16
        )
        scores[name] = (info["measurement_coding"], report.holdout_scores())
    assert scores["noisy"][0] == "gaussian-v1" and 0.8 < scores["noisy"][1][0] < 3.0, scores
    assert scores["changing"] == ("exact", {}), scores
