"""The reader interface and the normalised source metadata."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from typing import Any

import numpy as np

from ..errors import InputError

__all__ = ["MovieReader", "normalised_metadata"]


def normalised_metadata(
    *,
    pixel_size: tuple[float, float] | None = None,
    pixel_unit: str | None = None,
    frame_interval: float | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """Source metadata as stored in ``.tcs`` files (``formats/tcs-v1.md``, "metadata").

    ``pixel_size`` is (y, x) in ``pixel_unit``; ``frame_interval`` in seconds; ``extra``
    keeps format-specific trees (``imagej``, ``ome_xml``, ``description``, ...).
    """
    meta: dict[str, Any] = {
        "pixel_size": [float(pixel_size[0]), float(pixel_size[1])] if pixel_size else None,
        "pixel_unit": pixel_unit if pixel_size else None,
        "frame_interval": float(frame_interval) if frame_interval else None,
    }
    meta.update({k: v for k, v in extra.items() if v is not None})
    return meta


class MovieReader(ABC):
    """A greyscale movie of ``n_frames`` frames of ``frame_shape``, read frame by frame."""

    n_frames: int
    frame_shape: tuple[int, int]
    dtype: np.dtype
    metadata: dict[str, Any]

    @abstractmethod
    def read_frame(self, i: int) -> np.ndarray:
        """Frame ``i`` as a (H, W) array of :attr:`dtype`."""

    def frames(self, start: int = 0, stop: int | None = None) -> Iterator[np.ndarray]:
        """Frames ``start..stop-1`` one at a time."""
        for i in range(start, self.n_frames if stop is None else stop):
            yield self.read_frame(i)

    def read(self, start: int, stop: int) -> np.ndarray:
        """Frames ``start..stop-1`` as one (n, H, W) array."""
        out = np.empty((stop - start, *self.frame_shape), dtype=self.dtype)
        for k, frame in enumerate(self.frames(start, stop)):
            out[k] = frame
        return out

    def value_range(self) -> tuple[float, float]:
        """(min, max) over all frames; one pass over the file."""
        lo, hi = np.inf, -np.inf
        for i, frame in enumerate(self.frames()):
            if frame.dtype.kind == "f" and not np.isfinite(frame).all():
                raise InputError(f"frame {i} contains NaN or infinite values")
            lo = min(lo, float(np.min(frame)))
            hi = max(hi, float(np.max(frame)))
        return lo, hi

    def close(self) -> None:
        """Release the file."""

    def __enter__(self) -> MovieReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
