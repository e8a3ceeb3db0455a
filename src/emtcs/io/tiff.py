"""TIFF stacks in and out: multi-page, ImageJ hyperstacks and OME-TIFF, via tifffile."""

from __future__ import annotations

import logging
import os
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import tifffile

from ..errors import InputError
from .base import SUPPORTED_DTYPES, MovieReader, MovieWriter, normalised_metadata

__all__ = ["TiffMovieReader", "TiffMovieWriter"]

_IMAGEJ_DTYPES = {np.dtype(np.uint8), np.dtype(np.uint16), np.dtype(np.float32)}


class TiffMovieReader(MovieReader):
    """A greyscale (frames, height, width) stack in a TIFF file, read one page at a time."""

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)
        tif = None
        try:
            with _damage_reported(self.path):
                try:
                    tif = tifffile.TiffFile(self.path)
                    all_series = tif.series
                    series = all_series[0]
                except (tifffile.TiffFileError, ValueError, IndexError, OSError) as exc:
                    raise InputError(f"{self.path}: not a readable TIFF file ({exc})") from None
            self._tif = tif
            self._setup(series)
            self._join(all_series)
        except InputError:
            if tif is not None:
                tif.close()
            raise

    def _join(self, all_series: list[tifffile.TiffPageSeries]) -> None:
        """Take the frames of a file written one page at a time (a series per page, as
        tifffile writes each call) as one stack; refuse a file holding other images too."""
        if len(all_series) == 1:
            return
        pages = [page for s in all_series for page in s.pages]
        if any(
            page is None
            or tuple(n for n in page.shape if n != 1) != self.frame_shape
            or np.dtype(page.dtype).newbyteorder("=") != self.dtype
            for page in pages
        ):
            kinds = Counter(f"{'x'.join(map(str, s.shape))} {s.dtype}" for s in all_series)
            found = ", ".join(f"{n} x {kind}" for kind, n in kinds.items())
            raise InputError(
                f"{self.path}: holds images of different sizes or types ({found}); "
                "emtcs compresses one stack of equal frames"
            )
        self._pages = pages
        self._memmap = None
        self.n_frames = len(pages)

    def _setup(self, series: tifffile.TiffPageSeries) -> None:
        axes, shape = series.axes, series.shape
        if "S" in axes and shape[axes.index("S")] > 1:
            samples = shape[axes.index("S")]
            hint = (
                f" (if these are {samples} frames: tifffile stores a stack of 3 or 4 as one colour image "
                "unless told photometric='minisblack')"
                if axes.index("S") < axes.index("Y")  # planar: one plane per sample, as a short stack looks
                else ""
            )
            raise InputError(
                f"{self.path}: colour images ({samples} samples per pixel) are not supported; "
                f"convert to greyscale{hint}"
            )
        dims = [(a, n) for a, n in zip(axes, shape) if n > 1 and a not in "YX"]
        if len(dims) > 1:
            desc = ", ".join(f"{a}={n}" for a, n in dims)
            raise InputError(f"{self.path}: 4-D input ({desc}); emtcs compresses one (frames, height, width) stack")
        dtype = np.dtype(series.dtype)
        if dtype.str[1:] not in SUPPORTED_DTYPES:
            raise InputError(f"{self.path}: unsupported pixel type {dtype}")
        self.dtype = dtype.newbyteorder("=")
        self.frame_shape = (int(shape[axes.index("Y")]), int(shape[axes.index("X")]))
        self.n_frames = int(np.prod([n for a, n in zip(axes, shape) if a not in "YXS"], dtype=np.int64))
        if self.n_frames < 1 or min(self.frame_shape) < 1:
            raise InputError(f"{self.path}: empty image stack")
        self._pages = series.pages
        self._memmap: np.ndarray | None = None
        page_shape = tuple(n for n in series.pages[0].shape if n != 1) if series.pages[0] else ()
        if len(series.pages) != self.n_frames or page_shape != self.frame_shape:
            # one page holding many frames (e.g. a truncated ImageJ hyperstack > 4 GB)
            if series.dataoffset is None:
                raise InputError(f"{self.path}: frames are not stored page by page nor contiguously")
            self._memmap = np.memmap(
                self.path,
                dtype=series.dtype,
                mode="r",
                offset=series.dataoffset,
                shape=(self.n_frames, *self.frame_shape),
            )
        self.metadata = self._read_metadata()

    def read_frame(self, i: int) -> np.ndarray:
        if not 0 <= i < self.n_frames:
            raise IndexError(f"frame {i} out of range 0..{self.n_frames - 1}")
        try:
            if self._memmap is not None:
                frame = np.asarray(self._memmap[i])
            else:
                frame = self._pages[i].asarray()
        except (ValueError, OSError, tifffile.TiffFileError) as exc:
            raise InputError(f"{self.path}: cannot read frame {i} ({exc})") from None
        return frame.reshape(self.frame_shape).astype(self.dtype, copy=False)

    def close(self) -> None:
        self._memmap = None
        self._tif.close()

    # -- metadata -----------------------------------------------------------------

    def _read_metadata(self) -> dict[str, Any]:
        tif = self._tif
        page = tif.pages[0]
        extra: dict[str, Any] = {"source_format": "tiff"}
        pixel_size = unit = interval = None
        if tif.is_ome and tif.ome_metadata:
            extra["ome_xml"] = tif.ome_metadata
            pixel_size, unit, interval = _ome_calibration(tif.ome_metadata)
        elif tif.is_imagej and tif.imagej_metadata:
            ij = {k: v for k, v in tif.imagej_metadata.items() if isinstance(v, (int, float, str, bool))}
            extra["imagej"] = ij
            interval = ij.get("finterval")
            unit = ij.get("unit")
            pixel_size = _tag_pixel_size(page)
            if unit in (None, "pixel"):
                pixel_size = None
        else:
            desc = page.description
            if desc and len(desc) < 65536:
                extra["description"] = desc
        return normalised_metadata(pixel_size=pixel_size, pixel_unit=unit, frame_interval=interval, **extra)


@contextmanager
def _damage_reported(path: Path) -> Iterator[None]:
    """Turn tifffile's warnings of a damaged file (printed otherwise, and followed by a
    stack shorter than the file claims) into one :class:`InputError`; others pass on."""
    collected = _Collected()
    log = tifffile.logger()
    log.addHandler(collected)
    try:
        yield
    finally:
        log.removeHandler(collected)
    damage = [r for r in collected.records if any(w in r.getMessage().lower() for w in _DAMAGE)]
    if damage:
        raise InputError(f"{path}: truncated or damaged TIFF ({damage[0].getMessage().split('> ')[-1]})")
    for record in collected.records:
        log.handle(record)


class _Collected(logging.Handler):
    """Keeps the records it is given instead of printing them."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


#: Words of tifffile's warnings that mean the file is damaged.
_DAMAGE = ("corrupt", "invalid page offset", "truncat")


def _tag_pixel_size(page: tifffile.TiffPage) -> tuple[float, float] | None:
    try:
        xr = page.tags["XResolution"].value
        yr = page.tags["YResolution"].value
    except KeyError:
        return None
    x = xr[0] / xr[1] if isinstance(xr, tuple) else float(xr)
    y = yr[0] / yr[1] if isinstance(yr, tuple) else float(yr)
    if x <= 0 or y <= 0:
        return None
    return 1.0 / y, 1.0 / x


def _ome_calibration(xml: str) -> tuple[tuple[float, float] | None, str | None, float | None]:
    try:
        root = ET.fromstring(xml)
    except ET.ParseError:
        return None, None, None
    pixels = next((el for el in root.iter() if el.tag.endswith("}Pixels") or el.tag == "Pixels"), None)
    if pixels is None:
        return None, None, None
    a = pixels.attrib
    size = None
    unit = a.get("PhysicalSizeXUnit", "µm")
    if "PhysicalSizeX" in a:
        px = float(a["PhysicalSizeX"])
        size = (float(a.get("PhysicalSizeY", px)), px)
    interval = None
    if "TimeIncrement" in a:
        scale = {"s": 1.0, "ms": 1e-3, "µs": 1e-6, "us": 1e-6, "ns": 1e-9}.get(a.get("TimeIncrementUnit", "s"), 1.0)
        interval = float(a["TimeIncrement"]) * scale
    return size, unit, interval


class TiffMovieWriter(MovieWriter):
    """Writes a (frames, height, width) movie to an uncompressed TIFF, rows at any place.

    The file is laid out in full when it is created (tifffile writes every page header
    and reserves the contiguous pixel data), then frames or row bands of frames are
    written at their offsets with plain file writes: nothing is mapped or cached, so
    memory does not depend on the movie's size.  ImageJ layout (pixel size, unit,
    frame interval) for uint8/uint16/float32 movies under 4 GB of frames wider than one
    pixel; otherwise (Big)TIFF with the calibration in a JSON description.
    """

    def __init__(self, path: str | os.PathLike[str], shape: tuple[int, int, int], dtype: Any, metadata: dict[str, Any]):
        self.path = Path(path)
        self.shape = tuple(int(v) for v in shape)
        self.dtype = np.dtype(dtype)
        nbytes = int(np.prod(self.shape, dtype=np.int64)) * self.dtype.itemsize
        bigtiff = nbytes > 2**32 - 2**25
        kwargs: dict[str, Any] = {"photometric": "minisblack", "bigtiff": bigtiff}
        size = metadata.get("pixel_size")
        unit = metadata.get("pixel_unit")
        interval = metadata.get("frame_interval")
        # ImageJ files of frames one pixel wide read back as one (frames, height) image:
        # tifffile takes the width of 1 for a sample axis
        if not bigtiff and self.dtype in _IMAGEJ_DTYPES and self.shape[2] > 1:
            ij: dict[str, Any] = {"axes": "TYX"}
            if interval:
                ij["finterval"] = interval
            if size and unit:
                ij["unit"] = _imagej_unit(unit)
                kwargs["resolution"] = (1.0 / size[1], 1.0 / size[0])
            kwargs.update(imagej=True, metadata=ij)
        else:
            kwargs["metadata"] = {
                "axes": "TYX",
                **{k: v for k, v in (("pixel_size", size), ("pixel_unit", unit), ("frame_interval", interval)) if v},
            }
        mm = tifffile.memmap(self.path, shape=self.shape, dtype=self.dtype, **kwargs)
        offset, file_dtype = int(mm.offset), mm.dtype
        del mm
        self._open(offset, file_dtype)


def _imagej_unit(unit: str) -> str:
    return {"µm": "micron", "um": "micron"}.get(unit, unit)
