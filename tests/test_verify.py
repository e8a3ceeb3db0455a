"""``emtcs verify --source``: a .tcs file holds exactly what compress makes of its movie."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tifffile

import emtcs
from conftest import drifting_movie
from emtcs.simulate import simulate


@pytest.mark.parametrize(
    ("dtype", "options"),
    [(np.uint16, {}), (np.uint16, {"quantise": 0}), (np.float32, {}), (np.int16, {}), (np.uint8, {"B": 3})],
)
def test_a_file_matches_its_movie_and_not_a_changed_one(tmp_path, dtype, options):
    frames = drifting_movie(13, (40, 36), dtype=dtype)
    src, tcs = tmp_path / "m.tif", tmp_path / "m.tcs"
    tifffile.imwrite(src, frames)
    emtcs.compress(src, tcs, **{"B": 5, "seed": 3, **options})
    assert emtcs.verify(tcs, src) is None
    changed = frames.copy()  # a particle that was not there, in one frame: many masked pixels see it
    changed[11, 10:20, 10:20] = frames.max()
    other = tmp_path / "changed.tif"
    tifffile.imwrite(other, changed)
    with emtcs.open(tcs) as reader:
        g = reader.header.group_of(11)
        span = reader.header.group_frames(g)
    problem = emtcs.verify(tcs, other)
    assert problem is not None and f"group {g} (frames {span.start}..{span.stop - 1}) differs from" in problem, problem


def test_a_file_with_scene_cuts_matches_its_movie(tmp_path):
    """Groups end early at a cut and a lone frame is stored as it is: compared as stored."""
    a, b = (simulate(n_frames=12, shape=(96, 96), dose=50.0, seed=s)[0] for s in (1, 11))
    src, tcs = tmp_path / "m.tif", tmp_path / "m.tcs"
    tifffile.imwrite(src, np.concatenate([a[:6], b[:1], a[6:]]))
    info = emtcs.compress(src, tcs, B=4)
    assert info["cuts"] == [6, 7]  # the frame between them stored alone
    assert emtcs.verify(tcs, src) is None


def test_another_movie_is_named_and_the_cli_says_so(tmp_path, run):
    src, tcs = tmp_path / "m.tif", tmp_path / "m.tcs"
    tifffile.imwrite(src, drifting_movie(6, (16, 16)))
    emtcs.compress(src, tcs, B=3)
    other = tmp_path / "o.tif"
    tifffile.imwrite(other, drifting_movie(7, (16, 16)))
    assert "not made from" in emtcs.verify(tcs, other)
    r = run("verify", tcs, "--source", src)
    assert r.exit_code == 0 and r.output.strip() == f"ok: {tcs} holds exactly what compress makes of {src}"
    r = run("verify", tcs, "--source", other)
    assert r.exit_code == 1 and "not made from" in r.output
    r = run("verify", tcs, tcs, "--source", src)
    assert r.exit_code == 2 and "--source checks one FILE" in r.output


@pytest.mark.parametrize("example", ["example-v3", "example-v4"])
def test_the_format_examples_hold_what_compress_makes_of_their_frames(tmp_path, example):
    """formats/example-v3 (no prediction) and -v4 (predicted, quantised) encode again to the
    same stored values: the encoder of this version still writes what the spec's examples hold."""
    folder = Path(__file__).resolve().parents[1] / "formats"
    doc = json.loads((folder / f"{example}.json").read_text())
    src = tmp_path / "frames.tif"
    tifffile.imwrite(src, np.array(doc["frames"], dtype=doc["source_dtype"]), photometric="minisblack")
    assert emtcs.verify(folder / doc["file"], src) is None
