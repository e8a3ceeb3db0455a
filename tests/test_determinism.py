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
