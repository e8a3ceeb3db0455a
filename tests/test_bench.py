"""emtcs bench: end to end on tiny movies, the byte budget, edge cases, the JSON against the table."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import tifffile

import emtcs

pytest.importorskip("imagecodecs")

from conftest import drifting_movie
from emtcs.bench import BenchConfig, run_bench
from emtcs.bench import codecs as bc
from emtcs.bench.report import cell, columns, jsonable

FAST = {"gaptv": {"iterations": 4}}


def _noisy(n: int = 12, shape: tuple[int, int] = (40, 52), seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    clean = drifting_movie(n, shape, np.uint16).astype(np.float32)
    rng = np.random.default_rng(seed)
    noisy = np.clip(np.rint(clean + rng.normal(0, 60, clean.shape)), 0, 65535).astype(np.uint16)
    return noisy, clean


def _rows(run: dict, **match) -> list[dict]:
    return [r for r in run["rows"] if all(r.get(k) == v for k, v in match.items())]


def _has(row: dict, path: tuple[str, ...]) -> bool:
    value = row
    for key in path:
        if not isinstance(value, dict) or key not in value:
            return False
        value = value[key]
    return True


def test_cli_end_to_end_json_table_and_plot(run, tmp_path):
    noisy, clean = _noisy()
    movie, truth = tmp_path / "movie.tif", tmp_path / "clean.tif"
    tifffile.imwrite(movie, noisy, photometric="minisblack")
    tifffile.imwrite(truth, clean, photometric="minisblack")
    out_json, out_png = tmp_path / "bench.json", tmp_path / "bench.png"
    result = run(
        "bench",
        movie,
        "--clean",
        truth,
        "-B",
        "4,6,20",
        "--decoder",
        "gaptv",
        "--json",
        out_json,
        "--plot",
        out_png,
        "-q",
    )
    assert result.exit_code == 0, result.output
    text = result.output
    assert out_png.stat().st_size > 10_000 and out_png.read_bytes()[:4] == b"\x89PNG"
    res = json.loads(out_json.read_text(), parse_constant=lambda c: pytest.fail(f"non-standard JSON: {c}"))
    (run_,) = res["runs"]
    assert set(run_["references"]) == {"clean", "denoised", "raw"}
    assert run_["input"]["frames"] == 12 and run_["input"]["dtype"] == "uint16"
    assert run_["versions"]["imagecodecs"] and run_["machine"]["cores"]
    assert "bisection" in run_["rules"]["budget"]
    assert run_["denoiser"]["function"].startswith("skimage.restoration.denoise_nl_means")
    # the denoised reference comes from another denoiser than the "+ nlm" rows
    assert run_["reference_denoiser"]["function"].startswith("skimage.restoration.denoise_wavelet")
    # every codec asked for, for every B that fits, is in the table: 12-bit JPEG too for uint16 data
    for B in (4, 6):
        (tcs,) = _rows(run_, codec="emtcs", B=B)
        assert tcs["status"] == "ok" and tcs["decoder"]["name"] == "gaptv"
        names = {r["codec"] for r in _rows(run_, B=B)}
        assert names == {"emtcs", "jpeg8", "jpeg12", "jpeg2k", "htj2k", "jpegxl"}
        for r in _rows(run_, B=B):
            if r["codec"] != "emtcs":
                assert r["budget_bytes"] == tcs["bytes"]
                if r["status"] == "ok":
                    assert r["bytes"] <= r["budget_bytes"]
    (skipped,) = _rows(run_, B=20)
    assert skipped["status"] == "skipped" and "12 frames" in skipped["note"]
    # the JSON holds every field the table shows, and the table shows what the JSON holds
    cols = columns(list(run_["references"]))
    for row in run_["rows"]:
        for col in cols:
            assert all(_has(row, p) for p in col.paths), (row["title"], col.header)
    for row in _rows(run_, status="ok"):
        assert f"{row['bytes']:,}" in text
        assert cell(row, cols[6]).split(" / ")[0] in text
    assert text.count("+ nlm") >= 8
    # the raw baseline against itself: identical, infinite PSNR written as "inf"
    raw = _rows(run_, title="raw (uncompressed)")[0]
    assert raw["quality"]["raw"]["psnr"] == "inf" and raw["quality"]["raw"]["ssim"] == pytest.approx(1.0)


def test_constant_frames_and_identical_images():
    frames = np.full((6, 24, 30), 7, dtype=np.uint8)
    res = run_bench(frames, config=BenchConfig(B=(3,), decoders=("gaptv",), decoder_options=FAST))
    run = jsonable(res.to_json())
    json.dumps(run, allow_nan=False)
    assert run["references"]["raw"]["data_range"] == 1.0  # a constant reference has no range
    for r in _rows(run, B=3):
        assert r["status"] == "ok", r
        if r["codec"] != "emtcs":
            # a constant movie is its one value: every codec gives it back exactly
            assert r["quality"]["raw"]["psnr"] == "inf"
            assert cell(r, columns(["raw"])[6]) == "inf / 1.000 / 2.0"  # identical frames: FRC 1 up to Nyquist
            assert r["bytes"] <= r["budget_bytes"]
    assert "jpeg12" not in run["codecs"]  # 12-bit JPEG only for data deeper than 8 bits


def test_unavailable_and_over_budget_codecs_are_reported(monkeypatch):
    noisy, clean = _noisy(n=6, shape=(32, 32))
    monkeypatch.setattr(bc.JpegXl, "unavailable", lambda self: "test: built without JPEG XL")
    cfg = BenchConfig(
        B=(3,),
        decoders=("gaptv", "nosuchdecoder"),
        codecs=("jpeg8", "jpegxl"),
        decoder_options=FAST,
        references=("clean",),
    )
    run = run_bench(noisy, clean, config=cfg).to_json()
    assert list(run["references"]) == ["clean"]
    (xl,) = _rows(run, codec="jpegxl")
    assert xl["status"] == "unable" and "built without" in xl["note"]
    (bad,) = _rows(run, codec="emtcs", setting="nosuchdecoder")
    assert bad["status"] == "unable" and "unknown decoder" in bad["note"]
    coded = bc.get_codec("jpeg8").at_budget(noisy, 100)
    assert coded.value is None and coded.decoded is None and coded.nbytes > 100


@pytest.mark.parametrize("name", sorted(bc.CODECS))
def test_each_codec_fits_a_budget(name):
    noisy, _ = _noisy(n=4, shape=(48, 48))
    codec = bc.get_codec(name)
    budget = noisy.nbytes // 6
    coded = codec.at_budget(noisy, budget)
    assert coded.value is not None, coded
    assert coded.nbytes <= budget
    assert coded.decoded.dtype == noisy.dtype and coded.decoded.shape == noisy.shape
    assert coded.encode_s > 0 and coded.decode_s > 0


def test_fit_budget_search():
    knob = bc.Knob("quality", "q", 1, 100, integer=True)
    fit = bc.fit_budget(lambda q: int(10 * q), knob, 555)
    assert fit.value == 55 and fit.nbytes == 550 and fit.evaluations <= 10
    smooth = bc.Knob("distance", "d", 25.0, 0.01, log=True)
    fit = bc.fit_budget(lambda d: int(1e5 / d), smooth, 70_000)
    assert 0.99 * 70_000 <= fit.nbytes <= 70_000
    assert bc.fit_budget(lambda q: 1000, knob, 10).value is None
    assert bc.fit_budget(lambda q: 5, knob, 10).value == 100


def test_code_map_is_exact_when_the_values_fit():
    x = np.array([[3, 200], [1000, 4000]], dtype=np.uint16)
    for stretch in (True, False):
        m = bc.CodeMap(3, 4000, 12, stretch=stretch)
        assert np.array_equal(bc.to_source(m.decode(m.encode(x)), x.dtype), x) and m.exact
    coarse = bc.CodeMap(0, 65535, 8)
    assert not coarse.exact and "quantised" in coarse.describe()
    assert bc.CodeMap(3, 4000, 12, stretch=False).scale == 1.0


def test_cli_errors_are_one_line(run, tmp_path):
    movie = tmp_path / "m.tif"
    tifffile.imwrite(movie, _noisy(n=4, shape=(16, 16))[0], photometric="minisblack")
    for args, words in [
        ((movie, movie, "--clean", movie), "exactly one"),
        ((movie, "--codecs", "png"), "unknown codec"),
        ((movie, "--crop", "12"), "--crop"),
        ((movie, "-B", "1"), "at least 2"),
        ((movie, "--reference", "clean"), "clean truth"),
        ((movie, "--dose", "10"), "--dose"),
        ((movie, "--density", "1.5"), "mask density"),
    ]:
        r = run("bench", *args, "-q")
        assert r.exit_code == 1 and words in r.output and len(r.output.strip().splitlines()) == 1, r.output


def test_simulated_default_is_small(monkeypatch):
    from emtcs.bench.run import simulated_movie

    noisy, clean, info = simulated_movie(3, (32, 32))
    assert noisy.dtype == np.uint16 and clean.shape == noisy.shape and info["name"] == "simulated"
    assert not math.isnan(float(clean.mean()))


def test_float_movie_is_coded_in_16_bits():
    noisy, clean = _noisy(n=4, shape=(32, 32))
    frames = (noisy / 1000).astype(np.float32)
    run = run_bench(
        frames,
        clean / 1000,
        config=BenchConfig(B=(2,), decoders=("gaptv",), codecs=("jpeg", "jpegxl"), decoder_options=FAST),
    ).to_json()
    assert run["codecs"].keys() == {"jpeg8", "jpeg12", "jpegxl"}
    for r in _rows(run, B=2):
        assert r["status"] == "ok", r
        if r["codec"] != "emtcs":
            assert r["bytes"] <= r["budget_bytes"] and "quantised" in r["input_map"]
            assert r["quality"]["clean"]["psnr"] > 10


def test_quantisation_steps_give_rate_distortion_points():
    """One emtcs point per B and --quantise step, each with the other codecs at its bytes."""
    rng = np.random.default_rng(3)
    clean = drifting_movie(8, (40, 48), np.uint16).astype(np.float64) / 40 + 20
    noisy = rng.poisson(clean).astype(np.uint16)  # counts: gain 1
    cfg = BenchConfig(
        B=(4,), decoders=("gaptv",), codecs=("jpegxl",), decoder_options=FAST, quantise=(0.0, 2.0), gain=1.0
    )
    run = run_bench(noisy, clean.astype(np.float32), config=cfg).to_json()
    emtcs_rows = _rows(run, codec="emtcs")
    assert [r["quantise"] for r in emtcs_rows] == [0.0, 2.0]
    assert [r["setting"] for r in emtcs_rows] == ["gaptv, exact", "gaptv, step 2"]
    exact, coarse = emtcs_rows
    assert coarse["bytes"] < exact["bytes"] and coarse["coding"].startswith("anscombe-v1")
    assert {r["mask_density"] for r in emtcs_rows} == {0.5}  # B = 4: always half 1s
    for point in emtcs_rows:
        matched = _rows(run, codec="jpegxl", quantise=point["quantise"], denoiser=None)
        assert len(matched) == 1 and matched[0]["budget_bytes"] == point["bytes"]
    assert run["config"]["quantise"] == ["exact", "step 2"]
    assert run["config"]["density"] == "auto"


def test_a_given_density_reaches_the_file():
    """``emtcs bench --density P``: the masks compress would not choose, to compare on one's movie."""
    rng = np.random.default_rng(4)
    clean = drifting_movie(8, (40, 48), np.uint16).astype(np.float64) / 40 + 20
    cfg = BenchConfig(B=(4,), decoders=("gaptv",), codecs=("jpegxl",), decoder_options=FAST, density=0.25)
    run = run_bench(rng.poisson(clean).astype(np.uint16), clean.astype(np.float32), config=cfg).to_json()
    assert [r["mask_density"] for r in _rows(run, codec="emtcs")] == [0.25]
    assert run["config"]["density"] == 0.25


def test_frame_grid_draws_every_movie_and_keeps_an_existing_file(tmp_path):
    """The validation suite's figure: rows of frames and spectra, movies with different panel counts."""
    pytest.importorskip("matplotlib")
    from emtcs.bench.plot import frame_grid
    from emtcs.errors import OutputExistsError

    noisy, clean = _noisy()
    movies = [("a", [("clean", clean[0]), ("raw", noisy[0])]), ("b", [("raw", noisy[1])])]
    out = tmp_path / "grid.png"
    frame_grid(movies, out, crop=16)
    assert out.read_bytes()[:4] == b"\x89PNG" and out.stat().st_size > 5_000
    with pytest.raises(OutputExistsError):
        frame_grid(movies, out)
    frame_grid(movies[:1], out, force=True)


def test_next_frame_reference_adds_the_same_noise_to_every_row():
    """--reference next: the even frames are scored against the odd ones as recorded; on a still
    scene each row's error against them is its error against the truth plus the odd frames' noise."""
    rng = np.random.default_rng(4)
    scene = drifting_movie(1, (40, 48), np.uint16).astype(np.float64)[0] / 40 + 30
    clean = np.broadcast_to(scene, (12, *scene.shape)).astype(np.float32)
    noisy = rng.poisson(clean).astype(np.uint16)
    cfg = BenchConfig(
        B=(6,), decoders=("gaptv",), codecs=("jpegxl",), decoder_options=FAST, references=("clean", "next")
    )
    run = jsonable(run_bench(noisy, clean, config=cfg).to_json())
    assert run["input"]["frames"] == 6 and list(run["references"]) == ["clean", "next"]
    noise = float(np.mean((noisy[1::2] - clean[1::2]) ** 2))
    ok = [r for r in run["rows"] if r["status"] == "ok"]
    assert {r["title"] for r in ok} >= {"raw (uncompressed)", "emtcs / gaptv", "JPEG XL"}
    for r in ok:
        mse = {
            ref: run["references"][ref]["data_range"] ** 2 * 10 ** (-r["quality"][ref]["psnr"] / 10)
            for ref in cfg.references
        }
        assert mse["next"] - mse["clean"] == pytest.approx(noise, rel=0.2), r["title"]
    with pytest.raises(emtcs.EmtcsError, match="at least 4 frames"):
        run_bench(noisy[:3], config=cfg)


def test_every_row_reports_its_strongest_peak_the_reference_lacks():
    """``unsupported_contrast`` is at least 30 exactly where ``invented_peaks`` counts one, and
    ``unsupported_at`` says where: [frame, ky, kx], or None where no peak reaches 10."""
    from emtcs.metrics import PEAK_FACTOR, PEAK_PRESENT

    noisy, clean = _noisy()
    cfg = BenchConfig(B=(6,), decoders=("gaptv",), codecs=("jpegxl",), decoder_options=FAST, references=("clean",))
    run = jsonable(run_bench(noisy, clean, config=cfg).to_json())
    scored = [r["quality"]["clean"] for r in run["rows"] if r["status"] == "ok" and r["quality"].get("clean")]
    assert len(scored) >= 3
    for q in scored:
        contrast, at = q["unsupported_contrast"], q["unsupported_at"]
        assert (contrast >= PEAK_FACTOR) == (q["invented_peaks"] > 0)
        if at is None:
            assert contrast == 0
        else:
            assert contrast >= PEAK_PRESENT and len(at) == 3 and 0 <= at[0] < len(noisy)


def _fringed(frames_with: slice, n: int = 12, shape: tuple[int, int] = (64, 64)) -> tuple[np.ndarray, np.ndarray]:
    """A flat noisy movie whose ``frames_with`` hold lattice fringes (one spectral peak each),
    and its clean truth, which holds none."""
    y, x = np.mgrid[: shape[0], : shape[1]]
    clean = np.full((n, *shape), 2000.0)
    noisy = clean + np.random.default_rng(3).normal(0, 60, clean.shape)
    noisy[frames_with] += 400 * np.cos(2 * np.pi * (y * 9 / shape[0] + x * 5 / shape[1]))
    return np.clip(np.rint(noisy), 0, 65535).astype(np.uint16), clean


def _invented(noisy: np.ndarray, clean: np.ndarray | None, reference: str, iterations: int = 4) -> dict[str, int]:
    """Invented peaks per bench row (GAP-TV and JPEG XL at B = 3) against ``reference``."""
    cfg = BenchConfig(
        B=(3,),
        decoders=("gaptv",),
        codecs=("jpegxl",),
        decoder_options={"gaptv": {"iterations": iterations}},
        references=(reference,),
    )
    run = jsonable(run_bench(noisy, clean, config=cfg).to_json())
    return {r["title"]: r["quality"][reference]["invented_peaks"] for r in run["rows"] if r["status"] == "ok"}


def test_a_periodicity_the_recording_holds_is_not_invented_against_a_reference_made_from_it():
    """Against the next frame, a lattice that the frames given to the codecs hold (and the
    reference frames lack) is not counted as invented; against a truth that lacks it, it is."""
    noisy, clean = _fringed(slice(0, None, 2))
    against_next = _invented(noisy, None, "next")
    assert against_next["JPEG XL"] == 0 and against_next["raw (uncompressed)"] == 0
    against_truth = _invented(noisy, clean, "clean")
    assert against_truth["JPEG XL"] == against_truth["raw (uncompressed)"] == len(noisy[::2])


def test_a_lattice_moved_into_frames_without_it_is_invented_against_a_reference_made_from_the_recording():
    """GAP-TV spreads a lattice that one frame of each group holds over the group's other
    frames: those peaks count against the denoised reference, the raw frame's never do."""
    noisy, _ = _fringed(slice(0, None, 3))
    counts = _invented(noisy, None, "denoised", iterations=30)
    assert counts["emtcs / gaptv"] > 0
    assert counts["raw (uncompressed)"] == counts["JPEG XL"] == 0
