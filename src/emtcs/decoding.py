"""Decoding the groups of a ``.tcs``, band by band: the one job shared by one process
(:func:`emtcs.codec.decompress`) and the dask workers (:mod:`emtcs.distributed`).

Imports flow one way: :mod:`emtcs.codec` and :mod:`emtcs.distributed` import this
module, and :mod:`emtcs.distributed` never imports :mod:`emtcs.codec`.  A group decodes
to the same frames wherever it runs.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from .container import TcsHeader, TcsReader
from .decoders import Decoder, decoder_for_group
from .decoders.guard import GUARD_RATIO, GuardedDecoder, guarded
from .decoders.learned import LearnedDecoder
from .decoders.select import SelectingDecoder
from .errors import InputError
from .finish import FINISHES, STRENGTH, finisher
from .tiling import OVERLAP, TILE, decode_bands, intensity_scale

__all__ = [
    "DecodeSettings",
    "DecodedRows",
    "GroupBand",
    "decode_group",
    "decode_here",
    "finishing",
    "gap_tv_tiles",
    "holdout_scores",
    "noise_gain",
    "noise_pedestal",
    "reported_config",
    "wanted_frames",
]


@dataclass(frozen=True)
class DecodeSettings:
    """How the groups are decoded, validated once: the tiling, the tiles per decoder call,
    the guard's threshold, the device and the decoder's keyword options.

    Frozen and hashable (``options`` are sorted (name, value) pairs, not a dict), so it
    fits in a worker's task description and in its decoder cache key.
    """

    tile: int = TILE
    """Tile size in pixels."""
    overlap: int = OVERLAP
    """Overlap of neighbouring tiles in pixels, in [0, tile)."""
    batch: int = 8
    """Tiles per decoder call."""
    guard: float = GUARD_RATIO
    """Threshold of the guard on learned decoders (times the shot noise; 0: off)."""
    device: str = "auto"
    """Device of learned decoders: auto, cpu or cuda."""
    options: tuple[tuple[str, Any], ...] = ()
    """Keyword options of the decoder as (name, value) pairs, kept sorted by name."""
    finish: str = "nlm"
    """How decoded tiles are finished (:mod:`emtcs.finish`): nlm or none."""

    def __post_init__(self) -> None:
        if not (math.isfinite(self.guard) and self.guard >= 0):
            raise InputError(f"--guard must be a ratio >= 0 (0: off), got {self.guard}")
        if self.tile < 1:
            raise InputError(f"tile must be at least 1 pixel (got {self.tile})")
        if not 0 <= self.overlap < self.tile:
            raise InputError(f"overlap {self.overlap} must be in [0, tile={self.tile})")
        if self.batch < 1:
            raise InputError(f"--batch must be at least 1 tile (got {self.batch})")
        if self.finish not in FINISHES:
            raise InputError(f"--finish must be one of {', '.join(FINISHES)} (got {self.finish!r})")
        object.__setattr__(self, "options", tuple(sorted(dict(self.options).items())))

    @property
    def decoder_options(self) -> dict[str, Any]:
        """``options`` as the keyword arguments of :func:`emtcs.decoders.decoder_for`."""
        return dict(self.options)


class DecodedRows(NamedTuple):
    """Decoded rows of some frames of one group, as :func:`emtcs.codec.decompress` writes them."""

    g: int
    t_out: list[int]  # output index of each frame
    rows: slice
    frames: np.ndarray  # (len(t_out), len(rows), W) in the source dtype
    terms: list[tuple[float, float]]  # residual terms of the bands decoded
    last: bool  # the group's last rows: its residual is complete
    decoder: dict[str, Any]  # the decoder's config
    fallback: tuple[int, int] = (0, 0)  # (tiles given to GAP-TV, tiles decoded): gap_tv_tiles
    holdout: tuple[float, int] = (0.0, 0)  # (sum of hold-out scores, tiles scored): holdout_scores
    blended: int = 0  # tiles select blended with GAP-TV: blended_tiles


class GroupBand(NamedTuple):
    """One band of rows of a decoded group (see :func:`decode_group`)."""

    rows: slice
    frames: np.ndarray  # (len(keep), len(rows), W) in the source dtype
    num: float  # residual terms (emtcs.tiling.relative_residual)
    den: float
    fallback: tuple[int, int]  # (tiles given to GAP-TV, tiles decoded) for this band: gap_tv_tiles
    holdout: tuple[float, int]  # (sum of hold-out scores, tiles scored) for this band: holdout_scores
    blended: int  # tiles select blended with GAP-TV in this band: blended_tiles


def decode_here(reader: TcsReader, sel: range, dec: Decoder, settings: DecodeSettings) -> Iterator[DecodedRows]:
    """The groups holding the frames ``sel``, decoded in this process band by band."""
    hd, config = reader.header, reported_config(dec, settings)
    for g, keep, t_out in wanted_frames(hd, sel):
        for band in decode_group(reader, g, dec, settings, keep=keep):
            last = band.rows.stop == hd.frame_shape[0]
            terms = [(band.num, band.den)]
            yield DecodedRows(
                g, t_out, band.rows, band.frames, terms, last, config, band.fallback, band.holdout, band.blended
            )


def gap_tv_tiles(dec: Decoder) -> tuple[int, int]:
    """(tiles given to GAP-TV, tiles decoded) so far by ``dec``: by the guard around a learned
    decoder and by ``select``'s hold-out rule; (0, 0) for other decoders."""
    replaced = tiles = 0
    if isinstance(dec, GuardedDecoder):
        replaced, tiles, dec = dec.replaced, dec.tiles, dec.inner
    if isinstance(dec, SelectingDecoder):
        replaced, tiles = replaced + dec.replaced, dec.tiles
    return replaced, tiles


def noise_gain(reader: TcsReader, g: int, y: np.ndarray) -> tuple[float, bool]:
    """Levels per electron the decoders are told for group ``g`` (measurement ``y``), and
    whether that reflects the movie's noise.

    With the detector's noise model (or an Anscombe coding's gain) it is its gain.  A file
    whose noise was measured without a model (``gaussian-v1``, or ``noise_sigma`` beside exact
    measurements) has noise of sigma levels per frame whatever the intensity; the Poisson
    gain with that variance at the group's mean level per frame, sigma² / mean, is what the
    decoders are told.  Otherwise: one level per electron, a guess."""
    hd = reader.header
    sigma = hd.measured_sigma
    if sigma is not None:
        counts = reader.frame_counts(g)
        mean = float(np.sum(y, dtype=np.float64)) / max(float(np.sum(counts, dtype=np.float64)), 1.0)
        return sigma**2 / max(mean, sigma), True
    return hd.gain_in_levels, hd.noise is not None or hd.measurement_coding.startswith("anscombe")


def noise_pedestal(hd: TcsHeader) -> float:
    """The level (of the stored measurements) each frame holds at zero electrons, with the
    read noise folded in: the detector's offset less gain x read noise², so that the noise
    variance of a frame reading ``x`` is gain x (x - pedestal) (formats/tcs.md §4); 0
    without a noise model, or where the model puts it further from the stored levels than
    their own range (a model that does not describe these data).  The decoders are trained
    on counts, which have none."""
    if hd.noise is None:
        return 0.0
    pedestal = hd.noise.in_levels(hd.value_scale, hd.value_offset).pedestal
    return pedestal if abs(pedestal) <= hd.max_level else 0.0


def blended_tiles(dec: Decoder) -> int:
    """Tiles ``select`` has blended with GAP-TV so far (its hold-out scores too close to
    choose); 0 for other decoders."""
    if isinstance(dec, GuardedDecoder):
        dec = dec.inner
    return dec.blended if isinstance(dec, SelectingDecoder) else 0


def holdout_scores(dec: Decoder) -> tuple[float, int]:
    """(sum of the hold-out scores of the frames kept, tiles scored) so far by ``dec``: by
    ``select``; (0, 0) for other decoders.  :func:`decode_group` reports them only where
    the noise was measured or given (:func:`noise_gain`)."""
    if isinstance(dec, GuardedDecoder):
        dec = dec.inner
    return dec.holdout if isinstance(dec, SelectingDecoder) else (0.0, 0)


def finishing(dec: Decoder, settings: DecodeSettings, *, noise_measured: bool) -> Callable[..., np.ndarray] | None:
    """How the tiles ``dec`` returns are finished: as ``settings.finish`` says for a learned
    decoder, at the strength the measurement allows where the noise was measured or given
    (else the fixed :data:`emtcs.finish.STRENGTH`); GAP-TV's and copied frames are left as
    they are (None)."""
    if not isinstance(dec, LearnedDecoder):
        return None
    return finisher(settings.finish, settings.device, strength=None if noise_measured else STRENGTH)


def reported_config(dec: Decoder, settings: DecodeSettings) -> dict[str, Any]:
    """The decoder's config for reports, with the guard's threshold and fallback when it is
    guarded, and the finishing where the decoder's tiles are finished."""
    config = guarded(dec, settings.guard).get_config()
    return {**config, "finish": settings.finish} if isinstance(dec, LearnedDecoder) else config


def wanted_frames(hd: TcsHeader, sel: range) -> Iterator[tuple[int, list[int], list[int]]]:
    """For each group holding frames of ``sel``: (group, its frames to keep, their output indices)."""
    for g in range(hd.group_of(sel.start), hd.group_of(sel.stop - 1) + 1):
        pairs = [(k, t - sel.start) for k, t in enumerate(hd.group_frames(g)) if t in sel]
        yield g, [k for k, _ in pairs], [t for _, t in pairs]


def decode_group(
    reader: TcsReader,
    g: int,
    dec: Decoder,
    settings: DecodeSettings,
    *,
    keep: list[int] | None = None,
    bands: range | None = None,
) -> Iterator[GroupBand]:
    """Decode group ``g`` of an open ``.tcs`` band by band (the work of one group, or of a
    row block of it, in one process and on distributed workers alike).

    Yields a :class:`GroupBand` per band: the frames ``keep`` (all by default) of the
    group over its rows, in the source dtype, the band's residual terms and what the
    guard did.  ``bands`` limits decoding to a range of tile-row bands
    (:func:`emtcs.tiling.decode_bands`).  A group whose length the decoder's weights do
    not serve (a short group) is decoded with GAP-TV, a frame stored alone is copied.  A
    learned decoder is guarded (:class:`emtcs.decoders.guard.GuardedDecoder`,
    ``settings.guard`` > 0): tiles where its residual exceeds ``guard`` times the shot
    noise (at the file's gain, else 1 level per electron) are decoded with GAP-TV.  The
    tiles a learned decoder returns (those the guard replaced too) are finished as
    ``settings.finish`` says (:mod:`emtcs.finish`); GAP-TV's and copied frames are not.
    """
    hd = reader.header
    nb = len(hd.group_frames(g))
    keep = list(range(nb)) if keep is None else keep
    vmap = hd.value_map
    masks = hd.group_masks(g)
    y = reader.measurement(g)
    gain, measured = noise_gain(reader, g, y)
    dec = decoder_for_group(dec, nb, unmasked=masks.unmasked, noise_measured=measured, noise_spread=hd.noise_spread)
    finish = finishing(dec, settings, noise_measured=measured)
    pedestal = noise_pedestal(hd)
    scale = intensity_scale(y, masks, pedestal=pedestal)
    dec = guarded(dec, settings.guard, noise_measured=measured)
    seen, scored, mixed = gap_tv_tiles(dec), holdout_scores(dec), blended_tiles(dec)
    for rows, block, num, den in decode_bands(
        y,
        masks,
        dec,
        tile=settings.tile,
        overlap=settings.overlap,
        batch=settings.batch,
        bands=bands,
        scale=scale,
        gain=gain,
        pedestal=pedestal,
        finish=finish,
    ):
        now, total, mixed_now = gap_tv_tiles(dec), holdout_scores(dec), blended_tiles(dec)
        fallback = (now[0] - seen[0], now[1] - seen[1])
        # the hold-out score is in units of the noise only where the noise was measured or given
        holdout = (total[0] - scored[0], total[1] - scored[1]) if measured else (0.0, 0)
        yield GroupBand(rows, vmap.to_source(block[keep]), num, den, fallback, holdout, mixed_now - mixed)
        seen, scored, mixed = now, total, mixed_now
