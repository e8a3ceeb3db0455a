"""Click options shared by several ``emtcs`` commands (``compress``, ``bench``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

__all__ = ["device_option", "quantise_options", "quantise_settings"]


def device_option(help: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``--device auto|cpu|cuda``: where learned decoders (and training) run."""
    return click.option(
        "--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True, help=help
    )


def quantise_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """``--quantise SIGMA``, ``--gain auto|G`` and ``--offset O`` (:mod:`emtcs.quantise`, :mod:`emtcs.noise`)."""
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
    return click.option(
        "--quantise",
        type=float,
        default=0.0,
        show_default=True,
        metavar="SIGMA",
        help="Store measurements quantised with a step of SIGMA times their shot noise (e.g. 1: about half "
        "the bytes at high dose); 0 stores them exactly. Needs a movie of counts and its gain.",
    )(command)


def quantise_settings(quantise: float, gain: str) -> tuple[float, float | None]:
    """(step, gain) from the options: ``--gain auto`` is ``None`` (measure it)."""
    from .errors import InputError

    if gain.strip().lower() == "auto":
        return quantise, None
    try:
        return quantise, float(gain)
    except ValueError:
        raise InputError(f"--gain must be auto or a number of pixel values per electron (got {gain!r})") from None
