"""Reading and writing movies: one reader per file format, chosen by content and extension.

Readers stream (frames, height, width) greyscale stacks one frame at a time and
describe the source's calibration in a small normalised metadata dict (see
:class:`MovieReader`).  Writers take frames in order, or rows of frames at any place
(the decoder stitches row bands), through a memory-mapped output.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import numpy.typing  # noqa: F401

from ..errors import InputError
from .base import MovieReader
from .tiff import TiffMovieReader, TiffMovieWriter

__all__ = ["MovieReader", "open_movie", "create_movie", "check_writable", "TiffMovieReader", "TiffMovieWriter"]

def open_movie(path: str | os.PathLike[str]) -> MovieReader:
    """Open a movie file for frame-by-frame reading."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file")
    if path.is_dir():
        raise InputError(f"{path} is a directory, not a movie file")
    try:
        with open(path, "rb") as fh:
            magic = fh.read(4)
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror})") from None
    if magic[:2] in (b"II", b"MM"):
        return TiffMovieReader(path)
    raise InputError(f"{path}: not a TIFF file (emtcs reads TIFF stacks: multi-page, ImageJ or OME-TIFF)")


WRITABLE_SUFFIXES = (".tif", ".tiff", ".btf")


def check_writable(name: str | os.PathLike[str]) -> None:
    """Raise :class:`InputError` if no writer handles the extension of ``name``."""
    suffix = Path(name).suffix.lower()
    if suffix not in WRITABLE_SUFFIXES:
        raise InputError(f"cannot write {Path(name).name}: unknown output format {suffix!r} (use .tif)")


def create_movie(
    path: str | os.PathLike[str],
    shape: tuple[int, int, int],
    dtype: np.typing.DTypeLike,
    metadata: dict,
    *,
    name: str | os.PathLike[str] | None = None,
) -> TiffMovieWriter:
    """Create a movie file for writing; the format follows the extension of ``name`` (or ``path``)."""
    check_writable(name or path)
    return TiffMovieWriter(path, shape, dtype, metadata)
