"""Tiled reconstruction of one group, or of a run of consecutive groups, with overlap stitching.

Any frame size is decoded as tiles (256 x 256 by default) on a grid with overlap
(32 px by default); each tile's frames are weighted by a smooth window that tapers
only towards neighbouring tiles, and overlapping tiles are blended by the normalised
weighted sum.  Tiles are processed one row band at a time and finished rows are handed
out at once, so memory holds a band of tiles, never the whole group; any range of bands
can be decoded on its own (row blocks of very large frames, in parallel).  The groups
of a run share the tile grid: a decoder that sees across groups gets each tile
position's groups together (:func:`decode_run_bands`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Protocol

import numpy as np

from .decoders.base import Decoder

__all__ = [
    "TILE",
    "OVERLAP",
    "MaskSource",
    "tile_starts",
    "blend_window",
    "intensity_scale",
    "decoder_tiles",
    "decode_run_bands",
    "relative_residual",
    "reconstruct_group",
]

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


def intensity_scale(y: np.ndarray, masks: MaskSource, max_samples: int = 1 << 18, pedestal: float = 0.0) -> float:
    """Per-group scale that maps frame intensities to about [0, 1] for the decoders.

    The 99.9th percentile of Y / sum_b C_b (the normalised measurement of Equation 2,
    an estimate of the frames' mean) less ``pedestal`` over a regular subsample of at most
    ``max_samples`` pixels; 1.0 where that is not positive.
    """
    H, W = y.shape
    step = max(1, int(np.ceil(np.sqrt(H * W / max_samples))))
    rows, cols = slice(0, H, step), slice(0, W, step)
    csum = masks.window(rows, cols).sum(axis=0, dtype=np.float32)
    ybar = y[rows, cols].astype(np.float32) / np.maximum(csum, 1.0) - np.float32(pedestal)
    scale = float(np.percentile(ybar, 99.9))
    return scale if scale > 0 and np.isfinite(scale) else 1.0


def decoder_tiles(
    y: np.ndarray, masks: MaskSource, rows: slice, cols: list[slice], scale: float, pedestal: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """The tiles ``(rows, c)`` for ``c`` in ``cols`` of a measurement ``y`` and its masks as
    the decoders get them: float32 (n, h, w) measurements less the ``pedestal`` and divided
    by ``scale`` (:func:`decode_run_bands`), and float32 (n, nb, h, w) masks."""
    mtiles = np.stack([masks.window(rows, c) for c in cols]).astype(np.float32)
    return measurement_tiles(y, mtiles, rows, cols, scale, pedestal), mtiles


def measurement_tiles(
    y: np.ndarray, mtiles: np.ndarray, rows: slice, cols: list[slice], scale: float, pedestal: float = 0.0
) -> np.ndarray:
    """The tiles ``(rows, c)`` of a measurement ``y`` taken with the masks ``mtiles`` (those
    tiles' (n, nb, h, w)), as :func:`decoder_tiles` gives them."""
    ytiles = np.stack([y[rows, c] for c in cols]).astype(np.float64)
    if pedestal:
        ytiles -= pedestal * mtiles.sum(axis=1, dtype=np.float64)
    return (ytiles / scale).astype(np.float32)


def decode_run_bands(
    y: np.ndarray,
    masks: MaskSource,
    decoder: Decoder,
    *,
    tile: int = TILE,
    overlap: int = OVERLAP,
    batch: int = 8,
    scale: float | np.ndarray | None = None,
    gain: float | np.ndarray | None = None,
    pedestal: float = 0.0,
    bands: range | None = None,
    finish: Callable[..., np.ndarray] | None = None,
    still: Callable[..., np.ndarray] | None = None,
    neighbours: Sequence[Sequence[np.ndarray | None]] = (),
) -> Iterator[tuple[slice, np.ndarray, list[tuple[float, float]]]]:
    """Reconstruct the frames of a run of consecutive groups of one length, their
    measurements ``y`` (K, H, W) taken with the same ``masks``, one band of tile rows at a time.

    A decoder that sees across groups (:attr:`emtcs.decoders.Decoder.sees_runs`) gets each
    tile position's K tiles as one run; others decode each group alone.  Band ``i`` holds
    the output rows ``tile_starts(H)[i]`` up to the next band's start; they are final once
    tile row ``i`` is decoded.  Yields ``(rows, frames, terms)``: the (K, nb, len(rows), W)
    float32 frames in the units of ``y`` and each group's (num, den) terms of the residual
    for the band (see :func:`relative_residual`).  ``bands`` limits the output to a range
    of bands; the tile rows overlapping its first band are decoded too (and dropped), so a
    band's frames are bit-identical whichever range it is decoded in.  ``scale`` (one for
    all groups, or one per group) defaults to each group's :func:`intensity_scale`, so
    that a group is normalised as it would be alone.  ``batch`` is the tiles per decoder
    call (at least one run's).  ``gain`` (units of ``y`` per electron; one, or one per
    group) gives the decoder the noise level, ``scale / gain`` electrons per normalised
    unit, per tile; None leaves it unknown.  ``pedestal`` is the level every frame holds
    at zero electrons (:func:`emtcs.decoding.noise_pedestal`): it is taken off the
    measurement before decoding, so that the decoders see counts whose shot noise ``gain``
    describes, and put back on the frames.  ``finish`` (:func:`emtcs.finish.finisher`)
    takes each batch of decoded tiles before they are stitched; the residual is that of
    the finished frames.  ``still`` (:class:`emtcs.still.StillTiles`) then takes them, with
    the same tiles of each group's ``neighbours`` (per group, the measurements of up to two
    neighbouring groups taken with the same masks; a missing one None, its tiles NaN),
    where ``gain`` is known.
    """
    if not 0 <= overlap < tile:
        raise ValueError(f"overlap {overlap} must be in [0, tile={tile})")
    K, H, W = y.shape
    nb = masks.nb
    if scale is None:
        scale = [intensity_scale(g, masks, pedestal=pedestal) for g in y]
    scales = np.broadcast_to(np.asarray(scale, dtype=np.float64), (K,))
    epu = None if gain is None or not np.all(np.asarray(gain) > 0) else scales / np.asarray(gain, dtype=np.float64)
    run = {"run": K} if K > 1 and decoder.sees_runs else {}
    ys, xs = tile_starts(H, tile, overlap), tile_starts(W, tile, overlap)
    th, tw = min(tile, H), min(tile, W)
    bands = bands if bands is not None else range(len(ys))
    # warm-up: every earlier tile row that reaches into the first band's rows
    first = next(k for k in range(len(ys)) if ys[k] + th > ys[bands.start])
    acc = np.zeros((K, nb, th, W), dtype=np.float32)
    wsum = np.zeros((th, W), dtype=np.float32)
    top = ys[first]
    per_call = max(1, batch // K)  # tile positions per decoder call
    for i in range(first, bands.stop):
        y0 = ys[i]
        shift = y0 - top
        if shift:
            acc[..., : th - shift, :] = acc[..., shift:, :]
            acc[..., th - shift :, :] = 0
            wsum[: th - shift] = wsum[shift:]
            wsum[th - shift :] = 0
            top = y0
        wy = blend_window(th, overlap, y0 > 0, y0 + th < H)
        rows = slice(y0, y0 + th)
        for j in range(0, len(xs), per_call):
            chunk = xs[j : j + per_call]
            cols = [slice(x0, x0 + tw) for x0 in chunk]
            mt = np.stack([masks.window(rows, c) for c in cols]).astype(np.float32)
            ytiles = _position_major(list(y), mt, rows, cols, scales, pedestal)
            mtiles = np.repeat(mt, K, axis=0)
            told = None if epu is None else np.tile(epu, len(chunk))
            frames = decoder.decode(ytiles, mtiles, told, **run)
            if finish is not None:
                frames = finish(frames, ytiles, mtiles, told)
            if still is not None and told is not None and neighbours:
                others = [
                    _position_major([n[side] for n in neighbours], mt, rows, cols, scales, pedestal)
                    for side in range(len(neighbours[0]))
                ]
                frames = still(frames, ytiles, mtiles, told, others)
            for x0, f in zip(chunk, frames.reshape(len(chunk), K, nb, th, tw)):
                w2 = wy[:, None] * blend_window(tw, overlap, x0 > 0, x0 + tw < W)[None, :]
                acc[..., x0 : x0 + tw] += f * w2
                wsum[:, x0 : x0 + tw] += w2
        if i < bands.start:
            continue
        done = (ys[i + 1] if i + 1 < len(ys) else H) - y0
        block = acc[..., :done, :] / wsum[:done] * scales.astype(np.float32)[:, None, None, None]
        if pedestal:
            block = (block + pedestal).astype(np.float32)
        out_rows = slice(y0, y0 + done)
        window = masks.window(out_rows, slice(None))
        terms = []
        for k in range(K):
            yr = y[k, out_rows].astype(np.float64)
            model = np.zeros(yr.shape, dtype=np.float64)
            for b, m in enumerate(window):
                model += block[k, b] * m
            terms.append((float(np.sum((yr - model) ** 2)), float(np.sum(yr**2))))
        yield out_rows, block, terms


def _position_major(
    ys: Sequence[np.ndarray | None],
    mt: np.ndarray,
    rows: slice,
    cols: list[slice],
    scales: Sequence[float] | np.ndarray,
    pedestal: float,
) -> np.ndarray:
    """The tiles ``(rows, c)`` of one measurement per group, each group's own scale, as one
    (len(cols) * K, h, w) batch in the decoders' order: each position's K groups in time
    order.  A missing measurement (None) gives NaN tiles."""
    n, _, h, w = mt.shape
    return np.stack(
        [
            np.full((n, h, w), np.nan, np.float32) if g is None else measurement_tiles(g, mt, rows, cols, s, pedestal)
            for g, s in zip(ys, scales)
        ],
        1,
    ).reshape(-1, h, w)


def relative_residual(terms: Iterable[tuple[float, float]]) -> float:
    """``||y - sum_b C_b * X_b|| / ||y||`` from the bands' (num, den) terms, summed in order
    (0 for a zero ``y``)."""
    num = den = 0.0
    for n, d in terms:
        num += n
        den += d
    return float(np.sqrt(num / den)) if den > 0 else 0.0


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
    gain: float | None = None,
    finish: Callable[..., np.ndarray] | None = None,
    pedestal: float = 0.0,
    progress: Callable[[float], None] | None = None,
) -> float:
    """Reconstruct the frames of one measurement ``y`` (H, W), tile by tile.

    ``emit(rows, frames)`` receives finished rows as a (nb, len(rows), W) float32 block
    in the units of ``y``, top to bottom.  ``progress`` gets the fraction of the group
    done since its last call; ``gain``, ``finish`` and ``pedestal`` as in
    :func:`decode_run_bands`.  Returns the relative measurement residual
    ``||y - sum_b C_b * X_b|| / ||y||`` of the stitched result (0 for a zero ``y``).
    """
    terms = []
    for rows, block, group_terms in decode_run_bands(
        y[None],
        masks,
        decoder,
        tile=tile,
        overlap=overlap,
        batch=batch,
        scale=scale,
        gain=gain,
        finish=finish,
        pedestal=pedestal,
    ):
        emit(rows, block[0])
        terms.append(group_terms[0])
        if progress is not None:
            progress((rows.stop - rows.start) / y.shape[0])
    return relative_residual(terms)
