"""How measurements are stored: exactly, or quantised in proportion to their noise.

A measurement Y sums about B/2 frames per pixel, so at high dose its low bits are
noise that costs bytes and carries nothing.  ``anscombe-v1`` stores
``q = round(2 sqrt(Y/g + 3/8) / step)``: the Anscombe transform makes the noise of
Y/g electrons unit-variance, so ``step`` is the quantisation step in units of the
noise's standard deviation.  The added error has variance step²/12 in those units
(1/12 of the noise variance at ``step = 1``).  ``g`` is the detector gain in levels per
electron (1 for counting detectors).  ``anscombe-v2`` is the generalised Anscombe
transform of a detector with an offset o (levels) and read noise r (electrons): with k
frames summed at a pixel, ``q = round(2 sqrt(max(Y - k o, 0)/g + k r² + 3/8) / step)``.
``gaussian-v1`` is for movies whose noise is measured but does not follow the Poisson
model (8-bit exports, correlated noise): ``q = round(Y / (step sigma sqrt(k)))``, sigma
the noise of one frame in levels.  Specified in ``formats/tcs.md`` §9.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import InputError

__all__ = ["MeasurementCoding", "EXACT", "CODINGS"]

CODINGS = ("exact", "anscombe-v1", "anscombe-v2", "gaussian-v1")
_BLOCK = 1 << 15  # elements per block of the quantiser (256 kB of float64)
_TABLE_LIMIT = 1 << 24


@dataclass(frozen=True)
class MeasurementCoding:
    """Map between group sums Y (integers) and the values a ``.tcs`` file stores."""

    name: str = "exact"
    #: Quantisation step in units of the shot noise's standard deviation (anscombe-v1).
    step: float = 0.0
    #: Levels per electron (anscombe-v1, -v2).
    gain: float = 1.0
    #: Levels at zero electrons, per frame (anscombe-v2).
    offset: float = 0.0
    #: Read noise in electrons, per frame (anscombe-v2).
    read_noise: float = 0.0
    #: Noise standard deviation in levels, per frame (gaussian-v1).
    sigma: float = 0.0

    def __post_init__(self) -> None:
        if self.name not in CODINGS:
            raise InputError(f"unknown measurement coding {self.name!r} (known: {', '.join(CODINGS)})")
        if self.quantised and not (np.isfinite(self.step) and 0.01 <= self.step <= 8):
            raise InputError(f"quantisation step must be 0.01 to 8 noise standard deviations (got {self.step})")
        if self.quantised and not (np.isfinite(self.gain) and self.gain > 0):
            raise InputError(f"detector gain must be a positive number of levels per electron (got {self.gain})")
        if not (np.isfinite(self.offset) and np.isfinite(self.read_noise) and self.read_noise >= 0):
            raise InputError(f"bad detector offset {self.offset} or read noise {self.read_noise}")
        if self.name == "gaussian-v1" and not (np.isfinite(self.sigma) and self.sigma > 0):
            raise InputError(f"noise standard deviation must be a positive number of levels (got {self.sigma})")

    @classmethod
    def anscombe(
        cls, step: float, gain: float = 1.0, offset: float = 0.0, read_noise: float = 0.0
    ) -> MeasurementCoding:
        """Noise-proportional quantisation; ``step = 0`` means exact storage.  The simplest
        coding that holds the noise model: ``anscombe-v1`` without offset and read noise."""
        if not step:
            return EXACT
        if offset == 0 and read_noise == 0:
            return cls("anscombe-v1", float(step), float(gain))
        return cls("anscombe-v2", float(step), float(gain), float(offset), float(read_noise))

    @classmethod
    def gaussian(cls, step: float, sigma: float) -> MeasurementCoding:
        """Quantisation at a noise of ``sigma`` levels per frame whatever the intensity: for
        movies whose noise is measured but does not follow the Poisson model."""
        return cls("gaussian-v1", float(step), sigma=float(sigma)) if step else EXACT

    @property
    def quantised(self) -> bool:
        return self.name != "exact"

    @property
    def needs_counts(self) -> bool:
        """Whether encoding and decoding need k, the number of frames summed at each pixel."""
        return self.name in ("anscombe-v2", "gaussian-v1")

    def stored_dtype(self, sum_dtype: np.dtype, max_sum: int, B: int = 1) -> np.dtype:
        """Smallest unsigned type for the stored values of sums up to ``max_sum`` of up to ``B`` frames."""
        if not self.quantised:
            return np.dtype(sum_dtype)
        k = np.array([B if self.needs_counts else 0])
        top = max_sum + B * max(-self.offset, 0.0)
        return np.dtype(np.min_scalar_type(int(self._levels(np.array([top]), k)[0])))

    def encode(self, y: np.ndarray, k: np.ndarray | None = None) -> np.ndarray:
        """Stored values of the group sums ``y`` (unchanged when exact); ``k``: frames summed per pixel."""
        if not self.quantised:
            return y
        q = self._levels(y, k)
        return q.astype(np.min_scalar_type(int(q.max()) if q.size else 0))

    def table(self, max_sum: int) -> np.ndarray | None:
        """Stored value of every sum 0..max_sum, for encoding by lookup (None when exact, for
        codings that depend on k, or when the table would exceed 2^24 entries)."""
        if not self.quantised or self.needs_counts or max_sum >= _TABLE_LIMIT:
            return None
        q = self._levels(np.arange(max_sum + 1, dtype=np.float64))
        return q.astype(np.min_scalar_type(int(q[-1])))

    def _levels(self, y: np.ndarray, k: np.ndarray | None = None) -> np.ndarray:
        """q of §9 as float64, in place over cache-sized blocks (same operations, same order)."""
        return self._transform(y, k, above_offset=False)

    def levels_of_signal(self, u: np.ndarray, k: np.ndarray) -> np.ndarray:
        """q of §9 for sums whose part above the offset is ``u`` (real, >= 0) over ``k`` frames:
        the §9 formula with max(Y - k·o, 0) replaced by ``u`` (how §11 codes a prediction)."""
        return self._transform(u, k, above_offset=True)

    def _transform(self, y: np.ndarray, k: np.ndarray | None, above_offset: bool) -> np.ndarray:
        if self.name == "gaussian-v1":
            return self._linear(y, k)
        flat = np.ravel(y)
        counts = self.needs_counts or above_offset
        if counts:
            if k is None:
                raise ValueError(f"{self.name} needs the number of frames summed at each pixel")
            kf = np.ravel(np.broadcast_to(k, np.shape(y)))
        out = np.empty(flat.shape, dtype=np.float64)
        for i in range(0, flat.size, _BLOCK):
            a = out[i : i + _BLOCK]
            a[:] = flat[i : i + _BLOCK]
            if counts:
                kb = kf[i : i + _BLOCK].astype(np.float64)
                if not above_offset:
                    a -= kb * self.offset
                    np.maximum(a, 0.0, out=a)
                a /= self.gain
                a += kb * (self.read_noise * self.read_noise)
            else:
                a /= self.gain
            a += 0.375
            np.sqrt(a, out=a)
            a *= 2.0
            a /= self.step
            a += 0.5
            np.floor(a, out=a)
        return out.reshape(np.shape(y))

    def _linear(self, y: np.ndarray, k: np.ndarray | None) -> np.ndarray:
        """q of gaussian-v1: y in steps of (step · sigma) · sqrt(k), 0 where k = 0; over
        cache-sized blocks, as :meth:`_transform`."""
        if k is None:
            raise ValueError(f"{self.name} needs the number of frames summed at each pixel")
        flat, kf = np.ravel(y), np.ravel(np.broadcast_to(k, np.shape(y)))
        out = np.empty(flat.shape, dtype=np.float64)
        for i in range(0, flat.size, _BLOCK):
            a, unit = out[i : i + _BLOCK], self._unit(kf[i : i + _BLOCK])
            a[:] = flat[i : i + _BLOCK]
            np.divide(a, unit, out=a, where=unit > 0)
            a[unit == 0] = 0.0
            a += 0.5
            np.floor(a, out=a)
        return out.reshape(np.shape(y))

    def _unit(self, k: np.ndarray) -> np.ndarray:
        """gaussian-v1's step in the sum: (step · sigma) · sqrt(k)."""
        return (self.step * self.sigma) * np.sqrt(np.asarray(k, dtype=np.float64))

    def signal(self, stored: np.ndarray, k: np.ndarray | None = None) -> np.ndarray:
        """The estimated sum above the offset, Ŷ − k·o (§9), as float64 (exact: the sum)."""
        if not self.quantised:
            return np.asarray(stored, dtype=np.float64)
        if self.name == "gaussian-v1":
            if k is None:
                raise ValueError(f"{self.name} needs the number of frames summed at each pixel")
            return stored.astype(np.float64) * self._unit(np.broadcast_to(k, np.shape(stored)))
        half = stored.astype(np.float64) * (self.step / 2.0)
        a = half * half - 0.375
        if self.needs_counts:
            if k is None:
                raise ValueError(f"{self.name} needs the number of frames summed at each pixel")
            a -= np.broadcast_to(k, np.shape(stored)).astype(np.float64) * (self.read_noise * self.read_noise)
        return self.gain * np.maximum(a, 0.0)

    def decode(self, stored: np.ndarray, k: np.ndarray | None = None) -> np.ndarray:
        """Group sums from stored values: the integers themselves, or float32 estimates."""
        if not self.quantised:
            return stored
        e = self.signal(stored, k)
        if self.name == "anscombe-v2":
            assert k is not None
            e = np.broadcast_to(k, np.shape(stored)).astype(np.float64) * self.offset + e
        return e.astype(np.float32)

    def describe(self) -> str:
        if not self.quantised:
            return "exact"
        if self.name == "gaussian-v1":
            return f"{self.name}, step {self.step:g} sigma, sigma {self.sigma:.4g} levels per frame"
        text = f"{self.name}, step {self.step:g} sigma, gain {self.gain:.4g} levels/e"
        if self.needs_counts:
            text += f", offset {self.offset:.4g} levels, read noise {self.read_noise:.3g} e"
        return text


EXACT = MeasurementCoding()
