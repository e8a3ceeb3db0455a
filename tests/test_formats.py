"""Microscopists' formats: MRC, DM, Velox and Berkeley EMD, SER in; MRC and TIFF out; metadata."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import uuid
from pathlib import Path

import h5py
import numpy as np
import pytest
import tifffile

import emtcs
from conftest import drifting_movie, shared_file
from emtcs.errors import InputError, MissingDependencyError
from emtcs.io import create_movie, detect_format, open_movie
from emtcs.io.base import jsonable, normalised_metadata
from emtcs.metrics import psnr
from emtcs.sensing import encode, masks
from test_cli import CliRunnerNoCatch

mrcfile = pytest.importorskip("mrcfile")


# -- files the tests write ------------------------------------------------------------


def write_mrc(path: Path, frames: np.ndarray, voxel_angstrom: float = 2.5) -> Path:
    with mrcfile.new(path, overwrite=True) as mrc:
        mrc.set_data(frames)
        if frames.ndim == 3:
            mrc.set_image_stack()
        mrc.voxel_size = voxel_angstrom
    return path


def write_velox(path: Path, frames: np.ndarray, pixel_m: float = 2e-10, frame_time: float = 0.1) -> Path:
    """A minimal Velox EMD: frames stored (H, W, N), one JSON metadata column per frame."""
    n, h, w = frames.shape
    meta = {
        "Acquisition": {"AcquisitionStartDatetime": {"DateTime": "1600000000"}},
        "BinaryResult": {
            "PixelSize": {"width": str(pixel_m), "height": str(pixel_m)},
            "PixelUnitX": "m",
            "PixelUnitY": "m",
            "DetectorIndex": "0",
            "Offset": {"x": "0", "y": "0"},
        },
        "Detectors": {"Detector-0": {"DetectorName": "HAADF", "DetectorType": "ScanningDetector"}},
        "Instrument": {"InstrumentClass": "Titan", "InstrumentModel": "Titan Themis Z"},
        "Scan": {"FrameTime": str(frame_time), "DwellTime": "1e-6"},
        "Optics": {"AccelerationVoltage": "300000"},
    }
    raw = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    column = np.zeros((raw.size + 8, n), dtype=np.uint8)
    column[: raw.size] = raw[:, None]
    with h5py.File(path, "w") as f:
        f.create_dataset("Version", data=np.array([json.dumps({"format": "Velox", "version": "3"}).encode()]))
        grp = f.create_group(f"Data/Image/{uuid.uuid4().hex}")
        grp.create_dataset("Data", data=np.moveaxis(frames, 0, -1), chunks=(h, w, 1))
        grp.create_dataset("Metadata", data=column)
    return path


def write_berkeley(path: Path, frames: np.ndarray, frames_last: bool = False) -> Path:
    """A Berkeley EMD 0.2 file: data/movie/data with its dim vectors (time in s, lengths in nm)."""
    n, h, w = frames.shape
    dims = [("time", "s", 0.02 * np.arange(n)), ("y", "n_m", 0.05 * np.arange(h)), ("x", "n_m", 0.05 * np.arange(w))]
    data = frames
    if frames_last:
        data, dims = np.moveaxis(frames, 0, -1), dims[1:] + dims[:1]
    with h5py.File(path, "w") as f:
        f.attrs["version_major"], f.attrs["version_minor"] = 0, 2
        grp = f.create_group("data/movie")
        grp.attrs["emd_group_type"] = 1
        grp.create_dataset("data", data=data)
        for i, (name, units, values) in enumerate(dims, 1):
            ds = grp.create_dataset(f"dim{i}", data=values)
            ds.attrs["name"], ds.attrs["units"] = np.bytes_(name), np.bytes_(units)
        f.create_group("microscope").attrs.update({"name": "TEAM I", "high tension": 300000.0})
        f.create_group("user").attrs["name"] = "tester"
    return path


def _round_trip(src: Path, tmp_path: Path, B: int = 3, out: str = "out.tif") -> tuple[np.ndarray, dict]:
    tcs = tmp_path / "m.tcs"
    emtcs.compress(src, tcs, B=B, force=True)
    emtcs.decompress(tcs, tmp_path / out, decoder="gaptv", force=True)
    with open_movie(tmp_path / out) as movie:
        restored = movie.read(0, movie.n_frames)
    with emtcs.open(tcs) as r:
        return restored, r.header.metadata


def _quality(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.astype(np.float64), b.astype(np.float64)
    return psnr(a, b, data_range=float(a.max() - a.min()) or 1.0)


# -- MRC ----------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.uint16, np.int16, np.float32, np.int8])
def test_mrc_reads_frames_exactly_and_round_trips(tmp_path, dtype):
    frames = drifting_movie(6, (32, 40), dtype)
    src = write_mrc(tmp_path / "movie.mrcs", frames)
    assert detect_format(src) == "mrc"
    with open_movie(src) as movie:
        assert (movie.n_frames, movie.frame_shape, movie.dtype) == (6, (32, 40), np.dtype(dtype))
        np.testing.assert_array_equal(movie.read(0, 6), frames)
        assert movie.metadata["pixel_size"] == pytest.approx([0.25, 0.25])
        assert movie.metadata["pixel_unit"] == "nm"
    restored, meta = _round_trip(src, tmp_path, out="out.mrc")
    assert meta["source_format"] == "mrc" and meta["original_metadata"]["header"]["nz"] == 6
    assert restored.shape == frames.shape and restored.dtype == frames.dtype
    assert _quality(frames, restored) > 20
    with mrcfile.open(tmp_path / "out.mrc") as out:
        assert out.voxel_size.x == pytest.approx(2.5) and out.is_image_stack()
        assert out.header.dmin == restored.min() and out.header.dmax == restored.max()
    assert mrcfile.validate(str(tmp_path / "out.mrc"), print_file=io.StringIO())


def test_mrc_writer_widens_types_mrc_lacks_and_keeps_frame_interval(tmp_path):
    meta = normalised_metadata(pixel_size=(0.5, 0.5), pixel_unit="µm", frame_interval=0.04)
    data = {np.uint8: np.uint16, np.uint32: np.float32, np.float64: np.float32}
    for src_type, file_type in data.items():
        frames = drifting_movie(2, (8, 12), src_type)
        with create_movie(tmp_path / "o.mrc", frames.shape, src_type, meta) as out:
            for t in range(2):
                out.write(t, frames[t])
        with mrcfile.open(tmp_path / "o.mrc") as mrc:
            assert mrc.data.dtype == file_type
            np.testing.assert_array_equal(mrc.data, frames.astype(file_type))
            assert mrc.voxel_size.x == pytest.approx(5000.0)
    with open_movie(tmp_path / "o.mrc") as movie:
        assert movie.metadata["frame_interval"] == 0.04


def test_mrc_writer_takes_row_bands_in_any_order(tmp_path):
    frames = drifting_movie(3, (20, 9), np.uint16)
    with create_movie(tmp_path / "o.mrc", frames.shape, np.uint16, normalised_metadata()) as out:
        for t in (2, 0, 1):
            for rows in (slice(12, 20), slice(0, 5), slice(5, 12)):
                out.write(t, frames[t, rows], rows)
    with mrcfile.open(tmp_path / "o.mrc") as mrc:
        np.testing.assert_array_equal(mrc.data, frames)
        assert mrc.voxel_size.x == 0  # no calibration given: none written


def test_mrc_single_image_is_a_one_frame_movie(tmp_path):
    src = write_mrc(tmp_path / "image.mrc", drifting_movie(1, (16, 16), np.float32)[0])
    with open_movie(src) as movie:
        assert movie.n_frames == 1 and movie.frame_shape == (16, 16)
    with pytest.raises(InputError, match="larger than the movie"):
        emtcs.compress(src, tmp_path / "x.tcs", B=2)


def test_mrc_fei_extended_header_fills_the_metadata(tmp_path):
    from mrcfile.dtypes import get_ext_header_dtype

    dt = get_ext_header_dtype(b"FEI1")
    ext = np.zeros(2, dtype=dt)
    ext["Metadata size"] = dt.itemsize
    ext["Microscope type"], ext["Camera name"], ext["Integration time"] = b"Krios G4", b"Falcon 4i", 0.25
    ext["Pixel size X"] = ext["Pixel size Y"] = 1.2e-10
    with mrcfile.new(tmp_path / "fei.mrc") as mrc:
        mrc.set_data(drifting_movie(2, (8, 8), np.int16))
        mrc.set_extended_header(ext)
        mrc.header.exttyp = b"FEI1"
    with open_movie(tmp_path / "fei.mrc") as movie:
        m = movie.metadata
    assert (m["microscope"], m["detector"], m["exposure"]) == ("Krios G4", "Falcon 4i", 0.25)
    assert m["pixel_size"] == pytest.approx([0.12, 0.12]) and m["pixel_unit"] == "nm"


# -- EMD ----------------------------------------------------------------------------


def test_velox_emd_is_read_with_its_metadata(tmp_path, run):
    pytest.importorskip("rsciio")
    frames = drifting_movie(6, (24, 32), np.uint16)
    src = write_velox(tmp_path / "velox.emd", frames)
    assert detect_format(src) == "velox"
    with open_movie(src) as movie:
        np.testing.assert_array_equal(movie.read(0, 6), frames)
        m = movie.metadata
    assert m["pixel_size"] == pytest.approx([0.2, 0.2]) and m["pixel_unit"] == "nm"
    assert m["frame_interval"] == pytest.approx(0.1) and m["exposure"] == pytest.approx(0.1)
    assert m["microscope"] == "Titan Themis Z" and m["detector"] == "HAADF"
    assert m["acquisition_time"] == "2020-09-13T12:26:40+00:00"
    assert m["original_metadata"]["Optics"]["AccelerationVoltage"] == "300000"
    restored, meta = _round_trip(src, tmp_path)
    assert meta["detector"] == "HAADF" and _quality(frames, restored) > 20
    text = run("info", tmp_path / "m.tcs").output
    for needle in (
        "Titan Themis Z",
        "HAADF",
        "2020-09-13T12:26:40",
        "exposure: 0.1 s",
        "velox-emd",
        "0.2 x 0.2 nm",
        "frame interval: 0.1 s",
    ):
        assert needle in text, text


@pytest.mark.parametrize("frames_last", [False, True])
def test_berkeley_emd_frames_on_either_axis(tmp_path, frames_last):
    pytest.importorskip("ncempy")
    frames = drifting_movie(5, (20, 28), np.float32)
    src = write_berkeley(tmp_path / "movie.emd", frames, frames_last=frames_last)
    assert detect_format(src) == "berkeley-emd"
    with open_movie(src) as movie:
        assert movie.n_frames == 5 and movie.frame_shape == (20, 28)
        np.testing.assert_array_equal(movie.read(0, 5), frames)
        m = movie.metadata
    assert m["pixel_size"] == pytest.approx([0.05, 0.05]) and m["pixel_unit"] == "nm"
    assert m["frame_interval"] == pytest.approx(0.02) and m["microscope"] == "TEAM I"
    assert m["original_metadata"]["user"]["name"] == "tester"
    restored, _ = _round_trip(src, tmp_path)
    assert _quality(frames, restored) > 20


# -- the real vendor files in ../shared/data/em/originals ----------------------------


@pytest.mark.parametrize(
    "original, tiff, expect",
    [
        (
            "example_Se_implanted_MoS2.dm3",
            "stem-haadf_se-implanted-mos2_1x1024x1024_uint32.tif",
            {
                "source_format": "dm",
                "pixel_size": 0.0126953125,
                "detector": "DigiScan",
                "acquisition_time": "2016-07-03T17:20:54+00:00",
            },
        ),
        (
            "16_STOimage_1.ser",
            "stem-haadf_srtio3_1x1024x1024_uint16.tif",
            {"source_format": "ser", "pixel_size": 0.0100127, "microscope": "TitanCubed D3147 S-Twin"},
        ),
        (
            "Acquisition_18.emd",
            "stem_srtio3-team_1x1024x1024_uint16.tif",
            {"source_format": "berkeley-emd", "pixel_size": 0.0122465, "microscope": "TEAM 0.5"},
        ),
    ],
)
def test_real_vendor_files_match_their_tiffs(original, tiff, expect):
    pytest.importorskip("rsciio")
    pytest.importorskip("ncempy")
    src = shared_file("em", "originals", original)
    reference = tifffile.imread(shared_file("em", tiff))
    with open_movie(src) as movie:
        pixels = movie.read(0, movie.n_frames)
        m = movie.metadata
    assert pixels.dtype == reference.dtype
    np.testing.assert_array_equal(pixels, reference)
    assert m["pixel_size"][1] == pytest.approx(expect.pop("pixel_size"), rel=1e-5) and m["pixel_unit"] == "nm"
    for key, value in expect.items():
        assert m[key] == value
    json.dumps(m["original_metadata"], allow_nan=False)


# -- dispatch, errors, missing extras ------------------------------------------------


def test_dispatch_by_content(tmp_path):
    write_mrc(tmp_path / "stack.dat", drifting_movie(2, (8, 8), np.int16))
    assert detect_format(tmp_path / "stack.dat") == "mrc"  # "MAP " at byte 208
    (tmp_path / "fake.ser").write_bytes(b"II\x97\x01" + bytes(100))
    assert detect_format(tmp_path / "fake.ser") == "ser"  # not TIFF, though it starts with "II"
    (tmp_path / "x.emi").write_bytes(b"<emi/>" * 10)
    with pytest.raises(InputError, match=r"give the .ser file beside it \(x_1.ser"):
        detect_format(tmp_path / "x.emi")
    (tmp_path / "short.mrc").write_bytes(b"\x00" * 100)
    with pytest.raises(InputError, match="not a MRC file"):
        detect_format(tmp_path / "short.mrc")
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f["x"] = 1
    with pytest.raises(InputError, match="neither a Velox nor a Berkeley EMD"):
        detect_format(tmp_path / "other.h5")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(InputError, match="not a movie file emtcs can read"):
        detect_format(tmp_path / "notes.txt")


def test_tcs_given_to_compress_says_so(tmp_path, movie_file):
    src, _ = movie_file(n=4, shape=(8, 8))
    emtcs.compress(src, tmp_path / "m.tcs", B=2)
    with pytest.raises(InputError, match="is a .tcs file already"):
        emtcs.compress(tmp_path / "m.tcs", tmp_path / "n.tcs", B=2)


@pytest.mark.parametrize("module, fmt", [("mrcfile", "mrc"), ("rsciio.emd", "velox"), ("ncempy.io.emd", "berkeley")])
def test_missing_reader_names_the_extra(tmp_path, monkeypatch, module, fmt):
    frames = drifting_movie(2, (8, 8), np.uint16)
    src = {
        "mrc": lambda: write_mrc(tmp_path / "a.mrc", frames),
        "velox": lambda: write_velox(tmp_path / "a.emd", frames),
        "berkeley": lambda: write_berkeley(tmp_path / "a.emd", frames),
    }[fmt]()
    monkeypatch.setitem(sys.modules, module, None)  # as if not installed
    with pytest.raises(MissingDependencyError, match=r"needs \w+: pip install 'emtcs\[formats\]'"):
        open_movie(src)


def test_missing_mrcfile_as_a_user_sees_it(tmp_path, movie_file):
    src, _ = movie_file(n=4, shape=(8, 8))
    emtcs.compress(src, tmp_path / "m.tcs", B=2)
    code = (
        "import sys; sys.modules['mrcfile'] = None; from emtcs.cli import main; "
        f"main(['decompress', {str(tmp_path / 'm.tcs')!r}, '-o', {str(tmp_path / 'o.mrc')!r}])"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.strip() == (
        "emtcs: error: reading and writing MRC files needs mrcfile: pip install 'emtcs[formats]'"
    )
    assert not (tmp_path / "o.mrc").exists()


def test_version_1_0_files_are_still_read(tmp_path):
    """A file as the first emtcs wrote it: exact sums in groups of B, no prediction."""
    from emtcs.container import TcsHeader, TcsWriter
    from emtcs.encoder import GroupEncoder, ValueMap

    frames = np.random.default_rng(0).integers(0, 4000, size=(6, 16, 16)).astype(np.uint16)
    vmap = ValueMap.for_source(frames.dtype)
    enc = GroupEncoder(0, 3, (16, 16), vmap)
    tcs = tmp_path / "m.tcs"
    hd = TcsHeader(B=3, n_frames=6, frame_shape=(16, 16), source_dtype="uint16", measurement_dtype=enc.dtype.name)
    with TcsWriter(tcs, hd) as w:
        for g in range(2):
            w.write_group(range(3 * g, 3 * g + 3), enc.encode(frames[3 * g : 3 * g + 3]))
        assert w.finish().format_version == (1, 2)
    with h5py.File(tcs, "r+") as f:
        f.attrs["format_version"] = np.array([1, 0], dtype=np.uint32)
    with emtcs.open(tcs) as r:
        np.testing.assert_array_equal(r.measurement(1), encode(frames[3:], masks(0, 3, (16, 16))))
    emtcs.decompress(tcs, tmp_path / "o.tif", decoder="gaptv")
    assert tifffile.imread(tmp_path / "o.tif").shape == frames.shape


# -- metadata ------------------------------------------------------------------------


def test_metadata_is_made_json_able():
    tree = {
        "a": np.float32(1.5),
        "b": np.arange(3),
        "c": np.zeros((40, 40)),
        "d": b"Titan\x00\x00",
        "e": float("nan"),
        7: [np.int64(2), (np.bool_(True),)],
        "f": Path("x"),
    }
    out = jsonable(tree)
    assert out == {
        "a": 1.5,
        "b": [0, 1, 2],
        "c": "<array 40x40 float64>",
        "d": "Titan",
        "e": None,
        "7": [2, [True]],
        "f": "x",
    }
    json.dumps(out, allow_nan=False)
    m = normalised_metadata(
        pixel_size=(1, 2),
        pixel_unit="nm",
        microscope=" Unknown ",
        detector=b"K3 ",
        exposure=0.0,
        original_metadata={"x": np.uint8(3)},
    )
    assert m == {
        "pixel_size": [1.0, 2.0],
        "pixel_unit": "nm",
        "frame_interval": None,
        "detector": "K3",
        "original_metadata": {"x": 3},
    }


def test_compress_several_inputs_one_tcs_each(tmp_path, run, movie_file):
    a, _ = movie_file(n=4, shape=(8, 8), name="a.tif")
    b = write_mrc(tmp_path / "b.mrc", drifting_movie(6, (8, 8), np.int16))
    r = run("compress", a, b, "-B", "2", "-q")
    assert r.exit_code == 0, r.output
    with emtcs.open(tmp_path / "a.tcs") as ra, emtcs.open(tmp_path / "b.tcs") as rb:
        assert (ra.header.n_frames, rb.header.n_frames) == (4, 6)
        assert rb.header.metadata["source_format"] == "mrc"
    write_mrc(tmp_path / "a.mrc", drifting_movie(2, (8, 8), np.int16))
    r = CliRunnerNoCatch().invoke(["compress", str(a), str(tmp_path / "a.mrc"), "-B", "2", "--force"])
    assert r.exit_code == 1 and "would both be compressed into" in r.stderr
    r = CliRunnerNoCatch().invoke(["compress", str(a), str(b), "-B", "2", "-o", str(tmp_path / "x.tcs")])
    assert r.exit_code == 1 and "-o names the output of one INPUT" in r.stderr
