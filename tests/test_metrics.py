"""Fidelity metrics: FRC resolution against hand-made cases, the spectral-peak rule."""

from __future__ import annotations

import numpy as np
import pytest

from emtcs.metrics import frc_curve, frc_resolution, invented_peaks, spectral_peaks


def _band(image: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """The part of ``image`` at radial frequencies in [lo, hi) cycles per pixel."""
    h, w = image.shape
    r = np.sqrt(np.fft.fftfreq(h)[:, None] ** 2 + np.fft.fftfreq(w)[None, :] ** 2)
    return np.real(np.fft.ifft2(np.fft.fft2(image) * ((r >= lo) & (r < hi))))


@pytest.mark.parametrize("cutoff", [0.0625, 0.125, 0.25])
def test_frc_resolution_is_the_period_where_two_images_stop_agreeing(cutoff):
    # the same white noise below the cutoff, independent noise above: FRC ~1 then ~0
    rng = np.random.default_rng(1)
    ref, other = rng.standard_normal((2, 256, 256))
    test = _band(ref, 0, cutoff) + _band(other, cutoff, 1)
    assert frc_resolution(ref, test) == pytest.approx(1 / cutoff, rel=0.1)


def test_frc_of_identical_and_unrelated_frames():
    rng = np.random.default_rng(2)
    a, b = rng.standard_normal((2, 64, 80))
    freq, curve = frc_curve(a, a)
    assert freq[0] == 0 and freq[-1] == pytest.approx(0.5) and np.allclose(curve, 1)
    assert frc_resolution(a, a) == 2.0  # agrees up to Nyquist
    assert frc_resolution(a, b) > 20  # unrelated noise never agrees
    with pytest.raises(ValueError):
        frc_curve(a, a[:10])


def test_spectral_peaks_find_a_lattice_and_an_invented_one():
    yy, xx = np.mgrid[0:192, 0:192]
    hexagonal = 4 + sum(
        np.cos(2 * np.pi * (xx * np.cos(t) + yy * np.sin(t)) / 6) for t in (0, np.pi / 3, 2 * np.pi / 3)
    )
    stripes = 4 + np.cos(2 * np.pi * xx / 6) + np.cos(2 * np.pi * yy / 8)
    noisy = np.random.default_rng(0).poisson(hexagonal * 20) / 20
    assert len(spectral_peaks(hexagonal)) == 3  # one of each Friedel pair
    np.testing.assert_array_equal(spectral_peaks(noisy), spectral_peaks(hexagonal))
    assert len(spectral_peaks(np.random.default_rng(3).standard_normal((192, 192)))) == 0
    assert invented_peaks(hexagonal, noisy) == 0
    # stripes share the x-period peak with the lattice, and add one at a 9 px period in y
    assert invented_peaks(hexagonal, stripes) == 1


def test_a_weak_reflection_of_the_reference_made_stronger_is_not_invented():
    from scipy.ndimage import gaussian_filter

    yy, xx = np.mgrid[0:192, 0:192]
    texture = gaussian_filter(np.random.default_rng(5).standard_normal((192, 192)), 1.0)
    weak = texture + 0.03 * np.cos(2 * np.pi * yy / 8)  # about 13x its surroundings: under the 30x bar
    assert not any((p == (24, 0)).all() for p in spectral_peaks(weak))
    lifted = texture + 0.1 * np.cos(2 * np.pi * yy / 8)  # the same reflection, as a denoiser shows it
    assert any((p == (24, 0)).all() for p in spectral_peaks(lifted))
    assert invented_peaks(weak, lifted) == 0
    # a period the reference does not hold at all still counts
    assert invented_peaks(weak, texture + 0.1 * np.cos(2 * np.pi * xx / 7)) == 1


def test_peaks_the_reference_lacks_are_reported_below_the_bar_too():
    from scipy.ndimage import gaussian_filter

    from emtcs.metrics import PEAK_FACTOR, peak_contrast, unsupported_contrasts

    xx = np.mgrid[0:192, 0:192][1]
    texture = gaussian_filter(np.random.default_rng(5).standard_normal((192, 192)), 1.0)
    reference = peak_contrast(texture)
    assert unsupported_contrasts(reference, texture) == []
    assert unsupported_contrasts(reference, texture + 0.02 * np.cos(2 * np.pi * xx / 7)) == []  # under 10
    seen = []
    for amplitude in (0.04, 0.06, 0.1):  # a fringe of a 7 px period the reference lacks
        test = texture + amplitude * np.cos(2 * np.pi * xx / 7)
        ((contrast, ky, kx),) = unsupported_contrasts(reference, test)
        assert (ky, kx) == (0, round(192 / 7))
        # counted as invented exactly when it reaches the check's bar
        assert (contrast >= PEAK_FACTOR) == (invented_peaks(texture, test) == 1)
        seen.append(contrast)
    assert seen[0] < PEAK_FACTOR < seen[-1] and seen == sorted(seen)
