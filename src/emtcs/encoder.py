"""The encoder: source values to stored levels, and groups of frames to measurements.

This is the part meant to run beside a detector, so it holds the B masks of the
frame shape once and does nothing per group but a masked sum (:func:`sensing.masked_sum`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import InputError
from .prediction import RowPrediction
from .quantise import EXACT, MeasurementCoding
from .sensing import DEFAULT_DENSITY, accumulator_dtype, masked_sum, masks

__all__ = ["ValueMap", "GroupEncoder", "FLOAT_LEVELS"]

#: Float sources are quantised to this many steps (16 bits) between their min and max.
FLOAT_LEVELS = 65535


@dataclass(frozen=True)
class ValueMap:
    """Affine map between source values and the unsigned integer levels the encoder sums.

    ``source = level * scale + offset``.  Unsigned sources map to themselves; signed
    integers are shifted by the movie's minimum, so that levels (and the group sums)
    are no wider than the movie's range needs (an int16 movie of values 16..88 has
    levels 0..72, in uint8), or, without a range, by their dtype minimum (files before
    format 3); float sources are quantised to ``FLOAT_LEVELS`` steps over their value
    range (the only lossy step of encoding).
    """

    source_dtype: np.dtype
    level_dtype: np.dtype
    max_level: int
    scale: float = 1.0
    offset: float = 0.0

    @classmethod
    def for_source(cls, dtype: np.dtype, value_range: tuple[float, float] | None = None) -> ValueMap:
        """The map for a source dtype and the movie's (min, max) value range: needed for
        float sources, used for signed integers."""
        dtype = np.dtype(dtype)
        if dtype.kind == "u":
            return cls(dtype, dtype, int(np.iinfo(dtype).max))
        if dtype.kind == "i":
            info = np.iinfo(dtype)
            lo, hi = (int(info.min), int(info.max)) if value_range is None else (int(v) for v in value_range)
            if not info.min <= lo <= hi <= info.max:
                raise ValueError(f"value range {value_range} does not fit {dtype}")
            return cls(dtype, accumulator_dtype(hi - lo, 1), hi - lo, 1.0, float(lo))
        if dtype.kind == "f":
            if value_range is None:
                raise ValueError("a float source needs its value range")
            lo, hi = (float(v) for v in value_range)
            if not (np.isfinite(lo) and np.isfinite(hi)):
                raise InputError("float movie contains NaN or infinite values")
            scale = (hi - lo) / FLOAT_LEVELS if hi > lo else 1.0
            return cls(dtype, np.dtype(np.uint16), FLOAT_LEVELS, scale, lo)
        raise InputError(f"unsupported pixel type {dtype} (use uint8, uint16, int16, uint32 or float32)")

    def to_levels(self, frames: np.ndarray) -> np.ndarray:
        """Source frames as levels (no copy for unsigned sources)."""
        if self.source_dtype.kind == "u":
            return frames
        if self.source_dtype.kind == "i":
            if self.level_dtype.itemsize == self.source_dtype.itemsize and self.offset == np.iinfo(frames.dtype).min:
                # two's complement: x - min == x XOR sign bit, exactly, as unsigned
                sign = np.array(1 << (8 * self.source_dtype.itemsize - 1), dtype=self.level_dtype)
                return frames.view(self.level_dtype) ^ sign
            shifted = np.subtract(frames, int(self.offset), dtype=np.int64)
            return np.clip(shifted, 0, self.max_level).astype(self.level_dtype)
        q = np.rint((frames.astype(np.float64) - self.offset) / self.scale)
        return np.clip(q, 0, self.max_level).astype(self.level_dtype)

    def to_source(self, levels: np.ndarray) -> np.ndarray:
        """Float reconstruction in levels -> source dtype: clipped to the levels 0..max_level
        (the movie's range where the map has one), rounded for integer types."""
        # in float64: float32 levels times a large scale overflow (a float32 movie
        # spanning +-3e38 decoded to infinities)
        values = np.clip(np.asarray(levels, dtype=np.float64), 0, self.max_level) * self.scale + self.offset
        if self.source_dtype.kind == "f":
            info = np.finfo(self.source_dtype)
            return np.clip(values, info.min, info.max).astype(self.source_dtype)
        info = np.iinfo(self.source_dtype)
        return np.clip(np.rint(values), info.min, info.max).astype(self.source_dtype)


class GroupEncoder:
    """Encodes groups of up to B frames of one shape with the seeded masks of ``seed`` (and ``density``).

    The B masks are generated once (B bytes per pixel) and reused for every group;
    a shorter group uses the first masks, and a group of one frame is stored unmasked
    (the frame itself, formats/tcs.md §3).  ``coding`` says how the sums are stored
    (:mod:`emtcs.quantise`); ``dtype`` is the stored type.  With ``predict`` the stored
    values are the differences from their predictions (:mod:`emtcs.prediction`), where
    the stored type allows; ``prediction`` names what was done.
    """

    def __init__(
        self,
        seed: int,
        B: int,
        shape: tuple[int, int],
        value_map: ValueMap,
        coding: MeasurementCoding = EXACT,
        *,
        predict: bool = False,
        density: float = DEFAULT_DENSITY,
    ):
        self.seed = int(seed)
        self.B = int(B)
        self.shape = (int(shape[0]), int(shape[1]))
        self.value_map = value_map
        self.coding = coding
        self.masks = masks(self.seed, self.B, self.shape, density=density)
        self._sum_dtype = accumulator_dtype(value_map.max_level, self.B)
        self.dtype = coding.stored_dtype(self._sum_dtype, value_map.max_level * self.B, self.B)
        # quantising by lookup costs one gather per pixel instead of a square root
        self._table = coding.table(value_map.max_level * self.B)
        self._counts: dict[int, np.ndarray] = {}  # frames summed per pixel, by group length
        use = predict and RowPrediction.supports(self.dtype)
        self._predictor = RowPrediction(coding, self.dtype) if use else None
        self.prediction = "rows-v1" if use else "none"

    def encode(self, levels: np.ndarray) -> np.ndarray:
        """Stored measurement of a (b, H, W) stack of levels, b <= B."""
        if levels.ndim != 3 or levels.shape[1:] != self.shape or not 1 <= levels.shape[0] <= self.B:
            raise ValueError(f"expected (1..{self.B}, {self.shape[0]}, {self.shape[1]}) levels, got {levels.shape}")
        nb = levels.shape[0]
        if nb == 1:
            y = levels[0].astype(self._sum_dtype)
        else:
            y = masked_sum(levels, self.masks, np.empty(self.shape, dtype=self._sum_dtype))
        needs_counts = self.coding.needs_counts or self._predictor is not None
        counts = self._group_counts(nb) if needs_counts else None
        if self._table is not None:
            stored = np.take(self._table, y)
        elif self.coding.needs_counts:
            stored = self.coding.encode(y, counts)
        else:
            stored = self.coding.encode(y)
        stored = stored.astype(self.dtype, copy=False)
        if self._predictor is None:
            return stored
        assert counts is not None
        return self._predictor.residuals(stored, counts)

    def _group_counts(self, nb: int) -> np.ndarray:
        """Frames summed at each pixel by a group of ``nb`` frames."""
        if nb not in self._counts:
            ones = np.ones((1, *self.shape), dtype=np.uint8)
            self._counts[nb] = (ones if nb == 1 else self.masks[:nb]).sum(axis=0, dtype=np.uint8)
        return self._counts[nb]
