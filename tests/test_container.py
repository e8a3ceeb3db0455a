"""The .tcs container against its specification (formats/tcs.md), read with plain h5py."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

import emtcs
from emtcs.errors import FormatError
from emtcs.sensing import encode, masks


@pytest.fixture
def tcs(tmp_path, movie_file):
    path, frames = movie_file(n=13, shape=(40, 52))
    out = tmp_path / "movie.tcs"
    emtcs.compress(path, out, B=5, seed=77)
    return out, frames


def test_every_attribute_the_spec_names(tcs):
    path, frames = tcs
    with h5py.File(path, "r") as f:
        a = f.attrs
        assert a["format"] == "emtcs.tcs"
        assert list(a["format_version"]) == [1, 2]
        assert bool(a["complete"])
        assert a["B"] == 5 and a["n_frames"] == 13 and a["n_groups"] == 3
        assert list(a["frame_shape"]) == [40, 52]
        assert a["source_dtype"] == "uint16"
        assert a["measurement_dtype"] == "uint32"  # smallest unsigned type holding 5 * 65535
        assert a["value_scale"] == 1.0 and a["value_offset"] == 0.0 and a["max_level"] == 65535
        assert a["mask_generator"] == "emtcs-hash32-v1" and a["mask_seed"] == 77
        assert a["software"].startswith("emtcs ") and a["created"].endswith("+00:00")
        assert a["source_name"] == "movie.tif"
        meta = json.loads(a["metadata"])
        assert meta["pixel_size"] == [0.25, 0.25] and meta["pixel_unit"] == "nm"
        assert meta["frame_interval"] == pytest.approx(0.005)
        ds = f["measurements"]
        assert ds.shape == (3, 40, 52) and ds.dtype == np.uint32
        assert ds.chunks == (1, 40, 52)
        assert ds.shuffle and ds.compression == "gzip" and ds.fletcher32
        # the stored measurements are exactly Equation 1 with the spec's masks, short group included
        m = masks(77, 5, (40, 52))
        for g, start in enumerate(range(0, 13, 5)):
            group = frames[start : start + 5]
            np.testing.assert_array_equal(ds[g], encode(group, m[: len(group)]))


def test_chunks_align_with_decode_tiles(tmp_path, movie_file):
    path, _ = movie_file(n=4, shape=(300, 520))
    out = tmp_path / "big.tcs"
    emtcs.compress(path, out, B=2)
    with h5py.File(out, "r") as f:
        assert f["measurements"].chunks == (1, 256, 256)


def test_reader_gives_header_groups_and_masks(tcs):
    path, frames = tcs
    with emtcs.open(path) as r:
        assert r.header.n_groups == 3
        assert list(r.header.group_frames(2)) == [10, 11, 12]
        assert r.masks(2).shape == (3, 40, 52)
        np.testing.assert_array_equal(r.measurement(2), encode(frames[10:], masks(77, 3, (40, 52))))
        np.testing.assert_array_equal(r.measurement(0, (slice(5, 9), slice(0, 3))), r.measurement(0)[5:9, :3])
        info = r.info()
        assert info["compression_ratio"] == pytest.approx(info["raw_bytes"] / info["file_bytes"])
        assert info["raw_bytes"] == frames.nbytes


def _set_attr(path, name, value):
    with h5py.File(path, "r+") as f:
        f.attrs[name] = value


def test_unknown_major_version_is_refused(tcs):
    path, _ = tcs
    _set_attr(path, "format_version", np.array([3, 0], dtype=np.uint32))
    with pytest.raises(FormatError, match="version 3.0 is not supported"):
        emtcs.open(path)


def test_newer_minor_version_is_read(tcs):
    path, _ = tcs
    _set_attr(path, "format_version", np.array([1, 7], dtype=np.uint32))
    _set_attr(path, "some_future_attribute", "ignored")
    with emtcs.open(path) as r:
        assert r.header.format_version == (1, 7)


def test_incomplete_and_foreign_files_are_refused(tcs, tmp_path):
    path, _ = tcs
    with h5py.File(path, "r+") as f:
        del f.attrs["complete"]
    with pytest.raises(FormatError, match="incomplete"):
        emtcs.open(path)
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f["x"] = 1
    with pytest.raises(FormatError, match="not a .tcs file"):
        emtcs.open(other)


def test_checksum_detects_corruption(tcs):
    path, _ = tcs
    with h5py.File(path, "r") as f:
        offset = f["measurements"].id.get_chunk_info(1).byte_offset
    data = bytearray(path.read_bytes())
    data[offset + 20] ^= 0xFF
    path.write_bytes(bytes(data))
    with emtcs.open(path) as r:
        r.measurement(0)  # untouched group still reads
        with pytest.raises(FormatError, match="corrupted measurement of group 1"):
            r.measurement(1)


def test_truncated_file_is_refused(tcs):
    path, _ = tcs
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(FormatError):
        with emtcs.open(path) as r:
            for _ in r.groups():
                pass
