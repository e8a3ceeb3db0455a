"""Predictive storage of measurements: each stored value minus its prediction from the row above.

A group sum Y = Σ_b C_b ⊙ X_b varies from pixel to pixel mostly because the number of
frames summed, k = Σ_b C_b, does (a binomial count of 0..B): the stored values of
neighbouring pixels differ by far more than the scene does.  ``rows-v1`` removes that:
from the three decoded pixels above, it estimates the signal per frame
(Σ e / Σ k, where e is the sum above the detector offset), multiplies it by this
pixel's k and codes the result as the file's coding would; the file stores the
difference, modulo the stored type's range and zig-zag mapped, so that small
differences of either sign become small unsigned numbers that deflate compresses well
(35–43 % fewer bytes at the noise-level quantisation of simulated movies, 15–29 % when
stored exactly; docs/usage.md).

Predictions never reach across the 256 × 256 blocks of the dataset's chunks, so every
chunk decodes on its own; a block's first row is predicted by 0.  Specified in
``formats/tcs.md`` §11; decoding is sequential in the rows of a block and vectorised
over everything else.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .quantise import MeasurementCoding

__all__ = ["PREDICTIONS", "BLOCK", "RowPrediction", "aligned_window"]

PREDICTIONS = ("none", "rows-v1")
#: Edge of the blocks predictions stay inside (the chunks of the measurement dataset).
BLOCK = 256


@dataclass(frozen=True)
class RowPrediction:
    """``rows-v1`` for measurements stored in ``dtype`` (unsigned, at most 32 bits) with ``coding``."""

    coding: MeasurementCoding
    dtype: np.dtype

    def __post_init__(self) -> None:
        if not self.supports(self.dtype):
            raise ValueError(f"rows-v1 prediction needs an unsigned type of at most 32 bits, not {self.dtype}")
        object.__setattr__(self, "dtype", np.dtype(self.dtype))

    @staticmethod
    def supports(dtype: np.dtype) -> bool:
        """Whether values of ``dtype`` can be stored predicted (the arithmetic needs 64 bits of headroom)."""
        d = np.dtype(dtype)
        return d.kind == "u" and d.itemsize <= 4

    def residuals(self, values: np.ndarray, counts: np.ndarray) -> np.ndarray:
        """What the file stores for the (H, W) ``values`` of a group summing ``counts`` frames per pixel."""
        values = np.asarray(values, dtype=self.dtype)
        out = np.empty_like(values)
        for y in range(0, values.shape[0], BLOCK):  # a row of blocks at a time: cache-sized temporaries
            v, k = values[y : y + BLOCK], counts[y : y + BLOCK]
            pred = np.zeros(v.shape, dtype=self.dtype)  # a block's first row has no row above
            if len(v) > 1:
                pred[1:] = self._predict(self._signal(v[:-1], k[:-1]), k[:-1], k[1:])
            out[y : y + BLOCK] = _zigzag(v - pred)
        return out

    def values(self, residuals: np.ndarray, counts: np.ndarray) -> np.ndarray:
        """Inverse of :meth:`residuals`: the stored values of the §9 coding, from a window of
        whole blocks (its top-left corner at a multiple of :data:`BLOCK`)."""
        out = _unzigzag(np.asarray(residuals, dtype=self.dtype))
        H = out.shape[0]
        for i in range(1, min(BLOCK, H)):
            above = self._signal(out[i - 1 :: BLOCK], counts[i - 1 :: BLOCK])
            n = len(out[i::BLOCK])
            out[i::BLOCK] += self._predict(above[:n], counts[i - 1 :: BLOCK][:n], counts[i::BLOCK])
        return out

    def _signal(self, values: np.ndarray, counts: np.ndarray) -> np.ndarray:
        """e: the sum above the detector offset (exact: the sum), as §11 defines it."""
        if not self.coding.quantised:
            return values.astype(np.int64)
        return self.coding.signal(values, counts)

    def _predict(self, e_above: np.ndarray, k_above: np.ndarray, k: np.ndarray) -> np.ndarray:
        """Predicted stored values of rows whose rows above have signals ``e_above`` over
        ``k_above`` frames; ``k``: frames summed at the predicted pixels."""
        E = _neighbour_sum(e_above)
        K = _neighbour_sum(k_above.astype(np.int64))
        kk = k.astype(np.int64)
        if not self.coding.quantised:
            # round(k E / K), half up, in integers
            p = np.where(K > 0, (2 * kk * E + K) // np.maximum(2 * K, 1), 0)
        else:
            z = np.divide(E, K, out=np.zeros(E.shape), where=K > 0)
            p = self.coding.levels_of_signal(kk * z, kk)
        top = np.iinfo(self.dtype).max
        return np.minimum(p, top).astype(self.dtype)


def aligned_window(rows: slice, cols: slice, shape: tuple[int, int]) -> tuple[slice, slice]:
    """The smallest window of whole blocks holding ``rows`` x ``cols`` of a frame of ``shape``."""
    (r0, r1, _), (c0, c1, _) = rows.indices(shape[0]), cols.indices(shape[1])
    r1, c1 = max(r1, r0), max(c1, c0)
    return (
        slice(r0 - r0 % BLOCK, min(shape[0], -(-r1 // BLOCK) * BLOCK)),
        slice(c0 - c0 % BLOCK, min(shape[1], -(-c1 // BLOCK) * BLOCK)),
    )


def _neighbour_sum(a: np.ndarray) -> np.ndarray:
    """a(x - 1) + a(x) + a(x + 1) along the last axis, in that order, leaving out the
    neighbours in another block or outside the frame."""
    left = np.zeros_like(a)
    left[..., 1:] = a[..., :-1]
    left[..., ::BLOCK] = 0
    right = np.zeros_like(a)
    right[..., :-1] = a[..., 1:]
    right[..., BLOCK - 1 :: BLOCK] = 0
    out = left + a
    out += right
    return out


def _zigzag(d: np.ndarray) -> np.ndarray:
    """Unsigned differences read as two's complement, mapped 0, -1, 1, -2, ... -> 0, 1, 2, 3, ..."""
    bits = d.dtype.itemsize * 8
    s = d.view(np.dtype(f"i{d.dtype.itemsize}"))
    return ((s << 1) ^ (s >> (bits - 1))).view(d.dtype)


def _unzigzag(u: np.ndarray) -> np.ndarray:
    ones = np.iinfo(u.dtype).max
    return (u >> u.dtype.type(1)) ^ ((u & u.dtype.type(1)) * u.dtype.type(ones))
