"""A quick look at a ``.tcs`` file without decoding it: one frame per group, its mean.

A group's measurement sums, at every pixel, the frames whose mask is open there, so the
measurement divided by that count is the mean of those frames: the group's mean frame
where the specimen held still, an average over a random half of its frames where it moved
(with the masks' texture).  It needs no decoder, no torch and no GPU, and reads each group
once: a way to browse an archive of ``.tcs`` files (which holds the event, where the stage
moved) in the time it takes to read them.  Pixels no frame of a group recorded (about one
in 2^B; a quarter of them at B = 2) take the mean of their recorded neighbours.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from .atomic import atomic_output, check_output
from .codec import frame_range
from .container import TcsReader
from .errors import InputError
from .io import check_writable, create_movie

__all__ = ["group_mean", "preview", "preview_frames"]


def group_mean(reader: TcsReader, g: int, binning: int = 1) -> np.ndarray:
    """The mean of group ``g``'s frames from its measurement alone, in the file's levels
    (float32, frame shape divided by ``binning``, the remainder rows and columns left out;
    binned as the sum of the measurement over the sum of the counts)."""
    y = reader.measurement(g).astype(np.float64)
    counts = reader.frame_counts(g).astype(np.float64)
    if binning > 1:
        y, counts = _binned(y, binning), _binned(counts, binning)
    mean = np.divide(y, counts, out=np.zeros_like(y), where=counts > 0)
    missing = counts == 0
    while missing.any():  # normalised convolution: the mean of the recorded 3 x 3 neighbours
        total, n = _box3(np.where(missing, 0.0, mean)), _box3((~missing).astype(np.float64))
        fill = missing & (n > 0)
        if not fill.any():  # nothing recorded at all: no mean to give
            break
        mean[fill] = total[fill] / n[fill]
        missing &= ~fill
    return mean.astype(np.float32)


def _binned(a: np.ndarray, k: int) -> np.ndarray:
    h, w = a.shape[0] // k, a.shape[1] // k
    return a[: h * k, : w * k].reshape(h, k, w, k).sum((1, 3))


def _box3(a: np.ndarray) -> np.ndarray:
    p = np.pad(a, 1)
    return sum(p[i : i + a.shape[0], j : j + a.shape[1]] for i in range(3) for j in range(3))


def preview_frames(reader: TcsReader, frames: range) -> list[range]:
    """The movie frames each preview frame averages: those of every group holding one of ``frames``."""
    hd = reader.header
    groups = range(hd.group_of(frames.start), hd.group_of(frames.stop - 1) + 1)
    return [hd.group_frames(g) for g in groups]


def preview(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    *,
    binning: int = 1,
    frames: str | tuple[int, int] | range | None = None,
    force: bool = False,
    progress: Callable[[int], None] | None = None,
) -> list[range]:
    """Write one frame per group of ``src`` (those holding ``frames``, "A:B" as
    :func:`emtcs.decompress` takes them; all by default) to ``dst`` (TIFF or MRC, the
    source's dtype): :func:`group_mean`, binned ``binning`` x ``binning``.
    The pixel size is the source's times ``binning`` and the frame interval its times B.
    Returns, for every frame written, the movie frames it averages.  ``progress`` is called
    with 1 after each frame."""
    if not isinstance(binning, int) or binning < 1:
        raise InputError(f"--bin must be a whole number of pixels, 1 or more (got {binning!r})")
    dst = Path(dst)
    check_writable(dst)
    check_output(dst, force=force, inputs=(src,))
    with TcsReader(src) as reader:
        hd = reader.header
        H, W = (n // binning for n in hd.frame_shape)
        if min(H, W) < 1:
            raise InputError(f"--bin {binning} is larger than the {hd.frame_shape[0]}x{hd.frame_shape[1]} frames")
        spans = preview_frames(reader, frame_range(frames, hd.n_frames))
        first = hd.group_of(spans[0].start)
        meta = dict(hd.metadata)
        if meta.get("pixel_size"):
            meta["pixel_size"] = [s * binning for s in meta["pixel_size"]]
        if meta.get("frame_interval"):
            meta["frame_interval"] = meta["frame_interval"] * hd.B
        vmap = hd.value_map
        with atomic_output(dst, force=force) as tmp:
            with create_movie(tmp, (len(spans), H, W), vmap.source_dtype, meta, name=dst) as out:
                for k in range(len(spans)):
                    out.write(k, vmap.to_source(group_mean(reader, first + k, binning)))
                    if progress is not None:
                        progress(1)
    return spans
