"""Decoding is deterministic: the same .tcs gives byte-identical output files every time,
with every decoder, in one process and on a dask.distributed cluster.

The CPU networks take ``os.cpu_count()`` PyTorch threads in a process of their own and
the worker's thread count (1 here) on a dask worker; float sums differ in their last bits
between thread counts (measurement residuals at the 1e-8 level, frames possibly by one
level where a value sits on a rounding boundary).  So the single-process decodes here
run with one thread, as the workers do (which also keeps them fast on a shared machine);
:func:`test_learned_decoder_on_all_cores_is_deterministic` checks the default threads.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import tifffile

import emtcs
from emtcs.codec import write_simulation

DECODERS = ["gaptv", "tcsdl", "gapnet", "gapunet", "auto"]
B = 10  # served by the shipped weights (8..30); 23 frames make groups of 10, 10 and 3


def _needs(decoder: str) -> None:
    if decoder != "gaptv":
        pytest.importorskip("torch")
        pytest.importorskip("safetensors")


@contextmanager
def _one_thread(monkeypatch):
    with monkeypatch.context() as m:
        m.setattr(os, "cpu_count", lambda: 1)
        yield


@pytest.fixture(scope="module")
def tcs(tmp_path_factory) -> Path:
    """A small simulated movie (23 frames of 40 x 56, the last group short), compressed."""
    folder = tmp_path_factory.mktemp("determinism")
    write_simulation(folder / "movie.tif", n_frames=23, shape=(40, 56), dose=50.0, seed=11)
    emtcs.compress(folder / "movie.tif", folder / "movie.tcs", B=B, seed=5)
    return folder / "movie.tcs"


def _decode(tcs: Path, out: Path, decoder: str, **kwargs) -> emtcs.codec.DecompressReport:
    # 32-pixel tiles: several tiles per group, so stitching and batching take part
    return emtcs.decompress(tcs, out, decoder=decoder, device="cpu", tile=32, overlap=8, **kwargs)


@pytest.mark.parametrize("decoder", DECODERS)
def test_same_file_decodes_to_identical_bytes(tcs, tmp_path, monkeypatch, decoder):
    _needs(decoder)
    with _one_thread(monkeypatch):
        first = _decode(tcs, tmp_path / "a.tif", decoder)
        second = _decode(tcs, tmp_path / "b.tif", decoder)
    assert (tmp_path / "a.tif").read_bytes() == (tmp_path / "b.tif").read_bytes()
    assert first.residuals == second.residuals and first.fallback == second.fallback
    assert first.decoder == second.decoder
    frames = tifffile.imread(tmp_path / "a.tif")
    assert frames.shape == (23, 40, 56) and frames.dtype == np.uint16
    if decoder == "auto":  # GapUNet or GAP-TV per tile, behind the guard
        assert first.decoder["name"] == "select" and first.decoder["guard"] == 2.0
        assert first.decoder["fallback"]["name"] == "gaptv"


@pytest.mark.slow
def test_learned_decoder_on_all_cores_is_deterministic(tcs, tmp_path):
    _needs("tcsdl")
    # one group, one tile: PyTorch on every core is slow where another process holds one
    first = emtcs.decompress(tcs, tmp_path / "a.tif", decoder="auto", device="cpu", frames="0:10")
    second = emtcs.decompress(tcs, tmp_path / "b.tif", decoder="auto", device="cpu", frames="0:10")
    assert (tmp_path / "a.tif").read_bytes() == (tmp_path / "b.tif").read_bytes()
    assert first.residuals == second.residuals


@pytest.mark.slow
@pytest.mark.parametrize("decoder", DECODERS)
def test_two_workers_give_the_single_process_bytes(tcs, tmp_path, monkeypatch, decoder):
    pytest.importorskip("distributed")
    _needs(decoder)
    with _one_thread(monkeypatch):
        here = _decode(tcs, tmp_path / "here.tif", decoder)
    there = _decode(tcs, tmp_path / "there.tif", decoder, workers=2)
    assert (tmp_path / "there.tif").read_bytes() == (tmp_path / "here.tif").read_bytes()
    assert there.residuals == here.residuals  # summed in the same order, bit for bit
    assert there.fallback == here.fallback
    assert there.decoder["name"] == here.decoder["name"]


@pytest.mark.parametrize("decoder", ["gapunet", "auto"])
def test_a_frame_range_decodes_as_in_the_whole_movie(tcs, tmp_path, monkeypatch, decoder):
    """GapUNet decodes runs of groups together (``--run``): frames asked for alone are those
    of the whole movie, their neighbouring groups decoded beside them; with runs of one
    group the frames beside the boundary differ, the others nearly not."""
    _needs(decoder)
    with _one_thread(monkeypatch):
        _decode(tcs, tmp_path / "all.tif", decoder, run=4)
        part = _decode(tcs, tmp_path / "part.tif", decoder, frames="12:17", run=4)
        _decode(tcs, tmp_path / "alone.tif", decoder, run=1)
    whole, alone = tifffile.imread(tmp_path / "all.tif"), tifffile.imread(tmp_path / "alone.tif")
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "part.tif"), whole[12:17])
    assert part.decoder["run"] == 4 and sorted(part.residuals) == [1]
    change = np.abs(whole.astype(np.int64) - alone).reshape(len(whole), -1).mean(axis=1)
    assert min(change[9], change[10]) > 2 * max(change[4], change[15]) > 0  # the boundary frames move most
    np.testing.assert_array_equal(whole[20:], alone[20:])  # the short last group is a run of its own


@pytest.mark.parametrize("decoder", ["gaptv", "auto"])
def test_read_frames_gives_the_frames_decompress_writes(tcs, tmp_path, monkeypatch, decoder):
    _needs(decoder)
    notes: list[str] = []
    with _one_thread(monkeypatch):
        _decode(tcs, tmp_path / "all.tif", decoder)
        part = emtcs.read_frames(tcs, "7:25", decoder=decoder, device="cpu", tile=32, overlap=8, log=notes.append)
    assert part.dtype == np.uint16 and part.shape == (23 - 7, 40, 56)
    np.testing.assert_array_equal(part, tifffile.imread(tmp_path / "all.tif")[7:])
    assert any("23 frames" in note for note in notes)  # the range was cut at the end, and said so
    with pytest.raises(emtcs.InputError, match="selects no frames"):
        emtcs.read_frames(tcs, "30:40", decoder=decoder)


def test_runs_are_fixed_blocks_of_groups_split_where_lengths_change_or_a_scene_starts():
    from emtcs.container import TcsHeader
    from emtcs.decoding import group_runs

    hd = TcsHeader(B=3, n_frames=26, frame_shape=(8, 8), source_dtype="uint8", measurement_dtype="uint16")
    # eight groups of 3 frames and one of 2
    assert group_runs(hd, range(hd.n_groups), 4) == [range(0, 4), range(4, 8), range(8, 9)]
    assert group_runs(hd, range(5, 6), 4) == [range(4, 8)]
    assert group_runs(hd, range(3, 5), 1) == [range(3, 4), range(4, 5)]
    cut = TcsHeader(
        B=3,
        n_frames=14,
        frame_shape=(8, 8),
        source_dtype="uint8",
        measurement_dtype="uint16",
        group_starts=[0, 3, 6, 9, 12],
        cuts=[6],
    )
    # groups 3 3 3 3 2 frames; group 2 starts a scene
    assert group_runs(cut, range(cut.n_groups), 4) == [range(0, 2), range(2, 4), range(4, 5)]
