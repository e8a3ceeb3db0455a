"""Tests of the synthetic in-situ movie simulator (emtcs.simulate): HRTEM and the other imaging modes."""

from __future__ import annotations

import dataclasses
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
        {"mode": "tem"},
        {"mode": None},
        {"overlay_probability": 1.5},
        {"scan_noise": -1.0},
        {"scan_noise": float("inf")},
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


# ----------------------------------------------------------------------------- imaging modes

MODES = ["bright-field", "liquid-cell", "stem"]


@pytest.mark.parametrize(
    ("kwargs", "sums", "row", "noisy_row", "noisy_sum"),
    [
        (
            {"shape": (64, 64), "seed": 0},
            (409600.00772857666, 409886.79625701904),
            [95.71988677978516, 94.47442626953125, 98.2628173828125, 103.4615478515625],
            [106, 115, 108, 110, 110, 95, 103, 100],
            430412,
        ),
        (
            {"shape": (48, 80), "seed": 1, "dtype": "uint8", "dose": 30.0},
            (115199.9997844696, 115257.30661964417),
            [31.002412796020508, 33.0018424987793, 34.333187103271484, 34.81892776489258],
            [61, 68, 95, 65, 56, 94, 48, 69],
            290005,
        ),
        (
            {"shape": (64, 64), "seed": 11, "n_particles": 2},
            (409600.0126876831, 408210.55506134033),
            [101.14653778076172, 99.91722106933594, 98.95706939697266, 98.53765106201172],
            [113, 132, 111, 117, 116, 99, 101, 102],
            427514,
        ),
    ],
)
def test_hrtem_frames_unchanged_by_the_modes(
    kwargs: dict, sums: tuple, row: list, noisy_row: list, noisy_sum: int
) -> None:
    """Recorded before the imaging modes were added: the default mode renders the same movies.

    (Checked bit for bit on 60 frames when the modes were added; here to FFT rounding.)"""
    for cfg in (SimulationConfig(n_frames=6, **kwargs), SimulationConfig(n_frames=6, mode="hrtem", **kwargs)):
        sim = MovieSimulator(cfg)
        e0, e2 = sim.electrons(0), sim.electrons(2)
        assert e0.sum(dtype=np.float64) == pytest.approx(sums[0], rel=1e-6)
        assert e2.sum(dtype=np.float64) == pytest.approx(sums[1], rel=1e-6)
        np.testing.assert_allclose(e2[5, 7:11], row, rtol=1e-5)
        noisy = sim.noisy_frame(2)
        assert noisy[10, 10:18].tolist() == noisy_row
        assert abs(int(noisy.sum(dtype=np.int64)) - noisy_sum) <= 2
        assert sim.mode == "hrtem" and sim.full_well is None and sim.optics is not None


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("dtype", ["uint8", "uint16"])
def test_modes_shapes_dtypes_and_determinism(mode: str, dtype: str) -> None:
    n1, c1 = simulate(3, (40, 48), mode=mode, dtype=dtype, seed=5, dose=50.0)
    n2, c2 = simulate(3, (40, 48), mode=mode, dtype=dtype, seed=5, dose=50.0)
    n3, c3 = simulate(3, (40, 48), mode=mode, dtype=dtype, seed=6, dose=50.0)
    assert n1.shape == (3, 40, 48) and n1.dtype == np.dtype(dtype)
    assert c1.shape == (3, 40, 48) and c1.dtype == np.float32
    assert np.all(np.isfinite(c1)) and c1.min() >= 0
    np.testing.assert_array_equal(n1, n2)
    np.testing.assert_array_equal(c1, c2)
    assert not np.array_equal(n1, n3)
    assert np.abs(c1 - c3).mean() > 0.05 * c1.mean()
    sim = MovieSimulator(SimulationConfig(n_frames=3, shape=(40, 48), mode=mode, dtype=dtype, seed=5, dose=50.0))
    assert sim.clean_frame(0).mean() == pytest.approx(sim.gain * 50.0 + sim.offset, rel=1e-4)
    d = sim.describe()
    assert (
        d["mode"] == mode
        and d["pixel_size_nm"] > 0
        and sim.pixel_size_nm == pytest.approx(d["pixel_size_nm"], rel=1e-4)
    )


@pytest.mark.parametrize("mode", MODES)
def test_modes_random_access_equals_streaming(mode: str) -> None:
    cfg = SimulationConfig(n_frames=5, shape=(48, 40), seed=3, dose=20.0, mode=mode, overlay_probability=1.0)
    streamed = list(MovieSimulator(cfg).frames())
    fresh = MovieSimulator(cfg)
    for t in (4, 0, 2):
        np.testing.assert_array_equal(fresh.clean_frame(t), streamed[t][1])
        np.testing.assert_array_equal(fresh.noisy_frame(t), streamed[t][0])
    consecutive = [_corr(streamed[t][1], streamed[t + 1][1]) for t in range(4)]
    assert min(consecutive) > 0.8  # a movie, not a slide show


@pytest.mark.parametrize("mode", MODES)
def test_modes_fit_uint8_without_clipping(mode: str) -> None:
    """The uint8 gain leaves room for each mode's highlights (STEM columns are up to ~15x the mean)."""
    for seed in (1, 2):
        sim = MovieSimulator(SimulationConfig(mode=mode, shape=(64, 64), n_frames=2, seed=seed, dtype="uint8"))
        noisy = sim.noisy_frame(1)
        assert np.mean(noisy == 255) < 0.001
        assert 20 < noisy.mean() < 110


@pytest.mark.parametrize(
    "kwargs",
    [
        {"shape": (8, 8)},
        {"shape": (9, 70), "n_particles": 0, "background": 0.0},
        {"shape": (20, 20), "n_particles": 6, "coalescence": False, "drift_speed": 0.0},
        {"shape": (40, 40), "coverage": 1.0, "dose": 1.0, "dtype": "uint8", "read_noise": 0.0},
    ],
)
@pytest.mark.parametrize("mode", MODES)
def test_modes_edge_configurations_render(mode: str, kwargs: dict) -> None:
    kwargs = dict(kwargs)
    noisy, clean = simulate(2, kwargs.pop("shape"), mode=mode, **kwargs)
    assert np.all(np.isfinite(clean)) and noisy.shape == clean.shape and clean.min() >= 0


def _periodicity(img: np.ndarray) -> float:
    """Strongest spectral peak over the median of its ring of |k| (0.08 to 0.45 cycles/px):
    about 10 to 30 for random texture, hundreds and more for a lattice."""
    n0, n1 = img.shape
    win = np.hanning(n0)[:, None] * np.hanning(n1)[None, :]
    power = np.abs(np.fft.fft2((img - img.mean()) * win)) ** 2
    ring = np.round(np.hypot(np.fft.fftfreq(n0)[:, None], np.fft.fftfreq(n1)[None, :]) * min(n0, n1)).astype(int)
    return max(
        float(power[ring == r].max() / np.median(power[ring == r]))
        for r in range(int(0.08 * min(n0, n1)), int(0.45 * min(n0, n1)) + 1)
    )


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_bright_field_is_mass_thickness_contrast(seed: int) -> None:
    """Bright field: saturated regions, a wide dynamic range and no lattice periodicity.

    When written, the bright-field side held on 30 seeds of 30 (periodicity: 29, one film
    at 52); a single HRTEM particle of 96 px is above 100 for most seeds, as for these."""
    opts = dict(shape=(96, 96), n_frames=3, seed=seed)
    bf = MovieSimulator(SimulationConfig(mode="bright-field", **opts))
    hr = MovieSimulator(SimulationConfig(**opts))
    e, h = bf.electrons(0).astype(np.float64), hr.electrons(0).astype(np.float64)
    saturated = e >= bf.full_well * (1 - 1e-5)
    assert saturated.mean() > 0.004 and e.max() <= bf.full_well * (1 + 1e-5)
    assert np.mean(h >= h.max() * (1 - 1e-5)) < 0.001
    # The camera saturates flat: noisy saturated pixels all read the full well.
    noisy = bf.noisy_frame(0)
    assert np.ptp(noisy[saturated]) == 0
    assert noisy[saturated][0] == round(bf.full_well * bf.gain + bf.offset)

    def dark_to_bright(x: np.ndarray) -> float:
        return float(np.percentile(x, 0.5) / np.percentile(x, 99.5))

    assert dark_to_bright(e) < 0.2 < dark_to_bright(h)
    # No lattice: the spectrum has no sharp peaks, unlike an HRTEM particle.
    lattice = MovieSimulator(SimulationConfig(n_particles=1, illumination_gradient=0.0, **opts)).electrons(0)
    assert _periodicity(e) < 40 and _periodicity(lattice) > 100


def test_bright_field_overlay_stays_put_while_the_specimen_drifts() -> None:
    cfg = SimulationConfig(
        mode="bright-field", shape=(96, 96), n_frames=30, seed=4, overlay_probability=1.0, drift_speed=1.0
    )
    sim = MovieSimulator(cfg)
    overlay = sim.model.overlay
    assert overlay is not None and overlay.fg.any()
    marks = overlay.fg
    a, b = sim.clean_frame(0), sim.clean_frame(29)
    np.testing.assert_array_equal(a[marks], b[marks])
    value = sim.full_well * sim.gain + sim.offset if overlay.white else sim.offset
    assert np.allclose(a[marks], value, rtol=1e-5)
    assert _corr(a[~marks], b[~marks]) < 0.9  # the specimen moved underneath
    assert MovieSimulator(dataclasses.replace(cfg, overlay_probability=0.0)).model.overlay is None


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_liquid_cell_is_blurred_and_its_particles_move(seed: int) -> None:
    liq = MovieSimulator(SimulationConfig(mode="liquid-cell", shape=(64, 64), n_frames=300, seed=seed, drift_speed=0.0))

    def high_frequency_share(img: np.ndarray) -> float:
        win = np.hanning(img.shape[0])[:, None] * np.hanning(img.shape[1])[None, :]
        power = np.abs(np.fft.fft2((img - img.mean()) * win)) ** 2
        k = np.hypot(np.fft.fftfreq(img.shape[0])[:, None], np.fft.fftfreq(img.shape[1])[None, :])
        return float(power[k > 0.2].sum() / power.sum())

    # Strong blur: almost no power above 0.2 cycles/px (HRTEM: about 1e-3, depending on the lattice).
    assert high_frequency_share(liq.electrons(0)) < 1e-3
    # Brownian motion: particles move between frames, enter and leave the field, aggregate.
    model = liq.model
    p0, p10 = model.particle_positions(0), model.particle_positions(10)
    assert np.sqrt(np.mean(np.sum((p10 - p0) ** 2, axis=1))) > 1.0

    def in_view(t: int) -> set[int]:
        p = model.particle_positions(t)
        return set(np.flatnonzero((p[:, 0] >= 0) & (p[:, 0] < 64) & (p[:, 1] >= 0) & (p[:, 1] < 64)).tolist())

    assert in_view(0) != in_view(299)
    clusters = model.brownian.cluster
    assert len(np.unique(clusters[-1])) < len(np.unique(clusters[0]))
    assert _corr(liq.electrons(0), liq.electrons(40)) < _corr(liq.electrons(0), liq.electrons(1))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_stem_has_bright_columns_and_row_wise_scan_noise(seed: int) -> None:
    opts = dict(mode="stem", shape=(96, 96), n_frames=4, seed=seed)
    jittered = MovieSimulator(SimulationConfig(**opts)).electrons(2).astype(np.float64)
    ideal = MovieSimulator(SimulationConfig(scan_noise=0.0, **opts)).electrons(2).astype(np.float64)
    # HAADF: bright atom columns on a darker background (mean well above the median).
    assert ideal.mean() - np.median(ideal) > 0.1 * ideal.std()

    def line_to_line(x: np.ndarray) -> float:
        """Energy of the residual from smoothing down the columns over that along the rows."""
        across = np.mean((x[1:-1] - 0.5 * (x[:-2] + x[2:])) ** 2)
        along = np.mean((x[:, 1:-1] - 0.5 * (x[:, :-2] + x[:, 2:])) ** 2)
        return float(across / along)

    # Each scan line is shifted and scaled on its own: rough across lines, smooth along them.
    assert line_to_line(jittered) > 1.3 * line_to_line(ideal)
    assert np.abs(jittered - ideal).mean() > 0.01 * ideal.mean()


def test_a_tiny_twinned_particle_without_a_lamella_plane_renders() -> None:
    # found by a property campaign: the twin's second plane had no column to pass through
    cfg = SimulationConfig(n_frames=3, shape=(9, 70), dose=5, seed=16, voltage_kv=80, column_spacing_px=(3, 4))
    frames = [MovieSimulator(cfg).noisy_frame(t) for t in range(3)]
    assert all(f.shape == (9, 70) for f in frames)
