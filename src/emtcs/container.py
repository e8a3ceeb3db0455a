"""The ``.tcs`` container (format versions 1 to 4): the only module that touches h5py.

A ``.tcs`` file is HDF5.  Its layout, every attribute and the versioning rules are
specified in ``formats/tcs.md``; this module is the reference reader and writer.
"""

from __future__ import annotations

import functools
import json
import math
import os
import zlib
from bisect import bisect_right
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ._version import __version__
from .encoder import FLOAT_LEVELS, ValueMap
from .errors import EmtcsError, FormatError, InputError
from .noise import NoiseModel
from .prediction import PREDICTIONS, RowPrediction, aligned_window
from .quantise import CODINGS, MeasurementCoding
from .sensing import DEFAULT_DENSITY, DENSITY_GENERATOR, MASK_GENERATOR, SeededMasks, accumulator_dtype, check_density

__all__ = ["FORMAT_NAME", "FORMAT_VERSION", "TcsHeader", "TcsWriter", "TcsReader", "open_tcs", "check_readable"]

FORMAT_NAME = "emtcs.tcs"
#: Versions written, oldest that holds the file first: 1.2 (exact sums in groups of B),
#: 2.1 (quantised sums in groups of B), 3.0 (groups of their own lengths, ``group_starts``),
#: 4.0 (predicted measurements), 4.1 (one frame's measured noise without a model,
#: ``noise_sigma``), 4.2 (with it, how much of the noise is spread over neighbouring
#: pixels, ``noise_spread``), 4.3 (masks of another density than 1/2, ``emtcs-hash32-v2``
#: and ``mask_density``).  1.1 added optional keys to the ``metadata`` attribute;
#: 2.0 quantised measurements (``measurement_coding``); 1.2 and 2.1 the optional noise
#: model and cuts; 3.0 groups cut to scenes; 4.0 ``measurement_prediction``.  Each file is
#: written in the oldest version that holds it, so that older readers keep reading what
#: they can.
FORMAT_VERSION = (4, 3)
DENSITY_VERSION = (4, 3)
SPREAD_VERSION = (4, 2)
SIGMA_VERSION = (4, 1)
PREDICTED_VERSION = (4, 0)
GROUPS_VERSION = (3, 0)
QUANTISED_VERSION = (2, 1)
EXACT_VERSION = (1, 2)
READABLE_MAJORS = (1, 2, 3, 4)
#: Chunk edge of the measurement dataset, aligned with the 256 x 256 decode tiles.
CHUNK = 256
_DATASET = "measurements"
_STARTS = "group_starts"


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
    #: The probability of a 1 in the masks (4.3); files of ``emtcs-hash32-v1`` have 1/2
    mask_density: float = DEFAULT_DENSITY
    software: str = f"emtcs {__version__}"
    created: str = ""
    source_name: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)
    measurement_coding: str = "exact"
    quant_step: float = 0.0
    quant_gain: float = 1.0
    quant_offset: float = 0.0
    quant_read_noise: float = 0.0
    quant_sigma: float = 0.0
    #: How stored values relate to the coding's (emtcs.prediction): "none" or "rows-v1" (4.x)
    measurement_prediction: str = "none"
    #: The detector's noise in source values (given, or measured at compress time), or None
    noise: NoiseModel | None = None
    #: Why there is no noise model (empty when there is one or nobody asked)
    noise_note: str = ""
    #: Without a model: one frame's noise standard deviation in levels where it was measured
    #: and the coding does not hold it (gaussian-v1's quant_sigma does); else 0 (4.1)
    noise_sigma: float = 0.0
    #: With a measured sigma (``noise_sigma`` or ``quant_sigma``): how much of the noise is
    #: spread over neighbouring pixels, in [0, 1] (:func:`emtcs.noise.noise_spread`); 0 for
    #: white noise or where it was not measured (4.2)
    noise_spread: float = 0.0
    #: Frames that start a new scene (emtcs.cuts), or None when not looked for
    cuts: list[int] | None = None
    #: First frame of each group (3.x), or None: groups of B frames, the last one shorter
    group_starts: list[int] | None = None
    format_version: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        self.mask_generator = MASK_GENERATOR if self.mask_density == DEFAULT_DENSITY else DENSITY_GENERATOR
        if self.group_starts is not None and self.group_starts == regular_starts(self.n_frames, self.B):
            if self.n_frames % self.B != 1:  # a masked group of one would need the old rule
                self.group_starts = None
        if self.format_version is None:
            self.format_version = self.oldest_version()

    def oldest_version(self) -> tuple[int, int]:
        """The oldest format version that holds this file (the one writers write)."""
        if self.mask_density != DEFAULT_DENSITY:
            return DENSITY_VERSION
        if self.noise_spread:
            return SPREAD_VERSION
        if self.noise_sigma:
            return SIGMA_VERSION
        if self.measurement_prediction != "none" or self.measurement_coding == "gaussian-v1":
            return PREDICTED_VERSION
        if self.group_starts is not None or self.relative_signed_levels:
            return GROUPS_VERSION
        return QUANTISED_VERSION if self.coding.quantised else EXACT_VERSION

    @property
    def coding(self) -> MeasurementCoding:
        """How the measurements are stored (exact sums or quantised)."""
        if not self.measurement_coding or self.measurement_coding == "exact":
            return MeasurementCoding()
        return MeasurementCoding(
            self.measurement_coding,
            self.quant_step,
            self.quant_gain,
            self.quant_offset,
            self.quant_read_noise,
            self.quant_sigma,
        )

    @property
    def measured_sigma(self) -> float | None:
        """One frame's noise standard deviation in levels, measured without a noise model
        (``noise_sigma``, or ``quant_sigma`` of a ``gaussian-v1`` file); None if not measured."""
        sigma = self.quant_sigma if self.measurement_coding == "gaussian-v1" else self.noise_sigma
        return sigma or None

    @property
    def relative_signed_levels(self) -> bool:
        """Whether this is a signed source's map relative to the movie's range (format 3)."""
        src = np.dtype(self.source_dtype) if self.source_dtype in SOURCE_DTYPES else None
        if src is None or src.kind != "i":
            return False
        full = ValueMap.for_source(src)
        return (self.max_level, self.value_offset) != (full.max_level, full.offset)

    @property
    def starts(self) -> list[int]:
        """First frame of each group."""
        return self.group_starts if self.group_starts is not None else regular_starts(self.n_frames, self.B)

    @property
    def n_groups(self) -> int:
        return len(self.group_starts) if self.group_starts is not None else -(-self.n_frames // self.B)

    @property
    def unmasked_singles(self) -> bool:
        """Whether a group of one frame stores the frame itself (3.x); in 1.x and 2.x it has mask 0."""
        return self.format_version is not None and self.format_version[0] >= 3

    @property
    def groups_across_cuts(self) -> list[int]:
        """Groups holding frames from both sides of a scene cut (they decode poorly); none in
        files whose groups were cut to the scenes."""
        cuts = set(self.cuts or [])
        return [g for g in range(self.n_groups) if any(t in cuts for t in self.group_frames(g)[1:])]

    @property
    def gain_in_levels(self) -> float:
        """Levels per electron of the measurements: from the noise model, else the quantiser's
        gain, else 1 (a counting detector)."""
        if self.noise is not None:
            return self.noise.in_levels(self.value_scale, self.value_offset).gain
        return self.coding.gain if self.measurement_coding.startswith("anscombe") else 1.0

    def group_frames(self, g: int) -> range:
        """Frame indices held by group ``g`` (1 to B of them)."""
        if not 0 <= g < self.n_groups:
            raise IndexError(f"group {g} out of range 0..{self.n_groups - 1}")
        if self.group_starts is None:
            return range(g * self.B, min((g + 1) * self.B, self.n_frames))
        stop = self.group_starts[g + 1] if g + 1 < self.n_groups else self.n_frames
        return range(self.group_starts[g], stop)

    def group_of(self, t: int) -> int:
        """The group holding frame ``t``."""
        if not 0 <= t < self.n_frames:
            raise IndexError(f"frame {t} out of range 0..{self.n_frames - 1}")
        if self.group_starts is None:
            return t // self.B
        return bisect_right(self.group_starts, t) - 1

    def group_masks(self, g: int) -> SeededMasks:
        """The masks of group ``g``: its first masks of §5, or none for a frame stored alone (3.x)."""
        nb = len(self.group_frames(g))
        unmasked = nb == 1 and self.unmasked_singles
        return SeededMasks(self.mask_seed, nb, self.frame_shape, unmasked=unmasked, density=self.mask_density)

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


def regular_starts(n_frames: int, B: int) -> list[int]:
    """First frames of groups of ``B`` frames (the layout of 1.x and 2.x files)."""
    return list(range(0, n_frames, B))


_INT_ATTRS = ("B", "n_frames", "max_level", "mask_seed")
_STR_ATTRS = ("source_dtype", "measurement_dtype", "mask_generator", "software", "created", "source_name")


class TcsWriter:
    """Writes the measurements of one movie, group by group, to a new ``.tcs`` file.

    Groups are appended in frame order (:meth:`write_group`), each of 1 to B frames; the
    layout, hence the format version, is settled by :meth:`finish`, which marks the file
    complete.  A file closed without it stays incomplete (readers reject it).  The caller
    is responsible for atomicity (see :mod:`emtcs.atomic`); this writes exactly the path
    it is given.
    """

    def __init__(self, path: str | os.PathLike[str], header: TcsHeader, *, compression_level: int = 4):
        self.header = header
        if not header.created:
            header.created = datetime.now(UTC).isoformat(timespec="seconds")
        self._file = f = _create_small(path)
        _set_text(f.attrs, "format", FORMAT_NAME)
        f.attrs["format_version"] = np.array(header.format_version, dtype=np.uint32)  # final in finish()
        for name in _INT_ATTRS:
            f.attrs[name] = np.int64(getattr(header, name))
        for name in _STR_ATTRS:
            _set_text(f.attrs, name, str(getattr(header, name)))
        f.attrs["frame_shape"] = np.array(header.frame_shape, dtype=np.int64)
        f.attrs["value_scale"] = np.float64(header.value_scale)
        f.attrs["value_offset"] = np.float64(header.value_offset)
        _set_text(f.attrs, "metadata", json.dumps(header.metadata, sort_keys=True, default=str))
        if header.noise is not None:
            f.attrs["noise_gain"] = np.float64(header.noise.gain)
            f.attrs["noise_offset"] = np.float64(header.noise.offset)
            f.attrs["noise_read_noise"] = np.float64(header.noise.read_noise)
            f.attrs["noise_estimated"] = np.uint8(header.noise.estimated)
        if header.noise_note:
            _set_text(f.attrs, "noise_note", header.noise_note)
        if header.noise_sigma:
            f.attrs["noise_sigma"] = np.float64(header.noise_sigma)
        if header.noise_spread:
            f.attrs["noise_spread"] = np.float64(header.noise_spread)
        if header.mask_density != DEFAULT_DENSITY:
            f.attrs["mask_density"] = np.float64(header.mask_density)
        h, w = header.frame_shape
        self._ds = f.create_dataset(
            _DATASET,
            shape=(0, h, w),
            maxshape=(None, h, w),
            dtype=np.dtype(header.measurement_dtype),
            chunks=(1, min(CHUNK, h), min(CHUNK, w)),
            shuffle=True,
            compression="gzip",
            compression_opts=compression_level,
            fletcher32=True,
        )
        self._level = compression_level
        self._starts: list[int] = []
        self._next = 0  # first frame of the next group

    def write_group(self, frames: range, measurement: np.ndarray) -> None:
        """Append the measurement of the group holding ``frames`` (the next 1 to B frames)."""
        if frames.start != self._next or not 1 <= len(frames) <= self.header.B or frames.stop > self.header.n_frames:
            raise ValueError(f"frames {frames.start}..{frames.stop - 1} are not the next group after {self._next - 1}")
        g = len(self._starts)
        self._ds.resize(g + 1, axis=0)
        _write_chunks(self._ds, g, np.asarray(measurement, dtype=self._ds.dtype), self._level)
        self._starts.append(frames.start)
        self._next = frames.stop

    def finish(self, cuts: list[int] | None = None) -> TcsHeader:
        """Settle the layout and version, record ``cuts`` (frames that start a scene, if looked
        for) and mark the file complete; returns the final header."""
        if self._next != self.header.n_frames:
            raise ValueError(f"groups cover frames 0..{self._next - 1} of {self.header.n_frames}")
        self.header = hd = replace(
            self.header,
            group_starts=self._starts,
            cuts=None if cuts is None else [int(c) for c in cuts],
            format_version=None,  # the oldest version that holds the file
        )
        f, version = self._file, hd.format_version
        f.attrs["format_version"] = np.array(version, dtype=np.uint32)
        f.attrs["n_groups"] = np.int64(hd.n_groups)
        if version[0] >= 2:
            _set_text(f.attrs, "measurement_coding", hd.measurement_coding)
            if hd.coding.quantised:
                f.attrs["quant_step"] = np.float64(hd.quant_step)
            if hd.measurement_coding.startswith("anscombe"):
                f.attrs["quant_gain"] = np.float64(hd.quant_gain)
            if hd.measurement_coding == "anscombe-v2":
                f.attrs["quant_offset"] = np.float64(hd.quant_offset)
                f.attrs["quant_read_noise"] = np.float64(hd.quant_read_noise)
            if hd.measurement_coding == "gaussian-v1":
                f.attrs["quant_sigma"] = np.float64(hd.quant_sigma)
        if version[0] >= 4:
            _set_text(f.attrs, "measurement_prediction", hd.measurement_prediction)
        if hd.cuts is not None:
            f.attrs["cuts"] = np.array(hd.cuts, dtype=np.int64)
        # before group_starts: an attribute added after the last dataset took another 2 KB of
        # header (measured); safe, as the file is renamed into place only after close()
        f.attrs["complete"] = True
        if version[0] >= 3:
            f.create_dataset(_STARTS, data=np.array(hd.starts, dtype=np.int64))
        return hd

    def close(self) -> None:
        if self._file.id.valid:
            self._file.close()

    def __enter__(self) -> TcsWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _create_small(path: str | os.PathLike[str]) -> h5py.File:
    """A new HDF5 file laid out for little overhead beside the measurements (HDF5 1.8 readers
    still read it): attributes kept in the root's object header (HDF5 moves them to a heap
    of their own beyond eight), metadata blocks as large as they need, no object
    timestamps.  On a 192 x 192 x 20 movie's file this leaves 5.6 KB for everything but
    the measurements, where h5py's defaults left 11.3 KB."""
    fcpl = h5py.h5p.create(h5py.h5p.FILE_CREATE)
    fcpl.set_attr_phase_change(64, 48)
    fcpl.set_obj_track_times(False)
    fapl = h5py.h5p.create(h5py.h5p.FILE_ACCESS)
    fapl.set_libver_bounds(h5py.h5f.LIBVER_V18, h5py.h5f.LIBVER_LATEST)
    fapl.set_meta_block_size(0)
    return h5py.File(h5py.h5f.create(os.fsencode(path), h5py.h5f.ACC_TRUNC, fcpl=fcpl, fapl=fapl))


def _set_text(attrs: h5py.AttributeManager, name: str, text: str) -> None:
    """A fixed-length UTF-8 string attribute (formats/tcs.md §1): a variable-length one
    would put its bytes in a global heap collection of at least 4 KB."""
    data = text.encode("utf-8")
    attrs.create(name, np.array(data, dtype=h5py.string_dtype("utf-8", max(len(data), 1))))


class TcsReader:
    """Reads a ``.tcs`` file: header, per-group measurements and the masks that go with them.

    The last :data:`RECENT` whole measurements read are kept: decoding reads each group's
    neighbours too (:mod:`emtcs.still`), and a quantised 4k measurement takes about a second
    to read back.
    """

    #: Whole measurements kept after they are read.
    RECENT = 3

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)
        self._recent: OrderedDict[int, np.ndarray] = OrderedDict()
        if not self.path.exists():
            raise InputError(f"{self.path}: no such file")
        if not self.path.is_file():
            raise InputError(f"{self.path}: not a file (a .tcs file is expected)")
        try:
            self._file = h5py.File(self.path, "r")
        except OSError as exc:
            raise FormatError(f"{self.path}: not a .tcs file or truncated ({_h5_reason(exc)})") from None
        try:
            # before any string attribute is read: a damaged global heap can hang HDF5
            self._check_storage()
            self.header = self._read_header()
            self._ds = self._check_dataset()
        except FormatError:
            self._file.close()
            raise
        except (KeyError, OSError, RuntimeError, ValueError, TypeError) as exc:
            self._file.close()
            raise FormatError(f"{self.path}: damaged .tcs header ({' '.join(str(exc).split())})") from None

    def _read_header(self) -> TcsHeader:
        a = self._file.attrs
        if _text(a.get("format")) != FORMAT_NAME:
            raise FormatError(f"{self.path}: not a .tcs file (format attribute {_show(a.get('format'))})")
        version = _int_vector(a, "format_version", 2)
        if min(version) < 0:
            raise FormatError(f"{self.path}: bad format_version {list(version)}")
        if version[0] not in READABLE_MAJORS:
            raise FormatError(
                f"{self.path}: .tcs format version {version[0]}.{version[1]} is not supported "
                f"by emtcs {__version__} (reads {' and '.join(f'{m}.x' for m in READABLE_MAJORS)})"
            )
        complete = a.get("complete", False)
        if not (isinstance(complete, (bool, np.bool_)) and complete):
            raise FormatError(f"{self.path}: incomplete .tcs file (the writer did not finish)")
        generator = _text(a.get("mask_generator"))
        if generator not in (MASK_GENERATOR, DENSITY_GENERATOR):
            raise FormatError(f"{self.path}: unknown mask generator {_show(a.get('mask_generator'))}")
        kw: dict[str, Any] = {n: _int(a, n) for n in _INT_ATTRS}
        kw.update({n: _string(a, n) for n in _STR_ATTRS})
        if generator == DENSITY_GENERATOR:
            try:
                kw["mask_density"] = check_density(_float(a, "mask_density"))
            except ValueError as exc:
                raise FormatError(f"{self.path}: {exc}") from None
        if version[0] >= 2:
            coding = _string(a, "measurement_coding")
            if coding not in CODINGS:
                raise FormatError(f"{self.path}: unknown measurement coding {_show(coding)}")
            kw["measurement_coding"] = coding
            if coding != "exact":
                kw["quant_step"] = _float(a, "quant_step")
            if coding.startswith("anscombe"):
                kw["quant_gain"] = _float(a, "quant_gain")
            if coding == "anscombe-v2":
                kw["quant_offset"], kw["quant_read_noise"] = _float(a, "quant_offset"), _float(a, "quant_read_noise")
            if coding == "gaussian-v1":
                if version[0] < 4:
                    raise FormatError(f"{self.path}: a version {version[0]}.{version[1]} file cannot hold {coding}")
                kw["quant_sigma"] = _float(a, "quant_sigma")
        elif _text(a.get("measurement_coding", "exact")) != "exact":
            raise FormatError(
                f"{self.path}: a version {version[0]}.{version[1]} file cannot hold "
                f"{_show(a['measurement_coding'])} measurements"
            )
        if "noise_gain" in a:
            try:
                kw["noise"] = NoiseModel(
                    _float(a, "noise_gain"),
                    _float(a, "noise_offset"),
                    _float(a, "noise_read_noise"),
                    bool(_int(a, "noise_estimated")),
                )
            except InputError as exc:
                raise FormatError(f"{self.path}: bad noise model ({exc})") from None
        if "noise_note" in a:
            kw["noise_note"] = _string(a, "noise_note")
        if "noise_sigma" in a:
            kw["noise_sigma"] = _float(a, "noise_sigma")
            if kw["noise_sigma"] <= 0:  # _float has refused what is not finite
                raise FormatError(f"{self.path}: noise_sigma must be a positive number of levels")
        if "noise_spread" in a:
            kw["noise_spread"] = _float(a, "noise_spread")
            if not 0 <= kw["noise_spread"] <= 1:
                raise FormatError(f"{self.path}: noise_spread must be in [0, 1], got {kw['noise_spread']:g}")
        if version[0] >= 3:
            kw["group_starts"] = self._group_starts()
        if version[0] >= 4:
            prediction = _string(a, "measurement_prediction")
            if prediction not in PREDICTIONS:
                raise FormatError(f"{self.path}: unknown measurement prediction {_show(prediction)}")
            if prediction != "none" and not RowPrediction.supports(np.dtype(kw["measurement_dtype"])):
                raise FormatError(f"{self.path}: {prediction} prediction of {kw['measurement_dtype']} measurements")
            kw["measurement_prediction"] = prediction
        if "cuts" in a:
            cuts = np.asarray(a["cuts"])
            if cuts.ndim != 1 or cuts.dtype.kind not in "ui":
                raise FormatError(f"{self.path}: attribute 'cuts' is not a list of frame indices")
            kw["cuts"] = [int(c) for c in cuts]
        try:
            metadata = json.loads(_string(a, "metadata"))
        except json.JSONDecodeError:
            raise FormatError(f"{self.path}: damaged metadata attribute (not JSON)") from None
        problem = _layout_problem(kw["B"], kw["n_frames"], kw.get("group_starts"))
        if problem:
            raise FormatError(f"{self.path}: inconsistent .tcs header ({problem})")
        header = TcsHeader(
            frame_shape=_int_vector(a, "frame_shape", 2),  # type: ignore[arg-type]
            value_scale=_float(a, "value_scale"),
            value_offset=_float(a, "value_offset"),
            metadata=metadata,
            format_version=version,  # type: ignore[arg-type]
            **kw,
        )
        problem = _header_problem(header, _int(a, "n_groups"))
        if problem:
            raise FormatError(f"{self.path}: inconsistent .tcs header ({problem})")
        return header

    def _group_starts(self) -> list[int]:
        """The ``group_starts`` dataset of a 3.x file (checked against the header with it)."""
        ds = self._file.get(_STARTS)
        if not isinstance(ds, h5py.Dataset) or ds.ndim != 1 or ds.dtype.kind not in "ui":
            raise FormatError(f"{self.path}: damaged .tcs file (no list of {_STARTS})")
        if ds.shape[0] > self._file.attrs.get("n_frames", 0):
            raise FormatError(f"{self.path}: damaged .tcs file ({ds.shape[0]} {_STARTS})")
        try:
            return [int(v) for v in ds[()]]
        except (OSError, RuntimeError) as exc:
            raise FormatError(f"{self.path}: corrupted {_STARTS} ({_h5_reason(exc)})") from None

    def _check_storage(self) -> None:
        """Check what HDF5 reads without a checksum in a file written as emtcs writes it
        (``libver`` 1.8: version-1 B-tree chunk index; in files from before December 2026 a
        global heap holds the string attributes).

        * The chunk index must list every chunk of the measurements exactly once, filtered
          data at disjoint places inside the file; a damaged index could otherwise hand
          out another group's chunk (whose checksum is fine), or crash HDF5 with a chunk
          shorter than its checksum.  :meth:`stored` also looks
          each chunk up before reading it: HDF5 reads a chunk it does not find as zeros.
        * Every global heap collection (the strings) must parse: HDF5 loops forever on a
          collection whose free-space object has size 0.
        """
        ds = self._file.get(_DATASET)
        if not isinstance(ds, h5py.Dataset):
            raise FormatError(f"{self.path}: not a .tcs file (no {_DATASET} dataset)")
        size = self.file_bytes
        ranges = _chunk_ranges(ds, size)  # where the measurements lie
        if isinstance(ranges, str):
            raise FormatError(f"{self.path}: corrupted chunk index of the measurements ({ranges})")
        if not any(_variable_length(self._file.attrs, name) for name in self._file.attrs):
            return  # no global heap to read (strings fixed-length, §1): text in the headers is no heap
        _, length_size = self._file.id.get_create_plist().get_sizes()
        problem = _scan_global_heaps(self.path, size, ranges, length_size)
        if problem:
            raise FormatError(f"{self.path}: corrupted string storage ({problem})")

    def _check_dataset(self) -> h5py.Dataset:
        """The measurement dataset, checked against the header (shape and stored type)."""
        ds = self._file.get(_DATASET)
        if not isinstance(ds, h5py.Dataset):
            raise FormatError(f"{self.path}: damaged .tcs file (no {_DATASET} dataset)")
        hd = self.header
        expected = (hd.n_groups, *hd.frame_shape)
        stored = np.dtype(hd.measurement_dtype)
        if ds.shape != expected or ds.dtype.kind != "u" or ds.dtype.itemsize != stored.itemsize:
            raise FormatError(
                f"{self.path}: damaged .tcs file ({_DATASET} {ds.shape} {ds.dtype}, "
                f"the header says {expected} {hd.measurement_dtype})"
            )
        return ds

    # -- access -------------------------------------------------------------------

    @property
    def n_groups(self) -> int:
        return self.header.n_groups

    @property
    def file_bytes(self) -> int:
        return self.path.stat().st_size

    def measurement(self, g: int, window: tuple[slice, slice] | None = None) -> np.ndarray:
        """Measurement (group sums) of group ``g``, optionally a (rows, cols) window of it
        (slices with positive steps): integers as stored, or float32 when the file stores
        them quantised."""
        if window is None:
            if g not in self._recent:
                self._recent[g] = self._measurement(g, None)
                if len(self._recent) > self.RECENT:
                    self._recent.popitem(last=False)
            self._recent.move_to_end(g)
            return self._recent[g].copy()
        return self._measurement(g, window)

    def _measurement(self, g: int, window: tuple[slice, slice] | None) -> np.ndarray:
        hd = self.header
        coding = hd.coding
        rows, cols = window or (slice(None), slice(None))
        predicted = hd.measurement_prediction != "none"
        if not (coding.needs_counts or predicted):
            return coding.decode(self.stored(g, window))
        if predicted:
            # predictions stay within blocks: read whole ones, then cut the window out
            (r0, r1, rs), (c0, c1, cs) = rows.indices(hd.frame_shape[0]), cols.indices(hd.frame_shape[1])
            outer = aligned_window(rows, cols, hd.frame_shape)
            counts = self._counts(g, outer)
            stored = RowPrediction(coding, np.dtype(hd.measurement_dtype)).values(self.stored(g, outer), counts)
            y0, x0 = outer[0].start, outer[1].start
            inner = (slice(r0 - y0, max(r1, r0) - y0, rs), slice(c0 - x0, max(c1, c0) - x0, cs))
            stored, counts = stored[inner], counts[inner]
        else:
            stored = self.stored(g, window)
            counts = self._counts(g, (rows, cols))
        return coding.decode(stored, counts if coding.needs_counts else None)

    def frame_counts(self, g: int) -> np.ndarray:
        """Frames summed at each pixel by group ``g`` (read-only, kept for groups of one length)."""
        return self._counts(g, (slice(None), slice(None)))

    def _counts(self, g: int, window: tuple[slice, slice]) -> np.ndarray:
        """Frames summed per pixel of group ``g`` over ``window``."""
        masks = self.header.group_masks(g)
        (r0, r1, rs), (c0, c1, cs) = (w.indices(n) for w, n in zip(window, self.header.frame_shape))
        return _mask_counts(
            masks.seed, masks.nb, masks.unmasked, masks.density, masks.shape, (r0, r1, rs), (c0, c1, cs)
        )

    def stored(self, g: int, window: tuple[slice, slice] | None = None) -> np.ndarray:
        """The values the file stores for group ``g`` (see :attr:`TcsHeader.coding`; in a
        predicted file the zig-zag mapped differences of formats/tcs.md §11)."""
        self.header.group_frames(g)  # range check
        key = (g,) if window is None else (g, *window)
        try:
            self._check_chunks(g, window)
            return self._ds[key]
        except (OSError, RuntimeError) as exc:
            raise FormatError(f"{self.path}: corrupted measurement of group {g} ({_h5_reason(exc)})") from None

    def _check_chunks(self, g: int, window: tuple[slice, slice] | None) -> None:
        """Look up the chunks a read of group ``g`` needs as the read will: HDF5 reads a chunk
        its (unchecksummed) index no longer finds as zeros, without an error."""
        if self._ds.chunks is None:
            return
        ch, cw = self._ds.chunks[1:]
        H, W = self.header.frame_shape
        rows, cols = window if window is not None else (slice(None), slice(None))
        r0, r1, _ = rows.indices(H)
        c0, c1, _ = cols.indices(W)
        for y in range(r0 - r0 % ch, r1, ch):
            for x in range(c0 - c0 % cw, c1, cw):
                # raises if the chunk is not found; a chunk skipping a filter is damage too
                if self._ds.id.read_direct_chunk((g, y, x))[0] != 0:
                    raise RuntimeError(f"chunk {(g, y, x)} skips a filter")

    def masks(self, g: int, shape: tuple[int, int] | None = None, origin: tuple[int, int] = (0, 0)) -> np.ndarray:
        """The (b, h, w) masks of group ``g`` over a window (the whole frame by default)."""
        h, w = shape or self.header.frame_shape
        return self.header.group_masks(g).window(slice(origin[0], origin[0] + h), slice(origin[1], origin[1] + w))

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
        del d["group_starts"]
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
            noise=hd.noise.to_json() if hd.noise is not None else None,
            noise_sigma=hd.measured_sigma,
            noise_spread=hd.noise_spread,
            groups=[{"start": r.start, "length": len(r)} for r in map(hd.group_frames, range(hd.n_groups))],
            groups_across_cuts=hd.groups_across_cuts,
        )
        return d


@functools.lru_cache(maxsize=4)
def _mask_counts(
    seed: int,
    nb: int,
    unmasked: bool,
    density: float,
    shape: tuple[int, int],
    rows: tuple[int, int, int],
    cols: tuple[int, int, int],
) -> np.ndarray:
    """Frames summed per pixel by ``nb`` masks over a window (read-only).  Kept for the last
    few windows in the process: every group of one length has the same masks, every
    worker task opens its own reader, and a 4k frame's masks take seconds to generate."""
    masks = SeededMasks(seed, nb, shape, unmasked=unmasked, density=density)
    counts = masks.window(slice(*rows), slice(*cols)).sum(axis=0, dtype=np.uint8)
    counts.flags.writeable = False
    return counts


def _write_chunks(ds: h5py.Dataset, g: int, measurement: np.ndarray, level: int) -> None:
    """Write group ``g`` chunk by chunk through the dataset's filters (shuffle, deflate,
    Fletcher-32) applied here, so that deflate can use zlib's run-length strategy: the
    predicted values are mostly small numbers in runs of zero high bytes, which it stores
    in about a fifth fewer bytes than HDF5's default strategy, and as fast.  Any HDF5
    reader inflates the chunks as usual."""
    _, ch, cw = ds.chunks
    H, W = measurement.shape
    block = np.zeros((ch, cw), dtype=ds.dtype.newbyteorder("<"))
    size = block.dtype.itemsize
    for y in range(0, H, ch):
        for x in range(0, W, cw):
            part = measurement[y : y + ch, x : x + cw]
            block[...] = 0  # an edge chunk is stored whole; HDF5 ignores what lies outside the frame
            block[: part.shape[0], : part.shape[1]] = part
            shuffled = block.view(np.uint8).reshape(-1, size).T.tobytes()  # HDF5's shuffle filter
            z = zlib.compressobj(level, zlib.DEFLATED, 15, 9, zlib.Z_RLE)
            data = z.compress(shuffled) + z.flush()
            ds.id.write_direct_chunk((g, y, x), data + _fletcher32(data).to_bytes(4, "little"))


def _fletcher32(data: bytes) -> int:
    """HDF5's Fletcher-32 checksum (H5_checksum_fletcher32): big-endian 16-bit words, sums
    folded every 360 words, an odd last byte as the high byte of a word."""
    a = np.frombuffer(data, dtype=np.uint8)
    n = len(a) // 2
    words = (a[: 2 * n : 2].astype(np.int64) << 8) | a[1 : 2 * n : 2]
    full = n // 360 * 360
    blocks = words[:full].reshape(-1, 360)
    sums, weighted = blocks.sum(axis=1).tolist(), (blocks @ np.arange(360, 0, -1, dtype=np.int64)).tolist()
    if full < n:  # a last, shorter block of m words: weights m .. 1
        tail = words[full:]
        sums.append(int(tail.sum()))
        weighted.append(int(tail @ np.arange(len(tail), 0, -1, dtype=np.int64)))
    s1 = s2 = 0
    for i, (w1, w2) in enumerate(zip(sums, weighted)):
        m = 360 if (i + 1) * 360 <= n else n - i * 360
        s2 = (s2 + m * s1 + w2) & 0xFFFFFFFF
        s1 = (s1 + w1) & 0xFFFFFFFF
        s1, s2 = (s1 & 0xFFFF) + (s1 >> 16), (s2 & 0xFFFF) + (s2 >> 16)
    if len(a) % 2:
        s1 += int(a[-1]) << 8
        s2 += s1
        s1, s2 = (s1 & 0xFFFF) + (s1 >> 16), (s2 & 0xFFFF) + (s2 >> 16)
    s1, s2 = (s1 & 0xFFFF) + (s1 >> 16), (s2 & 0xFFFF) + (s2 >> 16)
    return (s2 << 16) | s1


#: Source pixel types a ``.tcs`` file may name (formats/tcs.md §2).
SOURCE_DTYPES = ("uint8", "uint16", "uint32", "int8", "int16", "int32", "float16", "float32", "float64")
MEASUREMENT_DTYPES = ("uint8", "uint16", "uint32", "uint64")


def _text(value: Any) -> str | None:
    """A string attribute as ``str`` (h5py gives ``str`` or, for fixed-length strings, bytes);
    None for anything else, and for text that is not UTF-8 (h5py hands on such bytes as lone
    surrogates, which printing it would fail on)."""
    if isinstance(value, np.ndarray) and value.shape == ():
        value = value[()]
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return None
    return str(value) if isinstance(value, str) and _utf8(value) else None


def _utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _show(value: Any, limit: int = 60) -> str:
    """``repr(value)`` on one line, shortened: error messages stay one line."""
    text = " ".join(repr(value).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _required(attrs: h5py.AttributeManager, name: str) -> Any:
    if name not in attrs:
        raise ValueError(f"missing attribute {name!r}")
    return attrs[name]


def _string(attrs: h5py.AttributeManager, name: str) -> str:
    value = _text(_required(attrs, name))
    if value is None:
        raise ValueError(f"attribute {name!r} is not a string: {_show(attrs[name])}")
    return value


def _int(attrs: h5py.AttributeManager, name: str) -> int:
    """An integer scalar attribute (not a bool, a float or an array of several values)."""
    value = _required(attrs, name)
    if isinstance(value, np.ndarray) and value.shape in ((), (1,)):
        value = value.reshape(())[()]
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"attribute {name!r} is not an integer: {_show(value)}")
    return int(value)


def _float(attrs: h5py.AttributeManager, name: str) -> float:
    """A real scalar attribute (integers accepted), which must be finite."""
    value = _required(attrs, name)
    if isinstance(value, np.ndarray) and value.shape in ((), (1,)):
        value = value.reshape(())[()]
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"attribute {name!r} is not a number: {_show(value)}")
    if not np.isfinite(value):
        raise ValueError(f"attribute {name!r} is not finite: {_show(value)}")
    return float(value)


def _int_vector(attrs: h5py.AttributeManager, name: str, n: int) -> tuple[int, ...]:
    """An attribute holding exactly ``n`` integers."""
    value = np.asarray(_required(attrs, name))
    if value.shape != (n,) or value.dtype.kind not in "ui":
        raise ValueError(f"attribute {name!r} is not {n} integers: {_show(value)}")
    return tuple(int(v) for v in value)


def _header_problem(hd: TcsHeader, n_groups: int) -> str | None:
    """What makes a header inconsistent with formats/tcs.md, or None.

    Checks what a damaged or hand-edited file could get wrong and a decoder would turn
    into wrong frames or a crash: ranges, the group count, the value map that §4 fixes
    for each source type, the stored type §3 derives from B, L and the coding, the
    measurement coding's parameters and the calibration the output file will carry.
    """
    if hd.B < 2:
        return f"B={hd.B}, must be at least 2"
    if hd.n_frames < hd.B:
        return f"n_frames={hd.n_frames} is less than B={hd.B}"
    if n_groups != hd.n_groups:
        if hd.group_starts is not None:
            return f"n_groups={n_groups}, but {_STARTS} lists {hd.n_groups}"
        return f"n_groups={n_groups}, but {hd.n_frames} frames in groups of {hd.B} make {hd.n_groups}"
    if min(hd.frame_shape) < 1:
        return f"frame_shape={list(hd.frame_shape)}"
    if not 0 <= hd.mask_seed < 2**32:
        return f"mask_seed={hd.mask_seed}, must be in 0..4294967295"
    if hd.source_dtype not in SOURCE_DTYPES:
        return f"unknown source_dtype {_show(hd.source_dtype)}"
    if hd.measurement_dtype not in MEASUREMENT_DTYPES:
        return f"measurement_dtype {_show(hd.measurement_dtype)} is not an unsigned integer type"
    src = np.dtype(hd.source_dtype)
    L, s, o = hd.max_level, hd.value_scale, hd.value_offset
    if src.kind == "i" and hd.relative_signed_levels:
        info = np.iinfo(src)
        if hd.format_version[0] < 3 or s != 1 or o != int(o) or not (info.min <= o and 0 <= L and o + L <= info.max):
            return f"value map L={L}, s={s:g}, o={o:g} is not a range of {src.name} (or needs format 3)"
    elif src.kind in "ui":
        expected = ValueMap.for_source(src)
        if (L, s, o) != (expected.max_level, expected.scale, expected.offset):
            return (
                f"value map L={L}, s={s:g}, o={o:g} is not the one of {src.name} "
                f"(L={expected.max_level}, s={expected.scale:g}, o={expected.offset:g})"
            )
    else:
        top = o + s * L
        limit = float(np.finfo(src).max) * (1 + 1e-9)
        if L != FLOAT_LEVELS or not (s > 0 and abs(o) <= limit and np.isfinite(top) and abs(top) <= limit):
            return f"value map L={L}, s={s:g}, o={o:g} does not fit a {src.name} source"
    try:
        coding = hd.coding
        stored = coding.stored_dtype(accumulator_dtype(L, hd.B), L * hd.B, hd.B)
    except (InputError, ValueError) as exc:
        return str(exc)
    if stored.name != hd.measurement_dtype:
        return f"measurement_dtype {hd.measurement_dtype}, but B={hd.B}, L={L} ({coding.describe()}) give {stored.name}"
    if hd.cuts is not None and any(not 0 < c < hd.n_frames for c in hd.cuts):
        return f"cuts {hd.cuts[:5]} outside frames 1..{hd.n_frames - 1}"
    return _metadata_problem(hd.metadata)


def _layout_problem(B: int, n_frames: int, starts: list[int] | None) -> str | None:
    """What is wrong with a 3.x file's group layout (§3), or None: groups of 1 to B frames,
    in order, from frame 0 to the last."""
    if starts is None:
        return None
    if not starts or starts[0] != 0:
        return f"{_STARTS} must begin with frame 0"
    for a, b in zip(starts, [*starts[1:], n_frames]):
        if not 1 <= b - a <= max(B, 1):
            return f"a group of frames {a}..{b - 1}: groups hold 1 to B={B} frames"
    return None


def _metadata_problem(meta: Any) -> str | None:
    """What is wrong with the metadata attribute (§6), or None: it must be a JSON object of
    UTF-8 text (no lone surrogates from escapes) and its calibration must be usable."""
    if not isinstance(meta, dict):
        return f"metadata is not a JSON object: {type(meta).__name__}"
    if not _utf8(json.dumps(meta, ensure_ascii=False)):
        return "metadata holds text that is not UTF-8"
    size = meta.get("pixel_size")
    if size is not None and not (isinstance(size, list) and len(size) == 2 and all(_positive_number(v) for v in size)):
        return f"pixel_size {_show(size)} is not two positive numbers"
    if not isinstance(meta.get("pixel_unit"), (str, type(None))):
        return f"pixel_unit {_show(meta['pixel_unit'])} is not a string"
    interval = meta.get("frame_interval")
    if interval is not None and not _positive_number(interval):
        return f"frame_interval {_show(interval)} is not a positive number"
    return None


def _positive_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0


def _chunk_ranges(ds: h5py.Dataset, file_size: int) -> list[tuple[int, int]] | str:
    """Sorted (start, stop) byte ranges of the chunks of ``ds``, or what is wrong with its chunk index."""
    if ds.chunks is None:  # contiguous: not written by emtcs, but readable
        offset = ds.id.get_offset()
        return [] if offset is None else [(int(offset), int(offset) + int(ds.id.get_storage_size()))]
    if ds.ndim != 3:
        return []  # malformed: the shape check reports it
    seen: dict[tuple[int, ...], tuple[int, int]] = {}
    problems: list[str] = []
    # HDF5 reads outside its buffer (and can crash) when a checksummed chunk is shorter
    # than the checksum; a gzip stream takes at least 8 bytes
    smallest = max(1, 4 * bool(ds.fletcher32) + 8 * (ds.compression == "gzip"))

    def visit(info: Any) -> None:
        offset = tuple(int(v) for v in info.chunk_offset)
        if offset in seen:
            problems.append(f"chunk {offset} listed twice")
        if info.filter_mask != 0:
            problems.append(f"chunk {offset} skips a filter")
        if info.size < smallest:
            problems.append(f"chunk {offset} of {info.size} bytes")
        if info.byte_offset is None or info.byte_offset < 0 or info.byte_offset + info.size > file_size:
            problems.append(f"chunk {offset} lies outside the file")
        seen[offset] = (int(info.byte_offset or 0), int(info.byte_offset or 0) + int(info.size))

    try:
        if hasattr(ds.id, "chunk_iter"):
            ds.id.chunk_iter(visit)
        else:  # HDF5 < 1.14
            for i in range(ds.id.get_num_chunks()):
                visit(ds.id.get_chunk_info(i))
    except (OSError, ValueError, RuntimeError) as exc:
        return _h5_reason(exc)
    if problems:
        return problems[0]
    grid = [range(0, n, c) for n, c in zip(ds.shape, ds.chunks)]
    expected = {(g, y, x) for g in grid[0] for y in grid[1] for x in grid[2]}
    if set(seen) != expected:
        missing = sorted(expected - set(seen))
        return f"chunk {missing[0]} missing" if missing else f"unexpected chunk {sorted(set(seen) - expected)[0]}"
    ranges = sorted(seen.values())
    for (_, stop), (start, _) in zip(ranges, ranges[1:]):
        if start < stop:
            return "chunks overlap"
    return ranges


def _variable_length(attrs: h5py.AttributeManager, name: str) -> bool:
    """Whether an attribute's values live in the global heap (its type says so; the heap
    is not read)."""
    kind = attrs.get_id(name).get_type()
    return isinstance(kind, h5py.h5t.TypeVlenID) or (isinstance(kind, h5py.h5t.TypeStringID) and kind.is_variable_str())


_GCOL = b"GCOL"
_GCOL_HEADER = 16  # signature, version, 3 reserved bytes, collection size (8-byte lengths)
_GCOL_MIN = 4096


def _scan_global_heaps(path: Path, file_size: int, data: list[tuple[int, int]], length_size: int) -> str | None:
    """Walk every global heap collection in the file as HDF5 does, or say what is wrong with
    one (the format has no checksum there).  Collections are found by their signature
    outside the raw ``data`` ranges (measurements that could hold any bytes); a signature
    without a version-1 header is left to HDF5, which refuses it."""
    if length_size != 8:
        return None  # not written by emtcs; left to HDF5
    gaps, pos = [], 0
    for start, stop in data:
        if start > pos:
            gaps.append((pos, start))
        pos = max(pos, stop)
    gaps.append((pos, file_size))
    checked = 0  # end of the last collection walked: signatures inside it are string data
    with open(path, "rb") as fh:
        for start, stop in gaps:
            fh.seek(start)
            region = fh.read(stop - start)
            at = region.find(_GCOL)
            while at >= 0:
                if start + at >= checked:
                    problem, end = _check_collection(fh, start + at, file_size)
                    if problem:
                        return problem
                    checked = max(checked, end)
                at = region.find(_GCOL, at + 1)
    return None


def _check_collection(fh: Any, addr: int, file_size: int) -> tuple[str | None, int]:
    """(what is wrong with the global heap collection at ``addr`` or None, its end)."""
    fh.seek(addr)
    head = fh.read(_GCOL_HEADER)
    if len(head) < _GCOL_HEADER or head[4] != 1:
        return None, addr  # not a collection header
    size = int.from_bytes(head[8:16], "little")
    if size < _GCOL_MIN or addr + size > file_size:
        return f"global heap at {addr}: size {size}", addr
    fh.seek(addr)
    heap = fh.read(size)
    p = _GCOL_HEADER
    while p + 16 <= size:  # less than an object header left: free space
        index = int.from_bytes(heap[p : p + 2], "little")
        length = int.from_bytes(heap[p + 8 : p + 16], "little")
        need = 16 + (length + 7) // 8 * 8 if index > 0 else length
        if need < 16 or p + need > size:  # a free-space object of size 0 makes HDF5 loop forever
            return f"global heap at {addr}: object {index} of {length} bytes at {p}", addr
        p += need
    return None, addr + size


def _h5_reason(exc: Exception) -> str:
    text = str(exc)
    if "not allocated" in text:
        return "chunk missing from the index"
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


def check_readable(path: str | os.PathLike[str], progress: Callable[[int], None] | None = None) -> str | None:
    """Read every measurement of a ``.tcs`` file back as a decoder would (header, layout,
    every chunk's Fletcher-32 checksum, the predicted values, finite sums): None where all
    of it reads, else what is wrong, in one line.  For archives, after a copy or a restore.
    ``progress`` is called with 1 after each group."""
    try:
        with TcsReader(path) as reader:
            for g in range(reader.n_groups):
                if not np.isfinite(reader.measurement(g)).all():
                    return f"{path}: group {g} holds values that are not finite"
                if progress is not None:
                    progress(1)
    except EmtcsError as exc:
        return str(exc)
    return None
