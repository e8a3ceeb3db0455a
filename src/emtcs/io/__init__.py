"""Reading and writing movies: one reader per file format, chosen by content and extension.

Readers stream (frames, height, width) greyscale stacks one frame at a time and
describe the source's calibration in a small normalised metadata dict (see
:func:`normalised_metadata`).  Writers take frames in order, or rows of frames at any
place (the decoder stitches row bands), into a file laid out in full when created.

TIFF is built in; MRC, DM3/DM4, Velox and Berkeley EMD and TIA SER need the
``formats`` extra (mrcfile, RosettaSciIO, ncempy), imported when such a file is met.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing  # noqa: F401

from ..errors import InputError, OutputError
from .base import MovieReader, MovieWriter, normalised_metadata
from .mrc import MRC_SUFFIXES, require_mrcfile
from .tiff import TiffMovieReader, TiffMovieWriter

__all__ = [
    "MovieReader",
    "MovieWriter",
    "normalised_metadata",
    "open_movie",
    "detect_format",
    "create_movie",
    "check_writable",
    "TiffMovieReader",
    "TiffMovieWriter",
]

_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
_TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")  # classic and BigTIFF
_SER_MAGIC = b"II\x97\x01"  # little-endian byte order mark, then series id 0x0197
#: What a file with this extension should have been, for the "not a ... file" message.
_EXPECTED = {
    ".tif": "TIFF",
    ".tiff": "TIFF",
    ".btf": "TIFF",
    ".dm3": "DM3",
    ".dm4": "DM4",
    ".emd": "EMD",
    ".ser": "SER",
    **{s: "MRC" for s in MRC_SUFFIXES},
}
READABLE = "TIFF, MRC/MRCS, DM3/DM4, Velox or Berkeley EMD, TIA SER"


def detect_format(path: str | os.PathLike[str]) -> str:
    """The format of a movie file from its first bytes (then its extension):
    ``tiff``, ``mrc``, ``dm``, ``ser``, ``velox``, ``berkeley-emd``; :class:`InputError` otherwise."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file")
    if path.is_dir():
        raise InputError(f"{path} is a directory, not a movie file")
    try:
        with open(path, "rb") as fh:
            head = fh.read(1024)
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror})") from None
    suffix = path.suffix.lower()
    if head[:4] in _TIFF_MAGIC:
        return "tiff"
    if head[:4] == _SER_MAGIC:
        return "ser"
    if head[:4] in (b"\x00\x00\x00\x03", b"\x00\x00\x00\x04") and suffix in (".dm3", ".dm4", ""):
        return "dm"
    if head[:8] == _HDF5_MAGIC:
        return _hdf5_format(path)
    if head[208:211] == b"MAP" or (suffix in MRC_SUFFIXES and len(head) >= 1024):
        return "mrc"
    if suffix == ".emi":
        raise InputError(
            f"{path}: an .emi file holds only metadata; give the .ser file beside it ({path.stem}_1.ser, ...)"
        )
    expected = _EXPECTED.get(suffix)
    if expected:
        raise InputError(f"{path}: not a {expected} file (emtcs reads {READABLE})")
    raise InputError(f"{path}: not a movie file emtcs can read ({READABLE})")


def _hdf5_format(path: Path) -> str:
    """Velox EMD, Berkeley EMD, or an error naming what the HDF5 file is."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            if f.attrs.get("format") in ("emtcs.tcs", b"emtcs.tcs"):  # variable- or fixed-length (tcs.md §1)
                raise InputError(f"{path} is a .tcs file already (emtcs decompress reads it)")
            if "Version" in f and isinstance(f["Version"], h5py.Dataset):
                try:
                    version = json.loads(bytes(f["Version"][0]).decode("utf-8"))
                except (ValueError, TypeError, IndexError):
                    version = {}
                if version.get("format") in ("Velox", "DevelopersKit"):
                    return "velox"
            if "version_major" in f.attrs or _has_emd_group(f):
                return "berkeley-emd"
    except OSError as exc:
        raise InputError(f"{path}: unreadable HDF5 file ({exc})") from None
    raise InputError(f"{path}: an HDF5 file, but neither a Velox nor a Berkeley EMD file")


def _has_emd_group(f: Any) -> bool:
    data = f.get("data")
    return data is not None and any("emd_group_type" in g.attrs for g in data.values())


def open_movie(path: str | os.PathLike[str]) -> MovieReader:
    """Open a movie file for frame-by-frame reading; the reader follows the file's content."""
    path = Path(path)
    kind = detect_format(path)
    if kind == "tiff":
        return TiffMovieReader(path)
    if kind == "mrc":
        from .mrc import MrcMovieReader

        return MrcMovieReader(path)
    if kind in ("dm", "velox"):
        from .rsciio import RsciioMovieReader

        return RsciioMovieReader(path, kind)
    if kind == "ser":
        from .ncem import SerMovieReader

        return SerMovieReader(path)
    from .ncem import BerkeleyEmdMovieReader

    return BerkeleyEmdMovieReader(path)


_TIFF_SUFFIXES = (".tif", ".tiff", ".btf")
WRITABLE_SUFFIXES = (*_TIFF_SUFFIXES, ".mrc", ".mrcs")


def check_writable(name: str | os.PathLike[str], *, tiff_only: bool = False) -> None:
    """Raise :class:`InputError` if no writer handles the extension of ``name`` (or its
    optional dependency is missing)."""
    if Path(name).is_dir():
        raise OutputError(f"{name} is a directory")
    suffix = Path(name).suffix.lower()
    allowed = _TIFF_SUFFIXES if tiff_only else WRITABLE_SUFFIXES
    if suffix not in allowed:
        use = ".tif" if tiff_only else ".tif or .mrc"
        raise InputError(f"cannot write {Path(name).name}: unknown output format {suffix!r} (use {use})")
    if suffix not in _TIFF_SUFFIXES:
        require_mrcfile()


def create_movie(
    path: str | os.PathLike[str],
    shape: tuple[int, int, int],
    dtype: np.typing.DTypeLike,
    metadata: dict,
    *,
    name: str | os.PathLike[str] | None = None,
) -> MovieWriter:
    """Create a movie file for writing; the format follows the extension of ``name`` (or ``path``)."""
    check_writable(name or path)
    if Path(name or path).suffix.lower() in _TIFF_SUFFIXES:
        return TiffMovieWriter(path, shape, dtype, metadata)
    from .mrc import MrcMovieWriter

    return MrcMovieWriter(path, shape, dtype, metadata)
