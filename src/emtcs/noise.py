"""The detector's noise model, measured from the movie itself (photon transfer).

A detector reading is ``level = offset + gain * (Poisson(electrons) + Normal(0, read_noise²))``,
so the variance of a pixel grows linearly with its mean::

    var(level) = gain * (mean - offset) + (gain * read_noise)²

:func:`estimate_noise` measures that line from consecutive frames, pixel by pixel.  In a
window of four frames the third difference ``x0 - 3 x1 + 3 x2 - x3`` cancels the content,
also where it drifts at a steady or steadily changing speed, and leaves noise of 20 times
a frame's variance.  Its square is averaged in bins of an *instrument*: the mean of the
pixel's eight neighbours over the window plus its own mean over the other frames,
whose noise is independent of the window's at that pixel,
so the bins' mean squared difference and mean level lie on the noise line exactly
(grouped instrumental-variable regression: binning by the noisy level itself would bend
the line where read noise dominates).  Pixels whose difference is far beyond the line
(a particle appearing, an atom hopping) are dropped and the line refitted; so are pixels
whose instrument lies near a saturation ceiling.  The line is checked against a fit of the
calmest quarter of the pixels (where the content slopes and changes least, judged by each
pixel's neighbours), which replaces
it where what the differences leave of the content biases it, and against a line measured
within frames (a Laplacian's, which texture biases but motion does not): a gain more than
7.5 % away from that one (above it, for scanned images), where it is clean, is refused;
where that line is not clean, a gain less precise than 3.3 % is refused.  Three or two
frames use the second or first difference.  Before that, what a scanned image adds line
by line (each line's own gain and sideways jitter, to higher order where the lines are seen
to matter) is fitted out of the differences row by row, and what is left of fast-moving
content (locally a shift) block by block.

The line's intercept ``c = (gain * read_noise)² - gain * offset`` is all that the variance
tells about offset and read noise: they cannot be told apart from it.  With a given
``offset`` the read noise follows; otherwise a positive intercept is reported as read noise
at offset 0 and a negative one as an offset without read noise.  Either pair gives the
same variance at every level, which is what quantisation, the guard and noise-aware
decoders use.  Detector blur (a scintillator's point spread) correlates neighbouring
pixels' noise and lowers its per-pixel variance: such movies fail the whiteness test
below and get no model (``--gain`` gives one), but their ``sigma`` is measured whole.

Movies the model does not fit (frames of a compressed video, denoised or resampled
data, frames without the noise's growth with intensity) get no model and a reason
(:class:`NoiseFit`); where their frame differences are still mostly noise, one frame's
noise standard deviation (``NoiseFit.sigma``, the same at every intensity) is measured
instead, which compress quantises at.  The rules are in ``docs/noise.md``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from .errors import InputError

__all__ = ["NoiseModel", "NoiseFit", "estimate_noise", "noise_spread"]

#: Differences that cancel the content of 2, 3 or 4 consecutive frames (steady drift and
#: steady acceleration too, for 3 and 4), and the multiple of one frame's variance they leave.
_DIFFERENCES = {
    2: (np.array([1.0, -1.0]), 2.0),
    3: (np.array([1.0, -2.0, 1.0]), 6.0),
    4: (np.array([1.0, -3.0, 3.0, -1.0]), 20.0),
}
#: The window's changes that those differences leave alone (orthogonal to them and to the
#: mean): linear, and for four frames quadratic, in time.
_CHANGES = {
    3: (np.array([-1.0, 0.0, 1.0]),),
    4: (np.array([-3.0, -1.0, 1.0, 3.0]), np.array([1.0, -1.0, -1.0, 1.0])),
}
#: Frames are measured on a central crop of at most this side.
MAX_SIDE = 512
#: ...and on at most this many frames (three windows of four).
MAX_FRAMES = 12
#: The spread measured on N pixels of white noise scatters by about this over sqrt(N)
#: (standard deviation; 1.5-2.0 from 2 x 48 x 48 to 3 x 512 x 512 images)...
SPREAD_ERROR = 1.6
#: ...and a spread within this many of those of 0 is reported as 0: white noise.
WHITE_SIGMAS = 3.0
#: Number of instrument bins of the fit (equal numbers of pixels).
BINS = 32
#: Pixels whose squared difference exceeds this many times the line's variance are outliers.
OUTLIER = 16.0
#: A maximum value held by more than this share of the readings is a saturation ceiling.
CEILING = 1e-3
#: Pixels whose level (the instrument's) is within this many noise sigmas of a saturation
#: ceiling are left out of the fit.
CEILING_SIGMAS = 4.0
#: With offset or read noise, more readings at zero than this share means clipping there.
ZERO_SHARE = 0.005
#: The gain is checked against a fit of this share of each instrument bin's pixels, those
#: where the content changes and slopes least...
CALM_SHARE = 0.25
#: ...which replaces it when the two differ by more than this and ``CALM_SIGMAS`` standard
#: errors of the difference...
CALM_TOLERANCE = 0.03
#: ...(a two-sigma test, as before session 27, replaces a precise gain by chance in about one
#: movie in twenty where nothing leaks: the suite's abTEM seed 3 at 20 e/px, 0.98 -> 0.91).
CALM_SIGMAS = 3.0
#: Largest correlation of neighbouring pixels' differences that passes for white noise.
MAX_CORRELATION = 0.15
#: Without a model, noise whose neighbouring differences correlate up to this is still measured as
#: one standard deviation (``NoiseFit.sigma``); above it the differences are mostly content.
MAX_CORRELATION_SIGMA = 0.5
#: The bins' median variance (levels squared) below which the noise is finer than the levels:
#: rounding and clipping at zero, not the detector, then shape the readings (at 0.5, clipped
#: read noise of one level at 1 e/px gave a gain 85 % too high).
MIN_VARIANCE = 1.0
#: Below one level per electron the bins' mean levels must span at least this many levels:
#: over fewer, the slope rests on fractions of a level, and rounding the readings to whole
#: levels bends the line (at a gain of 0.5, movies spanning 1.8 and 1.6 levels came out 13 %
#: low and 30 % high).  Counted readings (whole multiples of a gain of 1 or more) are not
#: bent so.
MIN_LEVEL_SPAN = 4.0
#: Median of a chi-square variable of one degree of freedom (squared unit normal).
_CHI2_MEDIAN = 0.454936
#: Line artefacts (of a scanned image) may add at most this share to the differences' variance
#: (at 0.5, scanned movies with 18-38 % passed whose gains came out 10-20 % high, docs/noise.md).
MAX_LINE_SHARE = 0.15
#: Above this share the line fit takes higher orders of the jitter too (frame-based cameras
#: stay at or below 0.001).
SCANNED_SHARE = 0.03
#: Side of the blocks in which what is left of moving content is fitted out of the differences.
BLOCK = 8
#: The line's gain is refused when it differs by more than this share from the gain of a
#: line measured within frames (:func:`_within_frames`), where that line is itself clean:
#: either way for frame cameras, only above it for scanned images.
WITHIN_TOLERANCE = 0.075
#: The fit is refused when the gain's relative standard error exceeds this...
MAX_GAIN_ERROR = 0.05
#: ...or when the bins' median relative deviation from the line exceeds this.
MAX_MISFIT = 0.1
#: A gain that no clean line within frames checks is refused when its relative standard
#: error exceeds this: trusted within 10 % on one line alone, three standard errors must fit
#: inside that (at 0.04, a still liquid-cell movie at 10 e/px came out 10.1 % high, session 27).
MAX_UNCHECKED_ERROR = 0.033


@dataclass(frozen=True)
class NoiseModel:
    """Poisson–Gaussian noise of a detector: levels per electron, levels at zero
    electrons, read noise in electrons; ``estimated`` when measured from the movie."""

    gain: float
    offset: float = 0.0
    read_noise: float = 0.0
    estimated: bool = False

    def __post_init__(self) -> None:
        if not (math.isfinite(self.gain) and self.gain > 0):
            raise InputError(f"detector gain must be a positive number (per electron; got {self.gain})")
        if not math.isfinite(self.offset):
            raise InputError(f"detector offset must be a finite number (got {self.offset})")
        if not (math.isfinite(self.read_noise) and self.read_noise >= 0):
            raise InputError(f"read noise must be a number of electrons >= 0 (got {self.read_noise})")

    def variance(self, level: np.ndarray | float) -> np.ndarray | float:
        """Noise variance (levels²) of a reading whose expected value is ``level``."""
        return np.maximum(self.gain * (np.asarray(level) - self.offset), 0.0) + (self.gain * self.read_noise) ** 2

    @property
    def pedestal(self) -> float:
        """The level at which :meth:`variance` = gain x (level - pedestal) would vanish: the
        offset less gain x read noise², the read noise folded into the shot noise (the
        decoders are trained on counts, which have neither)."""
        return self.offset - self.gain * self.read_noise**2

    def in_levels(self, scale: float, value_offset: float) -> NoiseModel:
        """The model for levels ``(value - value_offset) / scale`` (the encoder's, formats/tcs.md §4)."""
        return replace(self, gain=self.gain / scale, offset=(self.offset - value_offset) / scale)

    def in_values(self, scale: float, value_offset: float) -> NoiseModel:
        """The inverse of :meth:`in_levels`: a model in levels as one in source values."""
        return replace(self, gain=self.gain * scale, offset=self.offset * scale + value_offset)

    def to_json(self) -> dict[str, float | bool]:
        return {"gain": self.gain, "offset": self.offset, "read_noise": self.read_noise, "estimated": self.estimated}

    def describe(self) -> str:
        how = "estimated" if self.estimated else "given"
        return (
            f"gain {self.gain:.4g} levels/e, offset {self.offset:.4g} levels, "
            f"read noise {self.read_noise:.3g} e ({how})"
        )


@dataclass(frozen=True)
class NoiseFit:
    """What :func:`estimate_noise` found: a model, or ``None`` and the reason why not.

    ``means`` and ``variances`` are the binned points of the fit (levels, levels²).  Where
    the model is refused but the frame differences still show the noise (their neighbours
    correlate by at most ``MAX_CORRELATION_SIGMA``), ``sigma`` is one frame's noise
    standard deviation in levels, whatever the intensity: the smaller of what the
    content-cancelling differences and a within-frame (Laplacian) estimate give, so that
    neither content change nor texture inflates it."""

    model: NoiseModel | None
    reason: str
    means: np.ndarray
    variances: np.ndarray
    sigma: float | None = None
    #: With ``sigma``: how much of the noise is spread over neighbouring pixels
    #: (:func:`noise_spread` of the frame differences; 0 for white noise)
    spread: float = 0.0
    #: The fitted line's slope (levels per electron) and its relative standard error, also
    #: where the model was refused after the line was fitted; None before that.
    line: tuple[float, float] | None = None


def estimate_noise(
    frames: Sequence[np.ndarray] | np.ndarray,
    *,
    offset: float | None = None,
    saturation: float | None = None,
) -> NoiseFit:
    """Measure the noise model from two or more consecutive frames (in levels; the first
    ``MAX_FRAMES`` are used).

    Frames are taken in windows of four (the last one overlapping the one before).  ``offset``,
    if known, fixes the split of the intercept (see the module docstring); pixels that
    reach ``saturation`` (the source's maximum level) in a window are left out, as
    clipping hides their noise.  Deterministic.
    """
    frames = frames[:MAX_FRAMES]
    n = len(frames)
    if n < 2:
        return _refused("one frame: the noise needs two consecutive frames to be measured")
    shape = np.shape(frames[0])
    if len(shape) != 2 or min(shape) < 8:
        return _refused("frames smaller than 8 x 8 pixels: too small to measure the noise")
    crop = tuple(slice(max((s - MAX_SIDE) // 2, 0), max((s - MAX_SIDE) // 2, 0) + min(s, MAX_SIDE)) for s in shape)
    # float32 halves the memory traffic; the fits' sums are of a row or a bin at a time, where
    # its precision suffices (the accuracy grid of docs/noise.md came out the same)
    stack = np.stack([np.asarray(f)[crop] for f in frames]).astype(np.float32)
    if np.all(stack == stack[:1]):
        return _refused("the frames do not change: no noise to measure")
    top = float(stack.max())
    if np.mean(stack == top) > CEILING:  # a full well or clipped range below the dtype's maximum
        saturation = top if saturation is None else min(saturation, top)
    total = stack.sum(axis=0)
    level, square, instrument, unrest, correlation, lines = [], [], [], [], [], []
    k = min(n, 4)
    starts = list(range(0, n - k + 1, k))
    if starts[-1] + k < n:
        starts.append(n - k)  # the last window overlaps the one before
    for start in starts:
        window = stack[start : start + k]
        others = (total - window.sum(axis=0)) / (n - k) if n > k else None
        m, d2, z, u, corr, line_share = _window_statistics(window, others, saturation)
        correlation.append(corr)
        lines.append(line_share)
        level.append(m)
        square.append(d2)
        instrument.append(z)
        unrest.append(u)
    m, d2, z, u = (np.concatenate(a) for a in (level, square, instrument, unrest))
    if m.size < 100 * BINS:
        return _refused(
            f"too few pixels to measure the noise ({m.size:,} usable in the frames it looks at, saturated "
            f"ones left out; {100 * BINS:,} needed): larger frames or a larger -B give more"
        )
    if not d2.any():
        return _refused("the frames do not change: no noise to measure")
    corr = float(np.median(correlation))

    def measured(d2: np.ndarray = d2) -> dict[str, Any]:  # only where the model is refused (it costs a fifth)
        if corr > MAX_CORRELATION_SIGMA:
            return {}
        sigma, spread = _sigma(d2, stack)
        return {"sigma": sigma, "spread": spread} if sigma is not None else {}

    if corr > MAX_CORRELATION:
        return _refused(
            f"neighbouring pixels' frame differences are correlated ({corr:.2f}): the frames change faster "
            "than their noise, or the movie was blurred, resampled or compressed",
            **measured(),
        )
    line_share = float(np.median(lines))
    if line_share > MAX_LINE_SHARE:
        return _refused(
            f"scan-line artefacts (each line's own gain and jitter) add {line_share:.0%} to the frame "
            "differences' variance: what remains of them after they are fitted out would bias the gain",
            **measured(),
        )
    zeros = float(np.mean(stack <= 0))
    label = _bins(z)
    fit = _fit(m, d2, label, offset, zeros)
    if saturation is not None and fit.means.size:
        below = _below_ceiling(fit, z, saturation)
        if not below.all():
            if below.sum() < 100 * BINS:
                return _refused("too few pixels below the saturation ceiling to measure the noise", **measured())
            m, d2, u, label = m[below], d2[below], u[below], _bins(z[below])
            fit = _fit(m, d2, label, offset, zeros)
    if fit.model is not None:
        fit = _unless_content_leaks(fit, m, d2, label, u, offset, zeros)
    if fit.model is None:
        return replace(fit, **measured())
    if _clipped_read_noise(stack, fit.model.gain):
        return _refused(
            "readings pile up at zero between the steps of a counting detector: read noise clipped at zero "
            "(an offset below the read noise); the noise cannot be measured",
            fit.means,
            fit.variances,
        )
    below = None if saturation is None else saturation - CEILING_SIGMAS * math.sqrt(fit.model.variance(saturation))
    within = _within_frames(stack, below)
    if within is None and fit.line is not None and fit.line[1] > MAX_UNCHECKED_ERROR:
        return _refused(
            f"the gain is measured to +-{100 * fit.line[1]:.1f} % and the noise within frames cannot check it: "
            "too uncertain to trust",
            fit.means,
            fit.variances,
            **measured(),
            line=fit.line,
        )
    # a scanned image's line artefacts raise the within-frame line too: there only a gain above it is suspect
    deviation = fit.model.gain / within - 1 if within is not None else 0.0
    if (deviation if line_share > SCANNED_SHARE else abs(deviation)) > WITHIN_TOLERANCE:
        return _refused(
            f"the frame differences give {fit.model.gain:.4g} levels/e, the noise within frames "
            f"{within:.4g}: what the differences leave of the content (motion, scan artefacts) biases them",
            fit.means,
            fit.variances,
            **measured(),
            line=fit.line,
        )
    return fit


def _below_ceiling(fit: NoiseFit, z: np.ndarray, ceiling: float) -> np.ndarray:
    """Which pixels' instrument lies more than ``CEILING_SIGMAS`` noise sigmas (of ``fit``'s
    line) below a saturation ceiling.  Of the windows near it, those that did not reach it
    (the others were left out) are the ones whose noise happened to be small, so their
    variance is biased low: the instrument, not their own readings, decides."""
    if fit.model is not None:
        top = float(fit.model.variance(ceiling))
    else:  # refused: a rough line through the bins that have pixels
        filled = fit.variances > 0
        gain, c = _line(fit.means[filled], fit.variances[filled], np.ones(int(filled.sum())))[:2]
        top = gain * ceiling + c
    return z < ceiling - CEILING_SIGMAS * math.sqrt(max(top, 0.0))


def _unless_content_leaks(
    fit: NoiseFit,
    m: np.ndarray,
    d2: np.ndarray,
    label: np.ndarray,
    unrest: np.ndarray,
    offset: float | None,
    zeros: float,
) -> NoiseFit:
    """``fit``, unless the calmest pixels (the ``CALM_SHARE`` of each instrument bin with the
    least unrest) give a gain that differs from it by more than ``CALM_TOLERANCE`` and
    ``CALM_SIGMAS`` standard errors of the difference: then what the differences leave of moving or
    sharp content biases the fit of all pixels, and the calm pixels' fit (or its refusal)
    is the answer."""
    order = np.argsort(label.astype(np.int16), kind="stable")  # a radix sort: pixels bin by bin
    ends = np.cumsum(np.bincount(label, minlength=BINS))
    threshold = np.full(BINS, -np.inf)
    for b, (start, end) in enumerate(zip(np.r_[0, ends[:-1]], ends)):
        if end > start:  # the bin's quantile from every fourth pixel: as good, a quarter of the cost
            sample = unrest[order[start:end:4]]
            k = int(CALM_SHARE * len(sample))
            threshold[b] = np.partition(sample, k)[k]
    calm = unrest <= threshold[label]
    if calm.sum() < 100 * BINS:
        return fit
    quiet = _fit(m[calm], d2[calm], label[calm], offset, zeros)
    if quiet.line is None:
        return fit
    gain, error = quiet.line
    # the calm pixels are a quarter of all: the two gains differ by noise of sqrt(e_calm² - e_all²)
    spread = math.sqrt(max(error**2 - fit.line[1] ** 2, 0.0))
    if abs(gain / fit.line[0] - 1) <= max(CALM_TOLERANCE, CALM_SIGMAS * spread):
        return fit
    if quiet.model is not None:
        return quiet
    return replace(
        quiet,
        reason=f"content change biases the noise's line ({fit.line[0]:.4g} levels/e from all pixels, "
        f"{gain:.4g} from the calmest), and the calmest pixels alone do not measure it: {quiet.reason}",
    )


def _within_frames(stack: np.ndarray, below: float | None) -> float | None:
    """The gain of the noise line measured within frames, where that line is clean; else None.
    Pixels whose neighbourhood's level (the instrument's) reaches ``below``, near a saturation
    ceiling, are left out.

    A 3 x 3 Laplacian of one frame leaves 36 times the noise variance plus what the
    content's texture adds, whatever the content does between frames.  Its square is
    averaged in bins of an instrument (the pixel's mean over the other half of the frames;
    each half is measured against the other) against the level its noise comes from (the
    mean of its nine pixels weighted by the kernel's squares).  Where the content is smooth
    at the pixel scale the bins lie on the noise line; texture bends the line, and then
    nothing is claimed."""
    half = len(stack) // 2
    first, second = stack[:half], stack[half : 2 * half]
    h, w = stack.shape[1] - 2, stack.shape[2] - 2
    level, square, instrument = [], [], []
    for part, other in ((first, second), (second, first)):
        # the Laplacian [1, -2, 1] x [1, -2, 1] is separable; the level's weights (its squares
        # over their sum, 36) too, [1, 4, 1] x [1, 4, 1] / 36, and linear: on the mean frame
        lap = part[:, :, :-2] + part[:, :, 2:]
        lap -= 2.0 * part[:, :, 1:-1]
        lap = lap[:, :-2] + lap[:, 2:] - 2.0 * lap[:, 1:-1]
        mean = part.mean(axis=0)
        mix = mean[:, :-2] + mean[:, 2:] + 4.0 * mean[:, 1:-1]
        mix = (mix[:-2] + mix[2:] + 4.0 * mix[1:-1]) / 36.0
        z = other.mean(axis=0)
        ok = np.ones((h, w), dtype=bool)
        if below is not None:  # by the instrument, as in the fit (see _below_ceiling)
            for i in range(3):
                for j in range(3):
                    ok &= z[i : i + h, j : j + w] < below
        level.append(mix[ok])
        square.append(np.einsum("kij,kij->ij", lap, lap)[ok] / (36.0 * len(part)))
        instrument.append(z[1:-1, 1:-1][ok])
    m, v, z = (np.concatenate(a) for a in (level, square, instrument))
    if m.size < 100 * BINS:
        return None
    label = _bins(z, every=16)
    count = np.bincount(label, minlength=BINS)
    filled = count > 0
    if filled.sum() < BINS // 2:
        return None
    bm = np.bincount(label, weights=m, minlength=BINS)[filled] / count[filled]
    bv = np.bincount(label, weights=v, minlength=BINS)[filled] / count[filled]
    gain, c, err = _line(bm, bv, count[filled])
    misfit = float(np.median(np.abs(bv - (gain * bm + c)) / np.maximum(np.abs(gain * bm + c), 1e-12)))
    clean = gain > 0 and err / gain <= MAX_GAIN_ERROR and misfit <= MAX_MISFIT
    return float(gain) if clean else None


def _clipped_read_noise(stack: np.ndarray, gain: float) -> bool:
    """Whether the zeros of a movie are clipped read noise rather than counted zero electrons.

    A fit through clipped readings looks like a counting detector with too large a gain.
    Counted readings are multiples of the gain, rounded: with a gain of 1.5 or more, none
    falls between 0 and the first step (the gain rounded), where clipped Gaussian read
    noise puts plenty.
    """
    zeros = float(np.mean(stack <= 0))
    if zeros <= ZERO_SHARE or gain < 1.5:
        return False
    between = float(np.mean((stack > 0) & (stack < round(gain) - 0.5)))
    return between > 0.1 * zeros


def _sigma(d2: np.ndarray, stack: np.ndarray) -> tuple[float | None, float]:
    """One frame's noise standard deviation (levels), conservatively, and its spread: the
    smaller of the content-cancelling differences' (``d2``, in units of one frame's
    variance; median over a chi-square's) and the frames' median Laplacian estimate
    (Immerkaer 1996), which texture can only raise.

    Noise correlated between neighbouring pixels (a scintillator's spread) has less power
    at the Laplacian's high frequencies than white noise of its variance: there the
    Laplacian sees 40-45 % of it (0.6 px of spread).  The content-cancelling differences
    are the same noise, so the share the Laplacian sees of them is the frames' too, and
    their estimate is divided by it (at most 1); 1 less that share is the spread
    (:func:`noise_spread`)."""
    temporal = float(np.sqrt(np.median(d2) / _CHI2_MEDIAN))
    differences = _differences(stack)
    seen = _laplacian_share(differences)
    spatial = _immerkaer(stack) / min(seen, 1.0) if seen > 0 else math.inf
    sigma = min(temporal, spatial)
    return (sigma if np.isfinite(sigma) and sigma > 0 else None), _spread(seen, differences.size)


def noise_spread(noise: np.ndarray) -> float:
    """How much of the noise in images of noise alone (k, h, w) is spread over neighbouring
    pixels: 1 less the share of it that a 3 x 3 Laplacian sees against white noise of the
    same variance (Immerkaer's estimate over a median-based standard deviation), in [0, 1].
    0 for white noise (within :data:`WHITE_SIGMAS` standard errors), about 0.3 for a
    Gaussian spread of 0.5 px and 0.55 for 0.6 px (a scintillator's).  Compress measures
    it on the content-cancelling frame differences; the networks are told it."""
    return _spread(_laplacian_share(noise), noise.size)


def _laplacian_share(noise: np.ndarray) -> float:
    """Immerkaer's estimate on images of noise alone over their median-based standard
    deviation: about 1 for white noise, less for noise neighbouring pixels share; 1 where
    most of the images are 0 (nothing to say)."""
    whole = float(np.sqrt(np.median(noise**2) / _CHI2_MEDIAN))
    return _immerkaer(noise) / whole if whole > 0 else 1.0


def _spread(seen: float, pixels: int) -> float:
    """The spread that a Laplacian share ``seen`` measured on ``pixels`` says (0 within
    :data:`WHITE_SIGMAS` standard errors of white noise)."""
    spread = min(max(1.0 - seen, 0.0), 1.0)
    return spread if spread > WHITE_SIGMAS * SPREAD_ERROR / math.sqrt(pixels) else 0.0


def _immerkaer(stack: np.ndarray) -> float:
    """Median over the frames of Immerkaer's white-noise estimate: a 3 x 3 Laplacian's mean
    absolute value times sqrt(pi / 2) / 6."""
    lap = (
        stack[:, :-2, :-2] - 2 * stack[:, :-2, 1:-1] + stack[:, :-2, 2:]
        - 2 * stack[:, 1:-1, :-2] + 4 * stack[:, 1:-1, 1:-1] - 2 * stack[:, 1:-1, 2:]
        + stack[:, 2:, :-2] - 2 * stack[:, 2:, 1:-1] + stack[:, 2:, 2:]
    )  # fmt: skip
    return float(np.median(np.sqrt(np.pi / 2) / 6 * np.abs(lap).mean(axis=(1, 2))))


def _differences(stack: np.ndarray) -> np.ndarray:
    """The content-cancelling differences of consecutive windows of up to four frames,
    scaled to one frame's noise: images of the noise alone where the content holds still
    or moves steadily."""
    k = min(len(stack), 4)
    weights, variance = _DIFFERENCES[k]
    out = [
        np.tensordot(weights, stack[start : start + k], axes=1) / math.sqrt(variance)
        for start in range(0, len(stack) - k + 1, k)
    ]
    return np.stack(out)


def _refused(
    reason: str,
    means: np.ndarray | None = None,
    variances: np.ndarray | None = None,
    sigma: float | None = None,
    spread: float = 0.0,
    line: tuple[float, float] | None = None,
) -> NoiseFit:
    empty = np.zeros(0)
    return NoiseFit(
        None, reason, empty if means is None else means, empty if variances is None else variances, sigma, spread, line
    )


def _window_statistics(
    window: np.ndarray, others: np.ndarray | None, saturation: float | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, float, float]:
    """Per inner pixel of a (k, H, W) window: its mean level, its squared content-cancelling
    difference (line artefacts and moving content fitted out) in units of one frame's
    variance, the instrument (the mean of its eight neighbours in the window, averaged,
    given ``others``, with its own mean over the frames outside the window) and its
    *unrest* (the squared slope of the window's mean frame, the squared change of its
    neighbours' mean from ``others`` and its neighbours' squared change within the window,
    each over its median); the correlation of
    neighbouring differences; and the variance the line artefacts added, relative to the
    noise's."""
    k = len(window)
    weights, factor = _DIFFERENCES[k]
    totals = window.sum(axis=(1, 2))
    # a global intensity change between the frames (flicker) is divided out
    gains = totals.mean() / np.where(totals > 0, totals, 1.0)
    diff = np.tensordot(weights * gains, window, axes=1)
    mean = window.mean(axis=0)
    inner = (slice(1, -1), slice(1, -1))
    ok = np.ones(mean[inner].shape, dtype=bool) if saturation is None else window.max(axis=0)[inner] < saturation
    ring = _ring(mean)
    # an estimate of the pixel's level, independent of the window's noise at the pixel
    z = ring if others is None else (ring + others[inner]) / 2.0
    m, d = mean[inner], diff[inner]
    # scan lines: each line's own gain and sideways jitter, to second order (docs/noise.md, step 2)
    gx = (mean[1:-1, 2:] - mean[1:-1, :-2]) / 2
    gy = (mean[2:, 1:-1] - mean[:-2, 1:-1]) / 2
    gxx = mean[1:-1, 2:] - 2 * m + mean[1:-1, :-2]
    residual, h_lines = _fit_out(d, (m, gx, gxx), ok)
    noise = residual[ok] ** 2 / np.clip(1.0 - h_lines[ok], 0.05, 1.0)
    line_share = float((d[ok] ** 2).sum() / max(noise.sum(), 1e-300)) - 1.0
    if line_share > SCANNED_SHARE:
        # a scanned image: also the jitter's third order and its interaction with moving
        # content (the gradient of the window's change over time)
        change = np.tensordot(np.arange(k) - (k - 1) / 2, window, axes=1)
        gxt = (change[1:-1, 2:] - change[1:-1, :-2]) / 2
        residual, h_lines = _fit_out(d, (m, gx, gxx, np.gradient(gxx, axis=1), gxt), ok)
    # content moving by what the frame difference does not cancel: locally a shift
    left, h_blocks = _fit_out(_blocks(residual), (_blocks(gx), _blocks(gy)), _blocks(ok))
    residual = _unblocked(left, residual)
    keep = np.clip(1.0 - h_lines - _unblocked(h_blocks, np.zeros_like(h_lines)), 0.05, 1.0)
    d2 = residual**2 / (factor * keep)
    residual = np.where(ok, residual, 0.0)
    corr = max(_correlation(residual[:, :-1], residual[:, 1:]), _correlation(residual[:-1], residual[1:]))
    # how much the content slopes and changes around the pixel, from its neighbours only (the
    # pixel's own readings would select its noise): where what the differences leave of the
    # content is largest
    slope = gx**2 + gy**2
    unrest = slope / max(float(np.median(slope[::7, ::7])), 1e-300)
    if others is not None:
        change = (ring - _ring(others)) ** 2
        unrest += change / max(float(np.median(change[::7, ::7])), 1e-300)
    if k > 2:  # the neighbours' own change within the window: where fast motion leaks most
        steady = sum(_ring(np.tensordot(p, window, axes=1)) ** 2 / float(p @ p) for p in _CHANGES[k])
        unrest += steady / max(float(np.median(steady[::7, ::7])), 1e-300)
    m, d2, z, unrest = m[ok], d2[ok], z[ok], unrest[ok]
    return m.ravel(), d2.ravel(), z.ravel(), unrest.ravel(), corr, line_share


def _ring(a: np.ndarray) -> np.ndarray:
    """The mean of each inner pixel's eight neighbours in the 2-D ``a``."""
    a = np.asarray(a, dtype=np.float64)
    rows = a[:-2] + a[1:-1] + a[2:]  # the 3 x 3 box is separable
    box = rows[:, :-2] + rows[:, 1:-1] + rows[:, 2:]
    return (box - a[1:-1, 1:-1]) / 8.0


def _fit_out(d: np.ndarray, regressors: Sequence[np.ndarray], ok: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row by row of the 2-D ``d``: what is left of it after a least-squares fit on the
    equally shaped ``regressors`` (over the pixels in ``ok``), and each pixel's leverage
    ``h`` in its row's fit: white noise keeps ``1 - h`` of its variance in the residual."""
    k = len(regressors)
    x = regressors
    xo = [r * ok for r in x]  # the regressors where the fit looks
    pairs = [(p, q) for p in range(k) for q in range(p, k)]
    # the k x k normal equations of every row from dot products along it (fast for small k)
    normal = np.empty((len(d), k, k))
    for p, q in pairs:
        normal[:, p, q] = normal[:, q, p] = np.einsum("ij,ij->i", xo[p], x[q])
    ridge = 1e-9 * np.trace(normal, axis1=1, axis2=2) / k + 1e-12  # a row without signal stays solvable
    inverse = np.linalg.inv(normal + ridge[:, None, None] * np.eye(k))
    rhs = np.stack([np.einsum("ij,ij->i", xo[p], d) for p in range(k)], 1)
    coefficients = np.einsum("hpq,hq->hp", inverse, rhs)
    fitted = sum(coefficients[:, p, None] * x[p] for p in range(k))
    leverage = sum((1.0 if p == q else 2.0) * inverse[:, p, q, None] * x[p] * x[q] for p, q in pairs)
    return d - fitted, leverage


def _blocks(a: np.ndarray) -> np.ndarray:
    """The whole ``BLOCK`` x ``BLOCK`` blocks of a 2-D array, one block per row."""
    h, w = (n // BLOCK for n in a.shape)
    return a[: h * BLOCK, : w * BLOCK].reshape(h, BLOCK, w, BLOCK).swapaxes(1, 2).reshape(h * w, BLOCK * BLOCK)


def _unblocked(blocks: np.ndarray, into: np.ndarray) -> np.ndarray:
    """``into`` with its whole blocks replaced by ``blocks`` (the inverse of :func:`_blocks`)."""
    h, w = (n // BLOCK for n in into.shape)
    out = into.copy()
    out[: h * BLOCK, : w * BLOCK] = blocks.reshape(h, w, BLOCK, BLOCK).swapaxes(1, 2).reshape(h * BLOCK, w * BLOCK)
    return out


def _correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Correlation of two equally shaped arrays (0 where one is constant); from sums, as the
    arrays are strided views of one array and copying them would cost more than the sums."""
    n = a.size
    sa, sb = float(a.sum()), float(b.sum())
    caa = float(np.einsum("ij,ij->", a, a)) - sa * sa / n
    cbb = float(np.einsum("ij,ij->", b, b)) - sb * sb / n
    cab = float(np.einsum("ij,ij->", a, b)) - sa * sb / n
    return cab / math.sqrt(caa * cbb) if caa > 0 and cbb > 0 else 0.0


def _bins(z: np.ndarray, every: int = 1) -> np.ndarray:
    """Each pixel's bin (0 .. BINS - 1) of equally many pixels, by its instrument ``z``;
    the bins' edges from every ``every``-th pixel (about equally many, for less sorting)."""
    edges = np.quantile(z[::every], np.linspace(0, 1, BINS + 1)[1:-1])
    return np.searchsorted(edges, z, side="right")


def _fit(m: np.ndarray, d2: np.ndarray, label: np.ndarray, offset: float | None, zeros: float = 0.0) -> NoiseFit:
    """The noise line through the binned (``label``) levels ``m`` and squared differences ``d2``."""
    keep = np.ones(m.size, dtype=bool)
    used = np.ones(BINS, dtype=bool)
    for _ in range(4):
        count = np.bincount(label, weights=keep, minlength=BINS)
        filled = count > 0  # few distinct levels leave bins empty
        if filled.sum() < BINS // 2:
            return _refused("too few distinct levels to measure the noise")
        used &= filled
        bm = np.bincount(label, weights=m * keep, minlength=BINS) / np.maximum(count, 1)
        bv = np.bincount(label, weights=d2 * keep, minlength=BINS) / np.maximum(count, 1)
        if not np.all(np.isfinite(bv)) or bv.max() <= 0:
            return _refused("the frames do not change: no noise to measure", bm, bv)
        gain, c, err = _line(bm[used], bv[used], count[used])
        # with read noise, readings near zero were clipped there (a detector without
        # offset): such bins hide their noise
        clipped = (c > 0.25 * gain * gain) & (bm < 2.5 * np.sqrt(np.maximum(bv, 0.0)))
        if clipped.sum() > BINS // 2:
            return _refused("most readings are clipped at zero: the noise cannot be measured", bm, bv)
        bound = m * (OUTLIER * gain)
        bound += OUTLIER * c
        new = d2 <= np.maximum(bound, OUTLIER * bv[used].min(), out=bound)
        # bins far off the line (readings near a saturation ceiling, content the differences
        # did not cancel) are left out
        rel = np.abs(bv - (gain * bm + c)) / np.maximum(np.abs(gain * bm + c), 1e-12)
        off = rel > max(4.0 * 1.4826 * float(np.median(rel[used])), 0.1)
        bins = ~clipped & filled & ~off
        if bins.sum() < BINS // 2:
            return _refused(
                "the noise does not follow a line in the intensity: not a Poisson-Gaussian detector", bm, bv
            )
        if np.array_equal(new, keep) and np.array_equal(bins, used):
            break
        keep, used = new, bins
    misfit = float(np.median(rel[used]))
    if not gain > 0:
        return _refused("the noise does not grow with the intensity: not a Poisson-Gaussian detector", bm, bv)
    line = (float(gain), float(err / gain))
    if float(np.median(bv[used])) < MIN_VARIANCE:
        return _refused("the noise is smaller than one level: the movie's levels cannot resolve it", bm, bv, line=line)
    if err / gain > MAX_GAIN_ERROR:
        return _refused(
            f"the frames' intensities span too narrow a range to measure the gain (+-{100 * err / gain:.0f} %)",
            bm,
            bv,
            line=line,
        )
    if zeros > ZERO_SHARE and abs(c) > 0.25 * gain * gain:
        # readings pile up at zero while the line says they would spread below it
        return _refused(
            "readings are clipped at zero (an offset below the read noise): the noise cannot be measured",
            bm,
            bv,
            line=line,
        )
    if gain < 1 and bm[used].max() - bm[used].min() < MIN_LEVEL_SPAN:
        return _refused(
            f"the frames' mean intensities span {bm[used].max() - bm[used].min():.1f} levels at under one level "
            "per electron: the gain would rest on fractions of a level, where rounding bends the noise line",
            bm,
            bv,
            line=line,
        )
    span = gain * (bm[used].max() - bm[used].min())
    if span < 0.1 * float(np.median(bv[used])):
        return _refused("read noise hides the shot noise: the gain cannot be measured", bm, bv, line=line)
    if misfit > MAX_MISFIT:
        return _refused(
            f"the noise departs from a Poisson-Gaussian line by {100 * misfit:.0f} % "
            "(a compressed, denoised or resampled movie?)",
            bm,
            bv,
            line=line,
        )
    if offset is not None:
        read = math.sqrt(max(c + gain * offset, 0.0)) / gain
        model = NoiseModel(gain, float(offset), read, estimated=True)
    elif c >= 0:
        model = NoiseModel(gain, 0.0, math.sqrt(c) / gain, estimated=True)
    else:
        model = NoiseModel(gain, -c / gain, 0.0, estimated=True)
    return NoiseFit(model, "", bm, bv, line=line)


def _line(x: np.ndarray, y: np.ndarray, n: np.ndarray) -> tuple[float, float, float]:
    """Weighted least-squares y = g x + c (weights n / y²: relative errors); (g, c, stderr of g)."""
    w = n / np.maximum(np.abs(y), 1e-12) ** 2
    X = np.stack([x, np.ones_like(x)], axis=1)
    WX = X * w[:, None]
    cov = np.linalg.pinv(X.T @ WX)
    g, c = cov @ (WX.T @ y)
    resid = y - (g * x + c)
    dof = max(len(x) - 2, 1)
    s2 = max(float(np.sum(w * resid**2) / dof), 1.0)
    return float(g), float(c), math.sqrt(max(s2 * cov[0, 0], 0.0))
