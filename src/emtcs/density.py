"""The density of the coding masks for a movie: how much it moves, against its noise.

A group's measurement sums, at each pixel, the frames whose mask is 1 there: about
density x B of them.  Sparser masks tell the frames apart better but keep fewer of the
electrons.  Where a movie's frames change a lot within a group (particles that move or
turn, a specimen that drifts), telling them apart is worth more than the electrons, and
masks that sum about :data:`FRAMES_PER_PIXEL` frames per pixel decode it better; where the
frames differ mostly by their noise or by fine detail no decoder recovers, the group's mean
is most of the movie and the denser masks of :data:`~emtcs.sensing.DEFAULT_DENSITY` keep
it better (measured: ``benchmarks/mask_density.py``, docs/usage.md "Mask density").

The measure of change, :func:`motion_ratio`, is taken on the first group, which
:func:`emtcs.compress` reads anyway to measure the noise, and needs no noise model: how much
the means of :data:`BOX` x :data:`BOX` blocks change within the group, against how much the
difference between each block's left and right halves does.  That difference changes with
the noise (as much as the block mean does, for noise that is white or shared only by near
neighbours) and with detail finer than the block, not with a block that brightens or darkens
as a particle or an edge moves over it.  Each frame is first divided by its mean: a frame
brighter or darker as a whole (the beam's current flickers) is not motion, and a still
movie measured as moving lost 1.7 dB to sparser masks (session 61).
"""

from __future__ import annotations

import numpy as np

from .sensing import DEFAULT_DENSITY

__all__ = ["BOX", "FRAMES_PER_PIXEL", "MOTION_BAR", "LONGEST", "WINDOW", "motion_ratio", "density_for"]

#: Side of the blocks whose means are compared (pixels): coarse enough that a moving
#: particle or a drifting edge stands above the noise, where a lattice's fine detail does not.
BOX = 8
#: About this many frames summed per pixel where a movie moves: the best density measured
#: at B = 20 (0.25; 0.1875 did as well, 0.375 worse) and B = 30 (11/64).  At B = 10 the
#: default already sums five; 3/8 was level there over movies of every kind (session 61).
FRAMES_PER_PIXEL = 5
#: A first group whose :func:`motion_ratio` exceeds this gets the sparser masks (calibrated on
#: abTEM scenes apart from the validation suite; docs/usage.md "Mask density").
MOTION_BAR = 2.0
#: The longest groups that get the sparser masks: measured better at B = 20 and 30, worse
#: on six of eight movies at B = 60 (5/60: too few frames per pixel for the decoders).
LONGEST = 30
#: The ratio is measured on the central WINDOW x WINDOW pixels at most, so that its cost does
#: not grow with the frame (a 4k group's would otherwise be a tenth of compress's time).
WINDOW = 1024


def motion_ratio(levels: np.ndarray) -> float:
    """How much the frames ``levels`` (one group, (B, H, W)) change at a coarse scale: the
    mean squared departure of their :data:`BOX` x :data:`BOX` block means from the group's,
    over that of the difference between each block's left and right halves, each frame
    divided by its mean.  About 1 where the frames differ by their noise; larger the more
    blocks brighten and darken as the specimen moves.  On the central :data:`WINDOW` x
    :data:`WINDOW` pixels at most, frame by frame: memory and time follow one window, not
    the group."""
    B, H, W = levels.shape
    box = min(BOX, H, W) // 2 * 2
    if B < 2 or box < 2:
        return 1.0
    h, w = min(H, WINDOW) // box * box, min(W, WINDOW) // box * box
    y0, x0 = (H - h) // 2, (W - w) // 2
    sums = np.zeros((2, h // box, w // box))
    squares = np.zeros_like(sums)
    for frame in levels:
        halves = np.asarray(frame)[y0 : y0 + h, x0 : x0 + w].reshape(h // box, box, w // box, 2, box // 2)
        left, right = halves.sum(axis=(1, 4), dtype=np.float64).transpose(2, 0, 1)
        pair = np.stack([left + right, left - right])
        level = pair[0].mean()
        if level > 0:  # a frame brighter or darker as a whole (the beam's flicker) is not motion
            pair /= level
        sums += pair
        squares += pair * pair
    spread = np.mean(squares / B - (sums / B) ** 2, axis=(1, 2))
    return float(spread[0] / spread[1]) if spread[1] > 0 else (1.0 if spread[0] == 0 else float("inf"))


def density_for(B: int, ratio: float) -> float:
    """The mask density for groups of ``B`` frames of a movie whose first group's
    :func:`motion_ratio` is ``ratio``: about :data:`FRAMES_PER_PIXEL` frames per pixel where
    the movie moves more than :data:`MOTION_BAR` and B is at most :data:`LONGEST`, else the
    default (which already sums about that many at B <= 10)."""
    if ratio <= MOTION_BAR or B * DEFAULT_DENSITY <= FRAMES_PER_PIXEL or B > LONGEST:
        return DEFAULT_DENSITY
    # a whole number of 1/64, so that the file's density reads as a short decimal
    return round(FRAMES_PER_PIXEL / B * 64) / 64
