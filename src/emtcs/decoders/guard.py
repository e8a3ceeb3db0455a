"""A guard for learned decoders: tiles they fail on are decoded with GAP-TV instead.

A network meets data unlike its training data (bright-field contrast, burned-in
overlays, clean 8-bit frames) and can fail badly there while GAP-TV, which only
assumes smooth frames, does not.  The sign is the measurement residual: a decoder
that only removed noise leaves a residual Y - sum_b C_b X_b about as large as the
shot noise of Y; one that got the frames wrong leaves much more.  With Y/g electrons
the noise variance of Y is g * Y, so per tile the guard computes

    ratio = sqrt(mean(residual^2) / mean(g * Y))

and hands the tile to the fallback decoder when it exceeds a threshold, unless the
fallback's frames leave a larger residual still (the noise model then understates the
data's noise, e.g. a STEM scan's line-to-line gains, and the network, not GAP-TV, explains
the measurement better: session 61 measured 32.0 dB kept against 23.4 given away).
Measured (docs/decoders.md, benchmarks/guard_ratios.py): 0.7-1.4 where the shipped network
works up to 200 e/px, up to 2.45 at 1000 e/px, 2.3-3.4 on real movies where it fails.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .base import Decoder, per_tile

__all__ = [
    "GUARD_RATIO",
    "HOLDOUT_FRACTION",
    "GuardedDecoder",
    "noise_ratio",
    "holdout_score",
    "holdout_pixels",
    "withhold",
    "prediction_error",
    "guarded",
]

#: Share of a tile's measurement pixels :func:`holdout_score` withholds.
HOLDOUT_FRACTION = 0.1

#: Default threshold on :func:`noise_ratio` (``emtcs decompress --guard``).
GUARD_RATIO = 2.0


def noise_ratio(
    y: np.ndarray, masks: np.ndarray, frames: np.ndarray, electrons_per_unit: float | np.ndarray
) -> np.ndarray:
    """Per tile, the RMS measurement residual over the RMS shot noise expected for ``y``.

    ``y`` (n, h, w), ``masks`` (n, B, h, w), ``frames`` (n, B, h, w), all in the same
    units; ``electrons_per_unit`` (one, or one per tile) converts those units to electrons.
    """
    residual = y - np.einsum("nbhw,nbhw->nhw", masks, frames)
    noise_var = np.maximum(y, 0).mean(axis=(1, 2)) / electrons_per_unit
    res_var = np.square(residual).mean(axis=(1, 2))
    return np.sqrt(res_var / np.maximum(noise_var, np.finfo(np.float32).tiny))


def holdout_score(
    dec: Decoder,
    y: np.ndarray,
    masks: np.ndarray,
    electrons_per_unit: float,
    *,
    fraction: float = HOLDOUT_FRACTION,
    seed: int = 0,
) -> np.ndarray:
    """Per tile, how well ``dec`` predicts measurement pixels it was not shown, in shot-noise units.

    A seeded random ``fraction`` of the pixels is withheld (measurement and every mask set
    to 0 there), the tiles are decoded without them, and the prediction
    ``sum_b C_b X_b`` at those pixels is compared with what was recorded: RMS error over
    RMS expected shot noise.  About 1 for a decoder that predicts unseen data to the
    noise; larger where it makes things up.  Unlike the residual, a decoder cannot make
    it small by fitting the noise.  Costs one more decode.
    """
    hold = holdout_pixels(y.shape[-2:], fraction, seed)
    if not hold.any():
        return np.ones(len(y))
    y_seen, masks_seen = withhold(y, masks, hold)
    return prediction_error(y, masks, dec.decode(y_seen, masks_seen, electrons_per_unit), hold, electrons_per_unit)


def holdout_pixels(shape: tuple[int, ...], fraction: float = HOLDOUT_FRACTION, seed: int = 0) -> np.ndarray:
    """The seeded random (h, w) selection of pixels :func:`holdout_score` withholds."""
    return np.random.default_rng(seed).random((int(shape[0]), int(shape[1]))) < fraction


def withhold(y: np.ndarray, masks: np.ndarray, hold: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Measurement and masks with the pixels ``hold`` removed (set to 0), as float32."""
    return np.where(hold, 0, y).astype(np.float32), np.where(hold, 0, masks).astype(np.float32)


def prediction_error(
    y: np.ndarray, masks: np.ndarray, frames: np.ndarray, hold: np.ndarray, electrons_per_unit: float | np.ndarray
) -> np.ndarray:
    """Per tile, RMS error of ``sum_b C_b X_b`` at the pixels ``hold`` over their RMS shot
    noise (``electrons_per_unit``: one, or one per tile)."""
    predicted = np.einsum("nbhw,nbhw->nhw", masks, frames)[:, hold].astype(np.float64)
    recorded = y[:, hold].astype(np.float64)
    noise_var = np.maximum(recorded, 0).mean(axis=1) / electrons_per_unit
    err_var = np.square(recorded - predicted).mean(axis=1)
    return np.sqrt(err_var / np.maximum(noise_var, np.finfo(np.float32).tiny))


class GuardedDecoder(Decoder):
    """``inner``'s frames, except for tiles whose :func:`noise_ratio` exceeds ``threshold``
    and is larger than the ``fallback``'s frames leave there: those come from ``fallback``.
    Counts tiles seen and replaced (``tiles``, ``replaced``).

    Tiles reach decoders normalised (divided by an intensity scale s), so the
    ``electrons_per_unit`` that :meth:`decode` is given is s / g for a movie of g levels
    per electron; without it (noise unknown) every tile is kept.
    """

    name = "guarded"

    def __init__(self, inner: Decoder, fallback: Decoder, *, threshold: float):
        self.inner, self.fallback = inner, fallback
        self.threshold = float(threshold)
        self.batched = inner.batched  # type: ignore[misc]
        self.sees_runs = inner.sees_runs  # type: ignore[misc]
        self.tiles = self.replaced = 0
        self.last_replaced = np.zeros(0, dtype=bool)

    def decode(
        self, y: np.ndarray, masks: np.ndarray, electrons_per_unit: float | np.ndarray | None = None, **run: int
    ) -> np.ndarray:
        """``inner``'s frames (of runs of groups where given ``run``), the tiles it failed on
        from the fallback, each alone."""
        frames = self.inner.decode(y, masks, electrons_per_unit, **run)
        epu = per_tile(electrons_per_unit, len(y))
        bad = np.zeros(len(y), dtype=bool)
        if epu is not None:
            ratio = noise_ratio(y, masks, frames, epu)
            over = np.flatnonzero(ratio > self.threshold)
            if over.size:
                fallen = self.fallback.decode(y[over], masks[over], epu[over])
                take = noise_ratio(y[over], masks[over], fallen, epu[over]) < ratio[over]
                frames = frames.copy()
                frames[over[take]] = fallen[take]
                bad[over[take]] = True
        self.tiles += len(y)
        self.replaced += int(bad.sum())
        self.last_replaced = bad
        return frames

    def get_config(self) -> dict[str, Any]:
        return {**self.inner.get_config(), "guard": self.threshold, "fallback": self.fallback.get_config()}


def guarded(dec: Decoder, threshold: float, *, noise_measured: bool = True) -> Decoder:
    """``dec`` behind a guard with GAP-TV as fallback if it is a learned decoder and
    ``threshold`` > 0, else ``dec`` itself.  The fallback's discrepancy rule is on only
    where the noise was ``noise_measured`` (:mod:`emtcs.decoders.gaptv`)."""
    from .gaptv import GapTV
    from .learned import LearnedDecoder

    if threshold > 0 and isinstance(dec, LearnedDecoder):
        return GuardedDecoder(dec, GapTV(discrepancy=noise_measured), threshold=threshold)
    return dec
