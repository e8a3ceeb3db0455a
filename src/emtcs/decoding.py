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
from .still import StillTiles
from .tiling import OVERLAP, TILE, decode_run_bands, intensity_scale

__all__ = [
    "RUN",
    "DecodeSettings",
    "DecodedRows",
    "GroupBand",
    "decode_run",
    "decode_here",
    "finishing",
    "group_runs",
    "neighbour",
    "noise_gain",
    "noise_pedestal",
    "reported_config",
    "wanted_frames",
    "wanted_runs",
]

#: Groups decoded together, as one run, by a decoder that sees across groups (``--run``):
#: one by default, since runs of four put two spectral peaks the truth lacks into the
#: validation suite's exactly stored movies (session 36; docs/decoders.md)
RUN = 1


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
    run: int = RUN
    """Consecutive groups a decoder that sees across groups decodes together (:func:`group_runs`)."""
    still: bool = True
    """Give back the parts of a learned decoder's tiles that held still from their measurement (:mod:`emtcs.still`)."""

    def __post_init__(self) -> None:
        if not (math.isfinite(self.guard) and self.guard >= 0):
            raise InputError(f"--guard must be a ratio >= 0 (0: off), got {self.guard}")
        if self.tile < 1:
            raise InputError(f"tile must be at least 1 pixel (got {self.tile})")
        if not 0 <= self.overlap < self.tile:
            raise InputError(f"overlap {self.overlap} must be in [0, tile={self.tile})")
        if self.batch < 1:
            raise InputError(f"--batch must be at least 1 tile (got {self.batch})")
        if self.run < 1:
            raise InputError(f"--run must be at least 1 group (got {self.run})")
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
    still: int = 0  # tiles given back still (emtcs.still): still_tiles


class GroupBand(NamedTuple):
    """One band of rows of a decoded group (see :func:`decode_run`)."""

    g: int
    rows: slice
    frames: np.ndarray  # (len(keep), len(rows), W) in the source dtype
    num: float  # residual terms (emtcs.tiling.relative_residual)
    den: float
    fallback: tuple[int, int]  # (tiles given to GAP-TV, tiles decoded) for this band: gap_tv_tiles
    holdout: tuple[float, int]  # (sum of hold-out scores, tiles scored) for this band: holdout_scores
    blended: int  # tiles select blended with GAP-TV in this band: blended_tiles
    still: int  # tiles given back still in this band (emtcs.still): still_tiles


def decode_here(reader: TcsReader, sel: range, dec: Decoder, settings: DecodeSettings) -> Iterator[DecodedRows]:
    """The groups holding the frames ``sel``, decoded in this process a run of groups and a
    band of rows at a time (the bands of a run's groups interleaved)."""
    hd, config = reader.header, reported_config(dec, settings)
    for groups, wanted in wanted_runs(hd, sel, settings.run):
        keep = {g: frames for g, (frames, _) in wanted.items()}
        for band in decode_run(reader, groups, dec, settings, keep=keep):
            last = band.rows.stop == hd.frame_shape[0]
            yield DecodedRows(
                band.g,
                wanted[band.g][1],
                band.rows,
                band.frames,
                [(band.num, band.den)],
                last,
                config,
                band.fallback,
                band.holdout,
                band.blended,
                band.still,
            )


def group_runs(hd: TcsHeader, groups: range, run: int) -> list[range]:
    """The runs of consecutive groups that hold ``groups``, in order: blocks of ``run``
    groups counted from the movie's first, split where the groups' length changes or a
    scene cut starts a group.  A group's run depends only on the file and ``run``, so it
    decodes to the same frames whichever of its frames are asked for."""
    cuts = set(hd.cuts or [])
    runs: list[range] = []
    g = groups.start - groups.start % run
    while g < groups.stop:
        end = min(g - g % run + run, hd.n_groups)
        nb, stop = len(hd.group_frames(g)), g + 1
        while stop < end and len(hd.group_frames(stop)) == nb and hd.group_frames(stop)[0] not in cuts:
            stop += 1
        if stop > groups.start:
            runs.append(range(g, stop))
        g = stop
    return runs


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
    guarded, the finishing and the still stage where the decoder's tiles are finished and the run length
    where it decodes runs of groups."""
    config = guarded(dec, settings.guard).get_config()
    if isinstance(dec, LearnedDecoder):
        config["finish"] = settings.finish
        config["still"] = settings.still
    if dec.sees_runs:
        config["run"] = settings.run
    return config


def wanted_runs(hd: TcsHeader, sel: range, run: int) -> Iterator[tuple[range, dict[int, tuple[list[int], list[int]]]]]:
    """For each run of groups (:func:`group_runs`) holding frames of ``sel``: the run, and for
    its groups holding some, {group: (its frames to keep, their output indices)}."""
    wanted = {g: (keep, t_out) for g, keep, t_out in wanted_frames(hd, sel)}
    for groups in group_runs(hd, range(min(wanted), max(wanted) + 1), run):
        yield groups, {g: wanted[g] for g in groups if g in wanted}


def wanted_frames(hd: TcsHeader, sel: range) -> Iterator[tuple[int, list[int], list[int]]]:
    """For each group holding frames of ``sel``: (group, its frames to keep, their output indices)."""
    for g in range(hd.group_of(sel.start), hd.group_of(sel.stop - 1) + 1):
        pairs = [(k, t - sel.start) for k, t in enumerate(hd.group_frames(g)) if t in sel]
        yield g, [k for k, _ in pairs], [t for _, t in pairs]


def decode_run(
    reader: TcsReader,
    groups: range,
    dec: Decoder,
    settings: DecodeSettings,
    *,
    keep: dict[int, list[int]] | None = None,
    bands: range | None = None,
) -> Iterator[GroupBand]:
    """Decode a run of groups of an open ``.tcs`` (:func:`group_runs`) band by band (the work
    of one run, or of a row block of it, in one process and on distributed workers alike).

    Yields a :class:`GroupBand` per group of ``keep`` (a group: the frames of it to keep;
    by default every frame of every group) and band, the run's groups in order within each
    band: the frames over the band's rows, in the source dtype, the band's residual terms
    and what the guard and ``select`` did.  A decoder that sees across groups decodes the
    run's groups together (those not kept too, for their frames beside the ones kept),
    each normalised and told the noise as it would be alone; others decode each group
    alone.  ``bands`` limits
    decoding to a range of tile-row bands (:func:`emtcs.tiling.decode_run_bands`).  A group
    whose length the decoder's weights do not serve (a short group) is decoded with
    GAP-TV, a frame stored alone is copied.  A learned decoder is guarded
    (:class:`emtcs.decoders.guard.GuardedDecoder`, ``settings.guard`` > 0): tiles where its
    residual exceeds ``guard`` times the shot noise (at the file's gain, else 1 level per
    electron), and GAP-TV's would be smaller, are decoded with GAP-TV.  The tiles a learned
    decoder returns (those the guard replaced too) are finished as ``settings.finish`` says
    (:mod:`emtcs.finish`); GAP-TV's and copied frames are not.
    """
    hd = reader.header
    keep = keep if keep is not None else {g: list(range(len(hd.group_frames(g)))) for g in groups}
    masks = hd.group_masks(groups.start)
    y = np.stack([reader.measurement(g) for g in groups])
    told = [noise_gain(reader, g, m) for g, m in zip(groups, y)]
    gain, measured = np.array([t[0] for t in told]), told[0][1]  # measured or not: the file's
    dec = decoder_for_group(
        dec, masks.nb, unmasked=masks.unmasked, noise_measured=measured, noise_spread=hd.noise_spread
    )
    if len(groups) > 1 and not dec.sees_runs:  # each group alone, with its own scale and gain
        for g in groups:
            if g in keep:
                yield from decode_run(reader, range(g, g + 1), dec, settings, keep={g: keep[g]}, bands=bands)
        return
    finish = finishing(dec, settings, noise_measured=measured)
    pedestal = noise_pedestal(hd)
    scale = np.array([intensity_scale(m, masks, pedestal=pedestal) for m in y])
    still = neighbours = None  # a still tile is told by its noise: only where it was measured or given
    if settings.still and measured and isinstance(dec, LearnedDecoder):
        sigma = None if hd.measured_sigma is None else hd.measured_sigma / scale  # one sigma, not Poisson
        still = StillTiles(len(groups), hd.quant_step, sigma)
        neighbours = [[neighbour(reader, g, g + d) for d in (-1, 1)] for g in groups]
    tally = _Tally(guarded(dec, settings.guard, noise_measured=measured), len(groups))
    vmap = hd.value_map
    for rows, blocks, terms in decode_run_bands(
        y,
        masks,
        tally,
        tile=settings.tile,
        overlap=settings.overlap,
        batch=settings.batch,
        bands=bands,
        scale=scale,
        gain=gain,
        pedestal=pedestal,
        finish=finish,
        still=still,
        neighbours=neighbours or (),
    ):
        for k, g in enumerate(groups):
            if g in keep:
                fallback, holdout, blended = tally.take(k)
                # the hold-out score is in units of the noise only where the noise was measured or given
                holdout = holdout if measured else (0.0, 0)
                held = still.take(k) if still is not None else 0
                frames = vmap.to_source(blocks[k][keep[g]])
                yield GroupBand(g, rows, frames, *terms[k], fallback, holdout, blended, held)


def neighbour(reader: TcsReader, g: int, h: int) -> np.ndarray | None:
    """Group ``h``'s measurement where it neighbours group ``g`` with the same masks (a
    group of the same length, no scene cut between them) for the still test of
    :mod:`emtcs.still`; else None."""
    hd = reader.header
    if not 0 <= h < hd.n_groups or len(hd.group_frames(h)) != len(hd.group_frames(g)):
        return None
    if hd.group_frames(max(g, h))[0] in set(hd.cuts or []):
        return None
    return reader.measurement(h)


class _Tally(Decoder):
    """A decoder's tiles counted by the group they belong to, for tiles in runs of ``K``
    groups: (tiles given to GAP-TV, tiles decoded) where the guard or ``select`` may give
    them to it, ``select``'s hold-out scores of the frames kept and the tiles it blended."""

    name = "tally"

    def __init__(self, dec: Decoder, K: int):
        self.dec, self.K = dec, K
        self.batched, self.sees_runs = dec.batched, dec.sees_runs  # type: ignore[misc]
        self.guard = dec if isinstance(dec, GuardedDecoder) else None
        inner = dec.inner if isinstance(dec, GuardedDecoder) else dec
        self.select = inner if isinstance(inner, SelectingDecoder) else None
        self.fallback = np.zeros((K, 2), dtype=np.int64)
        self.holdout = np.zeros((K, 2), dtype=np.float64)
        self.blended = np.zeros(K, dtype=np.int64)

    def decode(
        self, y: np.ndarray, masks: np.ndarray, electrons_per_unit: float | np.ndarray | None = None, **run: int
    ) -> np.ndarray:
        frames = self.dec.decode(y, masks, electrons_per_unit, **run)
        slot = np.arange(len(y)) % self.K
        if self.guard is not None or self.select is not None:
            np.add.at(self.fallback[:, 1], slot, 1)
        if self.guard is not None:
            np.add.at(self.fallback[:, 0], slot, self.guard.last_replaced)
        if self.select is not None:
            np.add.at(self.fallback[:, 0], slot, self.select.last_gap_tv)
            np.add.at(self.blended, slot, self.select.last_blended)
            scored = np.isfinite(self.select.last_holdout)
            np.add.at(self.holdout[:, 0], slot[scored], self.select.last_holdout[scored])
            np.add.at(self.holdout[:, 1], slot[scored], 1)
        return frames

    def take(self, k: int) -> tuple[tuple[int, int], tuple[float, int], int]:
        """Group ``k``'s counts since the last take: (tiles given to GAP-TV, tiles decoded),
        (sum of hold-out scores, tiles scored) and tiles blended."""
        counts = (
            (int(self.fallback[k, 0]), int(self.fallback[k, 1])),
            (float(self.holdout[k, 0]), int(self.holdout[k, 1])),
            int(self.blended[k]),
        )
        self.fallback[k], self.holdout[k], self.blended[k] = 0, 0.0, 0
        return counts
