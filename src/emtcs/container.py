"""The ``.tcs`` container (format versions 1 and 2): the only module that touches h5py.

A ``.tcs`` file is HDF5.  Its layout, every attribute and the versioning rules are
specified in ``formats/tcs.md``; this module is the reference reader and writer.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ._version import __version__
from .encoder import ValueMap
from .errors import FormatError, InputError
from .quantise import CODINGS, MeasurementCoding
from .sensing import MASK_GENERATOR, masks

__all__ = ["FORMAT_NAME", "FORMAT_VERSION", "TcsHeader", "TcsWriter", "TcsReader", "open_tcs"]

FORMAT_NAME = "emtcs.tcs"
#: Newest version written and read.  1.1 added optional keys to the ``metadata``
#: attribute; 2.0 added quantised measurements (``measurement_coding``).  Files with
#: exact measurements are still written as 1.1, so that 1.x readers keep reading them.
FORMAT_VERSION = (2, 0)
EXACT_VERSION = (1, 1)
READABLE_MAJORS = (1, 2)
#: Chunk edge of the measurement dataset, aligned with the 256 x 256 decode tiles.
CHUNK = 256
_DATASET = "measurements"


@dataclass
class TcsHeader:
    """Everything a ``.tcs`` file says about its movie, apart from the measurements."""

    B: int
    n_frames: int
    frame_shape: tuple[int, int]
    source_dtype: str
    measurement_dtype: str
    value_scale: float = 1.0
    value_offset: float = 0.0
    max_level: int = 65535
    mask_generator: str = MASK_GENERATOR
    mask_seed: int = 0
    software: str = f"emtcs {__version__}"
    created: str = ""
    source_name: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)
    measurement_coding: str = "exact"
    quant_step: float = 0.0
    quant_gain: float = 1.0
    format_version: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        if self.format_version is None:
            self.format_version = FORMAT_VERSION if self.coding.quantised else EXACT_VERSION

    @property
    def coding(self) -> MeasurementCoding:
        """How the measurements are stored (exact sums or quantised)."""
        if not self.measurement_coding or self.measurement_coding == "exact":
            return MeasurementCoding()
        return MeasurementCoding(self.measurement_coding, self.quant_step, self.quant_gain)

    @property
    def n_groups(self) -> int:
        return -(-self.n_frames // self.B)

    def group_frames(self, g: int) -> range:
        """Frame indices held by group ``g`` (the last group may be shorter than B)."""
        if not 0 <= g < self.n_groups:
            raise IndexError(f"group {g} out of range 0..{self.n_groups - 1}")
        return range(g * self.B, min((g + 1) * self.B, self.n_frames))

    @property
    def value_map(self) -> ValueMap:
        return ValueMap(
            np.dtype(self.source_dtype),
            np.dtype(self.measurement_dtype),
            int(self.max_level),
            float(self.value_scale),
            float(self.value_offset),
        )

    @property
    def raw_bytes(self) -> int:
        """Size of the source movie as raw pixels."""
        h, w = self.frame_shape
        return self.n_frames * h * w * np.dtype(self.source_dtype).itemsize


_INT_ATTRS = ("B", "n_frames", "max_level", "mask_seed")
_STR_ATTRS = ("source_dtype", "measurement_dtype", "mask_generator", "software", "created", "source_name")


class TcsWriter:
    """Writes the measurements of one movie, group by group, to a new ``.tcs`` file.

    The caller is responsible for atomicity (see :mod:`emtcs.atomic`); this writes
    exactly the path it is given.
    """

    def __init__(self, path: str | os.PathLike[str], header: TcsHeader, *, compression_level: int = 4):
        self.header = header
        if header.coding.quantised and header.format_version[0] < 2:
            raise ValueError("quantised measurements need format version 2 or later")
        if not header.created:
            header.created = datetime.now(UTC).isoformat(timespec="seconds")
        self._file = h5py.File(path, "w", libver=("v108", "latest"))
        f = self._file
        f.attrs["format"] = FORMAT_NAME
        f.attrs["format_version"] = np.array(header.format_version, dtype=np.uint32)
        for name in _INT_ATTRS:
            f.attrs[name] = np.int64(getattr(header, name))
        for name in _STR_ATTRS:
            f.attrs[name] = str(getattr(header, name))
        f.attrs["n_groups"] = np.int64(header.n_groups)
        f.attrs["frame_shape"] = np.array(header.frame_shape, dtype=np.int64)
        f.attrs["value_scale"] = np.float64(header.value_scale)
        f.attrs["value_offset"] = np.float64(header.value_offset)
        f.attrs["metadata"] = json.dumps(header.metadata, sort_keys=True, default=str)
        if header.format_version[0] >= 2:
            f.attrs["measurement_coding"] = header.measurement_coding
            if header.coding.quantised:
                f.attrs["quant_step"] = np.float64(header.quant_step)
                f.attrs["quant_gain"] = np.float64(header.quant_gain)
        h, w = header.frame_shape
        self._ds = f.create_dataset(
            _DATASET,
            shape=(header.n_groups, h, w),
            dtype=np.dtype(header.measurement_dtype),
            chunks=(1, min(CHUNK, h), min(CHUNK, w)),
            shuffle=True,
            compression="gzip",
            compression_opts=compression_level,
            fletcher32=True,
        )
        self._written = 0

    def write_group(self, g: int, measurement: np.ndarray) -> None:
        """Store the measurement of group ``g``."""
        self._ds[g] = measurement
        self._written += 1

    def close(self) -> None:
        if self._file.id.valid:
            if self._written == self.header.n_groups:
                self._file.attrs["complete"] = True
            self._file.close()

    def __enter__(self) -> TcsWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class TcsReader:
    """Reads a ``.tcs`` file: header, per-group measurements and the masks that go with them."""

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)
        if not self.path.is_file():
            raise InputError(f"{self.path}: no such file")
        try:
            self._file = h5py.File(self.path, "r")
        except OSError as exc:
            raise FormatError(f"{self.path}: not a .tcs file or truncated ({_h5_reason(exc)})") from None
        try:
            self.header = self._read_header()
            self._ds = self._file[_DATASET]
        except FormatError:
            self._file.close()
            raise
        except (KeyError, OSError, ValueError, TypeError) as exc:
            self._file.close()
            raise FormatError(f"{self.path}: damaged .tcs header ({exc})") from None

    def _read_header(self) -> TcsHeader:
        a = self._file.attrs
        if a.get("format") != FORMAT_NAME:
            raise FormatError(f"{self.path}: not a .tcs file (format attribute {a.get('format')!r})")
        version = tuple(int(v) for v in a["format_version"])
        if version[0] not in READABLE_MAJORS:
            raise FormatError(
                f"{self.path}: .tcs format version {version[0]}.{version[1]} is not supported "
                f"by emtcs {__version__} (reads {' and '.join(f'{m}.x' for m in READABLE_MAJORS)})"
            )
        if not a.get("complete", False):
            raise FormatError(f"{self.path}: incomplete .tcs file (the writer did not finish)")
        if a["mask_generator"] != MASK_GENERATOR:
            raise FormatError(f"{self.path}: unknown mask generator {a['mask_generator']!r}")
        kw: dict[str, Any] = {n: int(a[n]) for n in _INT_ATTRS}
        kw.update({n: str(a[n]) for n in _STR_ATTRS})
        if version[0] >= 2:
            coding = str(a["measurement_coding"])
            if coding not in CODINGS:
                raise FormatError(f"{self.path}: unknown measurement coding {coding!r}")
            kw["measurement_coding"] = coding
            if coding != "exact":
                kw["quant_step"], kw["quant_gain"] = float(a["quant_step"]), float(a["quant_gain"])
        return TcsHeader(
            frame_shape=tuple(int(v) for v in a["frame_shape"]),  # type: ignore[arg-type]
            value_scale=float(a["value_scale"]),
            value_offset=float(a["value_offset"]),
            metadata=json.loads(a["metadata"]),
            format_version=version,  # type: ignore[arg-type]
            **kw,
        )

    # -- access -------------------------------------------------------------------

    @property
    def n_groups(self) -> int:
        return self.header.n_groups

    @property
    def file_bytes(self) -> int:
        return self.path.stat().st_size

    def measurement(self, g: int, window: tuple[slice, slice] | None = None) -> np.ndarray:
        """Measurement (group sums) of group ``g``, optionally a (rows, cols) window of it:
        integers as stored, or float32 when the file stores them quantised."""
        return self.header.coding.decode(self.stored(g, window))

    def stored(self, g: int, window: tuple[slice, slice] | None = None) -> np.ndarray:
        """The values the file stores for group ``g`` (see :attr:`TcsHeader.coding`)."""
        self.header.group_frames(g)  # range check
        key = (g,) if window is None else (g, *window)
        try:
            return self._ds[key]
        except OSError as exc:
            raise FormatError(f"{self.path}: corrupted measurement of group {g} ({_h5_reason(exc)})") from None

    def masks(self, g: int, shape: tuple[int, int] | None = None, origin: tuple[int, int] = (0, 0)) -> np.ndarray:
        """The (b, h, w) masks of group ``g`` over a window (the whole frame by default)."""
        nb = len(self.header.group_frames(g))
        return masks(self.header.mask_seed, nb, shape or self.header.frame_shape, origin)

    def groups(self) -> Iterator[tuple[int, np.ndarray]]:
        """(group index, measurement) for every group in order."""
        for g in range(self.n_groups):
            yield g, self.measurement(g)

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> TcsReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def info(self) -> dict[str, Any]:
        """Summary for ``emtcs info``: sizes, ratios and provenance, JSON-serialisable."""
        hd = self.header
        h, w = hd.frame_shape
        size = self.file_bytes
        d = asdict(hd)
        d.update(
            path=str(self.path),
            format=FORMAT_NAME,
            format_version=f"{hd.format_version[0]}.{hd.format_version[1]}",
            frame_shape=[h, w],
            n_groups=hd.n_groups,
            file_bytes=size,
            raw_bytes=hd.raw_bytes,
            compression_ratio=hd.raw_bytes / size if size else float("nan"),
            bits_per_pixel=8 * size / (hd.n_frames * h * w),
            coding=hd.coding.describe(),
        )
        return d


def _h5_reason(exc: Exception) -> str:
    text = str(exc)
    if "fletcher32" in text or "checksum" in text or "synchronously read" in text:
        return "checksum mismatch"
    if "truncated" in text:
        return "file truncated"
    if "signature" in text:
        return "not an HDF5 file"
    return text.split("(")[0].strip() or type(exc).__name__


def open_tcs(path: str | os.PathLike[str]) -> TcsReader:
    """Open a ``.tcs`` file for reading (``emtcs.open``)."""
    return TcsReader(path)
