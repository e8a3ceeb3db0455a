"""Click options shared by several ``emtcs`` commands (:mod:`emtcs.cli`, :mod:`emtcs.bench.cli`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

__all__ = [
    "adapt_option",
    "density_option",
    "device_option",
    "force_option",
    "numbers",
    "quantise_options",
    "quantise_settings",
    "quantise_steps",
    "quiet_option",
    "scheduler_option",
    "workers_option",
]

quiet_option = click.option("-q", "--quiet", is_flag=True, help="No progress bars.")
force_option = click.option("--force", is_flag=True, help="Overwrite an existing output file.")
#: ``--workers N`` and ``--scheduler ADDRESS``: where ``compress`` and ``decompress`` run on dask
workers_option = click.option(
    "--workers", type=int, default=None, help="Run on a local Dask cluster of N processes (needs emtcs[distributed])."
)
scheduler_option = click.option(
    "--scheduler",
    metavar="ADDRESS",
    default=None,
    help="Run on the Dask scheduler at ADDRESS, e.g. tcp://host:8786; its workers "
    "must see the files under the same paths.",
)


#: ``--density P``: the coding masks' density, else chosen for the movie (emtcs.density)
density_option = click.option(
    "--density",
    type=float,
    default=None,
    help="Probability of a 1 in the coding masks, in (0, 1) [default: chosen for the movie, 5/B at B 11-30 where more "
    "than a quarter of its first group moves, else 0.5; docs/usage.md, 'Mask density'].",
)


def device_option(help: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``--device auto|cpu|cuda``: where learned decoders (and training) run."""
    return click.option(
        "--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True, help=help
    )


#: ``--adapt STEPS``, shared by ``emtcs decompress`` and ``emtcs bench``.
adapt_option = click.option(
    "--adapt",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    metavar="STEPS",
    help="First fit GapUNet's weights to the movie in STEPS steps (e.g. 48): each predicts measurements "
    "withheld from the decode; kept only where they predict a validation share better (0: off).",
)


def quantise_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """``--quantise SIGMA``, ``--exact``, ``--gain auto|G`` and ``--offset O`` (:mod:`emtcs.quantise`,
    :mod:`emtcs.noise`)."""
    command = click.option(
        "--offset",
        type=float,
        default=None,
        help="Detector offset: the pixel value at zero electrons [default: measured with the gain].",
    )(command)
    command = click.option(
        "--gain",
        default="auto",
        show_default=True,
        metavar="auto|G",
        help="Detector gain in pixel values per electron; auto measures it from the movie (photon transfer) "
        "and stores it for the decoders (and --quantise).",
    )(command)
    command = click.option(
        "--exact", is_flag=True, help="Store the measurements exactly (lossless group sums), not quantised."
    )(command)
    return click.option(
        "--quantise",
        default=None,
        metavar="SIGMA",
        help="Quantise the measurements with a step of SIGMA times their noise [default: 1 where the noise "
        "is known (--gain, or measured: a Poisson model, else one sigma), else exact]; 0 stores them exactly.",
    )(command)


def quantise_settings(quantise: str | None, exact: bool, gain: str) -> tuple[float | None, float | None]:
    """(step, gain) from the options: step ``None`` is the default (quantised at one noise sigma
    where the noise is known), 0 with ``--exact``; ``--gain auto`` is ``None`` (measure it)."""
    steps, gain_value = quantise_steps(quantise, exact, gain)
    if len(steps) > 1:
        from .errors import InputError

        raise InputError(f"--quantise takes one step here (got {quantise})")
    return steps[0], gain_value


def quantise_steps(quantise: str | None, exact: bool, gain: str) -> tuple[tuple[float | None, ...], float | None]:
    """Like :func:`quantise_settings`, for a comma-separated list of steps (``emtcs bench``)."""
    from .errors import InputError

    if exact and quantise is not None and any(float(v) for v in numbers(quantise)):
        raise InputError("--exact and --quantise contradict each other: give one")
    steps: tuple[float | None, ...] = (0.0,) if exact else (None,)
    if quantise is not None and not exact:
        steps = tuple(numbers(quantise))
    if gain.strip().lower() == "auto":
        return steps, None
    try:
        return steps, float(gain)
    except ValueError:
        raise InputError(f"--gain must be auto or a number of pixel values per electron (got {gain!r})") from None


def numbers(text: str, option: str = "--quantise", meaning: str = "a number of noise sigmas") -> list[float]:
    """The comma-separated numbers of an option's value; a one-line error naming the option
    when one is not a number or there are none."""
    from .errors import InputError

    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise InputError(f"{option} must be {meaning} (got {text!r})") from None
    if not values:
        raise InputError(f"{option} needs a value")
    return values
