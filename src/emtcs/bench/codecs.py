"""The competing still-image codecs (through imagecodecs) and the search for the setting
that fits a byte budget.

Every codec codes each frame on its own at one setting of its quality knob.  Frames
reach it as integer codes (:class:`CodeMap`): the values minus the movie's minimum,
or the movie's value range [lo, hi] stretched linearly onto the codec's input range
0 .. 2**bits - 1.  Each codec gets the form that serves it: JPEG 2000, HTJ2K and
JPEG XL set their quality relative to the code range, so a narrow range is
stretched; libjpeg's quantisation tables are absolute, so JPEG gets the values as
they are (stretched onto 12 bits, even quality 1 would not fit a TCS budget).
Values that do not fit the code range are always stretched, which quantises them
before coding; the results say so.
"""

from __future__ import annotations

import math
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from ..errors import InputError

__all__ = [
    "ALIASES",
    "CODECS",
    "CodeMap",
    "Codec",
    "Coded",
    "Fit",
    "Knob",
    "codec_names",
    "fit_budget",
    "get_codec",
    "to_source",
]


def _imagecodecs() -> Any:
    try:
        import imagecodecs
    except ImportError:
        raise InputError("emtcs bench needs imagecodecs: pip install 'emtcs[bench]'") from None
    return imagecodecs


@dataclass(frozen=True)
class Knob:
    """A codec's quality setting, walked from its lowest-quality end ``low`` to ``high``.

    Positions run over 0 .. ``high - low`` for integer knobs and over [0, 1] for
    continuous ones (geometrically when ``log``), so one search serves every codec.
    """

    name: str
    short: str
    low: float
    high: float
    integer: bool = False
    log: bool = False

    @property
    def span(self) -> float:
        return abs(self.high - self.low) if self.integer else 1.0

    def at(self, x: float) -> float:
        """The setting at position ``x``."""
        if self.integer:
            return self.low + math.copysign(round(x), self.high - self.low)
        if self.log:
            return self.low * (self.high / self.low) ** x
        return self.low + (self.high - self.low) * x

    def split(self, lo: float, hi: float, frac: float) -> float | None:
        """A position strictly inside (lo, hi) at ``frac`` of the way; None when none is left."""
        x = lo + (hi - lo) * frac
        if self.integer:
            return min(max(round(x), lo + 1), hi - 1) if hi - lo > 1 else None
        return x if hi - lo > 1e-4 else None


@dataclass(frozen=True)
class CodeMap:
    """Source values -> codes 0 .. 2**bits - 1: ``(value - lo) * scale``, rounded.

    ``scale`` is 1 when ``stretch`` is off and an integer source's range fits the
    codes; otherwise the range [lo, hi] is stretched onto all the codes.
    """

    lo: float
    hi: float
    bits: int
    integer: bool = True
    stretch: bool = True

    @property
    def top(self) -> int:
        return (1 << self.bits) - 1

    @property
    def scale(self) -> float:
        if self.hi <= self.lo:
            return 0.0
        if not self.stretch and self.integer and self.hi - self.lo <= self.top:
            return 1.0
        return self.top / (self.hi - self.lo)

    def encode(self, frame: np.ndarray) -> np.ndarray:
        """Source frame -> codes (uint8 up to 8 bits, else uint16)."""
        codes = np.rint((np.asarray(frame, dtype=np.float64) - self.lo) * self.scale)
        return np.clip(codes, 0, self.top).astype(np.uint8 if self.bits <= 8 else np.uint16)

    def decode(self, codes: np.ndarray) -> np.ndarray:
        """Codes -> source values (float64); a constant movie comes back as its one value."""
        if not self.scale:
            return np.full(codes.shape, self.lo)
        return codes.astype(np.float64) / self.scale + self.lo

    @property
    def exact(self) -> bool:
        """Whether the codes hold every value of an integer source exactly."""
        return self.integer and self.hi - self.lo <= self.top

    def describe(self) -> str:
        kind = "exact" if self.exact else "quantised before coding"
        how = "shifted" if self.scale == 1.0 else "stretched"
        return (
            f"values {self.lo:g}..{self.hi:g} {how} to {0}..{round((self.hi - self.lo) * self.scale)} "
            f"of {self.bits}-bit codes ({kind})"
        )


def to_source(values: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Float values in the source's dtype, rounded and clipped as emtcs writes its output."""
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return values.astype(dtype)
    info = np.iinfo(dtype)
    return np.clip(np.rint(values), info.min, info.max).astype(dtype)


@dataclass
class Coded:
    """A codec at its setting for a budget: bytes per frame, decoded frames and times.

    ``value`` is None when even its lowest-quality setting exceeds the budget; then
    ``sizes`` holds that setting's bytes per frame and nothing was decoded.
    """

    value: float | None
    sizes: list[int]
    decoded: np.ndarray | None
    encode_s: float | None
    decode_s: float | None
    evaluations: int
    cmap: CodeMap

    @property
    def nbytes(self) -> int:
        return sum(self.sizes)


class Codec(ABC):
    """A still-image codec: a name, its library and version, one quality knob, encode/decode.

    :meth:`at_budget` is the one measuring method: the best setting within a byte
    budget, every frame encoded and decoded at it, timed.
    """

    name: ClassVar[str]
    title: ClassVar[str]
    knob: ClassVar[Knob]
    #: Stretch a narrow value range onto the whole code range (see the module docstring).
    stretch: ClassVar[bool] = True
    #: imagecodecs names: the codec's class (``.available``) and its version function.
    _imagecodecs: ClassVar[tuple[str, str]]
    #: Encoder options other than the knob, recorded in the results.
    options: ClassVar[dict[str, Any]] = {}

    def bits(self, dtype: np.dtype) -> int:
        """Bit depth of the codes this codec is fed for a source of ``dtype``."""
        return 8 if np.dtype(dtype).itemsize == 1 else 16

    @abstractmethod
    def encode(self, codes: np.ndarray, value: float) -> bytes:
        """One frame of codes at setting ``value``."""

    @abstractmethod
    def decode(self, data: bytes) -> np.ndarray:
        """Codes of one frame."""

    def unavailable(self) -> str | None:
        """Why this codec cannot run here, or None."""
        ic = _imagecodecs()
        return (
            None
            if getattr(getattr(ic, self._imagecodecs[0]), "available", False) is True
            else f"imagecodecs {ic.__version__} was built without {self.title}"
        )

    def library(self) -> str:
        ic = _imagecodecs()
        try:
            version = getattr(ic, self._imagecodecs[1])()
        except Exception:  # noqa: BLE001 - a codec missing from the build has no version
            version = "not available"
        return f"{version} (imagecodecs {ic.__version__})"

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "title": self.title,
            "library": self.library(),
            "knob": self.knob.name,
            "options": dict(self.options),
            "stretch": self.stretch,
        }

    def code_map(self, lo: float, hi: float, dtype: np.dtype) -> CodeMap:
        return CodeMap(lo, hi, self.bits(dtype), np.dtype(dtype).kind in "ui", self.stretch)

    def at_budget(self, frames: np.ndarray, budget: int, *, lo: float | None = None, hi: float | None = None) -> Coded:
        """Every frame coded at the best setting whose total bytes fit ``budget``, decoded, timed.

        ``lo``/``hi`` is the value range of the codes (default: the frames').  The
        encode time is the mapping to codes plus the encoding at the chosen setting.
        """
        cmap = self.code_map(
            float(frames.min()) if lo is None else lo, float(frames.max()) if hi is None else hi, frames.dtype
        )
        t0 = time.perf_counter()
        codes = [cmap.encode(f) for f in frames]
        map_s = time.perf_counter() - t0
        best: dict[str, Any] = {}

        def total_bytes(value: float) -> int:
            t0 = time.perf_counter()
            payloads = [self.encode(c, value) for c in codes]
            seconds = time.perf_counter() - t0
            size = sum(len(p) for p in payloads)
            if size <= budget or not best:
                best.update(payloads=payloads, seconds=seconds)
            return size

        fit = fit_budget(total_bytes, self.knob, budget)
        sizes = [len(p) for p in best["payloads"]]
        if fit.value is None:
            return Coded(None, sizes, None, None, None, fit.evaluations, cmap)
        t0 = time.perf_counter()
        decoded = np.empty_like(frames)
        for k, data in enumerate(best["payloads"]):
            decoded[k] = to_source(cmap.decode(self.decode(data)), frames.dtype)
        decode_s = time.perf_counter() - t0
        return Coded(fit.value, sizes, decoded, map_s + best["seconds"], decode_s, fit.evaluations, cmap)


class Jpeg8(Codec):
    name = "jpeg8"
    title = "JPEG (8-bit)"
    knob = Knob("quality", "q", 1, 100, integer=True)
    stretch = False
    _imagecodecs = ("JPEG8", "jpeg8_version")
    options: ClassVar[dict[str, Any]] = {"optimize": True}

    def bits(self, dtype: np.dtype) -> int:
        return 8

    def encode(self, codes: np.ndarray, value: float) -> bytes:
        return _imagecodecs().jpeg8_encode(codes, level=int(value), **self.options)

    def decode(self, data: bytes) -> np.ndarray:
        return _imagecodecs().jpeg8_decode(data)


class Jpeg12(Jpeg8):
    name = "jpeg12"
    title = "JPEG (12-bit)"
    options: ClassVar[dict[str, Any]] = {"optimize": True, "bitspersample": 12}

    def bits(self, dtype: np.dtype) -> int:
        return 12


class Jpeg2k(Codec):
    name = "jpeg2k"
    title = "JPEG 2000"
    # OpenJPEG's fixed-quality mode: the level is a PSNR target in dB over the code range.
    knob = Knob("psnr_target_db", "dB", 1.0, 160.0)
    _imagecodecs = ("JPEG2K", "jpeg2k_version")
    options: ClassVar[dict[str, Any]] = {"codecformat": "J2K", "numthreads": 1}

    def encode(self, codes: np.ndarray, value: float) -> bytes:
        return _imagecodecs().jpeg2k_encode(codes, level=float(value), **self.options)

    def decode(self, data: bytes) -> np.ndarray:
        return _imagecodecs().jpeg2k_decode(data, numthreads=1)


class Htj2k(Codec):
    name = "htj2k"
    title = "HTJ2K"
    # OpenJPH's quantisation step, relative to the code range: smaller is finer.
    knob = Knob("qstep", "qstep", 1.0, 1e-6, log=True)
    _imagecodecs = ("HTJ2K", "htj2k_version")

    def encode(self, codes: np.ndarray, value: float) -> bytes:
        return _imagecodecs().htj2k_encode(codes, level=float(value))

    def decode(self, data: bytes) -> np.ndarray:
        return _imagecodecs().htj2k_decode(data)


class JpegXl(Codec):
    name = "jpegxl"
    title = "JPEG XL"
    # libjxl's Butteraugli distance: 25 is the coarsest, 0.01 the finest lossy setting.
    knob = Knob("distance", "d", 25.0, 0.01, log=True)
    _imagecodecs = ("JPEGXL", "jpegxl_version")
    options: ClassVar[dict[str, Any]] = {"numthreads": 1}

    def encode(self, codes: np.ndarray, value: float) -> bytes:
        return _imagecodecs().jpegxl_encode(codes, distance=float(value), **self.options)

    def decode(self, data: bytes) -> np.ndarray:
        return _imagecodecs().jpegxl_decode(data, numthreads=1)


CODECS: dict[str, type[Codec]] = {c.name: c for c in (Jpeg8, Jpeg12, Jpeg2k, Htj2k, JpegXl)}
#: ``jpeg`` is 8-bit JPEG, plus 12-bit JPEG for sources deeper than 8 bits (as in the paper).
ALIASES = {"jpeg": ("jpeg8", "jpeg12")}


def codec_names(spec: list[str] | tuple[str, ...], dtype: np.dtype) -> list[str]:
    """Codec ids for a ``--codecs`` list, aliases expanded for a source of ``dtype``, in order."""
    names: list[str] = []
    for item in spec:
        if item in ALIASES:
            expanded = [n for n in ALIASES[item] if n != "jpeg12" or np.dtype(dtype).itemsize > 1]
        elif item in CODECS:
            expanded = [item]
        else:
            raise InputError(f"unknown codec {item!r}; choose from {', '.join([*ALIASES, *CODECS])}")
        names += [n for n in expanded if n not in names]
    return names


def get_codec(name: str) -> Codec:
    return CODECS[name]()


@dataclass(frozen=True)
class Fit:
    """The best setting whose total bytes stay within the budget (None: even the lowest does not)."""

    value: float | None
    nbytes: int
    evaluations: int


def fit_budget(
    total_bytes: Callable[[float], int], knob: Knob, budget: int, *, rtol: float = 0.01, max_evaluations: int = 16
) -> Fit:
    """Highest-quality setting of ``knob`` whose ``total_bytes`` do not exceed ``budget``.

    Bisection on the knob position between a setting known to fit and one known not
    to; the split point is interpolated on log(bytes) (kept in the middle 80 % of the
    bracket), which cuts the number of encodes.  Stops when the fitting setting uses
    at least ``1 - rtol`` of the budget, when integer settings are adjacent, or after
    ``max_evaluations``.  Only settings actually measured to fit are returned.
    """
    lo, hi = 0.0, knob.span
    size_lo = total_bytes(knob.at(lo))
    if size_lo > budget:
        return Fit(None, size_lo, 1)
    size_hi = total_bytes(knob.at(hi))
    if size_hi <= budget:
        return Fit(knob.at(hi), size_hi, 2)
    evaluations = 2
    while evaluations < max_evaluations and size_lo < (1 - rtol) * budget:
        if size_hi > size_lo > 0:
            frac = math.log(budget / size_lo) / math.log(size_hi / size_lo)
        else:
            frac = 0.5
        x = knob.split(lo, hi, min(max(frac, 0.1), 0.9))
        if x is None:
            break
        size = total_bytes(knob.at(x))
        evaluations += 1
        if size <= budget:
            lo, size_lo = x, size
        else:
            hi, size_hi = x, size
    return Fit(knob.at(lo), size_lo, evaluations)
