"""MRC / MRCS movies in and out, via mrcfile (the ``formats`` extra).

Reading memory-maps the file, so a frame is read when it is asked for.  Writing lays
the file out at full size (header, then the pixel data) and writes rows at their
offsets like the TIFF writer.  MRC stores the pixel size in ångström (the voxel size);
the movie metadata keeps it in nm.
"""

from __future__ import annotations

import os
import re
import struct
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from .._version import __version__
from ..errors import InputError
from ..optional import require
from .base import (
    MovieReader,
    MovieWriter,
    calibration,
    check_frames,
    length_in_nm,
    normalised_metadata,
)

__all__ = ["MrcMovieReader", "MrcMovieWriter", "MRC_SUFFIXES", "require_mrcfile"]

MRC_SUFFIXES = (".mrc", ".mrcs", ".map", ".st", ".ali", ".rec")

#: Source pixel type -> the MRC type it is written as (modes 0, 1, 2, 6, 12).  uint8 is
#: widened to uint16; 32-bit integers and float64 become float32 (exact for |v| < 2**24).
_WRITE_DTYPE = {
    "int8": np.int8,
    "uint8": np.uint16,
    "int16": np.int16,
    "uint16": np.uint16,
    "float16": np.float16,
    "float32": np.float32,
    "int32": np.float32,
    "uint32": np.float32,
    "float64": np.float32,
}

#: The header label in which the writer keeps the frame interval (MRC has no field for it).
_INTERVAL_LABEL = re.compile(r"frame interval ([0-9.eE+-]+) s$")

#: Fields of an FEI1/FEI2 extended header (one record per frame) that fill the metadata.
_FEI_FIELDS = (
    "Microscope type",
    "Camera name",
    "STEM Detector name",
    "Integration time",
    "Frame time",
    "HT",
    "Dose",
    "Magnification",
    "Pixel size X",
    "Pixel size Y",
    "Application",
    "Application version",
)


def require_mrcfile() -> Any:
    """The mrcfile module, or a one-line error naming the extra to install."""
    return require("mrcfile", purpose="reading and writing MRC files", extra="formats")


class MrcMovieReader(MovieReader):
    """A stack of images (or one image) in an MRC file, memory-mapped; frames along z."""

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)
        mrcfile = require_mrcfile()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # permissive mode warns about every header oddity
                self._mrc = mrcfile.mmap(self.path, mode="r", permissive=True)
        except (ValueError, OSError, EOFError) as exc:
            raise InputError(f"{self.path}: not a readable MRC file ({exc})") from None
        data = self._mrc.data
        if data is None:
            self._mrc.close()
            raise InputError(f"{self.path}: not a readable MRC file (unknown mode or truncated data)")
        try:
            self.n_frames, self.frame_shape = check_frames(self.path, data.shape, data.dtype)
        except InputError:
            self._mrc.close()
            raise
        self._data = data.reshape(self.n_frames, *self.frame_shape)
        self.dtype = data.dtype.newbyteorder("=")
        self.metadata = self._read_metadata()

    def read_frame(self, i: int) -> np.ndarray:
        if not 0 <= i < self.n_frames:
            raise IndexError(f"frame {i} out of range 0..{self.n_frames - 1}")
        try:
            return np.array(self._data[i], dtype=self.dtype)
        except (ValueError, OSError) as exc:
            raise InputError(f"{self.path}: cannot read frame {i} ({exc})") from None

    def close(self) -> None:
        self._data = None  # type: ignore[assignment]
        self._mrc.close()

    def _read_metadata(self) -> dict[str, Any]:
        header = self._mrc.header
        fields = {name: header[name] for name in header.dtype.names if name not in ("label", "extra1", "extra2")}
        fields["labels"] = [bytes(lb).decode("latin-1").strip() for lb in header.label[: int(header.nlabl)]]
        original: dict[str, Any] = {"header": fields}
        fei = _fei_record(self._mrc)
        if fei:
            original["fei_extended_header"] = fei
        vox = self._mrc.voxel_size
        pixel_size, unit = calibration((float(vox.y) / 10, float(vox.x) / 10), "nm")
        if pixel_size is None and fei.get("Pixel size X"):
            pixel_size, unit = calibration((fei.get("Pixel size Y") or fei["Pixel size X"], fei["Pixel size X"]), "m")
        camera = fei.get("Camera name") or fei.get("STEM Detector name")
        interval = next((float(m.group(1)) for lb in fields["labels"] if (m := _INTERVAL_LABEL.match(lb))), None)
        return normalised_metadata(
            pixel_size=pixel_size,
            pixel_unit=unit,
            frame_interval=interval,
            exposure=fei.get("Integration time") or fei.get("Frame time"),
            microscope=fei.get("Microscope type"),
            detector=camera,
            original_metadata=original,
            source_format="mrc",
        )


def _fei_record(mrc: Any) -> dict[str, Any]:
    """The first frame's entries of an FEI1/FEI2 extended header (Thermo Fisher EPU,
    Velox, Tomo), or ``{}``."""
    try:
        indexed = mrc.indexed_extended_header
    except (ValueError, TypeError, AttributeError):
        return {}
    if indexed is None or len(indexed) == 0:
        return {}
    record = indexed[0]
    out: dict[str, Any] = {}
    for name in _FEI_FIELDS:
        if name in record.dtype.names:
            value = record[name].item()
            if isinstance(value, bytes):
                value = value.decode("latin-1").rstrip("\x00").strip()
            if value not in (0, 0.0, "", None):
                out[name] = value
    return out


class MrcMovieWriter(MovieWriter):
    """Writes a (frames, height, width) movie to an MRC file (an image stack), rows at any place.

    The voxel size is the pixel size in ångström (when the metadata gives it as a
    length); the frame interval goes into a header label.  dmin, dmax, dmean and rms
    are computed from the rows as they are written.
    """

    def __init__(self, path: str | os.PathLike[str], shape: tuple[int, int, int], dtype: Any, metadata: dict[str, Any]):
        mrcfile = require_mrcfile()
        self.path = Path(path)
        self.shape = tuple(int(v) for v in shape)  # type: ignore[assignment]
        self.dtype = np.dtype(dtype)
        file_dtype = np.dtype(_WRITE_DTYPE[self.dtype.name])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            mrc = mrcfile.new_mmap(
                self.path, shape=self.shape, mrc_mode=mrcfile.utils.mode_from_dtype(file_dtype), overwrite=True
            )
        with mrc:
            if self.shape[0] > 1:
                mrc.set_image_stack()
            size, unit = metadata.get("pixel_size"), metadata.get("pixel_unit")
            nm = [length_in_nm(v, unit) for v in size] if size else [None]
            if None not in nm:
                mrc.voxel_size = (nm[1] * 10, nm[0] * 10, nm[1] * 10)
            labels = [f"emtcs {__version__}: decompressed movie"]
            if metadata.get("frame_interval"):
                labels.append(f"frame interval {metadata['frame_interval']!r} s")
            for i, text in enumerate(labels):
                mrc.header.label[i] = text.encode("ascii", "replace")[:80]
            mrc.header.nlabl = len(labels)
            offset = 1024 + int(mrc.header.nsymbt)
            order = mrc.header.dtype.fields["dmin"][0].byteorder
            self._order = {"=": "<" if np.little_endian else ">"}.get(order, order)
        self._open(offset, file_dtype)
        self._stats = [np.inf, -np.inf, 0.0, 0.0]  # min, max, sum, sum of squares

    def write(self, index: int, data: np.ndarray, rows: slice = slice(None)) -> None:
        values = np.asarray(data, dtype=self._file_dtype)
        st = self._stats
        if values.size:
            v64 = values.astype(np.float64)
            st[0], st[1] = min(st[0], float(v64.min())), max(st[1], float(v64.max()))
            st[2] += float(v64.sum())
            st[3] += float(np.square(v64).sum())
        super().write(index, values, rows)

    def close(self) -> None:
        """Write the statistics into the header (dmin, dmax, dmean at bytes 76..87, rms at 216)."""
        if not self._fh.closed and np.isfinite(self._stats[0]):
            n = float(np.prod(self.shape))
            mean = self._stats[2] / n
            rms = float(np.sqrt(max(self._stats[3] / n - mean * mean, 0.0)))
            self._fh.seek(76)
            self._fh.write(struct.pack(f"{self._order}3f", self._stats[0], self._stats[1], mean))
            self._fh.seek(216)
            self._fh.write(struct.pack(f"{self._order}f", rms))
        super().close()
