"""The command line end to end: round trips, metadata, and every user error path."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
import tifffile

import emtcs
from emtcs.decoders import resolve_decoder
from emtcs.errors import InputError
from emtcs.io import open_movie
from emtcs.metrics import psnr


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if "emtcs-part" in p.name)


def test_round_trip_uint16_with_short_last_group(run, movie_file, tmp_path):
    src, frames = movie_file(n=13, shape=(40, 52))
    r = run("compress", src, "-B", "5", "-q")
    assert r.exit_code == 0, r.output
    tcs = src.with_suffix(".tcs")
    assert tcs.exists()
    out = tmp_path / "restored.tif"
    r = run("decompress", tcs, "-o", out, "-q", "--report", tmp_path / "rep.json")
    assert r.exit_code == 0, r.output
    with tifffile.TiffFile(out) as tif:
        restored = tif.asarray()
        assert tif.imagej_metadata["finterval"] == pytest.approx(0.005)
        assert tif.imagej_metadata["unit"] == "nm"
        xres = tif.pages[0].tags["XResolution"].value
        assert xres[0] / xres[1] == pytest.approx(4.0)
    assert restored.shape == frames.shape and restored.dtype == frames.dtype
    rng = float(frames.max() - frames.min())
    assert np.mean([psnr(a, b, data_range=rng) for a, b in zip(frames, restored)]) > 25
    rep = json.loads((tmp_path / "rep.json").read_text())
    assert set(rep["residuals"]) == {"0", "1", "2"}
    assert all(0 <= v < 0.05 for v in rep["residuals"].values())


@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.float32, np.uint32])
def test_round_trip_dtypes(run, movie_file, tmp_path, dtype):
    src, frames = movie_file(n=6, shape=(24, 30), dtype=dtype)
    tcs = tmp_path / "m.tcs"
    assert run("compress", src, "-B", "3", "-o", tcs, "-q").exit_code == 0
    out = tmp_path / "o.tif"
    assert run("decompress", tcs, "-o", out, "-q").exit_code == 0
    restored = tifffile.imread(out)
    assert restored.dtype == frames.dtype and restored.shape == frames.shape
    rng = float(frames.max()) - float(frames.min())
    assert psnr(frames.astype(np.float64), restored.astype(np.float64), data_range=rng) > 20


def test_frames_option_decodes_only_needed_groups(movie_file, tmp_path, monkeypatch):
    src, frames = movie_file(n=13, shape=(20, 20))
    tcs = tmp_path / "m.tcs"
    emtcs.compress(src, tcs, B=5)
    report = emtcs.decompress(tcs, tmp_path / "part.tif", frames="6:11")
    assert sorted(report.residuals) == [1, 2]
    part = tifffile.imread(tmp_path / "part.tif")
    full_report = emtcs.decompress(tcs, tmp_path / "full.tif")
    np.testing.assert_array_equal(part, tifffile.imread(tmp_path / "full.tif")[6:11])
    assert len(full_report.residuals) == 3


@pytest.mark.parametrize(
    ("spec", "expected"),
    [(None, range(10)), ("2:-1", range(2, 9)), (":3", range(0, 3)), ("-4:", range(6, 10)), ((8, 20), range(8, 10))],
)
def test_frame_range_reads_python_style_ranges(spec, expected):
    notes = []
    assert emtcs.codec.frame_range(spec, 10, notes.append) == expected
    assert bool(notes) == (spec == (8, 20))  # a stop past the end is cut there, with a note


@pytest.mark.parametrize("spec", ["3", "a:b", "1:2:3", "5:5", "12:"])
def test_frame_range_refuses_what_selects_nothing(spec):
    with pytest.raises(InputError, match="A:B|selects no frames"):
        emtcs.codec.frame_range(spec, 10)


def test_summary_median_of_an_even_number_of_groups(tmp_path, movie_file):
    src, _ = movie_file(n=8, shape=(24, 24))
    tcs = tmp_path / "m.tcs"
    emtcs.compress(src, tcs, B=4)
    out, report = tmp_path / "o.tif", tmp_path / "r.json"
    proc = _cli("decompress", tcs, "-o", out, "--decoder", "gaptv", "--report", report)
    residuals = sorted(json.loads(report.read_text())["residuals"].values())
    assert len(residuals) == 2 and residuals[0] < residuals[1]
    assert f"median {(residuals[0] + residuals[1]) / 2:.4f}, max {residuals[1]:.4f}" in proc.stderr, proc.stderr


def test_decompress_several_files(run, movie_file, tmp_path):
    """Several .tcs files decode one after the other, each to INPUT-restored.tif, with a
    summary each; every output is checked before the first decode, so an existing one
    stops the command before any work, and options of one file are refused."""
    tcs = []
    for name in "ab":
        src, _ = movie_file(n=6, shape=(24, 24), name=f"{name}.tif")
        assert run("compress", src, "-B", "3", "-q").exit_code == 0
        tcs.append(src.with_suffix(".tcs"))
    r = run("decompress", *tcs, "--decoder", "gaptv")
    assert r.exit_code == 0, r.output
    for t in tcs:
        out = t.with_name(f"{t.stem}-restored.tif")
        assert tifffile.imread(out).shape == (6, 24, 24) and f"{out}: 6 frames, decoder gaptv" in r.output
    (tmp_path / "a-restored.tif").unlink()
    r = run("decompress", *tcs, "--decoder", "gaptv", "-q")
    assert r.exit_code == 1 and "b-restored.tif exists" in r.output and not (tmp_path / "a-restored.tif").exists()
    r = run("decompress", *tcs, "-o", tmp_path / "x.tif")
    assert r.exit_code == 2 and "go with one INPUT" in r.output
    r = run("decompress", tcs[0], tcs[0], "--force")
    assert r.exit_code == 2 and "given twice" in r.output


def test_decompress_is_deterministic(movie_file, tmp_path):
    src, _ = movie_file(n=8, shape=(30, 30))
    tcs = tmp_path / "m.tcs"
    emtcs.compress(src, tcs, B=4)
    emtcs.decompress(tcs, tmp_path / "a.tif")
    emtcs.decompress(tcs, tmp_path / "b.tif")
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "a.tif"), tifffile.imread(tmp_path / "b.tif"))


def test_info_text_and_json(run, movie_file, tmp_path):
    src, frames = movie_file(n=10, shape=(32, 32))
    tcs = tmp_path / "m.tcs"
    emtcs.compress(src, tcs, B=5, seed=11)
    r = run("info", tcs, "--json")
    d = json.loads(r.output)
    for key in (
        "B",
        "n_frames",
        "frame_shape",
        "source_dtype",
        "file_bytes",
        "compression_ratio",
        "bits_per_pixel",
        "mask_generator",
        "mask_seed",
        "format_version",
        "software",
    ):
        assert key in d
    assert d["B"] == 5 and d["n_frames"] == 10 and d["mask_seed"] == 11
    assert d["bits_per_pixel"] == pytest.approx(8 * tcs.stat().st_size / frames.size)
    text = run("info", tcs).output
    assert "ratio" in text and "seed 11" in text and "0.25 x 0.25 nm" in text
    auto = resolve_decoder("auto", 5)[0]
    assert d["auto_decoder"] == auto and f"auto decodes groups of 5 with {auto}" in text


def test_info_of_several_files(run, movie_file, tmp_path):
    src, _ = movie_file(n=10, shape=(32, 32))
    a, b = tmp_path / "a.tcs", tmp_path / "b.tcs"
    emtcs.compress(src, a, B=5)
    emtcs.compress(src, b, B=10)
    text = run("info", a, b).output
    blocks = text.split("\n\n")
    assert len(blocks) == 3 and "a.tcs" in blocks[0] and "b.tcs" in blocks[1]
    assert "groups of 5" in blocks[0] and "groups of 10" in blocks[1]
    raw, stored = 2 * tifffile.imread(src).nbytes, a.stat().st_size + b.stat().st_size
    assert blocks[2].strip().startswith(f"total: 2 files, 20 frames, {raw / 1000:.1f} kB of frames")
    assert blocks[2].strip().endswith(f"(ratio {raw / stored:.2f})")
    listed = json.loads(run("info", a, b, "--json").output)
    assert [d["B"] for d in listed] == [5, 10]


def test_info_says_when_auto_falls_back_to_gap_tv(run, movie_file, tmp_path):
    src, _ = movie_file(n=70, shape=(16, 16))
    emtcs.compress(src, tmp_path / "m.tcs", B=70)
    text = run("info", tmp_path / "m.tcs").output
    assert "decoding with GAP-TV" in text and "auto decodes" not in text


@pytest.mark.parametrize("command", ["compress", "decompress", "info", "simulate"])
def test_help_has_example(run, command):
    r = run(command, "--help")
    assert r.exit_code == 0 and "Example" in r.output


# -- errors: one line, non-zero exit, no traceback, no file left ----------------------------


def _cli(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "emtcs", *map(str, args)], capture_output=True, text=True, cwd=cwd)


def _assert_one_line_error(proc: subprocess.CompletedProcess, needle: str) -> None:
    assert proc.returncode != 0
    lines = [line for line in proc.stderr.strip().splitlines() if not line.startswith("note: ")]
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert needle in lines[0], lines[0]


def test_error_messages_as_a_user_sees_them(tmp_path, movie_file):
    src, _ = movie_file(n=6, shape=(16, 16))
    _assert_one_line_error(_cli("compress", tmp_path / "missing.tif"), "no such file")
    (tmp_path / "notes.tif").write_text("hello")
    _assert_one_line_error(_cli("compress", tmp_path / "notes.tif"), "not a TIFF")
    _assert_one_line_error(_cli("compress", src, "-B", "1"), "B must be an integer of at least 2")
    _assert_one_line_error(_cli("compress", src, "-B", "7"), "larger than the movie (6 frames): choose B of 6 or less")
    emtcs.compress(src, tmp_path / "m.tcs", B=3)
    _assert_one_line_error(_cli("compress", src, "-B", "3", "-o", tmp_path / "m.tcs"), "exists (use --force")
    assert _cli("compress", src, "-B", "3", "-o", tmp_path / "m.tcs", "--force", "-q").returncode == 0
    _assert_one_line_error(_cli("decompress", tmp_path / "m.tcs", "-o", tmp_path / "o.png"), "unknown output format")
    _assert_one_line_error(_cli("decompress", tmp_path / "m.tcs", "--frames", "x"), "--frames")
    _assert_one_line_error(_cli("decompress", tmp_path / "m.tcs", "--decoder", "nope"), "unknown decoder")
    _assert_one_line_error(_cli("decompress", tmp_path / "m.tcs", "--overlap", "256"), "must be in [0, tile=256)")
    _assert_one_line_error(_cli("decompress", tmp_path / "m.tcs", "--guard", "-1"), "--guard must be a ratio >= 0")
    _assert_one_line_error(_cli("decompress", tmp_path / "m.tcs", "--finish", "bm3d"), "Invalid value for '--finish'")
    _assert_one_line_error(_cli("decompress", src), "not a .tcs file")
    assert not (tmp_path / "o.png").exists()
    _assert_one_line_error(_cli("compress", src, "-B", "x"), "'x' is not a valid integer")
    _assert_one_line_error(_cli("train"), "Missing option '-o'")
    bad = [("--patch", "0"), ("--steps", "0"), ("--cuts", "1.5"), ("--lr", "-1")]
    bad += [("--run-share", "0"), ("--edge-weight", "0"), ("--spectral-weight", "-1"), ("--spectral-margin", "0.5")]
    for option, value in bad:
        _assert_one_line_error(_cli("train", option, value, "-o", tmp_path / "run"), f"Invalid value for '{option}'")
    for value in ("x", "0", "20,-1"):
        _assert_one_line_error(_cli("train", "--val-doses", value, "-o", tmp_path / "run"), "--val-doses")
    _assert_one_line_error(_cli("train", "--arch", "tcsdl", "--temporal", "-o", tmp_path / "run"), "gapunet options")
    _assert_one_line_error(_cli("train", "--column-spacing", "8", "6", "-o", tmp_path / "run"), "--column-spacing")
    _assert_one_line_error(_cli("train", "--zoom", "0", "1", "-o", tmp_path / "run"), "--zoom")
    no_validation = _cli("train", "--no-simulate", "--data", src, "-o", tmp_path / "run")
    _assert_one_line_error(no_validation, "--val-scene-file")
    assert not list(tmp_path.glob("run*"))


def test_train_defaults_are_the_python_apis():
    """``emtcs train`` shows and uses ``TrainConfig``'s defaults, not copies of them."""
    from emtcs.cli import main
    from emtcs.training.config import LOSSES, TrainConfig

    params = {p.name: p for p in main.commands["train"].params}
    defaults = TrainConfig()
    assert tuple(params["loss_kind"].type.choices) == LOSSES
    assert params["loss_kind"].default == defaults.loss
    assert params["B"].default == ",".join(map(str, defaults.B))
    assert tuple(params["zoom"].default) == defaults.zoom
    for name in ("steps", "patch", "batch", "lr", "motion", "cuts", "edge_weight", "spectral_weight", "val_every"):
        assert params[name].default == getattr(defaults, name), name


def test_cli_and_compress_need_no_torch(tmp_path, movie_file):
    """``import emtcs``, the CLI and the encoder work where PyTorch is not installed, and
    training says what it needs."""
    src, _ = movie_file(n=6, shape=(16, 16))
    out = tmp_path / "m.tcs"
    code = "import sys; sys.modules['torch'] = None; from emtcs.cli import main; main(sys.argv[1:])"
    run = [sys.executable, "-c", code]
    proc = subprocess.run([*run, "compress", src, "-B", "3", "-o", out], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    with emtcs.TcsReader(out) as reader:
        assert reader.header.B == 3
    proc = subprocess.run([*run, "preview", out, "-q"], capture_output=True, text=True)
    assert proc.returncode == 0 and tifffile.imread(tmp_path / "m-preview.tif").shape == (2, 16, 16), proc.stderr
    proc = subprocess.run([*run, "verify", out], capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout.strip() == f"ok: {out}", proc.stderr
    proc = subprocess.run([*run, "train", "-o", tmp_path / "run"], capture_output=True, text=True)
    assert proc.returncode == 1 and proc.stderr.strip() == "emtcs: error: training needs PyTorch: pip install torch"


def test_outputs_never_replace_inputs_or_each_other(tmp_path, movie_file):
    """No output lands on an input or on another output, even with --force; outputs and
    references are checked before any decoding, so a refusal leaves nothing behind."""
    src, _ = movie_file(n=6, shape=(16, 16))
    original = src.read_bytes()
    _assert_one_line_error(_cli("compress", src, "-B", "3", "-o", src, "--force"), "a .tcs file")
    _assert_one_line_error(_cli("compress", src, "-B", "3", "-o", tmp_path / "m.png"), "a .tcs file")
    tcs = tmp_path / "movie.tcs"
    assert _cli("compress", src, "-B", "3", "-o", tcs, "-q").returncode == 0
    assert _cli("decompress", tcs, "--decoder", "gaptv", "-q").returncode == 0
    assert (tmp_path / "movie-restored.tif").exists() and src.read_bytes() == original  # the default output
    past = _cli("decompress", tcs, "-o", tmp_path / "past.tif", "--frames", "2:100", "--decoder", "gaptv", "-q")
    assert past.returncode == 0 and "the file has 6 frames: decoding 2:6" in past.stderr, past.stderr
    out = tmp_path / "o.tif"
    _assert_one_line_error(_cli("decompress", tcs, "-o", out, "--report", out), "name the same file")
    _assert_one_line_error(_cli("decompress", tcs, "-o", out, "--report", tcs, "--force"), "is also the input")
    (tmp_path / "keep.json").write_text("{}")
    _assert_one_line_error(_cli("decompress", tcs, "-o", out, "--report", tmp_path / "keep.json"), "exists")
    assert (tmp_path / "keep.json").read_text() == "{}"
    _assert_one_line_error(_cli("decompress", tcs, "-o", out, "--report", tmp_path / "no" / "r.json"), "folder")
    if Path("/sys").is_dir():  # a folder where no file can be created, even by root: refused before decoding
        _assert_one_line_error(
            _cli("decompress", tcs, "-o", out, "--report", "/sys/r.json"), "cannot write /sys/r.json"
        )
    _assert_one_line_error(_cli("decompress", tcs, "-o", out, "--reference", tmp_path / "none.tif"), "no such file")
    small, _ = movie_file(n=6, shape=(8, 8), name="small.tif")
    _assert_one_line_error(_cli("decompress", tcs, "-o", out, "--reference", small), "cannot be compared")
    assert not out.exists() and not _leftovers(tmp_path)
    _assert_one_line_error(_cli("decompress", tcs, "-o", out, "--scheduler", "bogus"), "bad Dask scheduler address")
    _assert_one_line_error(_cli("info", tmp_path), "not a file")
    clean = tmp_path / "s.tif"
    _assert_one_line_error(
        _cli("simulate", clean, "--clean", clean, "--frames", "2", "--size", "16", "16"), "cannot both be written"
    )
    kept = tmp_path / "kept.tif"
    kept.write_bytes(b"")
    _assert_one_line_error(
        _cli("simulate", clean, "--clean", kept, "--frames", "2", "--size", "16", "16"), "kept.tif exists"
    )
    _assert_one_line_error(_cli("bench", src, "-B", "3", "--codecs", "jpeg", "--json", src, "--force"), "input")
    _assert_one_line_error(_cli("bench", src, "-B", "3", "--decoder", "nope"), "unknown decoder")
    _assert_one_line_error(_cli("bench", src, "-B", "3", "--plot", tmp_path / "p.jpg"), "PNG")
    too_long = _cli("bench", src, "-B", "30", "--decoder", "gaptv", "--codecs", "jpeg")
    _assert_one_line_error(too_long, "nothing to compare")
    _assert_one_line_error(_cli("train", "-o", tmp_path / "no" / "run"), "output folder")
    assert src.read_bytes() == original and not clean.exists()


def test_rgb_and_4d_inputs_are_refused(tmp_path):
    rgb = tmp_path / "rgb.tif"
    tifffile.imwrite(rgb, np.zeros((4, 16, 16, 3), np.uint8), photometric="rgb")
    result = _cli("compress", rgb, "-B", "2")
    _assert_one_line_error(result, "colour images (3 samples per pixel)")
    assert "minisblack" not in result.stderr  # a real colour image: no hint about short stacks
    four = tmp_path / "four.tif"
    # what tifffile (2026.3 and earlier) writes of a stack of 4 unless told otherwise: one planar RGBA image
    tifffile.imwrite(four, np.zeros((4, 16, 16), np.uint16), photometric="rgb", planarconfig="separate")
    _assert_one_line_error(_cli("compress", four, "-B", "2"), "if these are 4 frames")
    hyper = tmp_path / "tz.tif"
    tifffile.imwrite(hyper, np.zeros((3, 2, 16, 16), np.uint16), imagej=True, metadata={"axes": "TZYX"})
    _assert_one_line_error(_cli("compress", hyper, "-B", "2"), "4-D input")


def test_tiff_written_page_by_page_is_one_stack(tmp_path):
    """tifffile makes a series of every write() call: a movie written frame by frame is still
    one stack, in order; a file that also holds other images is refused, not cut short."""
    frames = (np.arange(5 * 24 * 20, dtype=np.uint16) % 997).reshape(5, 24, 20)
    pages = tmp_path / "pages.tif"
    with tifffile.TiffWriter(pages) as w:
        for frame in frames:
            w.write(frame)
    with open_movie(pages) as movie:
        assert movie.n_frames == 5
        assert np.array_equal(np.stack([movie.read_frame(t) for t in range(5)]), frames)
    mixed = tmp_path / "mixed.tif"
    with tifffile.TiffWriter(mixed) as w:
        for frame in frames:
            w.write(frame)
        w.write(frames[0, :8, :8])
    with pytest.raises(InputError, match=r"5 x 24x20 uint16, 1 x 8x8 uint16"):
        open_movie(mixed)


def test_truncated_tiff_is_one_error(tmp_path, capfd):
    whole = tmp_path / "whole.tif"
    tifffile.imwrite(whole, np.ones((6, 64, 64), np.uint16), imagej=True)
    cut = tmp_path / "cut.tif"
    cut.write_bytes(whole.read_bytes()[:30_000])
    with pytest.raises(InputError, match="truncated or damaged TIFF"):
        open_movie(cut)
    assert capfd.readouterr().err == ""  # tifffile's own warnings are not printed as well


def test_corrupted_and_future_tcs_files(tmp_path, movie_file):
    src, _ = movie_file(n=6, shape=(16, 16))
    tcs = tmp_path / "m.tcs"
    emtcs.compress(src, tcs, B=3)
    with h5py.File(tcs, "r+") as f:
        f.attrs["format_version"] = np.array([9, 1], dtype=np.uint32)
    _assert_one_line_error(_cli("decompress", tcs, "-o", tmp_path / "o.tif"), "version 9.1 is not supported")
    _assert_one_line_error(_cli("info", tcs), "version 9.1")
    emtcs.compress(src, tcs, B=3, force=True)
    with h5py.File(tcs, "r") as f:
        offset = f["measurements"].id.get_chunk_info(1).byte_offset
    data = bytearray(tcs.read_bytes())
    data[offset + 8] ^= 0x55
    tcs.write_bytes(bytes(data))
    _assert_one_line_error(_cli("decompress", tcs, "-o", tmp_path / "o.tif"), "corrupted measurement of group 1")
    assert not (tmp_path / "o.tif").exists() and _leftovers(tmp_path) == []
    tcs.write_bytes(bytes(data[:300]))
    _assert_one_line_error(_cli("info", tcs), "truncated")


def test_disk_full_leaves_nothing(tmp_path, movie_file, monkeypatch, run):
    src, _ = movie_file(n=6, shape=(16, 16))
    from emtcs import container

    def full(self, g, measurement):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(container.TcsWriter, "write_group", full)
    r = CliRunnerNoCatch().invoke(["compress", str(src), "-B", "3", "-o", str(tmp_path / "m.tcs")])
    assert r.exit_code == 1 and "disk full" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "m.tcs").exists() and _leftovers(tmp_path) == []


class CliRunnerNoCatch:
    def invoke(self, args):
        from click.testing import CliRunner

        from emtcs.cli import main

        return CliRunner().invoke(main, args)


def _wait_until_stopped(pid: int) -> None:
    """Return once the process ``pid`` has stopped (state T in /proc; where there is no
    /proc, after a pause long enough for the signal to land)."""
    stat = Path(f"/proc/{pid}/stat")
    if not stat.exists():
        time.sleep(0.2)
        return
    deadline = time.time() + 10
    while stat.read_text().rsplit(")", 1)[1].split()[0] != "T" and time.time() < deadline:
        time.sleep(0.001)


def _stopped_while_writing(args: list[str], output: Path, **popen: Any) -> subprocess.Popen:
    """Start ``emtcs ARGS`` and freeze it (SIGSTOP) while the part file of ``output`` (or
    the probe of its folder, named alike) is there; a run that got past it before it froze
    is let finish, and started again."""
    folder = output.parent
    for _attempt in range(3):
        proc = subprocess.Popen([sys.executable, "-m", "emtcs.cli", *args], **popen)
        deadline = time.time() + 60
        while not _leftovers(folder) and time.time() < deadline and proc.poll() is None:
            time.sleep(0.002)
        assert proc.poll() is None, "the command finished before it could be stopped"
        os.kill(proc.pid, signal.SIGSTOP)
        _wait_until_stopped(proc.pid)  # a process on another core runs on for a moment
        if _leftovers(folder):
            return proc
        os.kill(proc.pid, signal.SIGCONT)
        proc.communicate(timeout=60)
        output.unlink()
    raise AssertionError("the command renamed its output before it could be stopped, three times")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupted_compress_leaves_nothing(tmp_path, sig):
    big = tmp_path / "big.tif"
    frames = np.random.default_rng(0).integers(0, 4000, size=(400, 256, 256), dtype=np.uint16)
    tifffile.imwrite(big, frames)
    out = tmp_path / "big.tcs"
    proc = _stopped_while_writing(["compress", str(big), "-B", "10", "-q"], out, stderr=subprocess.PIPE, text=True)
    proc.send_signal(sig)
    os.kill(proc.pid, signal.SIGCONT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + sig and "interrupted" in err and "Traceback" not in err, err
    assert not out.exists() and _leftovers(tmp_path) == []


def test_an_interrupt_while_the_command_line_imports_is_one_line():
    """Ctrl-C in the half second the command spends importing its libraries (made certain
    here by an import hook that raises it) ends as any other interrupt does; and
    ``import emtcs`` alone imports none of them until a name is used."""
    hook = (
        "import sys\n"
        "class Interrupt:\n"
        "    def find_spec(self, name, path, target=None):\n"
        "        if name == 'emtcs.cli': raise KeyboardInterrupt\n"
        "sys.meta_path.insert(0, Interrupt())\n"
        "from emtcs.__main__ import main\n"
        "main()\n"
    )
    proc = subprocess.run([sys.executable, "-c", hook, "--version"], capture_output=True, text=True)
    assert proc.returncode == 130 and proc.stderr == "emtcs: error: interrupted; no output written\n", proc.stderr
    lazy = "import sys, emtcs; print('emtcs.codec' in sys.modules, 'numpy' in sys.modules, emtcs.compress.__module__)"
    proc = subprocess.run([sys.executable, "-c", lazy], capture_output=True, text=True)
    assert proc.stdout.split() == ["False", "False", "emtcs.codec"], proc.stderr


def test_an_interrupt_while_the_output_folder_is_probed_leaves_nothing(tmp_path, monkeypatch):
    """check_output creates and removes a file to learn that the folder is writable: Ctrl-C
    between the two (CI once froze a run there) leaves no file behind."""
    from emtcs.atomic import check_output

    touch = Path.touch

    def interrupted_touch(self, *args, **kwargs):
        touch(self, *args, **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(Path, "touch", interrupted_touch)
    with pytest.raises(KeyboardInterrupt):
        check_output(tmp_path / "out.tcs")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL and stale-part removal are POSIX-only")
def test_part_file_of_a_killed_run_is_removed_by_the_next_run(tmp_path, movie_file):
    big = tmp_path / "big.tif"
    tifffile.imwrite(big, np.random.default_rng(0).integers(0, 4000, size=(400, 256, 256), dtype=np.uint16))
    proc = _stopped_while_writing(["compress", str(big), "-B", "10", "-q"], tmp_path / "big.tcs")
    proc.kill()
    proc.wait(timeout=60)
    stale = _leftovers(tmp_path)
    assert len(stale) == 1 and f"-{proc.pid}-" in stale[0]
    # a part file of a live process (pid 1) is not touched
    live = tmp_path / stale[0].replace(f"-{proc.pid}-", "-1-")
    live.write_bytes(b"")
    small, _ = movie_file(n=6, name="big.tif")  # same output name, quicker to compress
    assert emtcs.compress(small, tmp_path / "big.tcs", B=3)["n_frames"] == 6
    assert _leftovers(tmp_path) == [live.name]


def _interrupted_on_second_call(monkeypatch, module, name: str) -> None:
    """Make ``module.name`` raise KeyboardInterrupt on its second call (as Ctrl-C would there)."""
    fn, calls = getattr(module, name), []

    def second_interrupted(*args, **kwargs):
        calls.append(args)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return fn(*args, **kwargs)

    monkeypatch.setattr(module, name, second_interrupted)


def test_an_interrupt_or_error_among_several_files_names_the_outputs_kept(run, movie_file, tmp_path, monkeypatch):
    """Ctrl-C while the second of three movies is compressed (or previewed) keeps the first,
    complete output, says so, and leaves no part; an older output not rewritten is not named.
    An error in the second movie names the complete output too."""
    from emtcs import codec, quicklook

    sources = [movie_file(n=6, shape=(16, 16), name=f"{name}.tif")[0] for name in "abc"]
    (tmp_path / "c.tcs").write_bytes(b"older")
    with monkeypatch.context() as patch:
        _interrupted_on_second_call(patch, codec, "compress")
        r = run("compress", *sources, "-B", "3", "-q", "--force")
    assert r.exit_code == 130
    assert r.output.strip() == (
        f"emtcs: error: interrupted; 1 output of 3 complete and kept: {tmp_path / 'a.tcs'}; no partial output left"
    ), r.output
    assert (tmp_path / "a.tcs").stat().st_size > 100 and not (tmp_path / "b.tcs").exists()
    assert (tmp_path / "c.tcs").read_bytes() == b"older" and _leftovers(tmp_path) == []

    assert run("compress", *sources, "-B", "3", "-q", "--force").exit_code == 0
    _interrupted_on_second_call(monkeypatch, quicklook, "preview")
    r = run("preview", *(src.with_suffix(".tcs") for src in sources), "-q")
    assert r.exit_code == 130
    assert r.output.strip() == (
        f"emtcs: error: interrupted; 1 output complete and kept: {tmp_path / 'a-preview.tif'}; no partial output left"
    ), r.output
    assert not (tmp_path / "b-preview.tif").exists() and _leftovers(tmp_path) == []

    bad = np.zeros((6, 16, 16), np.float32)
    bad[4, 2, 2] = np.nan
    tifffile.imwrite(sources[1], bad)  # an error in the second movie, found while it is read
    r = run("compress", *sources, "-B", "3", "-q", "--force")
    assert r.exit_code == 1
    assert r.output.strip() == (
        f"emtcs: error: {sources[1]}: frame 4 contains NaN or infinite values; "
        f"1 output complete and kept: {tmp_path / 'a.tcs'}"
    ), r.output


def test_simulate_then_full_pipeline_prints_quality(run, tmp_path):
    movie, clean = tmp_path / "sim.tif", tmp_path / "clean.tif"
    r = run("simulate", movie, "--frames", "12", "--size", "48", "64", "--dose", "200", "--clean", clean, "-q")
    assert r.exit_code == 0, r.output
    noisy, truth = tifffile.imread(movie), tifffile.imread(clean)
    assert noisy.shape == truth.shape == (12, 48, 64) and noisy.dtype == np.uint16 and truth.dtype == np.float32
    assert run("compress", movie, "-B", "5", "-q").exit_code == 0
    r = run("decompress", tmp_path / "sim.tcs", "-o", tmp_path / "out.tif", "--reference", clean, "-q")
    assert r.exit_code == 0, r.output
    assert "quality vs clean.tif: PSNR" in r.output and "over 12 frames" in r.output
    _assert_one_line_error(_cli("simulate", movie), "exists (use --force")
    _assert_one_line_error(_cli("simulate", tmp_path / "x.tif", "--dose", "-1"), "dose")
    assert _leftovers(tmp_path) == [] and not (tmp_path / "x.tif").exists()
