"""Quantised measurements (format 2.0, ``anscombe-v1``) against formats/tcs.md §9."""

from __future__ import annotations

import json
import math
from pathlib import Path

import h5py
import numpy as np
import pytest
import tifffile

import emtcs
import spec_rows
from emtcs.errors import FormatError, InputError
from emtcs.quantise import MeasurementCoding
from emtcs.sensing import encode, masks

VECTORS = Path(__file__).resolve().parents[1] / "formats" / "quant-vectors-v1.json"


def _spec_q(y: int, step: float, gain: float) -> int:
    """§9 transcribed with Python floats (binary64) and math.sqrt."""
    return math.floor(2.0 * math.sqrt(y / gain + 0.375) / step + 0.5)


def _counts_truth() -> np.ndarray:
    """The noise-free frames of :func:`counts_movie`, in electrons."""
    yy, xx = np.mgrid[0:48, 0:64]
    return np.broadcast_to(300 * (1 + 0.5 * np.sin(xx / 5.0 + yy / 7.0)), (12, 48, 64))


@pytest.fixture
def counts_movie(tmp_path):
    """A Poisson movie of ~300 electrons per pixel per frame (uint16 counts, gain 1)."""
    rng = np.random.default_rng(5)
    frames = rng.poisson(_counts_truth()).astype(np.uint16)
    path = tmp_path / "counts.tif"
    tifffile.imwrite(path, frames)
    return path, frames


@pytest.mark.parametrize(("step", "gain"), [(1.0, 1.0), (0.5, 3.0)])
def test_stored_values_follow_the_spec(tmp_path, counts_movie, step, gain):
    path, frames = counts_movie
    out = tmp_path / "q.tcs"
    emtcs.compress(path, out, B=5, seed=9, quantise=step, gain=gain)
    m = masks(9, 5, frames.shape[1:])
    with h5py.File(out, "r") as f:
        a = f.attrs
        assert list(a["format_version"]) == [4, 0] and a["measurement_prediction"] == b"rows-v1"
        assert a["measurement_coding"] == b"anscombe-v1"  # fixed-length UTF-8 strings (tcs.md §1)
        assert a["quant_step"] == step and a["quant_gain"] == gain
        stored = f["measurements"][:]
        assert np.dtype(a["measurement_dtype"].decode()) == stored.dtype == np.uint16  # q of 5 * 65535 fits
    for g, start in enumerate(range(0, 12, 5)):
        group = m[: len(frames[start : start + 5])]
        y = encode(frames[start : start + 5], group)
        q = np.array([_spec_q(int(v), step, gain) for v in y.ravel()]).reshape(y.shape)
        coding = ("anscombe-v1", step, gain, 0.0, 0.0)
        np.testing.assert_array_equal(stored[g], spec_rows.residuals(q, group.sum(0), coding, 16))
    with emtcs.open(out) as r:
        y0 = encode(frames[:5], m).astype(np.float64)
        est = r.measurement(0)
        assert est.dtype == np.float32
        # the error is at most half a step in the Anscombe domain: |dY| <= g * (step / 2) * sqrt(Y/g + 3/8) + O(step^2)
        bound = gain * (step / 2) * np.sqrt(y0 / gain + 0.375) + gain * step**2
        assert np.all(np.abs(est - y0) <= bound)


def test_quantised_file_is_smaller_and_decodes_nearly_as_well(tmp_path, counts_movie):
    path, frames = counts_movie
    exact, quant = tmp_path / "e.tcs", tmp_path / "q.tcs"
    e = emtcs.compress(path, exact, B=6, quantise=0)
    q = emtcs.compress(path, quant, B=6, quantise=1.0, gain=1.0)
    assert e["coding"] == "exact" and e["format_version"] == ("4.1" if e["noise_sigma"] else "4.0")
    sizes = {}
    for name, tcs in (("e", exact), ("q", quant)):
        with h5py.File(tcs, "r") as f:
            sizes[name] = f["measurements"].id.get_storage_size()
    assert sizes["q"] < 0.7 * sizes["e"], sizes
    assert q["file_bytes"] < e["file_bytes"]
    outs = {}
    for name, tcs in (("e", exact), ("q", quant)):
        emtcs.decompress(tcs, tmp_path / f"{name}.tif", decoder="gaptv", decoder_options={"iterations": 20})
        outs[name] = tifffile.imread(tmp_path / f"{name}.tif").astype(np.float64)
    err = {k: np.sqrt(np.mean((v - _counts_truth()) ** 2)) for k, v in outs.items()}
    assert err["q"] < 1.05 * err["e"]


def test_bad_quantisation_options_are_refused(tmp_path, movie_file, counts_movie):
    path, _ = counts_movie
    with pytest.raises(InputError, match="step"):
        emtcs.compress(path, tmp_path / "a.tcs", B=4, quantise=-1)
    with pytest.raises(InputError, match="gain"):
        emtcs.compress(path, tmp_path / "b.tcs", B=4, quantise=1, gain=0)
    fpath, _ = movie_file(n=6, dtype=np.float32, name="f.tif")
    with pytest.raises(InputError, match="give --gain"):  # a movie whose noise cannot be measured
        emtcs.compress(fpath, tmp_path / "c.tcs", B=3, quantise=1)
    assert not list(tmp_path.glob("*.tcs"))


def test_cli_quantise_and_info(run, tmp_path, counts_movie):
    path, _ = counts_movie
    out = tmp_path / "q.tcs"
    res = run("compress", path, "-B", "4", "--quantise", "1", "--gain", "1", "-o", out, "-q")
    assert res.exit_code == 0, res.output
    info = run("info", out)
    assert "anscombe-v1, step 1 sigma, gain 1 levels/e" in info.output
    bad = run("compress", path, "-B", "4", "--quantise", "100", "-o", tmp_path / "x.tcs")
    assert bad.exit_code == 1 and "quantisation step" in bad.output and "Traceback" not in bad.output
    both = run("compress", path, "-B", "4", "--quantise", "1", "--exact", "-o", tmp_path / "y.tcs")
    assert both.exit_code == 1 and "contradict" in both.output
    assert not (tmp_path / "x.tcs").exists() and not (tmp_path / "y.tcs").exists()
    # a given gain alone: quantised at one sigma by default; --exact keeps the sums
    assert run("compress", path, "-B", "4", "--gain", "2", "-o", tmp_path / "g.tcs", "-q").exit_code == 0
    assert "anscombe-v1, step 1 sigma, gain 2 levels/e" in run("info", tmp_path / "g.tcs").output
    assert run("compress", path, "-B", "4", "--exact", "-o", tmp_path / "e.tcs", "-q").exit_code == 0
    assert "exact" in run("info", tmp_path / "e.tcs").output


def test_unknown_coding_is_refused(tmp_path, counts_movie):
    path, _ = counts_movie
    out = tmp_path / "q.tcs"
    emtcs.compress(path, out, B=4, quantise=1.0, gain=1.0)
    with h5py.File(out, "r+") as f:
        f.attrs["measurement_coding"] = "mystery-v9"
    with pytest.raises(FormatError, match="unknown measurement coding 'mystery-v9'"):
        emtcs.open(out)


def test_exact_coding_is_the_identity():
    y = np.arange(10, dtype=np.uint32)
    c = MeasurementCoding.anscombe(0)
    assert not c.quantised and c.encode(y) is y and c.decode(y) is y


def test_lookup_and_direct_quantisation_agree_with_the_spec():
    coding = MeasurementCoding.anscombe(0.7, 1.3)
    y = np.random.default_rng(1).integers(0, 40_000, size=5000).astype(np.uint32)
    table = coding.table(40_000)
    direct = coding.encode(y)
    np.testing.assert_array_equal(np.take(table, y), direct)
    assert direct[:50].tolist() == [_spec_q(int(v), 0.7, 1.3) for v in y[:50]]
    big = np.array([2**31, 2**32 - 1], dtype=np.uint64)  # uint32 sources: sums beyond any table
    assert coding.table(2**33) is None
    assert coding.encode(big).tolist() == [_spec_q(int(v), 0.7, 1.3) for v in big]


def test_quantisation_test_vectors():
    data = json.loads(VECTORS.read_text())
    assert data["coding"] == "anscombe-v1" and len(data["vectors"]) >= 100
    for y, gain, step, q, estimate in data["vectors"]:
        coding = MeasurementCoding.anscombe(step, gain)
        assert _spec_q(y, step, gain) == q
        assert int(coding.encode(np.array([y], dtype=np.uint64))[0]) == q
        assert coding.decode(np.array([q], dtype=np.uint64))[0] == np.float32(estimate)


VECTORS_V2 = VECTORS.with_name("quant-vectors-v2.json")


def test_generalised_anscombe_test_vectors():
    data = json.loads(VECTORS_V2.read_text())
    assert data["coding"] == "anscombe-v2" and len(data["vectors"]) >= 100
    for y, k, gain, offset, read, step, q, estimate in data["vectors"]:
        coding = MeasurementCoding.anscombe(step, gain, offset, read)
        if offset == 0 and read == 0:
            assert coding.name == "anscombe-v1"  # the simplest coding holding the model
            coding = MeasurementCoding("anscombe-v2", step, gain, offset, read)
        assert coding.name == "anscombe-v2"
        kk = np.array([k], dtype=np.uint8)
        assert int(coding.encode(np.array([y], dtype=np.uint64), kk)[0]) == q
        assert coding.decode(np.array([q], dtype=np.uint64), kk)[0] == np.float32(estimate)


VECTORS_V3 = VECTORS.with_name("quant-vectors-v3.json")


def test_gaussian_coding_test_vectors():
    data = json.loads(VECTORS_V3.read_text())
    assert data["coding"] == "gaussian-v1" and len(data["vectors"]) >= 100
    for y, k, step, sigma, q, estimate in data["vectors"]:
        coding = MeasurementCoding.gaussian(step, sigma)
        kk = np.array([k], dtype=np.uint8)
        assert int(coding.encode(np.array([y], dtype=np.uint64), kk)[0]) == q
        assert coding.decode(np.array([q], dtype=np.uint64), kk)[0] == np.float32(estimate)


def test_offset_and_read_noise_are_stored_and_decode_within_half_a_step(tmp_path):
    """A CMOS-like movie (offset 100, read noise 2 e, 3 levels per electron): anscombe-v2,
    k frames summed per pixel from the masks, the last group short."""
    rng = np.random.default_rng(2)
    yy, xx = np.mgrid[0:40, 0:48]
    electrons = 50 * (1 + 0.5 * np.sin(xx / 4.0 + yy / 6.0))
    frames = np.rint(100 + 3 * (rng.poisson(np.broadcast_to(electrons, (12, 40, 48))) + rng.normal(0, 2, (12, 40, 48))))
    path = tmp_path / "cmos.tif"
    tifffile.imwrite(path, frames.astype(np.uint16))
    out = tmp_path / "cmos.tcs"
    info = emtcs.compress(path, out, B=5, seed=4, quantise=1.0, gain=3.0, offset=100.0)
    assert info["measurement_coding"] == "anscombe-v2" and info["quant_offset"] == 100.0
    m = masks(4, 5, (40, 48))
    with emtcs.open(out) as r:
        for g, start in enumerate(range(0, 12, 5)):
            group = frames[start : start + 5].astype(np.uint16)
            y = encode(group, m[: len(group)]).astype(np.float64)
            k = m[: len(group)].sum(0)
            est = r.measurement(g).astype(np.float64)
            # half a step of the generalised Anscombe domain, in levels
            sigma = 3.0 * np.sqrt(np.maximum(y - 100 * k, 0) / 3.0 + 4 * k + 0.375)
            assert np.all(np.abs(est - y) <= 0.5 * sigma + 3.0 + 1e-3)
            window = (slice(7, 30), slice(5, 41))
            np.testing.assert_array_equal(r.measurement(g, window), r.measurement(g)[window])


def test_gaussian_coding_follows_the_spec():
    """gaussian-v1 (§9): q = floor(Y / ((step * sigma) * sqrt(k)) + 1/2), 0 where k = 0."""
    coding = MeasurementCoding.gaussian(0.5, 6.5)
    k = np.array([0, 1, 2, 5, 10, 20], dtype=np.uint8)
    y = np.array([0, 100, 37, 1234, 20000, 5_100_000], dtype=np.float64)
    q = coding.encode(y, k)
    unit = [(0.5 * 6.5) * math.sqrt(kk) for kk in k]
    assert q.tolist() == [0 if not u else math.floor(yy / u + 0.5) for yy, u in zip(y, unit)]
    est = coding.decode(q, k)
    assert np.all(np.abs(est - y) <= np.array(unit) / 2 + 1e-3 * np.maximum(y, 1))
    assert coding.stored_dtype(np.dtype(np.uint32), 255 * 20, 20) == np.uint16
    with pytest.raises(InputError, match="standard deviation"):
        MeasurementCoding("gaussian-v1", 1.0, sigma=0.0)
