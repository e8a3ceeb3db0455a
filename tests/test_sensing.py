"""The forward model: mask generator against its specification and test vectors, the encoder."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from emtcs.encoder import GroupEncoder, ValueMap
from emtcs.sensing import SeededMasks, check_density, encode, mask_bits, masks

VECTORS = Path(__file__).resolve().parents[1] / "formats" / "mask-vectors-v1.json"
DENSITY_VECTORS = VECTORS.with_name("mask-vectors-v2.json")


def _spec_bit(seed: int, b: int, y: int, x: int, density: float = 0.5) -> int:
    """The generator exactly as formats/tcs.md §5 writes it, in plain Python integers
    (``emtcs-hash32-v1``; with ``density``, ``-v2``)."""

    def mix(h: int) -> int:
        h ^= h >> 16
        h = (h * 0x7FEB352D) & 0xFFFFFFFF
        h ^= h >> 15
        h = (h * 0x21F0AAAD) & 0xFFFFFFFF
        return h ^ (h >> 15)

    k = mix(seed ^ 0x6A09E667)
    kb = mix(k ^ mix(b ^ 0x3C6EF372))
    r = mix(kb ^ mix(y ^ 0xBB67AE85))
    h = mix(r ^ mix(x ^ 0xA54FF53A))
    return h >> 31 if density == 0.5 else int(h >= 2**32 - round(density * 2**32))


def test_mask_test_vectors():
    data = json.loads(VECTORS.read_text())
    assert data["generator"] == "emtcs-hash32-v1"
    vec = np.array(data["vectors"], dtype=np.int64)
    assert len(vec) >= 100
    for seed in np.unique(vec[:, 0]):
        rows = vec[vec[:, 0] == seed]
        got = mask_bits(int(seed), rows[:, 1], rows[:, 2], rows[:, 3])
        np.testing.assert_array_equal(got, rows[:, 4])
    for s, b, y, x, bit in data["vectors"][:50]:
        assert _spec_bit(s, b, y, x) == bit


def test_density_test_vectors():
    data = json.loads(DENSITY_VECTORS.read_text())
    assert data["generator"] == "emtcs-hash32-v2" and len(data["vectors"]) >= 100
    for s, b, y, x, density, bit in data["vectors"]:
        assert int(mask_bits(s, b, y, x, density=density)) == bit
        assert _spec_bit(s, b, y, x, density) == bit
    assert {v[4] for v in data["vectors"]} >= {2**-32, 1 - 2**-32, 0.5, 0.25}


def test_masks_of_a_density_are_v1_at_one_half_and_nest():
    m = {p: masks(9, 6, (128, 128), (40, 7), density=p) for p in (0.5, 0.25, 0.125)}
    np.testing.assert_array_equal(m[0.5], masks(9, 6, (128, 128), (40, 7)))
    for p, mp in m.items():
        assert abs(mp.mean() - p) < 0.01
    # one hash, thresholds apart: every 1 of a sparser mask is a 1 of a denser one
    assert np.all(m[0.125] <= m[0.25]) and np.all(m[0.25] <= m[0.5])
    np.testing.assert_array_equal(
        SeededMasks(9, 6, (200, 200), density=0.25).window(slice(40, 168), slice(7, 135)), m[0.25]
    )
    for bad in (0.0, 1.0, -0.1, 2**-34, float("nan")):
        with pytest.raises(ValueError, match="density"):
            check_density(bad)


def test_masks_window_equals_crop_of_frame():
    full = masks(123, 5, (70, 90))
    np.testing.assert_array_equal(masks(123, 5, (20, 31), (33, 47)), full[:, 33:53, 47:78])
    np.testing.assert_array_equal(masks(123, 2, (70, 90), first=3), full[3:5])
    strided = SeededMasks(123, 5, (70, 90)).window(slice(1, 70, 4), slice(0, 90, 3))
    np.testing.assert_array_equal(strided, full[:, 1::4, ::3])


def test_masks_are_balanced_and_differ_by_seed_and_frame():
    m = masks(0, 4, (256, 256))
    assert m.dtype == np.uint8 and set(np.unique(m)) == {0, 1}
    assert abs(m.mean() - 0.5) < 0.005
    assert abs(np.corrcoef(m[0].ravel(), m[1].ravel())[0, 1]) < 0.02
    # neighbouring pixels are uncorrelated (no stripes)
    assert abs(np.corrcoef(m[0, :, 1:].ravel(), m[0, :, :-1].ravel())[0, 1]) < 0.02
    assert abs(np.corrcoef(m[0, 1:].ravel(), m[0, :-1].ravel())[0, 1]) < 0.02
    assert (masks(1, 1, (64, 64)) != masks(0, 1, (64, 64))).mean() > 0.4


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.uint32])
def test_encode_exact_with_short_group(dtype):
    rng = np.random.default_rng(1)
    info = np.iinfo(dtype)
    frames = rng.integers(0, int(info.max), size=(7, 33, 65), dtype=dtype, endpoint=True)
    m = masks(5, 10, (33, 65))
    y = encode(frames, m)  # 7 frames, 10 masks: a short group uses the first 7
    ref = sum(frames[b].astype(object) * m[b] for b in range(7))
    np.testing.assert_array_equal(y.astype(object), ref)
    assert y.dtype.kind == "u" and np.iinfo(y.dtype).max >= 7 * int(info.max)


def test_encode_float_and_signed_match_definition():
    rng = np.random.default_rng(2)
    m = masks(9, 3, (8, 9))
    f = rng.normal(size=(3, 8, 9)).astype(np.float32)
    np.testing.assert_allclose(encode(f, m), (f * m).sum(0), rtol=1e-6)
    i = rng.integers(-30000, 30000, size=(3, 8, 9)).astype(np.int16)
    np.testing.assert_array_equal(encode(i, m), (i.astype(np.int64) * m).sum(0))


@pytest.mark.parametrize(
    "dtype, values",
    [(np.uint8, [0, 7, 255]), (np.int16, [-32768, -1, 0, 32767]), (np.int32, [-(2**31), 5, 2**31 - 1])],
)
def test_value_map_integers_are_lossless(dtype, values):
    vm = ValueMap.for_source(np.dtype(dtype))
    x = np.array(values, dtype=dtype)
    levels = vm.to_levels(x)
    assert levels.dtype.kind == "u" and levels.min() >= 0 and int(levels.max()) <= vm.max_level
    np.testing.assert_array_equal(vm.to_source(levels.astype(np.float64)), x)


def test_value_map_float_quantisation_error_bounded():
    x = np.linspace(-0.3, 1.7, 1001, dtype=np.float32)
    vm = ValueMap.for_source(np.dtype(np.float32), (float(x.min()), float(x.max())))
    back = vm.to_source(vm.to_levels(x).astype(np.float64))
    assert np.abs(back - x).max() <= vm.scale / 2 + 1e-6


def test_group_encoder_matches_encode():
    vm = ValueMap.for_source(np.dtype(np.uint16))
    enc = GroupEncoder(3, 6, (20, 30), vm)
    frames = np.random.default_rng(0).integers(0, 65535, size=(6, 20, 30), dtype=np.uint16)
    np.testing.assert_array_equal(enc.encode(frames), encode(frames, masks(3, 6, (20, 30))))
    np.testing.assert_array_equal(enc.encode(frames[:2]), encode(frames[:2], masks(3, 6, (20, 30))))
    with pytest.raises(ValueError):
        enc.encode(np.zeros((7, 20, 30), np.uint16))
