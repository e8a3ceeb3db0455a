"""Fidelity metrics with an explicit data range (never guessed from the dtype)."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

__all__ = [
    "psnr",
    "ssim",
    "frc_curve",
    "frc_resolution",
    "PEAK_FACTOR",
    "PEAK_PRESENT",
    "PEAK_MIN_FREQ",
    "peak_contrast",
    "spectral_peaks",
    "invented_peaks",
    "unsupported_contrasts",
    "contrast_near",
    "movie_quality",
]

#: A spectral (Bragg) peak: this many times the local median power, a 5 x 5 local maximum.
PEAK_FACTOR = 30.0
#: Peaks are sought between this frequency (cycles per pixel; below it lies the envelope) and Nyquist.
PEAK_MIN_FREQ = 0.03
#: A peak of a decoded frame is matched by a reference peak within this many frequency bins.
PEAK_TOLERANCE = 2.0
#: The reference holds a peak where a bin near it has this many times its surroundings'
#: power (:func:`unsupported_contrasts`): a weaker bar than :data:`PEAK_FACTOR` (hysteresis),
#: so that a weak reflection of the truth that a denoiser lifts over 30 (it lowers the
#: noise around it) is not counted as invented.  In white noise a bin passes 10 with
#: probability ~1e-3.
PEAK_PRESENT = 10.0


def psnr(reference: np.ndarray, test: np.ndarray, *, data_range: float) -> float:
    """PSNR in dB of ``test`` against ``reference``; ``inf`` for identical images."""
    reference = np.asarray(reference, dtype=np.float64)
    test = np.asarray(test, dtype=np.float64)
    if np.array_equal(reference, test):
        return float("inf")
    return float(peak_signal_noise_ratio(reference, test, data_range=data_range))


def ssim(reference: np.ndarray, test: np.ndarray, *, data_range: float) -> float:
    """Mean SSIM of a 2-D ``test`` frame against ``reference``.

    Gaussian 11-tap window (sigma 1.5) as in Wang et al. 2004; frames under 11 px use
    the largest odd uniform window that fits; ``nan`` under 3 px.
    """
    reference = np.asarray(reference, dtype=np.float64)
    test = np.asarray(test, dtype=np.float64)
    n = min(reference.shape)
    if n < 3:
        return float("nan")
    if n >= 11:
        opts = {"gaussian_weights": True, "sigma": 1.5, "use_sample_covariance": False}
    else:
        opts = {"win_size": n if n % 2 else n - 1}
    return float(structural_similarity(reference, test, data_range=data_range, **opts))


def frc_curve(reference: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Fourier ring correlation of two 2-D frames: (ring frequencies in cycles per pixel, FRC).

    Both frames lose their mean and are tapered by a Hann window (so the frame edges do
    not correlate); rings are 1/min(h, w) cycles per pixel wide, up to Nyquist (0.5).
    """
    a = np.asarray(reference, dtype=np.float64)
    b = np.asarray(test, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 2:
        raise ValueError(f"FRC needs two frames of one 2-D shape, got {a.shape} and {b.shape}")
    h, w = a.shape
    window = np.outer(np.hanning(h), np.hanning(w))
    fa = np.fft.rfft2((a - a.mean()) * window)
    fb = np.fft.rfft2((b - b.mean()) * window)
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.rfftfreq(w)[None, :]
    n = min(h, w)
    ring = np.rint(np.sqrt(fy**2 + fx**2) * n).astype(int).ravel()
    rings = n // 2 + 1
    keep = ring < rings
    ring = ring[keep]

    def per_ring(v: np.ndarray) -> np.ndarray:
        return np.bincount(ring, weights=v.ravel()[keep], minlength=rings)

    cross = per_ring(np.real(fa * np.conj(fb)))
    power = np.sqrt(per_ring(np.abs(fa) ** 2) * per_ring(np.abs(fb) ** 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        curve = np.where(power > 0, cross / power, 1.0)
    return np.arange(rings) / n, curve


def frc_resolution(reference: np.ndarray, test: np.ndarray, threshold: float = 0.5) -> float:
    """Resolution in pixels at which two frames stop agreeing: 1/f where the Fourier ring
    correlation first falls below ``threshold`` (linear between rings); 2 px (Nyquist) if
    it never does.  Smaller is better; how microscopists judge resolution.
    """
    freq, curve = frc_curve(reference, test)
    for k in range(1, len(curve)):
        if curve[k] < threshold:
            c0, c1 = curve[k - 1], curve[k]
            f = freq[k - 1] + (freq[k] - freq[k - 1]) * (c0 - threshold) / (c0 - c1) if c0 != c1 else freq[k]
            return float(1.0 / max(f, freq[1]))
    return 2.0


def peak_contrast(frame: np.ndarray) -> np.ndarray:
    """A 2-D frame's power spectrum over its local background, bin by bin, centred (the
    zero frequency at (h // 2, w // 2)): after mean removal and a Hann taper, each bin's
    power over the median of the 9 x 9 bins around it (0 where there is no power)."""
    return _contrast(_power(frame))


def _power(frame: np.ndarray) -> np.ndarray:
    a = np.asarray(frame, dtype=np.float64)
    h, w = a.shape
    return np.abs(np.fft.fftshift(np.fft.fft2((a - a.mean()) * np.outer(np.hanning(h), np.hanning(w))))) ** 2


def _contrast(power: np.ndarray) -> np.ndarray:
    from scipy.ndimage import median_filter

    background = median_filter(power, size=9, mode="wrap")
    return np.where(power > 0, power / np.maximum(background, 1e-6 * power.max(initial=0) or 1.0), 0.0)


def spectral_peaks(frame: np.ndarray, factor: float = PEAK_FACTOR) -> np.ndarray:
    """Bragg-like peaks of a 2-D frame's power spectrum: (k, 2) frequency offsets (rows, cols)
    in FFT bins from the centre, one of each Friedel pair (rows > 0, or row 0 and cols > 0).

    The rule: a peak is a 5 x 5 local maximum of the power whose :func:`peak_contrast` is
    at least ``factor`` (its power at least ``factor`` times the median of the 9 x 9 bins
    around it, and at least 1e-6 of the strongest bin, for noise-free frames), at a
    frequency from :data:`PEAK_MIN_FREQ` cycles per pixel to Nyquist.  In white noise the
    power over its local median exceeds 30 with probability ~1e-9 per bin.
    """
    power = _power(frame)
    return _local_peaks(power, _contrast(power), factor)


def _local_peaks(power: np.ndarray, contrast: np.ndarray, factor: float) -> np.ndarray:
    """:func:`spectral_peaks` of a frame's centred ``power`` spectrum and its ``contrast``."""
    from scipy.ndimage import maximum_filter

    h, w = power.shape
    ky = (np.arange(h) - h // 2)[:, None]
    kx = (np.arange(w) - w // 2)[None, :]
    freq = np.sqrt((ky / h) ** 2 + (kx / w) ** 2)
    half = (ky > 0) | ((ky == 0) & (kx > 0))
    peak = (
        (contrast >= factor)
        & (power == maximum_filter(power, size=5, mode="wrap"))
        & (freq >= PEAK_MIN_FREQ)
        & (freq <= 0.5)
        & half
    )
    rows, cols = np.nonzero(peak)
    return np.stack([rows - h // 2, cols - w // 2], axis=1)


def invented_peaks(reference: np.ndarray, test: np.ndarray, tolerance: float = PEAK_TOLERANCE) -> int:
    """How many :func:`spectral_peaks` of ``test`` the ``reference`` frame does not hold:
    periodic structure a decoder made up (:func:`unsupported_contrasts` from
    :data:`PEAK_FACTOR` on)."""
    return sum(c >= PEAK_FACTOR for c, *_ in unsupported_contrasts(peak_contrast(reference), test, tolerance))


def unsupported_contrasts(
    reference_contrast: np.ndarray, test: np.ndarray, tolerance: float = PEAK_TOLERANCE
) -> list[tuple[float, int, int]]:
    """Every spectral peak of ``test`` from :data:`PEAK_PRESENT` on (sought as
    :func:`spectral_peaks` seeks them) that the reference does not hold: (its
    :func:`peak_contrast`, ky, kx).  The reference holds a peak where a bin within
    ``tolerance`` bins reaches :data:`PEAK_PRESENT` in its contrast ``reference_contrast``:
    the weaker bar (hysteresis) and no demand for a local maximum there, so a reflection
    that the reference shows weakly, or as a shoulder of the spectrum's envelope, is one it
    holds.  Those from :data:`PEAK_FACTOR` on are the ones :func:`invented_peaks` counts;
    the strongest of the rest tells how near a frame comes to that bar, where the count
    alone flips between near-identical decoders."""
    power = _power(test)
    contrast = _contrast(power)
    h, w = contrast.shape
    found = []
    for ky, kx in _local_peaks(power, contrast, PEAK_PRESENT):
        if contrast_near(reference_contrast, ky, kx, tolerance) < PEAK_PRESENT:
            found.append((float(contrast[ky + h // 2, kx + w // 2]), int(ky), int(kx)))
    return found


def contrast_near(contrast: np.ndarray, ky: int, kx: int, tolerance: float = PEAK_TOLERANCE) -> float:
    """The highest :func:`peak_contrast` ``contrast`` within ``tolerance`` bins (a disc) of
    the frequency offset (ky, kx) from the centre: what :func:`unsupported_contrasts` asks of
    the reference at a decoded peak."""
    h, w = contrast.shape
    r = int(tolerance)
    dy, dx = np.mgrid[-r : r + 1, -r : r + 1]
    disc = dy**2 + dx**2 <= tolerance**2
    return float(contrast[(ky + h // 2 + dy[disc]) % h, (kx + w // 2 + dx[disc]) % w].max())


def movie_quality(pairs: Iterable[tuple[np.ndarray, np.ndarray]], *, data_range: float) -> dict[str, float]:
    """Mean per-frame PSNR and SSIM over (reference, test) frame pairs, and the worst PSNR."""
    p, s = [], []
    for ref, test in pairs:
        p.append(psnr(ref, test, data_range=data_range))
        s.append(ssim(ref, test, data_range=data_range))
    if not p:
        raise ValueError("no frames to compare")
    return {
        "psnr": float(np.mean(p)),
        "psnr_min": float(np.min(p)),
        "ssim": float(np.nanmean(s)) if not np.all(np.isnan(s)) else float("nan"),
        "frames": len(p),
    }
