"""The density of the coding masks for a movie: how much it moves, against its noise.

A group's measurement sums, at each pixel, the frames whose mask is 1 there: about
density x B of them.  Sparser masks tell the frames apart better but keep fewer of the
electrons.  Where a movie's frames change a lot within a group (particles that move or
turn, a specimen that drifts), telling them apart is worth more than the electrons, and
masks that sum about :data:`FRAMES_PER_PIXEL` frames per pixel decode it better; where the
frames differ mostly by their noise or by fine detail no decoder recovers, the group's mean
is most of the movie and the denser masks of :data:`~emtcs.sensing.DEFAULT_DENSITY` keep
it better (measured: ``benchmarks/mask_density.py``, docs/usage.md "Mask density").

The measure of change, :func:`moving_share`, is taken on the first group, which
:func:`emtcs.compress` reads anyway to measure the noise, and needs no noise model: the share
of the :data:`BOX` x :data:`BOX` blocks whose mean changes within the group more than
:data:`BLOCK_BAR` times as much as the difference between the block's left and right halves.
That difference changes with the noise (as much as the block mean does, for noise that is
white or shared only by near neighbours) and with detail finer than the block, not with a
block that brightens or darkens as a particle or an edge moves over it.  Sparser masks pay
for the moving part of the field with the electrons of the still part, so what counts is how
much of the field moves, not how fast its fastest part does: a share, not a mean (the mean
ratio, the rule before session 62, took sparse masks for a few fast blocks in a still
field).  Each frame is first divided by its mean: a frame brighter or darker as a whole (the
beam's current flickers) is not motion, and a still movie measured as moving lost 1.7 dB to
sparser masks (session 61).
"""

from __future__ import annotations

import numpy as np

from .sensing import DEFAULT_DENSITY

__all__ = ["BLOCK_BAR", "BOX", "FRAMES_PER_PIXEL", "LONGEST", "MOVING_SHARE", "WINDOW", "density_for", "moving_share"]

#: Side of the blocks whose means are compared (pixels): coarse enough that a moving
#: particle or a drifting edge stands above the noise, where a lattice's fine detail does not.
BOX = 8
#: About this many frames summed per pixel where a movie moves: the best density measured
#: at B = 20 (0.25; 0.1875 did as well, 0.375 worse) and B = 30 (11/64).  At B = 10 the
#: default already sums five; 3/8 was level there over movies of every kind (session 61).
FRAMES_PER_PIXEL = 5
#: A block moves where its mean changes more than this many times as much as its halves'
#: difference.  Noise alone passes it in about 7 % of the blocks at B = 20 (15 % at B = 11,
#: 3 % at B = 30: the ratio of two variances, each of B samples).
BLOCK_BAR = 2.0
#: A first group of which a larger share of blocks moves gets the sparser masks (chosen on
#: abTEM scenes apart from the validation suite, checked on others; docs/usage.md "Mask density").
MOVING_SHARE = 0.25
#: The longest groups that get the sparser masks: measured better at B = 20 and 30, worse
#: on six of eight movies at B = 60 (5/60: too few frames per pixel for the decoders).
LONGEST = 30
#: The ratio is measured on the central WINDOW x WINDOW pixels at most, so that its cost does
#: not grow with the frame (a 4k group's would otherwise be a tenth of compress's time).
WINDOW = 1024


def moving_share(levels: np.ndarray) -> float:
    """The share of the :data:`BOX` x :data:`BOX` blocks of the frames ``levels`` (one group,
    (B, H, W)) that move: whose mean's variance over the group exceeds :data:`BLOCK_BAR`
    times that of the difference between the block's left and right halves, each frame
    divided by its mean.  A few per cent where the frames differ by their noise; the share
    of the field that particles, edges or a drifting specimen cross where they move.  On the
    central :data:`WINDOW` x :data:`WINDOW` pixels at most, frame by frame: memory and time
    follow one window, not the group."""
    B, H, W = levels.shape
    box = min(BOX, H, W) // 2 * 2
    if B < 2 or box < 2:
        return 0.0
    h, w = min(H, WINDOW) // box * box, min(W, WINDOW) // box * box
    y0, x0 = (H - h) // 2, (W - w) // 2
    mean = np.zeros((2, h // box, w // box))
    spread = np.zeros_like(mean)  # Welford's running sums of squared departures: exactly 0 where nothing changes
    for k, frame in enumerate(levels, start=1):
        halves = np.asarray(frame)[y0 : y0 + h, x0 : x0 + w].reshape(h // box, box, w // box, 2, box // 2)
        left, right = halves.sum(axis=(1, 4), dtype=np.float64).transpose(2, 0, 1)
        pair = np.stack([left + right, left - right])
        level = pair[0].mean()
        if level > 0:  # a frame brighter or darker as a whole (the beam's flicker) is not motion
            pair /= level
        step = pair - mean
        mean += step / k
        spread += step * (pair - mean)
    mean_change, half_change = spread
    return float(np.mean(mean_change > BLOCK_BAR * half_change))


def density_for(B: int, share: float) -> float:
    """The mask density for groups of ``B`` frames of a movie whose first group's
    :func:`moving_share` is ``share``: about :data:`FRAMES_PER_PIXEL` frames per pixel where
    more than :data:`MOVING_SHARE` of it moves and B is at most :data:`LONGEST`, else the
    default (which already sums about that many at B <= 10)."""
    if share <= MOVING_SHARE or B * DEFAULT_DENSITY <= FRAMES_PER_PIXEL or B > LONGEST:
        return DEFAULT_DENSITY
    # a whole number of 1/64, so that the file's density reads as a short decimal
    return round(FRAMES_PER_PIXEL / B * 64) / 64
