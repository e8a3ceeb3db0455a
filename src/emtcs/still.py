"""Parts of tiles where the specimen held still, given back from the measurement itself.

Every group of a file is taken with the same masks (formats/tcs.md §5), so a specimen
that did not move between two groups left the same measurement in both, to the shot
noise; and within a still group every frame is Y / Σ_b C_b, exactly, with the noise of
about Σ_b C_b frames averaged.  The decoders learned from moving movies, and GAP-TV, the
networks' start, fills in each frame from the half of its pixels its mask keeps: a strong
fine lattice that holds still is lost by all of them (docs/benchmarks.md, "Still
specimens").

:func:`still_score` is the mean over pixels of (Y − Y')² / Var(Y − Y') for the group's
measurement Y and a neighbouring group's Y', in units of their shot noise: for Poisson
counts its expectation is exactly 1 where nothing changed, at any dose (given the sum of
two Poisson counts, their difference is binomial), and it grows with the square of any
change.  A neighbour is first brought to the tile's level (the ratio of their sums), so
that the beam's intensity changing between groups (a cold field emitter's flicker) is not
taken for motion, and the still image keeps the group's own level.  A tile whose score
against a neighbour is at most :data:`STILL_BAR`, and at most :data:`BLOCK_BAR` over each
of its blocks of :data:`BLOCK` × :data:`BLOCK` pixels (one atom that moved changes one
block), held still beside it; a tile that did not is judged again in half-overlapping
windows of :data:`WINDOW` × :data:`WINDOW` pixels by the same bars (each window's blocks
taken a block's width around it, so that a change across its edge is seen whole), so
that what moved in one part of it leaves the rest still.  (Windows alone would be
stricter where a slow drift moves high-contrast parts more than the bar allows a window
but less than it allows the tile; there the still image still gains several dB.)
:func:`hold_still` then gives the tile one image: the decoded frames' mean M, corrected
towards the normalised measurement S of the n groups that held still (the tile's and one
or both neighbours': S = (Y + Y') / (2 Σ_b C_b) for two) where S − M stands out of S's
noise in the power spectrum (at least :data:`SPECTRAL_BAR` times the noise's power,
weighted 1 − noise / power as a Wiener filter would), and each frame becomes that image
where its windows held still, its decoded self where they did not, blended linearly
between the windows' centres (what moved stays the decoder's, and is left out of S − M
and its noise).  The noise's power spectrum is measured, not modelled: the groups'
n − 1 orthonormal contrasts ((Y − Y') / √2 for two), divided by √n Σ_b C_b, hold exactly
the noise of S and none of the specimen, and their periodograms averaged over
:data:`NOISE_BOX` × :data:`NOISE_BOX` neighbouring frequencies follow noise that
neighbouring pixels share, and quantisation, as well as white shot noise.
What the decoder lost and the measurement holds comes back; noise the decoder
removed stays removed; nothing the measurement lacks is added.  Measured by
``benchmarks/still_scenes.py`` (docs/decoders.md, "Still specimens").

Stored measurements quantised in steps of q noise standard deviations (formats/tcs.md
§9) carry q²/12 more variance, which the score takes in.  The test needs each pixel's
noise: the file's Poisson model (measured or given), or, where compress could only
measure one noise σ per frame (``gaussian-v1`` files, and Poisson counts whose gain it
could not fit: there a window's score is still right on average, and its blocks brighter
than the mean score high, so the test errs towards the decoder); without either it does
not run.  A group without a neighbour of its own length (a file of one group, a scene
cut on both sides) is not tested.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.ndimage import uniform_filter

__all__ = [
    "STILL_BAR",
    "BLOCK_BAR",
    "BLOCK",
    "WINDOW",
    "SPECTRAL_BAR",
    "NOISE_BOX",
    "still_score",
    "shot_variance",
    "hold_still",
    "StillTiles",
]

#: A tile (or a window of it) held still where its measurement differs from a neighbouring
#: group's by at most this mean square, in units of the difference's shot noise (1 where
#: nothing moved) ...
STILL_BAR = 1.1
#: ... and by at most this much in each of its blocks of BLOCK x BLOCK pixels (a window's
#: taken a block around it too), so that one atom that moved is not averaged away (where
#: nothing changed, the largest of a 256 x 256 tile's blocks is about 1.3, at most 1.44 in
#: 114 tiles at 0.2-2000 e/px; a window scores at most 1.08, its blocks 1.45, in 5,880).
BLOCK_BAR = 1.6
BLOCK = 16
#: A tile not still as a whole is judged again in windows of WINDOW x WINDOW pixels, half
#: overlapping (a tile smaller than that is one window), so that what moves in one part of
#: it leaves the rest still.
WINDOW = 64
#: Frequencies where the still estimate departs from the decoded mean by at least this
#: many times its noise power are put back (Wiener weighted); the rest are left decoded.
SPECTRAL_BAR = 9.0
#: The noise's power spectrum is the two groups' difference's, averaged over this many
#: neighbouring frequencies along each axis.
NOISE_BOX = 5


def still_score(y: np.ndarray, other: np.ndarray, variance: np.ndarray, block: int = 0) -> np.ndarray:
    """Per tile, the mean of (y − other)² / ``variance`` (the noise variance of y − other,
    :func:`shot_variance`) over the pixels where it is positive; NaN where it is nowhere.
    With ``block``, the largest such mean over the tile's ``block`` × ``block`` blocks, on
    two grids half a block apart diagonally (so that a change no block holds whole still
    falls mostly within one); the whole tile's where it is smaller than two blocks.

    ``y``, ``other`` and ``variance`` are (n, h, w): measurements of the same tiles in two
    groups, normalised alike, and their difference's noise variance.
    """
    return _score(*_ratio(y, other, variance), block)


def _ratio(y: np.ndarray, other: np.ndarray, variance: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(y − other)² / variance per pixel (0 where the variance is not positive), and where it is."""
    counted = variance > 0  # False where NaN too
    ratio = np.where(counted, np.square(y.astype(np.float64) - other) / np.where(counted, variance, 1.0), 0.0)
    return ratio, counted


def _score(ratio: np.ndarray, counted: np.ndarray, block: int) -> np.ndarray:
    """:func:`still_score` from the per-pixel ratios."""
    n, h, w = ratio.shape
    if not block or min(h, w) < 2 * block:
        return _largest(ratio.reshape(n, 1, -1), counted.reshape(n, 1, -1))
    grids = []
    for start in (0, block // 2):
        hb, wb = (h - start) // block, (w - start) // block
        for a in (ratio, counted):
            cut = a[:, start : start + hb * block, start : start + wb * block]
            grids.append(cut.reshape(n, hb, block, wb, block).swapaxes(2, 3).reshape(n, hb * wb, -1))
    return np.fmax(_largest(grids[0], grids[1]), _largest(grids[2], grids[3]))


def shot_variance(
    y: np.ndarray, other: np.ndarray, masks: np.ndarray, electrons_per_unit: np.ndarray, sigma: np.ndarray | None
) -> np.ndarray:
    """The noise variance of y − other for (n, h, w) tiles of two groups' measurements
    taken with ``masks`` (n, B, h, w): Poisson, (y + other) / ``electrons_per_unit``; or,
    where the file holds one noise ``sigma`` per frame instead (per tile, normalised like
    y), 2 Σ_b C_b sigma²."""
    if sigma is None:
        total = np.maximum(y, 0).astype(np.float64) + np.maximum(other, 0)
        return total / np.asarray(electrons_per_unit, dtype=np.float64).reshape(-1, 1, 1)
    frames = masks.sum(axis=1, dtype=np.float64)
    variance = 2 * frames * np.square(np.asarray(sigma, dtype=np.float64)).reshape(-1, 1, 1)
    return np.where(np.isnan(other), np.nan, variance)


def _largest(ratio: np.ndarray, counted: np.ndarray) -> np.ndarray:
    """Per tile, the largest mean ratio over its (n, blocks, pixels) blocks; NaN where no
    block has a pixel counted."""
    pixels = counted.sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        scores = np.where(pixels > 0, ratio.sum(axis=-1) / np.maximum(pixels, 1), -np.inf)
    best = scores.max(axis=-1)
    return np.where(np.isfinite(best), best, np.nan)


def hold_still(
    frames: np.ndarray,
    y: np.ndarray,
    others: Sequence[np.ndarray],
    masks: np.ndarray,
    weight: np.ndarray | None = None,
) -> np.ndarray:
    """Each tile's one still image (module docstring), float64 (n, h, w).

    ``frames`` (n, B, h, w) decoded, ``y`` and each of ``others`` (n, h, w) the tiles'
    measurements in groups that held still (one or two neighbours), ``masks`` (n, B, h, w).
    ``weight`` (n, h, w), from 0 to 1, says where the tiles held still (None: everywhere):
    what moved elsewhere is left out of the corrections and their noise.
    """
    groups = [y.astype(np.float64), *(np.asarray(o, dtype=np.float64) for o in others)]
    frames_in = masks.sum(axis=1, dtype=np.float64)
    covered = frames_in > 0
    unit = np.where(covered, 1 / (np.sqrt(len(groups)) * np.maximum(frames_in, 1)), 0.0)
    mean = frames.mean(axis=1, dtype=np.float64)
    difference = np.where(covered, sum(groups) / (len(groups) * np.maximum(frames_in, 1)) - mean, 0.0)
    if weight is not None:
        unit = unit * weight
        difference = difference * weight
    # orthonormal contrasts of the groups (Helmert's) hold exactly the noise of their sum and
    # none of the specimen: scaled by `unit`, each has the noise of the groups' mean
    noise = np.zeros(mean.shape[:-1] + (mean.shape[-1] // 2 + 1,))
    for j in range(1, len(groups)):
        contrast = (sum(groups[:j]) - j * groups[j]) / np.sqrt(j * (j + 1))
        noise += np.square(np.abs(np.fft.rfft2(contrast * unit))) / (len(groups) - 1)
    noise = uniform_filter(noise, size=(1, NOISE_BOX, NOISE_BOX), mode=("nearest", "wrap", "nearest"))
    spectrum = np.fft.rfft2(difference)
    power = np.square(np.abs(spectrum))
    kept = np.where(power > SPECTRAL_BAR * noise, 1 - noise / np.maximum(power, np.finfo(np.float64).tiny), 0.0)
    return mean + np.fft.irfft2(kept * spectrum, s=mean.shape[-2:])


def _windows(size: int) -> np.ndarray:
    """Starts of the half-overlapping windows along an axis of ``size`` pixels (the last
    one flush with the end)."""
    if size <= WINDOW:
        return np.zeros(1, dtype=int)
    starts = np.arange(0, size - WINDOW + 1, WINDOW // 2)
    return starts if starts[-1] + WINDOW == size else np.append(starts, size - WINDOW)


def _spread(starts: np.ndarray, size: int) -> np.ndarray:
    """(size, windows): each pixel's share of the windows along an axis, interpolated
    linearly between their centres: only windows that hold the pixel have a share."""
    centres = starts + min(WINDOW, size) / 2
    pixels = np.arange(size) + 0.5
    return np.stack([np.interp(pixels, centres, np.eye(len(starts))[k]) for k in range(len(starts))], axis=1)


def _level(y: np.ndarray, other: np.ndarray) -> np.ndarray:
    """Per tile (n, 1, 1), what brings ``other`` to the level of ``y``: the ratio of their
    sums (NaN where ``other`` is missing or holds nothing)."""
    total = other.sum(axis=(1, 2), dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, y.sum(axis=(1, 2), dtype=np.float64) / total, np.nan)[:, None, None]


def _window_scores(ratio: np.ndarray, counted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per tile and window (n, rows, cols): the mean ratio over the window, and the largest
    mean ratio over the blocks (:func:`_score`) of the window grown by a block on each side,
    so that a change across the window's edge is seen whole; NaN where no pixel is counted."""
    n, h, w = ratio.shape
    rows, cols = _windows(h), _windows(w)
    side_y, side_x = min(WINDOW, h), min(WINDOW, w)
    whole = np.empty((n, len(rows), len(cols)))
    worst = np.empty_like(whole)
    for i, r in enumerate(rows):
        for j, c in enumerate(cols):
            inner = np.s_[:, r : r + side_y, c : c + side_x]
            outer = np.s_[:, max(r - BLOCK, 0) : r + side_y + BLOCK, max(c - BLOCK, 0) : c + side_x + BLOCK]
            whole[:, i, j] = _score(ratio[inner], counted[inner], 0)
            worst[:, i, j] = _score(ratio[outer], counted[outer], BLOCK)
    return whole, worst


class StillTiles:
    """The still stage of a decode, counting by group the tiles it gave back still, in whole
    or in part.

    Called on a batch of decoded tiles of runs of ``K`` groups (tile i of group i % K, as
    :func:`emtcs.tiling.decode_run_bands` orders them) with their measurements, masks,
    electrons per unit and, per tile, the same tile of the neighbouring groups'
    measurements (none, one or two).  ``quant_step``: the measurements' quantisation step
    in noise standard deviations (0: stored exactly); ``sigma``: per group, one frame's
    noise standard deviation in the tiles' units, for a file that holds that instead of a
    Poisson model (None: Poisson).  ``take(k)`` returns group k's count since the last take.
    """

    def __init__(self, K: int, quant_step: float = 0.0, sigma: np.ndarray | None = None):
        self.K = K
        self.excess = 1 + quant_step**2 / 12  # a still tile's expected score
        self.sigma = None if sigma is None else np.asarray(sigma, dtype=np.float64).reshape(K)
        self.counts = np.zeros(K, dtype=np.int64)
        self.last_still = np.zeros(0, dtype=bool)

    def __call__(
        self,
        frames: np.ndarray,
        y: np.ndarray,
        masks: np.ndarray,
        electrons_per_unit: np.ndarray,
        neighbours: Sequence[np.ndarray],
    ) -> np.ndarray:
        """``frames`` with what held still replaced; ``neighbours`` holds (n, h, w) tiles of
        the neighbouring groups, NaN where a tile's group has no such neighbour."""
        n, h, w = y.shape
        rows, cols = _windows(h), _windows(w)
        agree = np.zeros((len(neighbours), n, len(rows), len(cols)), dtype=bool)
        sigma = None if self.sigma is None else self.sigma[np.arange(n) % self.K]
        neighbours = [other * _level(y, other) for other in neighbours]
        for i, other in enumerate(neighbours):
            ratio = _ratio(y, other, shot_variance(y, other, masks, electrons_per_unit, sigma))
            # a tile still as a whole is held still whole; the others window by window (NaN: no)
            whole = (_score(*ratio, 0) <= STILL_BAR * self.excess) & (_score(*ratio, BLOCK) <= BLOCK_BAR * self.excess)
            scores, worst = _window_scores(*ratio)
            agree[i] = whole[:, None, None] | (scores <= STILL_BAR * self.excess) & (worst <= BLOCK_BAR * self.excess)
        still = agree.any(axis=(0, 2, 3))
        self.last_still = still
        np.add.at(self.counts, np.flatnonzero(still) % self.K, 1)
        if not still.any():
            return frames
        spread_y, spread_x = _spread(rows, h), _spread(cols, w)
        share = np.zeros((n, h, w))  # of each pixel given back still
        image = np.zeros((n, h, w))  # the still images, times their shares
        # which neighbours each window held still beside, bit by bit: beside both, it is
        # given back from all three groups
        beside = np.tensordot(1 << np.arange(len(neighbours)), agree, axes=1)
        for code in np.unique(beside[beside > 0]):
            tiles = np.flatnonzero((beside == code).any(axis=(1, 2)))
            weight = spread_y @ (beside[tiles] == code).astype(np.float64) @ spread_x.T
            others = [neighbours[i][tiles] for i in range(len(neighbours)) if code >> i & 1]
            share[tiles] += weight
            image[tiles] += weight * hold_still(frames[tiles], y[tiles], others, masks[tiles], weight)
        out = frames.copy()
        kept = (1 - share[still]).astype(np.float32)[:, None]
        out[still] = frames[still] * kept + image[still].astype(np.float32)[:, None]
        return out

    def take(self, k: int) -> int:
        """Tiles of group ``k`` given back still, in whole or in part, since the last take."""
        count = int(self.counts[k])
        self.counts[k] = 0
        return count
