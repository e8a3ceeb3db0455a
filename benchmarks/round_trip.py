"""A movie through the ``emtcs`` command's own path: compressed once, decompressed with
each of several settings (the benchmarks that compare decoders or options as a user runs
them: ``group_runs.py``, ``peak_timeline.py``)."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Hashable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import tifffile

from emtcs import codec
from emtcs.io import open_movie


def round_trip(
    frames: np.ndarray, B: int, settings: Mapping[Hashable, Mapping[str, Any]], seed: int = 0
) -> dict[Hashable, tuple[np.ndarray, float]]:
    """``frames`` compressed at B with the defaults (masks of ``seed``), then decompressed
    once per entry of ``settings`` (keyword arguments of :func:`emtcs.codec.decompress`):
    key -> (the decoded frames, the seconds decompression took)."""
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        src, tcs = Path(tmp) / "movie.tif", Path(tmp) / "movie.tcs"
        tifffile.imwrite(src, frames)
        codec.compress(src, tcs, B, seed=seed)
        for i, (key, kwargs) in enumerate(settings.items()):
            restored = Path(tmp) / f"restored{i}.tif"
            t0 = time.perf_counter()
            codec.decompress(tcs, restored, **kwargs)
            seconds = time.perf_counter() - t0
            with open_movie(restored) as movie:
                out[key] = (movie.read(0, movie.n_frames), seconds)
    return out
