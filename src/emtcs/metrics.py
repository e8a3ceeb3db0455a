"""Fidelity metrics with an explicit data range (never guessed from the dtype)."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

__all__ = ["psnr", "ssim", "movie_quality"]


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
