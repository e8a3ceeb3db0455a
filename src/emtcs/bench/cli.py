"""The ``emtcs bench`` command: parse options, run the bench on each input, print, write, plot."""

from __future__ import annotations

from pathlib import Path

import click
import numpy as np

from ..atomic import check_output, same_file
from ..cli_options import adapt_option, density_option, device_option, quantise_options, quantise_steps
from ..codec import checked_density
from ..errors import InputError
from ..progress import progress_bar
from . import SIM_DOSE, SIM_FRAMES, SIM_SHAPE
from .codecs import codec_names

__all__ = ["bench"]


def _list(text: str, what: str) -> tuple[str, ...]:
    items = tuple(s.strip() for s in text.split(",") if s.strip())
    if not items:
        raise InputError(f"{what} needs at least one value")
    return items


def _ints(text: str, what: str) -> tuple[int, ...]:
    try:
        return tuple(dict.fromkeys(int(s) for s in _list(text, what)))
    except ValueError:
        raise InputError(f"{what} takes comma-separated integers, got {text!r}") from None


def _crop(text: str) -> tuple[int, int]:
    parts = text.lower().split("x")
    if len(parts) != 2 or not all(p.strip().isdigit() and int(p) > 0 for p in parts):
        raise InputError(f"--crop takes HxW, e.g. 512x512, got {text!r}")
    return int(parts[0]), int(parts[1])


def _check_decoders(names: tuple[str, ...]) -> None:
    from ..decoders import available_decoders

    known = ("auto", *available_decoders())
    unknown = [n for n in names if n not in known]
    if unknown:
        raise InputError(f"unknown decoder {unknown[0]!r}; available: {', '.join(known)}")


def _per_input(path: Path, source: str, several: bool) -> Path:
    return path.with_name(f"{path.stem}-{Path(source).stem}{path.suffix}") if several else path


@click.command()
@click.argument("inputs", nargs=-1, type=click.Path(path_type=Path))
@click.option("-B", "B", default="10,20,30", show_default=True, help="Group sizes of emtcs, comma-separated.")
@click.option(
    "--decoder",
    "decoders",
    default="auto",
    show_default=True,
    help="emtcs decoders, comma-separated: auto (what decompress picks), gaptv, select, gapunet, tcsdl, gapnet.",
)
@click.option(
    "--codecs",
    default="jpeg,jpeg2k,htj2k,jpegxl",
    show_default=True,
    help="Competing codecs: jpeg (8-bit, and 12-bit for deeper data), jpeg8, jpeg12, jpeg2k, htj2k, jpegxl.",
)
@click.option("--clean", type=click.Path(path_type=Path), help="Noise-free truth of the (single) INPUT.")
@click.option(
    "--reference",
    "references",
    default=None,
    help="References, comma-separated: clean, denoised, raw [default: all available], and next: "
    "the even frames are compressed and scored against the odd ones as recorded (an independent "
    "recording where the scene holds nearly still; a movie without a truth ranks fairly so).",
)
@click.option(
    "--frames",
    "n_frames",
    type=int,
    default=None,
    help=f"Use the first N frames [default: all; the simulated movie: {SIM_FRAMES}].",
)
@click.option(
    "--crop",
    default=None,
    metavar="HxW",
    help=f"Use a central HxW crop of each frame [the simulated movie: its frame size, {SIM_SHAPE[0]}x{SIM_SHAPE[1]}].",
)
@click.option(
    "--dose",
    type=float,
    default=None,
    help=f"Simulated movie only: electrons per pixel per frame [default: {SIM_DOSE:g}].",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of emtcs's coding masks.")
@density_option
@quantise_options
@device_option("Where learned decoders run.")
@adapt_option
@click.option("--json", "json_out", type=click.Path(path_type=Path), help="Write the results as JSON.")
@click.option("--plot", "plot_out", type=click.Path(path_type=Path), help="Draw the figure (PNG).")
@click.option(
    "--frames-panel/--no-frames-panel",
    "frames_panel",
    default=True,
    show_default=True,
    help="Show frames in the figure (leave them out for data you may not redistribute).",
)
@click.option("--force", is_flag=True, help="Overwrite existing --json/--plot files.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
def bench(
    inputs: tuple[Path, ...],
    B: str,
    decoders: str,
    codecs: str,
    clean: Path | None,
    references: str | None,
    n_frames: int | None,
    crop: str | None,
    dose: float | None,
    seed: int,
    density: float | None,
    quantise: str | None,
    exact: bool,
    gain: str,
    offset: float | None,
    device: str,
    adapt: int,
    json_out: Path | None,
    plot_out: Path | None,
    frames_panel: bool,
    force: bool,
    quiet: bool,
) -> None:
    """Compare emtcs with JPEG, JPEG 2000, HTJ2K and JPEG XL at the same bytes.

    For each B (and each --quantise step, comma-separated: rate-distortion points), every
    other codec gets the best quality setting whose total bytes over the same frames do
    not exceed the .tcs file's; each is also shown followed
    by a denoiser (non-local means).  Fidelity (PSNR, SSIM) against the clean truth
    when known, the denoised raw frames and the raw frames; speed on this machine.
    With no INPUT it runs on a simulated movie with its clean truth.

    \b
    Examples:
      emtcs bench --json bench.json --plot bench.png
      emtcs bench movie.tif -B 5,10 --decoder gaptv,tcsdl --frames 20 --crop 512x512
      emtcs bench -B 10,20 --quantise 0,1,2 --plot rd.png
      emtcs bench movie.tif -B 20 --density 0.5   # against the density chosen for the movie
    """
    from . import report
    from .run import BenchConfig, count_steps, load_movie, run_bench, simulated_movie

    steps, gain = quantise_steps(quantise, exact, gain)
    config = BenchConfig(
        B=_ints(B, "-B"),
        decoders=_list(decoders, "--decoder"),
        codecs=_list(codecs, "--codecs"),
        references=_list(references, "--reference") if references else None,
        seed=seed,
        density=checked_density(density),
        quantise=steps,
        gain=gain,
        offset=offset,
        device=device,
        adapt=adapt,
    )
    if n_frames is not None and n_frames < 1:
        raise InputError(f"--frames must be at least 1 (got {n_frames})")
    size = _crop(crop) if crop else None
    if dose is not None and (inputs or not 0 < dose < 1e6):
        raise InputError("--dose sets the simulated movie's dose (> 0); it needs no INPUT")
    if clean is not None and len(inputs) != 1:
        raise InputError("--clean is the truth of one INPUT: give exactly one")
    _check_decoders(config.decoders)
    codec_names(config.codecs, np.dtype(np.uint16))  # an unknown codec fails here, before any work
    if plot_out is not None and plot_out.suffix.lower() != ".png":
        raise InputError(f"--plot draws a PNG: name it {plot_out.stem}.png")
    outputs = [] if json_out is None else [json_out]
    if plot_out is not None:
        outputs += [_per_input(plot_out, Path(src).stem, len(inputs) > 1) for src in inputs or ("",)]
    read = [*inputs, *([clean] if clean is not None else [])]
    for i, out in enumerate(outputs):
        if any(same_file(out, other) for other in outputs[:i]):
            raise InputError(f"--json and --plot name the same file, {out}")
        check_output(out, force=force, inputs=read)
    runs = []
    for source in inputs or (None,):
        if source is None:
            frames, truth, info = simulated_movie(n_frames or SIM_FRAMES, size or SIM_SHAPE, dose=dose or SIM_DOSE)
        else:
            frames, info = load_movie(source, n_frames, size)
            truth = load_movie(clean, n_frames, size)[0] if clean is not None else None
        with progress_bar("bench", count_steps(config, frames.dtype), quiet=quiet, unit="steps") as advance:
            result = run_bench(frames, truth, config=config, source=info, progress=advance)
        run = report.jsonable(result.to_json())
        emtcs_rows = [row for row in run["rows"] if row["codec"] == "emtcs"]
        scored = run["input"]["frames"]  # half the movie with --reference next
        if not any(row["status"] == "ok" for row in emtcs_rows):
            raise InputError(
                f"{info['name']}: every -B ({', '.join(map(str, config.B))}) is larger than the "
                f"{scored} frame{'s' if scored != 1 else ''} compressed"
                + (" (--reference next compresses the even frames)" if scored < len(frames) else "")
                + ": nothing to compare"
                if min(config.B) > scored
                else f"{info['name']}: emtcs did not run ({'; '.join(str(r.get('note')) for r in emtcs_rows)})"
            )
        report.print_report(run)
        if plot_out is not None:
            from .plot import plot

            plot(
                run,
                result.samples if frames_panel else None,
                _per_input(plot_out, info["name"], len(inputs) > 1),
                force=force,
            )
        runs.append(run)
    if json_out is not None:
        report.write_json(json_out, runs, force=force)
