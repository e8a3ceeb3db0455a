"""The ``emtcs`` command line: parses options, shows progress, prints, exits.

Everything it does is a call into the library; errors the user can fix end with one
line on stderr and a non-zero exit status, never a traceback.
"""

from __future__ import annotations

import json
import math
import signal
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any, NoReturn

import click

from . import codec
from ._version import __version__
from .atomic import atomic_output, check_output, recording, same_file
from .cli_options import (
    adapt_option,
    density_option,
    device_option,
    force_option,
    numbers,
    quantise_options,
    quantise_settings,
    quiet_option,
    scheduler_option,
    workers_option,
)
from .container import TcsReader
from .decoders import resolve_decoder
from .decoders.guard import GUARD_RATIO
from .decoding import RUN
from .errors import EmtcsError, Interrupted, for_file
from .finish import FINISHES
from .progress import progress_bar, stderr_console
from .simulate import MODES, SimulationConfig
from .training.config import LOSSES, TrainConfig

EXIT_ERROR = 1
#: ``emtcs train``'s defaults: the Python API's (a run from the CLI and one from ``TrainConfig()`` agree)
_TRAINING = TrainConfig()


class TrainingInterrupted(Exception):
    """Ctrl-C or SIGTERM during training, after a checkpoint was written (which is kept)."""


def _fail(message: str, code: int = EXIT_ERROR) -> NoReturn:
    click.echo(f"emtcs: error: {message}", err=True)
    sys.exit(code)


class _Group(click.Group):
    """Turns bad options, library errors, Ctrl-C and SIGTERM into one line and an exit status."""

    def invoke(self, ctx: click.Context) -> Any:
        signal.signal(signal.SIGTERM, _raise_interrupt)
        # also when started in the background, where SIGINT is inherited as ignored
        signal.signal(signal.SIGINT, _raise_interrupt)
        kept: list[Path] = []
        try:
            with recording() as kept:
                return super().invoke(ctx)
        except click.UsageError as exc:  # a bad option value, as one line too
            _fail(exc.format_message(), exc.exit_code)
        except EmtcsError as exc:
            _fail(f"{exc}; {_kept_line(list(map(str, kept)))}" if kept else str(exc))
        except KeyboardInterrupt as exc:
            names, of = (exc.kept, exc.total) if isinstance(exc, Interrupted) else (list(map(str, kept)), None)
            outcome = f"{_kept_line(names, of)}; no partial output left" if names else "no output written"
            _fail(f"interrupted; {outcome}", 128 + _signal_number)
        except TrainingInterrupted as exc:
            _fail(str(exc), 128 + _signal_number)
        except MemoryError:
            _fail("out of memory")
        except OSError as exc:
            where = f" {exc.filename}" if exc.filename else ""
            _fail(f"{exc.strerror or exc}{':' + where if where else ''}")


def _kept_line(names: list[str], of: int | None = None) -> str:
    """Which outputs a command stopped by an error or an interrupt had completed: they are
    kept (a partial one never is)."""
    shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
    return f"{_count(len(names), 'output')}{f' of {of}' if of else ''} complete and kept: {shown}"


_interrupted = False
#: The signal that interrupted the command: it exits with 128 + its number (130 for Ctrl-C,
#: 143 for SIGTERM), as shells report it.
_signal_number = int(signal.SIGINT)


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    # An exception raised inside a __del__ or a weakref callback is printed with a
    # traceback and dropped: there, only set the flag, which the next progress tick
    # turns into the interrupt, so an interrupt is never lost nor printed twice.
    global _interrupted, _signal_number
    _interrupted, _signal_number = True, signum
    if frame is not None and (frame.f_code.co_name == "__del__" or frame.f_code.co_filename.endswith("weakref.py")):
        return
    raise KeyboardInterrupt


@contextmanager
def _progress(description: str, total: float, **kwargs: Any) -> Iterator[Callable[..., None]]:
    """:func:`progress_bar` whose ticks also deliver a pending Ctrl-C or SIGTERM."""
    with progress_bar(description, total, **kwargs) as advance:

        def tick(n: float = 1, status: str | None = None) -> None:
            if _interrupted:
                raise KeyboardInterrupt
            advance(n, status=status)

        yield tick


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="emtcs")
def main() -> None:
    """emtcs: compress electron-microscopy movies by temporal compressive sensing.

    \b
    Typical use:
      emtcs compress movie.tif -B 20          # movie.tif -> movie.tcs
      emtcs info movie.tcs
      emtcs verify movie.tcs --source movie.tif   # before the raw movie is deleted
      emtcs preview movie.tcs                     # each group's mean frame, no decoding
      emtcs decompress movie.tcs -o restored.tif
    """


@main.command()
@click.argument("inputs", nargs=-1, required=True, type=click.Path(path_type=Path), metavar="INPUT...")
@click.option("-B", "B", type=int, default=20, show_default=True, help="Frames per measurement (compression ratio).")
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path),
    help="Output .tcs file, with one INPUT [default: each INPUT with .tcs].",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the coding masks.")
@density_option
@quantise_options
@click.option(
    "--cuts",
    type=click.Choice(["on", "off"]),
    default="on",
    show_default=True,
    help="Look for scene cuts (frames unlike the one before) and end groups there (off: groups of B).",
)
@workers_option
@scheduler_option
@force_option
@quiet_option
def compress(
    inputs: tuple[Path, ...],
    B: int,
    output: Path | None,
    seed: int,
    density: float | None,
    quantise: str | None,
    exact: bool,
    gain: str,
    offset: float | None,
    cuts: str,
    workers: int | None,
    scheduler: str | None,
    force: bool,
    quiet: bool,
) -> None:
    """Compress movies into .tcs files, B frames per measurement, one .tcs per movie.

    Reads TIFF, MRC/MRCS, DM3/DM4, Velox and Berkeley EMD, and TIA SER (all but TIFF
    need emtcs[formats]).  Several movies are compressed one after the other, or in
    parallel with --workers or --scheduler.

    \b
    Example:
      emtcs compress movie.tif -B 20 -o movie.tcs
      emtcs compress run*.mrc -B 20 --workers 4
    """
    from .errors import InputError
    from .io import open_movie

    if output is not None and len(inputs) > 1:
        raise InputError("-o names the output of one INPUT; with several, each INPUT.tcs is written beside it")
    quantise, gain = quantise_settings(quantise, exact, gain)
    options = {
        "seed": seed,
        "density": density,
        "quantise": quantise,
        "gain": gain,
        "offset": offset,
        "cuts": cuts == "on",
        "force": force,
    }
    total = 0
    for src in inputs:
        with open_movie(src) as movie:
            total += movie.n_frames
    with _progress("compress", total, quiet=quiet) as advance:
        if len(inputs) == 1 and workers is None and scheduler is None:
            infos = [codec.compress(inputs[0], output, B, progress=advance, **options)]
        else:
            infos = codec.compress_many(
                [(src, output) for src in inputs],
                B,
                **options,
                workers=workers,
                scheduler=scheduler,
                progress=advance,
            )
    if not quiet:
        for info in infos:
            stderr_console().print(
                f"{info['path']}: {_count(info['n_frames'], 'frame')} "
                f"{info['frame_shape'][0]}x{info['frame_shape'][1]} "
                f"{info['source_dtype']}, B={info['B']}, {_size(info['file_bytes'])} "
                f"(ratio {info['compression_ratio']:.1f}, {info['bits_per_pixel']:.3f} bits/pixel"
                + (f"; measurements {info['coding']})" if info["coding"] != "exact" else ")")
            )
            stderr_console().print(f"  noise: {_noise_line(info)}")
            masks = _masks_line(info, chosen=density is None)
            if masks:
                stderr_console().print(f"  masks: {masks}")
            if info.get("cuts"):
                stderr_console().print(f"  {_cuts_line(info)}")
            coherence = info.get("coherence")
            if coherence and coherence["too_fast"]:
                stderr_console().print(
                    f"  frames: consecutive frames correlate {coherence['between_frames']:.2f} against "
                    f"{coherence['within_frames']:.2f} between neighbouring blocks of a frame: they change faster than "
                    f"a group of {info['B']} can follow and will decode blurred into each other; a smaller -B suits "
                    "this movie"
                )
            if coherence and coherence.get("loses_detail"):
                stderr_console().print(
                    f"  detail: fine detail correlates {coherence['detail_next']:.2f} between consecutive frames "
                    f"and {coherence['detail_apart']:.2f} between frames {coherence['lag']} apart: it stands above "
                    f"the noise but changes within a group of {info['B']}, and may decode no better than the raw "
                    f"frames show it; {_smaller_b(coherence, info['B'])} (docs/usage.md, 'Fine detail')"
                )


def _masks_line(info: dict[str, Any], chosen: bool) -> str | None:
    """The masks' density where it is not the default, and why: ``chosen`` for the movie by
    compress, else given (docs/usage.md, 'Mask density')."""
    from .density import BLOCK_BAR, BOX
    from .sensing import DEFAULT_DENSITY

    density, moves = info["mask_density"], info.get("moving_share")
    if density == DEFAULT_DENSITY:
        return None
    why = (
        f": the first group moves ({moves:.0%} of its {BOX}-pixel blocks change more than {BLOCK_BAR:g} times as "
        "much as their halves' difference)"
        if chosen and moves
        else ", as --density gave"
    )
    return f"density {density:g}, about {density * info['B']:.0f} frames per pixel{why} (docs/usage.md, 'Mask density')"


def _smaller_b(coherence: dict[str, Any], B: int) -> str:
    """The B that keeps the fine detail, in words, where the movie showed it lasts fewer than B frames."""
    frames = coherence.get("detail_frames")
    if frames is None or round(frames) >= B:
        return "a smaller -B keeps more of it"
    return f"it keeps about half its correlation over {frames:.1f} frames: -B {max(2, round(frames))} would keep it"


def _groups_line(info: dict[str, Any]) -> str:
    """The group layout of a .tcs info in words."""
    B, lengths = info["B"], [g["length"] for g in info["groups"]]
    text = f"{_count(len(lengths), 'measurement')} of B={B} frames"
    short = sum(1 for n in lengths if n < B)
    if short:
        alone = lengths.count(1)
        text += f" ({short} shorter" + (f", {alone} of them a frame stored alone)" if alone else ")")
    predicted = info.get("measurement_prediction", "none") != "none"
    return (
        text
        + f"; {info['measurement_dtype']}, {info['coding']}"
        + (f", {info['measurement_prediction']} prediction" if predicted else "")
    )


def _cuts_line(info: dict[str, Any]) -> str:
    """The scene cuts of a .tcs info in words."""
    cuts = info.get("cuts")
    if cuts is None:
        return "not looked for"
    if not cuts:
        return "none found"
    across = info.get("groups_across_cuts") or []
    shown = ", ".join(str(c) for c in cuts[:10]) + (" ..." if len(cuts) > 10 else "")
    text = f"{len(cuts)} scene cut{'s' if len(cuts) > 1 else ''} (before frame {shown})"
    if not across:
        text += "; no group holds frames from both sides"
    else:
        text += (
            f"; {len(across)} group{'s' if len(across) > 1 else ''} ({', '.join(map(str, across[:10]))}) "
            f"hold{'' if len(across) > 1 else 's'} frames from both sides and will decode poorly "
            "(compressing it again with --cuts on ends groups there)"
        )
    return text


def _noise_line(info: dict[str, Any]) -> str:
    """The noise model of a .tcs info in words, or why there is none."""
    noise = info.get("noise")
    if noise:
        how = "measured" if noise["estimated"] else "given"
        return (
            f"gain {noise['gain']:.4g} levels/e, offset {noise['offset']:.4g}, "
            f"read noise {noise['read_noise']:.3g} e ({how})"
        )
    if info.get("noise_note"):
        sigma = info.get("noise_sigma")
        if sigma:
            spread = info.get("noise_spread") or 0.0
            shared = f", {spread:.0%} of it shared with neighbouring pixels" if spread else ""
            return f"no Poisson model: {info['noise_note']}; one frame's noise measured as {sigma:.4g} levels{shared}"
        return f"no Poisson model: {info['noise_note']}; decoders assume 1 value per electron"
    return "unknown; decoders assume 1 value per electron"


@main.command()
@click.argument("inputs", nargs=-1, required=True, type=click.Path(path_type=Path), metavar="INPUT...")
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path),
    help="Output movie of one INPUT, .tif or .mrc (emtcs[formats]) [default: INPUT-restored.tif for each].",
)
@click.option(
    "--decoder",
    default="auto",
    show_default=True,
    help="auto (the best learned decoder with weights for B, else GAP-TV), gaptv, select (GapUNet or "
    "GAP-TV tile by tile, what auto picks when GapUNet's weights serve B), gapunet, tcsdl, gapnet.",
)
@click.option("--frames", "frames", default=None, help="Decode only frames A:B (0-based, B excluded), e.g. 0:100.")
@device_option("Where learned decoders run (GAP-TV always runs on the CPU).")
@click.option("--tile", type=int, default=256, show_default=True, help="Tile size in pixels.")
@click.option("--overlap", type=int, default=32, show_default=True, help="Tile overlap in pixels.")
@click.option("--batch", type=int, default=8, show_default=True, help="Tiles per decoder call.")
@click.option(
    "--guard",
    type=float,
    default=GUARD_RATIO,
    show_default=True,
    metavar="RATIO",
    help="Decode a tile with GAP-TV where a learned decoder's residual exceeds RATIO times the shot noise "
    "(it failed on data unlike its training data) and GAP-TV's is smaller; 0 turns the guard off.",
)
@click.option(
    "--finish",
    type=click.Choice(FINISHES),
    default="nlm",
    show_default=True,
    help="Finish the tiles a learned decoder returns with non-local means at the strength of their "
    "remaining noise, as strong as the measurement allows where the noise is known, or not (none).",
)
@click.option(
    "--run",
    type=click.IntRange(min=1),
    default=RUN,
    show_default=True,
    metavar="GROUPS",
    help="GapUNet (auto, select) decodes blocks of this many consecutive groups together, so that the frames "
    "either side of a boundary between groups see each other (sharper there, but not yet clear of the "
    "suite's invented-peak check: docs/decoders.md); 1 decodes each group alone.",
)
@click.option(
    "--still/--no-still",
    default=True,
    show_default=True,
    help="Where a tile's measurement, or part of it, equals a neighbouring group's to the shot noise (the "
    "specimen held still there), give back its frames there from the measurement, which keeps fine lattices "
    "the decoders lose (where the file holds its noise, which compress measures by default).",
)
@adapt_option
@click.option(
    "--reference",
    type=click.Path(path_type=Path),
    help="Print PSNR/SSIM against this movie (e.g. the clean truth); one INPUT.",
)
@click.option(
    "--report", type=click.Path(path_type=Path), help="Write per-group measurement residuals as JSON; one INPUT."
)
@workers_option
@scheduler_option
@force_option
@quiet_option
def decompress(
    inputs: tuple[Path, ...],
    output: Path | None,
    decoder: str,
    frames: str | None,
    device: str,
    tile: int,
    overlap: int,
    batch: int,
    guard: float,
    finish: str,
    run: int,
    still: bool,
    adapt: int,
    reference: Path | None,
    report: Path | None,
    workers: int | None,
    scheduler: str | None,
    force: bool,
    quiet: bool,
) -> None:
    """Reconstruct the frames of .tcs files into TIFF or MRC movies.

    For every group it reports the measurement residual ||Y - sum C_b X_b|| / ||Y||,
    the check that the reconstruction agrees with what was recorded.  With --workers
    or --scheduler the groups are decoded on dask.distributed (same output).
    Several files are decoded one after the other, each into INPUT-restored.tif;
    every output is checked before the first decode.

    \b
    Example:
      emtcs decompress movie.tcs -o restored.tif --frames 0:100
      emtcs decompress movie.tcs -o restored.mrc --scheduler tcp://head:8786
      emtcs decompress archive/*.tcs          # archive/NAME-restored.tif for each
    """
    from .io import check_writable

    if len(inputs) > 1 and (output or reference or report):
        raise click.UsageError(
            "-o, --reference and --report go with one INPUT; with several, each gets INPUT-restored.tif"
        )
    jobs, total = [], 0
    for input in inputs:  # every file read and every output checked before the first decode
        out = output or input.with_name(f"{input.stem}-restored.tif")
        if any(same_file(out, other) for _, other, _ in jobs):
            raise click.UsageError(f"{input} is given twice (or two inputs would write {out})")
        with TcsReader(input) as r:
            selected = codec.frame_range(frames, r.header.n_frames)
            frame_shape = r.header.frame_shape
        check_writable(out)
        check_output(out, force=force, inputs=(input,))
        jobs.append((input, out, selected))
        total += len(selected)
    if reference:  # the one INPUT's, checked before the decode, not after it
        _check_reference(reference, frame_shape, selected)
    if report:
        if same_file(report, jobs[0][1]):
            raise click.UsageError("--report and --output name the same file")
        check_output(report, force=force, inputs=inputs)
    options = {
        "decoder": decoder,
        "frames": frames,
        "device": device,
        "force": force,
        "tile": tile,
        "overlap": overlap,
        "batch": batch,
        "guard": guard,
        "finish": finish,
        "run": run,
        "still": still,
        "workers": workers,
        "scheduler": scheduler,
        "adapt": adapt,
    }
    console = stderr_console()
    with _progress("decompress", total, quiet=quiet) as advance:
        for input, out, _ in jobs:
            where = f"{input.name}: " if len(jobs) > 1 else ""
            try:
                result = codec.decompress(
                    input,
                    out,
                    **options,
                    progress=advance,
                    log=lambda msg, where=where: console.print(f"note: {where}{msg}"),
                    on_group=lambda g, res, where=where: advance(0, status=f"{where}group {g}: residual {res:.4f}"),
                    on_adapt=lambda i, n, where=where: advance(
                        0, status=f"{where}fitting the network to the file: step {i}/{n}"
                    ),
                )
            except EmtcsError as exc:
                if len(jobs) == 1:
                    raise
                raise for_file(exc, input) from None
            if not quiet:
                _print_decoded(out, result)
    if report:
        with atomic_output(report, force=force) as tmp:
            tmp.write_text(json.dumps(result.to_json(), indent=2))
    if reference:
        q = _quality(reference, jobs[0][1], result.frames)
        click.echo(
            f"quality vs {reference.name}: PSNR {q['psnr']:.2f} dB (worst frame {q['psnr_min']:.2f}), "
            f"SSIM {q['ssim']:.4f} over {_count(q['frames'], 'frame')}"
        )


def _print_decoded(output: Path, result: codec.DecompressReport) -> None:
    """The summary of one decoded file: frames, decoder, residuals, withheld measurements."""
    console = stderr_console()
    res = result.residuals
    worst = max(res, key=res.get)
    console.print(
        f"{output}: {_count(len(result.frames), 'frame')}, decoder {result.decoder['name']}; measurement residual "
        f"median {statistics.median(res.values()):.4f}, max {res[worst]:.4f} (group {worst})"
    )
    scores = result.holdout_scores()
    if scores:
        bad = max(scores, key=scores.get)
        console.print(
            f"  withheld measurements predicted to {statistics.median(scores.values()):.2f}x their noise "
            f"(median over groups; worst {scores[bad]:.2f}x, group {bad}; about 1 at best)"
        )


def _check_reference(reference: Path, frame_shape: tuple[int, int], frames: range) -> None:
    """Refuse a --reference movie that cannot be read or does not hold the decoded frames."""
    from .errors import InputError
    from .io import open_movie

    with open_movie(reference) as ref:
        if ref.frame_shape != tuple(frame_shape) or ref.n_frames < frames.stop:
            h, w = ref.frame_shape
            raise InputError(
                f"{reference}: {_count(ref.n_frames, 'frame')} of {h}x{w} cannot be compared with the decoded "
                f"frames {frames.start}:{frames.stop} of {frame_shape[0]}x{frame_shape[1]}"
            )


def _quality(reference: Path, output: Path, frames: range) -> dict[str, float]:
    from .io import open_movie
    from .metrics import movie_quality

    with open_movie(reference) as ref, open_movie(output) as out:
        lo, hi = ref.value_range()
        pairs = ((ref.read_frame(t), out.read_frame(k)) for k, t in enumerate(frames))
        return movie_quality(pairs, data_range=(hi - lo) or 1.0)


@main.command()
@click.argument("inputs", nargs=-1, required=True, type=click.Path(path_type=Path), metavar="FILE...")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts (a list for several files).")
def info(inputs: tuple[Path, ...], as_json: bool) -> None:
    """Describe .tcs files: frames, B, sizes, compression ratio, masks, versions, and the
    decoder that --decoder auto would use for each here.

    \b
    Example:
      emtcs info movie.tcs --json
      emtcs info archive/*.tcs
    """
    infos, notices = [], []
    for input in inputs:
        with TcsReader(input) as r:
            d = r.info()
        d["auto_decoder"], notice = resolve_decoder("auto", d["B"])
        infos.append(d)
        notices.append(notice)
    if as_json:
        click.echo(json.dumps(infos[0] if len(infos) == 1 else infos, indent=2, default=str))
        return
    for k, (d, notice) in enumerate(zip(infos, notices)):
        if k:
            click.echo()
        for key, value in _info_lines(d, notice):
            click.echo(f"{key:>15}: {value}")
    if len(infos) > 1:
        raw, stored = sum(d["raw_bytes"] for d in infos), sum(d["file_bytes"] for d in infos)
        frames = sum(d["n_frames"] for d in infos)
        click.echo(
            f"\n{'total':>15}: {len(infos)} files, {_count(frames, 'frame')}, "
            f"{_size(raw)} of frames in {_size(stored)} (ratio {raw / stored:.2f})"
        )


def _info_lines(d: dict[str, Any], notice: str | None) -> list[tuple[str, str]]:
    """``emtcs info``'s lines (label, text) for one file's :meth:`TcsReader.info`, ``notice``
    saying why ``auto`` would not use a learned decoder, if it would not."""
    h, w = d["frame_shape"]
    meta = d["metadata"]
    lines = [
        ("file", f"{d['path']} ({_size(d['file_bytes'])})"),
        ("format", f"{d['format']} {d['format_version']}, written by {d['software']} on {d['created']}"),
        (
            "source",
            f"{d['source_name']}: {_count(d['n_frames'], 'frame')} of {h}x{w} {d['source_dtype']} "
            f"({_size(d['raw_bytes'])})",
        ),
        ("groups", _groups_line(d)),
        ("compression", f"ratio {d['compression_ratio']:.2f}, {d['bits_per_pixel']:.3f} bits per pixel per frame"),
        ("masks", f"{d['mask_generator']}, seed {d['mask_seed']}, density {d['mask_density']:g}"),
        ("noise", _noise_line(d)),
        ("scene cuts", _cuts_line(d)),
        ("decoder", notice or f"auto decodes groups of {d['B']} with {d['auto_decoder']} on this machine"),
    ]
    if meta.get("pixel_size"):
        lines.append(
            ("pixel size", f"{meta['pixel_size'][1]:g} x {meta['pixel_size'][0]:g} {meta.get('pixel_unit') or ''}")
        )
    if meta.get("frame_interval"):
        lines.append(("frame interval", f"{meta['frame_interval']:g} s"))
    if meta.get("exposure"):
        lines.append(("exposure", f"{meta['exposure']:g} s"))
    for key, label in (
        ("acquisition_time", "acquired"),
        ("microscope", "microscope"),
        ("detector", "detector"),
        ("source_format", "source format"),
    ):
        if meta.get(key):
            lines.append((label, str(meta[key])))
    if meta.get("original_metadata"):
        lines.append(("file metadata", f"{len(meta['original_metadata'])} top-level entries (see --json)"))
    return lines


@main.command()
@click.argument("inputs", nargs=-1, required=True, type=click.Path(path_type=Path), metavar="FILE...")
@click.option(
    "--source",
    type=click.Path(path_type=Path),
    help="The movie the (one) FILE was made from: encode it again and compare, value for value.",
)
@quiet_option
def verify(inputs: tuple[Path, ...], source: Path | None, quiet: bool) -> None:
    """Check .tcs files: read every measurement back (checksums, layout, values).

    One line per file (only the damaged ones with -q); the exit status is 1 if any
    file is damaged or unreadable.  For archives, after a copy or a restore; with
    --source, before the raw movie is deleted: the file must hold exactly what
    compress makes of it.

    \b
    Example:
      emtcs verify archive/*.tcs -q
      emtcs verify run42.tcs --source run42.mrc
    """
    if source is not None and len(inputs) > 1:
        raise click.UsageError("--source checks one FILE against its movie")
    damaged = 0
    with _progress("verify", len(inputs), quiet=quiet) as advance:
        for path in inputs:
            advance(0, status=str(path))
            problem = codec.verify(path, source, progress=lambda n: advance(0))
            if problem:
                damaged += 1
                click.echo(f"damaged: {problem}")
            elif not quiet:
                click.echo(f"ok: {path}" + (f" holds exactly what compress makes of {source}" if source else ""))
            advance(1)
    if damaged:
        _fail(f"{damaged} of {_count(len(inputs), 'file')} damaged or unreadable")


@main.command()
@click.argument("inputs", nargs=-1, required=True, type=click.Path(path_type=Path), metavar="INPUT...")
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path),
    help="Output movie, .tif or .mrc, of one INPUT [default: INPUT-preview.tif for each].",
)
@click.option("--bin", "bin_", type=int, default=1, show_default=True, help="Bin the frames N x N (4: thumbnails).")
@click.option("--frames", "frames", default=None, help="Only the groups holding frames A:B (0-based, B excluded).")
@force_option
@quiet_option
def preview(
    inputs: tuple[Path, ...], output: Path | None, bin_: int, frames: str | None, force: bool, quiet: bool
) -> None:
    """A quick look without decoding: one frame per group, the mean of its frames.

    Each pixel is the group's measurement divided by the number of frames it summed
    there: exact where the specimen held still, an average over about half the frames
    (with the masks' texture) where it moved.  No decoder, no torch; seconds per file.

    \b
    Example:
      emtcs preview movie.tcs -o thumbs.tif --bin 4
      emtcs preview archive/*.tcs --bin 8      # archive/NAME-preview.tif for each
    """
    from .quicklook import preview as write_preview
    from .quicklook import preview_frames

    if output is not None and len(inputs) > 1:
        raise click.UsageError("-o names the output of one INPUT (without it each gets INPUT-preview.tif)")
    for input in inputs:
        out = output or input.with_name(f"{input.stem}-preview.tif")
        with TcsReader(input) as r:
            n_groups = len(preview_frames(r, codec.frame_range(frames, r.header.n_frames)))
        with _progress(f"preview {input.name}", n_groups, quiet=quiet) as advance:
            spans = write_preview(input, out, binning=bin_, frames=frames, force=force, progress=advance)
        if not quiet:
            stderr_console().print(
                f"{out}: {_count(len(spans), 'frame')}, each the mean of one group's frames "
                f"({spans[0].start}..{spans[-1].stop - 1} in all)"
            )


@main.command()
@click.argument("output", type=click.Path(path_type=Path))
@click.option("--frames", "n_frames", type=int, default=40, show_default=True, help="Number of frames.")
@click.option("--size", nargs=2, type=int, default=(256, 256), show_default=True, metavar="H W", help="Frame size.")
@click.option("--dose", type=float, default=100.0, show_default=True, help="Mean electrons per pixel per frame.")
@click.option("--seed", type=int, default=0, show_default=True, help="Scene and noise seed.")
@click.option(
    "--dtype",
    type=click.Choice(["uint8", "uint16"]),
    default="uint16",
    show_default=True,
    help="Sample type of the noisy movie.",
)
@click.option("--clean", type=click.Path(path_type=Path), help="Also write the noise-free movie (float32) here.")
@click.option(
    "--mode",
    type=click.Choice(["hrtem", "bright-field", "liquid-cell", "stem"]),
    default="hrtem",
    show_default=True,
    help="Imaging mode: phase-contrast HRTEM, bright-field mass-thickness contrast, liquid-cell TEM, "
    "or STEM (HAADF-like, with scan noise).",
)
@force_option
@quiet_option
def simulate(
    output: Path,
    n_frames: int,
    size: tuple[int, int],
    dose: float,
    seed: int,
    dtype: str,
    clean: Path | None,
    mode: str,
    force: bool,
    quiet: bool,
) -> None:
    """Write a synthetic in-situ EM movie: HRTEM by default (nanoparticles drifting, rotating,
    coalescing), or bright-field, liquid-cell or STEM (--mode).

    \b
    Example:
      emtcs simulate movie.tif --frames 100 --size 512 512 --dose 50 --clean clean.tif
      emtcs simulate lc.tif --mode liquid-cell --dose 10
    """
    with _progress("simulate", n_frames, quiet=quiet) as advance:
        codec.write_simulation(
            output,
            clean_path=clean,
            n_frames=n_frames,
            shape=size,
            dose=dose,
            seed=seed,
            dtype=dtype,
            mode=mode,
            force=force,
            progress=advance,
        )


@main.command()
@click.option(
    "-B",
    "B",
    default=",".join(map(str, _TRAINING.B)),
    show_default=True,
    help="Group size(s) to train for, comma-separated; a size given twice is drawn twice as often.",
)
@click.option(
    "--arch",
    type=click.Choice(["tcsdl", "gapnet", "gapunet"]),
    default="tcsdl",
    show_default=True,
    help="tcsdl: the paper's CNN + RNN; gapnet: unfolded GAP with a learned denoiser; "
    "gapunet: GAP-TV, then unfolded stages with a noise-aware spatio-temporal U-Net.",
)
@click.option(
    "--data", multiple=True, type=click.Path(path_type=Path), help="Real EM movies/images to add (repeatable)."
)
@click.option(
    "--scene-file",
    "scene_files",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="HDF5 file of clean simulated movies, one (T, H, W) dataset each, to train on (repeatable).",
)
@click.option(
    "--val-scene-file",
    "val_scene_files",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="HDF5 file of clean movies to validate on (repeatable; default: simulator scenes of other seeds).",
)
@click.option(
    "--zoom",
    type=(float, float),
    default=_TRAINING.zoom,
    show_default=True,
    metavar="LO HI",
    help="Range of the magnification applied to --scene-file clips (other pixel sizes; a scene "
    "zooms out only as far as its side allows, 192 px to 0.67 at a 128 px patch).",
)
@click.option(
    "--mask-density",
    type=(float, float),
    default=_TRAINING.mask_density,
    show_default=True,
    metavar="LO HI",
    help="Range of the coding masks' density (probability of a 1), drawn per sample; validation stays at 0.5.",
)
@click.option(
    "--sparse-masks",
    type=click.FloatRange(0, 1),
    default=_TRAINING.sparse_masks,
    show_default=True,
    help="Probability that a sample's masks have the density compress gives a movie that moves (5/B at "
    "B 11-30); validation stays at 0.5.",
)
@click.option("--simulate/--no-simulate", default=True, show_default=True, help="Use simulated movies.")
@click.option(
    "--modes",
    default="hrtem",
    show_default=True,
    help="Imaging modes of the simulated movies, comma-separated (hrtem, bright-field, liquid-cell, stem).",
)
@click.option(
    "--column-spacing",
    type=(float, float),
    default=None,
    metavar="LO HI",
    help="Range of the simulated HRTEM and STEM lattices' {200} spacing in pixels (the sampling they cover; "
    "finer lattices sit closer to the pixel grid)  [default: the simulator's, "
    f"{' '.join(f'{v:g}' for v in SimulationConfig().column_spacing_px)}]",
)
@click.option(
    "--steps",
    type=click.IntRange(min=1),
    default=_TRAINING.steps,
    show_default=True,
    help="Optimiser steps (the cosine schedule's length).",
)
@click.option(
    "--patch",
    type=click.IntRange(min=16),
    default=_TRAINING.patch,
    show_default=True,
    help="Training crop size in pixels.",
)
@click.option("--width", type=click.IntRange(min=1), help="Channels of the network  [default: 32; gapunet: 24]")
@click.option(
    "--stages", type=click.IntRange(min=1), help="gapnet, gapunet: number of unfolded stages  [default: 5; gapunet: 2]"
)
@click.option(
    "--temporal",
    is_flag=True,
    help="gapunet: the frames of a group exchange features at the U-Net's coarse scales; "
    "--init may give weights without it (it starts with no effect).",
)
@click.option(
    "--fine-temporal",
    is_flag=True,
    help="gapunet: the frames also exchange features at the U-Net's finest scale (half the tile's "
    "resolution); --init may give weights without it (it starts with no effect).",
)
@click.option(
    "--head",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="gapunet: width of a full-resolution head after the U-Net, which can undo its 2 x 2 pixel grid; "
    "--init may give weights without it (it starts with no effect).",
)
@click.option(
    "--discrepancy/--no-discrepancy",
    default=True,
    show_default=True,
    help="gapunet: start from the GAP-TV that stops accelerating at the measured noise.",
)
@click.option("--batch", type=click.IntRange(min=1), default=_TRAINING.batch, show_default=True, help="Clips per step.")
@click.option(
    "--lr", type=click.FloatRange(min=0), default=_TRAINING.lr, show_default=True, help="Peak learning rate (Adam)."
)
@click.option(
    "--scenes",
    type=click.IntRange(min=0),
    default=_TRAINING.scenes,
    show_default=True,
    help="Simulated scenes in the training pool.",
)
@click.option(
    "--motion",
    type=click.FloatRange(min=0),
    default=_TRAINING.motion,
    show_default=True,
    help="Drift of --data crops, pixels per frame (std).",
)
@click.option(
    "--flicker",
    type=click.FloatRange(min=0),
    default=_TRAINING.flicker,
    show_default=True,
    help="Per-frame intensity changes (std of log gain).",
)
@click.option(
    "--cuts",
    type=click.FloatRange(0, 1),
    default=_TRAINING.cuts,
    show_default=True,
    help="Probability that a clip cuts to another scene.",
)
@click.option(
    "--still",
    type=click.FloatRange(0, 1),
    default=_TRAINING.still,
    show_default=True,
    help="Probability that a clip holds still (its first frame throughout, counted anew each frame).",
)
@click.option(
    "--slow",
    type=click.FloatRange(0, 1),
    default=_TRAINING.slow,
    show_default=True,
    help="Probability that a clip drifts slowly (its first frame moved rigidly 0.005-0.05 px a frame).",
)
@click.option(
    "--jpeg",
    type=click.FloatRange(0, 1),
    default=_TRAINING.jpeg,
    show_default=True,
    help="Probability that a sample's frames are 8-bit JPEG (quality 50-95).",
)
@click.option(
    "--flat-noise",
    type=click.FloatRange(0, 1),
    default=_TRAINING.flat_noise,
    show_default=True,
    help="Probability that a sample's noise is the same at every intensity, as in movies whose noise "
    "compress measures as one sigma.",
)
@click.option(
    "--noise-blur",
    type=click.FloatRange(0, 1),
    default=_TRAINING.noise_blur,
    show_default=True,
    help="Probability that a sample's noise is blurred with its image (correlated between neighbouring "
    "pixels), as on scintillator-coupled cameras.",
)
@click.option(
    "--equivariance",
    type=click.FloatRange(min=0),
    default=_TRAINING.equivariance,
    show_default=True,
    help="Weight of a loss on how the output changes when the measurement moves by one pixel "
    "(against a network's own pixel grid showing in its frames).",
)
@click.option(
    "--finished-loss",
    type=click.FloatRange(min=0),
    default=_TRAINING.finished_loss,
    show_default=True,
    help="Weight of a loss on the frames after the NL-means finish that auto applies (what the finish "
    "cannot remove, not what it removes anyway).",
)
@click.option(
    "--run",
    "run_groups",
    type=click.IntRange(min=1),
    default=_TRAINING.run,
    show_default=True,
    metavar="GROUPS",
    help="Train on clips of this many consecutive groups decoded as one run (decompress --run; GapUNet).",
)
@click.option(
    "--run-share",
    type=click.FloatRange(min=0, max=1, min_open=True),
    default=_TRAINING.run_share,
    show_default=True,
    metavar="SHARE",
    help="Share of the steps that train runs of --run groups; the others train single groups.",
)
@click.option(
    "--edge-weight",
    type=click.FloatRange(min=0, min_open=True),
    default=_TRAINING.edge_weight,
    show_default=True,
    help="Weight of each group's first and last frames in the loss (the others 1), where the decoders do worst.",
)
@click.option(
    "--spectral-weight",
    type=click.FloatRange(min=0),
    default=_TRAINING.spectral_weight,
    show_default=True,
    help="A loss on spectral peaks the frames show more strongly than the truth (invented reflections), "
    "pulling each sample at most this many times as hard as the reconstruction loss (0: off).",
)
@click.option(
    "--spectral-margin",
    type=click.FloatRange(min=1),
    default=_TRAINING.spectral_margin,
    show_default=True,
    help="How many times stronger than the truth's (or than the weakest reflection the suite counts as "
    "present) a spectral peak may be before --spectral-weight's loss counts it.",
)
@click.option(
    "--spectral-frame",
    type=click.IntRange(min=16),
    metavar="PX",
    help="Frame side at which --spectral-margin's bar for a peak the truth lacks is the suite's (e.g. 256): "
    "a fringe stands out over its background in proportion to the frame's area, so smaller clips get a lower "
    "bar  [default: the clips' own side]",
)
@click.option(
    "--loss",
    "loss_kind",
    type=click.Choice(LOSSES),
    default=_TRAINING.loss,
    show_default=True,
    help="mse: the squared error over the batch, which low-dose samples dominate; log-mse: the mean of each "
    "sample's log squared error, which weighs every dose alike (as a mean PSNR does); rmse: the mean of each "
    "sample's root-mean-square error, halfway between.",
)
@click.option(
    "--ema",
    type=click.FloatRange(0, 1, max_open=True),
    default=_TRAINING.ema,
    show_default=True,
    help="Decay of a moving average of the weights, validated and saved instead of them (e.g. 0.999; 0: off).",
)
@click.option(
    "--stage-lr",
    type=click.FloatRange(min=0, min_open=True),
    default=_TRAINING.stage_lr,
    show_default=True,
    help="Learning-rate factor for GapUNet's per-stage steps and gates (e.g. 50 to open stages that --init "
    "added closed at a fine-tuning learning rate).",
)
@click.option(
    "--only",
    default=_TRAINING.only,
    help="Train only the parameters whose names contain this, the others fixed (e.g. 'spread': GapUNet's "
    "conditioning on the noise's spread, which leaves white-noise decodes unchanged).",
)
@click.option(
    "--seed",
    type=int,
    default=_TRAINING.seed,
    show_default=True,
    help="Seed of the training samples and, from scratch, the initialisation (the validation clips stay the "
    "same; with --init, parts the weights lack start alike): runs that differ only in it measure how much "
    "of a result is the draw's.",
)
@click.option(
    "--task",
    type=click.Choice(["reconstruct", "denoise"]),
    default=_TRAINING.task,
    show_default=True,
    help="denoise: pretrain the network's denoiser on noisy frames (gapunet), then --init a reconstruct run.",
)
@click.option(
    "--val-every",
    type=click.IntRange(min=1),
    default=_TRAINING.val_every,
    show_default=True,
    help="Validate every N steps, keeping the best weights (checkpoints also every ~10 minutes).",
)
@click.option(
    "--val-doses",
    default="",
    help="Doses (e/px, comma-separated) the validation clips take in turn, e.g. 20,200 as the validation "
    "suite; default: drawn like the training's, log-uniform over 1-1,000.",
)
@click.option(
    "--init",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Weights (.safetensors) to start from (fine-tuning); architecture, stages and width must match, "
    "except that GapUNet weights of a smaller width or fewer stages start a wider or deeper network with their "
    "output (new channels and stages start with no effect).",
)
@click.option("--resume", type=click.Path(path_type=Path), help="Checkpoint (.ckpt) to continue from.")
@click.option("--threads", type=click.IntRange(min=1), help="CPU threads for training (default: all cores).")
@click.option(
    "--workers",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Processes that make training batches ahead of the network (a GPU needs several; 0: made in turn).",
)
@click.option(
    "--bf16/--no-bf16",
    default=None,
    help="bfloat16 autocast (default: on CUDA, and on CPUs with native bf16: amx_bf16 or avx512_bf16).",
)
@click.option(
    "--minutes", type=click.FloatRange(min=0), help="Stop after this many minutes of training (validates and saves)."
)
@device_option("Where to train (auto: CUDA when PyTorch sees a GPU).")
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path),
    required=True,
    help="Output stem: writes STEM.safetensors, STEM.ckpt, STEM.log.jsonl.",
)
@force_option
@quiet_option
def train(
    B: str,
    arch: str,
    data: tuple[Path, ...],
    scene_files: tuple[Path, ...],
    val_scene_files: tuple[Path, ...],
    zoom: tuple[float, float],
    mask_density: tuple[float, float],
    sparse_masks: float,
    simulate: bool,
    modes: str,
    column_spacing: tuple[float, float] | None,
    steps: int,
    patch: int,
    width: int | None,
    stages: int | None,
    temporal: bool,
    fine_temporal: bool,
    head: int,
    discrepancy: bool,
    batch: int,
    lr: float,
    scenes: int,
    motion: float,
    flicker: float,
    cuts: float,
    still: float,
    slow: float,
    jpeg: float,
    flat_noise: float,
    noise_blur: float,
    equivariance: float,
    finished_loss: float,
    run_groups: int,
    run_share: float,
    edge_weight: float,
    spectral_weight: float,
    spectral_margin: float,
    spectral_frame: int | None,
    loss_kind: str,
    ema: float,
    stage_lr: float,
    only: str,
    seed: int,
    task: str,
    val_every: int,
    val_doses: str,
    init: Path | None,
    resume: Path | None,
    threads: int | None,
    workers: int,
    bf16: bool | None,
    minutes: float | None,
    device: str,
    output: Path,
    force: bool,
    quiet: bool,
) -> None:
    """Train a learned decoder on simulated and/or real EM data.

    \b
    Example:
      emtcs train -B 10,20,30 --arch tcsdl --steps 3000 -o models/tcsdl-mine
    """
    from .errors import InputError

    try:
        from .training import train as run_training
    except ImportError:
        raise InputError("training needs PyTorch: pip install torch") from None
    try:
        Bs = sorted(int(b) for b in B.split(","))  # repeats kept: drawn that many times as often
    except ValueError:
        raise InputError(f"-B takes comma-separated integers, got {B!r}") from None
    if min(Bs) < 2:
        raise InputError("B must be at least 2")
    meaning = "positive doses in e/px, comma-separated"
    doses = numbers(val_doses, "--val-doses", meaning) if val_doses.strip() else []
    if any(not (math.isfinite(d) and d > 0) for d in doses):
        raise InputError(f"--val-doses must be {meaning} (got {val_doses!r})")
    mode_list = [m.strip() for m in modes.split(",") if m.strip()]
    if not mode_list or any(m not in MODES for m in mode_list):
        raise InputError(f"--modes takes a comma-separated list of {', '.join(MODES)}; got {modes!r}")
    if column_spacing is not None:
        lo, hi = column_spacing
        if not (2 <= lo <= hi and math.isfinite(hi)):
            raise InputError(f"--column-spacing takes LO HI pixels with 2 <= LO <= HI; got {lo:g} {hi:g}")
    if not (0 < zoom[0] <= zoom[1] and math.isfinite(zoom[1])):
        raise InputError(f"--zoom takes LO HI with 0 < LO <= HI; got {zoom[0]:g} {zoom[1]:g}")
    if not 0 < mask_density[0] <= mask_density[1] < 1:
        raise InputError(
            f"--mask-density takes LO HI with 0 < LO <= HI < 1; got {mask_density[0]:g} {mask_density[1]:g}"
        )
    net: dict[str, int | bool] = {"width": width or (24 if arch == "gapunet" else 32)}
    if arch != "tcsdl":
        net["stages"] = stages or (2 if arch == "gapunet" else 5)
    if arch == "gapunet":
        net["discrepancy"] = discrepancy  # weights before session 8 were trained without it
        if temporal:
            net["temporal"] = True
        if fine_temporal:
            net["fine_temporal"] = True
        if head:
            net["head"] = head
    elif temporal or fine_temporal or head:
        raise InputError("--temporal, --fine-temporal and --head are gapunet options")
    cfg = TrainConfig(
        arch=arch,
        net=net,
        B=Bs,
        steps=steps,
        patch=patch,
        batch=batch,
        lr=lr,
        simulate=simulate,
        modes=mode_list,
        column_spacing_px=column_spacing,
        data=[str(d) for d in data],
        scene_files=[str(f) for f in scene_files],
        val_scene_files=[str(f) for f in val_scene_files],
        zoom=zoom,
        mask_density=mask_density,
        sparse_masks=sparse_masks,
        scenes=scenes,
        motion=motion,
        flicker=flicker,
        cuts=cuts,
        still=still,
        slow=slow,
        jpeg=jpeg,
        flat_noise=flat_noise,
        noise_blur=noise_blur,
        equivariance=equivariance,
        finished_loss=finished_loss,
        run=run_groups,
        run_share=run_share,
        edge_weight=edge_weight,
        spectral_weight=spectral_weight,
        spectral_margin=spectral_margin,
        spectral_frame=spectral_frame,
        loss=loss_kind,
        ema=ema,
        stage_lr=stage_lr,
        only=only,
        seed=seed,
        task=task,
        val_every=val_every,
        val_doses=doses,
        init=str(init) if init else None,
    )
    console = stderr_console()
    with _progress("train", steps, quiet=quiet, unit="steps") as advance:

        def on_step(step: int, rec: dict) -> None:
            status = f"loss {rec['loss']:.4g}"
            if "val_psnr" in rec:
                status += f"  val {rec['val_psnr']:.2f} dB"
            advance(1, status=status)

        started = time.time()
        try:
            summary = run_training(
                cfg,
                output,
                resume=resume,
                device=device,
                threads=threads,
                workers=workers,
                bf16=bf16,
                max_minutes=minutes,
                force=force,
                on_step=on_step,
                log=lambda msg: console.print(msg) if not quiet else None,
            )
        except KeyboardInterrupt:
            ckpt = output.with_suffix(".ckpt")
            if ckpt.exists() and ckpt.stat().st_mtime >= started:
                raise TrainingInterrupted(
                    f"interrupted; {ckpt} and {output.with_suffix('.safetensors')} hold the run as of its last "
                    f"checkpoint: continue it with --resume {ckpt}"
                ) from None
            raise
    v = summary["validation"]
    click.echo(
        f"{output}.safetensors: {summary['parameters']} parameters, {summary['steps']} steps, "
        f"{summary['wall_s'] / 60:.1f} min; validation {v['psnr']:.2f} dB ({v['baseline']} {v['gaptv_psnr']:.2f} dB)"
    )


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _size(n: int) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n} B"


from .bench.cli import bench  # noqa: E402

main.add_command(bench)


if __name__ == "__main__":
    main()
