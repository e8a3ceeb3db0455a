"""Tests of the GAP-TV decoder: benchmark figures, synthetic recovery, interface."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from emtcs.decoders import get_decoder
from emtcs.decoders.gaptv import GapTV, gap_tv, tv_denoise
from emtcs.errors import DecoderError
from emtcs.sensing import forward, mask_sum

# CI clones the repository next to shared/, so the data sit at ../shared from the root.
BENCHMARK_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "sci-benchmark"


def _psnr(ref: np.ndarray, img: np.ndarray) -> float:
    """PSNR in dB with peak 1.0."""
    return float(10 * np.log10(1.0 / np.mean((np.float64(ref) - np.float64(img)) ** 2)))


@pytest.mark.parametrize(
    ("name", "published"),
    # GAP-TV on the first measurement, as printed by the PnP-SCI reference code.
    [("drop40", 34.95), ("runner40", 29.81)],
)
def test_benchmark_psnr_matches_reference(name: str, published: float) -> None:
    path = BENCHMARK_DIR / f"{name}_cacti.mat"
    if not path.is_file():
        pytest.skip(f"benchmark data not found at {path} (needs shared/ next to the repository)")
    from scipy.io import loadmat

    data = loadmat(str(path))
    B = data["mask"].shape[-1]
    assert B == 8
    masks = np.float32(data["mask"]).transpose(2, 0, 1)
    y = np.float32(data["meas"][..., 0]) / 255.0
    orig = np.float32(data["orig"][..., :B]).transpose(2, 0, 1) / 255.0

    x = gap_tv(y, masks, iterations=40)

    # The reference averages the per-frame PSNRs (not one PSNR of the whole group).
    mean_psnr = np.mean([_psnr(orig[b], x[b]) for b in range(B)])
    assert mean_psnr == pytest.approx(published, abs=0.3)


def _smooth_scene(rng: np.random.Generator, shape: tuple[int, int, int]) -> np.ndarray:
    s = gaussian_filter(rng.standard_normal(shape), sigma=(1.5, 4.0, 4.0))
    return ((s - s.min()) / (s.max() - s.min())).astype(np.float32)


def test_synthetic_recovery() -> None:
    rng = np.random.default_rng(1)
    scene = _smooth_scene(rng, (8, 64, 64))
    masks = (rng.random(scene.shape) < 0.5).astype(np.float32)
    y = forward(scene, masks)

    x = gap_tv(y, masks)

    assert x.shape == scene.shape and x.dtype == np.float32
    residual = np.linalg.norm(y - forward(x, masks)) / np.linalg.norm(y)
    assert residual < 0.01
    naive = np.broadcast_to(y / np.maximum(mask_sum(masks), 1.0), scene.shape)
    assert _psnr(scene, x) > _psnr(scene, naive) + 10.0


def test_plain_gap_also_converges() -> None:
    rng = np.random.default_rng(2)
    scene = _smooth_scene(rng, (4, 32, 40))
    masks = (rng.random(scene.shape) < 0.5).astype(np.float32)
    y = forward(scene, masks)
    naive = np.broadcast_to(y / np.maximum(mask_sum(masks), 1.0), scene.shape)
    x = gap_tv(y, masks, accelerate=False, iterations=60)
    assert _psnr(scene, x) > _psnr(scene, naive)


def _noisy_group(electrons: float, seed: int = 3) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(measurement counted at ``electrons`` per unit intensity, masks, clean frames)."""
    rng = np.random.default_rng(seed)
    scene = 0.2 + 0.8 * _smooth_scene(rng, (8, 64, 64))
    masks = (rng.random(scene.shape) < 0.5).astype(np.float32)
    y = rng.poisson(forward(scene, masks) * electrons).astype(np.float32) / electrons
    return y, masks, scene


@pytest.mark.parametrize("electrons", [20.0, 200.0])
def test_discrepancy_rule_beats_fitting_the_noise(electrons: float) -> None:
    """Told the noise, GAP-TV stops accelerating at it and is clearly better on noisy data
    than the reference's accelerate-throughout, which fits the noise."""
    y, masks, scene = _noisy_group(electrons)
    dec = get_decoder("gaptv")
    told = dec.decode(y[None], masks[None], electrons)[0]
    throughout = gap_tv(y, masks)
    assert _psnr(scene, told) > _psnr(scene, throughout) + 0.5
    # its residual stays near the noise, where the accelerated one's falls far below it
    noise = float(np.mean(y)) / electrons
    assert np.mean((y - forward(told, masks)) ** 2) > 0.3 * noise
    assert np.mean((y - forward(throughout, masks)) ** 2) < 0.3 * noise


def test_discrepancy_rule_needs_the_noise() -> None:
    """Without a noise level, or with the rule off, the reference's iteration is unchanged."""
    y, masks, _ = _noisy_group(20.0)
    reference = gap_tv(y, masks)
    np.testing.assert_array_equal(get_decoder("gaptv").decode(y[None], masks[None])[0], reference)
    off = get_decoder("gaptv", discrepancy=False)
    np.testing.assert_array_equal(off.decode(y[None], masks[None], 20.0)[0], reference)


def test_guessed_noise_turns_the_rule_off() -> None:
    """Where the noise level decoders are told is a guess, GAP-TV (chosen, the guard's
    fallback or a short group's) accelerates throughout."""
    from emtcs.decoders import decoder_for_group, for_noise
    from emtcs.decoders.guard import guarded

    dec = get_decoder("gaptv", iterations=7)
    assert for_noise(dec, measured=True) is dec
    off = for_noise(dec, measured=False)
    assert off.get_config() == {**dec.get_config(), "discrepancy": False}
    assert decoder_for_group(dec, 8, noise_measured=False).get_config() == off.get_config()
    y, masks, _ = _noisy_group(20.0)
    np.testing.assert_array_equal(off.decode(y[None], masks[None], 20.0)[0], gap_tv(y, masks, iterations=7))
    assert guarded(dec, 2.0, noise_measured=False) is dec  # GAP-TV is not guarded


def test_discrepancy_rule_same_in_torch() -> None:
    """GapUNet's start (torch) stops accelerating where the NumPy GAP-TV does."""
    torch = pytest.importorskip("torch")
    from emtcs.nets.gapunet import GapUNet

    y, masks, _ = _noisy_group(20.0)
    numpy_x = get_decoder("gaptv").decode(y[None], masks[None], 20.0)[0]
    net = GapUNet(discrepancy=True)
    torch_x = net.start(torch.from_numpy(y[None]), torch.from_numpy(masks[None]), torch.tensor([20.0]))
    # equal but for the TV early stop, which only the NumPy version has
    np.testing.assert_allclose(torch_x[0].numpy(), numpy_x, atol=1e-2)
    assert np.abs(gap_tv(y, masks) - numpy_x).max() > 0.1


def test_unseen_pixels_stay_finite() -> None:
    rng = np.random.default_rng(3)
    masks = (rng.random((8, 16, 16)) < 0.5).astype(np.float32)
    masks[:, :4, :4] = 0.0  # a corner that no mask sees: mask sum 0
    y = forward(rng.random((8, 16, 16), dtype=np.float32), masks)
    x = gap_tv(y, masks, iterations=10)
    assert np.isfinite(x).all()


@pytest.mark.parametrize("iterations", [1, 2, 5, 100])
def test_tv_denoise_matches_skimage(iterations: int) -> None:
    from skimage.restoration import denoise_tv_chambolle

    x = np.random.default_rng(4).random((5, 37, 50), dtype=np.float32)
    expected = denoise_tv_chambolle(x, 0.3, max_num_iter=iterations, channel_axis=0)
    np.testing.assert_allclose(tv_denoise(x, 0.3, iterations), expected, atol=1e-6)


def test_decode_batch_of_odd_tiles() -> None:
    rng = np.random.default_rng(5)
    n, B, h, w = 2, 8, 37, 50
    frames = rng.random((n, B, h, w), dtype=np.float32)
    masks = (rng.random((n, B, h, w)) < 0.5).astype(np.float32)
    y = np.stack([forward(frames[k], masks[k]) for k in range(n)])

    out = GapTV(iterations=5).decode(y, masks)

    assert out.shape == (n, B, h, w)
    assert out.dtype == np.float32
    expected = gap_tv(y[1], masks[1], iterations=5)
    np.testing.assert_allclose(out[1], expected, rtol=1e-6, atol=1e-6)


def test_decode_rejects_mismatched_shapes() -> None:
    with pytest.raises(DecoderError):
        GapTV(iterations=1).decode(
            np.zeros((2, 8, 8), np.float32),
            np.zeros((1, 4, 8, 8), np.float32),
        )


def test_registry_and_config() -> None:
    dec = get_decoder("gaptv", iterations=5)
    assert isinstance(dec, GapTV)
    config = dec.get_config()
    assert config["name"] == "gaptv" and config["iterations"] == 5
    rebuilt = get_decoder(**config)
    assert rebuilt.get_config() == config
    with pytest.raises(DecoderError):
        get_decoder("gaptv", no_such_option=1)
    for bad in ({"tv_weight": -1.0}, {"iterations": 2.5}, {"tv_iterations": 0}, {"step": "x"}):
        with pytest.raises(DecoderError):
            get_decoder("gaptv", **bad)


def test_benchmark_through_public_api_and_tiling() -> None:
    """emtcs.reconstruct with external masks (the benchmark's own) gives the same figure,
    untiled and with 128 x 128 tiles stitched."""
    path = BENCHMARK_DIR / "drop40_cacti.mat"
    if not path.is_file():
        pytest.skip(f"benchmark data not found at {path} (needs shared/ next to the repository)")
    from scipy.io import loadmat

    import emtcs

    data = loadmat(str(path))
    masks = data["mask"].transpose(2, 0, 1)
    orig = np.float32(data["orig"][..., :8]).transpose(2, 0, 1)
    y = data["meas"][..., 0]
    for tile in (256, 128):
        x = emtcs.reconstruct(y, masks, "gaptv", scale=255.0, tile=tile)
        mean_psnr = np.mean([_psnr(orig[b] / 255, x[b] / 255) for b in range(8)])
        assert mean_psnr == pytest.approx(34.95, abs=0.3)
