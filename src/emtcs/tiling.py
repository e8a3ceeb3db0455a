"""Tiled reconstruction of one group with overlap stitching.

Any frame size is decoded as tiles (256 x 256 by default) on a grid with overlap
(32 px by default); each tile's frames are weighted by a smooth window that tapers
only towards neighbouring tiles, and overlapping tiles are blended by the normalised
weighted sum.  Tiles are processed one row band at a time and finished rows are handed
to a callback at once, so memory holds a band of tiles, never the whole group.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import numpy as np

from .decoders.base import Decoder

__all__ = ["TILE", "OVERLAP", "MaskSource", "tile_starts", "blend_window", "intensity_scale", "reconstruct_group"]

TILE = 256
OVERLAP = 32


class MaskSource(Protocol):
    """Where the tiler gets masks: any window of ``nb`` masks over the frame."""

    nb: int

    def window(self, rows: slice, cols: slice) -> np.ndarray: ...


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of tiles covering ``length`` px; the last tile is shifted to end flush."""
    if length <= tile:
        return [0]
    stride = tile - overlap
    starts = list(range(0, length - tile, stride))
    starts.append(length - tile)
    return starts


def blend_window(size: int, overlap: int, left: bool, right: bool) -> np.ndarray:
    """1-D weights: 1 inside, a raised-cosine ramp over ``overlap`` px on sides with a neighbour.

    The ramp never reaches 0, so every pixel has positive total weight.
    """
    w = np.ones(size, dtype=np.float32)
    n = min(overlap, size // 2)
    if n > 0:
        ramp = np.sin(0.5 * np.pi * (np.arange(n, dtype=np.float32) + 0.5) / n) ** 2
        if left:
            w[:n] = ramp
        if right:
            w[size - n :] = ramp[::-1]
    return w


def intensity_scale(y: np.ndarray, masks: MaskSource, max_samples: int = 1 << 18) -> float:
    """Per-group scale that maps frame intensities to about [0, 1] for the decoders.

    The 99.9th percentile of Y / sum_b C_b (the normalised measurement of Equation 2,
    an estimate of the frames' mean) over a regular subsample of at most ``max_samples``
    pixels; 1.0 for an all-zero measurement.
    """
    H, W = y.shape
    step = max(1, int(np.ceil(np.sqrt(H * W / max_samples))))
    rows, cols = slice(0, H, step), slice(0, W, step)
    csum = masks.window(rows, cols).sum(axis=0, dtype=np.float32)
    ybar = y[rows, cols].astype(np.float32) / np.maximum(csum, 1.0)
    scale = float(np.percentile(ybar, 99.9))
    return scale if scale > 0 and np.isfinite(scale) else 1.0


def reconstruct_group(
    y: np.ndarray,
    masks: MaskSource,
    decoder: Decoder,
    emit: Callable[[slice, np.ndarray], None],
    *,
    tile: int = TILE,
    overlap: int = OVERLAP,
    batch: int = 8,
    scale: float | None = None,
    progress: Callable[[float], None] | None = None,
) -> float:
    """Reconstruct the frames of one measurement ``y`` (H, W), tile by tile.

    ``emit(rows, frames)`` receives finished rows as a (nb, len(rows), W) float32 block
    in the units of ``y``, top to bottom.  ``progress`` gets the fraction of the group
    done since its last call.  Returns the relative measurement residual
    ``||y - sum_b C_b * X_b|| / ||y||`` of the stitched result (0 for a zero ``y``).
    """
    if not 0 <= overlap < tile:
        raise ValueError(f"overlap {overlap} must be in [0, tile={tile})")
    H, W = y.shape
    nb = masks.nb
    if scale is None:
        scale = intensity_scale(y, masks)
    ys, xs = tile_starts(H, tile, overlap), tile_starts(W, tile, overlap)
    th, tw = min(tile, H), min(tile, W)
    acc = np.zeros((nb, th, W), dtype=np.float32)
    wsum = np.zeros((th, W), dtype=np.float32)
    top = 0
    res_num = res_den = 0.0
    for i, y0 in enumerate(ys):
        shift = y0 - top
        if shift:
            acc[:, : th - shift] = acc[:, shift:]
            acc[:, th - shift :] = 0
            wsum[: th - shift] = wsum[shift:]
            wsum[th - shift :] = 0
            top = y0
        wy = blend_window(th, overlap, y0 > 0, y0 + th < H)
        rows = slice(y0, y0 + th)
        for j in range(0, len(xs), batch):
            chunk = xs[j : j + batch]
            ytiles = np.stack([y[rows, x0 : x0 + tw] for x0 in chunk]).astype(np.float32) / scale
            mtiles = np.stack([masks.window(rows, slice(x0, x0 + tw)) for x0 in chunk]).astype(np.float32)
            frames = decoder.decode(ytiles, mtiles)
            for x0, f in zip(chunk, frames):
                w2 = wy[:, None] * blend_window(tw, overlap, x0 > 0, x0 + tw < W)[None, :]
                acc[:, :, x0 : x0 + tw] += f * w2
                wsum[:, x0 : x0 + tw] += w2
        done = (ys[i + 1] if i + 1 < len(ys) else H) - y0
        block = acc[:, :done] / wsum[:done] * np.float32(scale)
        out_rows = slice(y0, y0 + done)
        yr = y[out_rows].astype(np.float64)
        model = np.zeros(yr.shape, dtype=np.float64)
        for b, m in enumerate(masks.window(out_rows, slice(None))):
            model += block[b] * m
        res_num += float(np.sum((yr - model) ** 2))
        res_den += float(np.sum(yr**2))
        emit(out_rows, block)
        if progress is not None:
            progress(done / H)
    return float(np.sqrt(res_num / res_den)) if res_den > 0 else 0.0
