"""The user-level operations: compress a movie, decompress a ``.tcs``, reconstruct arrays, verify a file.

These are what the CLI calls; each streams frames or row bands so memory does not
grow with the number of frames, and each output is written atomically.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import closing, nullcontext
from dataclasses import asdict, dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from .adapt import Adaptation, fit_for_file
from .atomic import atomic_output, check_output, same_file
from .container import TcsHeader, TcsReader, TcsWriter, check_readable
from .cuts import CutDetector
from .decoders import decoder_for, for_noise, resolve_decoder
from .decoders.guard import GUARD_RATIO, guarded
from .decoders.select import BLEND_FROM, BLEND_WEIGHT, MARGIN
from .decoding import RUN, DecodedRows, DecodeSettings, decode_here, finishing, reported_config
from .density import density_for, moving_share
from .encoder import GroupEncoder, ValueMap
from .errors import EmtcsError, InputError, Interrupted, for_file
from .io import check_writable, create_movie, open_movie
from .noise import NoiseModel, estimate_noise
from .quantise import EXACT, MeasurementCoding
from .sensing import ArrayMasks, check_density
from .tiling import OVERLAP, TILE, intensity_scale, reconstruct_group, relative_residual

__all__ = [
    "compress",
    "compress_many",
    "decompress",
    "read_frames",
    "frame_range",
    "verify",
    "reconstruct",
    "write_simulation",
    "DecompressReport",
    "default_output",
]

Progress = Callable[[float], None]

#: The quantisation step (noise standard deviations) of measurements by default, where
#: the noise model is known: 1/12 of the noise variance added (formats/tcs.md §9).
DEFAULT_STEP = 1.0
#: Noise below this many levels per frame (without a model) is stored exactly: a smaller step would
#: store more values than the sums have.
MIN_SIGMA = 1.0
#: A given gain that leaves fewer electrons than this in the brightest pixel of the first
#: group is taken for a mistake (a gain in electrons per value, or a typo).
MIN_ELECTRONS = 0.01


def default_output(src: str | os.PathLike[str]) -> Path:
    """``movie.tif`` -> ``movie.tcs`` beside it."""
    p = Path(src)
    name = p.name
    for suffix in (".ome.tiff", ".ome.tif"):
        if name.lower().endswith(suffix):
            return p.with_name(name[: -len(suffix)] + ".tcs")
    return p.with_suffix(".tcs")


def compress(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str] | None = None,
    B: int = 20,
    *,
    seed: int = 0,
    density: float | None = None,
    quantise: float | None = None,
    gain: float | None = None,
    offset: float | None = None,
    cuts: bool = True,
    force: bool = False,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Compress the movie ``src`` into a ``.tcs`` file; returns its :meth:`TcsReader.info`,
    with ``"coherence"`` added (not stored in the file): how consecutive frames correlate
    against neighbouring blocks within a frame, and their fine detail against frames half
    a group apart (:class:`emtcs.cuts.Coherence`; None with ``cuts`` off), whose
    ``too_fast`` says the frames change faster than a group can follow,
    ``loses_detail`` that detail well above the noise changes within a group, and
    ``detail_frames`` over about how many frames it lasts.

    Frames are read one at a time and each group of ``B`` frames becomes one
    measurement; a last group of fewer than ``B`` frames is stored as it is.  Float and
    signed-integer sources are read twice (once for their value range).  With ``cuts``
    (the default), frames that start a new scene are found (:mod:`emtcs.cuts`) and no
    group straddles one: the group before a cut ends early, and a frame between two
    cuts is stored alone, unmasked (formats/tcs.md §3).

    The detector's noise model (:mod:`emtcs.noise`) is stored with the measurements:
    ``gain`` (source values per electron) and ``offset`` when given, else measured from
    the first group's frames; when it cannot be measured the file says why
    (``noise_note``).  The measurements are stored quantised with a step of ``quantise``
    noise standard deviations (:mod:`emtcs.quantise`); by default (``None``) one, where
    the noise model is known or, without one, one frame's noise could still be measured
    (``gaussian-v1``), else exactly; 0 stores them exactly (a measured sigma is then
    stored beside them for the decoders; without one they assume one level per
    electron).  Either way each value is stored as its difference from a prediction by
    the row above (:mod:`emtcs.prediction`), which deflate compresses better.
    ``density`` is the probability of a 1 in the masks; by default
    :func:`emtcs.density.density_for` chooses it from ``B`` and how much of the first
    group's field moves (``"moving_share"`` in the returned info).  ``progress`` is called with the
    number of frames encoded since its last call.
    """
    if isinstance(B, bool) or not isinstance(B, (int, np.integer)) or B < 2:
        raise InputError(f"B must be an integer of at least 2 (got {B!r})")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2**32:
        raise InputError(f"seed must be an integer in 0..4294967295 (got {seed!r})")
    density = checked_density(density)
    _check_coding_options(quantise, gain, offset)
    dst = Path(dst) if dst is not None else default_output(src)
    _check_tcs_output(dst, src, force)
    with open_movie(src) as movie:
        n = movie.n_frames
        if B > n:
            fix = f": choose B of {n} or less" if n >= 2 else "; a movie needs at least 2 frames"
            raise InputError(f"B={B} is larger than the movie ({n} frame{'s' if n != 1 else ''}){fix}")
        vrange = movie.value_range() if movie.dtype.kind in "fi" else None
        vmap = ValueMap.for_source(movie.dtype, vrange)
        read = partial(_read_levels, movie, vmap)
        group = np.empty((B, *movie.frame_shape), dtype=vmap.level_dtype)
        for t in range(B):
            read(t, group[t])
        if quantise != 0:
            _check_detector(group, vmap, gain, offset)
        noise, note, sigma, spread = _noise_model(group, vmap, gain, offset)
        if quantise and noise is None and sigma is None:
            raise InputError(
                f"--quantise needs the detector's noise, and it could not be measured ({note}): give --gain"
            )
        coding = _coding(DEFAULT_STEP if quantise is None else quantise, noise, vmap, sigma)
        moves = moving_share(group)
        if density is None:
            density = density_for(B, moves)
        encoder = GroupEncoder(seed, B, movie.frame_shape, vmap, coding, predict=True, density=density)
        header = TcsHeader(
            B=B,
            n_frames=n,
            frame_shape=movie.frame_shape,
            source_dtype=vmap.source_dtype.name,
            measurement_dtype=encoder.dtype.name,
            value_scale=vmap.scale,
            value_offset=vmap.offset,
            max_level=vmap.max_level,
            mask_seed=seed,
            mask_density=density,
            source_name=Path(src).name,
            metadata=movie.metadata,
            measurement_coding=coding.name,
            quant_step=coding.step,
            quant_gain=coding.gain,
            quant_offset=coding.offset,
            quant_read_noise=coding.read_noise,
            quant_sigma=coding.sigma,
            measurement_prediction=encoder.prediction,
            noise=noise,
            noise_note=note,
            noise_sigma=sigma if sigma is not None and coding.name != "gaussian-v1" else 0.0,
            noise_spread=spread if sigma is not None else 0.0,
        )
        detector = CutDetector(lag=B // 2 if B >= 4 else None) if cuts else None
        with atomic_output(dst, force=force) as tmp:
            with TcsWriter(tmp, header) as writer:
                for frames in _groups(read, n, group, B, detector, progress):
                    writer.write_group(frames, encoder.encode(group[: len(frames)]))
                writer.finish(detector.cuts if detector is not None else None)
    with TcsReader(dst) as reader:
        info = reader.info()
    coherence = detector.coherence() if detector is not None else None
    info["coherence"] = coherence.to_json() if coherence is not None else None
    info["moving_share"] = moves
    return info


def _check_tcs_output(dst: Path, src: str | os.PathLike[str], force: bool) -> None:
    """Refuse an output not named .tcs, the input itself, or (without ``force``) an existing file."""
    if dst.suffix.lower() != ".tcs" and not dst.is_dir():
        raise InputError(f"cannot write {dst.name}: a compressed movie is a .tcs file (name it {dst.stem}.tcs)")
    check_output(dst, force=force, inputs=(src,))


def checked_density(density: float | None) -> float | None:
    """``density`` as a float (None: chosen for the movie), or InputError."""
    try:
        return None if density is None else check_density(density)
    except ValueError as exc:
        raise InputError(str(exc)) from None


def _check_coding_options(quantise: float | None, gain: float | None, offset: float | None) -> None:
    """Raise on a bad ``quantise``, ``gain`` or ``offset`` before any work is done."""
    NoiseModel(1.0 if gain is None else gain, 0.0 if offset is None else offset)
    if quantise:
        MeasurementCoding.anscombe(quantise, 1.0 if gain is None else gain)


def _read_levels(movie: Any, vmap: ValueMap, t: int, out: np.ndarray) -> None:
    out[...] = vmap.to_levels(movie.read_frame(t))


def _groups(
    read: Callable[[int, np.ndarray], None],
    n: int,
    group: np.ndarray,
    ready: int,
    detector: CutDetector | None,
    progress: Progress | None,
) -> Iterator[range]:
    """The groups of an ``n``-frame movie, each ready in ``group`` when yielded: B frames
    (``len(group)``), fewer where a scene cut ends a group early, the last one what is left.

    ``read(t, slot)`` loads frame ``t``; the first ``ready`` frames are already in ``group``.
    Frame ``t`` of the group that starts at ``start`` lives at ``group[t - start]``.
    """
    B, start = len(group), 0
    for t in range(n):
        if t >= ready:
            read(t, group[t - start])
        if detector is not None and detector.add(group[t - start]) and t > start:
            yield range(start, t)
            last = max(ready, t + 1)  # with the frames read ahead for the noise model
            group[: last - t] = group[t - start : last - start].copy()
            start = t
        if progress is not None:
            progress(1)
        if t + 1 - start == B:
            yield range(start, t + 1)
            start = t + 1
    if start < n:
        yield range(start, n)


def _coding(step: float, noise: NoiseModel | None, vmap: ValueMap, sigma: float | None) -> MeasurementCoding:
    """How to store the measurements: quantised with ``step`` at the noise of ``noise`` (in the
    encoder's levels), else at a noise of ``sigma`` levels per frame (measured without a
    model), else exactly; exactly with ``step`` 0."""
    if not step:
        return EXACT
    if noise is None:
        return MeasurementCoding.gaussian(step, sigma) if sigma is not None else EXACT
    m = noise.in_levels(vmap.scale, vmap.offset)
    return MeasurementCoding.anscombe(step, m.gain, m.offset, m.read_noise)


def _noise_model(
    levels: np.ndarray, vmap: ValueMap, gain: float | None, offset: float | None
) -> tuple[NoiseModel | None, str, float | None, float]:
    """The noise model in source values (given, or measured from ``levels``); when there is
    none, why, one frame's noise standard deviation in levels where that could still be
    measured and is at least :data:`MIN_SIGMA` (else None: the measurements are stored
    exactly), and with it how much of the noise is spread over neighbouring pixels."""

    if gain is not None:
        return NoiseModel(gain, 0.0 if offset is None else offset), "", None, 0.0
    known = None if offset is None else (offset - vmap.offset) / vmap.scale
    # unsigned sources saturate at their dtype's top; float and signed ones are mapped onto
    # levels by their own range, whose top is the movie's maximum, not a ceiling
    ceiling = vmap.max_level if vmap.source_dtype.kind == "u" else None
    fit = estimate_noise(levels, offset=known, saturation=ceiling)
    if fit.model is None:
        sigma = fit.sigma if fit.sigma is not None and fit.sigma >= MIN_SIGMA else None
        reason = fit.reason if offset is None else f"{fit.reason}; the offset given is not used without a gain"
        return None, reason, sigma, fit.spread if sigma is not None else 0.0
    return fit.model.in_values(vmap.scale, vmap.offset), "", None, 0.0


def _check_detector(levels: np.ndarray, vmap: ValueMap, gain: float | None, offset: float | None) -> None:
    """Refuse an ``offset`` above nearly every value of ``levels`` (the first group), or a
    ``gain`` that leaves less than :data:`MIN_ELECTRONS` in its brightest pixel: quantised at
    such a model's noise, the movie would be stored blank."""

    def values(level: float) -> float:
        return level * vmap.scale + vmap.offset

    sample = levels.reshape(-1)[:: max(1, levels.size // 1_000_000)]
    if offset is not None and offset > values(float(np.percentile(sample, 99))):
        raise InputError(
            f"--offset {offset:g} is above 99 % of the values of the movie's first frames (which span "
            f"{values(float(levels.min())):.4g}..{values(float(levels.max())):.4g}): the offset is what a pixel "
            "reads with no electron"
        )
    top = values(float(levels.max()))
    base = 0.0 if offset is None else offset
    if gain is not None and top > base and (top - base) / gain < MIN_ELECTRONS:
        raise InputError(
            f"--gain {gain:g} leaves {(top - base) / gain:.2g} electrons in the brightest pixel of "
            "the movie's first frames: the gain is the movie's values per electron"
        )


def verify(
    path: str | os.PathLike[str],
    source: str | os.PathLike[str] | None = None,
    progress: Callable[[int], None] | None = None,
) -> str | None:
    """None where the ``.tcs`` file ``path`` reads back whole (:func:`emtcs.container.check_readable`:
    header, layout, checksums, values) and, with ``source``, holds exactly what
    :func:`compress` makes of that movie with the file's own settings (seed, groups, value
    map, noise model and quantiser, all stored in it): every group encoded again and
    compared value for value.  Else what is wrong, in one line.  ``progress`` is called
    with 1 after each group checked (twice per group with ``source``)."""
    problem = check_readable(path, progress)
    if problem or source is None:
        return problem
    with TcsReader(path) as reader, open_movie(source) as movie:
        hd = reader.header
        made = f"{hd.n_frames} frames of {hd.frame_shape[0]}x{hd.frame_shape[1]} {hd.source_dtype}"
        has = f"{movie.n_frames} frames of {movie.frame_shape[0]}x{movie.frame_shape[1]} {movie.dtype}"
        if made != has:
            return f"{path}: not made from {source} (the file holds {made}, the movie has {has})"
        vmap = hd.value_map
        predict = hd.measurement_prediction != "none"
        encoder = GroupEncoder(
            hd.mask_seed, hd.B, hd.frame_shape, vmap, hd.coding, predict=predict, density=hd.mask_density
        )
        if (encoder.dtype.name, encoder.prediction) != (hd.measurement_dtype, hd.measurement_prediction):
            version = ".".join(map(str, hd.format_version or ()))
            return f"{path}: written as format {version}, which this version of emtcs cannot encode again to compare"
        levels = np.empty((hd.B, *hd.frame_shape), dtype=vmap.level_dtype)
        for g in range(hd.n_groups):
            frames = hd.group_frames(g)
            for k, t in enumerate(frames):
                _read_levels(movie, vmap, t, levels[k])
            expected, stored = encoder.encode(levels[: len(frames)]), reader.stored(g)
            if not np.array_equal(expected, stored):
                n = int(np.count_nonzero(expected != stored))
                return (
                    f"{path}: group {g} (frames {frames.start}..{frames.stop - 1}) differs from {source} "
                    f"at {n} of {stored.size} pixels"
                )
            if progress is not None:
                progress(1)
    return None


def compress_many(
    jobs: Sequence[tuple[str | os.PathLike[str], str | os.PathLike[str] | None]],
    B: int = 20,
    *,
    seed: int = 0,
    density: float | None = None,
    quantise: float | None = None,
    gain: float | None = None,
    offset: float | None = None,
    cuts: bool = True,
    force: bool = False,
    workers: int | None = None,
    scheduler: str | None = None,
    progress: Progress | None = None,
) -> list[dict[str, Any]]:
    """Compress several movies, one ``.tcs`` each; returns their infos in input order.

    ``jobs`` are (source, output) pairs, output ``None`` for :func:`default_output`.
    Every output is checked before any work starts; the first failure stops the run
    (finished outputs are kept; after Ctrl-C, :class:`~emtcs.errors.Interrupted` names
    them).  Sequential, or one task per movie on
    dask.distributed with ``workers`` or ``scheduler`` (see :func:`decompress`).
    """
    pairs = [(Path(src), Path(dst) if dst is not None else default_output(src)) for src, dst in jobs]
    seen: dict[Path, Path] = {}
    for src, dst in pairs:
        key = dst.resolve()
        if key in seen:
            raise InputError(f"{seen[key]} and {src} would both be compressed into {dst}")
        seen[key] = src
        _check_tcs_output(dst, src, force)
    _check_coding_options(quantise, gain, offset)
    options: dict[str, Any] = {
        "seed": seed,
        "density": checked_density(density),
        "quantise": quantise,
        "gain": gain,
        "offset": offset,
        "cuts": cuts,
        "force": force,
    }
    before = {dst: _stamp(dst) for _, dst in pairs}
    try:
        return _compress_all(pairs, B, options, workers, scheduler, progress)
    except KeyboardInterrupt:
        kept = [str(dst) for _, dst in pairs if _stamp(dst) not in (None, before[dst])]
        if kept:
            raise Interrupted(kept, len(pairs)) from None
        raise


def _compress_all(
    pairs: list[tuple[Path, Path]],
    B: int,
    options: dict[str, Any],
    workers: int | None,
    scheduler: str | None,
    progress: Progress | None,
) -> list[dict[str, Any]]:
    if workers is None and scheduler is None:
        infos: list[dict[str, Any]] = []
        for src, dst in pairs:
            try:
                infos.append(compress(src, dst, B, progress=progress, **options))
            except EmtcsError as exc:
                raise for_file(exc, src) from None
        return infos
    from .distributed import map_in_order

    job = partial(compress, B=B, **options)
    infos = []
    for info in map_in_order(
        job, [(str(s.resolve()), str(d.resolve())) for s, d in pairs], workers=workers, scheduler=scheduler
    ):
        infos.append(info)
        if progress is not None:
            progress(info["n_frames"])
    return infos


def _stamp(path: Path) -> tuple[int, int] | None:
    """A file's inode and modification time (an output renamed into place changes both), or None."""
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_ino, st.st_mtime_ns


@dataclass
class DecompressReport:
    """What :func:`decompress` did: frames written, decoder used, residual per group."""

    output: Path | None  # None for read_frames
    frames: range
    decoder: dict[str, Any]
    residuals: dict[int, float] = field(default_factory=dict)
    notice: str | None = None
    #: Per group: (tiles the guard gave to GAP-TV, tiles decoded); empty when unguarded.
    fallback: dict[int, tuple[int, int]] = field(default_factory=dict)
    #: Per group: (sum of select's hold-out scores, tiles scored); empty for other decoders
    #: and for files without a noise model.
    holdout: dict[int, tuple[float, int]] = field(default_factory=dict)
    #: Per group: tiles ``select`` blended with GAP-TV (scores too close to choose); only groups with some.
    blended: dict[int, int] = field(default_factory=dict)
    #: Per group: tiles that held still in whole or in part, given back there from their measurement
    #: (:mod:`emtcs.still`); only groups with some.
    still: dict[int, int] = field(default_factory=dict)
    #: What fitting the network to the file did (``adapt``), or None.
    adaptation: Adaptation | None = None

    def holdout_scores(self) -> dict[int, float]:
        """Per group, the mean hold-out score of the frames ``select`` kept: how well they
        predict withheld measurements, RMS error in units of the shot noise (about 1 at
        best): a quality figure that needs no reference."""
        return {g: total / n for g, (total, n) in self.holdout.items() if n}

    def guard_summary(self) -> str | None:
        """One line on the tiles decoded with GAP-TV instead (guard, ``select``) or blended with
        it (``select``), if there were any."""
        replaced = sum(r for r, _ in self.fallback.values())
        tiles = sum(n for _, n in self.fallback.values())
        blended = sum(self.blended.values())
        mixed = (
            f"select: {blended} of {tiles} tiles ({len(self.blended)} of {len(self.fallback)} groups) blended "
            f"{BLEND_WEIGHT:g}:{1 - BLEND_WEIGHT:g} with GAP-TV, where GapUNet's hold-out score was "
            f"{BLEND_FROM:g}-{MARGIN:g}x GAP-TV's"
            if blended
            else None
        )
        if not replaced:
            return mixed
        groups = sum(1 for r, _ in self.fallback.values() if r)
        who, why = (
            "guard",
            f"the {self.decoder.get('name')} residual exceeded {self.decoder.get('guard')}x the shot noise",
        )
        if self.decoder.get("name") == "select":
            who, why = "select", f"GapUNet's hold-out score exceeded {MARGIN:g}x GAP-TV's (or the guard fired)"
        line = f"{who}: {replaced} of {tiles} tiles ({groups} of {len(self.fallback)} groups) decoded with GAP-TV"
        line = f"{line}, where {why}"
        return line if mixed is None else f"{line}; {mixed}"

    def still_summary(self) -> str | None:
        """One line on the tiles that held still, if there were any."""
        if not self.still:
            return None
        tiles = sum(self.still.values())
        return (
            f"still: {tiles} tiles ({len(self.still)} groups) held still, in whole or in part, beside a "
            "neighbouring group; their frames there are the measurement's (emtcs.still)"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "output": None if self.output is None else str(self.output),
            "frames": [self.frames.start, self.frames.stop],
            "decoder": self.decoder,
            "residuals": {str(g): r for g, r in self.residuals.items()},
            "fallback_tiles": {str(g): list(f) for g, f in self.fallback.items()},
            "holdout_scores": {str(g): h for g, h in self.holdout_scores().items()},
            "blended_tiles": {str(g): n for g, n in self.blended.items()},
            "still_tiles": {str(g): n for g, n in self.still.items()},
            "adaptation": None
            if self.adaptation is None
            else {k: v for k, v in asdict(self.adaptation).items() if k != "weights"},
        }


def frame_range(spec: str | tuple[int, int] | range | None, n: int, log: Callable[[str], None] | None = None) -> range:
    """The frames ``spec`` ("A:B", (A, B) or a range; negative counts from the end) selects of
    ``n``; a stop past the last frame is cut there, with a note to ``log``."""
    if spec is None:
        return range(n)
    if isinstance(spec, range):
        a, b = spec.start, spec.stop
    elif isinstance(spec, tuple):
        a, b = spec
    else:
        parts = str(spec).split(":")
        try:
            if len(parts) != 2:
                raise ValueError
            a = int(parts[0]) if parts[0].strip() else 0
            b = int(parts[1]) if parts[1].strip() else n
        except ValueError:
            raise InputError(f"--frames must look like A:B (0-based, B excluded), got {spec!r}") from None
    if a < 0:
        a += n
    if b < 0:
        b += n
    if b > n and log is not None:
        log(f"the file has {n} frame{'' if n == 1 else 's'}: decoding {max(a, 0)}:{n}")
    a, b = max(a, 0), min(b, n)
    if a >= b:
        raise InputError(f"frame range {spec} selects no frames of the {n} in the file")
    return range(a, b)


def decompress(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    *,
    decoder: str = "auto",
    frames: str | tuple[int, int] | range | None = None,
    device: str = "auto",
    force: bool = False,
    tile: int = TILE,
    overlap: int = OVERLAP,
    batch: int = 8,
    guard: float = GUARD_RATIO,
    finish: str = "nlm",
    run: int = RUN,
    still: bool = True,
    decoder_options: dict[str, Any] | None = None,
    progress: Progress | None = None,
    on_group: Callable[[int, float], None] | None = None,
    log: Callable[[str], None] | None = None,
    workers: int | None = None,
    scheduler: str | None = None,
    adapt: int = 0,
    on_adapt: Callable[[int, int], None] | None = None,
) -> DecompressReport:
    """Reconstruct the frames of a ``.tcs`` file into a movie file ``dst``.

    ``frames`` ("A:B", 0-based, B excluded) limits decoding to the groups holding those
    frames and writes only them.  The output has the source's dtype (rounded and
    clipped) and calibration.  ``decoder="auto"`` takes the best learned decoder whose
    weights serve the file's B, else GAP-TV (the report carries a notice).  Learned
    decoders are guarded: tiles where their residual exceeds ``guard`` times the shot
    noise are decoded with GAP-TV (0 turns the guard off; see :func:`emtcs.decoding.decode_group`).
    ``finish`` ("nlm" or "none") finishes the tiles a learned decoder returns with
    non-local means at the strength of their own remaining noise (:mod:`emtcs.finish`);
    GAP-TV's frames and frames stored alone are left as they are.  ``run``: a decoder that
    sees across groups (GapUNet's) decodes blocks of that many consecutive groups together,
    so that the frames either side of a boundary between groups inside a block see each
    other (:func:`emtcs.decoding.group_runs`; 1: each group alone).  ``still``: a learned
    decoder's tiles that held still beside a neighbouring group, in whole or in part, are given
    back there from their measurement (:mod:`emtcs.still`; where the noise was measured or given).  ``progress`` is
    called with frames done (fractions while a group is in progress);
    ``on_group(g, residual)`` after each group; ``log`` receives one-line notices
    (which decoder ``auto`` fell back to, how many tiles the guard replaced).  ``workers``
    (a local cluster of that many processes) or ``scheduler`` (the address of a running
    Dask scheduler) decode the groups on dask.distributed (:mod:`emtcs.distributed`),
    with the same output.  ``adapt`` (steps; 0: off) first fits GapUNet's weights to the
    file's own measurements (:mod:`emtcs.adapt`), in this process, and decodes with them;
    ``on_adapt(k, steps)`` is called after each step.
    """
    dst = Path(dst)
    options = tuple((decoder_options or {}).items())
    settings = DecodeSettings(tile, overlap, batch, guard, device, options, finish, run, still)
    check_writable(dst)
    check_output(dst, force=force, inputs=(src,))
    with TcsReader(src) as reader:
        hd = reader.header
        sel = frame_range(frames, hd.n_frames, log)
        report, pieces = _decoded_pieces(
            reader, src, sel, decoder, settings, dst, log, workers, scheduler, adapt, on_adapt
        )
        with atomic_output(dst, force=force) as tmp, closing(pieces):
            with create_movie(
                tmp, (len(sel), *hd.frame_shape), hd.value_map.source_dtype, hd.metadata, name=dst
            ) as out:
                _gather(pieces, report, out.write, hd.frame_shape[0], progress, on_group)
    _log_summaries(report, log)
    return report


def read_frames(
    src: str | os.PathLike[str],
    frames: str | tuple[int, int] | range | None = None,
    *,
    decoder: str = "auto",
    device: str = "auto",
    tile: int = TILE,
    overlap: int = OVERLAP,
    batch: int = 8,
    guard: float = GUARD_RATIO,
    finish: str = "nlm",
    run: int = RUN,
    still: bool = True,
    decoder_options: dict[str, Any] | None = None,
    progress: Progress | None = None,
    log: Callable[[str], None] | None = None,
    adapt: int = 0,
) -> np.ndarray:
    """The frames ``frames`` of a ``.tcs`` file, decoded as :func:`decompress` decodes them,
    as an array ``(n, H, W)`` in the source's dtype: for scripts and notebooks that want
    the frames, not a file.

    The array holds every frame asked for, so ask for a range of a long movie (``frames``
    as in :func:`decompress`); the options are :func:`decompress`'s, whose report (the
    residuals, the tiles given to GAP-TV, the hold-out scores) this leaves out.
    """
    options = tuple((decoder_options or {}).items())
    settings = DecodeSettings(tile, overlap, batch, guard, device, options, finish, run, still)
    with TcsReader(src) as reader:
        hd = reader.header
        sel = frame_range(frames, hd.n_frames, log)
        out = np.empty((len(sel), *hd.frame_shape), hd.value_map.source_dtype)

        def put(t: int, frame: np.ndarray, rows: slice) -> None:
            out[t, rows] = frame

        report, pieces = _decoded_pieces(reader, src, sel, decoder, settings, None, log, None, None, adapt, None)
        with closing(pieces):
            _gather(pieces, report, put, hd.frame_shape[0], progress, None)
    _log_summaries(report, log)
    return out


def _decoded_pieces(
    reader: TcsReader,
    src: str | os.PathLike[str],
    sel: range,
    decoder: str,
    settings: DecodeSettings,
    dst: Path | None,
    log: Callable[[str], None] | None,
    workers: int | None,
    scheduler: str | None,
    adapt: int,
    on_adapt: Callable[[int, int], None] | None,
) -> tuple[DecompressReport, Iterator[DecodedRows]]:
    """The decoder :func:`decompress` asked for, fitted first if ``adapt``, and the decoded
    row bands of the frames ``sel``, from this process or a Dask cluster; the report to fill."""
    hd = reader.header
    adaptation: Adaptation | None = None
    if adapt:
        dec, notice, adaptation = fit_for_file(reader, decoder, adapt, settings, on_adapt)
        if adaptation is not None and log is not None:
            log(adaptation.summary())
    if workers is None and scheduler is None:
        if not adapt:
            dec, notice = decoder_for(decoder, hd.B, device=settings.device, **settings.decoder_options)
        pieces = decode_here(reader, sel, dec, settings)
        config = reported_config(dec, settings)
    else:
        from .distributed import decode_on_cluster

        name, notice = resolve_decoder(decoder, hd.B, device=settings.device)
        if adaptation is not None and adaptation.weights is not None:  # the workers decode with the fitted weights
            settings = replace(settings, options=(*settings.options, ("weights", adaptation.weights)))
        pieces = decode_on_cluster(Path(src).resolve(), hd, sel, name, settings, workers=workers, scheduler=scheduler)
        config = {"name": name}
    if notice and log is not None:
        log(notice)
    return DecompressReport(dst, sel, config, notice=notice, adaptation=adaptation), pieces


def _gather(
    pieces: Iterator[DecodedRows],
    report: DecompressReport,
    write: Callable[[int, np.ndarray, slice], None],
    height: int,
    progress: Progress | None,
    on_group: Callable[[int, float], None] | None,
) -> None:
    """Hand each decoded band's frames to ``write(t, frame, rows)`` and tally ``report``."""
    terms: dict[int, list[tuple[float, float]]] = {}  # the groups in progress
    for piece in pieces:
        for frame, t in zip(piece.frames, piece.t_out):
            write(t, frame, piece.rows)
        terms.setdefault(piece.g, []).extend(piece.terms)
        report.decoder = piece.decoder
        if piece.fallback[1]:
            done = report.fallback.get(piece.g, (0, 0))
            report.fallback[piece.g] = (done[0] + piece.fallback[0], done[1] + piece.fallback[1])
        if piece.blended:
            report.blended[piece.g] = report.blended.get(piece.g, 0) + piece.blended
        if piece.still:
            report.still[piece.g] = report.still.get(piece.g, 0) + piece.still
        if piece.holdout[1]:
            total = report.holdout.get(piece.g, (0.0, 0))
            report.holdout[piece.g] = (total[0] + piece.holdout[0], total[1] + piece.holdout[1])
        if progress is not None:
            progress(len(piece.t_out) * (piece.rows.stop - piece.rows.start) / height)
        if piece.last:
            report.residuals[piece.g] = relative_residual(terms.pop(piece.g))
            if on_group is not None:
                on_group(piece.g, report.residuals[piece.g])


def _log_summaries(report: DecompressReport, log: Callable[[str], None] | None) -> None:
    for summary in (report.guard_summary(), report.still_summary()):
        if summary and log is not None:
            log(summary)


def reconstruct(
    measurement: np.ndarray,
    masks: np.ndarray,
    method: str = "gaptv",
    *,
    tile: int = TILE,
    overlap: int = OVERLAP,
    batch: int = 8,
    scale: float | None = None,
    guard: float = GUARD_RATIO,
    gain: float | None = None,
    offset: float = 0.0,
    read_noise: float = 0.0,
    spread: float = 0.0,
    finish: str = "nlm",
    **options: Any,
) -> np.ndarray:
    """Frames (B, H, W) float32 from one (H, W) measurement and its (B, H, W) masks.

    Any frame size, through the same tiling and stitching as :func:`decompress`;
    ``options`` go to the decoder (e.g. ``iterations=40`` for GAP-TV).  ``scale`` fixes
    the intensity normalisation (by default estimated from the measurement).  A learned
    decoder is guarded as in :func:`emtcs.decoding.decode_group`, for frames of ``gain`` units
    per electron (the decoders' noise level; unknown by default, when the guard assumes 1 and
    GAP-TV accelerates throughout), and finished as there (``finish``).  ``offset`` (units
    at zero electrons) and ``read_noise`` (electrons) complete the detector's noise model
    with ``gain``: the decoders then see counts, as :func:`decompress` does for a file with a
    noise model (:attr:`emtcs.noise.NoiseModel.pedestal`).  ``spread`` (0 to 1, white noise
    by default) is how much of the noise neighbouring pixels share
    (:func:`emtcs.noise.noise_spread`), which networks that take it are told.
    """
    y = np.asarray(measurement)
    masks = np.asarray(masks)
    if y.ndim != 2 or masks.ndim != 3 or masks.shape[1:] != y.shape:
        raise InputError(f"measurement {y.shape} and masks {masks.shape} must be (H, W) and (B, H, W)")
    if y.dtype.kind not in "uif" or not np.isfinite(y).all():
        raise InputError("the measurement must be real numbers, all finite (no NaN or infinity)")
    settings = DecodeSettings(tile=tile, overlap=overlap, batch=batch, guard=guard, finish=finish)  # validates them
    if not 0 <= spread <= 1:
        raise InputError(f"spread must be in [0, 1], got {spread:g}")
    if gain is None and (offset or read_noise):
        raise InputError("offset and read_noise describe the noise with a gain: give gain too")
    pedestal = 0.0 if gain is None else NoiseModel(gain, offset, read_noise).pedestal  # validates them
    dec, _ = decoder_for(method, masks.shape[0], **options)
    dec = for_noise(dec, measured=gain is not None, spread=spread)
    finish = finishing(dec, settings, noise_measured=gain is not None)
    source = ArrayMasks(masks)
    if scale is None:
        scale = intensity_scale(y, source, pedestal=pedestal)
    dec = guarded(dec, settings.guard, noise_measured=gain is not None)
    out = np.empty(masks.shape, dtype=np.float32)

    def emit(rows: slice, block: np.ndarray) -> None:
        out[:, rows] = block

    reconstruct_group(
        y,
        source,
        dec,
        emit,
        tile=settings.tile,
        overlap=settings.overlap,
        batch=settings.batch,
        scale=scale,
        gain=gain or 1.0,
        finish=finish,
        pedestal=pedestal,
    )
    return out


def write_simulation(
    output: str | os.PathLike[str],
    *,
    clean_path: str | os.PathLike[str] | None = None,
    force: bool = False,
    progress: Progress | None = None,
    **params: Any,
) -> None:
    """Write a simulated movie (and its noise-free twin) as TIFF; ``params`` as in
    :class:`emtcs.simulate.SimulationConfig` (n_frames, shape, dose, seed, dtype, ...)."""
    from .simulate import SimulationConfig, write_movie

    for path in (output, clean_path):
        if path is not None:
            check_writable(path, tiff_only=True)
    try:
        config = SimulationConfig(**params)
    except (TypeError, ValueError) as exc:
        raise InputError(f"bad simulation parameters: {exc}") from None
    done = 0

    def advance(n_written: int) -> None:
        nonlocal done
        if progress is not None:
            progress(n_written - done)
        done = n_written

    if clean_path is not None and same_file(clean_path, output):
        raise InputError(f"the noisy and the clean movie cannot both be written to {output}")
    for path in (output, clean_path):
        if path is not None:
            check_output(path, force=force)
    clean_ctx = atomic_output(clean_path, force=force) if clean_path is not None else nullcontext(None)
    with atomic_output(output, force=force) as tmp, clean_ctx as clean_tmp:
        try:
            write_movie(tmp, config, clean_path=clean_tmp, progress=advance)
        except ValueError as exc:
            raise InputError(f"bad simulation parameters: {exc}") from None
