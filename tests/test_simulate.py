"""Tests of the synthetic in-situ HRTEM movie simulator (emtcs.simulate)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import tifffile

from emtcs.simulate import MovieSimulator, SimulationConfig, simulate, write_movie


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


# ----------------------------------------------------------------------------- outputs


@pytest.mark.parametrize("dtype", ["uint8", "uint16"])
def test_shapes_and_dtypes(dtype: str) -> None:
    noisy, clean = simulate(3, (32, 48), dtype=dtype, seed=5)
    assert noisy.shape == (3, 32, 48) and noisy.dtype == np.dtype(dtype)
    assert clean.shape == (3, 32, 48) and clean.dtype == np.float32
    assert np.all(np.isfinite(clean)) and clean.min() >= 0
    sim = MovieSimulator(SimulationConfig(n_frames=3, shape=(32, 48), dtype=dtype, seed=5))
    assert sim.n_frames == 3 and sim.shape == (32, 48) and sim.dtype == np.dtype(dtype)
    assert sim.clean_frame(2).dtype == np.float32 and sim.clean_frame(2).shape == (32, 48)
    assert sim.noisy_frame(2).dtype == np.dtype(dtype)


def test_clean_mean_is_dose_times_gain_plus_offset() -> None:
    sim = MovieSimulator(SimulationConfig(shape=(64, 64), dose=250.0, offset=7.0, seed=2))
    assert sim.gain == 1.0  # uint16 rule
    assert sim.clean_frame(0).mean() == pytest.approx(250.0 + 7.0, rel=1e-4)
    sim8 = MovieSimulator(SimulationConfig(shape=(64, 64), dose=100.0, dtype="uint8", read_noise=1.5))
    assert sim8.gain == pytest.approx(255.0 / (250.0 + 60.0 + 9.0))
    assert sim8.offset == math.ceil(3 * 1.5 * sim8.gain)
    noisy = sim8.noisy_frame(0)
    assert 60 < noisy.mean() < 110  # uses a good part of 0..255 ...
    assert np.mean(noisy == 255) < 0.01  # ... without heavy clipping


# ----------------------------------------------------------------------------- determinism


def test_same_seed_same_movie_and_different_seed_different_movie() -> None:
    n1, c1 = simulate(4, (40, 40), seed=11)
    n2, c2 = simulate(4, (40, 40), seed=11)
    n3, c3 = simulate(4, (40, 40), seed=12)
    np.testing.assert_array_equal(n1, n2)
    np.testing.assert_array_equal(c1, c2)
    assert not np.array_equal(n1, n3)
    assert np.abs(c1 - c3).mean() > 0.05 * c1.mean()
    d1 = MovieSimulator(SimulationConfig(seed=11)).describe()
    d3 = MovieSimulator(SimulationConfig(seed=12)).describe()
    assert d1 != d3 and d1["pixel_size_nm"] != d3["pixel_size_nm"]


def test_random_access_equals_streaming() -> None:
    """Frame t rendered on its own equals frame t of the stream (no hidden state)."""
    cfg = SimulationConfig(n_frames=6, shape=(48, 32), seed=3, dose=20.0)
    streamed = list(MovieSimulator(cfg).frames())
    assert len(streamed) == 6
    fresh = MovieSimulator(cfg)
    for t in (5, 0, 3):
        np.testing.assert_array_equal(fresh.clean_frame(t), streamed[t][1])
        np.testing.assert_array_equal(fresh.noisy_frame(t), streamed[t][0])
    assert not np.array_equal(streamed[1][0], streamed[2][0])  # noise changes per frame


# ----------------------------------------------------------------------------- noise model


@pytest.mark.parametrize(
    ("dose", "dtype", "offset"),
    [
        (1.0, "uint16", None),
        (10.0, "uint16", None),
        (100.0, "uint16", 0.0),
        (1000.0, "uint16", None),
        (1.0, "uint8", None),
        (100.0, "uint8", None),
        (1000.0, "uint8", None),
    ],
)
def test_noisy_mean_matches_clean_mean(dose: float, dtype: str, offset: float | None) -> None:
    sim = MovieSimulator(SimulationConfig(shape=(128, 128), dose=dose, dtype=dtype, offset=offset, seed=4))
    clean = sim.clean_frame(1).astype(np.float64)
    noisy = sim.noisy_frame(1).astype(np.float64)
    assert clean.mean() == pytest.approx(sim.gain * dose + sim.offset, rel=0.03)
    # Standard error of the mean from shot + read noise (in ADU), plus rounding slack.
    electrons = (clean - sim.offset) / sim.gain
    sem = sim.gain * math.sqrt(electrons.mean() + sim.config.read_noise**2) / math.sqrt(clean.size)
    assert abs(noisy.mean() - clean.mean()) < 5 * sem + 0.02


@pytest.mark.parametrize("dose", [10.0, 100.0, 1000.0])
def test_noise_variance_is_poisson_plus_read_noise(dose: float) -> None:
    read = 2.0
    sim = MovieSimulator(SimulationConfig(shape=(128, 128), dose=dose, read_noise=read, seed=6))
    assert sim.gain == 1.0
    clean = sim.clean_frame(2).astype(np.float64) - sim.offset  # electrons
    resid = sim.noisy_frame(2).astype(np.float64) - sim.offset - clean
    expected = clean.mean() + read**2 + 1.0 / 12.0  # Poisson + read + rounding
    assert resid.var() == pytest.approx(expected, rel=0.05)
    # Signal-dependent: bright pixels are noisier than dark ones, as Poisson predicts.
    lo, hi = np.quantile(clean, [0.25, 0.75])
    dark, bright = clean <= lo, clean >= hi
    ratio = resid[bright].var() / resid[dark].var()
    predicted = (clean[bright].mean() + read**2) / (clean[dark].mean() + read**2)
    assert ratio == pytest.approx(predicted, rel=0.15)
    assert ratio > 1.1


# ----------------------------------------------------------------------------- structure


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_temporal_coherence(seed: int) -> None:
    sim = MovieSimulator(SimulationConfig(n_frames=40, shape=(128, 128), seed=seed))
    frames = [sim.clean_frame(t) for t in range(sim.n_frames)]
    consecutive = [_corr(frames[t], frames[t + 1]) for t in range(sim.n_frames - 1)]
    assert min(consecutive) > 0.9
    assert _corr(frames[0], frames[-1]) < min(consecutive) - 0.2


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_lattice_peak_in_power_spectrum(seed: int) -> None:
    """A single particle gives sharp Bragg peaks at fcc lattice frequencies."""
    opts = dict(shape=(128, 128), seed=seed, illumination_gradient=0.0)
    sim = MovieSimulator(SimulationConfig(n_particles=1, **opts))
    bare = MovieSimulator(SimulationConfig(n_particles=0, **opts))  # carbon only
    d0 = sim.describe()["spacing_200_px"]
    assert 6.0 <= d0 <= 12.0

    def spectrum(img: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        power = np.abs(np.fft.fft2(img - img.mean())) ** 2
        k = np.hypot(np.fft.fftfreq(img.shape[0])[:, None], np.fft.fftfreq(img.shape[1])[None, :]) * d0
        band = (k > 0.75) & (k < 1.55)
        return power[band], k[band]

    power, k = spectrum(sim.clean_frame(0))
    power0, _ = spectrum(bare.clean_frame(0))
    peak = power.max() / np.median(power)
    assert peak > 100
    assert peak > 4 * power0.max() / np.median(power0)
    # The strongest peak sits at a {111}, {200} or {220} frequency (0.866, 1, 1.414) / d0.
    kpeak = k[np.argmax(power)]
    assert min(abs(kpeak - f) for f in (math.sqrt(3) / 2, 1.0, math.sqrt(2))) < 0.06


# ----------------------------------------------------------------------------- file output


@pytest.mark.parametrize("dtype", ["uint16", "uint8"])
def test_write_movie_round_trip(tmp_path, dtype: str) -> None:
    cfg = SimulationConfig(n_frames=5, shape=(40, 48), seed=9, dose=30.0, dtype=dtype, frame_interval=0.004)
    noisy_ref, clean_ref = MovieSimulator(cfg).clip(0, 5)
    path, clean_path = tmp_path / "movie.tif", tmp_path / "clean.tif"
    calls: list[int] = []
    write_movie(path, cfg, clean_path=clean_path, progress=calls.append)
    assert calls == [1, 2, 3, 4, 5]
    noisy = tifffile.imread(path)
    clean = tifffile.imread(clean_path)
    assert noisy.dtype == np.dtype(dtype) and clean.dtype == np.float32
    np.testing.assert_array_equal(noisy, noisy_ref)
    np.testing.assert_array_equal(clean, clean_ref)
    px = MovieSimulator(cfg).pixel_size_nm
    for p in (path, clean_path):
        with tifffile.TiffFile(p) as tf:
            assert tf.is_imagej and len(tf.pages) == 5
            meta = tf.imagej_metadata
            assert meta["frames"] == 5 and meta["unit"] == "nm"
            assert meta["finterval"] == pytest.approx(0.004)
            assert "emtcs_simulation" in meta["Info"]
            xres = tf.pages[0].tags["XResolution"].value
            assert xres[0] / xres[1] == pytest.approx(1.0 / px, rel=1e-5)


def test_write_movie_errors_propagate_without_hanging(tmp_path) -> None:
    cfg = SimulationConfig(n_frames=10, shape=(32, 32))

    def stop_at_three(k: int) -> None:
        if k == 3:
            raise RuntimeError("stop")

    with pytest.raises(RuntimeError, match="stop"):
        write_movie(tmp_path / "n.tif", cfg, clean_path=tmp_path / "c.tif", progress=stop_at_three)
    with pytest.raises(OSError):
        write_movie(tmp_path / "n.tif", cfg, clean_path=tmp_path / "missing-dir" / "c.tif")


def test_write_movie_without_clean_and_simulate_matches(tmp_path) -> None:
    cfg = SimulationConfig(n_frames=3, shape=(24, 24), seed=1)
    write_movie(tmp_path / "n.tif", cfg)
    noisy, _clean = simulate(3, (24, 24), seed=1)
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "n.tif"), noisy)


# ----------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    "kwargs",
    [
        {"shape": (7, 64)},
        {"shape": (64,)},
        {"n_frames": 0},
        {"dose": 0.0},
        {"dose": -5.0},
        {"dose": float("nan")},
        {"dtype": "float32"},
        {"seed": -1},
        {"read_noise": -1.0},
        {"column_spacing_px": (0.0, 4.0)},
        {"coverage": 1.5},
    ],
)
def test_bad_config_raises_value_error(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        SimulationConfig(**kwargs)


def test_bad_calls_raise_value_error(tmp_path) -> None:
    with pytest.raises(ValueError, match="unknown simulation option"):
        simulate(2, (16, 16), not_an_option=1)
    with pytest.raises(ValueError):
        simulate(0, (16, 16))
    sim = MovieSimulator(SimulationConfig(n_frames=2, shape=(16, 16)))
    with pytest.raises(ValueError):
        sim.clean_frame(2)
    with pytest.raises(ValueError):
        sim.noisy_frame(-1)
    with pytest.raises(ValueError):
        write_movie(tmp_path / "a.tif", SimulationConfig(n_frames=1, shape=(16, 16)), clean_path=tmp_path / "a.tif")


@pytest.mark.parametrize(
    "kwargs",
    [
        {"shape": (8, 8)},
        {"shape": (9, 70), "n_particles": 0, "background": 0.0},
        {"shape": (20, 20), "n_particles": 6, "coalescence": False, "drift_speed": 0.0},
        {"shape": (64, 64), "dose": 1.0, "dtype": "uint8", "read_noise": 0.0},
    ],
)
def test_edge_configurations_render(kwargs: dict) -> None:
    noisy, clean = simulate(2, **kwargs) if "shape" not in kwargs else simulate(2, kwargs.pop("shape"), **kwargs)
    assert np.all(np.isfinite(clean)) and noisy.shape == clean.shape
