"""The learned decoders' networks, weights files and training loop, at tiny sizes."""

from __future__ import annotations

import json
import os
import stat
from dataclasses import replace

import numpy as np
import pytest
import tifffile

torch = pytest.importorskip("torch", reason="the learned decoders need PyTorch")

import emtcs  # noqa: E402
from emtcs import zoo  # noqa: E402
from emtcs.metrics import psnr  # noqa: E402
from emtcs.nets import (
    build,  # noqa: E402
    load,  # noqa: E402
    sensing_torch,  # noqa: E402
)
from emtcs.sensing import masks  # noqa: E402

F = torch.nn.functional

TINY = {
    "tcsdl": {"arch": "tcsdl", "width": 8},
    "gapnet": {"arch": "gapnet", "stages": 2, "width": 8, "blocks": 1},
    "gapunet": {"arch": "gapunet", "stages": 2, "width": 4, "gap_iterations": 5},
    "gapunet-temporal": {"arch": "gapunet", "stages": 2, "width": 4, "gap_iterations": 5, "temporal": True},
}
#: The smallest training run the loop accepts: one scene, one clip per step, one validation sample.
TINY_RUN = {"B": [3], "patch": 16, "batch": 1, "scenes": 1, "scene_frames": 6, "scene_size": 32, "val_samples": 1}


def test_torch_forward_model_matches_numpy():
    rng = np.random.default_rng(3)
    x = rng.random((5, 9, 11)).astype(np.float32)
    C = masks(4, 5, (9, 11))
    y = sensing_torch.forward(torch.from_numpy(x), torch.from_numpy(C.astype(np.float32))).numpy()
    np.testing.assert_allclose(y, emtcs.encode(x, C), rtol=1e-6)
    r = rng.random((9, 11)).astype(np.float32)
    At = sensing_torch.adjoint(torch.from_numpy(r), torch.from_numpy(C.astype(np.float32))).numpy()
    np.testing.assert_array_equal(At, C * r[None])


def test_torch_mask_generator_matches_numpy_and_vectors():
    for seed, shape, origin in [(0, (17, 23), (0, 0)), (2**32 - 1, (5, 300), (1000, 2**20)), (77, (64, 64), (3, 5))]:
        t = sensing_torch.masks(seed, 4, shape, origin).numpy()
        np.testing.assert_array_equal(t, masks(seed, 4, shape, origin))
    from test_sensing import VECTORS

    for s, b, y, x, bit in json.loads(VECTORS.read_text())["vectors"][:40]:
        assert int(sensing_torch.masks(s, b + 1, (1, 1), (y, x))[b, 0, 0]) == bit
    from test_sensing import DENSITY_VECTORS

    for s, b, y, x, density, bit in json.loads(DENSITY_VECTORS.read_text())["vectors"][:40]:
        assert int(sensing_torch.masks(s, b + 1, (1, 1), (y, x), density=density)[b, 0, 0]) == bit
    t = sensing_torch.masks(5, 3, (40, 60), (9, 2), density=0.1875).numpy()
    np.testing.assert_array_equal(t, masks(5, 3, (40, 60), (9, 2), density=0.1875))


@pytest.mark.parametrize("arch", list(TINY))
@pytest.mark.parametrize("B", [2, 5])
def test_shapes_and_gradients(arch, B):
    torch.manual_seed(0)
    net = build(TINY[arch])
    if arch.startswith("gapunet"):  # its corrections start at zero, which leaves the inner layers without gradient
        for p in net.parameters():
            torch.nn.init.normal_(p, std=0.05)
    y = torch.rand(2, 13, 18) * B / 2
    C = (torch.rand(2, B, 13, 18) > 0.5).float()
    told = {"spread": torch.tensor([0.3, 0.6])} if arch.startswith("gapunet") else {}  # its spread conditioning too
    out, extra = net(y, C, return_all=True, **told)
    assert out.shape == (2, B, 13, 18)
    out.square().mean().backward()
    grads = [p.grad for p in net.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert sum(float(g.abs().sum()) for g in grads) > 0


def test_save_load_gives_identical_output(tmp_path):
    net = build(TINY["gapnet"]).eval()
    path = tmp_path / "gapnet-tiny.safetensors"
    zoo.save_weights(path, net.state_dict(), TINY["gapnet"], serves=[4, 5], note="test")
    info = zoo.read_info(path)
    assert info["config"] == TINY["gapnet"] and info.serves(4) and not info.serves(6) and info["note"] == "test"
    dec = emtcs.get_decoder("gapnet", weights=path, device="cpu")
    y = np.random.default_rng(0).random((1, 20, 20)).astype(np.float32)
    C = (np.random.default_rng(1).random((1, 4, 20, 20)) > 0.5).astype(np.float32)
    with torch.inference_mode():
        ref = net(torch.from_numpy(y), torch.from_numpy(C)).numpy()
        loaded = load(path)
        assert not loaded.training
        np.testing.assert_array_equal(loaded(torch.from_numpy(y), torch.from_numpy(C)).numpy(), ref)
    np.testing.assert_array_equal(dec.decode(y, C), ref)


@pytest.mark.skipif(os.name == "nt", reason="POSIX file modes")
def test_weights_files_get_the_permissions_of_any_new_file(tmp_path):
    """Like every other output (the umask decides), not owner-only as safetensors' own writer makes them."""
    umask = os.umask(0o022)
    try:
        zoo.save_weights(tmp_path / "w.safetensors", build(TINY["gapnet"]).state_dict(), TINY["gapnet"])
    finally:
        os.umask(umask)
    assert stat.S_IMODE(os.stat(tmp_path / "w.safetensors").st_mode) == 0o644


def test_tiny_model_trains_and_loss_falls(tmp_path):
    from dataclasses import replace

    from emtcs.errors import InputError
    from emtcs.training import TrainConfig, train

    cfg = TrainConfig(
        arch="gapnet",
        net={"stages": 2, "width": 8, "blocks": 1},
        B=[4],
        steps=40,
        patch=24,
        batch=4,
        lr=3e-3,
        scenes=2,
        scene_frames=12,
        scene_size=48,
        val_every=20,
        val_samples=2,
    )
    summary = train(cfg, tmp_path / "tiny", device="cpu")
    losses = [json.loads(line)["loss"] for line in (tmp_path / "tiny.log.jsonl").read_text().splitlines()]
    assert len(losses) == 40
    assert np.mean(losses[-10:]) < 0.7 * np.mean(losses[:5])
    assert (tmp_path / "tiny.safetensors").exists() and (tmp_path / "tiny.ckpt").exists()
    assert summary["validation"]["psnr"] is not None
    # resuming continues the step count from the checkpoint
    cfg.steps = 44
    again = train(cfg, tmp_path / "tiny", resume=tmp_path / "tiny.ckpt", device="cpu", force=True)
    assert again["steps"] == 44
    with pytest.raises(InputError, match="same --val-doses"):  # another validation: another best
        train(
            replace(cfg, val_doses=[20.0]), tmp_path / "tiny", resume=tmp_path / "tiny.ckpt", device="cpu", force=True
        )


def test_a_run_keeps_to_its_own_files_and_leaves_none_when_it_fails(tmp_path):
    """A new run refuses any file of an earlier one (weights, checkpoint or log) without
    --force; one that fails before its first checkpoint leaves no log behind."""
    from dataclasses import replace

    from emtcs.errors import InputError
    from emtcs.training import TrainConfig, train

    cfg = TrainConfig(arch="tcsdl", net={"width": 8}, steps=1, **TINY_RUN)
    (tmp_path / "run.log.jsonl").write_text('{"step": 1}\n')
    with pytest.raises(InputError, match="run.log.jsonl exists; use --force"):
        train(cfg, tmp_path / "run", device="cpu")
    assert (tmp_path / "run.log.jsonl").read_text() == '{"step": 1}\n'
    (tmp_path / "run.log.jsonl").unlink()
    (tmp_path / "scenes.h5").write_text("not HDF5")
    with pytest.raises(InputError, match="not an HDF5 file"):
        train(replace(cfg, scene_files=[str(tmp_path / "scenes.h5")]), tmp_path / "run", device="cpu")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scenes.h5"]
    if not torch.cuda.is_available():
        with pytest.raises(InputError, match="PyTorch sees no CUDA device"):
            train(cfg, tmp_path / "run", device="cuda")


def test_ema_saves_the_moving_average_of_the_weights(tmp_path):
    from dataclasses import replace

    from emtcs.errors import InputError
    from emtcs.training import TrainConfig, train

    torch.manual_seed(123)
    start = build(TINY["tcsdl"])
    init = tmp_path / "start.safetensors"
    zoo.save_weights(init, start.state_dict(), TINY["tcsdl"])
    # one step with decay 0.5: the saved weights are halfway between the start and the step's
    cfg = TrainConfig(arch="tcsdl", net={"width": 8}, steps=1, lr=1e-2, init=str(init), ema=0.5, **TINY_RUN)
    train(cfg, tmp_path / "avg", device="cpu")
    _, saved = zoo.load_weights(tmp_path / "avg.safetensors")
    ckpt = torch.load(tmp_path / "avg.ckpt", weights_only=True)
    moved = False
    for k, w0 in start.state_dict().items():
        w1 = ckpt["model"][k]
        torch.testing.assert_close(saved[k], (w0 + w1) / 2 if w0.is_floating_point() else w1)
        torch.testing.assert_close(ckpt["ema"][k], saved[k])
        moved |= not torch.equal(w0, w1)
    assert moved  # the step changed the weights, so the average differs from both
    # resuming continues the average from the checkpoint's
    train(replace(cfg, steps=2, init=None), tmp_path / "avg", resume=tmp_path / "avg.ckpt", device="cpu", force=True)
    again = torch.load(tmp_path / "avg.ckpt", weights_only=True)
    k = next(k for k, v in saved.items() if v.is_floating_point())
    torch.testing.assert_close(again["ema"][k], (ckpt["ema"][k] + again["model"][k]) / 2)
    with pytest.raises(InputError, match="decay in"):
        train(replace(cfg, ema=1.0), tmp_path / "bad", device="cpu")


def test_init_starts_from_given_weights(tmp_path):
    from emtcs.errors import InputError
    from emtcs.training import TrainConfig, train

    torch.manual_seed(123)  # training itself seeds 0: a missed --init would give other weights
    start = build(TINY["tcsdl"])
    init = tmp_path / "start.safetensors"
    zoo.save_weights(init, start.state_dict(), TINY["tcsdl"])
    common = TINY_RUN
    # lr 0: the weights written after training are exactly the ones it started from
    cfg = TrainConfig(arch="tcsdl", net={"width": 8}, steps=1, lr=0.0, init=str(init), **common)
    summary = train(cfg, tmp_path / "tuned", device="cpu")
    assert summary["train_config"]["init"] == str(init)
    _, tuned = zoo.load_weights(tmp_path / "tuned.safetensors")
    for k, v in start.state_dict().items():
        torch.testing.assert_close(tuned[k], v, rtol=0, atol=0)
    with pytest.raises(InputError, match="not both"):
        train(cfg, tmp_path / "both", resume=tmp_path / "tuned.ckpt", device="cpu")
    wider = TrainConfig(arch="tcsdl", net={"width": 12}, steps=1, init=str(init), **common)
    with pytest.raises(InputError, match="not {'arch': 'tcsdl', 'width': 12}"):
        train(wider, tmp_path / "wider", device="cpu")


def test_learned_decoder_tiling_equivalence(tmp_path):
    torch.manual_seed(0)
    net = build(TINY["gapnet"])
    path = tmp_path / "g.safetensors"
    zoo.save_weights(path, net.state_dict(), TINY["gapnet"])
    rng = np.random.default_rng(0)
    frames = rng.random((4, 70, 90)).astype(np.float32)
    C = masks(3, 4, (70, 90))
    y = emtcs.encode(frames, C).astype(np.float32)
    whole = emtcs.reconstruct(y, C, "gapnet", weights=path, tile=128, scale=1.0, finish="none")
    tiled = emtcs.reconstruct(y, C, "gapnet", weights=path, tile=48, overlap=16, scale=1.0, finish="none")
    # a small receptive field and 16 px of overlap: stitched tiles match the whole-frame decode
    assert psnr(whole, tiled, data_range=float(whole.max() - whole.min())) > 45
    # finished tile by tile (each at its own estimated noise) they still agree closely
    whole = emtcs.reconstruct(y, C, "gapnet", weights=path, tile=128, scale=1.0)
    tiled = emtcs.reconstruct(y, C, "gapnet", weights=path, tile=48, overlap=16, scale=1.0)
    assert psnr(whole, tiled, data_range=float(whole.max() - whole.min())) > 35


@pytest.mark.parametrize("name", ["gapunet", "tcsdl"])
def test_cpu_decoders_run_a_batch_tile_by_tile_as_the_network_would_at_once(name):
    dec = emtcs.decoders.get_decoder(name, B=10, **({"mirrors": 1, "shift": False} if name == "gapunet" else {}))
    y, C = _coded_tiles(3, seed=1)
    got = dec.decode(y, C, electrons_per_unit=30.0)
    with torch.inference_mode():
        yt, ct = torch.from_numpy(y), torch.from_numpy(C)
        epu = torch.full((3,), 30.0) if getattr(dec.net, "noise_aware", False) else None
        at_once = (dec.net(yt, ct) if epu is None else dec.net(yt, ct, epu=epu)).numpy()
    np.testing.assert_allclose(got, at_once, atol=1e-5)
    assert not np.allclose(got[0], got[1], atol=1e-3)  # the tiles are told apart


def _coded_tiles(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(y, C) of ``n`` random 40 x 48 tiles of 10 frames, each coded with masks of its own seed."""
    C = np.stack([masks(s, 10, (40, 48)) for s in range(n)]).astype(np.float32)
    x = np.random.default_rng(seed).random((n, 10, 40, 48)).astype(np.float32)
    return np.einsum("nbhw,nbhw->nhw", C, x), C


def _stages(dec, y: np.ndarray, C: np.ndarray, view):
    """GapUNet's stages run once on ``view`` of the tiles (and their GAP-TV start), mapped back."""
    with torch.inference_mode():
        yt, ct, epu = torch.from_numpy(y), torch.from_numpy(C), torch.full((len(y),), 30.0)
        start = dec.net.start(yt, ct)
        there, back = view
        return back(dec.net.refine(*(there(t) for t in (yt, ct, start)), epu)).numpy()


_SAME = (lambda t: t, lambda t: t)


def test_gapunet_averages_its_mirror_images():
    from emtcs.errors import DecoderError

    y, C = _coded_tiles(2, seed=2)
    two = emtcs.decoders.get_decoder("gapunet", B=10, mirrors=2, shift=False)
    got = two.decode(y, C, electrons_per_unit=30.0)
    # the stages on the tile and on its left-right mirror, from one GAP-TV start
    plain = _stages(two, y, C, _SAME)
    flipped = _stages(two, y, C, (lambda t: t.flip(-1), lambda t: t.flip(-1)))
    np.testing.assert_allclose(got, (plain + flipped) / 2, atol=1e-5)
    assert np.abs(flipped - plain).max() > 1e-3  # the network is not already symmetric
    with pytest.raises(DecoderError, match="mirrors"):
        emtcs.decoders.get_decoder("gapunet", B=10, mirrors=3)


def test_gapunet_shift_averages_the_decode_on_the_grid_one_pixel_over():
    import torch.nn.functional as F

    from emtcs.errors import DecoderError

    y, C = _coded_tiles(2, seed=3)
    dec = emtcs.decoders.get_decoder("gapunet", B=10, mirrors=1, shift=True)
    got = dec.decode(y, C, electrons_per_unit=30.0)
    # half the tile's decode; a quarter each the decodes of it widened by a reflected column
    # each side, as it is and mirrored up-down, cropped back
    plain = _stages(dec, y, C, _SAME)
    wide = lambda t: F.pad(t, (1, 1, 0, 0), mode="reflect")  # noqa: E731
    moved = _stages(dec, y, C, (wide, lambda t: t[..., 1:-1]))
    moved_ud = _stages(dec, y, C, (lambda t: wide(t).flip(-2), lambda t: t.flip(-2)[..., 1:-1]))
    np.testing.assert_allclose(got, plain / 2 + (moved + moved_ud) / 4, atol=1e-5)
    assert np.abs(moved - plain).max() > 1e-3  # the grid moved: another decode
    assert np.abs(moved_ud - moved).max() > 1e-3  # and its mirror image another still
    assert dec.get_config()["shift"] is True
    # with two mirror images of the tile: those, and the same two one pixel over
    two = emtcs.decoders.get_decoder("gapunet", B=10, mirrors=2, shift=True)
    flipped = _stages(dec, y, C, (lambda t: t.flip(-1), lambda t: t.flip(-1)))
    moved_lr = _stages(dec, y, C, (lambda t: wide(t).flip(-1), lambda t: t.flip(-1)[..., 1:-1]))
    np.testing.assert_allclose(
        two.decode(y, C, electrons_per_unit=30.0), (plain + flipped + moved + moved_lr) / 4, atol=1e-5
    )
    with pytest.raises(DecoderError, match="shift"):
        emtcs.decoders.get_decoder("gapunet", B=10, shift="yes")


def test_auto_passes_options_only_to_the_decoder_that_takes_them():
    from emtcs.decoders import decoder_for
    from emtcs.errors import DecoderError

    dec, notice = decoder_for("auto", 10, mirrors=4)  # select serves B = 10 and averages mirror images
    assert dec.mirrors == 4 and notice is None
    dec, notice = decoder_for("auto", 61, mirrors=4)  # no weights serve B = 61: GAP-TV, which has none
    assert dec.name == "gaptv" and "'mirrors'" in notice and "ignored" in notice
    with pytest.raises(DecoderError, match="mirors"):  # a typo is an error, not a silent default
        decoder_for("auto", 10, mirors=4)


@pytest.mark.parametrize("name", ["gapnet", "tcsdl"])
def test_shipped_weights_beat_gaptv_on_a_simulated_movie(name, tmp_path):
    for B in (10, 20, 30):
        assert zoo.find_weights(name, B) is not None, f"no shipped {name} weights serve B={B}"
    movie, clean, tcs = tmp_path / "m.tif", tmp_path / "c.tif", tmp_path / "m.tcs"
    emtcs.codec.write_simulation(movie, clean_path=clean, n_frames=20, shape=(96, 96), dose=50.0, seed=123)
    emtcs.compress(movie, tcs, B=10)
    truth = tifffile.imread(clean)
    rng = float(truth.max() - truth.min())
    scores = {}
    for dec in ("gaptv", name):
        emtcs.decompress(tcs, tmp_path / f"{dec}.tif", decoder=dec, device="cpu")
        out = tifffile.imread(tmp_path / f"{dec}.tif").astype(np.float32)
        scores[dec] = np.mean([psnr(t, o, data_range=rng) for t, o in zip(truth, out)])
    assert scores[name] > scores["gaptv"], scores


def test_short_last_group_outside_the_weights_range_falls_back_to_gaptv(tmp_path):
    movie, tcs = tmp_path / "m.tif", tmp_path / "m.tcs"
    emtcs.codec.write_simulation(movie, n_frames=13, shape=(40, 48), dose=50.0, seed=7)
    emtcs.compress(movie, tcs, B=10)  # groups of 10 and 3 frames; shipped weights serve 8..30
    emtcs.decompress(tcs, tmp_path / "t.tif", decoder="tcsdl", device="cpu")
    emtcs.decompress(tcs, tmp_path / "g.tif", decoder="gaptv")
    learned, classic = tifffile.imread(tmp_path / "t.tif"), tifffile.imread(tmp_path / "g.tif")
    assert learned.shape == (13, 40, 48)
    np.testing.assert_array_equal(learned[10:], classic[10:])
    assert not np.array_equal(learned[:10], classic[:10])


def test_clip_options_add_intensity_changes_and_scene_cuts():
    from emtcs.training import ClipPool, TrainConfig

    def jumps(**opts):
        cfg = TrainConfig(scenes=2, scene_frames=12, scene_size=48, **opts)
        pool = ClipPool(cfg, seed_offset=5, scenes=2)
        rng = np.random.default_rng(0)
        clips = [pool.clip(rng, 8, 24) for _ in range(20)]
        means = np.std([c.mean(axis=(1, 2)) / c.mean() for c in clips], axis=1).mean()
        step = np.mean([np.abs(np.diff(c, axis=0)).mean(axis=(1, 2)).max() for c in clips])
        return means, step

    calm, flicker, cut = jumps(), jumps(flicker=0.2), jumps(cuts=1.0)
    assert flicker[0] > 3 * calm[0]  # frame-to-frame intensity changes
    assert cut[1] > 2 * calm[1]  # one large jump per clip where the scene changes


def test_still_clips_hold_their_first_frame():
    """--still makes about that share of the clips one frame throughout (a specimen that
    does not move); without it no clip holds still."""
    from emtcs.training import ClipPool, TrainConfig

    def clips(still: float) -> list[np.ndarray]:
        pool = ClipPool(TrainConfig(scenes=2, scene_frames=12, scene_size=48, still=still), seed_offset=5, scenes=2)
        rng = np.random.default_rng(0)
        return [pool.clip(rng, 8, 24) for _ in range(40)]

    def held(c: np.ndarray) -> bool:
        return bool(np.all(c == c[:1]))

    plain, half, every = clips(0.0), clips(0.5), clips(1.0)
    assert not any(map(held, plain)) and all(map(held, every))
    assert 10 <= sum(map(held, half)) <= 30


def test_slow_clips_drift_their_first_frame_by_a_fraction_of_a_pixel():
    """--slow makes about that share of the clips one frame moving rigidly and steadily,
    over the clip by no more than SLOW_DRIFT allows; without it no clip moves so little."""
    from emtcs.training import ClipPool, TrainConfig
    from emtcs.training.data import SLOW_DRIFT

    B = 8

    def clips(slow: float) -> list[np.ndarray]:
        pool = ClipPool(TrainConfig(scenes=2, scene_frames=12, scene_size=96, slow=slow), seed_offset=5, scenes=2)
        rng = np.random.default_rng(0)
        return [pool.clip(rng, B, 48).astype(np.float64) for _ in range(40)]

    def drift(c: np.ndarray) -> float | None:
        """How far the first frame moves over the clip where each frame is it shifted (its
        change from the first fits the first's gradients times a shift to within 30 %) and
        the shifts grow steadily; else None."""
        inner = (slice(8, -8), slice(8, -8))
        gradients = np.stack([g[inner].ravel() for g in np.gradient(c[0])], 1)
        shifts = []
        for f in c[1:]:
            change = (c[0] - f)[inner].ravel()
            shift, residual, *_ = np.linalg.lstsq(gradients, change, rcond=None)
            if not change.any() or residual[0] > 0.09 * np.sum(change**2):
                return None
            shifts.append(shift)
        steady = np.outer(np.arange(1, B) / (B - 1), shifts[-1])
        if np.abs(np.array(shifts) - steady).max() > 0.02 + 0.1 * np.hypot(*shifts[-1]):
            return None
        return float(np.hypot(*shifts[-1]))

    limit = SLOW_DRIFT[1] * (B - 1) * 1.1  # the gradients' fit is good to a few per cent
    assert not [d for d in map(drift, clips(0.0)) if d is not None and d < limit]
    slow = [d for d in map(drift, clips(0.5)) if d is not None and d < limit]
    assert 10 <= len(slow) <= 30
    assert min(slow) >= SLOW_DRIFT[0] * (B - 1) * 0.9


def test_clip_pool_lattice_spacing_sets_the_simulated_sampling():
    """--column-spacing reaches the simulator: finer lattices put the scenes' power at
    higher spatial frequencies."""
    from emtcs.training import ClipPool, TrainConfig

    def mean_frequency(spacing):
        cfg = TrainConfig(scenes=1, scene_frames=2, scene_size=64, patch=32, column_spacing_px=spacing)
        frame = ClipPool(cfg, seed_offset=5, scenes=1).movies[0][0]
        power = np.abs(np.fft.fft2(frame - frame.mean())) ** 2
        fy, fx = np.meshgrid(*(np.fft.fftfreq(n) for n in frame.shape), indexing="ij")
        return (power * np.hypot(fy, fx)).sum() / power.sum()

    assert mean_frequency((4.0, 4.0)) > 1.5 * mean_frequency((12.0, 12.0))


def test_untrained_gapunet_is_gaptv_then_the_measurement_projection():
    from emtcs.decoders.gaptv import gap_tv
    from emtcs.nets.gapunet import GapUNet

    rng = np.random.default_rng(4)
    x = np.clip(rng.random((6, 30, 34)).cumsum(axis=1) / 30, 0, 1).astype(np.float32)
    C = masks(9, 6, (30, 34)).astype(np.float32)
    y = emtcs.encode(x, C).astype(np.float32)
    ref = gap_tv(y, C, iterations=12)
    net = GapUNet(stages=2, width=4, gap_iterations=12, kappa=1e9).eval()  # huge kappa: no projection
    with torch.inference_mode():
        out = net(torch.from_numpy(y)[None], torch.from_numpy(C)[None], epu=torch.tensor([50.0]))[0].numpy()
    np.testing.assert_allclose(out, ref, atol=1e-4)


def test_tv_denoising_in_pieces_gives_the_same_result(monkeypatch):
    from emtcs.nets import gapunet

    x = torch.from_numpy(np.random.default_rng(6).random((3, 5, 18, 22)).astype(np.float32))
    whole = gapunet.tv_denoise(x, 0.3, 5)
    monkeypatch.setattr(gapunet, "CPU_PIECE", 2 * 18 * 22)  # two frames per piece, the last one alone
    torch.testing.assert_close(gapunet.tv_denoise(x, 0.3, 5), whole, rtol=0, atol=0)


def test_gapunet_projection_bounds_the_residual_by_the_shot_noise():
    from emtcs.nets.gapunet import GapUNet

    net = GapUNet(stages=1, width=4, gap_iterations=1, kappa=1.5).eval()
    y = torch.rand(2, 16, 16) * 4 + 1
    C = (torch.rand(2, 5, 16, 16) > 0.5).float()
    epu = torch.tensor([10.0, 1000.0])
    far = torch.rand(2, 5, 16, 16) * 10  # frames that do not fit y at all
    out = net.project(far, y, C, C.sum(1).clamp(min=1), epu.reshape(2, 1, 1, 1))
    residual = (y - (C * out).sum(1)).abs()
    bound = 1.5 * torch.sqrt(y / epu.reshape(2, 1, 1))
    covered = C.sum(1) > 0
    assert bool((residual[covered] <= bound[covered] + 1e-4).all())
    assert float((y - (C * far).sum(1)).abs().max()) > 10 * float(bound.max())


def test_gapunet_decoder_uses_the_noise_level(tmp_path):
    torch.manual_seed(0)
    net = build(TINY["gapunet"])
    path = tmp_path / "gapunet-tiny.safetensors"
    zoo.save_weights(path, net.state_dict(), TINY["gapunet"])
    dec = emtcs.get_decoder("gapunet", weights=path, device="cpu")
    rng = np.random.default_rng(2)
    C = (rng.random((1, 4, 24, 24)) > 0.5).astype(np.float32)
    y = emtcs.encode(rng.random((4, 24, 24)).astype(np.float32) * 3, C[0])[None].astype(np.float32)
    # the projection allows a residual of kappa sigma: more at low dose (few electrons per unit)
    low, high = dec.decode(y, C, 0.5), dec.decode(y, C, 5000.0)
    res = [np.abs(y - np.einsum("nbhw,nbhw->nhw", C, f)).mean() for f in (low, high)]
    assert res[0] > res[1]


def test_scene_files_feed_training_clips_at_random_zoom(tmp_path):
    import h5py

    from emtcs.training import ClipPool, TrainConfig

    path = tmp_path / "scenes.h5"
    yy, xx = np.mgrid[0:40, 0:40]
    lattice = (1 + 0.5 * np.cos(xx * 2 * np.pi / 5) * np.cos(yy * 2 * np.pi / 5)).astype(np.float16)
    with h5py.File(path, "w") as f:
        f["scene_00001"] = np.stack([np.roll(lattice, t, axis=1) for t in range(6)])
    cfg = TrainConfig(simulate=False, scene_files=[str(path)], zoom=(0.5, 2.0), blur=0.0)
    pool = ClipPool(cfg, seed_offset=0, scenes=0)
    rng = np.random.default_rng(0)
    clips = [pool.clip(rng, 4, 16) for _ in range(30)]
    assert all(c.shape == (4, 16, 16) and c.dtype == np.float32 and np.isfinite(c).all() for c in clips)
    # a lattice of period 5 px magnified or shrunk: the dominant period differs between clips
    periods = set()
    for c in clips:
        spec = np.abs(np.fft.rfft(c[0] - c[0].mean(), axis=1)).mean(axis=0)
        periods.add(int(np.argmax(spec[1:])) + 1)
    assert len(periods) >= 3
    # long groups of a short movie play it back and forth
    assert pool.clip(rng, 10, 16).shape == (10, 16, 16)


def test_scene_clips_zoomed_out_average_fringes_as_larger_pixels_would(tmp_path):
    """Zooming out is a coarser detector: fringes 2 px apart seen with pixels 2.5 px wide
    keep about |sinc(1.25)| = 0.18 of their contrast, not the half that point sampling
    leaves as an aliased moire the network would learn as structure."""
    import h5py

    from emtcs.training import ClipPool, TrainConfig

    path = tmp_path / "scenes.h5"
    xx = np.arange(96)[None, :].repeat(96, axis=0)
    fringes = (1 + 0.5 * np.cos(xx * np.pi)).astype(np.float16)
    with h5py.File(path, "w") as f:
        f["scene_00001"] = np.stack([fringes] * 4)
    cfg = TrainConfig(simulate=False, scene_files=[str(path)], zoom=(0.4, 0.4), blur=0.0, flicker=0.0, cuts=0.0)
    pool = ClipPool(cfg, seed_offset=0, scenes=0)
    rng = np.random.default_rng(1)
    clips = np.stack([pool.clip(rng, 2, 32) for _ in range(8)])
    assert np.allclose(clips.mean(), 1, atol=0.02)
    assert clips.std() < 0.25 * fringes.astype(np.float32).std()


def test_clips_longer_than_the_scene_files_come_from_the_other_sources(tmp_path):
    import h5py

    from emtcs.training import ClipPool, TrainConfig

    path = tmp_path / "scenes.h5"
    with h5py.File(path, "w") as f:
        f["scene_00001"] = np.full((6, 40, 40), 7.0, np.float16)
    cfg = TrainConfig(scene_files=[str(path)], scene_frames=12, scene_size=32, blur=0.0, flicker=0.0, cuts=0.0)
    pool = ClipPool(cfg, seed_offset=0, scenes=1)
    rng = np.random.default_rng(0)

    def from_scene_file(B: int) -> int:
        return sum(bool(np.all(pool.clip(rng, B, 16) == 7.0)) for _ in range(20))

    assert from_scene_file(6) > 0
    assert from_scene_file(10) == 0


def test_training_stops_after_max_minutes_with_weights_and_checkpoint(tmp_path):
    from emtcs.training import TrainConfig, train

    cfg = TrainConfig(arch="gapunet", net={"stages": 1, "width": 4, "gap_iterations": 2}, steps=1000, **TINY_RUN)
    summary = train(cfg, tmp_path / "short", device="cpu", threads=1, max_minutes=0.0)
    assert summary["steps"] == 1 and summary["cpu_hours"] > 0
    assert (tmp_path / "short.safetensors").exists() and (tmp_path / "short.ckpt").exists()
    from emtcs.errors import InputError

    with pytest.raises(InputError, match="exists"):  # refused before any training, not at the end
        train(cfg, tmp_path / "short", device="cpu", max_minutes=0.0)


def test_simulated_scenes_leave_room_to_place_the_clips(tmp_path):
    from emtcs.training import ClipPool, TrainConfig, train

    cfg = TrainConfig(arch="tcsdl", net={"width": 4}, steps=2, **{**TINY_RUN, "patch": 48})
    assert {m.shape[1:] for m in ClipPool(cfg, seed_offset=0, scenes=1).movies} == {(96, 96)}
    summary = train(cfg, tmp_path / "large", device="cpu", threads=1)  # clips larger than scene_size
    assert summary["steps"] == 2


def test_gapunet_unet_prints_no_grid_into_its_output():
    # a stride-2 transposed convolution once printed a 4-pixel grid (spectral peaks at 1/4
    # cycles per pixel that the truth lacked); bilinear upsampling must not
    from scipy.ndimage import gaussian_filter

    from emtcs.metrics import spectral_peaks
    from emtcs.nets.gapunet import UNet

    torch.manual_seed(0)
    net = UNet(2, 1, 8)
    for p in net.parameters():
        torch.nn.init.normal_(p, std=0.1)
    rng = np.random.default_rng(0)
    smooth = gaussian_filter(rng.standard_normal((2, 128, 128)), (0, 3, 3)).astype(np.float32)
    with torch.inference_mode():
        out = net(torch.from_numpy(smooth)[None])[0, 0].numpy()
    assert spectral_peaks(out).tolist() == []


class _Conv(torch.nn.Module):
    """A one-layer "decoder": the back-projected measurement through a circular 3 x 3
    convolution (shift-equivariant), optionally times the pixel grid (-1)^x (not)."""

    def __init__(self, grid: bool):
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 1, 3, padding=1, padding_mode="circular")
        self.grid = grid

    def forward(self, y, C, return_all=False):
        x = self.conv((y[:, None] * C).reshape(-1, 1, *y.shape[-2:])).reshape(C.shape)
        if self.grid:
            x = x * (1 + 0.1 * (-1.0) ** torch.arange(C.shape[-1], dtype=x.dtype))
        return (x, []) if return_all else x


@pytest.mark.parametrize("shift", [(0, 1), (1, 0), (1, 1)])
def test_the_equivariance_loss_sees_a_pixel_grid_and_nothing_else(shift):
    from emtcs.training import TrainConfig
    from emtcs.training.losses import shift_penalty, training_loss

    torch.manual_seed(0)
    y, C = torch.rand(2, 32, 32), (torch.rand(2, 4, 32, 32) < 0.5).float()
    batch = {"y": y, "C": C, "x": torch.rand(2, 4, 32, 32)}
    plain, gridded = _Conv(grid=False), _Conv(grid=True)
    gridded.conv.load_state_dict(plain.conv.state_dict())
    assert shift_penalty(plain, batch, plain(y, C), shift).max().item() < 1e-12
    # (-1)^x changes sign under a move along x only
    assert (shift_penalty(gridded, batch, gridded(y, C), shift).min().item() > 1e-4) == (shift[1] == 1)
    with_penalty = training_loss(gridded, batch, TrainConfig(equivariance=10.0), shift=(0, 1))
    assert with_penalty.item() > training_loss(gridded, batch, TrainConfig()).item() > 0
    # under log-mse the penalty counts too, relative to each sample's error
    log_base = training_loss(gridded, batch, TrainConfig(loss="log-mse")).item()
    assert training_loss(gridded, batch, TrainConfig(equivariance=10.0, loss="log-mse"), shift=(0, 1)).item() > log_base
    with_penalty.backward()
    assert gridded.conv.weight.grad is not None


def test_training_with_the_equivariance_loss(tmp_path):
    from emtcs.training import TrainConfig, train

    # clips larger than the penalty's two 8-pixel margins
    run = {**TINY_RUN, "patch": 24, "val_every": 3}
    cfg = TrainConfig(arch="gapunet", net=TINY["gapunet"], steps=3, equivariance=5.0, **run)
    summary = train(cfg, tmp_path / "eq", device="cpu")
    losses = [json.loads(line)["loss"] for line in (tmp_path / "eq.log.jsonl").read_text().splitlines()]
    assert len(losses) == 3 and all(np.isfinite(losses))
    assert summary["train_config"]["equivariance"] == 5.0


def test_the_finished_loss_scores_the_frames_as_auto_finishes_them():
    """The differentiable finish of training is the decoders' finish (on the central crop),
    and the loss on it reaches the network's weights."""
    from emtcs.finish import finisher
    from emtcs.training import TrainConfig
    from emtcs.training.losses import FINISHED_STRENGTH, finished, training_loss

    torch.manual_seed(0)
    frames = (1 + 0.2 * torch.randn(2, 4, 40, 40)).requires_grad_(True)
    done, part = finished(frames, crop=24)
    assert (part.start, part.stop) == (8, 32) and done.shape == (2, 4, 24, 24)
    as_decoded = finisher("nlm", "cpu", strength=FINISHED_STRENGTH)(frames.detach()[..., part, part].numpy())
    np.testing.assert_allclose(done.detach().numpy(), as_decoded, atol=1e-5)
    assert 0 < float((done - frames[..., part, part]).detach().abs().mean()) < 0.2  # it filters, not wholesale
    done.sum().backward()
    assert frames.grad is not None and float(frames.grad.abs().sum()) > 0

    y, C = torch.rand(2, 32, 32), (torch.rand(2, 4, 32, 32) < 0.5).float()
    batch = {"y": y, "C": C, "x": torch.rand(2, 4, 32, 32)}
    net = _Conv(grid=False)
    loss = training_loss(net, batch, TrainConfig(finished_loss=1.0))
    assert loss.item() > training_loss(net, batch, TrainConfig()).item()
    loss.backward()
    assert float(net.conv.weight.grad.abs().sum()) > 0


def test_the_edge_weight_weighs_a_groups_first_and_last_frames():
    from emtcs.training import TrainConfig
    from emtcs.training.losses import edge_scale, training_loss

    w = edge_scale(5, 4.0).flatten() ** 2
    torch.testing.assert_close(w.mean(), torch.tensor(1.0))
    assert float(w[0]) == float(w[-1]) == 4 * float(w[1]) and float(w[1]) == float(w[2])
    y, C = torch.rand(2, 32, 32), (torch.rand(2, 4, 32, 32) < 0.5).float()
    net = _Conv(grid=False)
    with torch.no_grad():
        out = net(y, C)
    for frames, more in (([0, 3], True), ([1, 2], False)):  # an error on the edge frames alone, then inside
        x = out.clone()
        x[:, frames] += 0.1
        batch = {"y": y, "C": C, "x": x}
        weighed, plain = (
            training_loss(net, batch, TrainConfig(edge_weight=3.0)).item(),
            training_loss(net, batch, TrainConfig()).item(),
        )
        assert (weighed > plain) == more


def test_the_spectral_excess_counts_a_reflection_the_truth_lacks_or_shows_weakly():
    """A lattice fringe added to frames whose truth has none, or has it ten times weaker,
    is counted (and its gradient lowers it); the same fringe in the truth and a frequency
    below the band are not, white noise hardly (a rare bin of it passes the bar); the loss
    term reaches the network's weights."""
    from emtcs.training import TrainConfig
    from emtcs.training.losses import spectral_excess, training_loss

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:64, :64]
    smooth = 1 + 0.3 * np.exp(-((yy - 30) ** 2 + (xx - 34) ** 2) / 400.0)
    fringe = np.cos(2 * np.pi * (10 * yy + 6 * xx) / 64)  # 0.18 cycles per pixel
    slow = np.cos(2 * np.pi * xx / 64)  # 0.016: below the band
    noisy = smooth + 0.02 * rng.standard_normal((3, 64, 64))

    def t(frames: np.ndarray) -> torch.Tensor:
        return torch.tensor(np.broadcast_to(frames, (1, 3, 64, 64)).copy(), dtype=torch.float32)

    def excess(out: np.ndarray, truth: np.ndarray) -> float:
        return float(spectral_excess(t(out), t(truth))[0])

    invented = excess(smooth + 0.05 * fringe, smooth)
    assert invented > 1.0
    assert excess(noisy, smooth) < 0.01 * invented
    assert excess(smooth + 0.05 * slow, smooth) == 0.0
    assert excess(smooth + 0.05 * fringe, smooth + 0.05 * fringe) == 0.0
    assert 0 < excess(smooth + 0.05 * fringe, smooth + 0.005 * fringe) < invented
    # a fringe twice as strong as the truth's passes the default margin, not a tighter one
    doubled = (t(smooth + 0.1 * fringe), t(smooth + 0.05 * fringe))
    assert float(spectral_excess(*doubled)[0]) == 0.0 < float(spectral_excess(*doubled, margin=1.0)[0])
    # judged at a larger frame's bar, a fringe too faint for the clip's own bar counts
    faint, clean = t(noisy + 0.003 * fringe), t(smooth)
    assert float(spectral_excess(faint, clean)[0]) == pytest.approx(excess(noisy, smooth), rel=1e-3)
    at_96 = float(spectral_excess(t(noisy), clean, frame=96)[0])
    assert float(spectral_excess(faint, clean, frame=96)[0]) > at_96 + 0.2

    out = t(smooth + 0.05 * fringe).requires_grad_(True)
    spectral_excess(out, t(smooth)).sum().backward()
    along = float((out.grad[0, 0].numpy() * fringe).sum())
    assert along > 0  # descending the gradient takes the fringe out

    class Fringe(torch.nn.Module):  # a "decoder" that prints the fringe on its frames
        def __init__(self):
            super().__init__()
            self.amplitude = torch.nn.Parameter(torch.tensor(0.05))

        def forward(self, y, C, return_all=False):
            x = torch.tensor(smooth, dtype=torch.float32) + self.amplitude * torch.tensor(fringe, dtype=torch.float32)
            x = x.expand(C.shape)
            return (x, []) if return_all else x

    net = Fringe()
    batch = {"y": torch.zeros(2, 64, 64), "C": torch.ones(2, 3, 64, 64), "x": t(smooth).expand(2, -1, -1, -1)}
    assert (
        training_loss(net, batch, TrainConfig(spectral_weight=1.0)).item()
        > training_loss(net, batch, TrainConfig()).item() + 1.0
    )
    pulls = []
    for weight in (0.0, 1.0, 2.0):
        net.zero_grad()
        training_loss(net, batch, TrainConfig(spectral_weight=weight)).backward()
        pulls.append(float(net.amplitude.grad))
    # the term's own pull is far stronger than its bound, W times the reconstruction's: linear in W
    assert pulls[1] > pulls[0] > 0
    assert pulls[2] - pulls[0] == pytest.approx(2 * (pulls[1] - pulls[0]), rel=1e-4)


def test_a_bounded_pull_scales_each_samples_gradient_down_to_its_bound():
    from emtcs.training.losses import _BoundedPull

    out = torch.zeros(3, 2, 4, 4, requires_grad=True)
    grad = torch.ones(3, 2, 4, 4) * torch.tensor([1.0, 0.1, 0.0]).reshape(3, 1, 1, 1)  # norms 5.66, 0.566, 0
    _BoundedPull.apply(out, torch.tensor([2.0, 2.0, 2.0])).backward(grad)
    norms = out.grad.flatten(1).norm(dim=1)
    torch.testing.assert_close(norms, torch.tensor([2.0, 0.1 * 32**0.5, 0.0]))
    torch.testing.assert_close(out.grad[0] / out.grad[0].flatten()[0], torch.ones(2, 4, 4))  # the direction kept


def test_the_log_mse_loss_weighs_each_sample_by_its_own_error():
    """Under "mse" a sample ten times further off pulls ten times harder; under "log-mse"
    each sample's pull is its error relative to itself, so the nearer one pulls ten times
    harder and a dose's share of the gradient no longer follows its noise; "rmse" is
    halfway: each pulls with its error over its own root-mean-square error, alike here."""
    from emtcs.training.losses import _error

    x = torch.zeros(2, 3, 8, 8)
    direction = torch.randn(1, 3, 8, 8).expand(2, -1, -1, -1)
    for kind, ratio in (("mse", 10.0), ("rmse", 1.0), ("log-mse", 0.1)):
        out = (direction * torch.tensor([1.0, 10.0]).view(2, 1, 1, 1)).clone().requires_grad_(True)
        _error(out, x, kind).backward()
        pull = out.grad.flatten(1).norm(dim=1)
        assert pull[1] / pull[0] == pytest.approx(ratio, rel=1e-4)


def test_training_with_the_log_mse_loss(tmp_path):
    from emtcs.errors import InputError
    from emtcs.training import TrainConfig, train

    cfg = TrainConfig(arch="gapunet", net=TINY["gapunet"], steps=2, loss="log-mse", **TINY_RUN)
    summary = train(cfg, tmp_path / "log", device="cpu")
    losses = [json.loads(line)["loss"] for line in (tmp_path / "log.log.jsonl").read_text().splitlines()]
    assert len(losses) == 2 and all(np.isfinite(losses))
    assert summary["train_config"]["loss"] == "log-mse"
    with pytest.raises(InputError, match="unknown loss"):
        train(TrainConfig(arch="gapunet", net=TINY["gapunet"], steps=1, loss="l1", **TINY_RUN), tmp_path / "x")


def test_a_run_of_groups_is_one_clip_split_into_groups_measured_each_on_its_own(tmp_path):
    """make_batch with ``run``: a clip's groups share its dose and noise and follow one
    another in the batch, each with its own measurement and normalisation; training with
    --run decodes them as runs (GapUNet only)."""
    from emtcs.errors import InputError
    from emtcs.training import TrainConfig, make_batch, train

    rng = np.random.default_rng(0)
    clips = 1.0 + rng.random((2, 12, 16, 16))
    clips[1, 6:] *= 3.0  # the second clip's second group is brighter
    cfg = TrainConfig(B=[6], noise_error=0.0)
    batch = make_batch(clips, np.random.default_rng(1), cfg, run=2)
    assert batch["y"].shape == (4, 16, 16) and batch["x"].shape == (4, 6, 16, 16)
    assert float(batch["dose"][0]) == float(batch["dose"][1]) != float(batch["dose"][2])
    scales = [float(clips[i // 2, 6 * (i % 2)].mean() / batch["x"][i, 0].mean()) for i in range(4)]
    assert scales[3] > 2 * scales[2]  # each group normalised by its own measurement
    for i in range(4):  # the target is the clip's group, at its scale
        np.testing.assert_allclose(batch["x"][i].numpy() * scales[i], clips[i // 2, 6 * (i % 2) :][:6], rtol=1e-5)
    run = TrainConfig(arch="gapunet", net=TINY["gapunet-temporal"], steps=2, run=2, **TINY_RUN)
    summary = train(run, tmp_path / "run", device="cpu")
    assert summary["train_config"]["run"] == 2
    with pytest.raises(InputError, match="runs of groups"):
        train(TrainConfig(arch="tcsdl", steps=1, run=2, **TINY_RUN), tmp_path / "x")


def test_a_share_of_the_steps_trains_runs_and_the_others_single_groups(tmp_path):
    from emtcs.errors import InputError
    from emtcs.training import TrainConfig, train
    from emtcs.training.data import training_batch, training_pool

    cfg = TrainConfig(arch="gapunet", net=TINY["gapunet-temporal"], run=2, run_share=0.3, **TINY_RUN)
    pool = training_pool(cfg)
    steps = [training_batch(pool, cfg, step) for step in range(20)]
    runs = [s.run for s in steps]
    assert set(runs) == {1, 2} and runs.count(2) < runs.count(1)
    for s in steps:  # a run's groups are samples of their own
        assert s.batch["y"].shape[0] == cfg.batch * s.run and s.batch["C"].shape[1] == 3
    mixed = {**cfg.__dict__, "steps": 4}
    summary = train(TrainConfig(**mixed), tmp_path / "mixed", device="cpu")
    assert summary["train_config"]["run_share"] == 0.3
    with pytest.raises(InputError, match="--run-share"):
        train(TrainConfig(**{**mixed, "run_share": 0.0}), tmp_path / "none", device="cpu")
    with pytest.raises(InputError, match="--edge-weight"):
        train(TrainConfig(**{**mixed, "edge_weight": 0.0}), tmp_path / "none", device="cpu")
    with pytest.raises(InputError, match="--spectral-weight"):
        train(TrainConfig(**{**mixed, "spectral_weight": -1.0}), tmp_path / "none", device="cpu")


@pytest.mark.parametrize("mixing", [{}, {"temporal": True}, {"fine_temporal": True}])
def test_temporal_mixing_lets_frames_see_each_other(mixing):
    """Without it the U-Net treats each frame alone; with it a change in the first frame
    reaches the last one, through the coarse scales (``temporal``) or the finest
    (``fine_temporal``)."""
    from emtcs.nets.gapunet import UNet

    x = torch.rand(2 * 6, 3, 32, 32)  # two groups of 6 frames
    bumped = x.clone()
    bumped[0] += 1.0
    torch.manual_seed(0)
    net = UNet(3, 1, 8, **mixing)
    for p in net.parameters():
        torch.nn.init.normal_(p, std=0.1)
    with torch.inference_mode():
        change = (net(bumped, 6) - net(x, 6)).abs().amax((1, 2, 3))
    assert float(change[0]) > 0
    assert float(change[6:].max()) == 0  # the other group never sees it
    assert (float(change[5]) > 0) == bool(mixing)


def test_a_run_of_groups_lets_frames_see_across_the_boundaries():
    """With ``run`` a tile's consecutive groups decode as runs: a change in the first
    group's last frame reaches the second group of its run (which group by group never
    sees it), through the U-Net's input and its temporal convolutions, but not the next
    run; runs in one batch decode as they do one at a time."""
    torch.manual_seed(0)
    net = build(TINY["gapunet-temporal"])
    for p in net.parameters():
        torch.nn.init.normal_(p, std=0.1)
    net.eval()
    x = torch.rand(4, 6, 16, 16)
    C = (torch.rand(4, 6, 16, 16) > 0.5).float()
    bumped = x.clone()
    bumped[0, -1] += 1.0
    y, y_bumped = (C * x).sum(1), (C * bumped).sum(1)
    epu = torch.full((4,), 50.0)
    with torch.inference_mode():
        for run in (1, 2):
            change = (net(y_bumped, C, epu, run=run) - net(y, C, epu, run=run)).abs().amax((1, 2, 3))
            assert float(change[0]) > 0
            assert (float(change[1]) > 0) == (run == 2)
            assert float(change[2:].max()) == 0
        both = net(y, C, epu, run=2)
        torch.testing.assert_close(both[2:], net(y[2:], C[2:], epu[2:], run=2))
        with pytest.raises(ValueError, match="runs of 3"):
            net(y, C, epu, run=3)


def _random_weights(path, config: dict, seed: int) -> torch.nn.Module:
    """A network of ``config`` with every weight random (its zero-started layers too), saved to ``path``."""
    torch.manual_seed(seed)
    net = build(config)
    for p in net.parameters():
        torch.nn.init.normal_(p, std=0.05)
    zoo.save_weights(path, net.state_dict(), config)
    return net


def _assert_same_output(a: torch.nn.Module, b: torch.nn.Module, **tolerance: float) -> None:
    """Two GapUNets decode the same groups (B = 4, two noise levels) to the same frames."""
    y = torch.rand(2, 16, 16) * 2
    C = (torch.rand(2, 4, 16, 16) > 0.5).float()
    epu = torch.tensor([10.0, 300.0])
    with torch.inference_mode():
        torch.testing.assert_close(a(y, C, epu), b(y, C, epu), **tolerance)


def _trained(cfg, stem) -> tuple[torch.nn.Module, dict]:
    """Train ``cfg`` to ``stem``; the saved network, loaded, and its weights."""
    from emtcs.training import train

    train(cfg, stem, device="cpu")
    info, weights = zoo.load_weights(stem.with_suffix(".safetensors"))
    net = build(info["config"])
    net.load_state_dict(weights)
    return net, weights


def test_temporal_mixing_starts_from_weights_without_it(tmp_path):
    """--init from weights that lack the temporal mixing (at the coarse scales and the
    finest): it starts with no effect, so the grown network computes exactly what the
    weights did; weights with other parts are refused."""
    from emtcs.errors import InputError
    from emtcs.training import TrainConfig, train

    init = tmp_path / "plain.safetensors"
    plain = _random_weights(init, TINY["gapunet"], seed=5)
    common = {**TINY_RUN, "B": [4]}
    net = {k: v for k, v in TINY["gapunet-temporal"].items() if k != "arch"} | {"fine_temporal": True}
    cfg = TrainConfig(arch="gapunet", net=net, steps=1, lr=0.0, init=str(init), **common)
    grown, _ = _trained(cfg, tmp_path / "grown")
    _assert_same_output(grown, plain, rtol=0, atol=0)
    # the other way round: weights with parts the network lacks do not fit
    plain_net = {k: v for k, v in TINY["gapunet"].items() if k != "arch"}
    back = TrainConfig(arch="gapunet", net=plain_net, steps=1, init=str(tmp_path / "grown.safetensors"), **common)
    with pytest.raises(InputError, match="does not fit"):
        train(back, tmp_path / "back", device="cpu")


def test_a_full_resolution_head_starts_from_weights_without_it(tmp_path):
    """--head on weights without one: it starts with no effect, then training moves it; the
    head, alone, is shift-equivariant (no 2 x 2 grid)."""
    from dataclasses import replace

    from emtcs.nets.gapunet import UNet
    from emtcs.training import TrainConfig, train

    init = tmp_path / "plain.safetensors"
    plain = _random_weights(init, TINY["gapunet-temporal"], seed=7)
    net = {k: v for k, v in TINY["gapunet-temporal"].items() if k != "arch"}
    cfg = TrainConfig(arch="gapunet", net={**net, "head": 4}, steps=1, lr=0.0, init=str(init), **TINY_RUN)
    headed, weights = _trained(cfg, tmp_path / "headed")
    assert weights["unet.head.2.weight"].abs().sum() == 0
    _assert_same_output(headed, plain, rtol=0, atol=0)
    train(replace(cfg, lr=1e-2), tmp_path / "moved", device="cpu")
    _, moved = zoo.load_weights(tmp_path / "moved.safetensors")
    assert moved["unet.head.2.weight"].abs().sum() > 0

    # another --seed draws other samples but starts the head alike: seed partners average
    _, other_seed = _trained(replace(cfg, seed=1), tmp_path / "seed1")
    for k in ("unet.head.0.weight", "unet.head.0.bias"):
        torch.testing.assert_close(other_seed[k], weights[k], rtol=0, atol=0)

    torch.manual_seed(0)
    unet = UNet(3, 1, 4, head=4)
    for p in unet.head.parameters():
        torch.nn.init.normal_(p, std=0.3)
    x = torch.rand(1, 3, 24, 24)
    with torch.no_grad():
        out, shifted = unet(x), unet(torch.roll(x, 1, -1))
    # the U-Net's own output is still zero here: what comes out is the head's, which moves with the input
    torch.testing.assert_close(torch.roll(out, 1, -1)[..., 2:-2, 3:-2], shifted[..., 2:-2, 3:-2])


def test_a_wider_gapunet_starts_from_narrower_weights_with_their_output(tmp_path):
    """--init at a larger width: the old channels keep their weights and the new ones start
    with no effect, so the wider network computes what the narrower one did; then a training
    step uses the new channels.  A narrower width than the weights' is refused."""
    from dataclasses import replace

    from emtcs.errors import InputError
    from emtcs.training import TrainConfig, train

    init = tmp_path / "w4.safetensors"
    small = _random_weights(init, TINY["gapunet-temporal"], seed=6)
    common = {**TINY_RUN, "B": [4]}
    net = {k: v for k, v in TINY["gapunet-temporal"].items() if k != "arch"}
    cfg = TrainConfig(arch="gapunet", net={**net, "width": 6}, steps=1, lr=0.0, init=str(init), **common)
    wide, weights = _trained(cfg, tmp_path / "w6")
    assert wide.unet.enc1[0].out_channels == 6
    _assert_same_output(wide, small, rtol=1e-5, atol=1e-6)
    # the new channels are not dead: one step with a learning rate moves their weights into the old ones
    train(replace(cfg, lr=1e-2), tmp_path / "w6-trained", device="cpu")
    _, trained = zoo.load_weights(tmp_path / "w6-trained.safetensors")
    assert trained["unet.dec1.0.weight"][:4, 4:6].abs().sum() > 0
    assert weights["unet.dec1.0.weight"][:4, 4:6].abs().sum() == 0
    narrower = replace(cfg, net={**net, "width": 2})
    with pytest.raises(InputError, match=r"network, not \{.*'width': 2,"):
        train(narrower, tmp_path / "w2", device="cpu")
    plain = {k: v for k, v in TINY["gapunet"].items() if k != "arch"}  # lacks the temporal mixing
    with pytest.raises(InputError, match="does not fit"):
        train(replace(cfg, net={**plain, "width": 6}), tmp_path / "w6-plain", device="cpu")


def test_weights_that_do_not_fit_the_network_give_a_one_line_error(tmp_path):
    from emtcs.errors import DecoderError

    net = build(TINY["gapnet"])
    state = {k: v[..., :1] if v.ndim > 1 else v for k, v in net.state_dict().items()}  # wrong shapes
    path = tmp_path / "gapnet-wrong.safetensors"
    zoo.save_weights(path, state, TINY["gapnet"])
    with pytest.raises(DecoderError, match="do not fit") as exc:
        emtcs.get_decoder("gapnet", weights=path, device="cpu")
    assert "\n" not in str(exc.value)


def test_gapunet_denoiser_pretraining_denoises_and_then_unfolds(tmp_path):
    """Issue 11: pretrain GapUNet's U-Net as a plain denoiser (no masks, no GAP), then start
    an end-to-end run from those weights."""
    from emtcs.errors import InputError
    from emtcs.training import ClipPool, TrainConfig, make_batch, train
    from emtcs.training.losses import training_loss

    common = {"B": [4], "patch": 24, "batch": 4, "scenes": 2, "scene_frames": 12, "scene_size": 48, "val_samples": 2}
    net = {"stages": 1, "width": 8}
    cfg = TrainConfig(arch="gapunet", net=net, steps=20, val_every=10, task="denoise", dose_range=(5.0, 20.0), **common)
    summary = train(cfg, tmp_path / "den", device="cpu")
    assert summary["validation"]["reference"].startswith("clean")
    # the loss of the denoising task falls on a batch (the output layer starts at zero: identity)
    pool = ClipPool(cfg, seed_offset=77, scenes=2)
    rng = np.random.default_rng(3)
    batch = make_batch(np.stack([pool.clip(rng, 4, 24) for _ in range(8)]), rng, cfg)
    model = build({"arch": "gapunet", **net})
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(100):
        loss = training_loss(model, batch, cfg)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[0] == pytest.approx(F.mse_loss(batch["noisy"], batch["x"]).item())
    assert losses[-1] < 0.85 * losses[0]
    unfolded = TrainConfig(arch="gapunet", net=net, steps=2, init=str(tmp_path / "den.safetensors"), **common)
    assert train(unfolded, tmp_path / "e2e", device="cpu")["steps"] == 2
    with pytest.raises(InputError, match="has none"):
        train(TrainConfig(arch="tcsdl", net={"width": 8}, steps=1, task="denoise", **common), tmp_path / "t")


def test_jpeg_degraded_samples_keep_the_validation_set_fixed():
    from emtcs.training import ClipPool, TrainConfig, make_batch, validation_set
    from emtcs.training.data import _jpeg_frames

    rng = np.random.default_rng(0)
    clean = rng.random((2, 3, 32, 32)) + 0.5
    gains = np.full((2, 1, 1, 1), 100.0)
    out = _jpeg_frames(np.rint(clean * 100) / 100, gains, np.array([50, 90]))
    err = [np.abs(out[i] - clean[i]).mean() for i in range(2)]
    assert out.shape == clean.shape and 0 < err[1] < err[0] < 0.2  # quality 50 loses more than 90
    cfg = TrainConfig(B=[4], patch=16, scenes=1, scene_frames=6, scene_size=32, val_samples=2)
    plain = validation_set(cfg, 2)
    motion = {"cuts": 0.9, "flicker": 0.3, "motion": 2.0}
    for degraded in ({"jpeg": 1.0}, {"flat_noise": 1.0}, {"noise_blur": 1.0}, {"mask_density": (0.1, 0.3)}, motion):
        for a, b in zip(plain, validation_set(TrainConfig(**{**cfg.__dict__, **degraded}), 2)):
            torch.testing.assert_close(a["y"], b["y"], rtol=0, atol=0)
    pool = ClipPool(cfg, seed_offset=5, scenes=1)
    clips = np.stack([pool.clip(rng, 4, 16) for _ in range(3)])
    batch = make_batch(clips, np.random.default_rng(1), TrainConfig(**{**cfg.__dict__, "jpeg": 1.0}))
    assert batch["noisy"].shape == (3, 4, 16, 16) and torch.isfinite(batch["y"]).all()


def test_samples_take_masks_of_the_density_training_asks_for():
    from emtcs.training import ClipPool, TrainConfig, make_batch

    cfg = TrainConfig(B=[8], patch=32, scenes=1, scene_frames=10, scene_size=48)
    rng = np.random.default_rng(2)
    clips = np.stack([ClipPool(cfg, seed_offset=5, scenes=1).clip(rng, 8, 32) for _ in range(16)])
    for lo, hi in ((0.5, 0.5), (0.2, 0.2), (0.1, 0.3)):
        C = make_batch(clips, np.random.default_rng(1), replace(cfg, mask_density=(lo, hi)))["C"].numpy()
        per_sample = C.mean(axis=(1, 2, 3))
        assert abs(per_sample.mean() - (lo + hi) / 2) < 0.03
        assert (per_sample.std() > 0.03) == (lo != hi)  # a range draws a density per sample
    # the density compress gives a movie that moves: 5/B at B = 11 ... 30, else what there was
    longer = np.tile(clips, (1, 3, 1, 1))[:, :20]  # groups of 20
    C = make_batch(longer, np.random.default_rng(1), replace(cfg, sparse_masks=1.0))["C"].numpy()
    assert abs(C.mean() - 0.25) < 0.02
    C = make_batch(clips, np.random.default_rng(1), replace(cfg, sparse_masks=1.0))["C"].numpy()
    assert abs(C.mean() - 0.5) < 0.02  # B = 8 keeps half 1s


def test_validation_scene_clips_keep_their_zoom_whatever_training_uses(tmp_path):
    """Runs trained at other pixel sizes (--zoom) are scored on the same clips."""
    import h5py

    from emtcs.training import TrainConfig, validation_set

    path = tmp_path / "val.h5"
    rng = np.random.default_rng(3)
    with h5py.File(path, "w") as f:
        f["scene_00000"] = (rng.random((6, 48, 48)) + 0.5).astype(np.float16)
    cfg = TrainConfig(B=[4], patch=16, simulate=False, val_scene_files=[str(path)], scene_files=[str(path)])
    plain = validation_set(cfg, 3)
    for a, b in zip(plain, validation_set(TrainConfig(**{**cfg.__dict__, "zoom": (0.4, 0.5)}), 3)):
        torch.testing.assert_close(a["x"], b["x"], rtol=0, atol=0)


def test_flat_noise_samples_have_the_same_noise_at_every_intensity():
    """--flat-noise: Gaussian noise of the variance Poisson noise has at the clip's mean, as
    in movies whose noise compress measures as one sigma; Poisson noise grows with the intensity."""
    from emtcs.training import TrainConfig, make_batch

    clips = np.ones((2, 8, 64, 64))
    clips[:, :, :, 32:] = 9.0  # a dark and a bright half, mean 5
    cfg = TrainConfig(B=[8], dose_range=(100.0, 100.0), read_noise=(0.0, 0.0))
    for flat, ratio in ((0.0, 9.0), (1.0, 1.0)):
        batch = make_batch(clips, np.random.default_rng(2), TrainConfig(**{**cfg.__dict__, "flat_noise": flat}))
        noise = (batch["noisy"] - batch["x"]).numpy()
        dark, bright = noise[..., :32].var(), noise[..., 32:].var()
        assert bright / dark == pytest.approx(ratio, rel=0.1)
        scale = float(batch["x"][0, 0, 0, 0])  # the clean dark level, normalised
        assert dark / scale**2 == pytest.approx((1.0 if flat == 0 else 5.0) / 100.0, rel=0.1)


def test_noise_blur_samples_have_correlated_noise_and_are_told_the_measured_level():
    """--noise-blur: the noise is blurred with the image (neighbours correlate), the target
    is the blurred clean clip, and the network is told the electrons that the per-pixel
    variance says (fewer than arrived), as compress would measure them."""
    from emtcs.training import TrainConfig, make_batch
    from emtcs.training.data import _blur_energy

    rng = np.random.default_rng(0)
    clips = 1.0 + 0.5 * rng.random((3, 6, 64, 64))
    cfg = TrainConfig(B=[6], dose_range=(100.0, 100.0), read_noise=(0.0, 0.0), noise_error=0.0)
    plain = make_batch(clips, np.random.default_rng(1), cfg)
    spread = make_batch(clips, np.random.default_rng(1), TrainConfig(**{**cfg.__dict__, "noise_blur": 1.0}))
    for batch, (lo, hi) in ((plain, (-0.05, 0.05)), (spread, (0.25, 0.9))):
        noise = (batch["noisy"] - batch["x"]).numpy()
        neighbours = np.corrcoef(noise[..., :-1].ravel(), noise[..., 1:].ravel())[0, 1]
        assert lo < neighbours < hi
    assert float(spread["x"].std()) < 0.9 * float(plain["x"].std())  # the target is blurred too
    # told electrons per unit x per-pixel noise variance = the mean level, as for Poisson noise
    for i in range(3):
        noise = (spread["noisy"][i] - spread["x"][i]).numpy()
        told = float(spread["epu"][i]) * noise.var() / float(spread["x"][i].mean())
        assert told == pytest.approx(1.0, rel=0.15)
    assert _blur_energy(0.0) == pytest.approx(1.0) and _blur_energy(1.0) == pytest.approx(1 / (4 * np.pi), rel=0.02)


def test_validation_at_fixed_doses():
    """--val-doses: each dose with every B in turn, the clips otherwise the same draw."""
    from emtcs.training import TrainConfig, validation_set

    cfg = TrainConfig(B=[4, 6], patch=16, scenes=1, scene_frames=8, scene_size=32, val_doses=[20.0, 200.0])
    val = validation_set(cfg, 6)
    assert [float(s["dose"][0]) for s in val] == pytest.approx([20, 20, 200, 200, 20, 20])
    assert [s["C"].shape[1] for s in val] == [4, 6, 4, 6, 4, 6]
    drawn = validation_set(TrainConfig(**{**cfg.__dict__, "val_doses": []}), 6)
    assert len({round(float(s["dose"][0]), 3) for s in drawn}) == 6  # log-uniform over 1-1,000


def test_a_group_size_given_twice_is_drawn_twice_as_often_and_validated_once():
    from emtcs.training import TrainConfig, validation_set
    from emtcs.training.data import training_batch

    class Pool:  # clips of the requested length only: the draw of B is what is tested
        def clip(self, rng, B, P):
            return np.ones((B, P, P), np.float32)

    cfg = TrainConfig(B=[4, 6], patch=16, batch=1, scenes=1, scene_frames=8, scene_size=32, val_doses=[20.0])
    weighted = TrainConfig(**{**cfg.__dict__, "B": [4, 6, 6]})
    share = [
        np.mean([training_batch(Pool(), c, i).batch["C"].shape[1] == 6 for i in range(300)]) for c in [cfg, weighted]
    ]
    assert 0.4 < share[0] < 0.6 and 0.58 < share[1] < 0.75
    for a, b in zip(validation_set(cfg, 4), validation_set(weighted, 4)):
        torch.testing.assert_close(a["y"], b["y"], rtol=0, atol=0)


def test_validation_psnr_at_each_fixed_dose():
    """With fixed doses the baseline's PSNR at each dose is reported, and their mean is the mean."""
    from emtcs.training import TrainConfig, evaluate, validation_set

    cfg = TrainConfig(B=[4], patch=16, scenes=1, scene_frames=8, scene_size=32, val_doses=[2.0, 500.0])
    scores = evaluate(None, validation_set(cfg, 4), by_dose=True)
    assert set(scores) == {"psnr", "ssim", "psnr_2", "psnr_500"}
    assert scores["psnr_500"] > scores["psnr_2"]  # GAP-TV at 250x the electrons
    assert (scores["psnr_2"] + scores["psnr_500"]) / 2 == pytest.approx(scores["psnr"])
    assert set(evaluate(None, validation_set(cfg, 4))) == {"psnr", "ssim"}


def test_moving_crops_stay_positive_over_long_clips():
    """A real frame moved synthetically over 30 frames with a 6-sigma intensity drift: the
    clean clip stays positive (a linear drift once made it negative and stopped training)."""
    from emtcs.training.data import _moving_crop

    class SixSigma:
        def uniform(self, lo, hi, size=None):
            return (lo + hi) / 2

        def normal(self, loc, scale, size=None):
            return np.full(size, loc - 6 * scale) if size else loc - 6 * scale

    image = np.ones((128, 128), dtype=np.float32)
    assert _moving_crop(image, SixSigma(), 30, 32).min() > 0


def test_a_gapunet_with_more_stages_starts_from_fewer_with_their_output(tmp_path):
    """--init with more stages: the old stages spread out (the last stays last) and each
    added stage starts with a zero step and gate, so the deeper network computes what the
    shallower one did; a training step then opens the added stages.  Fewer stages than
    the weights' are refused."""
    from dataclasses import replace

    from emtcs.errors import InputError
    from emtcs.training import TrainConfig, train

    init = tmp_path / "s2.safetensors"
    shallow = _random_weights(init, TINY["gapunet-temporal"], seed=7)
    common = {**TINY_RUN, "B": [4]}
    net = {k: v for k, v in TINY["gapunet-temporal"].items() if k != "arch"}
    cfg = TrainConfig(arch="gapunet", net={**net, "stages": 4}, steps=1, lr=0.0, init=str(init), **common)
    deep, weights = _trained(cfg, tmp_path / "s4")
    assert deep.stages == 4
    _assert_same_output(deep, shallow, rtol=1e-5, atol=1e-6)
    assert weights["gate"][[0, 2]].abs().sum() == 0 and weights["step"][[0, 2]].abs().sum() == 0
    torch.testing.assert_close(weights["code"], torch.tensor([0.25, 0.5, 0.75, 1.0]))
    train(replace(cfg, lr=1e-3), tmp_path / "s4-trained", device="cpu")
    _, trained = zoo.load_weights(tmp_path / "s4-trained.safetensors")
    assert trained["gate"][[0, 2]].abs().min() > 0
    # --stage-lr: the steps and gates move faster than the other weights
    train(replace(cfg, lr=1e-3, stage_lr=50.0), tmp_path / "s4-fast", device="cpu")
    _, fast = zoo.load_weights(tmp_path / "s4-fast.safetensors")
    assert fast["gate"][[0, 2]].abs().min() > 10 * trained["gate"][[0, 2]].abs().max()
    moved = (fast["unet.enc1.0.weight"] - weights["unet.enc1.0.weight"]).abs().max()
    assert moved <= 2e-3  # the rest at the learning rate
    # wider and deeper at once
    both = replace(cfg, net={**net, "stages": 3, "width": 6})
    grown, _ = _trained(both, tmp_path / "w6s3")
    _assert_same_output(grown, shallow, rtol=1e-5, atol=1e-6)
    with pytest.raises(InputError, match=r"network, not \{.*'stages': 1,"):
        train(replace(cfg, net={**net, "stages": 1}), tmp_path / "s1", device="cpu")


def test_gapunet_weights_saved_before_stage_gates_load_with_open_gates():
    """Files written before GapUNet had stage gates and codes (every shipped one up to
    session 23) load with every gate 1 and the codes (k + 1) / stages."""
    torch.manual_seed(8)
    net = build(TINY["gapunet"])
    for p in net.parameters():
        torch.nn.init.normal_(p, std=0.05)
    old = {k: v for k, v in net.state_dict().items() if k not in ("gate", "code")}
    loaded = build(TINY["gapunet"])
    loaded.load_state_dict(old)
    assert loaded.gate.tolist() == [1.0, 1.0] and loaded.code.tolist() == [0.5, 1.0]
    with torch.no_grad():
        net.gate.fill_(1.0)
    _assert_same_output(loaded, net, rtol=0, atol=0)


def test_gapunet_weights_saved_before_the_spread_conditioning_load_without_it():
    """Files written before GapUNet was told the noise's spread (every shipped one up to
    session 27) load with the conditioning at zero: they decode as before whatever spread
    they are told.  Trained conditioning changes the frames of spread noise only."""
    torch.manual_seed(9)
    net = build(TINY["gapunet"])
    for p in net.parameters():
        torch.nn.init.normal_(p, std=0.05)
    old = {k: v for k, v in net.state_dict().items() if ".spread." not in k}
    loaded = build(TINY["gapunet"])
    loaded.load_state_dict(old)
    assert not any(p.any() for n, p in loaded.named_parameters() if ".spread." in n)
    y = torch.rand(2, 16, 16) * 2
    C = (torch.rand(2, 4, 16, 16) > 0.5).float()
    epu = torch.tensor([10.0, 300.0])
    spread = torch.tensor([0.6, 0.3])
    with torch.inference_mode():
        torch.testing.assert_close(loaded(y, C, epu), loaded(y, C, epu, spread=spread), rtol=0, atol=0)
        torch.testing.assert_close(net(y, C, epu), net(y, C, epu, spread=torch.zeros(2)), rtol=0, atol=0)
        assert not torch.allclose(net(y, C, epu), net(y, C, epu, spread=spread))


def test_training_only_the_spread_conditioning_leaves_white_noise_decodes_alone(tmp_path):
    """--only spread: a run moves the spread conditioning and nothing else, so the network
    decodes white noise exactly as the weights it started from."""
    from emtcs.errors import InputError
    from emtcs.training import TrainConfig, train

    init = tmp_path / "start.safetensors"
    start = _random_weights(init, TINY["gapunet"], seed=6)
    net = {k: v for k, v in TINY["gapunet"].items() if k != "arch"}
    common = {**TINY_RUN, "B": [4], "noise_blur": 1.0}
    cfg = TrainConfig(arch="gapunet", net=net, steps=3, lr=1e-2, init=str(init), only="spread", **common)
    trained, weights = _trained(cfg, tmp_path / "spread")
    moved = {k for k, v in weights.items() if not torch.equal(v, start.state_dict()[k])}
    assert moved and all(".spread." in k for k in moved)
    _assert_same_output(trained, start, rtol=0, atol=0)
    with pytest.raises(InputError, match="names none"):
        train(TrainConfig(arch="gapunet", net=net, steps=1, only="nothing", **common), tmp_path / "x", device="cpu")


def test_training_samples_tell_the_network_the_noise_spread_compress_would_measure():
    """make_batch's ``spread``: about 0 for white noise, about what compress measures on a
    camera's noise spread by 0.5-1 px (emtcs.noise.noise_spread) for --noise-blur samples."""
    from emtcs.training import TrainConfig, make_batch

    rng = np.random.default_rng(0)
    clips = 1.0 + 0.5 * rng.random((3, 6, 64, 64))
    cfg = TrainConfig(B=[6], dose_range=(100.0, 100.0), read_noise=(0.0, 0.0), noise_error=0.0)
    plain = make_batch(clips, np.random.default_rng(1), cfg)
    spread = make_batch(clips, np.random.default_rng(1), TrainConfig(**{**cfg.__dict__, "noise_blur": 1.0}))
    assert plain["spread"].shape == (3,) and float(plain["spread"].max()) < 0.03
    assert 0.3 < float(spread["spread"].min()) and float(spread["spread"].max()) < 0.95


def test_learned_decoders_are_told_the_files_noise_spread(tmp_path):
    """for_noise / decoder_for_group give a learned decoder the file's spread (a copy that
    shares the network); a spread-aware network then decodes differently."""
    from emtcs.decoders import decoder_for_group, for_noise

    path = tmp_path / "gapunet-w4s2.safetensors"
    _random_weights(path, TINY["gapunet"], seed=3)
    dec = emtcs.get_decoder("gapunet", weights=path, device="cpu")
    told = decoder_for_group(dec, 4, noise_spread=0.5)
    assert told is not dec and told.net is dec.net and (told.noise_spread, dec.noise_spread) == (0.5, 0.0)
    assert for_noise(dec, True) is dec and for_noise(told, False).noise_spread == 0.0
    rng = np.random.default_rng(2)
    C = (rng.random((1, 4, 24, 24)) > 0.5).astype(np.float32)
    y = emtcs.encode(rng.random((4, 24, 24)).astype(np.float32) * 3, C[0])[None].astype(np.float32)
    assert not np.allclose(dec.decode(y, C, 50.0), told.decode(y, C, 50.0))


def test_training_seed_draws_other_samples_on_the_same_validation_clips(tmp_path):
    """Runs that differ only in their seed see other training samples (the loss of their
    first step differs) and are scored on the same validation clips."""
    from emtcs.training import TrainConfig, train, validation_set

    def config(seed: int) -> TrainConfig:
        return TrainConfig(
            arch="gapnet", net={"stages": 1, "width": 4, "blocks": 1}, B=[4], steps=1, patch=16, batch=2,
            scenes=2, scene_frames=8, scene_size=32, val_every=1, val_samples=2, seed=seed,
        )  # fmt: skip

    first = []
    for seed in (0, 1):
        train(config(seed), tmp_path / f"s{seed}", device="cpu")
        first.append(json.loads((tmp_path / f"s{seed}.log.jsonl").read_text().splitlines()[0])["loss"])
    assert first[0] != first[1]
    a, b = validation_set(config(0), 2), validation_set(config(1), 2)
    assert all(torch.equal(x["y"], y["y"]) for x, y in zip(a, b))


def test_worker_processes_make_the_same_batches_as_the_training_process():
    from emtcs.training import TrainConfig
    from emtcs.training.data import Batches, training_batch, training_pool

    cfg = TrainConfig(
        arch="gapunet", B=[4, 6], patch=32, batch=2, scenes=2, scene_frames=12, scene_size=48, equivariance=1.0
    )
    pool = training_pool(cfg)
    with Batches(cfg, 5, workers=2) as batches:
        made = [next(batches) for _ in range(3)]
    for step, (shift, run, batch) in zip(range(5, 8), made):
        want_shift, want_run, want = training_batch(pool, cfg, step)
        assert (shift, run) == (want_shift, want_run)
        assert batch.keys() == want.keys()
        for k in want:
            torch.testing.assert_close(batch[k], want[k], rtol=0, atol=0)
    assert len({float(batch["y"].sum()) for *_, batch in made}) == 3  # each step a batch of its own


def test_training_with_worker_processes(tmp_path):
    from emtcs.training import TrainConfig, train

    net = {k: v for k, v in TINY["gapnet"].items() if k != "arch"}
    cfg = TrainConfig(arch="gapnet", net=net, steps=3, val_every=3, **TINY_RUN)
    summary = train(cfg, tmp_path / "w", device="cpu", workers=1)
    assert summary["steps"] == 3
    assert len((tmp_path / "w.log.jsonl").read_text().splitlines()) == 3


def test_bf16_by_default_only_where_the_cpu_computes_in_it(tmp_path):
    from emtcs.training.loop import native_bf16

    cpuinfo = tmp_path / "cpuinfo"
    for flags, native in (
        ("fpu sse2 avx2 avx512f avx512_bf16 avx512_vnni", True),
        ("fpu sse2 avx2 amx_tile amx_bf16 amx_int8", True),
        ("fpu sse2 avx2 avx512f avx512_vnni", False),
        ("fpu avx512_bf16x", False),  # whole flags only
    ):
        cpuinfo.write_text(f"processor\t: 0\nmodel name\t: some cpu avx512_bf16\nflags\t\t: {flags}\n")
        assert native_bf16(cpuinfo) is native, flags
    assert native_bf16(tmp_path / "absent") is False
