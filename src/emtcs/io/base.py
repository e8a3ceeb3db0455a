"""The reader and writer interfaces and the normalised source metadata."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from datetime import date, datetime
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError

__all__ = [
    "MovieReader",
    "MovieWriter",
    "normalised_metadata",
    "jsonable",
    "calibration",
    "length_in_nm",
    "time_in_s",
    "check_frames",
]


def normalised_metadata(
    *,
    pixel_size: tuple[float, float] | None = None,
    pixel_unit: str | None = None,
    frame_interval: float | None = None,
    acquisition_time: str | datetime | None = None,
    exposure: float | None = None,
    microscope: str | None = None,
    detector: str | None = None,
    original_metadata: Any = None,
    **extra: Any,
) -> dict[str, Any]:
    """Source metadata as stored in ``.tcs`` files (``formats/tcs.md``, "metadata").

    ``pixel_size`` is (y, x) in ``pixel_unit``; ``frame_interval`` and ``exposure`` in
    seconds; ``acquisition_time`` ISO 8601; ``microscope`` and ``detector`` names as
    the file gives them; ``original_metadata`` the file's own metadata tree (made
    JSON-able by :func:`jsonable`).  ``extra`` keeps format-specific entries
    (``source_format``, ``imagej``, ``ome_xml``, ``description``, ...).  Unknown
    optional values are left out.
    """
    if isinstance(acquisition_time, datetime):
        acquisition_time = acquisition_time.isoformat()
    meta: dict[str, Any] = {
        "pixel_size": [float(pixel_size[0]), float(pixel_size[1])] if pixel_size else None,
        "pixel_unit": pixel_unit if pixel_size else None,
        "frame_interval": float(frame_interval) if frame_interval else None,
    }
    optional = {
        "acquisition_time": acquisition_time or None,
        "exposure": float(exposure) if exposure and exposure > 0 else None,
        "microscope": _name(microscope),
        "detector": _name(detector),
        "original_metadata": jsonable(original_metadata) if original_metadata else None,
    }
    meta.update({k: v for k, v in {**optional, **extra}.items() if v is not None})
    return meta


def _name(value: Any) -> str | None:
    text = jsonable(value)
    if not isinstance(text, str):
        return None
    text = text.strip()
    return text if text and text.lower() not in ("unknown", "none", "n/a") else None


#: Arrays longer than this are summarised, not listed, in original metadata.
MAX_LISTED = 256


def jsonable(tree: Any, _depth: int = 0) -> Any:
    """A copy of a metadata tree with only JSON types: numpy values as Python numbers,
    bytes decoded, long arrays summarised, NaN and infinities as ``None``."""
    if _depth > 64:
        return "<too deep>"
    if isinstance(tree, Mapping):
        return {str(k): jsonable(v, _depth + 1) for k, v in tree.items()}
    if hasattr(tree, "as_dictionary"):  # hyperspy/rsciio DictionaryTreeBrowser
        return jsonable(tree.as_dictionary(), _depth + 1)
    if isinstance(tree, np.ndarray):
        if tree.size > MAX_LISTED:
            return f"<array {'x'.join(map(str, tree.shape))} {tree.dtype}>"
        tree = tree.tolist()
    if isinstance(tree, (list, tuple)):
        return [jsonable(v, _depth + 1) for v in tree]
    if isinstance(tree, np.generic):
        tree = tree.item()
    if isinstance(tree, bytes):
        return tree.decode("utf-8", "replace").rstrip("\x00")
    if isinstance(tree, float):
        return tree if math.isfinite(tree) else None
    if tree is None or isinstance(tree, (bool, int, str)):
        return tree
    if isinstance(tree, (datetime, date)):
        return tree.isoformat()
    return str(tree)


_NM_PER = {
    "m": 1e9,
    "mm": 1e6,
    "um": 1e3,
    "µm": 1e3,
    "μm": 1e3,
    "micron": 1e3,
    "nm": 1.0,
    "å": 0.1,
    "a": 0.1,
    "angstrom": 0.1,
    "pm": 1e-3,
}
_S_PER = {"s": 1.0, "sec": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ns": 1e-9, "min": 60.0}


def _unit_key(unit: str | None) -> str:
    # Berkeley EMD writes units like "n_m" or "[n_m]"
    return (unit or "").strip().strip("[]").replace("_", "").lower()


def length_in_nm(size: float, unit: str | None) -> float | None:
    """``size`` in ``unit`` converted to nanometres, or ``None`` if ``unit`` is not a length."""
    factor = _NM_PER.get(_unit_key(unit))
    return None if factor is None else float(size) * factor


def time_in_s(value: float, unit: str | None) -> float | None:
    """``value`` in ``unit`` converted to seconds, or ``None`` if ``unit`` is not a time."""
    factor = _S_PER.get(_unit_key(unit))
    return None if factor is None else float(value) * factor


def calibration(sizes: tuple[float, float], unit: str | None) -> tuple[tuple[float, float] | None, str | None]:
    """(y, x) pixel size and unit as stored: lengths in nm, other units (e.g. 1/nm) as given;
    ``(None, None)`` for a missing or non-positive size."""
    if not all(s and s > 0 and math.isfinite(s) for s in sizes):
        return None, None
    nm = [length_in_nm(s, unit) for s in sizes]
    if None not in nm:
        return (nm[0], nm[1]), "nm"  # type: ignore[return-value]
    return (float(sizes[0]), float(sizes[1])), (unit or None)


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


#: Pixel types the readers accept (numpy kind + size); the encoder's value map handles each.
SUPPORTED_DTYPES = {"u1", "u2", "u4", "i1", "i2", "i4", "f2", "f4", "f8"}


def check_frames(path: Path, shape: tuple[int, ...], dtype: np.dtype, what: str = "") -> tuple[int, tuple[int, int]]:
    """(n_frames, (H, W)) of a 2-D image or 3-D (frames, H, W) stack, or an :class:`InputError`."""
    where = f"{path}{what}"
    if dtype.kind == "c":
        raise InputError(f"{where}: complex data (e.g. an FFT) is not supported")
    if dtype.str[1:] not in SUPPORTED_DTYPES:
        raise InputError(f"{where}: unsupported pixel type {dtype}")
    if len(shape) == 2:
        shape = (1, *shape)
    if len(shape) != 3:
        raise InputError(
            f"{where}: {len(shape)}-D data {tuple(shape)}; emtcs compresses one (frames, height, width) stack"
        )
    n, h, w = (int(v) for v in shape)
    if min(n, h, w) < 1:
        raise InputError(f"{where}: empty image stack")
    return n, (h, w)


class MovieWriter:
    """Writes frames, or row bands of frames in any order, into a file laid out in full.

    A subclass creates the file at its final size (header and reserved pixel data)
    and calls :meth:`_open` with the offset of frame 0 and the stored pixel type;
    rows are then written at their offsets with plain file writes, so nothing is
    mapped or cached and memory does not depend on the movie's size.
    """

    path: Path
    shape: tuple[int, int, int]

    def _open(self, offset: int, file_dtype: np.dtype) -> None:
        self._offset = int(offset)
        self._file_dtype = np.dtype(file_dtype)
        self._fh = open(self.path, "r+b")

    def write(self, index: int, data: np.ndarray, rows: slice = slice(None)) -> None:
        """Write frame ``index`` (or its ``rows``, a contiguous slice) from ``data``."""
        _, H, W = self.shape
        r0, r1, step = rows.indices(H)
        if step != 1 or data.shape != (r1 - r0, W):
            raise ValueError(f"expected rows {r0}:{r1} of width {W}, got {data.shape}")
        self._fh.seek(self._offset + (index * H + r0) * W * self._file_dtype.itemsize)
        self._fh.write(np.ascontiguousarray(data, dtype=self._file_dtype).tobytes())

    def close(self) -> None:
        """Finish the file."""
        if not self._fh.closed:
            self._fh.close()

    def __enter__(self) -> MovieWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
