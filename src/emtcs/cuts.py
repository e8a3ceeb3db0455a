"""Scene cuts: frames that do not continue the frame before them.

A group of B frames is reconstructed as one measurement, which assumes its frames are
related; a group that straddles a cut (the beam moved to another area, a new
acquisition was appended, the shutter closed) cannot be reconstructed well.
:class:`CutDetector` finds such transitions as the frames stream past, cheaply:

* each frame is binned to blocks of ``BIN`` x ``BIN`` pixels over a central crop of at
  most ``SIDE`` x ``SIDE`` pixels (noise averages out, a frame becomes at most 4,096
  numbers, about 1 ms whatever the frame size; a cut outside the crop is not seen);
* the Pearson correlation of consecutive binned frames measures how much of one frame
  the next one keeps; slow drift, noise and intensity changes lower it a little,
  a cut to different content to near zero;
* frame ``t`` starts a new scene when its correlation with frame ``t - 1`` falls below
  the median correlation of the previous ``WINDOW`` transitions by more than
  ``SPREAD`` robust standard deviations of them and by at least ``MARGIN`` (the movie's
  own running statistics: a noisy low-dose movie has lower correlations throughout,
  and only a drop against them counts; two different HRTEM scenes binned this way
  still correlate by about 0.5 through their illumination and coverage).  It needs
  ``WARMUP`` transitions of history with a median of at least ``MIN_TYPICAL``: frames
  so noisy that even consecutive ones hardly correlate (about 1 e/px and below for
  HRTEM) cannot be told apart from a cut, and no cut is reported there.  After a cut
  the history starts again, so the first ``WARMUP`` transitions of a new scene cannot
  show another cut, with one exception: a frame right after a cut that correlates
  with the frame before the cut by ``MARGIN`` more than with the cut frame is a return
  to the old scene, and the cut frame an isolated incoherent frame (two cuts).
* frames smaller than 8 x 8 pixels (``MIN_VALUES``) are never cut.

The same binned frames say whether the movie suits temporal compression at all
(:meth:`CutDetector.coherence`): the median correlation of consecutive binned frames
against that of neighbouring blocks within a frame.  A frame whose blocks correlate with
their neighbours (structure larger than a block, not noise) but hardly with the same
blocks of the next frame changes faster than a group can follow (a time-lapse with frames
far apart in time): its decoded frames blur into each other, and a smaller B suits it.

Fine detail asks the same at the scale of atoms and lattice fringes, which binning
averages away: with ``lag`` (``compress`` gives half its B), each frame's central crop of
at most ``DETAIL_SIDE`` pixels less its Gaussian blur (``DETAIL_SIGMA``) is correlated
with the frame before it and with the frame ``lag`` before it.  Noise is independent
between frames, so the first correlation is the share of the detail that stands above
the noise and persists for a frame; the second, against it, how much of that a group
keeps.  Detail well above the noise (``DETAIL_STRONG``) that a group does not keep
(``DETAIL_KEPT``) is what a temporal decoder loses: such a movie may decode no better
than its raw frames (:attr:`Coherence.loses_detail`).

How long the detail lasts is measured frame by frame too: the movie is cut into runs, a
run ending at the first frame whose detail keeps less than ``DETAIL_KEPT`` of the running
median of consecutive frames' correlation (itself at least ``DETAIL_STRONG``, over the
last ``WINDOW`` frames, after ``WARMUP``) against the run's first frame.  The mean length
of the runs that ended (:attr:`Coherence.detail_frames`) is about the longest group that
keeps the detail: groups of that many frames in a row measured better than groups that
end wherever the detail moved, at the same size (docs/usage.md).

The rule, thresholds and what was measured: ``docs/usage.md`` ("Scene cuts", "Fine
detail").
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

__all__ = [
    "CutDetector",
    "Coherence",
    "find_cuts",
    "BIN",
    "SPREAD",
    "MARGIN",
    "WINDOW",
    "WARMUP",
    "MIN_TYPICAL",
    "MIN_VALUES",
    "MIN_STRUCTURE",
    "MAX_LAG",
    "DETAIL_SIDE",
    "DETAIL_SIGMA",
    "DETAIL_STRONG",
    "DETAIL_KEPT",
]

#: Side of the blocks a frame is binned to.
BIN = 8
#: Frames are compared over a central crop of at most this side.
SIDE = 512
#: A cut's correlation lies this many robust standard deviations below the running median...
SPREAD = 6.0
#: ...and at least this far below it.
MARGIN = 0.2
#: Number of previous transitions in the running median.
WINDOW = 16
#: Transitions of history needed before a cut can be reported.
WARMUP = 3
#: Below this running median correlation the frames are too noisy to detect cuts.
MIN_TYPICAL = 0.3
#: Frames binned to fewer values than this (smaller than 8 x 8 pixels) are too small to tell.
MIN_VALUES = 64
#: A movie changes faster than a group can follow when its frames' neighbouring blocks
#: correlate by at least this much (structure, not noise)...
MIN_STRUCTURE = 0.5
#: ...and consecutive frames correlate by more than this much less.
MAX_LAG = 0.3
#: Fine detail is compared over a central crop of at most this side...
DETAIL_SIDE = 256
#: ...less its Gaussian blur of this sigma (pixels).
DETAIL_SIGMA = 2.0
#: Detail stands well above the noise where consecutive frames' detail correlates by this much...
DETAIL_STRONG = 0.3
#: ...and a group loses it where frames ``lag`` apart keep less than this share of that correlation.
DETAIL_KEPT = 0.5


@dataclass(frozen=True)
class Coherence:
    """Medians over a movie of the correlation of consecutive binned frames (``between``,
    cuts left out) and of neighbouring blocks within a frame (``within``); with a lag,
    of consecutive frames' fine detail (``detail_next``) and of frames ``lag`` apart
    (``detail_apart``), None without; and the mean length in frames of the runs over which
    the detail kept half its correlation (``detail_frames``), None where no run ended."""

    between: float
    within: float
    detail_next: float | None = None
    detail_apart: float | None = None
    lag: int | None = None
    detail_frames: float | None = None

    @property
    def too_fast(self) -> bool:
        """Whether the frames change faster than a group of them can follow."""
        return self.within >= MIN_STRUCTURE and self.between < self.within - MAX_LAG

    @property
    def loses_detail(self) -> bool:
        """Whether fine detail stands well above the noise and changes within a group: a
        temporal decoder may then give the frames back no better than they were recorded."""
        if self.detail_next is None or self.detail_apart is None:
            return False
        return self.detail_next >= DETAIL_STRONG and self.detail_apart < DETAIL_KEPT * self.detail_next

    def to_json(self) -> dict[str, float | bool | int | None]:
        """``between_frames``, ``within_frames``, ``detail_next``, ``detail_apart`` (three
        decimals; the last two None without a lag), ``lag``, ``detail_frames`` (one decimal),
        ``too_fast`` and ``loses_detail``."""
        return {
            "between_frames": round(self.between, 3),
            "within_frames": round(self.within, 3),
            "detail_next": None if self.detail_next is None else round(self.detail_next, 3),
            "detail_apart": None if self.detail_apart is None else round(self.detail_apart, 3),
            "lag": self.lag,
            "detail_frames": None if self.detail_frames is None else round(self.detail_frames, 1),
            "too_fast": self.too_fast,
            "loses_detail": self.loses_detail,
        }


class CutDetector:
    """Streams frames (:meth:`add`) and collects the indices of frames that start a new scene;
    with ``lag`` (2 or more) it also follows their fine detail over that many frames."""

    def __init__(self, lag: int | None = None) -> None:
        if lag is not None and lag < 2:
            raise ValueError(f"lag must be at least 2 (got {lag})")
        self.lag = lag
        self._details: deque[np.ndarray] = deque(maxlen=lag or 1)
        # the detail of the frame the current run started with, the scene's recent
        # correlations of consecutive frames' detail, and the runs that ended and their frames
        self._run_detail: np.ndarray | None = None
        self._run_start = 0
        self._recent_detail: deque[float] = deque(maxlen=WINDOW)
        self._runs_ended = self._run_frames = 0
        self._detail_next = np.zeros(_LEVELS, dtype=np.int64)
        self._detail_apart = np.zeros(_LEVELS, dtype=np.int64)
        self.cuts: list[int] = []
        # histograms of the correlations between consecutive frames (cuts left out) and
        # within frames: a movie's medians in constant memory
        self._between = np.zeros(_LEVELS, dtype=np.int64)
        self._within = np.zeros(_LEVELS, dtype=np.int64)
        self._previous: np.ndarray | None = None
        self._recent: deque[float] = deque(maxlen=WINDOW)
        # (binned frame before the last cut, its scene's history), for the frame after it
        self._before_cut: tuple[np.ndarray, deque[float]] | None = None
        self._t = 0

    def add(self, frame: np.ndarray) -> bool:
        """Take the next frame; True if it starts a new scene."""
        blocks = _binned(frame)
        binned = blocks.ravel()
        cut = False
        if binned.size >= MIN_VALUES:
            inside = _correlation(
                np.concatenate([blocks[:, :-1].ravel(), blocks[:-1].ravel()]),
                np.concatenate([blocks[:, 1:].ravel(), blocks[1:].ravel()]),
            )
            self._within[_level(inside)] += 1
        if self._previous is not None and binned.size >= MIN_VALUES:
            r = _correlation(self._previous, binned)
            before, self._before_cut = self._before_cut, None
            if before is not None and _correlation(before[0], binned) > r + MARGIN:
                cut = True  # back to the scene before the cut: the cut frame stood alone
                self._recent = before[1]
            elif self._drops(r):
                cut = True
                self._before_cut = (self._previous, self._recent)
                self._recent = deque(maxlen=WINDOW)  # the new scene builds its own statistics
            else:
                self._recent.append(r)
            if cut:
                self.cuts.append(self._t)
            else:
                self._between[_level(r)] += 1
        if self.lag is not None:
            self._add_detail(frame, cut)
        self._previous = binned
        self._t += 1
        return cut

    def _add_detail(self, frame: np.ndarray, cut: bool) -> None:
        """Count the frame's fine detail against the frame before it and ``lag`` before it."""
        from scipy.ndimage import gaussian_filter

        h, w = frame.shape
        if min(h, w) < 8 * DETAIL_SIGMA:  # too small to have detail apart from its blur
            return
        y0, x0 = max((h - DETAIL_SIDE) // 2, 0), max((w - DETAIL_SIDE) // 2, 0)
        part = np.asarray(frame[y0 : y0 + DETAIL_SIDE, x0 : x0 + DETAIL_SIDE], dtype=np.float32)
        detail = part - gaussian_filter(part, DETAIL_SIGMA, mode="reflect")
        if cut:
            self._details.clear()  # another scene: nothing before it continues
            self._recent_detail.clear()
            self._run_detail = None
        if self._details:
            r = _correlation(self._details[-1], detail)
            self._detail_next[_level(r)] += 1
            self._recent_detail.append(r)
            if len(self._details) == self.lag:
                self._detail_apart[_level(_correlation(self._details[0], detail))] += 1
        if self._run_detail is not None and self._detail_moved(self._run_detail, detail):
            self._runs_ended += 1
            self._run_frames += self._t - self._run_start
            self._run_detail = None
        if self._run_detail is None:
            self._run_detail, self._run_start = detail, self._t
        self._details.append(detail)

    def _detail_moved(self, start: np.ndarray, detail: np.ndarray) -> bool:
        """Whether ``detail`` keeps less than ``DETAIL_KEPT`` of what consecutive frames keep (a
        running median of at least ``DETAIL_STRONG``) against ``start``, its run's first frame's."""
        if len(self._recent_detail) < WARMUP:
            return False
        typical = float(np.median(self._recent_detail))
        return typical >= DETAIL_STRONG and _correlation(start, detail) < DETAIL_KEPT * typical

    def coherence(self) -> Coherence | None:
        """How consecutive frames correlate against neighbouring blocks within a frame
        (:class:`Coherence`); None before two frames of at least 8 x 8 pixels."""
        if not self._between.any():
            return None
        if not self._detail_apart.any():
            return Coherence(_median(self._between), _median(self._within))
        return Coherence(
            _median(self._between),
            _median(self._within),
            _median(self._detail_next),
            _median(self._detail_apart),
            self.lag,
            self._run_frames / self._runs_ended if self._runs_ended else None,
        )

    def _drops(self, r: float) -> bool:
        """Whether correlation ``r`` falls far below the scene's running statistics."""
        if len(self._recent) < WARMUP:
            return False
        recent = np.array(self._recent)
        typical = float(np.median(recent))
        spread = 1.4826 * float(np.median(np.abs(recent - typical)))
        return typical >= MIN_TYPICAL and r < typical - max(SPREAD * spread, MARGIN)


def find_cuts(frames: np.ndarray) -> list[int]:
    """Indices of the frames of a (T, H, W) stack that start a new scene."""
    detector = CutDetector()
    for frame in frames:
        detector.add(frame)
    return detector.cuts


def _binned(frame: np.ndarray) -> np.ndarray:
    """A central crop of at most ``SIDE`` pixels binned to blocks of ``BIN`` x ``BIN``
    pixels (2-D): a few thousand numbers, about 1 ms per frame."""
    h, w = frame.shape
    y0, x0 = max((h - SIDE) // 2, 0), max((w - SIDE) // 2, 0)
    part = frame[y0 : y0 + SIDE, x0 : x0 + SIDE]
    b = BIN if min(part.shape) >= 4 * BIN else 1
    hb, wb = part.shape[0] // b, part.shape[1] // b
    return part[: hb * b, : wb * b].reshape(hb, b, wb, b).sum(axis=(1, 3), dtype=np.float64)


#: Correlations are counted in this many levels over -1 ... 1 (steps of 0.001).
_LEVELS = 2000


def _level(r: float) -> int:
    return min(max(int((r + 1.0) * _LEVELS / 2), 0), _LEVELS - 1)


def _median(counts: np.ndarray) -> float:
    """The median of the correlations counted in ``counts`` (to the level's centre)."""
    i = int(np.searchsorted(np.cumsum(counts), counts.sum() / 2))
    return -1.0 + (i + 0.5) * 2 / _LEVELS


def _correlation(a: np.ndarray, b: np.ndarray) -> float:
    a = a - a.mean()
    b = b - b.mean()
    den = float(np.sqrt((a * a).sum() * (b * b).sum()))
    # two flat frames continue each other; a flat frame next to a structured one does not
    if den == 0:
        return 1.0 if not (a.any() or b.any()) else 0.0
    return float((a * b).sum() / den)
