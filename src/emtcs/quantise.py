"""How measurements are stored: exactly, or quantised in proportion to their shot noise.

A measurement Y sums about B/2 frames per pixel, so at high dose its low bits are
Poisson noise that costs bytes and carries nothing.  ``anscombe-v1`` stores
``q = round(2 sqrt(Y/g + 3/8) / step)``: the Anscombe transform makes the noise of
Y/g electrons unit-variance, so ``step`` is the quantisation step in units of the
noise's standard deviation.  The added error has variance step²/12 in those units
(1/12 of the shot-noise variance at ``step = 1``).  ``g`` is the detector gain in
levels per electron (1 for counting detectors).  Specified in ``formats/tcs.md`` §9.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import InputError

__all__ = ["MeasurementCoding", "EXACT", "CODINGS"]

CODINGS = ("exact", "anscombe-v1")
_BLOCK = 1 << 15  # elements per block of the quantiser (256 kB of float64)
_TABLE_LIMIT = 1 << 24


@dataclass(frozen=True)
class MeasurementCoding:
    """Map between group sums Y (integers) and the values a ``.tcs`` file stores."""

    name: str = "exact"
    #: Quantisation step in units of the shot noise's standard deviation (anscombe-v1).
    step: float = 0.0
    #: Levels per electron (anscombe-v1).
    gain: float = 1.0

    def __post_init__(self) -> None:
        if self.name not in CODINGS:
            raise InputError(f"unknown measurement coding {self.name!r} (known: {', '.join(CODINGS)})")
        if self.quantised and not (np.isfinite(self.step) and 0.01 <= self.step <= 8):
            raise InputError(f"quantisation step must be 0.01 to 8 noise standard deviations (got {self.step})")
        if self.quantised and not (np.isfinite(self.gain) and self.gain > 0):
            raise InputError(f"detector gain must be a positive number of levels per electron (got {self.gain})")

    @classmethod
    def anscombe(cls, step: float, gain: float = 1.0) -> MeasurementCoding:
        """Noise-proportional quantisation; ``step = 0`` means exact storage."""
        return cls("anscombe-v1", float(step), float(gain)) if step else EXACT

    @property
    def quantised(self) -> bool:
        return self.name != "exact"

    def stored_dtype(self, sum_dtype: np.dtype, max_sum: int) -> np.dtype:
        """Smallest unsigned type for the stored values of sums up to ``max_sum``."""
        if not self.quantised:
            return np.dtype(sum_dtype)
        return np.dtype(np.min_scalar_type(int(self._levels(np.array([max_sum]))[0])))

    def encode(self, y: np.ndarray) -> np.ndarray:
        """Stored values of the group sums ``y`` (unchanged when exact)."""
        if not self.quantised:
            return y
        q = self._levels(y)
        return q.astype(np.min_scalar_type(int(q.max()) if q.size else 0))

    def table(self, max_sum: int) -> np.ndarray | None:
        """Stored value of every sum 0..max_sum, for encoding by lookup (None when exact,
        or when the table would exceed 2^24 entries)."""
        if not self.quantised or max_sum >= _TABLE_LIMIT:
            return None
        q = self._levels(np.arange(max_sum + 1, dtype=np.float64))
        return q.astype(np.min_scalar_type(int(q[-1])))

    def _levels(self, y: np.ndarray) -> np.ndarray:
        """q of §9 as float64, in place over cache-sized blocks (same operations, same order)."""
        flat = np.ravel(y)
        out = np.empty(flat.shape, dtype=np.float64)
        for i in range(0, flat.size, _BLOCK):
            a = out[i : i + _BLOCK]
            a[:] = flat[i : i + _BLOCK]
            a /= self.gain
            a += 0.375
            np.sqrt(a, out=a)
            a *= 2.0
            a /= self.step
            a += 0.5
            np.floor(a, out=a)
        return out.reshape(np.shape(y))

    def decode(self, stored: np.ndarray) -> np.ndarray:
        """Group sums from stored values: the integers themselves, or float32 estimates."""
        if not self.quantised:
            return stored
        half = stored.astype(np.float64) * (self.step / 2.0)
        return np.maximum(self.gain * (half * half - 0.375), 0.0).astype(np.float32)

    def describe(self) -> str:
        if not self.quantised:
            return "exact"
        return f"{self.name}, step {self.step:g} sigma, gain {self.gain:g} levels/e"


EXACT = MeasurementCoding()
