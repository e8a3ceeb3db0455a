"""The .tcs container against its specification (formats/tcs.md), read with plain h5py."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest
import tifffile

import emtcs
import spec_rows
from emtcs.errors import FormatError
from emtcs.sensing import encode, masks


@pytest.fixture
def tcs(tmp_path, movie_file):
    path, frames = movie_file(n=13, shape=(40, 52))
    out = tmp_path / "movie.tcs"
    emtcs.compress(path, out, B=5, seed=77)
    return out, frames


def _text(attrs: h5py.AttributeManager, name: str) -> str:
    """A string attribute as the spec stores it (§1: fixed-length UTF-8), decoded."""
    value = attrs[name]
    assert isinstance(value, bytes), f"{name} is not a fixed-length string"
    return value.decode("utf-8")


def test_every_attribute_the_spec_names(tcs):
    path, frames = tcs
    with h5py.File(path, "r") as f:
        a = f.attrs
        assert _text(a, "format") == "emtcs.tcs"
        assert list(a["format_version"]) == [4, 0] and _text(a, "measurement_prediction") == "rows-v1"
        assert bool(a["complete"])
        assert a["B"] == 5 and a["n_frames"] == 13 and a["n_groups"] == 3
        assert list(a["frame_shape"]) == [40, 52]
        assert _text(a, "source_dtype") == "uint16"
        assert _text(a, "measurement_dtype") == "uint32"  # smallest unsigned type holding 5 * 65535
        assert a["value_scale"] == 1.0 and a["value_offset"] == 0.0 and a["max_level"] == 65535
        assert _text(a, "mask_generator") == "emtcs-hash32-v1" and a["mask_seed"] == 77
        assert _text(a, "software").startswith("emtcs ") and _text(a, "created").endswith("+00:00")
        assert _text(a, "source_name") == "movie.tif"
        meta = json.loads(_text(a, "metadata"))
        assert meta["pixel_size"] == [0.25, 0.25] and meta["pixel_unit"] == "nm"
        assert meta["frame_interval"] == pytest.approx(0.005)
        ds = f["measurements"]
        assert ds.shape == (3, 40, 52) and ds.dtype == np.uint32
        assert ds.chunks == (1, 40, 52)
        assert ds.shuffle and ds.compression == "gzip" and ds.fletcher32
        # the stored values are Equation 1 with the spec's masks, short group included, predicted (§11)
        m = masks(77, 5, (40, 52))
        for g, start in enumerate(range(0, 13, 5)):
            group = frames[start : start + 5]
            k = m[: len(group)].sum(0)
            np.testing.assert_array_equal(ds[g], spec_rows.residuals(encode(group, m[: len(group)]), k, ("exact",), 32))


def test_chunks_align_with_decode_tiles(tmp_path, movie_file):
    path, _ = movie_file(n=4, shape=(300, 520))
    out = tmp_path / "big.tcs"
    emtcs.compress(path, out, B=2)
    with h5py.File(out, "r") as f:
        assert f["measurements"].chunks == (1, 256, 256)


def test_little_besides_the_measurements(tmp_path, movie_file):
    """A small movie's file is mostly measurements: h5py's defaults (variable-length strings
    in a 4 KB heap, attributes in a heap of their own, 2 KB metadata blocks) left 11 KB
    besides them; the 3 KB chunk index of HDF5 1.8 stays."""
    path, _ = movie_file(n=20, shape=(192, 192))
    out = tmp_path / "small.tcs"
    emtcs.compress(path, out, B=10)
    with h5py.File(out, "r") as f:
        measurements = f["measurements"].id.get_storage_size()
    assert out.stat().st_size - measurements < 6000


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
        # a measurement read again (kept: decoding reads each group's neighbours) is the caller's own copy
        first = r.measurement(2)
        first[:] = 0
        np.testing.assert_array_equal(r.measurement(2), encode(frames[10:], masks(77, 3, (40, 52))))


def _set_attr(path, name, value):
    with h5py.File(path, "r+") as f:
        f.attrs[name] = value


def test_unknown_major_version_is_refused(tcs):
    path, _ = tcs
    _set_attr(path, "format_version", np.array([5, 0], dtype=np.uint32))
    with pytest.raises(FormatError, match="version 5.0 is not supported"):
        emtcs.open(path)


def test_newer_minor_version_is_read(tcs):
    path, _ = tcs
    _set_attr(path, "format_version", np.array([4, 7], dtype=np.uint32))
    _set_attr(path, "some_future_attribute", "ignored")
    with emtcs.open(path) as r:
        assert r.header.format_version == (4, 7)


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
    _flip_a_byte_of_chunk(path, 1)
    with emtcs.open(path) as r:
        r.measurement(0)  # untouched group still reads
        with pytest.raises(FormatError, match="corrupted measurement of group 1"):
            r.measurement(1)


def _flip_a_byte_of_chunk(path: Path, chunk: int) -> None:
    with h5py.File(path, "r") as f:
        offset = f["measurements"].id.get_chunk_info(chunk).byte_offset
    data = bytearray(path.read_bytes())
    data[offset + 20] ^= 0xFF
    path.write_bytes(bytes(data))


def test_verify_reads_every_group_back(tcs, tmp_path, run):
    """``emtcs verify``: a sound file passes; a flipped byte, a cut file, a missing one and a
    movie that is not a .tcs file are each named, and the exit status says so."""
    path, _ = tcs
    assert emtcs.verify(path) is None
    groups = []
    assert emtcs.verify(path, progress=groups.append) is None
    with emtcs.open(path) as reader:
        assert len(groups) == reader.n_groups
    flipped, cut = tmp_path / "flipped.tcs", tmp_path / "cut.tcs"
    flipped.write_bytes(path.read_bytes())
    _flip_a_byte_of_chunk(flipped, 1)
    assert "corrupted measurement of group 1" in emtcs.verify(flipped)
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    assert emtcs.verify(cut) is not None
    assert "no such file" in emtcs.verify(tmp_path / "absent.tcs")
    r = run("verify", path, flipped, cut, tmp_path / "absent.tcs")
    assert r.exit_code == 1
    lines = r.output.strip().splitlines()
    assert lines[0] == f"ok: {path}" and all(line.startswith("damaged: ") for line in lines[1:4]), lines
    assert lines[-1] == "emtcs: error: 3 of 4 files damaged or unreadable"
    r = run("verify", path, "-q")
    assert r.exit_code == 0 and r.output == ""


def test_truncated_file_is_refused(tcs):
    path, _ = tcs
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(FormatError):
        with emtcs.open(path) as r:
            for _ in r.groups():
                pass


FORMATS = Path(__file__).resolve().parents[1] / "formats"


def test_the_version_3_example_follows_the_spec():
    """formats/example-v3.{tcs,json}: groups of their own lengths, groups of one unmasked (§3)."""
    doc = json.loads((FORMATS / "example-v3.json").read_text())
    frames = np.array(doc["frames"], dtype=doc["source_dtype"])
    starts, N, B = doc["group_starts"], doc["n_frames"], doc["B"]
    with h5py.File(FORMATS / doc["file"], "r") as f:
        assert list(f.attrs["format_version"]) == doc["format_version"] == [3, 0]
        assert list(f["group_starts"][()]) == starts and f.attrs["n_groups"] == len(starts)
        assert list(f.attrs["cuts"]) == doc["cuts"]
        stored = f["measurements"][()]
    m = masks(doc["mask_seed"], B, tuple(doc["frame_shape"]))
    for g, (a, b) in enumerate(zip(starts, [*starts[1:], N])):
        group = frames[a:b].astype(np.int64)
        expected = group[0] if b - a == 1 else (group * m[: b - a]).sum(axis=0)
        np.testing.assert_array_equal(stored[g], expected)
        np.testing.assert_array_equal(np.array(doc["measurements"][g]), expected)
    with emtcs.open(FORMATS / doc["file"]) as r:
        assert [list(r.header.group_frames(g)) for g in range(r.n_groups)] == [
            list(range(a, b)) for a, b in zip(starts, [*starts[1:], N])
        ]
        assert r.header.group_of(3) == 1 and r.header.group_of(7) == 2
        assert r.masks(1).shape == (1, *doc["frame_shape"]) and r.masks(1).all()


def test_frames_stored_alone_decode_exactly(tmp_path):
    out = tmp_path / "out.tif"
    emtcs.decompress(FORMATS / "example-v3.tcs", out, decoder="gaptv")
    frames = np.array(json.loads((FORMATS / "example-v3.json").read_text())["frames"], dtype=np.uint8)
    decoded = tifffile.imread(out)
    assert decoded.shape == frames.shape
    np.testing.assert_array_equal(decoded[[3, 8]], frames[[3, 8]])


def test_a_regular_movie_whose_last_group_is_one_frame_stores_it_unmasked(tmp_path, movie_file):
    path, frames = movie_file(n=11, shape=(16, 20))
    info = emtcs.compress(path, tmp_path / "m.tcs", B=5, quantise=0)
    assert info["format_version"] == "4.0" and info["groups"][-1] == {"start": 10, "length": 1}
    with emtcs.open(tmp_path / "m.tcs") as r:
        assert r.masks(2).all()
        np.testing.assert_array_equal(r.measurement(2), frames[10])


@pytest.mark.parametrize(
    ("starts", "problem"),
    [([0, 3, 4], "groups hold 1 to B=4 frames"), ([1, 3, 4, 8], "must begin with frame 0"), ([0, 4, 4, 8], "1 to B")],
)
def test_a_bad_group_layout_is_refused(tmp_path, starts, problem):
    path = tmp_path / "bad.tcs"
    path.write_bytes((FORMATS / "example-v3.tcs").read_bytes())
    with h5py.File(path, "r+") as f:
        del f["group_starts"]
        f["group_starts"] = np.array(starts, dtype=np.int64)
    with pytest.raises(FormatError, match=problem):
        emtcs.open(path)


def test_the_writer_takes_groups_in_order_only(tmp_path):
    from emtcs.container import TcsHeader, TcsWriter

    hd = TcsHeader(B=3, n_frames=5, frame_shape=(2, 2), source_dtype="uint8", measurement_dtype="uint16")
    y = np.zeros((2, 2), dtype=np.uint16)
    with TcsWriter(tmp_path / "w.tcs", hd) as w:
        w.write_group(range(0, 2), y)
        for bad in (range(3, 5), range(2, 6), range(2, 2)):
            with pytest.raises(ValueError):
                w.write_group(bad, y)
        with pytest.raises(ValueError, match="cover frames 0..1 of 5"):
            w.finish()
    with pytest.raises(FormatError, match="incomplete"):
        emtcs.open(tmp_path / "w.tcs")


def test_signed_levels_are_relative_to_the_movies_range(tmp_path):
    """Issue 9 §5: an int16 movie of values 16..88 sums in uint16, not uint32, losslessly."""
    frames = np.random.default_rng(3).integers(16, 89, size=(8, 12, 10)).astype(np.int16)
    tifffile.imwrite(tmp_path / "s.tif", frames)
    info = emtcs.compress(tmp_path / "s.tif", B=4, seed=2, quantise=0)
    assert (info["value_offset"], info["max_level"], info["measurement_dtype"]) == (16.0, 72, "uint16")
    assert info["format_version"] == "4.0"
    m = masks(2, 4, (12, 10))
    with emtcs.open(tmp_path / "s.tcs") as r:
        for g in range(2):
            np.testing.assert_array_equal(r.measurement(g), encode(frames[4 * g : 4 * g + 4] - 16, m))
    emtcs.decompress(tmp_path / "s.tcs", tmp_path / "out.tif", decoder="gaptv")
    out = tifffile.imread(tmp_path / "out.tif")
    assert out.dtype == np.int16 and out.min() >= 16 and out.max() <= 88


def test_signed_files_with_the_full_range_map_still_read(tmp_path):
    """A 1.2 file of an int16 movie (levels shifted by -32768), as written before format 3."""
    from emtcs.container import TcsHeader, TcsWriter
    from emtcs.encoder import GroupEncoder, ValueMap

    frames = np.array([[[-5, 7], [0, 300]]] * 4, dtype=np.int16)
    vmap = ValueMap.for_source(np.dtype(np.int16))
    enc = GroupEncoder(1, 2, (2, 2), vmap)
    hd = TcsHeader(
        B=2, n_frames=4, frame_shape=(2, 2), source_dtype="int16", measurement_dtype=enc.dtype.name,
        value_offset=vmap.offset, max_level=vmap.max_level, mask_seed=1,
    )  # fmt: skip
    with TcsWriter(tmp_path / "old.tcs", hd) as w:
        for g in range(2):
            w.write_group(range(2 * g, 2 * g + 2), enc.encode(vmap.to_levels(frames[2 * g : 2 * g + 2])))
        assert w.finish().format_version == (1, 2)
    with emtcs.open(tmp_path / "old.tcs") as r:
        assert r.header.value_offset == -32768 and r.header.measurement_dtype == "uint32"
        y = r.measurement(0).astype(np.int64)
    np.testing.assert_array_equal(y, encode(frames[:2].astype(np.int64) + 32768, masks(1, 2, (2, 2))))


def test_chunks_written_by_emtcs_match_hdf5s_own_filters(tmp_path):
    """emtcs deflates chunks itself (run-length strategy) and adds HDF5's Fletcher-32: the
    checksum equals HDF5's on chunks HDF5 filtered, odd lengths included."""
    from emtcs.container import _fletcher32

    rng = np.random.default_rng(0)
    with h5py.File(tmp_path / "ref.h5", "w") as f:
        for t in range(60):
            dtype = (np.uint8, np.uint16, np.uint32)[t % 3]
            shape = (1, int(rng.integers(1, 40)), int(rng.integers(1, 40)))
            data = rng.integers(0, (3, 300, 70000)[t % 3], shape).astype(dtype)
            ds = f.create_dataset(f"d{t}", data=data, chunks=shape, shuffle=True, compression="gzip", fletcher32=True)
            raw = ds.id.read_direct_chunk((0, 0, 0))[1]
            assert _fletcher32(raw[:-4]) == int.from_bytes(raw[-4:], "little")


def test_edge_chunks_read_back(tmp_path, movie_file):
    path, frames = movie_file(n=4, shape=(300, 520))
    emtcs.compress(path, tmp_path / "m.tcs", B=2, quantise=0)
    m = masks(0, 2, (300, 520))
    with emtcs.open(tmp_path / "m.tcs") as r:
        for g in range(2):
            np.testing.assert_array_equal(r.measurement(g), encode(frames[2 * g : 2 * g + 2], m))


def test_a_bad_gaussian_coding_or_prediction_is_refused(tmp_path):
    """A gaussian-v1 file (real frames with noise of one size) read back, then hand-damaged:
    a sigma that is not positive, an unknown prediction, gaussian-v1 claimed by a 3.0 file."""
    rng = np.random.default_rng(4)
    yy, xx = np.mgrid[0:64, 0:96]
    frames = np.clip(np.rint(110 + 60 * np.sin(xx / 7.0) + rng.normal(0, 5.0, (8, 64, 96))), 0, 255)
    tifffile.imwrite(tmp_path / "g.tif", frames.astype(np.uint8))
    info = emtcs.compress(tmp_path / "g.tif", tmp_path / "g.tcs", B=4)
    assert info["measurement_coding"] == "gaussian-v1"
    for name, value, problem in (
        ("quant_sigma", np.float64(0.0), "standard deviation"),
        ("quant_sigma", np.float64(np.nan), "quant_sigma. is not finite"),
        ("measurement_prediction", "rows-v9", "unknown measurement prediction"),
        ("format_version", np.array([3, 0], dtype=np.uint32), "cannot hold gaussian-v1"),
    ):
        bad = tmp_path / f"bad-{name}.tcs"
        bad.write_bytes((tmp_path / "g.tcs").read_bytes())
        _set_attr(bad, name, value)
        with pytest.raises(FormatError, match=problem):
            emtcs.open(bad)


def test_a_measured_sigma_beside_exact_sums_is_version_4_1_and_checked(tmp_path):
    """--exact on a movie whose noise has no Poisson model: the sums stay exact and the
    measured sigma goes beside them (4.1, which 4.0 readers may read: only an attribute is
    new); a damaged sigma is refused in one line."""
    rng = np.random.default_rng(4)
    yy, xx = np.mgrid[0:64, 0:96]
    frames = np.clip(np.rint(110 + 60 * np.sin(xx / 7.0) + rng.normal(0, 5.0, (8, 64, 96))), 0, 255)
    tifffile.imwrite(tmp_path / "g.tif", frames.astype(np.uint8))
    info = emtcs.compress(tmp_path / "g.tif", tmp_path / "e.tcs", B=4, quantise=0)
    assert info["measurement_coding"] == "exact" and info["format_version"] == "4.1"
    with h5py.File(tmp_path / "e.tcs", "r") as f:
        assert f.attrs["noise_sigma"] == pytest.approx(info["noise_sigma"]) and "quant_sigma" not in f.attrs
    for value in (0.0, -1.0, np.inf):
        bad = tmp_path / "bad.tcs"
        bad.write_bytes((tmp_path / "e.tcs").read_bytes())
        _set_attr(bad, "noise_sigma", np.float64(value))
        with pytest.raises(FormatError, match="noise_sigma"):
            emtcs.open(bad)


def test_the_noise_spread_beside_a_measured_sigma_is_version_4_2_and_checked(tmp_path):
    """A camera's noise spread over neighbouring pixels: compress stores how much (4.2, which
    4.0 and 4.1 readers may read: only an attribute is new) beside the measured sigma, and
    ``info`` reports it; a damaged value is refused in one line."""
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(4)
    yy, xx = np.mgrid[0:128, 0:128]
    counts = rng.poisson(np.broadcast_to(50 + 30 * np.sin(xx / 7.0), (8, 128, 128))).astype(np.float64)
    frames = np.clip(np.rint(2 * gaussian_filter(counts, (0, 0.6, 0.6))), 0, 255).astype(np.uint8)
    tifffile.imwrite(tmp_path / "s.tif", frames)
    info = emtcs.compress(tmp_path / "s.tif", tmp_path / "s.tcs", B=4)
    assert info["format_version"] == "4.2" and 0.3 < info["noise_spread"] < 0.7
    with h5py.File(tmp_path / "s.tcs", "r") as f:
        assert f.attrs["noise_spread"] == pytest.approx(info["noise_spread"])
    for value in (-0.1, 1.5, np.nan):
        bad = tmp_path / "bad.tcs"
        bad.write_bytes((tmp_path / "s.tcs").read_bytes())
        _set_attr(bad, "noise_spread", np.float64(value))
        with pytest.raises(FormatError, match="noise_spread"):
            emtcs.open(bad)


def test_masks_of_another_density_are_version_4_3_and_checked(tmp_path):
    """Masks whose 1s have another probability than 1/2: generator ``emtcs-hash32-v2`` and
    ``mask_density`` (4.3; a reader that knows only v1 refuses the file for its generator),
    the measurements those masks make, and a damaged or missing density refused in one line."""
    rng = np.random.default_rng(5)
    frames = rng.poisson(40, (8, 40, 52)).astype(np.uint16)
    tifffile.imwrite(tmp_path / "m.tif", frames, photometric="minisblack")
    info = emtcs.compress(tmp_path / "m.tif", tmp_path / "m.tcs", B=4, seed=3, density=0.1875, quantise=0)
    assert info["format_version"] == "4.3" and info["mask_density"] == 0.1875
    assert info["mask_generator"] == "emtcs-hash32-v2"
    with emtcs.open(tmp_path / "m.tcs") as r:
        C = masks(3, 4, (40, 52), density=0.1875)
        np.testing.assert_array_equal(r.masks(1), C)
        np.testing.assert_array_equal(r.measurement(1), encode(frames[4:], C))
    assert emtcs.verify(tmp_path / "m.tcs", tmp_path / "m.tif") is None
    plain = emtcs.compress(tmp_path / "m.tif", tmp_path / "p.tcs", B=4, quantise=0)
    assert plain["mask_generator"] == "emtcs-hash32-v1" and plain["format_version"] == "4.0"
    with h5py.File(tmp_path / "p.tcs", "r") as f:
        assert "mask_density" not in f.attrs
    for value in (0.0, 1.0, np.nan, None):
        bad = tmp_path / "bad.tcs"
        bad.write_bytes((tmp_path / "m.tcs").read_bytes())
        if value is None:
            with h5py.File(bad, "r+") as f:
                del f.attrs["mask_density"]
        else:
            _set_attr(bad, "mask_density", np.float64(value))
        with pytest.raises(FormatError, match="mask_density|mask density"):
            emtcs.open(bad)
    with pytest.raises(emtcs.InputError, match="density"):
        emtcs.compress(tmp_path / "m.tif", tmp_path / "x.tcs", B=4, density=1.5)


def test_the_version_4_example_follows_the_spec():
    """formats/example-v4.{tcs,json}: anscombe-v2 values (§9) stored predicted (§11), read with
    plain h5py and checked against the specification's formulas written out here."""
    import math

    doc = json.loads((FORMATS / "example-v4.json").read_text())
    frames = np.array(doc["frames"], dtype=doc["source_dtype"]).astype(np.int64)
    c = doc["coding"]
    step, gain, offset, r = c["step"], c["gain"], c["offset"], c["read_noise"]
    B, N = doc["B"], doc["n_frames"]
    m = masks(doc["mask_seed"], B, tuple(doc["frame_shape"]))
    with h5py.File(FORMATS / doc["file"], "r") as f:
        assert list(f.attrs["format_version"]) == doc["format_version"] == [4, 0]
        assert _text(f.attrs, "measurement_prediction") == "rows-v1"
        assert _text(f.attrs, "measurement_coding") == c["name"]
        stored = f["measurements"][()]
    with emtcs.open(FORMATS / doc["file"]) as reader:
        for g, start in enumerate(range(0, N, B)):
            y = (frames[start : start + B] * m).sum(axis=0)
            k = m.sum(axis=0).astype(np.int64)
            v = np.array(
                [
                    math.floor(2 * math.sqrt(max(yy - kk * offset, 0) / gain + kk * (r * r) + 0.375) / step + 0.5)
                    for yy, kk in zip(y.ravel().tolist(), k.ravel().tolist())
                ]
            ).reshape(y.shape)
            group = doc["groups"][g]
            np.testing.assert_array_equal(k, group["k"])
            np.testing.assert_array_equal(v, group["v"])
            u = spec_rows.residuals(
                v, k, (c["name"], step, gain, offset, r), 8 * np.dtype(doc["measurement_dtype"]).itemsize
            )
            np.testing.assert_array_equal(stored[g], u)
            np.testing.assert_array_equal(stored[g], group["u"])
            half = v * (step / 2)
            estimate = k * offset + gain * np.maximum((half * half - 0.375) - k * (r * r), 0)
            np.testing.assert_array_equal(reader.measurement(g), estimate.astype(np.float32))
            np.testing.assert_array_equal(np.array(group["estimate"], dtype=np.float32), estimate.astype(np.float32))
