"""FEI/TIA SER series and Berkeley EMD movies, via ncempy (the ``formats`` extra).

ncempy reads these better than RosettaSciIO for a codec: a SER series one image at a
time (RosettaSciIO loads the whole series), with the microscope settings of the
``.emi`` file beside it; and a Berkeley EMD dataset in its on-disk row/column order
(RosettaSciIO transposes it), sliced frame by frame from the HDF5 dataset.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from ..optional import require
from .base import (
    MovieReader,
    calibration,
    check_frames,
    length_in_nm,
    normalised_metadata,
    time_in_s,
)

__all__ = ["SerMovieReader", "BerkeleyEmdMovieReader"]

_SER_IMAGE = 0x4122  # DataTypeID of 2-D elements (0x4120: spectra)


class SerMovieReader(MovieReader):
    """The images of a TIA ``.ser`` series, one per frame; metadata also from its ``.emi``."""

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)
        ser = require("ncempy.io.ser", purpose="reading TIA SER files", extra="formats", package="ncempy")
        try:
            self._ser = ser.fileSER(self.path)
            head = self._ser.head
            if head["DataTypeID"] != _SER_IMAGE:
                raise InputError(f"{self.path}: holds spectra, not images")
            self.n_frames = int(head["ValidNumberElements"])
            first, meta = self._ser.getDataset(0)
        except InputError:
            self.close()
            raise
        except Exception as exc:  # noqa: BLE001 (the parser raises anything on a malformed file)
            self.close()
            raise InputError(f"{self.path}: not a readable SER file ({exc})") from None
        _, self.frame_shape = check_frames(self.path, first.shape, first.dtype)
        self.dtype = first.dtype.newbyteorder("=")
        self.metadata = self._read_metadata(meta)

    def read_frame(self, i: int) -> np.ndarray:
        if not 0 <= i < self.n_frames:
            raise IndexError(f"frame {i} out of range 0..{self.n_frames - 1}")
        try:
            frame, _ = self._ser.getDataset(i)
        except (ValueError, OSError, RuntimeError) as exc:
            raise InputError(f"{self.path}: cannot read frame {i} ({exc})") from None
        if frame.shape != self.frame_shape:
            raise InputError(f"{self.path}: frame {i} is {frame.shape}, frame 0 is {self.frame_shape}")
        return np.asarray(frame, dtype=self.dtype)

    def close(self) -> None:
        hdl = getattr(getattr(self, "_ser", None), "_file_hdl", None)
        if hdl is not None:
            hdl.close()

    def _read_metadata(self, meta: dict[str, Any]) -> dict[str, Any]:
        emi = self._ser._emi or {}
        cal = meta.get("Calibration") or []
        # calibrations are (x, y) in metres, or 1/m for diffraction patterns
        mode = str(emi.get("Mode []", emi.get("Mode", "")))
        reciprocal = "Diffraction" in mode and "STEM" not in mode
        pixel_size = unit = None
        if len(cal) == 2:
            dx, dy = float(cal[0]["CalibrationDelta"]), float(cal[1]["CalibrationDelta"])
            if reciprocal:
                pixel_size, unit = calibration((dy * 1e-9, dx * 1e-9), "1/nm")
            else:
                pixel_size, unit = calibration((dy, dx), "m")
        times = [self._tag_time(0), self._tag_time(self.n_frames - 1)]
        interval = None
        if self.n_frames > 1 and None not in times and times[1] > times[0]:
            interval = (times[1] - times[0]) / (self.n_frames - 1)  # tags have 1 s resolution
        when = None
        if times[0]:
            when = datetime.fromtimestamp(times[0], tz=UTC).isoformat(timespec="seconds")
        exposure = _first(emi, "Integration time [s]", "Exposure time [s]", "ExposureTime", "FrameTime")
        return normalised_metadata(
            pixel_size=pixel_size,
            pixel_unit=unit,
            frame_interval=interval,
            acquisition_time=when or emi.get("AcquireDate"),
            exposure=exposure,
            microscope=_first(emi, "Microscope []", "Microscope"),
            detector=_first(emi, "Detector []", "DetectorName", "Camera []", "Camera"),
            original_metadata={"ser_header": self._ser.head, "emi": emi},
            source_format="ser",
        )

    def _tag_time(self, i: int) -> int | None:
        try:
            return int(self._ser._getTag(i).get("Time")) or None
        except (ValueError, TypeError, OSError, IndexError, AttributeError):
            return None


def _first(tree: dict[str, Any], *keys: str) -> Any:
    return next((tree[k] for k in keys if tree.get(k) not in (None, "")), None)


class BerkeleyEmdMovieReader(MovieReader):
    """The first 2-D or 3-D dataset of a Berkeley EMD file, read frame by frame in on-disk order.

    The frame axis of a 3-D dataset is the one whose dimension vector is a time (or
    is not a length where the two others are); the first axis otherwise.
    """

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)
        emd = require("ncempy.io.emd", purpose="reading Berkeley EMD files", extra="formats", package="ncempy")
        try:
            self._emd = emd.fileEMD(self.path, readonly=True)
            groups = [g for g in self._emd.list_emds if g["data"].ndim in (2, 3)]
        except Exception as exc:  # noqa: BLE001 (the parser raises anything on a malformed file)
            raise InputError(f"{self.path}: not a readable Berkeley EMD file ({exc})") from None
        if not groups:
            self.close()
            raise InputError(f"{self.path}: no 2-D or 3-D dataset in the file")
        self._group = groups[0]
        self._ds = self._group["data"]
        dims = [_dim(self._group, i) for i in range(self._ds.ndim)]
        self._axis = _frame_axis(dims) if self._ds.ndim == 3 else None
        shape = self._ds.shape
        if self._axis is not None:
            shape = (shape[self._axis], *(n for k, n in enumerate(shape) if k != self._axis))
        try:
            self.n_frames, self.frame_shape = check_frames(self.path, shape, self._ds.dtype)
        except InputError:
            self.close()
            raise
        self.dtype = self._ds.dtype.newbyteorder("=")
        image_dims = [d for k, d in enumerate(dims) if k != self._axis]
        self.metadata = self._read_metadata(dims, image_dims)

    def read_frame(self, i: int) -> np.ndarray:
        if not 0 <= i < self.n_frames:
            raise IndexError(f"frame {i} out of range 0..{self.n_frames - 1}")
        key = () if self._axis is None else (slice(None),) * self._axis + (i,)
        try:
            return np.asarray(self._ds[key], dtype=self.dtype)
        except (ValueError, OSError) as exc:
            raise InputError(f"{self.path}: cannot read frame {i} ({exc})") from None

    def close(self) -> None:
        hdl = getattr(getattr(self, "_emd", None), "file_hdl", None)
        if hdl is not None and hdl.id.valid:
            hdl.close()

    def _read_metadata(self, dims: list[dict[str, Any]], image_dims: list[dict[str, Any]]) -> dict[str, Any]:
        f = self._emd.file_hdl
        original: dict[str, Any] = {"root": dict(f.attrs), "dataset": {"path": self._group.name, **self._group.attrs}}
        original["dims"] = [{"name": d["name"], "units": d["units"]} for d in dims]
        for name, obj in f.items():
            if name != "data" and hasattr(obj, "attrs"):
                original[name] = dict(obj.attrs)
        (dy, dx) = image_dims[-2:]
        pixel_size, unit = calibration((dy["step"], dx["step"]), dx["units"])
        interval = None
        if self._axis is not None:
            interval = time_in_s(dims[self._axis]["step"], dims[self._axis]["units"])
        scope = original.get("microscope", {})
        return normalised_metadata(
            pixel_size=pixel_size,
            pixel_unit=unit,
            frame_interval=interval,
            exposure=_first(scope, "exposure time", "exposure", "integration time"),
            microscope=scope.get("name"),
            detector=_first(scope, "detector", "camera"),
            original_metadata=original,
            source_format="berkeley-emd",
        )


def _dim(group: Any, k: int) -> dict[str, Any]:
    """Name, units and step of the dimension vector ``dim{k+1}`` of an EMD group."""
    ds = group.get(f"dim{k + 1}")
    if ds is None:
        return {"name": "", "units": "", "step": 0.0}
    attrs = {a: v.decode() if isinstance(v, bytes) else str(v) for a, v in ds.attrs.items() if a in ("name", "units")}
    values = ds[:2] if ds.shape and ds.shape[0] >= 2 else np.zeros(2)
    return {"name": attrs.get("name", ""), "units": attrs.get("units", ""), "step": float(values[1] - values[0])}


def _frame_axis(dims: list[dict[str, Any]]) -> int:
    for k, d in enumerate(dims):
        if time_in_s(1.0, d["units"]) is not None or d["name"].lower() in ("time", "t", "frame", "frames"):
            return k
    lengths = [length_in_nm(1.0, d["units"]) is not None for d in dims]
    if lengths.count(False) == 1:
        return lengths.index(False)
    return 0
