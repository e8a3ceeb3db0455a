"""Shared fixtures: small movies written on the fly, the shared data folder, a CLI runner."""

from __future__ import annotations

import os
import resource
import shutil
from pathlib import Path

import numpy as np
import pytest
import tifffile
from click.testing import CliRunner
from scipy.ndimage import gaussian_filter, shift

from emtcs.cli import main

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def _cap_address_space() -> None:
    """Cap the test process's address space at max(16 GiB, 3/4 of the memory) on machines
    without a GPU (CUDA reserves far more address space than it uses).  No test needs a
    fraction of that; twice a clean-clone run was killed by the OOM killer with pytest at
    about 22 GB, in no test that could be told (the output is buffered), and a capped
    process gets a MemoryError, or an HDF5 allocation error that the reader reports, in
    the test at fault instead."""
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    if soft != resource.RLIM_INFINITY or shutil.which("nvidia-smi") or not hasattr(os, "sysconf"):
        return
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        return
    cap = max(16 << 30, memory * 3 // 4)
    if hard == resource.RLIM_INFINITY or cap <= hard:
        resource.setrlimit(resource.RLIMIT_AS, (cap, hard))


_cap_address_space()


def shared_file(*parts: str) -> Path:
    """A file under ../shared/data, or skip the test saying what is missing."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} not present (the shared data folder sits beside the repository)")
    return path


def drifting_movie(n: int, shape: tuple[int, int], dtype=np.uint16, seed: int = 0) -> np.ndarray:
    """A smooth random texture drifting by a fraction of a pixel per frame."""
    rng = np.random.default_rng(seed)
    base = gaussian_filter(rng.random((shape[0] + 8, shape[1] + 8)), 2.0)
    base = (base - base.min()) / (base.max() - base.min())
    frames = np.stack([shift(base, (0.3 * t, 0.2 * t), mode="nearest")[4:-4, 4:-4] for t in range(n)])
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return (frames * 2.0 - 0.5).astype(dtype)
    lo, hi = (np.iinfo(dtype).min, np.iinfo(dtype).max) if dtype.kind in "ui" else (0, 1)
    span = min(hi - lo, 4000)
    return (lo + 0.1 * span + frames * 0.8 * span).astype(dtype)


@pytest.fixture
def run():
    """Invoke the CLI in-process; returns the click Result."""
    runner = CliRunner()

    def _run(*args: str):
        return runner.invoke(main, [str(a) for a in args], catch_exceptions=False)

    return _run


@pytest.fixture
def movie_file(tmp_path: Path):
    """Write a (n, H, W) movie as an ImageJ TIFF with calibration; returns (path, frames)."""

    def _make(n: int = 13, shape: tuple[int, int] = (40, 52), dtype=np.uint16, name: str = "movie.tif"):
        frames = drifting_movie(n, shape, dtype)
        path = tmp_path / name
        imagej = np.dtype(dtype) in (np.uint8, np.uint16, np.float32)
        if imagej:
            tifffile.imwrite(
                path,
                frames,
                imagej=True,
                resolution=(1 / 0.25, 1 / 0.25),
                metadata={"axes": "TYX", "finterval": 0.005, "unit": "nm"},
            )
        else:
            tifffile.imwrite(path, frames)
        return path, frames

    return _make
