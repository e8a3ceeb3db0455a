"""Predicted measurements (formats/tcs.md §11, ``rows-v1``) against the specification."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest
import tifffile

import emtcs
import spec_rows
from emtcs.prediction import BLOCK, RowPrediction, aligned_window
from emtcs.quantise import EXACT, MeasurementCoding
from emtcs.sensing import encode, masks

VECTORS = Path(__file__).resolve().parents[1] / "formats" / "prediction-vectors-v1.json"


def _coding(c: dict) -> MeasurementCoding:
    if c["name"] == "exact":
        return EXACT
    if c["name"] == "gaussian-v1":
        return MeasurementCoding.gaussian(c["step"], c["sigma"])
    return MeasurementCoding(c["name"], c["step"], c["gain"], c["offset"], c["read_noise"])


def _spec_tuple(coding: MeasurementCoding) -> tuple:
    if not coding.quantised:
        return ("exact",)
    if coding.name == "gaussian-v1":
        return (coding.name, coding.step, coding.sigma)
    return (coding.name, coding.step, coding.gain, coding.offset, coding.read_noise)


def test_test_vectors():
    doc = json.loads(VECTORS.read_text())
    assert doc["prediction"] == "rows-v1" and len(doc["cases"]) == 5
    zero_k = False
    for case in doc["cases"]:
        coding, dtype = _coding(case["coding"]), np.dtype(case["measurement_dtype"])
        k, v, u = (np.array(case[n]) for n in ("k", "v", "u"))
        pred = RowPrediction(coding, dtype)
        np.testing.assert_array_equal(pred.residuals(v.astype(dtype), k.astype(np.uint8)), u, err_msg=case["case"])
        np.testing.assert_array_equal(pred.values(u.astype(dtype), k.astype(np.uint8)), v, err_msg=case["case"])
        # and the oracle agrees with the file it was not used to check here
        bits = 8 * dtype.itemsize
        np.testing.assert_array_equal(spec_rows.values(u, k, _spec_tuple(coding), bits), v)
        K = k[:-1, :] + np.pad(k[:-1, :-1], ((0, 0), (1, 0))) + np.pad(k[:-1, 1:], ((0, 0), (0, 1)))
        zero_k |= bool((K == 0).any())
    assert zero_k, "no vector exercises K = 0"


@pytest.mark.parametrize(
    ("coding", "dtype", "shape"),
    [
        (EXACT, np.uint16, (260, 7)),
        (EXACT, np.uint32, (5, 300)),
        (MeasurementCoding.anscombe(1.0, 2.0), np.uint16, (9, 270)),
        (MeasurementCoding.anscombe(0.5, 1.5, 80.0, 3.0), np.uint16, (258, 11)),
        (MeasurementCoding.gaussian(1.0, 7.5), np.uint16, (7, 262)),
    ],
)
def test_emtcs_matches_the_specification_and_round_trips(coding, dtype, shape):
    rng = np.random.default_rng(5)
    B = 6
    m = masks(11, B, shape)
    k = m.sum(0, dtype=np.uint8)
    frames = rng.poisson(200.0, (B, *shape)) + (80 if coding.needs_counts else 0)
    y = encode(frames.astype(np.uint16), m).astype(np.float64)
    v = (coding.encode(y, k) if coding.needs_counts else coding.encode(y)).astype(dtype)
    pred = RowPrediction(coding, np.dtype(dtype))
    u = pred.residuals(v, k)
    assert u.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(u, spec_rows.residuals(v, k, _spec_tuple(coding), 8 * np.dtype(dtype).itemsize))
    np.testing.assert_array_equal(pred.values(u, k), v)


def test_differences_wrap_modulo_the_stored_type():
    """uint8 sums jumping between 0 and 255: the differences wrap, and still round-trip."""
    rng = np.random.default_rng(1)
    v = np.where(rng.random((20, 30)) < 0.5, 0, 255).astype(np.uint8)
    k = rng.integers(0, 3, (20, 30)).astype(np.uint8)
    pred = RowPrediction(EXACT, np.dtype(np.uint8))
    u = pred.residuals(v, k)
    np.testing.assert_array_equal(u, spec_rows.residuals(v, k, ("exact",), 8))
    np.testing.assert_array_equal(pred.values(u, k), v)


def test_uint64_measurements_are_not_predicted():
    assert not RowPrediction.supports(np.dtype(np.uint64))
    with pytest.raises(ValueError, match="at most 32 bits"):
        RowPrediction(EXACT, np.dtype(np.uint64))


def test_aligned_window_covers_whole_blocks():
    assert aligned_window(slice(300, 310), slice(5, 600), (700, 650)) == (slice(256, 512), slice(0, 650))
    assert aligned_window(slice(None), slice(None), (10, 20)) == (slice(0, 10), slice(0, 20))


@pytest.fixture
def counted_movie(tmp_path: Path) -> tuple[Path, np.ndarray]:
    """A smooth specimen counted at 50 electrons per pixel, larger than a block both ways."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:300, 0:280]
    clean = 50 * (1 + 0.5 * np.sin(xx / 11.0) * np.cos(yy / 13.0))
    frames = rng.poisson(np.broadcast_to(clean, (8, 300, 280))).astype(np.uint16)
    path = tmp_path / "counted.tif"
    tifffile.imwrite(path, frames)
    return path, frames


def test_compress_writes_predicted_measurements_that_read_back(tmp_path, counted_movie):
    path, frames = counted_movie
    out = tmp_path / "m.tcs"
    info = emtcs.compress(path, out, B=4, seed=3, quantise=0)
    assert info["format_version"] == "4.0" and info["measurement_prediction"] == "rows-v1"
    m = masks(3, 4, frames.shape[1:])
    with emtcs.open(out) as r:
        for g in range(2):
            y = encode(frames[4 * g : 4 * g + 4], m)
            np.testing.assert_array_equal(r.measurement(g), y)
            # windows that cut blocks read as the whole measurement does
            for window in (
                (slice(250, 290), slice(3, 270)),
                (slice(0, 1), slice(279, 280)),
                (slice(257, 300), slice(None)),
                (slice(3, 299, 7), slice(None, None, 2)),
            ):
                np.testing.assert_array_equal(r.measurement(g, window), y[window])


def test_prediction_makes_files_smaller(tmp_path, counted_movie):
    """The same quantised values, deflated as the file stores them, with and without prediction."""
    path, _ = counted_movie
    out = tmp_path / "m.tcs"
    emtcs.compress(path, out, B=4, gain=1.0)
    with emtcs.open(out) as r:
        assert r.header.measurement_prediction == "rows-v1" and r.header.coding.quantised
        predicted = r._ds.id.get_storage_size()
        k = r.masks(0).sum(0, dtype=np.uint8)
        pred = RowPrediction(r.header.coding, np.dtype(r.header.measurement_dtype))
        values = np.stack([pred.values(r.stored(g), k) for g in range(r.n_groups)])
    with h5py.File(tmp_path / "plain.h5", "w") as f:
        ds = f.create_dataset(
            "v",
            data=values,
            chunks=(1, BLOCK, BLOCK),
            shuffle=True,
            compression="gzip",
            compression_opts=4,
            fletcher32=True,
        )
        plain = ds.id.get_storage_size()
    assert predicted < 0.8 * plain, (predicted, plain)
