"""Gatan DigitalMicrograph (DM3/DM4) and Thermo Fisher Velox EMD movies, via RosettaSciIO.

RosettaSciIO reads both lazily (a dask array over a memory map or the HDF5 dataset),
so one frame is read at a time.  The first image or image stack of the file is the
movie; spectra and spectrum images are refused.  Calibration comes from the axes
RosettaSciIO builds; names, times and exposures from the file's own tag tree, which
is kept whole as ``original_metadata``.
"""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from ..optional import require
from .base import MovieReader, calibration, check_frames, normalised_metadata, time_in_s

__all__ = ["RsciioMovieReader"]

_FORMATS = {
    "dm": ("rsciio.digitalmicrograph", "DM3/DM4"),
    "velox": ("rsciio.emd", "Velox EMD"),
}


class RsciioMovieReader(MovieReader):
    """The first image (stack) of a DM3/DM4 (``kind="dm"``) or Velox EMD (``kind="velox"``) file."""

    def __init__(self, path: str | os.PathLike[str], kind: str):
        self.path = Path(path)
        module, self.format_name = _FORMATS[kind]
        api = require(module, purpose=f"reading {self.format_name} files", extra="formats", package="rosettasciio")
        kwargs = {"select_type": "images"} if kind == "velox" else {}
        try:
            signals = api.file_reader(str(self.path), lazy=True, **kwargs)
        except Exception as exc:  # noqa: BLE001 (the parsers raise anything on a malformed file)
            raise InputError(f"{self.path}: not a readable {self.format_name} file ({exc})") from None
        images = [s for s in signals if sum(not a.get("navigate", False) for a in s["axes"]) == 2]
        if not images:
            raise InputError(f"{self.path}: no image in the file (spectra and spectrum images are not movies)")
        self._signal = images[0]
        data = self._signal["data"]
        self.n_frames, self.frame_shape = check_frames(self.path, data.shape, np.dtype(data.dtype))
        self._data = data.reshape(self.n_frames, *self.frame_shape)
        self.dtype = np.dtype(data.dtype).newbyteorder("=")
        self.metadata = self._read_metadata(kind)

    def read_frame(self, i: int) -> np.ndarray:
        if not 0 <= i < self.n_frames:
            raise IndexError(f"frame {i} out of range 0..{self.n_frames - 1}")
        frame = self._data[i]
        try:
            if hasattr(frame, "compute"):
                frame = frame.compute(scheduler="synchronous")
        except (ValueError, OSError) as exc:
            raise InputError(f"{self.path}: cannot read frame {i} ({exc})") from None
        return np.asarray(frame, dtype=self.dtype)

    def close(self) -> None:
        # the lazy array holds the only reference to the file; dropping it closes the file
        self._data = self._signal = None  # type: ignore[assignment]

    # -- metadata -----------------------------------------------------------------

    def _read_metadata(self, kind: str) -> dict[str, Any]:
        axes = self._signal["axes"]
        image_axes = [a for a in axes if not a.get("navigate", False)]
        (ay, ax) = image_axes[-2:]
        pixel_size, unit = calibration((_num(ay.get("scale")), _num(ax.get("scale"))), ax.get("units"))
        interval = None
        if self.n_frames > 1:
            time_axis = next((a for a in axes if a.get("navigate", False)), {})
            interval = time_in_s(_num(time_axis.get("scale")), time_axis.get("units"))
        om = self._signal.get("original_metadata") or {}
        names = _dm_names(om, self._signal) if kind == "dm" else _velox_names(om, self._signal)
        return normalised_metadata(
            pixel_size=pixel_size,
            pixel_unit=unit,
            frame_interval=interval,
            original_metadata=om,
            source_format={"dm": "dm", "velox": "velox-emd"}[kind],
            title=(self._signal.get("metadata") or {}).get("General", {}).get("title"),
            **names,
        )


def _num(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return 0.0


def _get(tree: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(tree, dict) or key not in tree:
            return None
        tree = tree[key]
    return tree


def _dm_names(om: dict[str, Any], signal: dict[str, Any]) -> dict[str, Any]:
    """acquisition_time, exposure, microscope and detector from a DM tag tree."""
    index = next(
        (m.group(1) for k in signal.get("mapping", {}) if (m := re.match(r"ImageList\.(TagGroup\d+)\.", k))), None
    )
    tags = _get(om, "ImageList", index, "ImageTags") if index else None
    tags = tags if isinstance(tags, dict) else {}
    when = None
    filetime = _get(tags, "DataBar", "Acquisition Time (OS)")  # Windows FILETIME: 100 ns since 1601, UTC
    if filetime:
        when = datetime.fromtimestamp(float(filetime) / 1e7 - 11644473600, tz=UTC).isoformat(timespec="seconds")
    elif _get(tags, "DataBar", "Acquisition Date"):
        when = _parse_time(
            f"{_get(tags, 'DataBar', 'Acquisition Date')} {_get(tags, 'DataBar', 'Acquisition Time') or ''}"
        )
    exposure = _get(tags, "Acquisition", "Parameters", "High Level", "Exposure (s)") or _get(
        tags, "DataBar", "Exposure Time (s)"
    )
    return {
        "acquisition_time": when,
        "exposure": _num(exposure) or None,
        "microscope": _get(tags, "Microscope Info", "Name") or _get(tags, "Session Info", "Microscope"),
        "detector": _get(tags, "Acquisition", "Device", "Name") or _get(tags, "DataBar", "Device Name"),
    }


def _velox_names(om: dict[str, Any], signal: dict[str, Any]) -> dict[str, Any]:
    """acquisition_time, exposure, microscope and detector from Velox metadata."""
    when = None
    stamp = _get(om, "Acquisition", "AcquisitionStartDatetime", "DateTime")  # Unix seconds
    if stamp:
        when = datetime.fromtimestamp(_num(stamp), tz=UTC).isoformat(timespec="seconds")
    detector = _get(om, "DetectorMetadata", "DetectorName") or (signal.get("metadata") or {}).get("General", {}).get(
        "title"
    )
    index = _get(om, "BinaryResult", "DetectorIndex")
    det = _get(om, "Detectors", f"Detector-{index}") or {}
    exposure = _num(det.get("ExposureTime")) or _num(_get(om, "Scan", "FrameTime"))
    return {
        "acquisition_time": when,
        "exposure": exposure or None,
        "microscope": _get(om, "Instrument", "InstrumentModel") or _get(om, "Instrument", "InstrumentClass"),
        "detector": detector or det.get("DetectorName"),
    }


def _parse_time(text: str) -> str | None:
    """A date/time as written by the acquisition software, in ISO 8601 (local time, no zone)."""
    from dateutil import parser  # a dependency of RosettaSciIO

    try:
        return parser.parse(text).isoformat()
    except (ValueError, OverflowError):
        return None
