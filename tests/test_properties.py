"""Property-based tests (hypothesis) of the public API.

1. The ``.tcs`` reader against damaged files: real small files (exact and quantised
   coding, several source types) with random byte flips, truncations, HDF5 attribute
   edits and replaced datasets.  Decompressing one either raises an
   :class:`emtcs.errors.EmtcsError` with a one-line message, leaving no output behind,
   or gives exactly the frames of the undamaged file.  The only exception are edits
   that make another valid file (formats/tcs.md): a different mask seed, B, value map,
   ... cannot be told from a genuine file, so there any clean outcome is accepted.
   :func:`spec_header` decides that from the specification alone.
2. compress -> decompress round trips over frame counts, B, frame shapes (1 x n,
   n x 1, sizes that are no multiple of the tile), pixel types and value ranges; a
   ``frames="a:b"`` decode gives the same frames as the full decode.

Bounded to about a minute on one core.  ``benchmarks/property_campaign.py`` runs the same
properties with many more examples (it sets ``EMTCS_PROPERTY_EXAMPLES``).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
import tifffile
from click.testing import CliRunner
from hypothesis import HealthCheck, assume, event, given, note, settings
from hypothesis import strategies as st
from hypothesis.control import currently_in_test_context

import emtcs
from emtcs.cli import main
from emtcs.errors import EmtcsError, InputError

#: Examples per property for a campaign (benchmarks/property_campaign.py); unset: each
#: property's own small number, so that this file runs in about a minute.
CAMPAIGN_EXAMPLES = int(os.environ.get("EMTCS_PROPERTY_EXAMPLES", "0"))


def budget(examples: int) -> settings:
    return settings(
        max_examples=CAMPAIGN_EXAMPLES or examples,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
    )


#: Decoding settings of the reader properties: a few cheap GAP-TV iterations, small tiles.
FAST = {"decoder": "gaptv", "decoder_options": {"iterations": 3}, "tile": 16, "overlap": 4}


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if "emtcs-part" in p.name)


@contextmanager
def scratch() -> Iterator[Path]:
    """A fresh folder per example (function-scoped fixtures do not reset between examples)."""
    with tempfile.TemporaryDirectory(prefix="emtcs-prop-") as d:
        yield Path(d)


# -- the specification, as an oracle ---------------------------------------------------

SOURCE_TYPES = ("uint8", "uint16", "uint32", "int8", "int16", "int32", "float16", "float32", "float64")
STORED_TYPES = ("uint8", "uint16", "uint32", "uint64")


def _scalar(v: Any, kinds: str) -> Any:
    """A numpy/Python scalar of one of the numpy ``kinds`` (arrays of one value too), else None."""
    a = np.asarray(v)
    if a.size != 1 or a.ndim > 1 or a.dtype.kind not in kinds:
        return None
    return a.reshape(()).item()


def _string(v: Any) -> str | None:
    """UTF-8 text (h5py gives undecodable bytes of a string as lone surrogates), else None."""
    try:
        if isinstance(v, bytes):
            return v.decode("utf-8")
        if isinstance(v, str):
            v.encode("utf-8")  # raises on lone surrogates; an empty string is still a string
            return v
        return None
    except UnicodeError:
        return None


def _anscombe_q(y: int, step: float, gain: float) -> int:
    return math.floor(2 * math.sqrt(y / gain + 0.375) / step + 0.5)


#: The noise model's attributes (formats/tcs.md §10): they decide what the decoders are told.
NOISE_ATTRS = ("noise_gain", "noise_offset", "noise_read_noise", "noise_sigma")


def spec_header(path: Path) -> tuple | None:
    """What formats/tcs.md says a conforming reader decodes ``path`` as: the tuple of every
    header value that decides the frames, or None when the file breaks a rule of the
    specification (a reader must then refuse it, or decode the original frames anyway).

    Written from the specification, independently of emtcs.container.
    """
    if not _global_heaps_parse(path.read_bytes()):
        return None  # HDF5 itself could hang reading the strings
    try:
        f = h5py.File(path, "r")
    except Exception:  # noqa: BLE001 - not HDF5 at all
        return None
    with f:
        try:
            a = {k: f.attrs[k] for k in f.attrs}
        except Exception:  # noqa: BLE001
            return None
        if _string(a.get("format")) != "emtcs.tcs":
            return None
        version = np.asarray(a.get("format_version"))
        if version.shape != (2,) or version.dtype.kind not in "ui" or int(version[0]) not in (1, 2, 3, 4):
            return None
        major = int(version[0])
        complete = a.get("complete")
        if not (isinstance(complete, (bool, np.bool_)) and complete):
            return None
        ints = {k: _scalar(a.get(k), "iu") for k in ("B", "n_frames", "n_groups", "max_level", "mask_seed")}
        if any(v is None for v in ints.values()):
            return None
        B, N, G, L, seed = (ints[k] for k in ("B", "n_frames", "n_groups", "max_level", "mask_seed"))
        if B < 2 or N < B or not 0 <= seed < 2**32:
            return None
        if major < 3:
            if G != -(-N // B):  # before listing the starts: a damaged n_frames may be 2**31
                return None
            starts = list(range(0, N, B))
        else:
            ds = f.get("group_starts")
            if not isinstance(ds, h5py.Dataset) or ds.ndim != 1 or ds.dtype.kind not in "iu" or ds.shape[0] > N:
                return None
            try:
                starts = [int(v) for v in ds[()]]
            except Exception:  # noqa: BLE001
                return None
            if not starts or starts[0] != 0:
                return None
            if any(not 1 <= b - a <= B for a, b in zip(starts, [*starts[1:], N])):
                return None
        if G != len(starts):
            return None
        shape = np.asarray(a.get("frame_shape"))
        if shape.shape != (2,) or shape.dtype.kind not in "iu" or min(shape) < 1:
            return None
        H, W = (int(v) for v in shape)
        src, stored = _string(a.get("source_dtype")), _string(a.get("measurement_dtype"))
        if src not in SOURCE_TYPES or stored not in STORED_TYPES:
            return None
        s, o = _scalar(a.get("value_scale"), "iuf"), _scalar(a.get("value_offset"), "iuf")
        if s is None or o is None or not (math.isfinite(s) and math.isfinite(o)):
            return None
        dt = np.dtype(src)
        if dt.kind == "u" and (L, s, o) != (2 ** (8 * dt.itemsize) - 1, 1, 0):
            return None
        if dt.kind == "i" and (L, s, o) != (2 ** (8 * dt.itemsize) - 1, 1, -(2 ** (8 * dt.itemsize - 1))):
            lo, hi = -(2 ** (8 * dt.itemsize - 1)), 2 ** (8 * dt.itemsize - 1) - 1
            if major < 3 or s != 1 or o != int(o) or not (lo <= o and 0 <= L and o + L <= hi):
                return None  # 3.x: levels relative to the movie's range
        if dt.kind == "f":
            top, limit = o + s * L, float(np.finfo(dt).max)
            if L != 65535 or not s > 0 or not (abs(o) <= limit and math.isfinite(top) and abs(top) <= limit):
                return None
        if _string(a.get("mask_generator")) != "emtcs-hash32-v1":
            return None
        for name in ("software", "created", "source_name", "metadata"):
            if _string(a.get(name)) is None:
                return None
        try:
            meta = json.loads(_string(a["metadata"]))
        except ValueError:
            return None
        if not isinstance(meta, dict) or _string(json.dumps(meta, ensure_ascii=False)) is None:
            return None
        coding: tuple = ("exact",)
        if major >= 2:
            name = _string(a.get("measurement_coding"))
            if name not in ("exact", "anscombe-v1"):
                return None
            if name == "anscombe-v1":
                step, gain = _scalar(a.get("quant_step"), "iuf"), _scalar(a.get("quant_gain"), "iuf")
                if step is None or gain is None or not (0 < step < math.inf and 0 < gain < math.inf):
                    return None
                coding = (name, float(step), float(gain))
        top = B * L if coding[0] == "exact" else _anscombe_q(B * L, coding[1], coding[2])
        smallest = next((t for t in STORED_TYPES if top <= np.iinfo(t).max), None)
        if stored != smallest:
            return None
        prediction = _string(a.get("measurement_prediction")) if major >= 4 else "none"
        if prediction not in ("none", "rows-v1") or (prediction != "none" and stored == "uint64"):
            return None
        ds = f.get("measurements")
        if not isinstance(ds, h5py.Dataset) or ds.shape != (G, H, W):
            return None
        if ds.dtype.kind != "u" or ds.dtype.itemsize != np.dtype(stored).itemsize:
            return None
        sizes: list[int] = []
        try:
            if ds.chunks is not None:
                ds.id.chunk_iter(lambda info: sizes.append(info.size))
            if ds.fletcher32 and min(sizes, default=4) < 4:
                return None  # HDF5 reads outside its buffer on such a chunk (and may crash)
            data = ds[()]
        except Exception:  # noqa: BLE001 - unreadable (checksum): a reader must refuse it
            return None
        layout = (tuple(starts), major >= 3)  # 3.x stores a group of one frame unmasked
        # §10: what the decoders are told of the noise (the noise-aware GAP-TV depends on it)
        noise = tuple(_scalar(a.get(k), "iuf") for k in NOISE_ATTRS)
        frames = (B, N, H, W, src, L, float(s), float(o), seed, coding, prediction, layout, noise)
        return (*frames, data.astype("<u8").tobytes())


def _global_heaps_parse(data: bytes) -> bool:
    """Whether every global heap collection (HDF5 file format, "Global Heap") walks to its end;
    a free-space object of size 0 makes HDF5 loop forever."""
    start, walked = data.find(b"GCOL"), 0
    while start >= 0:
        if start >= walked and start + 16 <= len(data) and data[start + 4] == 1:
            end = start + int.from_bytes(data[start + 8 : start + 16], "little")
            if end > len(data):
                return False
            p = start + 16
            while p + 16 <= end:
                index, size = int.from_bytes(data[p : p + 2], "little"), int.from_bytes(data[p + 8 : p + 16], "little")
                need = 16 + (size + 7) // 8 * 8 if index else size
                if need < 16 or p + need > end:
                    return False
                p += need
            walked = end
        start = data.find(b"GCOL", start + 1)
    return True


# -- base files and their reference decodes --------------------------------------------

#: name: (frames, dtype, B, quantise); small frames, N % B != 0 and N == k B, one frame
#: taller than a 256-row chunk.
BASES = {
    "u16": ((7, 9, 11), np.uint16, 3, 0.0),
    "u16-heap": ((7, 9, 11), np.uint16, 3, 0.0),  # strings variable-length, as before December 2026
    "u8-quantised": ((5, 270, 6), np.uint8, 2, 1.0),
    "f32": ((6, 10, 8), np.float32, 3, 0.0),
    "i16": ((4, 5, 7), np.int16, 2, 0.0),
}


def random_movie(shape: tuple[int, int, int], dtype: Any, seed: int, lo: float | None = None, hi: float | None = None):
    rng = np.random.default_rng(seed)
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        lo = -2.5 if lo is None else lo
        hi = 7.0 if hi is None else hi
        return (lo + (hi - lo) * rng.random(shape)).astype(dtype)
    info = np.iinfo(dtype)
    lo = info.min if lo is None else lo
    hi = info.max if hi is None else hi
    return rng.integers(int(lo), int(hi), size=shape, endpoint=True).astype(dtype)


class Base:
    """One undamaged .tcs file, what the specification reads in it, and its decodes."""

    def __init__(self, folder: Path, name: str):
        shape, dtype, B, quantise = BASES[name]
        lo, hi = (0, 200) if quantise else (None, None)
        frames = random_movie(shape, dtype, seed=len(name), lo=lo, hi=hi)
        self.name = name
        self.movie = folder / f"{name}.tif"
        tifffile.imwrite(self.movie, frames, photometric="minisblack", metadata={"axes": "TYX"})
        self.path = folder / f"{name}.tcs"
        emtcs.compress(self.movie, self.path, B=B, seed=1234, quantise=quantise, gain=1.0)
        if name.endswith("-heap"):
            _variable_length_strings(self.path)
        self.data = self.path.read_bytes()
        self.spec = spec_header(self.path)
        assert self.spec is not None, f"{name}: emtcs wrote a file the specification rejects"
        emtcs.decompress(self.path, folder / f"{name}.fast.tif", **FAST)
        self.fast = tifffile.imread(folder / f"{name}.fast.tif")
        self._cli: np.ndarray | None = None
        self._folder = folder

    def cli_reference(self) -> np.ndarray:
        """The decode with the CLI's defaults (GAP-TV, 40 iterations, 256-pixel tiles)."""
        if self._cli is None:
            out = self._folder / f"{self.name}.cli.tif"
            emtcs.decompress(self.path, out, decoder="gaptv")
            self._cli = tifffile.imread(out)
        return self._cli


def _variable_length_strings(path: Path) -> None:
    """Rewrite a file's string attributes as variable-length strings (formats/tcs.md §1), whose
    bytes HDF5 keeps in a global heap."""
    with h5py.File(path, "r+") as f:
        for name in list(f.attrs):
            value = f.attrs[name]
            if isinstance(value, bytes):
                del f.attrs[name]
                f.attrs[name] = value.decode("utf-8")


@pytest.fixture(scope="module")
def bases(tmp_path_factory) -> dict[str, Base]:
    folder = tmp_path_factory.mktemp("bases")
    return {name: Base(folder, name) for name in BASES}


# -- damage -------------------------------------------------------------------------

ATTRS = (
    "format",
    "format_version",
    "complete",
    "B",
    "n_frames",
    "n_groups",
    "frame_shape",
    "source_dtype",
    "measurement_dtype",
    "value_scale",
    "value_offset",
    "max_level",
    "mask_generator",
    "mask_seed",
    "software",
    "created",
    "source_name",
    "metadata",
    "measurement_coding",
    "quant_step",
    "quant_gain",
)

_text = st.text(st.characters(exclude_categories=("Cs",)), max_size=12)
_interesting_text = st.sampled_from(
    [
        "",
        "emtcs.tcs",
        "emtcs-hash32-v1",
        "emtcs-hash32-v2",
        "exact",
        "anscombe-v1",
        *SOURCE_TYPES,
        *STORED_TYPES,
        "int64",
        "uint128",
        "bool",
        "complex64",
        "object",
        "U5",
        "S3",
        "datetime64",
        "{}",
        "[]",
        "null",
        "1",
        "{",
        '{"pixel_size": [0.25, 0.25], "pixel_unit": "nm", "frame_interval": 0.01}',
        '{"pixel_size": [0, 0], "pixel_unit": "nm"}',
        '{"pixel_size": "x", "pixel_unit": 3}',
        '{"pixel_size": [1e308, -1], "frame_interval": -1}',
        '{"pixel_size": [1, 2, 3], "frame_interval": "abc"}',
        '{"pixel_size": null, "pixel_unit": null, "frame_interval": null, "exposure": [1]}',
        '{"frame_interval": NaN}',
    ]
)
_ints = st.one_of(
    st.integers(-3, 70), st.integers(-(2**63), 2**63 - 1), st.sampled_from([2**32 - 1, 2**32, 65535, 65536])
)
_floats = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([0.0, -0.0, 1.0, 0.5, 1e-300, 8.0, 0.01])
)


@st.composite
def attribute_values(draw: st.DrawFn, original: Any) -> Any:
    """A value to store in an attribute: near the original, or of any type h5py stores."""
    kind = draw(st.sampled_from(["near", "int", "float", "text", "bytes", "bool", "array", "empty"]))
    if kind == "near" and original is not None:
        a = np.asarray(original)
        if a.dtype.kind in "iu":
            delta = draw(st.sampled_from([-3, -2, -1, 1, 2, 3]))
            v = a.astype(np.int64) + delta
            dtype = draw(st.sampled_from([a.dtype, np.dtype(np.int64)]))
            return v.astype(dtype) if all(_fits(int(x), dtype) for x in v.ravel()) else v
        if a.dtype.kind == "f":
            return a * draw(st.sampled_from([0.5, 2.0, -1.0, 1 + 1e-12]))
        kind = "text"
    if kind in ("int", "near"):
        v = draw(_ints)
        dtypes = [t for t in (np.int64, np.uint64, np.int32, np.uint32, np.int8, np.uint8) if _fits(v, t)]
        return np.array(v, dtype=draw(st.sampled_from(dtypes)))
    if kind == "float":
        with np.errstate(over="ignore"):
            return np.array(draw(_floats), dtype=draw(st.sampled_from([np.float64, np.float32, np.float16])))
    if kind == "text":
        return draw(st.one_of(_interesting_text, _text))
    if kind == "bytes":
        return np.bytes_(draw(st.binary(min_size=1, max_size=12)).rstrip(b"\0") or b"x")
    if kind == "bool":
        return np.bool_(draw(st.booleans()))
    if kind == "array":
        n = draw(st.integers(0, 4))
        values = draw(st.lists(st.one_of(st.integers(-5, 300), st.just(1), st.just(2)), min_size=n, max_size=n))
        dtype = draw(st.sampled_from(["i8", "u4", "f8"] if min(values, default=0) >= 0 else ["i8", "f8"]))
        return np.array(values, dtype=dtype)
    return h5py.Empty("f8")


def _fits(v: int, t: Any) -> bool:
    info = np.iinfo(t)
    return info.min <= v <= info.max


@st.composite
def damage(draw: st.DrawFn, base: Base) -> list[tuple]:
    """A list of edits: byte flips, a truncation, attribute edits, dataset replacements
    (measurements and the group layout)."""
    size = len(base.data)
    kind = draw(st.sampled_from(["flip", "flip", "truncate", "attrs", "attrs", "attrs", "dataset"]))
    if kind == "flip":
        n = draw(st.integers(1, 4))
        return [("flip", draw(st.integers(0, size - 1)), draw(st.integers(1, 255))) for _ in range(n)]
    if kind == "truncate":
        return [("truncate", draw(st.integers(0, size - 1)))]
    if kind == "dataset":
        B, N, H, W = base.spec[:4]
        G = -(-N // B)
        op = draw(st.sampled_from(["replace", "delete", "group", "extra", "starts"]))
        if op == "starts":  # another group layout (format 3)
            starts = draw(st.lists(st.integers(-1, N + 1), max_size=G + 2))
            return [("starts", starts, draw(st.sampled_from(["i8", "u2", "f8"])))]
        if op == "replace":
            shape = draw(
                st.sampled_from(
                    [(G, H, W), (G - 1, H, W), (G + 1, H, W), (G, W, H), (G, H, W + 1), (G, H), (G, H, W, 1), ()]
                )
            )
            dtype = draw(st.sampled_from(["u1", "u2", "u4", "u8", "i4", ">u4", "f4", "S2"]))
            return [("dataset", shape, dtype, draw(st.sampled_from(["zeros", "copy", "chunked"])))]
        return [(op,)]
    edits = []
    for _ in range(draw(st.integers(1, 3))):
        target = draw(st.sampled_from(["/", "/", "/", "measurements"]))
        with h5py.File(base.path, "r") as f:
            present = sorted(f[target].attrs)
            if present and draw(st.integers(0, 3)) == 0:
                edits.append(("delattr", target, draw(st.sampled_from(present))))
                continue
            name = draw(st.one_of(st.sampled_from(ATTRS), _text.filter(bool)))
            original = f[target].attrs.get(name)
        edits.append(("setattr", target, name, draw(attribute_values(original))))
    return edits


def apply_damage(data: bytes, edits: list[tuple], path: Path) -> bool:
    """Write the damaged file; False when h5py cannot make that edit (the example is skipped)."""
    buf = bytearray(data)
    for e in edits:
        if e[0] == "flip":
            buf[e[1]] ^= e[2]
        elif e[0] == "truncate":
            del buf[e[1] :]
        elif e[0] == "poke":
            buf[e[1] : e[1] + len(e[2])] = e[2]
    path.write_bytes(bytes(buf))
    h5_edits = [e for e in edits if e[0] not in ("flip", "truncate", "poke")]
    if not h5_edits:
        return True
    try:
        with h5py.File(path, "r+") as f:
            for e in h5_edits:
                _edit(f, e)
    except (TypeError, ValueError, KeyError, OSError, RuntimeError):
        return False
    return True


def _edit(f: h5py.File, e: tuple) -> None:
    op = e[0]
    if op == "setattr":
        f[e[1]].attrs[e[2]] = e[3]
    elif op == "delattr":
        del f[e[1]].attrs[e[2]]
    elif op == "delete":
        del f["measurements"]
    elif op == "group":
        del f["measurements"]
        f.create_group("measurements")
    elif op == "starts":
        if "group_starts" in f:
            del f["group_starts"]
        f.create_dataset("group_starts", data=np.array(e[1], dtype=np.int64).astype(e[2]))
    elif op == "extra":  # unknown objects a reader must ignore
        f["future_dataset"] = np.arange(3)
        f.create_group("future_group").attrs["x"] = 1
    elif op == "dataset":
        _, shape, dtype, fill = e
        old = f["measurements"][()]
        del f["measurements"]
        dtype = np.dtype(dtype)
        data = np.zeros(shape, dtype=dtype)
        if fill == "copy" and old.shape == tuple(shape) and dtype.kind == "u":
            data = old.astype(dtype)  # the same values, in another type
        kwargs = {"chunks": True, "fletcher32": True} if fill == "chunked" and len(shape) else {}
        f.create_dataset("measurements", data=data, **kwargs)


def check_damaged(base: Base, edits: list[tuple], folder: Path) -> str:
    """The reader property on one damaged file; returns what happened (for statistics)."""
    path = folder / "damaged.tcs"
    if not apply_damage(base.data, edits, path):
        return "h5py cannot make this edit"
    spec = spec_header(path)
    # the frames must be the original ones unless the edit made another valid file
    must_match = spec is None or spec == base.spec
    out = folder / "out.tif"
    try:
        emtcs.decompress(path, out, **FAST)
    except EmtcsError as exc:
        if currently_in_test_context():
            note(f"{type(exc).__name__}: {exc}")
        assert "\n" not in str(exc), f"multi-line message: {exc!r}"
        assert str(exc).strip(), "empty message"
        assert not out.exists(), "an output file was left after an error"
        assert leftovers(folder) == []
        return f"refused ({type(exc).__name__})"
    frames = tifffile.imread(out)
    out.unlink()
    assert leftovers(folder) == []
    if must_match:
        assert frames.dtype == base.fast.dtype and frames.shape == base.fast.shape, (
            f"decoded {frames.shape} {frames.dtype} instead of {base.fast.shape} {base.fast.dtype} "
            f"(specification says: {'invalid file' if spec is None else 'same header'})"
        )
        np.testing.assert_array_equal(frames, base.fast, err_msg="silently different frames")
        return "decoded, identical"
    return "decoded another valid file"


# -- 1. the reader against damaged files ----------------------------------------------


@budget(800)
@given(data=st.data())
def test_damaged_files_are_refused_or_decode_identically(bases, data):
    base = bases[data.draw(st.sampled_from(sorted(bases)), label="base")]
    edits = data.draw(damage(base), label="edits")
    with scratch() as folder:
        outcome = check_damaged(base, edits, folder)
    note(outcome)
    event(outcome)


def test_known_damage_is_refused_with_one_line(bases, tmp_path):
    """Hand-picked damage that emtcs used to turn into tracebacks, wrong frames or a hang."""
    u16, heap = bases["u16"], bases["u16-heap"]
    cases = [
        [("setattr", "/", "metadata", "[]")],
        [("setattr", "/", "metadata", '{"pixel_size": [0, 0], "pixel_unit": "nm"}')],
        [("setattr", "/", "B", np.int64(2))],
        [("setattr", "/", "B", np.int64(0))],
        [("setattr", "/", "n_frames", np.int64(0))],
        [("setattr", "/", "n_frames", np.int64(2**31 - 11))],  # once made the oracle list 7e8 group starts
        [("setattr", "/", "frame_shape", np.array([9, 12]))],
        [("setattr", "/", "source_dtype", "int16")],
        [("setattr", "/", "source_dtype", "xyz")],
        [("setattr", "/", "value_offset", np.float64(7.0))],
        [("setattr", "/", "mask_seed", np.int64(-1))],
        [("setattr", "/", "format_version", np.array([], dtype=np.uint32))],
        [("dataset", (3, 9, 12), "u4", "zeros")],
        [("dataset", (2, 9, 11), "u4", "zeros")],
        [("group",)],
        [("setattr", "/", "software", np.bytes_(b"\x80"))],  # `emtcs info` failed to print it
        [("setattr", "/", "metadata", '{"title": "\\ud800"}')],
    ]
    # a 1-byte change in the size of a string in the global heap (of an older file): for
    # some of them HDF5 looped forever reading the attribute
    cases = [(u16, edits) for edits in cases]
    cases += [(heap, [("flip", offset + 9, 1)]) for offset in _global_heap_objects(heap.data)]
    assert len(cases) > 20
    for base, edits in cases:
        with scratch() as folder:
            assert check_damaged(base, edits, folder).startswith("refused"), edits
            info = CliRunner().invoke(main, ["info", str(folder / "damaged.tcs")])
            assert info.exit_code == 1 and isinstance(info.exception, SystemExit), (edits, info.exception)
            assert info.output.startswith("emtcs: error: ") and info.output.count("\n") == 1, info.output


def _global_heap_objects(data: bytes) -> list[int]:
    """Offsets of the objects of the first global heap collection (HDF5 file format spec)."""
    start = data.find(b"GCOL")
    assert start > 0
    end = start + int.from_bytes(data[start + 8 : start + 16], "little")
    p, found = start + 16, []
    while p + 16 <= end:
        index, size = int.from_bytes(data[p : p + 2], "little"), int.from_bytes(data[p + 8 : p + 16], "little")
        if index == 0:
            break
        found.append(p)
        p += 16 + (size + 7) // 8 * 8
    return found


def test_strings_like_a_heap_signature_are_no_damage(tmp_path):
    """The reader looks for global heaps by their signature: strings that hold it are data."""
    movie = tmp_path / "GCOL\x01GCOL.tif"
    tifffile.imwrite(movie, random_movie((4, 6, 5), np.uint8, 3), photometric="minisblack", metadata={"axes": "TYX"})
    emtcs.compress(movie, tmp_path / "m.tcs", B=2)
    with emtcs.open(tmp_path / "m.tcs") as r:  # the name in the root's header
        assert r.header.source_name == movie.name
        r.measurement(1)
    _variable_length_strings(tmp_path / "m.tcs")
    with emtcs.open(tmp_path / "m.tcs") as r:  # the name in a global heap
        assert r.header.source_name == movie.name
        r.measurement(1)


def test_chunk_index_damage_is_refused(bases):
    """The chunk index (a version-1 B-tree) has no checksum: a damaged key made HDF5 read a
    group as zeros, without an error, or read outside its buffer."""
    base = bases["u16"]
    with h5py.File(base.path, "r") as f:
        first = f["measurements"].id.get_chunk_info(0).byte_offset
    # the B-tree node sits before the chunk data; find the address of chunk 0 in it
    key = first.to_bytes(8, "little")
    at = base.data.find(key)
    assert 0 < at < first
    for delta in (-8, -7, -6):  # bytes of the element offset that precedes the child address
        with scratch() as folder:
            assert check_damaged(base, [("flip", at + delta, 1)], folder).startswith(("refused", "decoded, identical"))
    # the key starts with the chunk's size: one shorter than its checksum crashed HDF5
    # (a read outside the buffer: a segmentation fault, or garbage)
    for size in (0, 2, 3):
        with scratch() as folder:
            assert check_damaged(base, [("poke", at - 40, size.to_bytes(4, "little"))], folder).startswith("refused")


@budget(50)
@given(data=st.data())
def test_cli_on_damaged_files(bases, data):
    base = bases[data.draw(st.sampled_from(sorted(bases)), label="base")]
    edits = data.draw(damage(base), label="edits")
    with scratch() as folder:
        path = folder / "damaged.tcs"
        assume(apply_damage(base.data, edits, path))
        spec = spec_header(path)
        out = folder / "out.tif"
        result = CliRunner().invoke(main, ["decompress", str(path), "-o", str(out), "--decoder", "gaptv", "-q"])
        if result.exit_code != 0:
            assert isinstance(result.exception, SystemExit), result.exception
            assert result.exit_code == 1
            assert "Traceback" not in result.output
            lines = result.output.strip().splitlines()
            assert len(lines) == 1 and lines[0].startswith("emtcs: error: "), result.output
            assert not out.exists() and leftovers(folder) == []
        elif spec is None or spec == base.spec:
            np.testing.assert_array_equal(tifffile.imread(out), base.cli_reference())
        info = CliRunner().invoke(main, ["info", str(path)])
        assert info.exit_code in (0, 1) and isinstance(info.exception, (SystemExit, type(None))), info.exception
        if info.exit_code:
            assert info.output.count("\n") == 1 and info.output.startswith("emtcs: error: "), info.output


def test_cli_subprocess_on_a_damaged_file(bases, tmp_path):
    """The installed command on a truncated file and on a corrupted chunk: one line, status 1."""
    base = bases["u16"]
    with h5py.File(base.path, "r") as f:
        chunk = f["measurements"].id.get_chunk_info(1).byte_offset
    for name, edits in (("truncated", [("truncate", len(base.data) - 100)]), ("chunk", [("flip", chunk + 5, 0x55)])):
        path = tmp_path / f"{name}.tcs"
        assert apply_damage(base.data, edits, path)
        out = tmp_path / f"{name}.tif"
        proc = subprocess.run(
            [sys.executable, "-m", "emtcs.cli", "decompress", str(path), "-o", str(out), "--decoder", "gaptv", "-q"],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode == 1, proc.stderr
        assert "Traceback" not in proc.stderr and proc.stdout == ""
        assert proc.stderr.startswith("emtcs: error: ") and proc.stderr.count("\n") == 1, proc.stderr
        assert not out.exists() and leftovers(tmp_path) == []


# -- 2. round trips ---------------------------------------------------------------------

DTYPES = ("uint8", "uint16", "int16", "float32")


def read_movie(path: Path) -> np.ndarray:
    """A decoded movie as emtcs reads movies (its TIFF reader), (frames, H, W)."""
    from emtcs.io import open_movie

    with open_movie(path) as movie:
        return movie.read(0, movie.n_frames)


@st.composite
def movies(draw: st.DrawFn) -> tuple[np.ndarray, int]:
    """(frames, B): any frame count >= B (N % B == 0 or not), thin and odd frame shapes,
    and values from a constant to the whole range of the type."""
    dtype = np.dtype(draw(st.sampled_from(DTYPES), label="dtype"))
    shape = draw(
        st.one_of(
            st.tuples(st.just(1), st.integers(1, 40)),
            st.tuples(st.integers(1, 40), st.just(1)),
            st.tuples(st.integers(1, 24), st.integers(1, 24)),
        ),
        label="frame shape",
    )
    B = draw(st.integers(2, 6), label="B")
    n = draw(st.one_of(st.just(B), st.integers(B, 3 * B + 1)), label="frames")
    if dtype.kind == "f":
        big = float(np.finfo(np.float32).max)
        f32 = st.one_of(
            st.floats(allow_nan=False, allow_infinity=False, width=32),
            st.sampled_from([-big, big, 0.0, 1e-45, -1e-45, 1e30]),
        )
        lo, hi = sorted((draw(f32), draw(f32)))
        if draw(st.booleans()):  # moderate ranges too, not only what floats() likes
            lo, hi = sorted((draw(st.floats(-10, 10, width=32)), draw(st.floats(-10, 10, width=32))))
    else:
        info = np.iinfo(dtype)
        ends = st.one_of(st.integers(int(info.min), int(info.max)), st.sampled_from([int(info.min), int(info.max)]))
        lo, hi = sorted((draw(ends), draw(ends)))
    frames = random_movie((n, *shape), dtype, seed=draw(st.integers(0, 2**16)), lo=lo, hi=hi)
    return frames, B


@budget(250)
@given(movie=movies(), data=st.data())
def test_round_trip_keeps_count_shape_and_type(movie, data):
    frames, B = movie
    n = len(frames)
    quantise = data.draw(st.sampled_from([0.0, 1.0]) if frames.dtype.kind == "u" else st.just(0.0), label="quantise")
    tile = data.draw(st.sampled_from([4, 8, 16, 256]), label="tile")
    overlap = data.draw(st.integers(0, min(tile - 1, 6)), label="overlap")
    with scratch() as folder:
        tifffile.imwrite(folder / "m.tif", frames, photometric="minisblack", metadata={"axes": "TYX"})
        info = emtcs.compress(folder / "m.tif", folder / "m.tcs", B=B, quantise=quantise, gain=1.0)
        assert (info["n_frames"], info["frame_shape"], info["source_dtype"]) == (
            n,
            list(frames.shape[1:]),
            frames.dtype.name,
        )
        options = {"decoder": "gaptv", "decoder_options": {"iterations": 3}, "tile": tile, "overlap": overlap}
        report = emtcs.decompress(folder / "m.tcs", folder / "full.tif", **options)
        full = read_movie(folder / "full.tif")
        assert full.shape == frames.shape and full.dtype == frames.dtype
        assert sorted(report.residuals) == list(range(len(info["groups"])))
        if frames.dtype.kind == "f":
            assert np.isfinite(full).all(), "finite frames decoded to infinities or NaN"
        a = data.draw(st.one_of(st.none(), st.integers(-n - 2, n + 2)), label="a")
        b = data.draw(st.one_of(st.none(), st.integers(-n - 2, n + 2)), label="b")
        spec = f"{'' if a is None else a}:{'' if b is None else b}"
        expected = full[slice(a, b)]
        if len(expected) == 0:
            with pytest.raises(InputError):
                emtcs.decompress(folder / "m.tcs", folder / "part.tif", frames=spec, **options)
            assert not (folder / "part.tif").exists()
            return
        emtcs.decompress(folder / "m.tcs", folder / "part.tif", frames=spec, **options)
        part = read_movie(folder / "part.tif")
        np.testing.assert_array_equal(part, expected, err_msg=f"frames={spec!r}")
        assert leftovers(folder) == []


def test_thin_and_extreme_movies(tmp_path):
    """Cases the round trip property found or that it draws rarely, pinned."""
    cases = [
        (np.zeros((3, 1, 5), np.uint16), 3),
        (np.full((4, 7, 1), 255, np.uint8), 2),
        (np.array([[[-3.4e38, 3.4e38]], [[3.4e38, -3.4e38]], [[0.0, 1.0]]], np.float32), 2),
        (np.full((2, 3, 3), -32768, np.int16), 2),
    ]
    for k, (frames, B) in enumerate(cases):
        tifffile.imwrite(tmp_path / f"{k}.tif", frames, photometric="minisblack", metadata={"axes": "TYX"})
        emtcs.compress(tmp_path / f"{k}.tif", tmp_path / f"{k}.tcs", B=B)
        emtcs.decompress(tmp_path / f"{k}.tcs", tmp_path / f"{k}.out.tif", decoder="gaptv", tile=4, overlap=1)
        out = read_movie(tmp_path / f"{k}.out.tif")
        assert out.shape == frames.shape and out.dtype == frames.dtype
        if frames.dtype.kind == "f":
            assert np.isfinite(out).all()
